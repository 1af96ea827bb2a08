//! Seconds per epoch of stage 1 (head on cached `block5_pool`) and stage 2 (the last block-5
//! convolutions + head, the earlier ones frozen and run once) on this machine.
//!
//! Stage 1 runs one real epoch on the cache. A stage-2 epoch takes minutes on a small CPU, so
//! it is timed over a few steps on generated batches of the trainable convolutions' input
//! (convolution time does not depend on the values) and scaled to the cache's training rows;
//! the JSON says so. The one-off pass of the frozen convolutions is not included.

use std::path::PathBuf;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::checkpoint::Tensors;
use super::graph::{Arch, HeadPool};
use super::network::{pretrained, tail, Unfreeze};
use super::run::{prepare, Prepared, RunConfig};
use super::runner::Runner;
use super::train::initial_params;
use super::{FinetuneError, StepConfig};
use crate::backbone::{Compute, ExecutionProvider};

/// What to time.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// A `block5_pool` feature cache (stage 1 runs one epoch on split 0).
    pub features: PathBuf,
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
    /// Stage 2: steps timed (after one warm-up step).
    pub stage2_steps_timed: usize,
    /// Stage 2: mean seconds per step of `batch` rows.
    pub stage2_seconds_per_step: f64,
    /// Stage 2: seconds per step times the steps of an epoch of `train_rows` (an estimate).
    pub stage2_seconds_per_epoch_estimate: f64,
}

/// Times stage 1 on the `block5_pool` cache and stage 2 on generated batches with the
/// backbone's block-5 weights.
pub fn bench(b: &BenchConfig) -> Result<FinetuneBench, FinetuneError> {
    let (batch, compute) = (b.batch, b.compute);
    let cfg = RunConfig {
        features: b.features.clone(),
        repr: None,
        split: 0,
        backbone: b.backbone.clone(),
        unfreeze: Unfreeze::Last(0),
        pool: b.pool,
        hidden: 256,
        out: std::path::PathBuf::new(),
        init_from: None,
    };
    let Prepared {
        arch: arch1,
        data,
        backbone,
        ..
    } = prepare(&cfg, compute)?;
    let classes = data.classes();
    let step = StepConfig {
        momentum: 0.9,
        weight_decay: 5e-4,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut mask = |n: usize, hidden: usize| -> Vec<f32> {
        (0..n * hidden)
            .map(|_| if rng.random::<bool>() { 2.0 } else { 0.0 })
            .collect()
    };
    let zeros = |p: &[Vec<f32>]| p.iter().map(|v| vec![0.0; v.len()]).collect();

    let params = initial_params(&arch1, 1, &|_| None)?;
    let state = Tensors {
        momenta: zeros(&params),
        params,
    };
    let mut runner = Runner::new(&arch1, step, &state, (1e-3, 1e-3), compute)?;
    let start = Instant::now();
    for rows in data.train.chunks(batch) {
        let (x, labels) = data.batch(rows);
        runner.step(x, &data.shape, labels, mask(rows.len(), 256))?;
    }
    let stage1 = start.elapsed().as_secs_f64();
    let start = Instant::now();
    runner.evaluate(&data, &data.val, batch * 2)?;
    let stage1_val = start.elapsed().as_secs_f64();
    drop(runner);

    // Frozen convolutions run once per row before training: an epoch runs the trainable ones.
    let block5 = tail("block4_pool", 512 * 14 * 14, Unfreeze::Last(b.unfreeze))?;
    let shape = block5.trainable_input();
    let arch2 = Arch {
        input: shape.clone(),
        convs: block5.trainable,
        ..arch1
    };
    let weights = pretrained(&backbone, &arch2.convs)?;
    let params = initial_params(&arch2, 1, &|name| weights.get(name).cloned())?;
    let state = Tensors {
        momenta: zeros(&params),
        params,
    };
    let mut runner = Runner::new(&arch2, step, &state, (1e-3, 1e-3), compute)?;
    let row: usize = shape.iter().product();
    let mut gen = ChaCha8Rng::seed_from_u64(8);
    let mut seconds = 0.0;
    for s in 0..=b.stage2_steps.max(1) {
        let x: Vec<f32> = (0..batch * row).map(|_| gen.random::<f32>()).collect();
        let labels = (0..batch).map(|i| (i % classes) as i64).collect();
        let start = Instant::now();
        runner.step(x, &shape, labels, mask(batch, 256))?;
        if s > 0 {
            seconds += start.elapsed().as_secs_f64();
        }
    }
    let per_step = seconds / b.stage2_steps.max(1) as f64;
    Ok(FinetuneBench {
        threads: compute.threads,
        ep: compute.ep,
        batch,
        pool: b.pool,
        stage2_convs: arch2.convs.iter().map(|c| c.name.clone()).collect(),
        train_rows: data.train.len(),
        stage1_seconds_per_epoch: stage1,
        stage1_val_seconds: stage1_val,
        stage2_steps_timed: b.stage2_steps.max(1),
        stage2_seconds_per_step: per_step,
        stage2_seconds_per_epoch_estimate: per_step * data.train.len().div_ceil(batch) as f64,
    })
}
