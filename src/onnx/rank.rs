//! Tensor rank propagation: enough shape knowledge to declare cut outputs.
//!
//! The ONNX checker wants every graph output to carry a shape, and exporters
//! rarely record intermediate shapes, so ranks are derived from the inputs
//! through the ops image backbones are made of. Anything else stays unknown.

use std::collections::HashMap;

use super::proto::{GraphProto, NodeProto};
use super::tensor::dims_of;

/// Ops whose first output has the rank of their first input.
const RANK_PRESERVING: &[&str] = &[
    "Abs",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Clip",
    "Conv",
    "ConvTranspose",
    "Dropout",
    "Elu",
    "Erf",
    "Exp",
    "Gelu",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "InstanceNormalization",
    "LRN",
    "LayerNormalization",
    "LeakyRelu",
    "Log",
    "LogSoftmax",
    "LpPool",
    "MaxPool",
    "Neg",
    "Pad",
    "PRelu",
    "Relu",
    "Resize",
    "Selu",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Sqrt",
    "Tanh",
    "Transpose",
    "Upsample",
    "Concat",
];

/// Ops that broadcast their inputs together (output rank = largest input rank).
const BROADCASTING: &[&str] = &[
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mean", "Sum", "Where", "Equal", "Greater",
    "Less",
];

/// Ranks of every tensor whose rank follows from declarations and the ops above.
pub(crate) fn infer_ranks(g: &GraphProto) -> HashMap<String, usize> {
    let mut ranks: HashMap<String, usize> = HashMap::new();
    for v in g.input.iter().chain(&g.value_info).chain(&g.output) {
        if let Some(d) = dims_of(v) {
            ranks.insert(v.name().to_string(), d.len());
        }
    }
    for t in &g.initializer {
        ranks.insert(t.name().to_string(), t.dims.len());
    }
    for n in &g.node {
        let Some(out) = n.output.first().filter(|o| !ranks.contains_key(*o)) else {
            continue;
        };
        if let Some(r) = node_rank(n, g, &ranks) {
            ranks.insert(out.clone(), r);
        }
    }
    ranks
}

fn node_rank(n: &NodeProto, g: &GraphProto, ranks: &HashMap<String, usize>) -> Option<usize> {
    let rank_of = |i: usize| n.input.get(i).and_then(|s| ranks.get(s)).copied();
    let op = n.op_type();
    if !n.domain().is_empty() {
        return None;
    }
    if RANK_PRESERVING.contains(&op) {
        return rank_of(0);
    }
    if BROADCASTING.contains(&op) {
        let known: Option<Vec<usize>> = (0..n.input.len()).map(rank_of).collect();
        return known?.into_iter().max();
    }
    match op {
        "Flatten" | "Gemm" => Some(2),
        "Shape" => Some(1),
        "MatMul" => match (rank_of(0)?, rank_of(1)?) {
            (a, b) if a >= 2 && b >= 2 => Some(a.max(b)),
            _ => None,
        },
        // The target shape is a 1-D constant; its length is the output rank.
        "Reshape" => {
            let shape = g
                .initializer
                .iter()
                .find(|t| Some(t.name()) == n.input.get(1).map(String::as_str))?;
            match shape.dims.as_slice() {
                [len] => usize::try_from(*len).ok(),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::{attr_ints, DataType, Dim, GraphBuilder};

    #[test]
    fn ranks_follow_backbone_ops() {
        let mut b = GraphBuilder::new("g");
        b.input(
            "x",
            DataType::Float,
            &[Dim::sym("n"), 3.into(), 8.into(), 8.into()],
        );
        b.initializer_f32("w", &[0.0; 12], &[4, 3, 1, 1]);
        b.initializer_i64("shape", &[-1, 256], &[2]);
        b.initializer_f32("m", &[0.0; 512], &[256, 2]);
        b.node("Conv", &["x", "w"], &["c"], vec![]);
        b.node(
            "MaxPool",
            &["c"],
            &["p"],
            vec![attr_ints("kernel_shape", &[1, 1])],
        );
        b.node("Reshape", &["p", "shape"], &["f"], vec![]);
        b.node("MatMul", &["f", "m"], &["y"], vec![]);
        b.node("Unsqueeze", &["y"], &["u"], vec![]);
        let m = b.build(13).unwrap();
        let ranks = infer_ranks(m.graph());
        assert_eq!(
            (ranks["c"], ranks["p"], ranks["f"], ranks["y"]),
            (4, 4, 2, 2)
        );
        assert!(!ranks.contains_key("u"));
    }
}
