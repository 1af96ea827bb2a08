//! ONNX Runtime sessions of the training and evaluation graphs, with parameters and momenta
//! kept in runtime values between steps.
//!
//! Two sets of values alternate: step `2k` reads set A and writes set B through one I/O binding,
//! step `2k + 1` reads B and writes A through another. Nothing is copied between steps (with
//! the CUDA execution provider the values live in CUDA memory; only batches, loss and logits cross the bus),
//! and no step ever writes a buffer it also reads.

use std::path::PathBuf;

use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, Session};
use ort::value::Tensor;

use super::checkpoint::Tensors;
use super::data::Data;
use super::grad::{self, ConvGrad};
use super::graph::{eval_graph, train_graph_smoothed, Arch, StepConfig};
use super::store::{Group, ParamSpec, ParamStore};
use super::{session, session_with, FinetuneError};
use crate::backbone::{Compute, ExecutionProvider};
use crate::numeric;

/// The training and evaluation sessions and the parameter state.
pub struct Runner {
    specs: Vec<ParamSpec>,
    hidden: usize,
    train: Session,
    eval: Session,
    /// Per set: one slot per [`ParamSpec`], in `specs` order.
    sets: [Vec<Slot>; 2],
    train_bind: [IoBinding; 2],
    eval_bind: [IoBinding; 2],
    /// The set holding the current values.
    cur: usize,
    /// Where outputs of unknown shape go.
    cpu: MemoryInfo<'static>,
    /// Whether parameters and momenta live in CUDA memory.
    on_cuda: bool,
    /// Label smoothing of the training loss, which [`Runner::evaluate`]'s loss shares.
    label_smoothing: f32,
}

/// One parameter's runtime values in one set.
struct Slot {
    param: Tensor<f32>,
    momentum: Tensor<f32>,
}

fn shape(dims: &[usize]) -> Vec<i64> {
    dims.iter().map(|&d| d as i64).collect()
}

fn scalar(v: f32) -> Result<Tensor<f32>, ort::Error> {
    Tensor::from_array((Vec::<i64>::new(), vec![v]))
}

/// One set of runtime values holding `state`'s parameters and momenta, in `specs` order (in
/// CUDA memory when `on_cuda`).
fn slots(specs: &[ParamSpec], state: &Tensors, on_cuda: bool) -> Result<Vec<Slot>, FinetuneError> {
    let alloc = Allocator::default();
    let value = |values: &[f32], dims: &[usize]| -> Result<Tensor<f32>, FinetuneError> {
        let mut t = Tensor::<f32>::new(&alloc, shape(dims))?;
        t.extract_tensor_mut().1.copy_from_slice(values);
        Ok(if on_cuda {
            t.to(AllocationDevice::CUDA, 0)?
        } else {
            t
        })
    };
    specs
        .iter()
        .map(|p| {
            Ok(Slot {
                param: value(state.params.values(p)?, &p.dims)?,
                momentum: value(state.momenta.values(p)?, &p.dims)?,
            })
        })
        .collect()
}

/// Binds the learning rate of each group that has parameters.
fn bind_learning_rates(
    b: &mut IoBinding,
    specs: &[ParamSpec],
    (pretrained, new): (f32, f32),
) -> Result<(), FinetuneError> {
    for (group, lr) in [(Group::Pretrained, pretrained), (Group::New, new)] {
        if specs.iter().any(|p| p.group == group) {
            b.bind_input(group.lr_input(), &scalar(lr)?)?;
        }
    }
    Ok(())
}

/// Binds the `k`-th training and evaluation bindings: binding k reads set k and writes the
/// other one, and sends loss, hits and logits to `cpu`.
fn bind_pair(
    k: usize,
    specs: &[ParamSpec],
    sets: &mut [Vec<Slot>; 2],
    (train, eval): (&mut IoBinding, &mut IoBinding),
    lrs: (f32, f32),
    cpu: &MemoryInfo,
) -> Result<(), FinetuneError> {
    let [first, second] = sets;
    let (read, write) = match k {
        0 => (&*first, second),
        _ => (&*second, first),
    };
    for ((p, now), next) in specs.iter().zip(read.iter()).zip(write.iter_mut()) {
        train.bind_input(p.name.as_str(), &now.param)?;
        train.bind_input(p.momentum(), &now.momentum)?;
        train.bind_output(format!("{}.new", p.name), &mut next.param)?;
        train.bind_output(format!("{}.new", p.momentum()), &mut next.momentum)?;
        eval.bind_input(p.name.as_str(), &now.param)?;
    }
    bind_learning_rates(train, specs, lrs)?;
    train.bind_output_to_device("loss", cpu)?;
    train.bind_output_to_device("correct", cpu)?;
    eval.bind_output_to_device("logits", cpu)?;
    Ok(())
}

/// How a [`Runner`] writes and runs its training step: the defaults train; the bench compares
/// formulations and profiles.
#[derive(Debug, Clone, Default)]
pub struct StepOptions {
    /// How the convolutions' gradients are written.
    pub conv_grad: ConvGrad,
    /// Profile the training session with ONNX Runtime's profiler, its file starting with this
    /// path ([`Runner::end_profiling`] gives the file).
    pub profile: Option<PathBuf>,
    /// Label smoothing of the training loss (0: plain cross-entropy).
    pub label_smoothing: f32,
}

impl Runner {
    /// Sessions for `arch` with the values of `state` (momenta included) and learning rates
    /// `(pretrained, new)`.
    pub fn new(
        arch: &Arch,
        step: StepConfig,
        state: &Tensors,
        lrs: (f32, f32),
        compute: Compute,
    ) -> Result<Runner, FinetuneError> {
        Self::with_options(arch, step, state, lrs, compute, &StepOptions::default())
    }

    /// [`Runner::new`] with the step written and run as `options` say.
    pub fn with_options(
        arch: &Arch,
        step: StepConfig,
        state: &Tensors,
        lrs: (f32, f32),
        compute: Compute,
        options: &StepOptions,
    ) -> Result<Runner, FinetuneError> {
        let specs = arch.params();
        let graph = train_graph_smoothed(arch, step, options.conv_grad, options.label_smoothing)?;
        let train = session_with(&graph, compute, options.profile.as_deref())?;
        let eval = session(&eval_graph(arch)?, compute)?;
        // On CUDA the values are copied to the device once; steps then read and write there.
        let on_cuda = compute.ep == ExecutionProvider::Cuda;
        state.params.check(&specs)?;
        state.momenta.check(&specs)?;
        let mut sets = [
            slots(&specs, state, on_cuda)?,
            slots(&specs, state, on_cuda)?,
        ];
        let cpu = MemoryInfo::new(
            AllocationDevice::CPU,
            0,
            AllocatorType::Device,
            MemoryType::CPUOutput,
        )?;
        let mut train_bind = [train.create_binding()?, train.create_binding()?];
        let mut eval_bind = [eval.create_binding()?, eval.create_binding()?];
        for (k, binds) in train_bind.iter_mut().zip(&mut eval_bind).enumerate() {
            bind_pair(k, &specs, &mut sets, binds, lrs, &cpu)?;
        }
        Ok(Runner {
            specs,
            hidden: arch.hidden,
            train,
            eval,
            sets,
            train_bind,
            eval_bind,
            cur: 0,
            cpu,
            on_cuda,
            label_smoothing: options.label_smoothing,
        })
    }

    /// The learning rates `(pretrained, new)` of the next steps (a schedule changes them).
    pub fn set_learning_rates(&mut self, lrs: (f32, f32)) -> Result<(), FinetuneError> {
        for b in &mut self.train_bind {
            bind_learning_rates(b, &self.specs, lrs)?;
        }
        Ok(())
    }

    /// One training step on a batch; `mask` is `[n, hidden]`. Returns the loss and hits.
    pub fn step(
        &mut self,
        x: Vec<f32>,
        x_shape: &[usize],
        labels: Vec<i64>,
        mask: Vec<f32>,
    ) -> Result<(f32, i64), FinetuneError> {
        let n = labels.len();
        let b = &mut self.train_bind[self.cur];
        b.bind_input("x", &Tensor::from_array((batch_shape(n, x_shape), x))?)?;
        b.bind_input("labels", &Tensor::from_array((vec![n as i64], labels))?)?;
        let mask_shape = vec![n as i64, self.hidden as i64];
        b.bind_input("dropout_mask", &Tensor::from_array((mask_shape, mask))?)?;
        let out = self.train.run_binding(&self.train_bind[self.cur])?;
        let loss = out["loss"].try_extract_scalar::<f32>()?;
        let correct = out["correct"].try_extract_scalar::<i64>()?;
        drop(out);
        self.cur = 1 - self.cur;
        Ok((loss, correct))
    }

    /// Logits of `rows`, in batches of `batch` (rows x classes, row-major).
    pub fn logits(
        &mut self,
        data: &Data,
        rows: &[usize],
        batch: usize,
    ) -> Result<Vec<f32>, FinetuneError> {
        let mut all = Vec::new();
        for chunk in rows.chunks(batch.max(1)) {
            let (x, _) = data.batch(chunk);
            all.extend(self.forward(x, &data.shape, chunk.len())?);
        }
        Ok(all)
    }

    /// Logits of one batch of `n` rows of shape `x_shape` (the evaluation graph: no dropout,
    /// no backward), rows x classes, row-major.
    pub fn forward(
        &mut self,
        x: Vec<f32>,
        x_shape: &[usize],
        n: usize,
    ) -> Result<Vec<f32>, FinetuneError> {
        let b = &mut self.eval_bind[self.cur];
        b.bind_input("x", &Tensor::from_array((batch_shape(n, x_shape), x))?)?;
        // A device-bound output keeps its first buffer; a last, smaller batch needs a new one.
        b.bind_output_to_device("logits", &self.cpu)?;
        let out = self.eval.run_binding(&self.eval_bind[self.cur])?;
        Ok(out["logits"].try_extract_tensor::<f32>()?.1.to_vec())
    }

    /// Stops the training session's profiler (see [`StepOptions::profile`]) and gives its file.
    pub fn end_profiling(&mut self) -> Result<PathBuf, FinetuneError> {
        Ok(PathBuf::from(self.train.end_profiling()?))
    }

    /// Mean cross-entropy and accuracy of `rows` ([`loss_and_accuracy`]); the loss is the
    /// training loss, against targets smoothed as [`StepOptions::label_smoothing`] says.
    pub fn evaluate(
        &mut self,
        data: &Data,
        rows: &[usize],
        batch: usize,
    ) -> Result<(f64, f64), FinetuneError> {
        let logits = self.logits(data, rows, batch)?;
        Ok(loss_and_accuracy(
            &logits,
            rows,
            &data.labels,
            data.classes(),
            self.label_smoothing,
        ))
    }

    /// The current parameters and momenta, copied to the host.
    pub fn state(&self) -> Result<Tensors, FinetuneError> {
        let read = |t: &Tensor<f32>| -> Result<Vec<f32>, FinetuneError> {
            if self.on_cuda {
                let host = t.to(AllocationDevice::CPU, 0)?;
                return Ok(host.try_extract_tensor::<f32>()?.1.to_vec());
            }
            Ok(t.try_extract_tensor::<f32>()?.1.to_vec())
        };
        let (mut params, mut momenta) = (ParamStore::new(), ParamStore::new());
        for (p, slot) in self.specs.iter().zip(&self.sets[self.cur]) {
            params.insert(&p.name, p.dims.clone(), read(&slot.param)?)?;
            momenta.insert(&p.name, p.dims.clone(), read(&slot.momentum)?)?;
        }
        Ok(Tensors { params, momenta })
    }
}

fn batch_shape(n: usize, row: &[usize]) -> Vec<i64> {
    std::iter::once(n as i64)
        .chain(row.iter().map(|&d| d as i64))
        .collect()
}

/// Mean softmax cross-entropy (f64) and accuracy of row-major `logits` for `rows`, the
/// cross-entropy against the targets of label smoothing `smoothing`
/// ([`grad::smoothed_targets`]; 0: the plain loss), as the training graph computes it.
pub fn loss_and_accuracy(
    logits: &[f32],
    rows: &[usize],
    labels: &[i64],
    k: usize,
    smoothing: f32,
) -> (f64, f64) {
    let (off, on) = grad::smoothed_targets(smoothing, k);
    let (off, on) = (f64::from(off), f64::from(on));
    let (mut loss, mut hits) = (0.0, 0usize);
    for (z, &row) in logits.chunks(k).zip(rows) {
        let label = labels[row] as usize;
        // -sum_j t_j log p_j = log_sum_exp(z) - sum_j t_j z_j, since the targets sum to 1.
        let sum: f64 = z.iter().map(|&v| f64::from(v)).sum();
        let target_dot_z = off * sum + (on - off) * f64::from(z[label]);
        loss += numeric::log_sum_exp(z) - target_dot_z;
        hits += usize::from(numeric::argmax(z.iter().copied()) == label);
    }
    let n = rows.len().max(1) as f64;
    (loss / n, hits as f64 / n)
}
