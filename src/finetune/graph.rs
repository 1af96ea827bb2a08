//! The trainable network (unfrozen VGG convolutions, then the new head) and the ONNX graphs
//! of one training step and of evaluation.
//!
//! Graph interface, shared by the training loop and anyone who runs the files by hand:
//! inputs `x` (the frozen part's output), `labels` (i64), `dropout_mask` (`[N, hidden]`, values
//! 0 or `1 / (1 - rate)`), `lr_pretrained` / `lr_new` (scalars, present when the group has
//! parameters), then each parameter `P` and its momentum `P.momentum`; outputs `loss`,
//! `correct`, then `P.new` and `P.momentum.new`. The evaluation graph takes `x` and the
//! parameters and gives `logits` and `probabilities`.

use serde::{Deserialize, Serialize};

use super::grad::{self, ConvGrad, ConvShape, Ops, OPSET};
use super::store::{Group, ParamSpec, ParamStore};
use super::FinetuneError;
use crate::onnx::{DataType, Dim, Model};

/// How the last map becomes the head's input vector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum HeadPool {
    /// Every value of the map (`block5_pool`: 25088), as the method's head.
    #[default]
    Flatten,
    /// The mean of each channel (512): far fewer head weights, which small data sets favour.
    Avg,
}

impl HeadPool {
    /// Length of the vector this pooling makes of a `[C, H, W]` map.
    pub fn output_len(self, map: &[usize]) -> usize {
        match self {
            HeadPool::Flatten => map.iter().product(),
            HeadPool::Avg => map[0],
        }
    }
}

/// A 3x3 convolution (with its ReLU), optionally followed by 2x2 max pooling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvLayer {
    /// Layer name, e.g. `block5_conv1`; parameters are `NAME.w` and `NAME.b`.
    pub name: String,
    /// Output channels.
    pub out: usize,
    /// A 2x2/2 max pooling after the ReLU.
    pub pool: bool,
}

/// The trainable tail: convolutions on the frozen part's output, then flatten (or global
/// average pooling) -> times `head_scale` -> dense `hidden` -> ReLU -> dropout -> dense `classes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arch {
    /// Shape of one input row without the batch: `[C, H, W]`, or `[D]` without convolutions.
    pub input: Vec<usize>,
    /// Unfrozen convolutions, shallow to deep (empty: head only).
    pub convs: Vec<ConvLayer>,
    /// How the last map enters the head.
    pub pool: HeadPool,
    /// Width of the hidden dense layer.
    pub hidden: usize,
    /// Number of classes.
    pub classes: usize,
    /// Constant factor on the head's input. VGG's maps are large (rows of `block5_pool` have
    /// norms near 1000), which makes plain SGD on the head diverge at usual learning rates;
    /// a factor bringing them to unit mean square keeps the pretrained convolutions exact
    /// (it sits after them) and folds into `fc1.w` on export.
    pub head_scale: f32,
}

impl Arch {
    /// Checks that the layers fit together.
    pub fn check(&self) -> Result<(), FinetuneError> {
        let bad = |m: String| Err(FinetuneError::Arch(m));
        if self.hidden == 0 || self.classes < 2 {
            return bad(format!(
                "the head needs a hidden width > 0 and at least 2 classes (got {} and {})",
                self.hidden, self.classes
            ));
        }
        if !(self.head_scale.is_finite() && self.head_scale > 0.0) {
            return bad(format!(
                "head scale {} must be finite and > 0",
                self.head_scale
            ));
        }
        if self.input.contains(&0) || self.input.is_empty() {
            return bad(format!("input shape {:?} has an empty axis", self.input));
        }
        if !self.convs.is_empty() || self.pool == HeadPool::Avg {
            if self.input.len() != 3 {
                return bad(format!(
                    "convolutions and average pooling need a [C, H, W] input, got {:?}",
                    self.input
                ));
            }
            let (mut h, mut w) = (self.input[1], self.input[2]);
            for c in &self.convs {
                if c.out == 0 {
                    return bad(format!("{} has no output channels", c.name));
                }
                if c.pool {
                    if h % 2 != 0 || w % 2 != 0 {
                        return bad(format!("{} pools an odd {h}x{w} map", c.name));
                    }
                    (h, w) = (h / 2, w / 2);
                }
            }
        }
        Ok(())
    }

    /// Shape of the last map (the input when there are no convolutions).
    pub fn map_dims(&self) -> Vec<usize> {
        map_dims(&self.input, &self.convs)
    }

    /// Length of the vector that enters the head.
    pub fn flat_dims(&self) -> usize {
        self.pool.output_len(&self.map_dims())
    }

    /// Every trainable tensor, in the order the graphs declare them.
    pub fn params(&self) -> Vec<ParamSpec> {
        let p = |name: String, dims: Vec<usize>, group, decay| ParamSpec {
            name,
            dims,
            group,
            decay,
        };
        let mut out = Vec::new();
        let mut channels = self.input.first().copied().unwrap_or(0);
        for c in &self.convs {
            out.push(p(
                format!("{}.w", c.name),
                vec![c.out, channels, 3, 3],
                Group::Pretrained,
                true,
            ));
            out.push(p(
                format!("{}.b", c.name),
                vec![c.out],
                Group::Pretrained,
                false,
            ));
            channels = c.out;
        }
        let (flat, hidden) = (self.flat_dims(), self.hidden);
        out.push(p("fc1.w".into(), vec![flat, hidden], Group::New, true));
        out.push(p("fc1.b".into(), vec![hidden], Group::New, false));
        out.push(p(
            "fc2.w".into(),
            vec![hidden, self.classes],
            Group::New,
            true,
        ));
        out.push(p("fc2.b".into(), vec![self.classes], Group::New, false));
        out
    }

    fn x_dims(&self) -> Vec<Dim> {
        std::iter::once(Dim::sym("batch"))
            .chain(self.input.iter().map(|&d| Dim::Fixed(d as i64)))
            .collect()
    }
}

/// Shape of the map `convs` make of an `input` map (`input` itself when there are none).
pub fn map_dims(input: &[usize], convs: &[ConvLayer]) -> Vec<usize> {
    match convs.last() {
        None => input.to_vec(),
        Some(last) => {
            let pools = convs.iter().filter(|c| c.pool).count() as u32;
            vec![last.out, input[1] >> pools, input[2] >> pools]
        }
    }
}

/// Optimizer constants written into the training graph.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepConfig {
    /// Momentum of SGD.
    pub momentum: f32,
    /// L2 weight decay added to the weights' gradients (not to biases).
    pub weight_decay: f32,
}

/// What the forward pass keeps of one conv layer for the backward pass.
struct ConvTensors {
    /// The layer's input.
    x: String,
    /// Its ReLU output.
    y: String,
    /// Pooled output and MaxPool indices, when it pools.
    pool: Option<(String, String)>,
}

/// What the forward pass keeps for the backward pass.
struct Forward {
    convs: Vec<ConvTensors>,
    /// Head input before flattening.
    head_in: String,
    flat: String,
    hidden: String,
    dropped: Option<String>,
    logits: String,
}

fn forward(ops: &mut Ops, arch: &Arch, x: &str, mask: Option<&str>) -> Forward {
    let mut convs = Vec::new();
    let mut cur = x.to_string();
    for c in &arch.convs {
        let (w, b) = (format!("{}.w", c.name), format!("{}.b", c.name));
        let z = grad::conv(ops, &cur, &w, &b, ConvShape::VGG);
        let y = grad::relu(ops, &z);
        let pool = c.pool.then(|| grad::max_pool(ops, &y));
        let next = pool.as_ref().map_or(y.clone(), |(p, _)| p.clone());
        convs.push(ConvTensors { x: cur, y, pool });
        cur = next;
    }
    let flat = match arch.pool {
        HeadPool::Flatten => grad::flatten(ops, &cur),
        HeadPool::Avg => grad::global_avg_pool(ops, &cur),
    };
    let flat = if arch.head_scale == 1.0 {
        flat
    } else {
        let scale = ops.scalar(arch.head_scale);
        ops.op("Mul", &[&flat, &scale], vec![])
    };
    let z1 = grad::dense(ops, &flat, "fc1.w", "fc1.b");
    let hidden = grad::relu(ops, &z1);
    let dropped = mask.map(|m| grad::dropout(ops, &hidden, m));
    let logits = grad::dense(ops, dropped.as_ref().unwrap_or(&hidden), "fc2.w", "fc2.b");
    Forward {
        convs,
        head_in: cur,
        flat,
        hidden,
        dropped,
        logits,
    }
}

fn declare_inputs(ops: &mut Ops, params: &[ParamSpec], momenta: bool) {
    let dims = |d: &[usize]| d.iter().map(|&v| Dim::Fixed(v as i64)).collect::<Vec<_>>();
    for p in params {
        ops.g.input(&p.name, DataType::Float, &dims(&p.dims));
        if momenta {
            ops.g.input(&p.momentum(), DataType::Float, &dims(&p.dims));
        }
    }
}

/// Makes `tensor` the graph output `name`: renamed where a node writes it (an Identity would
/// copy every updated parameter each step), else copied by an Identity.
fn output(ops: &mut Ops, tensor: &str, name: &str, elem: DataType, dims: &[Dim]) {
    if !ops.g.rename(tensor, name) {
        ops.g.node("Identity", &[tensor], &[name], vec![]);
    }
    ops.g.output(name, elem, dims);
}

/// The graph of one training step: forward, softmax cross-entropy, backward, SGD update.
pub fn train_graph(arch: &Arch, step: StepConfig) -> Result<Model, FinetuneError> {
    train_graph_as(arch, step, ConvGrad::default())
}

/// [`train_graph`] with the convolutions' gradients written the way `how` says.
pub fn train_graph_as(
    arch: &Arch,
    step: StepConfig,
    how: ConvGrad,
) -> Result<Model, FinetuneError> {
    train_graph_smoothed(arch, step, how, 0.0)
}

/// [`train_graph_as`] whose loss is the cross-entropy against label-smoothed targets
/// ([`grad::softmax_cross_entropy_smoothed`]; `smoothing` 0 is the plain loss).
pub fn train_graph_smoothed(
    arch: &Arch,
    step: StepConfig,
    how: ConvGrad,
    smoothing: f32,
) -> Result<Model, FinetuneError> {
    arch.check()?;
    if !(0.0..1.0).contains(&smoothing) {
        return Err(FinetuneError::Param(format!(
            "label smoothing {smoothing} must be in [0, 1)"
        )));
    }
    let params = arch.params();
    let mut ops = Ops::new("tlearn_finetune_step");
    declare_step_inputs(&mut ops, arch, &params, step);
    let f = forward(&mut ops, arch, "x", Some("dropout_mask"));
    let loss = grad::softmax_cross_entropy_smoothed(
        &mut ops,
        &f.logits,
        "labels",
        arch.classes,
        smoothing,
    );
    let grads = backward(&mut ops, arch, &f, &loss.dlogits, how);
    let scalar: [Dim; 0] = [];
    output(&mut ops, &loss.loss, "loss", DataType::Float, &scalar);
    output(&mut ops, &loss.correct, "correct", DataType::Int64, &scalar);
    sgd_outputs(&mut ops, &params, &grads);
    Ok(ops.g.build(OPSET)?)
}

/// The step's inputs: rows, labels, dropout mask, a learning rate per group in use, every
/// parameter and its momentum; momentum and weight decay as constants.
fn declare_step_inputs(ops: &mut Ops, arch: &Arch, params: &[ParamSpec], step: StepConfig) {
    ops.g.input("x", DataType::Float, &arch.x_dims());
    ops.g.input("labels", DataType::Int64, &[Dim::sym("batch")]);
    ops.g.input(
        "dropout_mask",
        DataType::Float,
        &[Dim::sym("batch"), Dim::Fixed(arch.hidden as i64)],
    );
    for group in [Group::Pretrained, Group::New] {
        if params.iter().any(|p| p.group == group) {
            ops.g.input(group.lr_input(), DataType::Float, &[]);
        }
    }
    declare_inputs(ops, params, true);
    ops.g.initializer_f32("momentum", &[step.momentum], &[]);
    ops.g
        .initializer_f32("weight_decay", &[step.weight_decay], &[]);
}

/// The backward pass from the logits' gradient, deep to shallow: (parameter, gradient) pairs.
fn backward(
    ops: &mut Ops,
    arch: &Arch,
    f: &Forward,
    dlogits: &str,
    how: ConvGrad,
) -> Vec<(String, String)> {
    let mut grads: Vec<(String, String)> = Vec::new();
    let dropped = f.dropped.as_deref().unwrap_or(&f.hidden);
    let (dh, dw2, db2) = grad::dense_backward(ops, dropped, "fc2.w", dlogits, true);
    grads.push(("fc2.w".into(), dw2));
    grads.push(("fc2.b".into(), db2));
    let dh = grad::dropout_backward(ops, "dropout_mask", &dh.expect("asked for dx"));
    let dz1 = grad::relu_backward(ops, &f.hidden, &dh);
    let need_flat = !arch.convs.is_empty();
    let (dflat, dw1, db1) = grad::dense_backward(ops, &f.flat, "fc1.w", &dz1, need_flat);
    grads.push(("fc1.w".into(), dw1));
    grads.push(("fc1.b".into(), db1));
    let Some(mut dflat) = dflat else {
        return grads;
    };
    if arch.head_scale != 1.0 {
        let scale = ops.scalar(arch.head_scale);
        dflat = ops.op("Mul", &[&dflat, &scale], vec![]);
    }
    let mut d = match arch.pool {
        HeadPool::Flatten => grad::flatten_backward(ops, &f.head_in, &dflat),
        HeadPool::Avg => {
            let area = arch.map_dims()[1..].iter().product();
            grad::global_avg_pool_backward(ops, &f.head_in, &dflat, area)
        }
    };
    for (i, (c, ConvTensors { x, y, pool })) in arch.convs.iter().zip(&f.convs).enumerate().rev() {
        if let Some((_, indices)) = pool {
            d = grad::max_pool_backward(ops, y, indices, &d);
        }
        let dz = grad::relu_backward(ops, y, &d);
        let w = format!("{}.w", c.name);
        let (dx, dw, db) = grad::conv_backward_as(how, ops, x, &w, &dz, ConvShape::VGG, i > 0);
        grads.push((w, dw));
        grads.push((format!("{}.b", c.name), db));
        if let Some(dx) = dx {
            d = dx;
        }
    }
    grads
}

/// SGD with momentum (and decay where the parameter has it) for every parameter, as the
/// outputs `<name>.new` and `<name>.momentum.new`.
fn sgd_outputs(ops: &mut Ops, params: &[ParamSpec], grads: &[(String, String)]) {
    for p in params {
        let g = &grads
            .iter()
            .find(|(n, _)| *n == p.name)
            .expect("every param has a gradient")
            .1;
        let decay = p.decay.then_some("weight_decay");
        let (w_new, v_new) = grad::sgd_momentum(
            ops,
            &p.name,
            &p.momentum(),
            g,
            p.group.lr_input(),
            "momentum",
            decay,
        );
        let dims: Vec<Dim> = p.dims.iter().map(|&d| Dim::Fixed(d as i64)).collect();
        let new = format!("{}.new", p.name);
        output(ops, &w_new, &new, DataType::Float, &dims);
        let new = format!("{}.new", p.momentum());
        output(ops, &v_new, &new, DataType::Float, &dims);
    }
}

/// The evaluation graph: the forward pass without dropout, giving `logits` and `probabilities`.
pub fn eval_graph(arch: &Arch) -> Result<Model, FinetuneError> {
    arch.check()?;
    let mut ops = Ops::new("tlearn_finetune_eval");
    ops.g.input("x", DataType::Float, &arch.x_dims());
    declare_inputs(&mut ops, &arch.params(), false);
    let f = forward(&mut ops, arch, "x", None);
    let p = ops.op(
        "Softmax",
        &[&f.logits],
        vec![crate::onnx::attr_int("axis", 1)],
    );
    let dims = [Dim::sym("batch"), Dim::Fixed(arch.classes as i64)];
    output(&mut ops, &f.logits, "logits", DataType::Float, &dims);
    output(&mut ops, &p, "probabilities", DataType::Float, &dims);
    Ok(ops.g.build(OPSET)?)
}

/// The forward pass of `convs` (weights and biases `NAME.w`, `NAME.b` from `weights`, as
/// constants) on `x`, giving
/// `y`: the map, or with `pool` the head's input vector (before the head scale). It runs the
/// frozen layers once per row and measures the head's inputs.
pub fn convs_graph(
    input: &[usize],
    convs: &[ConvLayer],
    pool: Option<HeadPool>,
    weights: &ParamStore,
) -> Result<Model, FinetuneError> {
    let arch = Arch {
        input: input.to_vec(),
        convs: convs.to_vec(),
        pool: pool.unwrap_or_default(),
        hidden: 1,
        classes: 2,
        head_scale: 1.0,
    };
    arch.check()?;
    let mut ops = Ops::new("tlearn_convs");
    ops.g.input("x", DataType::Float, &arch.x_dims());
    for p in arch.params().iter().filter(|p| !p.name.starts_with("fc")) {
        let values = weights.values(p)?;
        let dims: Vec<i64> = p.dims.iter().map(|&d| d as i64).collect();
        ops.g.initializer_f32(&p.name, values, &dims);
    }
    let mut cur = "x".to_string();
    for c in convs {
        let (w, b) = (format!("{}.w", c.name), format!("{}.b", c.name));
        let z = grad::conv(&mut ops, &cur, &w, &b, ConvShape::VGG);
        cur = grad::relu(&mut ops, &z);
        if c.pool {
            cur = grad::max_pool(&mut ops, &cur).0;
        }
    }
    let y = match pool {
        None => cur,
        Some(HeadPool::Flatten) => grad::flatten(&mut ops, &cur),
        Some(HeadPool::Avg) => grad::global_avg_pool(&mut ops, &cur),
    };
    ops.g.node("Identity", &[&y], &["y"], vec![]);
    ops.g.output_unshaped("y", DataType::Float);
    Ok(ops.g.build(OPSET)?)
}
