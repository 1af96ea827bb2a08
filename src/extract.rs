//! The feature-extraction run: plan the rows, then decode / augment / preprocess on rayon
//! threads while the backbone runs the previous batch, and write each batch to the cache.

use std::ops::{ControlFlow, Deref};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use crate::augment::{AugmentParams, Recipe};
use crate::backbone::{Backbone, BackboneError, ExecutionProvider, Pooling, Repr};
use crate::cache::{
    CacheError, FeatureCache, Fingerprint, Identity, Plan, ReprColumns, RowPlan, RowStatus,
    UNLABELED,
};
use crate::dataset::{
    stored_to_path, stratified_splits, DataSet, DatasetError, Ignored, Part, SplitSpec,
};
use crate::options::Opt;
use crate::preprocess::{
    decode_ahead, decode_rgb, load_rgb, read_image_file, DecodeLimits, Prepared, Preprocessing,
};
use crate::progress::{Interrupted, Observer, Stop};

/// Most seeded splits a run may ask for: beyond it the mean barely moves while the time and the
/// cache's split codes grow with every split (4294967296 splits would not fit in memory).
pub const MAX_SPLITS: usize = 100;

/// Errors that stop an extraction run (bad single images are skipped, not errors).
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The data set could not be listed.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// The backbone could not be loaded or run.
    #[error(transparent)]
    Backbone(#[from] BackboneError),
    /// The cache could not be created, opened or written.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// Strict, and some images cannot be used; nothing was written.
    #[error("{opt_strict}: {} image(s) cannot be used, nothing was written:\n  {}", .0.len(), .0.join("\n  "), opt_strict = Opt::Strict)]
    Strict(Vec<String>),
    /// A numeric option is out of its range; nothing was read or written.
    #[error("{option} {value}: {why}")]
    BadOption {
        /// The option.
        option: Opt,
        /// The value given.
        value: String,
        /// What it must be.
        why: &'static str,
    },
    /// The backbone produced NaN or infinite features: the model (or its preprocessing) is broken.
    #[error("the backbone produced non-finite features for {0}: check the model file and its descriptor's preprocessing (rows written so far are kept)")]
    NonFinite(String),
}

/// The smallest [`ExtractConfig::size`]: VGG16's block5_pool is 1 x 1 at 32 px.
pub const MIN_SIZE: u32 = 32;
/// The largest [`ExtractConfig::size`].
pub const MAX_SIZE: u32 = 2048;

/// What to extract, from where, into which cache.
#[derive(Debug, Clone)]
pub struct ExtractConfig {
    /// Data set root (folder per class, or the flowers layout; any folder tree with `unlabeled`).
    pub data: PathBuf,
    /// Every image under `data`, at any depth, without classes or splits.
    pub unlabeled: bool,
    /// Backbone ONNX file (its descriptor sits beside it).
    pub backbone: PathBuf,
    /// Layers whose pooled outputs are concatenated.
    pub layers: Vec<String>,
    /// Pooling of each layer.
    pub pooling: Pooling,
    /// Representations stored side by side; when given, `layers` and `pooling` are
    /// not used.
    pub reprs: Vec<Repr>,
    /// Augmentation recipe for the copies.
    pub recipe: Recipe,
    /// Augmented copies per augmented image.
    pub copies: u32,
    /// Side of the square image the backbone sees, in pixels; `None`: its descriptor's (224
    /// for VGG16). Recorded in the identity's preprocessing, so a cache of one size is
    /// refused for another.
    pub size: Option<u32>,
    /// Augment every image, not only those that are training images in some split.
    pub augment_all: bool,
    /// Split fractions.
    pub split: SplitSpec,
    /// Number of seeded splits.
    pub splits: usize,
    /// Seed of splits and augmentation.
    pub seed: u64,
    /// Images per backbone run.
    pub batch: usize,
    /// Execution provider.
    pub ep: ExecutionProvider,
    /// ONNX Runtime intra-op threads.
    pub threads: usize,
    /// Fail before writing anything if any image cannot be used.
    pub strict: bool,
    /// Decoding limits for untrusted images.
    pub limits: DecodeLimits,
    /// Keep only the first N images of each class (small slices for tests and benchmarks).
    pub per_class: Option<usize>,
    /// The cache file.
    pub cache: PathBuf,
    /// Hears how far the run is (the CLI draws a progress bar); `None`: nobody listens.
    pub progress: Option<RowObserver>,
}

impl ExtractConfig {
    /// Checks every numeric option once, before anything is read or written (linfa's
    /// `ParamGuard` style): [`run`] and the benchmark take only what this returns.
    pub fn check(&self) -> Result<CheckedConfig, ExtractError> {
        let bad = |option, value: String, why| Err(ExtractError::BadOption { option, value, why });
        if self.splits == 0 {
            return bad(Opt::Splits, "0".into(), "at least one split is needed");
        }
        if self.splits > MAX_SPLITS {
            return bad(
                Opt::Splits,
                self.splits.to_string(),
                "at most 100 splits (each is a full train / validation / test cycle, and the cache stores every row's part in each)",
            );
        }
        if self.copies > u32::from(u16::MAX) {
            return bad(
                Opt::Copies,
                self.copies.to_string(),
                "at most 65535 copies per image (the cache stores the copy index in 16 bits)",
            );
        }
        if self.unlabeled && self.per_class.is_some() {
            return bad(
                Opt::PerClass,
                self.per_class.map_or(String::new(), |n| n.to_string()),
                "unlabeled images have no classes to take images from",
            );
        }
        if self.per_class == Some(0) {
            return bad(
                Opt::PerClass,
                "0".into(),
                "keep at least one image per class",
            );
        }
        if let Some(size) = self.size.filter(|s| !(MIN_SIZE..=MAX_SIZE).contains(s)) {
            return bad(
                Opt::Size,
                size.to_string(),
                "the side must be 32 to 2048 pixels (VGG16's deepest block needs 32; larger maps exhaust memory)",
            );
        }
        if self.batch == 0 {
            return bad(Opt::Batch, "0".into(), "a batch holds at least one image");
        }
        if self.threads == 0 {
            return bad(Opt::Threads, "0".into(), "at least one thread is needed");
        }
        self.split.check()?;
        if !self.cache.as_os_str().is_empty() {
            crate::cache::check_path(&self.cache)?;
        }
        Ok(CheckedConfig(self.clone()))
    }

    /// Seeded splits stored with the features: none for unlabeled images.
    pub fn stored_splits(&self) -> usize {
        if self.unlabeled {
            0
        } else {
            self.splits
        }
    }

    /// The representations of a row, in column order: `reprs`, else every layer with `pooling`.
    pub fn representations(&self) -> Vec<Repr> {
        if self.reprs.is_empty() {
            Repr::each_layer(&self.layers, self.pooling)
        } else {
            self.reprs.clone()
        }
    }
}

/// An [`ExtractConfig`] whose options passed [`ExtractConfig::check`]; read-only.
#[derive(Debug, Clone)]
pub struct CheckedConfig(ExtractConfig);

impl Deref for CheckedConfig {
    type Target = ExtractConfig;

    fn deref(&self) -> &ExtractConfig {
        &self.0
    }
}

/// How far an extraction is, as its [`RowObserver`] hears it (the CLI draws a progress bar).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowEvent {
    /// Before any row is computed: the `rows` rows to compute, of `dims` features, take about
    /// `bytes` in the cache.
    Planned {
        /// Rows to compute.
        rows: usize,
        /// Features per row.
        dims: usize,
        /// Their size in the cache.
        bytes: u64,
    },
    /// The run is about to compute `rows` rows.
    Started {
        /// Rows to compute.
        rows: usize,
    },
    /// `rows` more rows were written (computed or skipped).
    Written {
        /// Rows in the batch.
        rows: usize,
    },
    /// The run ended: finished, interrupted or failed.
    Finished,
}

/// The [`Observer`] of an extraction's rows. It rides in the [`ExtractConfig`] that auto and
/// shards pass on, so it is shared by the config's clones, behind a lock (any thread may hold
/// a config).
#[derive(Clone)]
pub struct RowObserver(Arc<Mutex<dyn Observer<RowEvent> + Send>>);

impl RowObserver {
    /// `observer` hears every row event of the runs of configs holding this.
    pub fn new(observer: impl Observer<RowEvent> + Send + 'static) -> RowObserver {
        RowObserver(Arc::new(Mutex::new(observer)))
    }

    /// Tells the observer `event` (a panic that poisoned the lock does not silence it).
    fn observe(&self, event: RowEvent) {
        let mut observer = self.0.lock().unwrap_or_else(|p| p.into_inner());
        observer.observe(event);
    }
}

impl std::fmt::Debug for RowObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RowObserver")
    }
}

impl CheckedConfig {
    /// Tells the config's observer, if any, `event`.
    fn observe(&self, event: RowEvent) {
        if let Some(observer) = &self.progress {
            observer.observe(event);
        }
    }
}

/// What a run did, printed at its end and returned to callers.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Source images in the data set.
    pub images: usize,
    /// Rows in the cache (images plus augmented copies).
    pub rows: usize,
    /// Rows computed by this run.
    pub computed: usize,
    /// Rows that were already in the cache.
    pub reused: usize,
    /// Images that could not be used, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Length of a feature row.
    pub dims: usize,
    /// Wall-clock seconds of this run's extraction.
    pub seconds: f64,
    /// Rows computed per second.
    pub rows_per_second: f64,
    /// Set if the run stopped early on request; re-running resumes.
    pub interrupted: Option<Interrupted>,
    /// Images whose file changed since their rows were cached: all their rows were recomputed.
    pub recomputed: Vec<String>,
    /// Entries of the data folder that are not images (text files, nested folders, dangling links).
    pub ignored: Vec<Ignored>,
    /// Notes about the data set (class folders left out).
    pub warnings: Vec<String>,
}

/// One batch ready for the backbone: each unit is the rows of one source image, with the
/// fingerprint of its file as read for this batch; each row is one view in the tensor.
pub(crate) type PreparedRows = Prepared<(Vec<usize>, Fingerprint)>;

/// Lists the data set and plans every row, without touching the model or the cache.
/// Unlabeled images have no splits, so they are augmented only with `augment_all`.
pub fn plan_rows(cfg: &CheckedConfig, data: &DataSet) -> Vec<RowPlan> {
    let labels = data.labels();
    let splits = stratified_splits(&labels, cfg.split, cfg.stored_splits(), cfg.seed);
    let augmenting = !cfg.recipe.is_none() && cfg.copies > 0;
    let mut rows = Vec::new();
    for (i, sample) in data.samples.iter().enumerate() {
        let parts: Vec<u8> = splits.iter().map(|s| s[i] as u8).collect();
        let trains = splits.iter().any(|s| s[i] == Part::Train);
        let copies = if augmenting && (cfg.augment_all || trains) {
            cfg.copies
        } else {
            0
        };
        for copy in 0..=copies {
            let augment = if copy == 0 {
                String::new()
            } else {
                let params = cfg.recipe.sample(cfg.seed, &sample.path, copy);
                serde_json::to_string(&params).expect("augment params serialise")
            };
            rows.push(RowPlan {
                image: i as u32,
                path: sample.path.clone(),
                label: if data.is_labelled() {
                    sample.label as i32
                } else {
                    UNLABELED
                },
                copy: u16::try_from(copy).expect("checked: at most 65535 copies"),
                augment,
                parts: parts.clone(),
            });
        }
    }
    rows
}

/// The data set a run reads: `cfg.data`, cut to `cfg.per_class` images per class, without
/// the images that cannot be used ([`leave_out_unusable`]; images the cache at `cfg.cache`
/// already holds are kept as they were planned, so a cache resumes with its own plan).
pub fn open_data(cfg: &ExtractConfig) -> Result<DataSet, ExtractError> {
    let mut data = if cfg.unlabeled {
        DataSet::unlabeled(&cfg.data)?
    } else {
        DataSet::open(&cfg.data)?
    };
    if let Some(n) = cfg.per_class.filter(|_| !cfg.unlabeled) {
        let mut kept = vec![0usize; data.class_names.len()];
        data.samples.retain(|s| {
            kept[s.label] += 1;
            kept[s.label] <= n
        });
    }
    let planned = FeatureCache::open_unlocked(&cfg.cache)
        .and_then(|cache| cache.paths())
        .map(|paths| paths.into_iter().collect())
        .unwrap_or_default();
    leave_out_unusable(&mut data, &cfg.limits, &planned);
    if data.samples.is_empty() {
        return Err(DatasetError::NoUsableImages {
            path: cfg.data.clone(),
            skipped: data.unusable.len(),
            first: data.unusable.first().map_or(String::new(), |u| u.1.clone()),
        }
        .into());
    }
    Ok(data)
}

/// Decodes every image once (in parallel) and moves those that cannot be used to
/// `data.unusable`, with the reason. Splits, counts and rows are then planned over images
/// that decode: a class with 30 broken files among 49 has 19 images, and its test images are
/// real ones. Images in `planned` (the paths an existing cache holds) are kept undecoded: the
/// cache planned them already, an image broken since is recomputed and skipped there, and
/// caches made before this check (with rows for broken images) still resume.
pub fn leave_out_unusable(
    data: &mut DataSet,
    limits: &DecodeLimits,
    planned: &std::collections::HashSet<String>,
) {
    let usable: Vec<Result<(), String>> = data
        .samples
        .par_iter()
        .map(|s| {
            if planned.contains(&s.path) {
                return Ok(());
            }
            load_rgb(&data.full_path(s), limits)
                .map(drop)
                .map_err(|e| e.to_string())
        })
        .collect();
    let mut kept = Vec::with_capacity(data.samples.len());
    for (sample, usable) in std::mem::take(&mut data.samples).into_iter().zip(usable) {
        match usable {
            Ok(()) => kept.push(sample),
            Err(reason) => data.unusable.push((sample.path, reason)),
        }
    }
    data.samples = kept;
}

/// The data set, the planned rows and the loaded backbone of one run.
pub(crate) struct Setup {
    pub(crate) data: DataSet,
    pub(crate) plan: Plan,
    pub(crate) backbone: Backbone,
}

/// Lists the data, plans the rows and opens the backbone (probing its feature length).
pub(crate) fn setup(cfg: &CheckedConfig) -> Result<Setup, ExtractError> {
    let data = open_data(cfg)?;
    let rows = plan_rows(cfg, &data);
    if cfg.strict && !data.unusable.is_empty() {
        let failures = data.unusable.iter().map(|(_, reason)| reason.clone());
        return Err(ExtractError::Strict(failures.collect()));
    }
    let reprs = cfg.representations();
    let layers = if cfg.reprs.is_empty() {
        cfg.layers.clone()
    } else {
        Repr::layers(&reprs)
    };
    let mut backbone = Backbone::open(&cfg.backbone, &layers, cfg.ep, cfg.threads)?;
    if let Some(size) = cfg.size {
        backbone.set_size(size);
    }
    let preprocessing = backbone.descriptor.preprocessing.clone();
    let widths = backbone.repr_dims(&reprs)?;
    let side_by_side = if cfg.reprs.is_empty() {
        Vec::new()
    } else {
        reprs
            .iter()
            .zip(&widths)
            .map(|(r, &dims)| ReprColumns {
                layer: r.layer.clone(),
                pooling: r.pooling,
                dims,
            })
            .collect()
    };
    let plan = Plan {
        identity: Identity {
            model_name: backbone.descriptor.name.clone(),
            model_sha256: backbone.descriptor.sha256.clone(),
            precision: backbone.descriptor.precision,
            layers,
            pooling: reprs.first().map_or(cfg.pooling, |r| r.pooling),
            preprocessing,
            augment: cfg.recipe.to_string(),
            copies: cfg.copies,
            seed: cfg.seed,
            split: cfg.split,
            splits: cfg.stored_splits(),
            dims: widths.iter().sum(),
            shard: None,
            reprs: side_by_side,
            unlabeled: cfg.unlabeled,
        },
        class_names: data.class_names.clone(),
        rows,
        backbone: std::path::absolute(&cfg.backbone).ok(),
    };
    Ok(Setup {
        data,
        plan,
        backbone,
    })
}

/// Runs (or resumes) an extraction; `stop` ends it cleanly after the batch in flight.
///
/// On resume, every cached image whose file changed since (size and content hash) has all
/// its rows recomputed, and is named in [`Summary::recomputed`].
pub fn run(cfg: &ExtractConfig, stop: &Stop) -> Result<Summary, ExtractError> {
    let cfg = &cfg.check()?;
    run_setup(cfg, setup(cfg)?, stop)
}

/// Runs (or resumes) the extraction of an already planned `setup` (all rows, or a shard's).
pub(crate) fn run_setup(
    cfg: &CheckedConfig,
    setup: Setup,
    stop: &Stop,
) -> Result<Summary, ExtractError> {
    let Setup {
        data,
        plan,
        mut backbone,
    } = setup;
    let (cache, resumed) = open_announced(cfg, &plan, &data)?;
    cfg.observe(RowEvent::Started {
        rows: resumed.pending.len(),
    });
    let start = Instant::now();
    let pass = compute_rows(
        cfg,
        (&plan, &data),
        &cache,
        &mut backbone,
        &resumed.pending,
        stop,
    );
    cfg.observe(RowEvent::Finished);
    let (computed, interrupted) = pass?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(Summary {
        images: data.samples.len(),
        rows: plan.rows.len(),
        computed,
        reused: resumed.reused,
        skipped: skipped_images(&cache, &plan, &data.unusable)?,
        dims: plan.identity.dims,
        seconds,
        rows_per_second: if seconds > 0.0 {
            computed as f64 / seconds
        } else {
            0.0
        },
        interrupted: interrupted.then_some(Interrupted),
        recomputed: resumed.recomputed,
        ignored: data.ignored,
        warnings: data.warnings,
    })
}

/// Where a resumed cache stands before this run computes anything.
struct Resumed {
    /// Rows still to compute.
    pending: Vec<usize>,
    /// Rows already done.
    reused: usize,
    /// Images whose file changed since: their rows are pending again.
    recomputed: Vec<String>,
}

/// [`open_cache`] (which refuses a new cache its disk cannot hold), then tells the progress
/// listener how much the rows to compute will take: a shallow layer's rows are large.
fn open_announced(
    cfg: &CheckedConfig,
    plan: &Plan,
    data: &DataSet,
) -> Result<(FeatureCache, Resumed), ExtractError> {
    let (cache, resumed) = open_cache(cfg, plan, data)?;
    let (rows, dims) = (resumed.pending.len(), plan.identity.dims);
    let bytes = crate::cache::cache_bytes(rows, dims);
    cfg.observe(RowEvent::Planned { rows, dims, bytes });
    Ok((cache, resumed))
}

/// Creates or resumes the cache of `plan`, forgetting the rows of images whose file changed.
fn open_cache(
    cfg: &CheckedConfig,
    plan: &Plan,
    data: &DataSet,
) -> Result<(FeatureCache, Resumed), ExtractError> {
    let cache = FeatureCache::create_or_resume(&cfg.cache, plan)?;
    let recomputed = cache.forget_changed_images(&plan.rows, &data.root, &cfg.limits)?;
    let status = cache.status()?;
    let pending = (0..status.len())
        .filter(|&r| status[r] == RowStatus::Missing)
        .collect();
    let reused = status.iter().filter(|s| **s == RowStatus::Done).count();
    let resumed = Resumed {
        pending,
        reused,
        recomputed,
    };
    Ok((cache, resumed))
}

/// Computes the `pending` rows: batches are decoded on a producer thread (rayon inside) while
/// the backbone runs the previous one, and each is written as it comes. Returns the rows
/// computed and whether `stop` ended the pass early.
fn compute_rows(
    cfg: &CheckedConfig,
    (plan, data): (&Plan, &DataSet),
    cache: &FeatureCache,
    backbone: &mut Backbone,
    pending: &[usize],
    stop: &Stop,
) -> Result<(usize, bool), ExtractError> {
    let preprocessing = &plan.identity.preprocessing;
    let reprs = plan.identity.representations();
    let (mut computed, mut interrupted) = (0, false);
    decode_ahead(
        pending.chunks(cfg.batch).take_while(|_| !stop.requested()),
        |batch| prepare_batch(batch, plan, data, preprocessing, &cfg.limits),
        |prepared| {
            computed += write_batch(cache, plan, backbone, &reprs, &prepared)?;
            let written = prepared.units.iter().map(|(u, _)| u.0.len()).sum::<usize>();
            cfg.observe(RowEvent::Written { rows: written });
            interrupted = stop.requested();
            Ok::<_, ExtractError>(match interrupted {
                true => ControlFlow::Break(()),
                false => ControlFlow::Continue(()),
            })
        },
    )?;
    Ok((computed, interrupted))
}

/// Runs the backbone on one prepared batch and writes its rows (fingerprints first, then the
/// features and their status), then marks its unusable images skipped; the rows computed.
fn write_batch(
    cache: &FeatureCache,
    plan: &Plan,
    backbone: &mut Backbone,
    reprs: &[Repr],
    prepared: &PreparedRows,
) -> Result<usize, ExtractError> {
    let (mut rows, mut fingerprints): (Vec<usize>, Vec<Fingerprint>) = (Vec::new(), Vec::new());
    for ((group, fingerprint), _) in prepared.units.iter().filter(|(_, ok)| ok.is_ok()) {
        rows.extend(group);
        fingerprints.extend(vec![*fingerprint; group.len()]);
    }
    if !rows.is_empty() {
        let features = backbone.representations(&prepared.tensor, rows.len(), reprs)?;
        if let Some(bad) = features
            .outer_iter()
            .position(|r| r.iter().any(|v| !v.is_finite()))
        {
            return Err(ExtractError::NonFinite(plan.rows[rows[bad]].path.clone()));
        }
        cache.write_fingerprints(&rows, &fingerprints)?;
        cache.write_rows(&rows, features.view())?;
    }
    for ((rows, fingerprint), reason) in &prepared.units {
        if let Err(reason) = reason {
            cache.write_fingerprints(rows, &vec![*fingerprint; rows.len()])?;
            cache.mark_skipped(rows, reason)?;
        }
    }
    Ok(rows.len())
}

/// The skipped images, with the reason, sorted by path: those left out before planning
/// (`unusable`) and those whose rows the cache marks skipped (their original's row).
fn skipped_images(
    cache: &FeatureCache,
    plan: &Plan,
    unusable: &[(String, String)],
) -> Result<Vec<(String, String)>, ExtractError> {
    let mut skipped: Vec<(String, String)> = cache
        .skipped()?
        .into_iter()
        .filter(|(row, _)| plan.rows[*row].copy == 0)
        .map(|(row, reason)| (plan.rows[row].path.clone(), reason))
        .chain(unusable.iter().cloned())
        .collect();
    skipped.sort();
    Ok(skipped)
}

/// Decodes each source image of the batch once, then augments and preprocesses each of its rows.
pub(crate) fn prepare_batch(
    batch: &[usize],
    plan: &Plan,
    data: &DataSet,
    prep: &Preprocessing,
    limits: &DecodeLimits,
) -> PreparedRows {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for &row in batch {
        match groups.last_mut() {
            Some(group) if plan.rows[group[0]].image == plan.rows[row].image => group.push(row),
            _ => groups.push(vec![row]),
        }
    }
    // Each group: the fingerprint of its file and the CHW tensors of its rows back to back,
    // or why its image is unusable.
    Prepared::build(groups, prep.chw_len(), |group| {
        let path = data.root.join(stored_to_path(&plan.rows[group[0]].path));
        match read_image_file(&path, limits) {
            Ok(bytes) => {
                let tensor = decode_rgb(&path, &bytes, limits)
                    .map_err(|e| e.to_string())
                    .map(|image| rows_tensor(&group, &image, plan, prep));
                ((group, Fingerprint::of(&bytes)), tensor)
            }
            Err(e) => ((group, Fingerprint::UNREAD), Err(e.to_string())),
        }
    })
}

/// The CHW tensors of one image's rows (original and augmented copies), back to back.
fn rows_tensor(
    group: &[usize],
    image: &image::RgbImage,
    plan: &Plan,
    prep: &Preprocessing,
) -> Vec<f32> {
    let chw = prep.chw_len();
    let mut tensor = vec![0f32; chw * group.len()];
    for (&row, out) in group.iter().zip(tensor.chunks_mut(chw)) {
        let params = &plan.rows[row].augment;
        let params = if params.is_empty() {
            AugmentParams::IDENTITY
        } else {
            serde_json::from_str(params).expect("planned params parse")
        };
        prep.write_view_chw(image, &params, out);
    }
    tensor
}
