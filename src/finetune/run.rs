//! A whole fine-tuning run on a feature cache: the network that fits the cached layer, the
//! pretrained weights, training, test evaluation, the exported inference model and a summary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::checkpoint::EpochStats;
use super::data::Data;
use super::graph::{Arch, ConvLayer};
use super::train::{evaluate, fit, initial_params, CheckedParams, Ending};
use super::FinetuneError;
use crate::backbone::Pooling;
use crate::cache::FeatureCache;
use crate::onnx::Model;

/// VGG16's block 5: its convolutions work on `block4_pool` (512 x 14 x 14).
const BLOCK5: [&str; 3] = ["block5_conv1", "block5_conv2", "block5_conv3"];

/// What to fine-tune, on which data, into which directory.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Feature cache of the frozen part's output (`block5_pool` or `block4_pool`, flattened).
    pub features: PathBuf,
    /// Which of the cache's seeded splits.
    pub split: usize,
    /// The backbone ONNX: pretrained weights of unfrozen layers, base of the exported model.
    pub backbone: PathBuf,
    /// Number of block-5 convolutions to train: 0 (head only, on `block5_pool`) or 3 (all of
    /// block 5, on `block4_pool`).
    pub unfreeze: usize,
    /// Width of the head's hidden layer.
    pub hidden: usize,
    /// Run directory (checkpoints, history, summary, exported model).
    pub out: PathBuf,
    /// A finished head-only run (its directory) whose head starts this one: the method's
    /// stage 2 starts from the head trained in stage 1, not from random values.
    pub init_from: Option<PathBuf>,
}

/// The result of a run, also written as `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Split index.
    pub split: usize,
    /// Why training ended.
    pub ending: Ending,
    /// Epochs completed.
    pub epochs: usize,
    /// Epoch whose parameters are kept (lowest validation loss).
    pub best_epoch: usize,
    /// Validation accuracy of the kept parameters.
    pub val_accuracy: f64,
    /// Test loss of the kept parameters.
    pub test_loss: f64,
    /// Test accuracy of the kept parameters.
    pub test_accuracy: f64,
    /// Mean seconds of training steps per epoch.
    pub seconds_per_epoch: f64,
    /// Training rows (with augmented copies), validation rows, test rows.
    pub rows: [usize; 3],
    /// The exported inference model (backbone with the trained weights, head, softmax).
    pub model: Option<PathBuf>,
    /// Every epoch.
    pub history: Vec<EpochStats>,
}

/// Shape of one cached row as the network takes it, and the number of classes.
pub fn cache_shape(features: &Path, unfreeze: usize) -> Result<(Vec<usize>, usize), FinetuneError> {
    let cache = FeatureCache::open(features)?;
    let id = &cache.identity;
    let classes = cache.class_names()?.len();
    let bad = |what: &str| {
        Err(FinetuneError::Data(format!(
            "{} holds {} ({:?} pooling); {what}",
            features.display(),
            id.layers.join(","),
            id.pooling
        )))
    };
    if id.pooling != Pooling::Flatten || id.layers.len() != 1 {
        return bad("fine-tuning needs one layer, flattened");
    }
    match (id.layers[0].as_str(), unfreeze) {
        ("block5_pool", 0) => Ok((vec![id.dims], classes)),
        ("block4_pool", 3) if id.dims % (14 * 14) == 0 => {
            Ok((vec![id.dims / (14 * 14), 14, 14], classes))
        }
        (_, 0) => bad("the head alone trains on block5_pool features"),
        (_, 3) => bad("training block 5 needs block4_pool features"),
        _ => Err(FinetuneError::Param(format!(
            "--unfreeze {unfreeze}: 0 (head only) or 3 (all of block 5) are supported"
        ))),
    }
}

/// The network for rows of `shape`: block 5's convolutions when the rows are `block4_pool`.
pub fn arch_for(
    shape: &[usize],
    classes: usize,
    unfreeze: usize,
    hidden: usize,
    head_scale: f32,
) -> Arch {
    let convs = if unfreeze == 0 {
        Vec::new()
    } else {
        BLOCK5[BLOCK5.len() - unfreeze..]
            .iter()
            .map(|name| ConvLayer {
                name: name.to_string(),
                out: 512,
                pool: *name == "block5_conv3",
            })
            .collect()
    };
    Arch {
        input: shape.to_vec(),
        convs,
        hidden,
        classes,
        head_scale,
    }
}

/// `1 / sqrt(mean square)` of the training rows: the head scale that gives the head inputs of
/// unit mean square when the rows are the head's input (`block5_pool`).
pub fn unit_scale(data: &Data) -> f32 {
    let (mut sum, mut count) = (0.0f64, 0usize);
    for &r in &data.train {
        sum += data
            .x
            .row(r)
            .iter()
            .map(|v| f64::from(*v).powi(2))
            .sum::<f64>();
        count += data.x.ncols();
    }
    let mean_square = sum / count.max(1) as f64;
    if mean_square > 0.0 {
        (1.0 / mean_square.sqrt()) as f32
    } else {
        1.0
    }
}

/// The Conv node of Keras layer `layer` (its output is named `.../LAYER_1/...` by tf2onnx).
fn conv_node<'m>(model: &'m Model, layer: &str) -> Option<&'m crate::onnx::proto::NodeProto> {
    let scoped = format!("/{layer}_1/");
    model
        .graph()
        .node
        .iter()
        .find(|n| n.op_type() == "Conv" && n.output.iter().any(|o| o.contains(&scoped)))
}

/// Pretrained weights and biases of `arch`'s convolutions, by parameter name.
pub fn pretrained(model: &Model, arch: &Arch) -> Result<HashMap<String, Vec<f32>>, FinetuneError> {
    let mut out = HashMap::new();
    for c in &arch.convs {
        let node = conv_node(model, &c.name).ok_or_else(|| {
            FinetuneError::Arch(format!("the backbone has no convolution {}", c.name))
        })?;
        out.insert(
            format!("{}.w", c.name),
            model.initializer_f32(&node.input[1])?,
        );
        out.insert(
            format!("{}.b", c.name),
            model.initializer_f32(&node.input[2])?,
        );
    }
    Ok(out)
}

/// The backbone with `arch`'s trained convolutions written in, then flatten, the head and a
/// softmax on `block5_pool`: one model from image to `probabilities`.
pub fn inference_model(
    backbone: &Model,
    arch: &Arch,
    params: &[Vec<f32>],
) -> Result<Model, FinetuneError> {
    let mut model = backbone.clone();
    let specs = arch.params();
    let value = |name: &str| &params[specs.iter().position(|p| p.name == name).expect("known")];
    for c in &arch.convs {
        let node = conv_node(&model, &c.name).ok_or_else(|| {
            FinetuneError::Arch(format!("the backbone has no convolution {}", c.name))
        })?;
        let (w, b) = (node.input[1].clone(), node.input[2].clone());
        model.set_initializer_f32(&w, value(&format!("{}.w", c.name)))?;
        model.set_initializer_f32(&b, value(&format!("{}.b", c.name)))?;
    }
    let g = model.graph_mut();
    g.output.clear();
    for p in specs.iter().filter(|p| p.name.starts_with("fc")) {
        let dims: Vec<i64> = p.dims.iter().map(|&d| d as i64).collect();
        let mut values = value(&p.name).clone();
        if p.name == "fc1.w" {
            // The training graph's head scale, folded into the first dense layer.
            values.iter_mut().for_each(|v| *v *= arch.head_scale);
        }
        g.initializer.push(crate::onnx::tensor_f32(
            &format!("head/{}", p.name),
            &values,
            &dims,
        ));
    }
    let node = |op: &str, inputs: &[&str], output: &str, attrs| crate::onnx::proto::NodeProto {
        name: Some(format!("head/{output}")),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute: attrs,
        ..Default::default()
    };
    let axis1 = || vec![crate::onnx::attr_int("axis", 1)];
    g.node
        .push(node("Flatten", &["block5_pool"], "head/flat", axis1()));
    g.node.push(node(
        "Gemm",
        &["head/flat", "head/fc1.w", "head/fc1.b"],
        "head/fc1",
        vec![],
    ));
    g.node
        .push(node("Relu", &["head/fc1"], "head/hidden", vec![]));
    g.node.push(node(
        "Gemm",
        &["head/hidden", "head/fc2.w", "head/fc2.b"],
        "head/logits",
        vec![],
    ));
    g.node
        .push(node("Softmax", &["head/logits"], "probabilities", axis1()));
    let dims = [
        crate::onnx::Dim::sym("batch"),
        crate::onnx::Dim::Fixed(arch.classes as i64),
    ];
    g.output.push(crate::onnx::value_info(
        "probabilities",
        crate::onnx::DataType::Float,
        Some(&dims),
    ));
    Ok(model)
}

/// The head scale and best head parameters of the finished run in `dir`, checked to fit `arch`.
pub fn trained_head(
    dir: &Path,
    arch: &Arch,
) -> Result<(f32, HashMap<String, Vec<f32>>), FinetuneError> {
    let path = dir.join("best.onnx");
    let bad = |reason: String| FinetuneError::Checkpoint {
        path: path.clone(),
        reason,
    };
    let specs: Vec<_> = arch
        .params()
        .into_iter()
        .filter(|p| p.name.starts_with("fc"))
        .collect();
    // Reads the head only; a head of another shape is refused by the size checks.
    let (meta, tensors) = super::checkpoint::load(&path, &specs, false)?;
    let fingerprint: serde_json::Value =
        serde_json::from_str(&meta.fingerprint).map_err(|e| bad(e.to_string()))?;
    let scale = fingerprint["arch"]["head_scale"]
        .as_f64()
        .ok_or_else(|| bad("records no head scale".into()))? as f32;
    let names = specs.into_iter().map(|p| p.name);
    Ok((scale, names.zip(tensors.params).collect()))
}

/// The network of a run and its data (one split of the cache).
pub fn prepare(cfg: &RunConfig) -> Result<(Arch, Data), FinetuneError> {
    let (shape, classes) = cache_shape(&cfg.features, cfg.unfreeze)?;
    let data = Data::from_cache(&cfg.features, cfg.split, Some(shape.clone()))?;
    // Block 5's output is not in a block4_pool cache: its runs keep the head's inputs as they are.
    let scale = if cfg.unfreeze == 0 {
        unit_scale(&data)
    } else {
        1.0
    };
    Ok((
        arch_for(&shape, classes, cfg.unfreeze, cfg.hidden, scale),
        data,
    ))
}

/// Trains one split, evaluates the kept parameters on the test rows, exports the inference
/// model and writes `summary.json`. `on_epoch` returning `false` interrupts (resumable).
pub fn run(
    cfg: &RunConfig,
    params: &CheckedParams,
    on_epoch: &mut dyn FnMut(&EpochStats) -> bool,
) -> Result<Summary, FinetuneError> {
    let (mut arch, data) = prepare(cfg)?;
    let mut head = HashMap::new();
    if let Some(dir) = &cfg.init_from {
        (arch.head_scale, head) = trained_head(dir, &arch)?;
    }
    let backbone = Model::load(&cfg.backbone)?;
    let weights = pretrained(&backbone, &arch)?;
    let init = initial_params(&arch, params.seed, &|name| {
        weights.get(name).or_else(|| head.get(name)).cloned()
    })?;
    let outcome = fit(params, &arch, init, &data, &cfg.out, on_epoch)?;
    let (test_loss, test_accuracy) =
        evaluate(&arch, &outcome.best, &data, &data.test, params.threads)?;
    let model = if outcome.ending == Ending::Interrupted {
        None
    } else {
        let path = cfg.out.join("model.onnx");
        inference_model(&backbone, &arch, &outcome.best)?.save(&path)?;
        Some(path)
    };
    let h = &outcome.history;
    let summary = Summary {
        split: cfg.split,
        ending: outcome.ending,
        epochs: h.len(),
        best_epoch: outcome.best_epoch,
        val_accuracy: h
            .get(outcome.best_epoch.wrapping_sub(1))
            .map_or(0.0, |e| e.val_accuracy),
        test_loss,
        test_accuracy,
        seconds_per_epoch: h.iter().map(|e| e.train_seconds).sum::<f64>() / h.len().max(1) as f64,
        rows: [data.train.len(), data.val.len(), data.test.len()],
        model,
        history: outcome.history,
    };
    let path = cfg.out.join("summary.json");
    let text = serde_json::to_string_pretty(&summary).expect("summary serialises") + "\n";
    std::fs::write(&path, text).map_err(|source| FinetuneError::Io { path, source })?;
    Ok(summary)
}
