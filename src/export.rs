//! `tlearn export`: a trained run as one self-contained ONNX file from pixels to probabilities,
//! for other runtimes (ONNX Runtime's Python API, onnxruntime-node/web, C#, mobile).
//!
//! The file holds, in one graph of standard operators: the preprocessing `predict` does after
//! resizing (channel order, scale, mean, std), the backbone cut to the layers the model reads,
//! then either the linear model's pooling, normalisation (as model.json says), concatenation,
//! standardisation, linear layer and link (softmax, normalised sigmoids, or the SVM's calibrated softmax), or a fine-tuned
//! network's own head. Outputs: `probabilities` [N, classes], `label` [N] (the class `predict`
//! ranks first) and, for an SVM, `margins`. Its `metadata_props` carry the class names, the
//! resize recipe and snippets, the training features' identity, the accuracy and the date.
//!
//! Every check `predict` makes is made first (the backbone's sha256 and identity, the model's
//! sizes), through the same functions, and the graph is written only over a file that this
//! command wrote before (its marker in `metadata_props`).

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::backbone::{Descriptor, ExecutionProvider};
use crate::classify::normalize::NORM_FLOOR;
use crate::classify::{ClassifyError, Kind, Normalize, TrainedModel};
use crate::finetune::grad::Ops;
use crate::onnx::proto::StringStringEntryProto;
use crate::onnx::{attr_int, attr_ints, CutSpec, DataType, Dim, Model, OnnxError};
use crate::options::Opt;
use crate::predict::{ModelFile, PredictError, Predictor};
use crate::preprocess::{ColorOrder, Preprocessing, ResizeMode};

/// The `metadata_props` key that marks a file written by `tlearn export` (value: its layout).
pub const MARKER: &str = "tlearn.export";
/// The graph input.
pub const IMAGES: &str = "images";
/// The output of class probabilities.
pub const PROBABILITIES: &str = "probabilities";
/// The output of the predicted class index.
pub const LABEL: &str = "label";
/// The output of an SVM's decision values.
pub const MARGINS: &str = "margins";
/// Lowest default-domain opset of an exported graph (ReduceSum with axes as an input).
const MIN_OPSET: i64 = 13;

/// The Python (PIL + onnxruntime) example, also in `docs/deploy.md` and the file's metadata.
pub const PYTHON_SNIPPET: &str = include_str!("../docs/deploy/classify.py");
/// The JavaScript (onnxruntime-node/web) example, also in `docs/deploy.md` and the metadata.
pub const JAVASCRIPT_SNIPPET: &str = include_str!("../docs/deploy/classify.mjs");

/// What the exported graph takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum ExportInput {
    /// uint8 [N, size, size, 3] RGB pixels, resized and centre-cropped as `predict` does.
    #[default]
    Uint8,
    /// f32 [N, 3, size, size], already preprocessed for the backbone.
    Float,
}

/// What to export and where.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportConfig {
    /// A run folder, or its model.json (linear) or model.onnx (fine-tuned).
    pub model: PathBuf,
    /// The backbone of a linear model (default: the one it records).
    pub backbone: Option<PathBuf>,
    /// The ONNX file to write.
    pub out: PathBuf,
    /// The graph's input.
    pub input: ExportInput,
}

/// What was exported.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSummary {
    /// The model file that was exported.
    pub model: PathBuf,
    /// `svm`, `logistic`, `logistic-ovr` or `fine-tuned`.
    pub kind: String,
    /// Class names, index = output column.
    pub classes: Vec<String>,
    /// Bytes written.
    pub bytes: usize,
}

/// Errors of exporting.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The model or its backbone cannot be used (what `predict` would refuse).
    #[error(transparent)]
    Predict(#[from] PredictError),
    /// The graph could not be read, cut or built.
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    /// An SVM saved without a calibration gives margins only.
    #[error("{0} is an SVM without a calibration (saved by an earlier tlearn), so it gives no probabilities to export: train it again with `tlearn train svm`")]
    NoProbabilities(PathBuf),
    /// A model with test-time augmentation averages several views of each image.
    #[error("{0} averages each image's scores over its augmented copies (test-time augmentation, `{opt_tta}`), which one graph of one image cannot do: use it with `tlearn predict`, or train it again without {opt_tta} to export it", opt_tta = Opt::Tta)]
    TestTimeAugmentation(PathBuf),
    /// The output path holds something `tlearn export` did not write.
    #[error("{opt_out} {0} exists and is not a file tlearn exported: it is left untouched. Give another {opt_out}, or move that file away", opt_out = Opt::Out)]
    Foreign(PathBuf),
}

impl From<ClassifyError> for ExportError {
    fn from(e: ClassifyError) -> Self {
        ExportError::Predict(e.into())
    }
}

impl From<crate::backbone::BackboneError> for ExportError {
    fn from(e: crate::backbone::BackboneError) -> Self {
        ExportError::Predict(e.into())
    }
}

/// Exports the run `cfg.model` to `cfg.out`: refuses a foreign output before any work, then
/// builds the graph (every check `predict` makes included) and writes it atomically.
pub fn export(cfg: &ExportConfig) -> Result<ExportSummary, ExportError> {
    check_out(&cfg.out)?;
    let found = ModelFile::find(&cfg.model);
    let file = found.path();
    let (mut model, kind, classes) = match &found {
        ModelFile::Network(file) => network_graph(file, cfg.input)?,
        ModelFile::Linear(file) => linear_graph(file, cfg)?,
    };
    let metadata = &mut model.proto_mut().metadata_props;
    for (key, value) in [
        ("kind", kind.clone()),
        ("source_model", file.display().to_string()),
    ] {
        metadata.push(entry(key, value));
    }
    let bytes = model.to_bytes();
    check_out(&cfg.out)?;
    crate::output::write_atomic(&cfg.out, &bytes).map_err(OnnxError::from)?;
    Ok(ExportSummary {
        model: file.to_path_buf(),
        kind,
        classes,
        bytes: bytes.len(),
    })
}

/// Refuses an output path that exists and is not a regular file carrying [`MARKER`] (a symlink,
/// a folder, a user's file, an input model): only a file this command wrote may be replaced.
pub fn check_out(out: &Path) -> Result<(), ExportError> {
    let meta = match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) => return Err(ExportError::Foreign(out.to_path_buf())),
        Ok(meta) => meta,
    };
    let exported = meta.is_file()
        && Model::load(out)
            .is_ok_and(|m| m.proto().metadata_props.iter().any(|e| e.key() == MARKER));
    if exported {
        Ok(())
    } else {
        Err(ExportError::Foreign(out.to_path_buf()))
    }
}

/// A linear model's graph: preprocessing, its backbone cut to the layers it reads, its head.
fn linear_graph(
    file: &Path,
    cfg: &ExportConfig,
) -> Result<(Model, String, Vec<String>), ExportError> {
    let model = TrainedModel::load(file)?;
    if model.classifier.kind == Kind::Svm && model.calibration.is_none() {
        return Err(ExportError::NoProbabilities(file.to_path_buf()));
    }
    if model.tta {
        return Err(ExportError::TestTimeAugmentation(file.to_path_buf()));
    }
    let path = crate::predict::backbone_for(&model, cfg.backbone.as_deref())?;
    // Opening it runs every check predict makes: sha256, identity, layers, feature length.
    let net = crate::predict::open_backbone(&model, &path, ExecutionProvider::Cpu, 1)?;
    let descriptor = net.descriptor.clone();
    drop(net);
    let layers = crate::backbone::Repr::layers(&model.identity.representations());
    let backbone = cut_to(&Model::load(&path)?, &layers)?;
    let mut ops = start(&backbone, &descriptor, cfg.input);
    let outputs = linear_head(&mut ops, &model);
    let mut graph = finish(ops, &backbone, outputs, model.class_names.len())?;
    let identity = serde_json::to_string(&model.identity).expect("identity serialises");
    let props = Props {
        classes: &model.class_names,
        preprocessing: &descriptor.preprocessing,
        input: cfg.input,
        training: identity,
        backbone: json!({"name": descriptor.name, "sha256": descriptor.sha256,
            "precision": descriptor.precision.name(), "file": path}),
        accuracy: report_accuracy(file),
    };
    props.write(&mut graph);
    Ok((
        graph,
        model.classifier.kind.name().into(),
        model.class_names,
    ))
}

/// A fine-tuned network's graph: preprocessing, then the network (backbone with its trained
/// layers and head, ending in its softmax), checked as `predict` checks it.
fn network_graph(
    file: &Path,
    input: ExportInput,
) -> Result<(Model, String, Vec<String>), ExportError> {
    // Opening it runs every check predict makes: descriptor, sha256, classes, output layer.
    let class_names = Predictor::network(file, ExecutionProvider::Cpu, 1)?
        .class_names()
        .to_vec();
    let descriptor = Descriptor::for_model(file)?;
    let layer = descriptor.layers[0].clone(); // Predictor::network checked there is one
    let network = cut_to(&Model::load(file)?, std::slice::from_ref(&layer))?;
    let mut ops = start(&network, &descriptor, input);
    let label = ops.op("ArgMax", &[&layer], argmax_attrs());
    let outputs = Outputs {
        probabilities: layer,
        label,
        margins: None,
    };
    let mut graph = finish(ops, &network, outputs, class_names.len())?;
    let props = Props {
        classes: &class_names,
        preprocessing: &descriptor.preprocessing,
        input,
        training: toml_as_json(&descriptor),
        backbone: json!({"name": descriptor.name, "sha256": descriptor.sha256,
            "precision": descriptor.precision.name(), "file": file}),
        accuracy: summary_accuracy(file),
    };
    props.write(&mut graph);
    Ok((graph, "fine-tuned".into(), class_names))
}

/// `model` with only `layers` as outputs and nothing after them.
fn cut_to(model: &Model, layers: &[String]) -> Result<Model, ExportError> {
    let mut cut = model.clone();
    cut.cut(&CutSpec {
        outputs: layers.iter().map(|l| (l.clone(), l.clone())).collect(),
        nchw_input: false,
        free_dims: false,
    })?;
    Ok(cut)
}

/// A new graph with the `images` input, the preprocessing that writes the backbone's input
/// tensor, and every node and initializer of `backbone`.
fn start(backbone: &Model, descriptor: &Descriptor, input: ExportInput) -> Ops {
    let mut ops = Ops::new("tlearn-classifier");
    preprocess(
        &mut ops,
        &descriptor.preprocessing,
        input,
        &descriptor.input,
    );
    let g = backbone.graph();
    for t in &g.initializer {
        ops.g.initializer(t.clone());
    }
    for n in &g.node {
        *ops.g.node(n.op_type(), &[], &[], vec![]) = n.clone();
    }
    ops
}

/// Nodes from `images` to `into`, the backbone's input: for uint8 NHWC pixels, the float cast,
/// NCHW, the backbone's channel order, then `(x * scale - mean) / std` per channel, the same
/// f32 operations as [`Preprocessing::write_chw`].
fn preprocess(ops: &mut Ops, prep: &Preprocessing, input: ExportInput, into: &str) {
    let size = i64::from(prep.size);
    let batch = || Dim::sym("batch");
    if input == ExportInput::Float {
        let dims = [batch(), 3.into(), size.into(), size.into()];
        ops.g.input(IMAGES, DataType::Float, &dims);
        ops.g.node("Identity", &[IMAGES], &[into], vec![]);
        return;
    }
    let dims = [batch(), size.into(), size.into(), 3.into()];
    ops.g.input(IMAGES, DataType::Uint8, &dims);
    let x = ops.op(
        "Cast",
        &[IMAGES],
        vec![attr_int("to", DataType::Float as i64)],
    );
    let mut x = ops.op("Transpose", &[&x], vec![attr_ints("perm", &[0, 3, 1, 2])]);
    if prep.color_order == ColorOrder::Bgr {
        let order = ops.ints(&[2, 1, 0]);
        x = ops.op("Gather", &[&x, &order], vec![attr_int("axis", 1)]);
    }
    let scale = ops.scalar(prep.scale);
    let x = ops.op("Mul", &[&x, &scale], vec![]);
    let mean = channel_constant(ops, "mean", &prep.mean);
    let x = ops.op("Sub", &[&x, &mean], vec![]);
    let std = channel_constant(ops, "std", &prep.std);
    ops.g.node("Div", &[&x, &std], &[into], vec![]);
}

/// A [1, 3, 1, 1] constant that broadcasts over NCHW.
fn channel_constant(ops: &mut Ops, stem: &str, values: &[f32; 3]) -> String {
    constant(ops, stem, values, &[1, 3, 1, 1])
}

/// An f32 initializer with a fresh name.
fn constant(ops: &mut Ops, stem: &str, values: &[f32], shape: &[i64]) -> String {
    let name = ops.fresh(stem);
    ops.g.initializer_f32(&name, values, shape);
    name
}

/// The tensors that become the graph's outputs.
struct Outputs {
    probabilities: String,
    label: String,
    margins: Option<String>,
}

/// ArgMax over classes, one index per image; ties give the first class, as `predict` ranks.
fn argmax_attrs() -> Vec<crate::onnx::proto::AttributeProto> {
    vec![attr_int("axis", 1), attr_int("keepdims", 0)]
}

/// A linear model's head on the backbone's layers: each representation pooled and flattened,
/// concatenated, standardised, `W z + b`, then the link of its kind (as
/// [`crate::classify::LinearClassifier::scores`] and [`TrainedModel::probabilities`]).
fn linear_head(ops: &mut Ops, model: &TrainedModel) -> Outputs {
    // Each representation is a block of its own when the identity maps its columns, as
    // `Normalize::blocks` says; otherwise the whole row is one block.
    let per_block = model.identity.columns().is_some();
    let pooled: Vec<String> = model
        .identity
        .representations()
        .iter()
        .map(|r| {
            let x = pool(ops, &r.layer, r.pooling);
            if per_block {
                normalize(ops, x, model.normalize)
            } else {
                x
            }
        })
        .collect();
    let refs: Vec<&str> = pooled.iter().map(String::as_str).collect();
    let features = match refs.as_slice() {
        [one] => one.to_string(),
        many => ops.op("Concat", many, vec![attr_int("axis", 1)]),
    };
    let features = if per_block {
        features
    } else {
        normalize(ops, features, model.normalize)
    };
    let c = &model.classifier;
    let (classes, dims) = (c.classes() as i64, c.dims() as i64);
    let mean = constant(ops, "scaler_mean", &c.scaler.mean, &[dims]);
    let scale = constant(ops, "scaler_scale", &c.scaler.scale, &[dims]);
    let weights: Vec<f32> = c.weights.iter().copied().collect();
    let w = constant(ops, "weights", &weights, &[classes, dims]);
    let b = constant(ops, "bias", &c.bias.to_vec(), &[classes]);
    let z = ops.op("Sub", &[&features, &mean], vec![]);
    let z = ops.op("Div", &[&z, &scale], vec![]);
    let scores = ops.op("Gemm", &[&z, &w, &b], vec![attr_int("transB", 1)]);
    link(ops, model, scores)
}

/// One representation as [N, dims]: channel-major flatten, the global average or maximum,
/// or those of each quarter of the map.
fn pool(ops: &mut Ops, layer: &str, pooling: crate::backbone::Pooling) -> String {
    use crate::backbone::Pooling;
    let map = match pooling {
        Pooling::Flatten => layer.to_string(),
        Pooling::Avg => ops.op("GlobalAveragePool", &[layer], vec![]),
        Pooling::Max => ops.op("GlobalMaxPool", &[layer], vec![]),
        Pooling::Avg2x2 => quarters(ops, layer, "GlobalAveragePool"),
        Pooling::Max2x2 => quarters(ops, layer, "GlobalMaxPool"),
    };
    ops.op("Flatten", &[&map], vec![attr_int("axis", 1)])
}

/// `global` (a global pooling op) of each quarter of `layer`'s map, as [N, C, 1, 4] in
/// reading order, so that Flatten gives [`crate::backbone::Pooling::apply`]'s column order.
/// The quarters' bounds come from the map's shape at run time, as
/// [`crate::backbone::quarter`] computes them: any input size exports the same way.
fn quarters(ops: &mut Ops, layer: &str, global: &str) -> String {
    let shape = ops.op("Shape", &[layer], vec![]);
    let halves = [2, 3].map(|axis| halves_of_axis(ops, &shape, axis));
    let mut pooled = Vec::new();
    for top_or_bottom in &halves[0] {
        for left_or_right in &halves[1] {
            let rows = slice(ops, layer, top_or_bottom, 2);
            let region = slice(ops, &rows, left_or_right, 3);
            pooled.push(ops.op(global, &[&region], vec![]));
        }
    }
    let refs: Vec<&str> = pooled.iter().map(String::as_str).collect();
    ops.op("Concat", &refs, vec![attr_int("axis", 3)])
}

/// The [start, end) bounds (1-D i64 tensors) of the two halves of `axis` of a map of shape
/// `shape`: `0..ceil(len / 2)` and `len - ceil(len / 2)..len`.
fn halves_of_axis(ops: &mut Ops, shape: &str, axis: i64) -> [(String, String); 2] {
    let (from, to) = (ops.ints(&[axis]), ops.ints(&[axis + 1]));
    let len = ops.op("Slice", &[shape, &from, &to], vec![]);
    let (one, two) = (ops.ints(&[1]), ops.ints(&[2]));
    let plus_one = ops.op("Add", &[&len, &one], vec![]);
    let width = ops.op("Div", &[&plus_one, &two], vec![]);
    let second_start = ops.op("Sub", &[&len, &width], vec![]);
    [(ops.ints(&[0]), width), (second_start, len)]
}

/// `x` sliced to `bounds` along `axis`.
fn slice(ops: &mut Ops, x: &str, bounds: &(String, String), axis: i64) -> String {
    let axes = ops.ints(&[axis]);
    ops.op("Slice", &[x, &bounds.0, &bounds.1, &axes], vec![])
}

/// One block [N, dims] normalised as [`Normalize::apply`] does: the signed square root
/// (power), then division by the row's Euclidean norm, floored at [`NORM_FLOOR`].
fn normalize(ops: &mut Ops, x: String, how: Normalize) -> String {
    let x = match how {
        Normalize::None => return x,
        Normalize::L2 => x,
        Normalize::Power => {
            let sign = ops.op("Sign", &[&x], vec![]);
            let abs = ops.op("Abs", &[&x], vec![]);
            let root = ops.op("Sqrt", &[&abs], vec![]);
            ops.op("Mul", &[&sign, &root], vec![])
        }
    };
    // ReduceSum takes its axes as an input from opset 13 (the lowest exported), ReduceL2
    // only from 18: the norm is the square root of the summed squares.
    let squares = ops.op("Mul", &[&x, &x], vec![]);
    let axes = ops.ints(&[1]);
    let sum = ops.op(
        "ReduceSum",
        &[&squares, &axes],
        vec![attr_int("keepdims", 1)],
    );
    let norm = ops.op("Sqrt", &[&sum], vec![]);
    let floor = ops.scalar(NORM_FLOOR);
    let norm = ops.op("Max", &[&norm, &floor], vec![]);
    ops.op("Div", &[&x, &norm], vec![])
}

/// The probabilities and label of a linear model's decision values.
fn link(ops: &mut Ops, model: &TrainedModel, scores: String) -> Outputs {
    let softmax = |ops: &mut Ops, x: &str| ops.op("Softmax", &[x], vec![attr_int("axis", 1)]);
    match model.classifier.kind {
        Kind::Svm => {
            let calibration = model.calibration.expect("checked by linear_graph");
            let t = ops.scalar(calibration.temperature);
            let scaled = ops.op("Div", &[&scores, &t], vec![]);
            let probabilities = softmax(ops, &scaled);
            let label = ops.op("ArgMax", &[&scores], argmax_attrs());
            Outputs {
                probabilities,
                label,
                margins: Some(scores),
            }
        }
        kind => {
            let probabilities = if kind == Kind::Logistic {
                softmax(ops, &scores)
            } else {
                let s = ops.op("Sigmoid", &[&scores], vec![]);
                let axes = ops.ints(&[1]);
                let sum = ops.op("ReduceSum", &[&s, &axes], vec![attr_int("keepdims", 1)]);
                let floor = ops.scalar(f32::MIN_POSITIVE);
                let sum = ops.op("Max", &[&sum, &floor], vec![]);
                ops.op("Div", &[&s, &sum], vec![])
            };
            let label = ops.op("ArgMax", &[&probabilities], argmax_attrs());
            Outputs {
                probabilities,
                label,
                margins: None,
            }
        }
    }
}

/// Names the outputs, declares them and builds the model at the backbone's opset (at least
/// [`MIN_OPSET`]), with its other operator domains and IR version.
fn finish(
    mut ops: Ops,
    backbone: &Model,
    outputs: Outputs,
    classes: usize,
) -> Result<Model, ExportError> {
    let batch = || Dim::sym("batch");
    let per_class = [batch(), Dim::Fixed(classes as i64)];
    let mut named = vec![(outputs.probabilities, PROBABILITIES, &per_class[..])];
    if let Some(margins) = outputs.margins {
        named.push((margins, MARGINS, &per_class[..]));
    }
    for (tensor, name, dims) in named {
        if tensor != name {
            ops.g.rename(&tensor, name);
        }
        ops.g.output(name, DataType::Float, dims);
    }
    ops.g.rename(&outputs.label, LABEL);
    ops.g.output(LABEL, DataType::Int64, &[batch()]);
    let proto = backbone.proto();
    for o in proto.opset_import.iter().filter(|o| !o.domain().is_empty()) {
        ops.g.opset_import(o.domain(), o.version());
    }
    ops.g
        .ir_version(proto.ir_version().max(crate::onnx::DEFAULT_IR_VERSION));
    let opset = backbone
        .opset_version("")
        .unwrap_or(MIN_OPSET)
        .max(MIN_OPSET);
    Ok(ops.g.build(opset)?)
}

/// The metadata every exported file carries.
struct Props<'a> {
    classes: &'a [String],
    preprocessing: &'a Preprocessing,
    input: ExportInput,
    /// JSON of what the training features (or network) were made from.
    training: String,
    backbone: serde_json::Value,
    accuracy: String,
}

impl Props<'_> {
    /// Writes the metadata into `model`'s `metadata_props` and a one-line doc string.
    fn write(&self, model: &mut Model) {
        let size = self.preprocessing.size;
        let input = match self.input {
            ExportInput::Uint8 => format!("{IMAGES}: uint8 [N, {size}, {size}, 3] RGB pixels"),
            ExportInput::Float => {
                format!("{IMAGES}: float32 [N, 3, {size}, {size}], preprocessed for the backbone")
            }
        };
        let props = [
            (MARKER, "1".to_string()),
            ("tlearn.version", env!("CARGO_PKG_VERSION").to_string()),
            (
                "classes",
                serde_json::to_string(self.classes).expect("strings serialise"),
            ),
            ("input", input),
            ("resize", resize_recipe(self.preprocessing)),
            (
                "preprocessing",
                serde_json::to_string(self.preprocessing).expect("serialises"),
            ),
            ("training_features", self.training.clone()),
            ("backbone", self.backbone.to_string()),
            ("accuracy", self.accuracy.clone()),
            ("date", utc_date(std::time::SystemTime::now())),
            ("example.python", PYTHON_SNIPPET.to_string()),
            ("example.javascript", JAVASCRIPT_SNIPPET.to_string()),
        ];
        let proto = model.proto_mut();
        proto.doc_string = Some(format!(
            "tlearn classifier: {} -> probabilities [N, {}], label [N]; classes and recipe in metadata_props",
            props[3].1,
            self.classes.len()
        ));
        proto
            .metadata_props
            .extend(props.into_iter().map(|(k, v)| entry(k, v)));
    }
}

fn entry(key: &str, value: String) -> StringStringEntryProto {
    StringStringEntryProto {
        key: Some(key.to_string()),
        value: Some(value),
    }
}

/// How the caller must turn an image into the `images` input, in words and integer formulas.
pub fn resize_recipe(prep: &Preprocessing) -> String {
    let s = prep.size;
    match prep.resize {
        ResizeMode::ShorterSideCrop => format!(
            "decode to 8-bit RGB; for a w x h image with m = min(w, h), resize to W x H with W = (2*w*{s} + m) // (2*m), H = (2*h*{s} + m) // (2*m) (antialiased bilinear, PIL's Image.BILINEAR), then crop the {s} x {s} square at left = (W - {s}) // 2, top = (H - {s}) // 2; pixels as uint8 [N, {s}, {s}, 3] in row-major RGB order"
        ),
        ResizeMode::Stretch => format!(
            "decode to 8-bit RGB; resize to {s} x {s} (antialiased bilinear, PIL's Image.BILINEAR); pixels as uint8 [N, {s}, {s}, 3] in row-major RGB order"
        ),
    }
}

/// A descriptor as a JSON string (its provenance, for a fine-tuned network).
fn toml_as_json(d: &Descriptor) -> String {
    serde_json::to_string(d).expect("descriptor serialises")
}

/// The test accuracy the run's report gives (`reports/NAME/report.json` beside `runs/NAME`),
/// or why there is none.
fn report_accuracy(model: &Path) -> String {
    let run = model.parent().unwrap_or(Path::new("."));
    let name = run.file_name().unwrap_or_default();
    let report = run
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."))
        .join("reports")
        .join(name)
        .join("report.json");
    let read = std::fs::read_to_string(&report).ok();
    let value: Option<serde_json::Value> = read.and_then(|t| serde_json::from_str(&t).ok());
    let summary = value.as_ref().map(|v| &v["summary"]);
    match summary.and_then(|s| {
        Some((
            s["accuracy"]["mean"].as_f64()?,
            s["accuracy"]["std"].as_f64()?,
        ))
    }) {
        Some((mean, std)) => format!(
            "test accuracy {:.2} % ± {:.2} over the run's splits ({})",
            100.0 * mean,
            100.0 * std,
            report.display()
        ),
        None => format!("not recorded: no report at {}", report.display()),
    }
}

/// The test accuracy of a fine-tuned network (`summary.json` beside its model.onnx).
fn summary_accuracy(model: &Path) -> String {
    let summary = model.with_file_name("summary.json");
    let value: Option<serde_json::Value> = std::fs::read_to_string(&summary)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    match value.as_ref().and_then(|v| v["test_accuracy"].as_f64()) {
        Some(a) => format!("test accuracy {:.2} % ({})", 100.0 * a, summary.display()),
        None => format!("not recorded: no summary at {}", summary.display()),
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a time (the civil-from-days algorithm of H. Hinnant).
fn utc_date(time: std::time::SystemTime) -> String {
    let secs = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rest / 3600, rest / 60 % 60, rest % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_calendar_dates() {
        let at = |secs| utc_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_796_212_861), "2026-12-02T12:01:01Z");
    }
}
