//! Seconds per epoch of stage 1 (head on cached `block5_pool`) and stage 2 (the last block-5
//! convolutions + head, the earlier ones frozen and run once) on this machine.
//!
//! Stage 1 runs one real epoch on the cache. A stage-2 epoch takes minutes on a small CPU, so
//! it is timed over a few steps on generated batches of the trainable convolutions' input
//! (convolution time does not depend on the values) and scaled to the cache's training rows;
//! the JSON says so. The one-off pass of the frozen convolutions is not included. Beside the
//! step training uses it times the forward pass of the same layers and the step's other
//! formulations ([`ConvGrad`]), and ONNX Runtime's profiler tells where each step's time goes.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::checkpoint::Tensors;
use super::grad::ConvGrad;
use super::graph::{Arch, HeadPool};
use super::network::{pretrained, tail, Unfreeze};
use super::profile::{op_times, OpTime};
use super::run::{prepare, Prepared, RunConfig};
use super::runner::{Runner, StepOptions};
use super::store::ParamStore;
use super::train::initial_params;
use super::{FinetuneError, StepConfig};
use crate::backbone::{Compute, ExecutionProvider};
use crate::onnx::Model;

/// What to time.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// A `block5_pool` feature cache (stage 1 runs one epoch on split 0).
    pub cache: PathBuf,
    /// The backbone (pretrained weights of stage 2's convolutions).
    pub backbone: PathBuf,
    /// Rows per step.
    pub batch: usize,
    /// Stage-2 steps to time.
    pub stage2_steps: usize,
    /// Block-5 convolutions stage 2 trains (the last ones).
    pub unfreeze: usize,
    /// The head's pooling.
    pub pool: HeadPool,
    /// Where ONNX Runtime runs.
    pub compute: Compute,
}

/// Timings, as written to JSON.
#[derive(Debug, Clone, Serialize)]
pub struct FinetuneBench {
    /// ONNX Runtime threads.
    pub threads: usize,
    /// Execution provider.
    pub ep: ExecutionProvider,
    /// Rows per step.
    pub batch: usize,
    /// The head's pooling.
    pub pool: HeadPool,
    /// Stage 2's trained convolutions.
    pub stage2_convs: Vec<String>,
    /// Training rows of one epoch (split 0 of the cache, with augmented copies).
    pub train_rows: usize,
    /// Stage 1: measured seconds of one epoch of training steps.
    pub stage1_seconds_per_epoch: f64,
    /// Stage 1: seconds of one validation pass.
    pub stage1_val_seconds: f64,
    /// Stage 2: steps timed (after one warm-up step), each beside a forward pass and a step of
    /// every other formulation.
    pub stage2_steps_timed: usize,
    /// Stage 2: mean seconds of the forward pass of the same layers (the evaluation graph:
    /// convolutions and head, no loss, no backward) on a batch.
    pub stage2_forward_seconds: f64,
    /// Stage 2: mean seconds per training step of `batch` rows, as training runs it.
    pub stage2_seconds_per_step: f64,
    /// Stage 2: step seconds over forward seconds.
    pub stage2_step_to_forward: f64,
    /// Stage 2: seconds per step times the steps of an epoch of `train_rows` (an estimate).
    pub stage2_seconds_per_epoch_estimate: f64,
    /// Stage 2, per formulation of the convolutions' gradients (training's first): step time
    /// and where it goes.
    pub stage2_formulations: Vec<StepTimes>,
    /// /proc/loadavg's 1-minute load before and after: the machine may be shared.
    pub load_before_after: [f64; 2],
}

/// One formulation of the stage-2 step, timed and profiled.
#[derive(Debug, Clone, Serialize)]
pub struct StepTimes {
    /// How the convolutions' gradients are written.
    pub conv_grad: ConvGrad,
    /// Mean seconds per step.
    pub seconds_per_step: f64,
    /// Step seconds over forward seconds.
    pub step_to_forward: f64,
    /// Seconds per step times the steps of an epoch (an estimate).
    pub seconds_per_epoch_estimate: f64,
    /// ONNX Runtime's profile of the timed steps: mean seconds per step in each operator type,
    /// most expensive first (the rest of a step is ONNX Runtime's own work between nodes).
    pub ops: Vec<OpTime>,
}

/// Stage 2's formulations, training's first.
pub const FORMULATIONS: [ConvGrad; 3] = [ConvGrad::Volume, ConvGrad::Im2col, ConvGrad::Transposed];

/// Times stage 1 on the `block5_pool` cache and stage 2 on generated batches with the
/// backbone's block-5 weights.
pub fn bench(b: &BenchConfig) -> Result<FinetuneBench, FinetuneError> {
    let load_before = crate::bench::load_average();
    let stage1 = stage1(b)?;
    let arch = stage2_arch(b, &stage1.arch)?;
    let weights = pretrained(&stage1.backbone, &arch.convs)?;
    let state = Tensors::fresh(initial_params(&arch, 1, &weights)?);
    let sizes = (b.batch, stage2_steps(b));
    let times = time_stage2(&arch, &state, stage1.classes, sizes, b.compute)?;
    let epoch_steps = stage1.train_rows.div_ceil(b.batch) as f64;
    let forward = times.forward;
    let formulations: Vec<StepTimes> = FORMULATIONS
        .iter()
        .zip(times.steps)
        .map(|(&conv_grad, (seconds, ops))| StepTimes {
            conv_grad,
            seconds_per_step: seconds,
            step_to_forward: seconds / forward,
            seconds_per_epoch_estimate: seconds * epoch_steps,
            ops,
        })
        .collect();
    let used = &formulations[0];
    Ok(FinetuneBench {
        threads: b.compute.threads,
        ep: b.compute.ep,
        batch: b.batch,
        pool: b.pool,
        stage2_convs: arch.convs.iter().map(|c| c.name.clone()).collect(),
        train_rows: stage1.train_rows,
        stage1_seconds_per_epoch: stage1.epoch_seconds,
        stage1_val_seconds: stage1.val_seconds,
        stage2_steps_timed: stage2_steps(b),
        stage2_forward_seconds: forward,
        stage2_seconds_per_step: used.seconds_per_step,
        stage2_step_to_forward: used.step_to_forward,
        stage2_seconds_per_epoch_estimate: used.seconds_per_epoch_estimate,
        stage2_formulations: formulations,
        load_before_after: [load_before, crate::bench::load_average()],
    })
}

fn stage2_steps(b: &BenchConfig) -> usize {
    b.stage2_steps.max(1)
}

const STEP: StepConfig = StepConfig {
    momentum: 0.9,
    weight_decay: 5e-4,
};

/// What stage 1 measured, and what stage 2 reuses.
struct Stage1 {
    arch: Arch,
    backbone: Model,
    classes: usize,
    train_rows: usize,
    epoch_seconds: f64,
    val_seconds: f64,
}

/// One epoch of the head on split 0 of the cache, and one validation pass.
fn stage1(b: &BenchConfig) -> Result<Stage1, FinetuneError> {
    let cfg = RunConfig {
        cache: b.cache.clone(),
        repr: None,
        split: 0,
        backbone: b.backbone.clone(),
        unfreeze: Unfreeze::Last(0),
        pool: b.pool,
        hidden: super::run::DEFAULT_HIDDEN,
        out: PathBuf::new(),
        init_from: None,
    };
    let Prepared {
        arch,
        data,
        backbone,
        ..
    } = prepare(&cfg, b.compute)?;
    let params = initial_params(&arch, 1, &ParamStore::new())?;
    let state = Tensors::fresh(params);
    let mut runner = Runner::new(&arch, STEP, &state, (1e-3, 1e-3), b.compute)?;
    let mut masks = Masks::new(7);
    let start = Instant::now();
    for rows in data.train.chunks(b.batch) {
        let (x, labels) = data.batch(rows);
        runner.step(x, &data.shape, labels, masks.next(rows.len(), arch.hidden))?;
    }
    let epoch_seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();
    runner.evaluate(&data, &data.val, b.batch * 2)?;
    Ok(Stage1 {
        val_seconds: start.elapsed().as_secs_f64(),
        epoch_seconds,
        classes: data.classes(),
        train_rows: data.train.len(),
        arch,
        backbone,
    })
}

/// Stage 2's network: the last block-5 convolutions on the frozen ones' output, then stage 1's
/// head. The frozen convolutions run once per row before training: an epoch runs these only.
fn stage2_arch(b: &BenchConfig, head: &Arch) -> Result<Arch, FinetuneError> {
    let block5 = tail("block4_pool", 512 * 14 * 14, Unfreeze::Last(b.unfreeze))?;
    Ok(Arch {
        input: block5.trainable_input(),
        convs: block5.trainable,
        ..head.clone()
    })
}

/// What [`time_stage2`] measured.
#[derive(Debug, Clone)]
pub struct Stage2Times {
    /// Mean seconds of the forward pass (evaluation graph) of one batch.
    pub forward: f64,
    /// Per formulation ([`FORMULATIONS`] order): mean seconds per step and the profile.
    pub steps: Vec<(f64, Vec<OpTime>)>,
}

/// Times `arch`'s forward pass and a step of every formulation, starting from `state`, side by
/// side on generated batches of `classes` classes (convolution time does not depend on the
/// values): `(batch, steps)` rounds after a warm-up round, the formulations' order alternating
/// each round so that a changing load weighs on all alike.
pub fn time_stage2(
    arch: &Arch,
    state: &Tensors,
    classes: usize,
    (batch, timed): (usize, usize),
    compute: Compute,
) -> Result<Stage2Times, FinetuneError> {
    let profiles = tempfile::tempdir().map_err(|source| FinetuneError::Io {
        path: std::env::temp_dir(),
        source,
    })?;
    // Timed without the profiler, whose per-node events would weigh on the step (a graph of
    // many small nodes) and not on the forward pass; profiled apart for the breakdown.
    let mut runners = formulation_runners(arch, state, compute, None)?;
    let mut profiled = formulation_runners(arch, state, compute, Some(profiles.path()))?;
    let mut batches = Batches::new(arch, classes, batch);
    let mut forward = 0.0;
    let mut steps = vec![0.0; runners.len()];
    for round in 0..=timed {
        let b = batches.generate();
        // Round 0 warms up: its times are not counted.
        let counted = |seconds: f64| if round > 0 { seconds } else { 0.0 };
        forward += counted(seconds_of(|| {
            runners[0].forward(b.x.clone(), &b.shape, batch)
        })?);
        for k in round_order(runners.len(), round) {
            steps[k] += counted(seconds_of(|| b.step(&mut runners[k]))?);
            // Profiled: a warm-up step, then one step the profile averages.
            if round < 2 {
                b.step(&mut profiled[k])?;
            }
        }
    }
    let timed = timed as f64;
    let mut out = Vec::new();
    for (runner, seconds) in profiled.iter_mut().zip(steps) {
        // The profile's first step is the warm-up.
        let (ops, _) = op_times(&runner.end_profiling()?, 1)?;
        out.push((seconds / timed, ops));
    }
    Ok(Stage2Times {
        forward: forward / timed,
        steps: out,
    })
}

/// One runner per formulation ([`FORMULATIONS`] order), profiled into `profile` when given.
fn formulation_runners(
    arch: &Arch,
    state: &Tensors,
    compute: Compute,
    profile: Option<&Path>,
) -> Result<Vec<Runner>, FinetuneError> {
    FORMULATIONS
        .iter()
        .map(|&how| {
            let options = StepOptions {
                conv_grad: how,
                profile: profile.map(|dir| dir.join(format!("{how:?}"))),
                ..StepOptions::default()
            };
            Runner::with_options(arch, STEP, state, (1e-3, 1e-3), compute, &options)
        })
        .collect()
}

/// The runners' order in `round`: reversed every other round, so that a changing load weighs
/// on all alike.
fn round_order(runners: usize, round: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..runners).collect();
    if round % 2 == 1 {
        order.reverse();
    }
    order
}

/// Seconds `work` takes.
fn seconds_of<T>(work: impl FnOnce() -> Result<T, FinetuneError>) -> Result<f64, FinetuneError> {
    let start = Instant::now();
    work()?;
    Ok(start.elapsed().as_secs_f64())
}

/// Generated batches of a network's input: seeded values (convolution time does not depend on
/// them), labels cycling through the classes, seeded dropout masks.
struct Batches {
    shape: Vec<usize>,
    rows: usize,
    classes: usize,
    hidden: usize,
    values: ChaCha8Rng,
    masks: Masks,
}

/// One generated batch.
struct Batch {
    shape: Vec<usize>,
    x: Vec<f32>,
    labels: Vec<i64>,
    mask: Vec<f32>,
}

impl Batches {
    fn new(arch: &Arch, classes: usize, rows: usize) -> Batches {
        Batches {
            shape: arch.input.clone(),
            rows,
            classes,
            hidden: arch.hidden,
            values: ChaCha8Rng::seed_from_u64(8),
            masks: Masks::new(7),
        }
    }

    fn generate(&mut self) -> Batch {
        let row: usize = self.shape.iter().product();
        let values = &mut self.values;
        Batch {
            shape: self.shape.clone(),
            x: (0..self.rows * row)
                .map(|_| values.random::<f32>())
                .collect(),
            labels: (0..self.rows).map(|i| (i % self.classes) as i64).collect(),
            mask: self.masks.next(self.rows, self.hidden),
        }
    }
}

impl Batch {
    /// One training step of `runner` on this batch.
    fn step(&self, runner: &mut Runner) -> Result<(f32, i64), FinetuneError> {
        runner.step(
            self.x.clone(),
            &self.shape,
            self.labels.clone(),
            self.mask.clone(),
        )
    }
}

/// Seeded dropout masks of rate 0.5 for the hidden layer.
struct Masks(ChaCha8Rng);

impl Masks {
    fn new(seed: u64) -> Masks {
        Masks(ChaCha8Rng::seed_from_u64(seed))
    }

    fn next(&mut self, rows: usize, hidden: usize) -> Vec<f32> {
        (0..rows * hidden)
            .map(|_| if self.0.random::<bool>() { 2.0 } else { 0.0 })
            .collect()
    }
}
