//! Helpers shared by the integration tests; each test binary uses only some of them.
#![allow(dead_code)]

use tlearn::onnx::{attr_int, attr_ints, DataType, Dim, GraphBuilder, Model};

pub mod models;
pub use models::{lcg_values, tiny_vgg};

/// Names used by [`tiny_nhwc_model`], mimicking tf2onnx's scoped `:0` tensor names.
pub mod nhwc_names {
    /// The NHWC image input.
    pub const INPUT: &str = "input";
    /// Output of the input's NHWC->NCHW transpose.
    pub const TRANSPOSED: &str = "model/conv/BiasAdd__6:0";
    /// Output of the Relu (has a recorded value info).
    pub const RELU: &str = "model/conv/Relu:0";
    /// Output of the MaxPool, NCHW: where a feature extractor is cut.
    pub const POOL: &str = "model/pool/MaxPool2d:0";
    /// Output of the flatten Reshape (has a recorded value info).
    pub const FLAT: &str = "model/flatten/Reshape:0";
    /// Classifier head output.
    pub const HEAD: &str = "dense";
}

/// A tf2onnx-like classifier: NHWC input `input` [unk__9, 8, 8, 3] -> Transpose [0,3,1,2]
/// -> Conv -> Relu -> MaxPool -> Transpose back -> Reshape [-1, 64] -> MatMul head `dense`.
pub fn tiny_nhwc_model() -> Model {
    use nhwc_names::*;
    let mut b = GraphBuilder::new("tf2onnx");
    let n = || Dim::sym("unk__9");
    b.input(INPUT, DataType::Float, &[n(), 8.into(), 8.into(), 3.into()]);
    b.initializer_f32(
        "model/conv/W:0",
        &lcg_values(1, 4 * 3 * 9, 0.5),
        &[4, 3, 3, 3],
    );
    b.initializer_f32("model/conv/B:0", &lcg_values(2, 4, 0.05), &[4]);
    b.initializer_i64("model/flatten/shape:0", &[-1, 64], &[2]);
    b.initializer_f32("model/dense/W:0", &lcg_values(3, 64 * 2, 0.1), &[64, 2]);
    b.node(
        "Transpose",
        &[INPUT],
        &[TRANSPOSED],
        vec![attr_ints("perm", &[0, 3, 1, 2])],
    );
    b.node(
        "Conv",
        &[TRANSPOSED, "model/conv/W:0", "model/conv/B:0"],
        &["model/conv/BiasAdd:0"],
        vec![
            attr_ints("kernel_shape", &[3, 3]),
            attr_ints("pads", &[1, 1, 1, 1]),
            attr_int("group", 1),
        ],
    );
    b.node("Relu", &["model/conv/BiasAdd:0"], &[RELU], vec![]);
    b.node(
        "MaxPool",
        &[RELU],
        &[POOL],
        vec![
            attr_ints("kernel_shape", &[2, 2]),
            attr_ints("strides", &[2, 2]),
        ],
    );
    b.node(
        "Transpose",
        &[POOL],
        &["model/pool/MaxPool2d__9:0"],
        vec![attr_ints("perm", &[0, 2, 3, 1])],
    );
    b.node(
        "Reshape",
        &["model/pool/MaxPool2d__9:0", "model/flatten/shape:0"],
        &[FLAT],
        vec![],
    );
    b.node("MatMul", &[FLAT, "model/dense/W:0"], &[HEAD], vec![]);
    b.value_info(RELU, DataType::Float, &[n(), 4.into(), 8.into(), 8.into()]);
    b.value_info(FLAT, DataType::Float, &[n(), 64.into()]);
    b.output(HEAD, DataType::Float, &[n(), 2.into()]);
    b.build(13).expect("tiny_nhwc_model is a valid graph")
}

pub mod contents;
pub mod fixtures;
