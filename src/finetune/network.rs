//! VGG16 as fine-tuning sees it: the convolutions after a cached layer, which of them train,
//! their pretrained weights, running the frozen ones, and the exported inference model.

use std::str::FromStr;

use ndarray::Array2;

use super::data::Data;
use super::graph::{map_dims, Arch, ConvLayer, HeadPool};
use super::store::ParamStore;
use super::FinetuneError;
use crate::backbone::Compute;
use crate::onnx::proto::{GraphProto, NodeProto};
use crate::onnx::Model;
use crate::options::Opt;

/// Output of the exported inference model: class probabilities.
pub const PROBABILITIES: &str = "probabilities";

/// VGG16's convolutions, shallow to deep: Keras layer name, output channels, and whether a 2x2
/// max pooling (`blockN_pool`) follows.
pub const VGG16: [(&str, usize, bool); 13] = [
    ("block1_conv1", 64, false),
    ("block1_conv2", 64, true),
    ("block2_conv1", 128, false),
    ("block2_conv2", 128, true),
    ("block3_conv1", 256, false),
    ("block3_conv2", 256, false),
    ("block3_conv3", 256, true),
    ("block4_conv1", 512, false),
    ("block4_conv2", 512, false),
    ("block4_conv3", 512, true),
    ("block5_conv1", 512, false),
    ("block5_conv2", 512, false),
    ("block5_conv3", 512, true),
];

/// How many of the convolutions after the cached layer train.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfreeze {
    /// The last `k` (0: the head alone).
    Last(usize),
    /// Every convolution after the cached layer.
    All,
}

impl FromStr for Unfreeze {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "all" {
            return Ok(Unfreeze::All);
        }
        s.parse()
            .map(Unfreeze::Last)
            .map_err(|_| format!("`{s}`: a number of convolutions (0 = head only) or `all`"))
    }
}

/// The part of VGG16 after a cached layer, split into frozen and trainable convolutions.
#[derive(Debug, Clone, PartialEq)]
pub struct Tail {
    /// Shape of one cached row, `[C, H, W]`.
    pub input: Vec<usize>,
    /// Convolutions that keep their pretrained weights: run once per row before training.
    pub frozen: Vec<ConvLayer>,
    /// Convolutions that train with the head.
    pub trainable: Vec<ConvLayer>,
}

impl Tail {
    /// Shape of a row after the frozen convolutions: what the training graph takes.
    pub fn trainable_input(&self) -> Vec<usize> {
        map_dims(&self.input, &self.frozen)
    }
}

/// The cached layer that holds the network's input itself (preprocessed images, `[3, H, W]`):
/// a run from it can train every convolution.
pub use crate::backbone::INPUT_LAYER;

/// VGG16's convolutions as [`ConvLayer`]s, shallow to deep.
pub fn vgg16_convs() -> Vec<ConvLayer> {
    VGG16
        .iter()
        .map(|&(name, out, pool)| ConvLayer {
            name: name.into(),
            out,
            pool,
        })
        .collect()
}

/// The tail of VGG16 after the cached layer `layer` (`blockN_pool` or [`INPUT_LAYER`], rows of
/// `dims` values).
pub fn tail(layer: &str, dims: usize, unfreeze: Unfreeze) -> Result<Tail, FinetuneError> {
    tail_in(&vgg16_convs(), layer, dims, unfreeze)
}

/// The tail after the cached layer `layer` of a VGG-like network whose convolutions are
/// `convs` (named `blockB_convC`, shallow to deep, as [`backbone_convs`] reads them): after
/// `blockN_pool`, block N + 1's first convolution on; after [`INPUT_LAYER`], every one.
pub fn tail_in(
    convs: &[ConvLayer],
    layer: &str,
    dims: usize,
    unfreeze: Unfreeze,
) -> Result<Tail, FinetuneError> {
    let (start, channels) = cached_layer(convs, layer)?;
    let side = (dims / channels).isqrt();
    if side * side * channels != dims {
        return Err(FinetuneError::Data(format!(
            "{layer} rows have {dims} values: not {channels} square maps, as the backbone's {layer} makes"
        )));
    }
    let after = &convs[start..];
    let k = match unfreeze {
        Unfreeze::All => after.len(),
        Unfreeze::Last(k) if k <= after.len() => k,
        Unfreeze::Last(k) => {
            return Err(FinetuneError::Param(format!(
                "{} {k}: {} convolution(s) follow {layer}; cache an earlier layer to train more",
                Opt::Unfreeze,
                after.len()
            )))
        }
    };
    let split = after.len() - k;
    Ok(Tail {
        input: vec![channels, side, side],
        trainable: after[split..].to_vec(),
        frozen: after[..split].to_vec(),
    })
}

/// Where the convolutions after `layer` start in `convs`, and the channels of `layer`'s maps
/// (3 for the input: the colour channels).
fn cached_layer(convs: &[ConvLayer], layer: &str) -> Result<(usize, usize), FinetuneError> {
    if layer == INPUT_LAYER {
        return Ok((0, 3));
    }
    let blocks = convs.iter().filter(|c| c.pool).count();
    let refused = || {
        let pools: Vec<String> = (1..=blocks).map(|b| format!("block{b}_pool")).collect();
        FinetuneError::Data(format!(
            "fine-tuning starts from a cached pooling layer of the backbone ({}) or its {INPUT_LAYER}, not {layer}",
            pools.join(", ")
        ))
    };
    let block = layer
        .strip_prefix("block")
        .and_then(|rest| rest.strip_suffix("_pool"))
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| (1..=blocks).contains(n))
        .ok_or_else(refused)?;
    let start = convs
        .iter()
        .position(|c| c.name.starts_with(&format!("block{}_", block + 1)))
        .unwrap_or(convs.len());
    match start {
        0 => Err(refused()),
        _ => Ok((start, convs[start - 1].out)),
    }
}

/// The VGG layer name (`blockB_convC`) of a tensor named by tf2onnx's scopes
/// (`.../blockB_convC_1/...`).
fn vgg_layer_of(tensor: &str) -> Option<String> {
    tensor.split('/').find_map(|part| {
        let name = part.strip_suffix("_1")?;
        let (block, conv) = name.strip_prefix("block")?.split_once("_conv")?;
        (block.parse::<usize>().is_ok() && conv.parse::<usize>().is_ok()).then(|| name.to_string())
    })
}

/// The backbone's convolutions in VGG's naming, in graph order: output channels from their
/// weights, a pooling after each block's last convolution. VGG16's give [`vgg16_convs`]; a
/// smaller VGG-like model (tests) gives its own.
pub fn backbone_convs(model: &Model) -> Result<Vec<ConvLayer>, FinetuneError> {
    let mut convs: Vec<ConvLayer> = Vec::new();
    for node in model.graph().node.iter().filter(|n| n.op_type() == "Conv") {
        let Some(name) = node.output.iter().find_map(|o| vgg_layer_of(o)) else {
            continue;
        };
        let weights = node.input.get(1).and_then(|w| model.initializer(w));
        let out = weights.and_then(|w| w.dims.first()).copied().unwrap_or(0);
        if out <= 0 {
            return Err(FinetuneError::Arch(format!(
                "the backbone's convolution {name} has no weights of known shape"
            )));
        }
        let block = |c: &str| c.split('_').next().unwrap_or("").to_string();
        if let Some(last) = convs.last_mut() {
            last.pool = block(&last.name) != block(&name);
        }
        convs.push(ConvLayer {
            name,
            out: out as usize,
            pool: true,
        });
    }
    if convs.is_empty() {
        return Err(FinetuneError::Arch(
            "the backbone has no convolutions named like VGG's (blockB_convC)".into(),
        ));
    }
    Ok(convs)
}

/// The Conv node of Keras layer `layer` (its output is named `.../LAYER_1/...` by tf2onnx).
fn conv_node<'m>(model: &'m Model, layer: &str) -> Result<&'m NodeProto, FinetuneError> {
    let scoped = format!("/{layer}_1/");
    model
        .graph()
        .node
        .iter()
        .find(|n| n.op_type() == "Conv" && n.output.iter().any(|o| o.contains(&scoped)))
        .ok_or_else(|| FinetuneError::Arch(format!("the backbone has no convolution {layer}")))
}

/// Pretrained weights and biases of `convs`, by parameter name (`NAME.w`, `NAME.b`), with the
/// backbone's shapes.
pub fn pretrained(model: &Model, convs: &[ConvLayer]) -> Result<ParamStore, FinetuneError> {
    // An int8 backbone's weights are int8 behind DequantizeLinear: nothing to train from.
    if model
        .graph()
        .node
        .iter()
        .any(|n| n.op_type() == "DequantizeLinear")
    {
        return Err(FinetuneError::Arch(
            "the backbone is quantised (int8): fine-tune from its fp32 original, e.g. models/vgg16.onnx".into(),
        ));
    }
    let mut out = ParamStore::new();
    for c in convs {
        let node = conv_node(model, &c.name)?;
        for (suffix, input) in [("w", &node.input[1]), ("b", &node.input[2])] {
            let (dims, values) = model.initializer_f32_shaped(input)?;
            out.insert(&format!("{}.{suffix}", c.name), dims, values)?;
        }
    }
    Ok(out)
}

/// Rows `rows` of `data` through `graph` (one input `x`, one output `y`, as
/// [`super::graph::convs_graph`] writes), in batches: row `i` of the result is `rows[i]`'s.
pub fn forward_rows(
    graph: &Model,
    data: &Data,
    rows: &[usize],
    compute: Compute,
) -> Result<Array2<f32>, FinetuneError> {
    const BATCH: usize = 16;
    let mut session = super::session(graph, compute)?;
    let mut out: Option<Array2<f32>> = None;
    for (b, chunk) in rows.chunks(BATCH).enumerate() {
        let (x, _) = data.batch(chunk);
        let shape: Vec<i64> = std::iter::once(chunk.len() as i64)
            .chain(data.shape.iter().map(|&d| d as i64))
            .collect();
        let input = ort::value::Tensor::from_array((shape, x))?;
        let result = session.run(ort::inputs!["x" => input])?;
        let (_, y) = result["y"].try_extract_tensor::<f32>()?;
        let width = y.len() / chunk.len();
        let out = out.get_or_insert_with(|| Array2::zeros((rows.len(), width)));
        let at = b * BATCH;
        out.slice_mut(ndarray::s![at..at + chunk.len(), ..])
            .as_slice_mut()
            .expect("rows are contiguous")
            .copy_from_slice(y);
    }
    Ok(out.unwrap_or_else(|| Array2::zeros((0, 0))))
}

/// The backbone with `arch`'s trained convolutions written in, then the head's pooling, the
/// head and a softmax on its deepest pooling (VGG16: `block5_pool`): one model from image to
/// `probabilities`.
pub fn inference_model(
    backbone: &Model,
    arch: &Arch,
    params: &ParamStore,
) -> Result<Model, FinetuneError> {
    // A backbone without VGG-named convolutions (a cut model whose head trains alone) keeps
    // VGG16's name for the deepest pooling.
    let deepest = backbone_convs(backbone)
        .ok()
        .and_then(|convs| convs.last().cloned())
        .and_then(|c| c.name.split('_').next().map(|b| format!("{b}_pool")))
        .unwrap_or_else(|| "block5_pool".into());
    let mut model = backbone.clone();
    let specs = arch.params();
    params.check(&specs)?;
    let value = |name: &str| params.get(name).map_or(&[][..], |t| &t.values);
    for c in &arch.convs {
        let node = conv_node(&model, &c.name)?;
        let (w, b) = (node.input[1].clone(), node.input[2].clone());
        model.set_initializer_f32(&w, value(&format!("{}.w", c.name)))?;
        model.set_initializer_f32(&b, value(&format!("{}.b", c.name)))?;
    }
    let g = model.graph_mut();
    g.output.clear();
    for p in specs.iter().filter(|p| p.name.starts_with("fc")) {
        let dims: Vec<i64> = p.dims.iter().map(|&d| d as i64).collect();
        let mut values = value(&p.name).to_vec();
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
    add_head(g, arch, &deepest);
    Ok(model)
}

/// The head's nodes after the pooling output `pool` (pooling, dense, ReLU, dense, softmax) and
/// the `probabilities` output; its weights are the `head/fc*` initializers.
fn add_head(g: &mut GraphProto, arch: &Arch, pool: &str) {
    let node = |op: &str, inputs: &[&str], output: &str, attrs| NodeProto {
        name: Some(format!("head/{output}")),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute: attrs,
        ..Default::default()
    };
    let axis1 = || vec![crate::onnx::attr_int("axis", 1)];
    let map = match arch.pool {
        HeadPool::Flatten => pool,
        HeadPool::Avg => {
            g.node
                .push(node("GlobalAveragePool", &[pool], "head/avg", vec![]));
            "head/avg"
        }
    };
    let fc1 = ["head/flat", "head/fc1.w", "head/fc1.b"];
    let fc2 = ["head/hidden", "head/fc2.w", "head/fc2.b"];
    g.node.extend([
        node("Flatten", &[map], "head/flat", axis1()),
        node("Gemm", &fc1, "head/fc1", vec![]),
        node("Relu", &["head/fc1"], "head/hidden", vec![]),
        node("Gemm", &fc2, "head/logits", vec![]),
        node("Softmax", &["head/logits"], PROBABILITIES, axis1()),
    ]);
    let dims = [
        crate::onnx::Dim::sym("batch"),
        crate::onnx::Dim::Fixed(arch.classes as i64),
    ];
    g.output.push(crate::onnx::value_info(
        PROBABILITIES,
        crate::onnx::DataType::Float,
        Some(&dims),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::{tensor_raw, DataType, GraphBuilder};

    #[test]
    fn tf2onnx_scopes_name_vgg_layers() {
        let name = "functional_1/block5_conv3_1/convolution:0";
        assert_eq!(vgg_layer_of(name).as_deref(), Some("block5_conv3"));
        assert_eq!(vgg_layer_of("functional_1/block5_pool_1/MaxPool2d:0"), None);
        assert_eq!(vgg_layer_of("blockx_conv1_1/a"), None);
    }

    #[test]
    fn an_int8_backbone_is_refused_with_the_fp32_advice() {
        let mut b = GraphBuilder::new("int8");
        b.initializer(tensor_raw("q", DataType::Int8, &[2], vec![1, 2]));
        b.initializer_f32("s", &[0.5], &[]);
        b.node("DequantizeLinear", &["q", "s"], &["w"], vec![]);
        b.output_unshaped("w", DataType::Float);
        let model = b.build(13).unwrap();
        let err = pretrained(&model, &[]).unwrap_err().to_string();
        assert!(err.contains("quantised") && err.contains("fp32"), "{err}");
    }
}
