//! The tiny generated models the tests (and the merge benchmark, which includes this file)
//! build with the library's ONNX writer.

use tlearn::onnx::{attr_ints, DataType, Dim, GraphBuilder, Model};

#[path = "lcg.rs"]
mod lcg;
pub use lcg::lcg_values;

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
