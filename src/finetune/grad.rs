//! Forward and backward builders of the operators a VGG tail and its head are made of, written
//! with standard ONNX operators only (opset [`OPSET`]) so that any ONNX Runtime build runs them.
//!
//! Every builder appends nodes to an [`Ops`] and returns the names of the tensors it made. The
//! backward builders take the upstream gradient `dy` and return the gradients of the inputs.

use std::collections::HashSet;

use serde::Serialize;

use crate::onnx::{attr_int, attr_ints, DataType, GraphBuilder};

/// Opset of every graph tlearn writes (ScatterElements' `reduction` needs 16; 17 is widely read).
pub const OPSET: i64 = 17;

/// A [`GraphBuilder`] plus fresh tensor names and shared constants.
pub struct Ops {
    /// The graph being written.
    pub g: GraphBuilder,
    next: usize,
    constants: HashSet<String>,
}

impl Ops {
    /// Starts an empty graph called `name`.
    pub fn new(name: &str) -> Self {
        Self {
            g: GraphBuilder::new(name),
            next: 0,
            constants: HashSet::new(),
        }
    }

    /// A tensor name no other call returns; `stem` only helps reading the graph.
    pub fn fresh(&mut self, stem: &str) -> String {
        self.next += 1;
        format!("{stem}__{}", self.next)
    }

    /// Appends a one-output node and returns its output's name.
    pub fn op(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<crate::onnx::proto::AttributeProto>,
    ) -> String {
        let out = self.fresh(&op.to_lowercase());
        self.g.node(op, inputs, &[&out], attrs);
        out
    }

    /// An i64 constant shared by every node that needs the same values (axes, shapes).
    pub fn ints(&mut self, values: &[i64]) -> String {
        let text: Vec<String> = values.iter().map(i64::to_string).collect();
        let name = format!("const_i64[{}]", text.join(","));
        if self.constants.insert(name.clone()) {
            self.g
                .initializer_i64(&name, values, &[values.len() as i64]);
        }
        name
    }

    /// A scalar f32 constant, shared like [`Self::ints`].
    pub fn scalar(&mut self, value: f32) -> String {
        let name = format!("const_f32[{value:e}]");
        if self.constants.insert(name.clone()) {
            self.g.initializer_f32(&name, &[value], &[]);
        }
        name
    }
}

/// Convolution hyper-parameters: square kernel `kernel`, stride 1, `pad` zeros on every side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Kernel side.
    pub kernel: i64,
    /// Zero padding on each side; `kernel = 2 pad + 1` keeps the map size (VGG's 3x3 pad 1).
    pub pad: i64,
}

impl ConvShape {
    /// VGG's 3x3 convolution with one pixel of padding.
    pub const VGG: ConvShape = ConvShape { kernel: 3, pad: 1 };

    fn attrs(self) -> Vec<crate::onnx::proto::AttributeProto> {
        vec![
            attr_ints("kernel_shape", &[self.kernel, self.kernel]),
            attr_ints("pads", &[self.pad; 4]),
            attr_ints("strides", &[1, 1]),
        ]
    }
}

/// `Conv(x, w, b)`; `w` is `[out, in, k, k]`.
pub fn conv(ops: &mut Ops, x: &str, w: &str, b: &str, shape: ConvShape) -> String {
    ops.op("Conv", &[x, w, b], shape.attrs())
}

/// How [`conv_backward`] writes a convolution's gradients as ONNX operators.
///
/// All give the same values (within float rounding; the tests check each against finite
/// differences). [`ConvGrad::Volume`] is what training uses: on ONNX Runtime's CPU kernels its
/// input gradient costs what the forward Conv costs and its weight gradient one large GEMM
/// whose patches ONNX Runtime's Conv gathers itself, piece by piece. [`ConvGrad::Im2col`]
/// materialises those patches with standard operators first, and [`ConvGrad::Transposed`] (the
/// first formulation) spends about 1.25x and 2-2.7x the forward Conv on the two gradients; both
/// are kept as the bench's baselines (`tlearn finetune bench`, README).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConvGrad {
    /// Input gradient as in [`ConvGrad::Im2col`]; weight gradient as one 3-D convolution: the
    /// batch becomes the channels, the input channels a depth axis the kernel does not slide
    /// along, and `dy` the map-sized kernel, so the `[out, in, k, k]` result is one GEMM over
    /// batch and map (ONNX Runtime's vol2col feeds it without a `k * k` copy of the input).
    #[default]
    Volume,
    /// Input gradient as a Conv of `dy` with the spatially flipped, in/out-swapped kernel; weight
    /// gradient as one GEMM of `dy` (batch and map flattened) with the patches of `x` (im2col
    /// written as `k * k` shifted slices of the padded input).
    Im2col,
    /// Input gradient as a ConvTranspose of `dy` with the kernel; weight gradient as a Conv over
    /// the batch (batch and channels swapped: a map-sized kernel, a `k x k` output per pair).
    Transposed,
}

/// Gradients of [`conv`]: `(dx, dw, db)`; `dx` only when `need_dx` (a frozen input needs none).
/// Stride 1 only, as [`conv`].
pub fn conv_backward(
    ops: &mut Ops,
    x: &str,
    w: &str,
    dy: &str,
    shape: ConvShape,
    need_dx: bool,
) -> (Option<String>, String, String) {
    conv_backward_as(ConvGrad::default(), ops, x, w, dy, shape, need_dx)
}

/// [`conv_backward`] written the way `how` says.
pub fn conv_backward_as(
    how: ConvGrad,
    ops: &mut Ops,
    x: &str,
    w: &str,
    dy: &str,
    shape: ConvShape,
    need_dx: bool,
) -> (Option<String>, String, String) {
    let weight_grad = match how {
        ConvGrad::Volume => conv_weight_grad_volume,
        ConvGrad::Im2col => conv_weight_grad_im2col,
        ConvGrad::Transposed => return conv_backward_transposed(ops, x, w, dy, shape, need_dx),
    };
    let dx = need_dx.then(|| conv_input_grad(ops, w, dy, shape));
    let (dw, db) = weight_grad(ops, x, dy, shape);
    (dx, dw, db)
}

/// `dx` as a convolution of `dy` with `w` flipped in both spatial axes and with its input and
/// output channels swapped, padded `k - 1 - pad`: the "full" correlation that undoes [`conv`]'s.
fn conv_input_grad(ops: &mut Ops, w: &str, dy: &str, shape: ConvShape) -> String {
    let starts = ops.ints(&[-1, -1]);
    let ends = ops.ints(&[i64::MIN, i64::MIN]);
    let axes = ops.ints(&[2, 3]);
    let steps = ops.ints(&[-1, -1]);
    let flipped = ops.op("Slice", &[w, &starts, &ends, &axes, &steps], vec![]);
    let swapped = ops.op(
        "Transpose",
        &[&flipped],
        vec![attr_ints("perm", &[1, 0, 2, 3])],
    );
    let full = ConvShape {
        kernel: shape.kernel,
        pad: shape.kernel - 1 - shape.pad,
    };
    ops.op("Conv", &[dy, &swapped], full.attrs())
}

/// `(dw, db)` as one 3-D convolution. `x` `[N, in, H, W]` read as one `[1, N, in, H, W]` volume
/// (batch as channels, input channels as depth) and `dy` `[N, out, Ho, Wo]` as `out` kernels of
/// `[N, 1, Ho, Wo]`: each output `[1, out, in, k, k]` sums `dy` times the `x` window shifted by
/// `(kh, kw)` over batch and map with the forward padding, which is `dw`; no reordering needed.
fn conv_weight_grad_volume(ops: &mut Ops, x: &str, dy: &str, shape: ConvShape) -> (String, String) {
    let front = ops.ints(&[0]);
    let volume = ops.op("Unsqueeze", &[x, &front], vec![]);
    let dyt = ops.op("Transpose", &[dy], vec![attr_ints("perm", &[1, 0, 2, 3])]);
    let depth = ops.ints(&[2]);
    let kernels = ops.op("Unsqueeze", &[&dyt, &depth], vec![]);
    let p = shape.pad;
    let pads = vec![attr_ints("pads", &[0, p, p, 0, p, p])];
    let dw5 = ops.op("Conv", &[&volume, &kernels], pads);
    let dw = ops.op("Squeeze", &[&dw5, &front], vec![]);
    let sum_axes = ops.ints(&[1, 2, 3]);
    let db = ops.op(
        "ReduceSum",
        &[&dyt, &sum_axes],
        vec![attr_int("keepdims", 0)],
    );
    (dw, db)
}

/// `(dw, db)` as one GEMM: with batch and channels swapped and the positions flattened, `dy`
/// is `[out, N H W]` and the `k * k` shifted views of the padded `x` stacked are
/// `[k k in, N H W]`; their product is `[out, k k in]`, reordered to `[out, in, k, k]`. `db` sums
/// the same `[out, N H W]` rows.
fn conv_weight_grad_im2col(ops: &mut Ops, x: &str, dy: &str, shape: ConvShape) -> (String, String) {
    let swap = || vec![attr_ints("perm", &[1, 0, 2, 3])];
    let rows = ops.ints(&[0, -1]);
    let dyt = ops.op("Transpose", &[dy], swap());
    let dy_rows = ops.op("Reshape", &[&dyt, &rows], vec![]);
    let xt = ops.op("Transpose", &[x], swap());
    let (k, p) = (shape.kernel, shape.pad);
    let pads = ops.ints(&[0, 0, p, p, 0, 0, p, p]);
    let padded = ops.op("Pad", &[&xt, &pads], vec![]);
    let axes = ops.ints(&[2, 3]);
    // Shift (i, j) keeps rows i .. Hp - (k - 1 - i) of the padded map: the output's size.
    let end = |i: i64| if i == k - 1 { i64::MAX } else { i - (k - 1) };
    let mut shifts = Vec::new();
    for i in 0..k {
        for j in 0..k {
            let starts = ops.ints(&[i, j]);
            let ends = ops.ints(&[end(i), end(j)]);
            shifts.push(ops.op("Slice", &[&padded, &starts, &ends, &axes], vec![]));
        }
    }
    let shifts: Vec<&str> = shifts.iter().map(String::as_str).collect();
    let stacked = ops.op("Concat", &shifts, vec![attr_int("axis", 0)]);
    let patches = ops.op("Reshape", &[&stacked, &rows], vec![]);
    let dw_rows = ops.op("Gemm", &[&dy_rows, &patches], vec![attr_int("transB", 1)]);
    let kk_in = ops.ints(&[0, k, k, -1]);
    let dw_kk = ops.op("Reshape", &[&dw_rows, &kk_in], vec![]);
    let dw = ops.op(
        "Transpose",
        &[&dw_kk],
        vec![attr_ints("perm", &[0, 3, 1, 2])],
    );
    let axis1 = ops.ints(&[1]);
    let db = ops.op(
        "ReduceSum",
        &[&dy_rows, &axis1],
        vec![attr_int("keepdims", 0)],
    );
    (dw, db)
}

/// [`ConvGrad::Transposed`]: the input gradient is the transposed convolution of `dy` with the
/// same kernel. The weight gradient is a convolution over the batch: with batch and channels
/// swapped, `x` becomes `in` images of `N` channels and `dy` becomes `out` kernels of `N`
/// channels and map size; their convolution with the forward padding is `[in, out, k, k]`, the
/// transposed weight gradient.
fn conv_backward_transposed(
    ops: &mut Ops,
    x: &str,
    w: &str,
    dy: &str,
    shape: ConvShape,
    need_dx: bool,
) -> (Option<String>, String, String) {
    let dx = need_dx.then(|| ops.op("ConvTranspose", &[dy, w], shape.attrs()));
    let swap = || vec![attr_ints("perm", &[1, 0, 2, 3])];
    let xt = ops.op("Transpose", &[x], swap());
    let dyt = ops.op("Transpose", &[dy], swap());
    let dwt = ops.op(
        "Conv",
        &[&xt, &dyt],
        vec![
            attr_ints("pads", &[shape.pad; 4]),
            attr_ints("strides", &[1, 1]),
        ],
    );
    let dw = ops.op("Transpose", &[&dwt], swap());
    let axes = ops.ints(&[0, 2, 3]);
    let db = ops.op("ReduceSum", &[dy, &axes], vec![attr_int("keepdims", 0)]);
    (dx, dw, db)
}

/// `Relu(x)`.
pub fn relu(ops: &mut Ops, x: &str) -> String {
    ops.op("Relu", &[x], vec![])
}

/// Gradient of [`relu`] from its output `y`: `dy` where `y > 0`, else 0 (0 at the kink).
///
/// Written as `dy * float(y > 0)`: ONNX Runtime's Cast and Mul take about half the time of a
/// broadcasting Where on block 5's maps.
pub fn relu_backward(ops: &mut Ops, y: &str, dy: &str) -> String {
    let zero = ops.scalar(0.0);
    let positive = ops.op("Greater", &[y, &zero], vec![]);
    let float = DataType::Float as i64;
    let mask = ops.op("Cast", &[&positive], vec![attr_int("to", float)]);
    ops.op("Mul", &[dy, &mask], vec![])
}

/// 2x2 max pooling with stride 2: `(y, indices)`, the indices for [`max_pool_backward`].
pub fn max_pool(ops: &mut Ops, x: &str) -> (String, String) {
    let y = ops.fresh("maxpool");
    let indices = ops.fresh("maxpool_indices");
    ops.g.node(
        "MaxPool",
        &[x],
        &[&y, &indices],
        vec![
            attr_ints("kernel_shape", &[2, 2]),
            attr_ints("strides", &[2, 2]),
        ],
    );
    (y, indices)
}

/// Gradient of [`max_pool`]: each window's gradient goes to the element MaxPool picked.
///
/// MaxPool's `Indices` output (flat offsets into the whole NCHW input) says which element that
/// was, so ties go to exactly one element, like in the forward pass; comparing the input with
/// the upsampled output instead would give the gradient to every tied element, and ties are
/// common after a ReLU (windows of zeros). Windows do not overlap, so no index repeats.
pub fn max_pool_backward(ops: &mut Ops, x: &str, indices: &str, dy: &str) -> String {
    let flat = ops.ints(&[-1]);
    let size = ops.op("Size", &[x], vec![]);
    let one = ops.ints(&[1]);
    let size1 = ops.op("Reshape", &[&size, &one], vec![]);
    // ConstantOfShape's default value is a float 0.
    let zeros = ops.op("ConstantOfShape", &[&size1], vec![]);
    let idx = ops.op("Reshape", &[indices, &flat], vec![]);
    let upd = ops.op("Reshape", &[dy, &flat], vec![]);
    let scattered = ops.op(
        "ScatterElements",
        &[&zeros, &idx, &upd],
        vec![attr_int("axis", 0)],
    );
    let shape = ops.op("Shape", &[x], vec![]);
    ops.op("Reshape", &[&scattered, &shape], vec![])
}

/// `Flatten(x)` to `[N, rest]`.
pub fn flatten(ops: &mut Ops, x: &str) -> String {
    ops.op("Flatten", &[x], vec![attr_int("axis", 1)])
}

/// Gradient of [`flatten`]: `dy` back in the shape of `x`.
pub fn flatten_backward(ops: &mut Ops, x: &str, dy: &str) -> String {
    let shape = ops.op("Shape", &[x], vec![]);
    ops.op("Reshape", &[dy, &shape], vec![])
}

/// Global average pooling of an `[N, C, H, W]` map to `[N, C]`.
pub fn global_avg_pool(ops: &mut Ops, x: &str) -> String {
    let pooled = ops.op("GlobalAveragePool", &[x], vec![]);
    flatten(ops, &pooled)
}

/// Gradient of [`global_avg_pool`]: `dy / area` spread over every position of `x`, whose
/// maps have `area` = H * W positions.
pub fn global_avg_pool_backward(ops: &mut Ops, x: &str, dy: &str, area: usize) -> String {
    let axes = ops.ints(&[2, 3]);
    let dy4 = ops.op("Unsqueeze", &[dy, &axes], vec![]);
    let shape = ops.op("Shape", &[x], vec![]);
    let spread = ops.op("Expand", &[&dy4, &shape], vec![]);
    let scale = ops.scalar(1.0 / area as f32);
    ops.op("Mul", &[&spread, &scale], vec![])
}

/// Fully connected layer `x w + b`; `w` is `[in, out]`.
pub fn dense(ops: &mut Ops, x: &str, w: &str, b: &str) -> String {
    ops.op("Gemm", &[x, w, b], vec![])
}

/// Gradients of [`dense`]: `(dx, dw, db)`, `dx` only when `need_dx`.
pub fn dense_backward(
    ops: &mut Ops,
    x: &str,
    w: &str,
    dy: &str,
    need_dx: bool,
) -> (Option<String>, String, String) {
    let dx = need_dx.then(|| ops.op("Gemm", &[dy, w], vec![attr_int("transB", 1)]));
    let dw = ops.op("Gemm", &[x, dy], vec![attr_int("transA", 1)]);
    let axes = ops.ints(&[0]);
    let db = ops.op("ReduceSum", &[dy, &axes], vec![attr_int("keepdims", 0)]);
    (dx, dw, db)
}

/// Dropout with its mask as an input: `x * mask`, the mask holding 0 or `1 / (1 - rate)`.
///
/// A mask made by the caller (from a seeded RNG) makes a training step a pure function of its
/// inputs: reproducible, resumable and checkable by finite differences.
pub fn dropout(ops: &mut Ops, x: &str, mask: &str) -> String {
    ops.op("Mul", &[x, mask], vec![])
}

/// Gradient of [`dropout`]: `dy * mask`.
pub fn dropout_backward(ops: &mut Ops, mask: &str, dy: &str) -> String {
    ops.op("Mul", &[dy, mask], vec![])
}

/// Tensors made by [`softmax_cross_entropy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LossTensors {
    /// Mean cross-entropy over the batch, a scalar.
    pub loss: String,
    /// Gradient of the loss with respect to the logits, `[N, K]`.
    pub dlogits: String,
    /// Number of rows whose arg-max is the label, an i64 scalar.
    pub correct: String,
    /// Softmax probabilities, `[N, K]`.
    pub probabilities: String,
}

/// Mean softmax cross-entropy of `logits` `[N, K]` against i64 `labels` `[N]`, and its gradient
/// `(softmax - onehot) / N`.
pub fn softmax_cross_entropy(
    ops: &mut Ops,
    logits: &str,
    labels: &str,
    classes: usize,
) -> LossTensors {
    softmax_cross_entropy_smoothed(ops, logits, labels, classes, 0.0)
}

/// Targets of label smoothing `smoothing` among `classes`: `(off, on)`, the probability every
/// other class and the labelled class get (`smoothing / K` and `1 - smoothing + smoothing / K`).
pub fn smoothed_targets(smoothing: f32, classes: usize) -> (f32, f32) {
    let off = smoothing / classes as f32;
    (off, 1.0 - smoothing + off)
}

/// [`softmax_cross_entropy`] against label-smoothed targets: the labelled class gets
/// `1 - smoothing + smoothing / K`, every other `smoothing / K` ([`smoothed_targets`]); the loss
/// is the mean cross-entropy against those targets and its gradient `(softmax - targets) / N`.
/// Smoothing 0 is the plain loss. `correct` still counts arg-max hits of the labels.
pub fn softmax_cross_entropy_smoothed(
    ops: &mut Ops,
    logits: &str,
    labels: &str,
    classes: usize,
    smoothing: f32,
) -> LossTensors {
    let axis1 = || vec![attr_int("axis", 1)];
    let log_p = ops.op("LogSoftmax", &[logits], axis1());
    let p = ops.op("Softmax", &[logits], axis1());
    let depth = ops.ints(&[classes as i64]);
    let off_on = ops.fresh("onehot_values");
    let (off, on) = smoothed_targets(smoothing, classes);
    ops.g.initializer_f32(&off_on, &[off, on], &[2]);
    let onehot = ops.op(
        "OneHot",
        &[labels, &depth, &off_on],
        vec![attr_int("axis", -1)],
    );
    let shape = ops.op("Shape", &[logits], vec![]);
    let first = ops.ints(&[0]);
    let n = ops.op("Gather", &[&shape, &first], vec![attr_int("axis", 0)]);
    let n = ops.op("Cast", &[&n], vec![attr_int("to", DataType::Float as i64)]);
    let picked = ops.op("Mul", &[&onehot, &log_p], vec![]);
    let total = ops.op("ReduceSum", &[&picked], vec![attr_int("keepdims", 0)]);
    // `n` is `[1]`: dividing and reshaping to `[]` keeps the loss a scalar.
    let mean = ops.op("Div", &[&total, &n], vec![]);
    let scalar = ops.ints(&[]);
    let mean = ops.op("Reshape", &[&mean, &scalar], vec![]);
    let loss = ops.op("Neg", &[&mean], vec![]);
    let diff = ops.op("Sub", &[&p, &onehot], vec![]);
    let dlogits = ops.op("Div", &[&diff, &n], vec![]);
    let predicted = ops.op(
        "ArgMax",
        &[logits],
        vec![attr_int("axis", 1), attr_int("keepdims", 0)],
    );
    let hit = ops.op("Equal", &[&predicted, labels], vec![]);
    let hit = ops.op(
        "Cast",
        &[&hit],
        vec![attr_int("to", DataType::Int64 as i64)],
    );
    let correct = ops.op("ReduceSum", &[&hit], vec![attr_int("keepdims", 0)]);
    LossTensors {
        loss,
        dlogits,
        correct,
        probabilities: p,
    }
}

/// One SGD-with-momentum step with L2 weight decay: `(w_new, v_new)` where
/// `v_new = momentum v + grad + decay w` and `w_new = w - lr v_new`.
///
/// `momentum` and `decay` name scalar tensors, `decay` is `None` for parameters that are not
/// decayed (biases).
pub fn sgd_momentum(
    ops: &mut Ops,
    w: &str,
    v: &str,
    grad: &str,
    lr: &str,
    momentum: &str,
    decay: Option<&str>,
) -> (String, String) {
    let grad = match decay {
        Some(decay) => {
            let dw = ops.op("Mul", &[w, decay], vec![]);
            ops.op("Add", &[grad, &dw], vec![])
        }
        None => grad.to_string(),
    };
    let kept = ops.op("Mul", &[v, momentum], vec![]);
    let v_new = ops.op("Add", &[&kept, &grad], vec![]);
    let step = ops.op("Mul", &[&v_new, lr], vec![]);
    let w_new = ops.op("Sub", &[w, &step], vec![]);
    (w_new, v_new)
}
