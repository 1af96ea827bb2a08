//! The training loop: seeded shuffled mini-batches, validation each epoch, early stopping,
//! a checkpoint every epoch, resume, and a clear stop when the loss diverges.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::checkpoint::{self, EpochStats, Meta, Tensors};
use super::data::Data;
use super::grad::ConvGrad;
use super::graph::{eval_graph, train_graph_smoothed, Arch, StepConfig};
use super::runner::{Runner, StepOptions};
use super::schedule::{lr_factor, Schedule, Steps};
use super::store::{ParamSpec, ParamStore};
use super::FinetuneError;
use crate::backbone::Compute;
use crate::progress::{Observer, Stop};

/// Settings of a fine-tuning run; [`FinetuneParams::check`] turns them into [`CheckedParams`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinetuneParams {
    /// Most epochs to train.
    pub epochs: usize,
    /// Rows per training step.
    pub batch: usize,
    /// Learning rate of the new layers (the head).
    pub lr_new: f32,
    /// Learning rate of the pretrained (unfrozen ConvNet) layers.
    pub lr_pretrained: f32,
    /// SGD momentum.
    pub momentum: f32,
    /// L2 weight decay of the weights.
    pub weight_decay: f32,
    /// Dropout rate after the hidden layer.
    pub dropout: f32,
    /// Stop after this many epochs without a lower validation loss (0: never stop early).
    pub patience: usize,
    /// Seed of initialisation, shuffling and dropout.
    pub seed: u64,
    /// A step loss above `diverge_factor * ln(classes)` (or NaN) stops the run.
    pub diverge_factor: f32,
    /// How the learning rates change after the warm-up.
    #[serde(default, skip_serializing_if = "is_default")]
    pub schedule: Schedule,
    /// Epochs of linear learning-rate warm-up at the start (0: none).
    #[serde(default, skip_serializing_if = "is_default")]
    pub warmup_epochs: usize,
    /// Label smoothing of the training loss: the labelled class's target is
    /// `1 - s + s / K`, every other class's `s / K` (0: plain cross-entropy). Validation (and
    /// test) loss, which early stopping watches, is the same smoothed cross-entropy: the plain
    /// one rises as smoothing makes predictions less confident, even while accuracy rises.
    #[serde(default, skip_serializing_if = "is_default")]
    pub label_smoothing: f32,
    /// Where ONNX Runtime runs (provider, threads); not part of a run's identity.
    #[serde(skip, default = "all_cores")]
    pub compute: Compute,
}

impl Default for FinetuneParams {
    fn default() -> Self {
        Self {
            epochs: 25,
            batch: 32,
            lr_new: 3e-3,
            lr_pretrained: 1e-3,
            momentum: 0.9,
            weight_decay: 5e-4,
            dropout: 0.5,
            patience: 5,
            seed: 42,
            diverge_factor: 20.0,
            schedule: Schedule::Constant,
            warmup_epochs: 0,
            label_smoothing: 0.0,
            compute: all_cores(),
        }
    }
}

/// Whether `v` is its type's default: settings added later are left out of a run's fingerprint
/// when off, so checkpoints of earlier versions still resume.
fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// The CPU with all its cores.
fn all_cores() -> Compute {
    Compute::cpu(crate::backbone::default_threads())
}

/// Settings that passed [`FinetuneParams::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedParams(FinetuneParams);

impl std::ops::Deref for CheckedParams {
    type Target = FinetuneParams;
    fn deref(&self) -> &FinetuneParams {
        &self.0
    }
}

impl FinetuneParams {
    /// Refuses settings that cannot train.
    pub fn check(self) -> Result<CheckedParams, FinetuneError> {
        let bad = |m: String| Err(FinetuneError::Param(m));
        if self.epochs == 0 || self.batch == 0 {
            return bad("epochs and batch must be at least 1".into());
        }
        let rates = [self.lr_new, self.lr_pretrained, self.weight_decay];
        if rates.iter().any(|r| !r.is_finite() || *r < 0.0) {
            return bad("learning rates and weight decay must be finite and >= 0".into());
        }
        if !(0.0..1.0).contains(&self.momentum) || !(0.0..1.0).contains(&self.dropout) {
            return bad("momentum and dropout must be in [0, 1)".into());
        }
        if self.diverge_factor.is_nan() || self.diverge_factor <= 1.0 {
            return bad("diverge_factor must be > 1".into());
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return bad("label smoothing must be in [0, 1)".into());
        }
        if self.warmup_epochs > 0 && self.warmup_epochs >= self.epochs {
            return bad(format!(
                "{} warm-up epoch(s) leave none of the {} epochs at the full learning rate",
                self.warmup_epochs, self.epochs
            ));
        }
        Ok(CheckedParams(self))
    }
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// All epochs ran.
    Completed,
    /// Validation loss stopped falling for `patience` epochs.
    EarlyStopped,
    /// The caller asked to stop; run again to resume.
    Interrupted,
}

/// The result of [`fit`].
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Every completed epoch, including those of earlier interrupted runs.
    pub history: Vec<EpochStats>,
    /// Epoch of the kept parameters (lowest validation loss).
    pub best_epoch: usize,
    /// Parameters of the best epoch.
    pub best: ParamStore,
    /// Why the run ended.
    pub ending: Ending,
}

/// Files a run writes into its directory.
pub struct RunFiles {
    /// Last epoch's parameters and momenta (resume point).
    pub checkpoint: PathBuf,
    /// Parameters of the best epoch so far.
    pub best: PathBuf,
    /// History as JSON, rewritten each epoch.
    pub history: PathBuf,
    /// Loss and accuracy curves as PNG, redrawn each epoch.
    pub curves: PathBuf,
}

impl RunFiles {
    /// The files inside `dir`.
    pub fn in_dir(dir: &Path) -> RunFiles {
        RunFiles {
            checkpoint: dir.join("checkpoint.onnx"),
            best: dir.join("best.onnx"),
            history: dir.join("history.json"),
            curves: dir.join("curves.png"),
        }
    }
}

/// He-uniform weights (Glorot for the output layer) and zero biases for the new layers, from
/// `seed`; the tensors `start` holds (pretrained layers, a trained head) are taken as they are,
/// checked to have the network's shapes.
pub fn initial_params(
    arch: &Arch,
    seed: u64,
    start: &ParamStore,
) -> Result<ParamStore, FinetuneError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x1417_a11e);
    ParamStore::from_specs(&arch.params(), |p| {
        if start.get(&p.name).is_some() {
            return Ok(start.values(p)?.to_vec());
        }
        if p.dims.len() == 1 {
            return Ok(vec![0.0; p.len()]);
        }
        let (fan_in, fan_out) = (p.dims[0] as f32, p.dims[1] as f32);
        let limit = if p.name == "fc2.w" {
            (6.0 / (fan_in + fan_out)).sqrt()
        } else {
            (6.0 / fan_in).sqrt()
        };
        Ok::<_, FinetuneError>(
            (0..p.len())
                .map(|_| rng.random_range(-limit..limit))
                .collect(),
        )
    })
}

/// The RNG of one epoch: shuffling and dropout masks depend on (seed, epoch) only, so a resumed
/// run draws exactly what an uninterrupted one would.
fn epoch_rng(seed: u64, epoch: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64);
    rng
}

/// What [`fit`] tells its observer.
#[derive(Debug, Clone, Copy)]
pub enum TrainEvent<'a> {
    /// A training step finished.
    Step(StepDone),
    /// An epoch finished (trained, validated, checkpointed).
    Epoch(&'a EpochStats),
}

/// Who hears a fit's steps and epochs, and the token that stops it after one.
pub type Watch<'a, 'o> = (
    &'a Stop,
    &'a mut (dyn for<'e> Observer<TrainEvent<'e>> + 'o),
);

/// Step `step` of the `steps` of epoch `epoch` finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepDone {
    /// The epoch, from 1.
    pub epoch: usize,
    /// Steps done in it, from 1.
    pub step: usize,
    /// Steps in the epoch.
    pub steps: usize,
}

/// Trains `arch` from `init` on `data`, resuming from `dir`'s checkpoint when there is one.
///
/// `observe` hears each training step and each epoch (after its checkpoint is written);
/// `stop`, checked after each, ends the run as interrupted. Stopped at a step, the epoch in progress is
/// dropped: a resumed run redoes it from the last checkpoint with the same seeded order and
/// dropout, so an interruption never changes the result.
pub fn fit(
    params: &CheckedParams,
    arch: &Arch,
    init: ParamStore,
    data: &Data,
    dir: &Path,
    (stop, observe): Watch,
) -> Result<Outcome, FinetuneError> {
    check_network_fits(arch, data)?;
    std::fs::create_dir_all(dir).map_err(|source| FinetuneError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let files = RunFiles::in_dir(dir);
    let specs = arch.params();
    let fingerprint = run_fingerprint(params, arch, data);
    let (mut meta, state) = start_or_resume(&files, &specs, fingerprint, init)?;
    let step = StepConfig {
        momentum: params.momentum,
        weight_decay: params.weight_decay,
    };
    // The graphs themselves, for ONNX viewers and runs by hand (parameters are inputs).
    let smoothing = params.label_smoothing;
    train_graph_smoothed(arch, step, ConvGrad::default(), smoothing)?
        .save(dir.join("train_step.onnx"))?;
    eval_graph(arch)?.save(dir.join("eval.onnx"))?;
    let lrs = (params.lr_pretrained, params.lr_new);
    let options = StepOptions {
        label_smoothing: smoothing,
        ..StepOptions::default()
    };
    let mut runner = Runner::with_options(arch, step, &state, lrs, params.compute, &options)?;
    let mut ending = Ending::Completed;
    for epoch in meta.epoch + 1..=params.epochs {
        if params.patience > 0 && meta.epoch - meta.best_epoch >= params.patience {
            ending = Ending::EarlyStopped;
            break;
        }
        let trained = train_epoch(
            params,
            arch,
            data,
            &mut runner,
            (epoch, meta.epoch),
            (stop, &mut *observe),
        )?;
        let Some(stats) = trained else {
            ending = Ending::Interrupted;
            break;
        };
        record_epoch(&files, &mut meta, &stats, &runner)?;
        observe.observe(TrainEvent::Epoch(&stats));
        if stop.requested() {
            ending = Ending::Interrupted;
            break;
        }
    }
    // Also for a finished run resumed with nothing left to do.
    write_curves(&files.curves, &meta.history)?;
    let (_, best) = checkpoint::load(&files.best, &specs, false)?;
    Ok(Outcome {
        history: meta.history,
        best_epoch: meta.best_epoch,
        best: best.params,
        ending,
    })
}

/// Refuses a network whose input or classes differ from the data's.
fn check_network_fits(arch: &Arch, data: &Data) -> Result<(), FinetuneError> {
    arch.check()?;
    if arch.input != data.shape || arch.classes != data.classes() {
        return Err(FinetuneError::Arch(format!(
            "the network takes {:?} rows and {} classes, the data has {:?} and {}",
            arch.input,
            arch.classes,
            data.shape,
            data.classes()
        )));
    }
    Ok(())
}

/// What a checkpoint must match to be resumed: every setting but when to stop (more epochs or
/// patience on resume is fine, unless the schedule's rates depend on the number of epochs),
/// the network and the data.
fn run_fingerprint(params: &CheckedParams, arch: &Arch, data: &Data) -> String {
    let horizon = params.schedule.needs_horizon();
    let settings = FinetuneParams {
        epochs: if horizon { params.epochs } else { 0 },
        patience: 0,
        ..params.0.clone()
    };
    serde_json::json!({ "params": settings, "arch": arch, "data": data.fingerprint() }).to_string()
}

/// The checkpoint in `files` when there is one (refused if made by another run), else a fresh
/// start from `init` with zero momenta.
fn start_or_resume(
    files: &RunFiles,
    specs: &[ParamSpec],
    fingerprint: String,
    init: ParamStore,
) -> Result<(Meta, Tensors), FinetuneError> {
    if files.checkpoint.exists() {
        let (meta, state) = checkpoint::load(&files.checkpoint, specs, true)?;
        if meta.fingerprint != fingerprint {
            return Err(FinetuneError::Checkpoint {
                path: files.checkpoint.clone(),
                reason: format!("was made by a run with other settings, network or data ({}); use another run name, or move that folder away to start afresh", meta.fingerprint),
            });
        }
        return Ok((meta, state));
    }
    init.check(specs)?;
    let meta = Meta {
        epoch: 0,
        fingerprint,
        history: Vec::new(),
        best_epoch: 0,
    };
    Ok((meta, Tensors::fresh(init)))
}

/// One epoch: seeded shuffled steps with dropout masks, then validation. A NaN or diverging
/// loss stops the run (`kept`: the last checkpointed epoch).
fn train_epoch(
    params: &CheckedParams,
    arch: &Arch,
    data: &Data,
    runner: &mut Runner,
    (epoch, kept): (usize, usize),
    watch_run: Watch,
) -> Result<Option<EpochStats>, FinetuneError> {
    let limit = params.diverge_factor * (arch.classes as f32).ln();
    let watch = Divergence { epoch, kept, limit };
    let mut rng = epoch_rng(params.seed, epoch);
    let mut order = data.train.clone();
    order.shuffle(&mut rng);
    let start = Instant::now();
    let shuffled = (&order[..], &mut rng);
    let Some((loss_sum, hits, lr_scale)) =
        train_steps(params, arch, data, runner, shuffled, &watch, watch_run)?
    else {
        return Ok(None);
    };
    let train_seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let (val_loss, val_accuracy) = runner.evaluate(data, &data.val, params.batch * 2)?;
    if !val_loss.is_finite() {
        // Named as after the epoch's last step.
        let steps = order.len().div_ceil(params.batch);
        return Err(watch.error(steps, val_loss as f32));
    }
    Ok(Some(EpochStats {
        epoch,
        train_loss: loss_sum / order.len() as f64,
        train_accuracy: hits as f64 / order.len() as f64,
        val_loss,
        val_accuracy,
        train_seconds,
        val_seconds: start.elapsed().as_secs_f64(),
        lr_scale: f64::from(lr_scale),
    }))
}

/// The epoch's training steps over the rows in `order`, dropout masks drawn from `rng`, each
/// at the schedule's learning rates: the sum of the steps' losses weighted by their rows, the
/// hits, and the last step's learning-rate factor; `None` when `stop` is raised after a step.
fn train_steps(
    params: &CheckedParams,
    arch: &Arch,
    data: &Data,
    runner: &mut Runner,
    (order, rng): (&[usize], &mut ChaCha8Rng),
    watch: &Divergence,
    (stop, observe): Watch,
) -> Result<Option<(f64, i64, f32)>, FinetuneError> {
    // Inverted dropout: kept units are scaled up so that evaluation needs no mask.
    let keep = 1.0 / (1.0 - params.dropout);
    let (mut loss_sum, mut hits, mut factor) = (0.0f64, 0i64, 1.0f32);
    let steps = order.len().div_ceil(params.batch);
    let run_steps = Steps::of_run(params.epochs, params.warmup_epochs, steps);
    for (s, rows) in order.chunks(params.batch).enumerate() {
        // The step's place in the run: the same on resume, as epochs are redone whole.
        factor = lr_factor(params.schedule, run_steps, (watch.epoch - 1) * steps + s);
        runner.set_learning_rates((params.lr_pretrained * factor, params.lr_new * factor))?;
        let (x, labels) = data.batch(rows);
        let mask = (0..rows.len() * arch.hidden)
            .map(|_| {
                if rng.random::<f32>() < params.dropout {
                    0.0
                } else {
                    keep
                }
            })
            .collect();
        let (loss, correct) = runner.step(x, &data.shape, labels, mask)?;
        watch.check(s + 1, loss)?;
        loss_sum += f64::from(loss) * rows.len() as f64;
        hits += correct;
        let done = StepDone {
            epoch: watch.epoch,
            step: s + 1,
            steps,
        };
        observe.observe(TrainEvent::Step(done));
        if stop.requested() {
            return Ok(None);
        }
    }
    Ok(Some((loss_sum, hits, factor)))
}

/// When a training loss means the run diverged: NaN or infinite, or above `limit`.
struct Divergence {
    epoch: usize,
    /// The last checkpointed epoch, named in the error.
    kept: usize,
    /// `diverge_factor` times the loss of a uniform guess (ln classes).
    limit: f32,
}

impl Divergence {
    /// Refuses the `loss` of step `step` (from 1) if it diverged.
    fn check(&self, step: usize, loss: f32) -> Result<(), FinetuneError> {
        if !loss.is_finite() || loss > self.limit {
            return Err(self.error(step, loss));
        }
        Ok(())
    }

    /// The error of a run that diverged at `step` with `loss`.
    fn error(&self, step: usize, loss: f32) -> FinetuneError {
        FinetuneError::Diverged {
            epoch: self.epoch,
            step,
            loss,
            kept: self.kept,
        }
    }
}

/// Adds `stats` to the history and writes the checkpoint, the best parameters (when the
/// validation loss is the lowest so far), the history and the curves.
fn record_epoch(
    files: &RunFiles,
    meta: &mut Meta,
    stats: &EpochStats,
    runner: &Runner,
) -> Result<(), FinetuneError> {
    meta.history.push(stats.clone());
    meta.epoch = stats.epoch;
    let state = runner.state()?;
    let best_loss = meta
        .history
        .get(meta.best_epoch.wrapping_sub(1))
        .map(|h| h.val_loss);
    if best_loss.is_none_or(|b| stats.val_loss < b) {
        meta.best_epoch = stats.epoch;
        let params_only = Tensors {
            params: state.params.clone(),
            momenta: ParamStore::new(),
        };
        checkpoint::save(&files.best, meta, &params_only)?;
    }
    checkpoint::save(&files.checkpoint, meta, &state)?;
    let history = serde_json::to_string_pretty(&meta.history).expect("history serialises");
    crate::output::write_atomic(&files.history, (history + "\n").as_bytes())?;
    write_curves(&files.curves, &meta.history)
}

/// Draws the curves and writes them atomically as PNG.
fn write_curves(path: &Path, history: &[EpochStats]) -> Result<(), FinetuneError> {
    let img = super::curves::curves_png(history).map_err(|e| FinetuneError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| FinetuneError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?;
    Ok(crate::output::write_atomic(path, &png)?)
}

/// Logits of `params` for `rows` (row-major, `rows.len()` x classes), e.g. the test rows
/// after [`fit`].
pub fn logits(
    arch: &Arch,
    params: &ParamStore,
    data: &Data,
    rows: &[usize],
    compute: Compute,
) -> Result<Vec<f32>, FinetuneError> {
    let state = Tensors::fresh(params.clone());
    let step = StepConfig {
        momentum: 0.0,
        weight_decay: 0.0,
    };
    let mut runner = Runner::new(arch, step, &state, (0.0, 0.0), compute)?;
    runner.logits(data, rows, 64)
}
