//! A whole fine-tuning run on a feature cache: the network that fits the cached layer, the
//! pretrained weights, training, test evaluation, the exported inference model and a summary.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::checkpoint::EpochStats;
use super::data::Data;
use super::graph::{convs_graph, Arch, ConvLayer, HeadPool};
use super::network::{
    backbone_convs, forward_rows, inference_model, pretrained, tail_in, Tail, Unfreeze,
    PROBABILITIES,
};
use super::runner::loss_and_accuracy;
use super::store::ParamStore;
use super::train::{
    fit, initial_params, logits, CheckedParams, Ending, StepDone, TrainEvent, Watch,
};
use super::FinetuneError;
use crate::backbone::{Compute, Descriptor, Pooling, Repr};
use crate::cache::FeatureCache;
use crate::onnx::Model;
use crate::options::Opt;
use crate::progress::{Observer, Stop};

/// What to fine-tune, on which data, into which directory.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Feature cache of a VGG16 pooling layer, flattened (`block5_pool`, `block4_pool`, ...).
    pub cache: PathBuf,
    /// Which of the cache's representations, when it holds several (`block5_pool:flatten`).
    pub repr: Option<Repr>,
    /// Which of the cache's seeded splits.
    pub split: usize,
    /// The backbone ONNX: pretrained weights of unfrozen layers, base of the exported model.
    pub backbone: PathBuf,
    /// Convolutions after the cached layer that train (the others run once, frozen).
    pub unfreeze: Unfreeze,
    /// How `block5_pool` enters the head.
    pub pool: HeadPool,
    /// Width of the head's hidden layer.
    pub hidden: usize,
    /// Run directory (checkpoints, history, summary, exported model).
    pub out: PathBuf,
    /// A finished head-only run (its directory) whose head starts this one: the method's
    /// stage 2 starts from the head trained in stage 1, not from random values.
    pub init_from: Option<PathBuf>,
}

/// The result of a run, also written as `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Split index.
    pub split: usize,
    /// Why training ended.
    pub ending: Ending,
    /// Epochs completed.
    pub epochs: usize,
    /// Epoch whose parameters are kept (lowest validation loss).
    pub best_epoch: usize,
    /// Validation accuracy of the kept parameters.
    pub val_accuracy: f64,
    /// Test loss of the kept parameters.
    pub test_loss: f64,
    /// Test accuracy of the kept parameters.
    pub test_accuracy: f64,
    /// Mean seconds of training steps per epoch.
    pub seconds_per_epoch: f64,
    /// Seconds to score the test rows.
    pub test_seconds: f64,
    /// Training rows (with augmented copies), validation rows, test rows.
    pub rows: [usize; 3],
    /// The exported inference model (backbone with the trained weights, head, softmax).
    pub model: Option<PathBuf>,
    /// Class probabilities of every test row (`rows[2]` x classes), in `test_images` order.
    pub test_probabilities: Vec<Vec<f32>>,
    /// Source image and label of every test row.
    pub test_images: Vec<(String, usize)>,
    /// Class probabilities of every validation row, in `val_images` order (for ensembles,
    /// whose weights are chosen on validation; absent in earlier summaries).
    #[serde(default)]
    pub val_probabilities: Vec<Vec<f32>>,
    /// Source image and label of every validation row.
    #[serde(default)]
    pub val_images: Vec<(String, usize)>,
    /// Every epoch.
    pub history: Vec<EpochStats>,
}

/// The cached layer's tail of the backbone `backbone` (its convolutions, as
/// [`super::network::backbone_convs`] reads them) for a run, and the number of classes. `repr`
/// picks one representation of a cache that holds several.
pub fn cache_tail(
    features: &Path,
    repr: Option<&Repr>,
    unfreeze: Unfreeze,
    backbone: &Path,
) -> Result<(Tail, usize), FinetuneError> {
    let convs = backbone_convs(&Model::load(backbone)?)?;
    cache_tail_in(features, repr, unfreeze, &convs)
}

/// [`cache_tail`] of a backbone whose convolutions are `convs`.
fn cache_tail_in(
    features: &Path,
    repr: Option<&Repr>,
    unfreeze: Unfreeze,
    convs: &[ConvLayer],
) -> Result<(Tail, usize), FinetuneError> {
    let cache = FeatureCache::open(features)?;
    let id = match repr {
        Some(repr) => cache.identity.select(std::slice::from_ref(repr))?.0,
        None => cache.identity.clone(),
    };
    let id = &id;
    if id.pooling != Pooling::Flatten || id.layers.len() != 1 {
        return Err(FinetuneError::Data(format!(
            "{} holds {} ({:?} pooling); fine-tuning needs one layer, flattened (e.g. `tlearn features {} block4_pool {} flatten`)",
            features.display(),
            id.layers.join(","),
            id.pooling,
            Opt::Layer,
            Opt::Pool
        )));
    }
    Ok((
        tail_in(convs, &id.layers[0], id.dims, unfreeze)?,
        cache.class_names()?.len(),
    ))
}

/// `1 / sqrt(mean square)` of `rows`: the head scale that gives head inputs like these unit
/// mean square.
pub fn unit_scale(rows: ndarray::ArrayView2<f32>) -> f32 {
    let sum: f64 = rows.iter().map(|v| f64::from(*v).powi(2)).sum();
    let mean_square = sum / rows.len().max(1) as f64;
    if mean_square > 0.0 {
        (1.0 / mean_square.sqrt()) as f32
    } else {
        1.0
    }
}

/// The head scale and best head parameters of the finished run in `dir`, checked to fit `arch`.
pub fn trained_head(dir: &Path, arch: &Arch) -> Result<(f32, ParamStore), FinetuneError> {
    let path = dir.join("best.onnx");
    let bad = |reason: String| FinetuneError::Checkpoint {
        path: path.clone(),
        reason,
    };
    let specs: Vec<_> = arch
        .params()
        .into_iter()
        .filter(|p| p.name.starts_with("fc"))
        .collect();
    // Reads the head only; a head of another shape is refused by the size checks.
    let (meta, tensors) = super::checkpoint::load(&path, &specs, false)?;
    let fingerprint: serde_json::Value =
        serde_json::from_str(&meta.fingerprint).map_err(|e| bad(e.to_string()))?;
    let scale = fingerprint["arch"]["head_scale"]
        .as_f64()
        .ok_or_else(|| bad("records no head scale".into()))? as f32;
    Ok((scale, tensors.params))
}

/// Training rows the head scale is measured on (evenly spread; all when fewer).
const SCALE_ROWS: usize = 256;

/// The network of a run and its data (one split of the cache, the frozen convolutions already
/// applied), with the values its parameters start from: the pretrained convolutions and, with
/// `init_from`, the stage-1 head (whose head scale the network then keeps).
pub fn prepare(cfg: &RunConfig, compute: Compute) -> Result<Prepared, FinetuneError> {
    let repr = cfg.repr.as_ref();
    let backbone = Model::load(&cfg.backbone)?;
    let convs = backbone_convs(&backbone)?;
    let (tail, classes) = cache_tail_in(&cfg.cache, repr, cfg.unfreeze, &convs)?;
    let mut data = Data::from_cache(&cfg.cache, cfg.split, repr, Some(tail.input.clone()))?;
    if !tail.frozen.is_empty() {
        let weights = pretrained(&backbone, &tail.frozen)?;
        let graph = convs_graph(&tail.input, &tail.frozen, None, &weights)?;
        let x = forward_rows(&graph, &data, &data.rows(), compute)?;
        data = data.replaced(x, tail.trainable_input())?;
    }
    let mut start = pretrained(&backbone, &tail.trainable)?;
    let mut arch = Arch {
        input: data.shape.clone(),
        convs: tail.trainable,
        pool: cfg.pool,
        hidden: cfg.hidden,
        classes,
        head_scale: 1.0,
    };
    if let Some(dir) = &cfg.init_from {
        let head;
        (arch.head_scale, head) = trained_head(dir, &arch)?;
        start.extend(head)?;
    } else {
        // The pretrained head inputs set the scale; the trained convolutions then keep it.
        let step = data.train.len().div_ceil(SCALE_ROWS).max(1);
        let sample: Vec<usize> = data.train.iter().step_by(step).copied().collect();
        let graph = convs_graph(&arch.input, &arch.convs, Some(arch.pool), &start)?;
        arch.head_scale = unit_scale(forward_rows(&graph, &data, &sample, compute)?.view());
    }
    Ok(Prepared {
        arch,
        data,
        start,
        backbone,
    })
}

/// What [`prepare`] gives.
pub struct Prepared {
    /// The trainable network.
    pub arch: Arch,
    /// Its input rows.
    pub data: Data,
    /// Starting values by parameter name; the others are initialised afresh.
    pub start: ParamStore,
    /// The backbone: pretrained weights, base of the exported model.
    pub backbone: Model,
}

/// Trains one split, evaluates the kept parameters on the test rows, exports the inference
/// model and writes `summary.json`. `stop` interrupts (resumable; see [`fit`]).
pub fn run(
    cfg: &RunConfig,
    params: &CheckedParams,
    watch: Watch,
) -> Result<Summary, FinetuneError> {
    let Prepared {
        arch,
        data,
        start,
        backbone,
    } = prepare(cfg, params.compute)?;
    let init = initial_params(&arch, params.seed, &start)?;
    let outcome = fit(params, &arch, init, &data, &cfg.out, watch)?;
    let start = std::time::Instant::now();
    let logits = logits(&arch, &outcome.best, &data, &data.test, params.compute)?;
    let test_seconds = start.elapsed().as_secs_f64();
    let (test_loss, test_accuracy) = loss_and_accuracy(
        &logits,
        &data.test,
        &data.labels,
        arch.classes,
        params.label_smoothing,
    );
    let val_logits = self::logits(&arch, &outcome.best, &data, &data.val, params.compute)?;
    let model = if outcome.ending == Ending::Interrupted {
        None
    } else {
        let path = cfg.out.join("model.onnx");
        inference_model(&backbone, &arch, &outcome.best)?.save(&path)?;
        write_descriptor(&cfg.backbone, &path, &data.class_names)?;
        Some(path)
    };
    let h = &outcome.history;
    let summary = Summary {
        split: cfg.split,
        ending: outcome.ending,
        epochs: h.len(),
        best_epoch: outcome.best_epoch,
        val_accuracy: h
            .get(outcome.best_epoch.wrapping_sub(1))
            .map_or(0.0, |e| e.val_accuracy),
        test_loss,
        test_accuracy,
        test_seconds,
        seconds_per_epoch: h.iter().map(|e| e.train_seconds).sum::<f64>() / h.len().max(1) as f64,
        rows: [data.train.len(), data.val.len(), data.test.len()],
        model,
        test_probabilities: probabilities(&logits, arch.classes),
        test_images: images_of(&data, &data.test),
        val_probabilities: probabilities(&val_logits, arch.classes),
        val_images: images_of(&data, &data.val),
        history: outcome.history,
    };
    let path = cfg.out.join("summary.json");
    let text = serde_json::to_string_pretty(&summary).expect("summary serialises") + "\n";
    crate::output::write_atomic(&path, text.as_bytes())?;
    Ok(summary)
}

/// Softmax of each row of row-major `logits` of `classes` columns.
fn probabilities(logits: &[f32], classes: usize) -> Vec<Vec<f32>> {
    logits
        .chunks(classes)
        .map(crate::numeric::softmax)
        .collect()
}

/// Source image and label of each of `rows`.
fn images_of(data: &Data, rows: &[usize]) -> Vec<(String, usize)> {
    rows.iter()
        .map(|&r| (data.paths[r].clone(), data.labels[r] as usize))
        .collect()
}

/// Writes the exported model's descriptor beside it (`model.toml`): the backbone's input and
/// preprocessing, the model's sha256, `probabilities` as its one layer, and the class names, so
/// `tlearn predict` can run it like any model.
fn write_descriptor(
    backbone: &Path,
    model: &Path,
    class_names: &[String],
) -> Result<(), FinetuneError> {
    let mut d = Descriptor::for_model(backbone)?;
    d.name = format!("{} fine-tuned", d.name);
    d.sha256 = crate::backbone::sha256_file(model)?;
    d.layers = vec![PROBABILITIES.into()];
    d.classes = Some(class_names.to_vec());
    // Its provenance is the run (summary.json beside it), not the backbone's wheel.
    d.source = None;
    d.save_beside(model)?;
    Ok(())
}

/// Width of the head's hidden layer unless asked otherwise.
pub const DEFAULT_HIDDEN: usize = 256;

/// What a run over several splits reports as it goes.
#[derive(Debug)]
pub enum SplitEvent<'a> {
    /// A training step of a split finished.
    Step(usize, StepDone),
    /// An epoch of a split finished (its checkpoint is written).
    Epoch(usize, &'a EpochStats),
    /// A split finished: its summary.
    Done(&'a Summary),
}

impl RunConfig {
    /// Split `split` of the run whose folder is `self.out`: it trains into `out/split-K`, its
    /// head starting from `init_from/split-K` when `self.init_from` names a finished run.
    pub fn for_split(&self, split: usize) -> RunConfig {
        let folder = format!("split-{split}");
        RunConfig {
            split,
            out: self.out.join(&folder),
            init_from: self.init_from.as_ref().map(|d| d.join(&folder)),
            ..self.clone()
        }
    }
}

/// `asked`, or every split of `cache` when it is empty; refused naming a split it lacks.
pub(crate) fn splits_to_run(cache: &Path, asked: &[usize]) -> Result<Vec<usize>, FinetuneError> {
    let held = FeatureCache::open(cache)?.identity.splits;
    if let Some(&missing) = asked.iter().find(|&&k| k >= held) {
        return Err(super::data::missing_split(cache, held, missing));
    }
    Ok(match asked.is_empty() {
        true => (0..held).collect(),
        false => asked.to_vec(),
    })
}

/// Runs each of `splits` (every split of the cache when empty; a split the cache does not hold
/// is refused before any training) of the run whose folder is `base.out` in turn (see
/// [`RunConfig::for_split`]; `base.split` is not read). `stop`, checked after every step and
/// epoch, interrupts: the summaries so far come back, the last one [`Ending::Interrupted`],
/// and the same call resumes from the checkpoints.
pub fn run_splits(
    base: &RunConfig,
    splits: &[usize],
    params: &CheckedParams,
    stop: &Stop,
    observe: &mut dyn for<'e> Observer<SplitEvent<'e>>,
) -> Result<Vec<Summary>, FinetuneError> {
    let mut summaries = Vec::new();
    for split in splits_to_run(&base.cache, splits)? {
        let mut heard = |event: TrainEvent<'_>| match event {
            TrainEvent::Step(done) => observe.observe(SplitEvent::Step(split, done)),
            TrainEvent::Epoch(stats) => observe.observe(SplitEvent::Epoch(split, stats)),
        };
        let summary = run(&base.for_split(split), params, (stop, &mut heard))?;
        let interrupted = summary.ending == Ending::Interrupted;
        if !interrupted {
            observe.observe(SplitEvent::Done(&summary));
        }
        summaries.push(summary);
        if interrupted {
            break;
        }
    }
    Ok(summaries)
}
