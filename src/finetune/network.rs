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

/// The tail of VGG16 after the cached layer `layer` (`blockN_pool`, rows of `dims` values).
pub fn tail(layer: &str, dims: usize, unfreeze: Unfreeze) -> Result<Tail, FinetuneError> {
    let block = layer
        .strip_prefix("block")
        .and_then(|rest| rest.strip_suffix("_pool"))
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| (1..=5).contains(n))
        .ok_or_else(|| {
            FinetuneError::Data(format!(
                "fine-tuning starts from a cached VGG16 pooling layer (block3_pool, block4_pool, block5_pool, ...), not {layer}"
            ))
        })?;
    let start = VGG16
        .iter()
        .position(|(name, _, _)| name.starts_with(&format!("block{}_", block + 1)))
        .unwrap_or(VGG16.len());
    let channels = VGG16[start - 1].1;
    let side = (dims / channels).isqrt();
    if side * side * channels != dims {
        return Err(FinetuneError::Data(format!(
            "{layer} rows have {dims} values: not {channels} square maps, as VGG16's {layer} makes"
        )));
    }
    let after: Vec<ConvLayer> = VGG16[start..]
        .iter()
        .map(|&(name, out, pool)| ConvLayer {
            name: name.into(),
            out,
            pool,
        })
        .collect();
    let k = match unfreeze {
        Unfreeze::All => after.len(),
        Unfreeze::Last(k) if k <= after.len() => k,
        Unfreeze::Last(k) => {
            return Err(FinetuneError::Param(format!(
                "--unfreeze {k}: {} convolution(s) follow {layer}; cache an earlier layer to train more",
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
/// head and a softmax on `block5_pool`: one model from image to `probabilities`.
pub fn inference_model(
    backbone: &Model,
    arch: &Arch,
    params: &ParamStore,
) -> Result<Model, FinetuneError> {
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
    add_head(g, arch);
    Ok(model)
}

/// The head's nodes after `block5_pool` (pooling, dense, ReLU, dense, softmax) and the
/// `probabilities` output; its weights are the `head/fc*` initializers.
fn add_head(g: &mut GraphProto, arch: &Arch) {
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
        HeadPool::Flatten => "block5_pool",
        HeadPool::Avg => {
            g.node.push(node(
                "GlobalAveragePool",
                &["block5_pool"],
                "head/avg",
                vec![],
            ));
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
        node(
            "Softmax",
            &["head/logits"],
            super::run::PROBABILITIES,
            axis1(),
        ),
    ]);
    let dims = [
        crate::onnx::Dim::sym("batch"),
        crate::onnx::Dim::Fixed(arch.classes as i64),
    ];
    g.output.push(crate::onnx::value_info(
        super::run::PROBABILITIES,
        crate::onnx::DataType::Float,
        Some(&dims),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::{tensor_raw, DataType, GraphBuilder};

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
