//! Helpers shared by the integration tests; each test binary uses only some of them.
#![allow(dead_code)]

use tlearn::onnx::{attr_int, attr_ints, DataType, Dim, GraphBuilder, Model};

/// Deterministic pseudo-random values in [-scale, scale): tests need fixed weights, not good ones.
pub fn lcg_values(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            // Knuth's MMIX constants; the top 24 bits are the best mixed.
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let unit = (state >> 40) as f32 / (1u64 << 24) as f32;
            (unit * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Adds Conv 3x3 pad 1 + Relu + MaxPool 2x2/2 reading `input`, writing `pool`.
fn onnx_conv_block(
    b: &mut GraphBuilder,
    prefix: &str,
    input: &str,
    cin: i64,
    cout: i64,
    pool: &str,
) {
    let (w, bias) = (format!("{prefix}_W"), format!("{prefix}_B"));
    let seed = prefix.bytes().map(u64::from).sum::<u64>();
    b.initializer_f32(
        &w,
        &lcg_values(seed, (cout * cin * 9) as usize, 0.5),
        &[cout, cin, 3, 3],
    );
    b.initializer_f32(&bias, &lcg_values(seed + 1, cout as usize, 0.05), &[cout]);
    let (conv, relu) = (format!("{prefix}_conv"), format!("{prefix}_relu"));
    b.node(
        "Conv",
        &[input, &w, &bias],
        &[&conv],
        vec![
            attr_ints("kernel_shape", &[3, 3]),
            attr_ints("pads", &[1, 1, 1, 1]),
        ],
    );
    b.node("Relu", &[&conv], &[&relu], vec![]);
    b.node(
        "MaxPool",
        &[&relu],
        &[pool],
        vec![
            attr_ints("kernel_shape", &[2, 2]),
            attr_ints("strides", &[2, 2]),
        ],
    );
}

/// A two-block VGG-like NCHW model: input `input` [batch, 3, height, width],
/// outputs `block1_pool` (4 channels) and `block2_pool` (8 channels).
pub fn tiny_vgg() -> Model {
    let mut b = GraphBuilder::new("tiny_vgg");
    let sym = Dim::sym;
    b.input(
        "input",
        DataType::Float,
        &[sym("batch"), 3.into(), sym("height"), sym("width")],
    );
    onnx_conv_block(&mut b, "block1", "input", 3, 4, "block1_pool");
    onnx_conv_block(&mut b, "block2", "block1_pool", 4, 8, "block2_pool");
    b.output(
        "block1_pool",
        DataType::Float,
        &[sym("batch"), 4.into(), sym("h1"), sym("w1")],
    );
    b.output(
        "block2_pool",
        DataType::Float,
        &[sym("batch"), 8.into(), sym("h2"), sym("w2")],
    );
    b.build(13).expect("tiny_vgg is a valid graph")
}

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
