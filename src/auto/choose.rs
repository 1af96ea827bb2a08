//! The candidates and the choice: feature sets (a layer or adjacent layers, one pooling) x
//! classifier x C, each scored by its mean validation accuracy over the seeded splits; then,
//! for the few best (feature set, classifier) pairs only, the variants of how the cache's rows
//! are used ([`Variant`]: augmented training copies on or off, test-time augmentation). Each
//! candidate is scored on one cache, of one image size; with several sizes (one cache each)
//! every size's candidates compete. The choice reads validation scores only; test accuracies
//! are kept for an appendix.

use std::borrow::Cow;
use std::sync::Mutex;
use std::time::Instant;

use rayon::prelude::*;

use serde::{Deserialize, Serialize};

use crate::backbone::{Pooling, Repr};
use crate::classify::data::CacheData;
use crate::classify::train::{self, TrainConfig, TrainOutcome};
use crate::classify::{ClassifyError, Kind, Normalize};
use crate::dataset::Part;
use crate::progress::{Interrupted, Observer, Stop};

/// Two mean accuracies closer than this are a tie (they are means of counts over the same
/// images, so a real difference is at least 1 / (splits x validation images)).
pub const TIE: f64 = 1e-9;

/// Candidate layers by default: the deepest three of the backbone (VGG16: blocks 3 to 5).
pub const DEFAULT_LAYERS: usize = 3;

/// The (feature set, classifier) pairs of the first stage, best first, whose variants the
/// second stage tries, besides the best of each layout they leave out ([`top_pairs`]):
/// every variant of every pair would multiply the search's cost.
pub const REFINED_PAIRS: usize = 2;

/// How a (feature set, classifier) uses the rows of the one cache: one value of each lever
/// decided on validation (no second extraction). A lever is one field; a new lever is one
/// more field, one more axis in [`Variant::axes`] and one more line in [`Variant::combine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    /// Train on the augmented copies of training images too.
    pub train_copies: bool,
    /// Test-time augmentation: average a validation / test image's scores over its copies.
    pub tta: bool,
    /// Normalisation of each representation block before standardisation.
    pub normalize: Normalize,
    /// Only the first this many augmented copies of each image (training rows and TTA
    /// views); `None`: every copy the cache holds. Absent in older decisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies_used: Option<u32>,
}

impl Variant {
    /// The variant a training configuration uses.
    pub fn of(cfg: &TrainConfig) -> Variant {
        Variant {
            train_copies: cfg.train_copies,
            tta: cfg.tta,
            normalize: cfg.normalize,
            copies_used: cfg.copies_used,
        }
    }

    /// `cfg` with this variant's levers.
    pub fn apply(self, cfg: &TrainConfig) -> TrainConfig {
        TrainConfig {
            train_copies: self.train_copies,
            tta: self.tta,
            normalize: self.normalize,
            copies_used: self.copies_used,
            ..cfg.clone()
        }
    }

    /// Short text for tables: `copies`, `no copies`, then `(K per image)` when only the first
    /// K copies are read, then `+ tta`, then `+ l2` or `+ power`.
    pub fn label(&self) -> String {
        let mut label = if self.train_copies {
            "copies"
        } else {
            "no copies"
        }
        .to_string();
        if let Some(k) = self.copies_used {
            label.push_str(&format!(" ({k} per image)"));
        }
        if self.tta {
            label.push_str(" + tta");
        }
        if !self.normalize.is_none() {
            label = format!("{label} + {}", self.normalize.name());
        }
        label
    }

    /// Order on ties (smaller first): `tlearn train`'s defaults, the cheaper to use first: no
    /// TTA (it runs the backbone once per copy at prediction), no normalisation, copies on,
    /// every copy read.
    fn rank(&self) -> (bool, bool, bool, bool) {
        (
            self.tta,
            !self.normalize.is_none(),
            !self.train_copies,
            self.copies_used.is_some(),
        )
    }

    /// The levers `data` allows changing from `self`: per lever (one axis each), the variants
    /// that differ from `self` in that lever only. Training copies only if the cache holds
    /// copies of training images; TTA only if it holds copies of validation images
    /// (augmenting every image); reading only the first half of the copies (rounded up) if it
    /// holds two or more of each image and `self` reads them (trains on them or averages over
    /// them); the normalisations on any cache.
    pub fn axes(self, data: &CacheData) -> Vec<Vec<Variant>> {
        let mut axes = Vec::new();
        if has_copies(data, Part::Train) {
            axes.push(vec![Variant {
                train_copies: !self.train_copies,
                ..self
            }]);
        }
        let held = data.identity.copies;
        let reads_copies = (self.train_copies && has_copies(data, Part::Train))
            || (self.tta && has_copies(data, Part::Val));
        if held >= 2 && reads_copies {
            let fewer = held.div_ceil(2);
            axes.push(vec![Variant {
                copies_used: match self.copies_used {
                    None => Some(fewer),
                    Some(_) => None,
                },
                ..self
            }]);
        }
        if Self::tta_possible(data) {
            axes.push(vec![Variant {
                tta: !self.tta,
                ..self
            }]);
        }
        let normalizations = [Normalize::None, Normalize::L2, Normalize::Power];
        axes.push(
            normalizations
                .into_iter()
                .filter(|n| *n != self.normalize)
                .map(|normalize| Variant { normalize, ..self })
                .collect(),
        );
        axes
    }

    /// Whether `data` holds copies of validation images, so that TTA can be tried.
    pub fn tta_possible(data: &CacheData) -> bool {
        has_copies(data, Part::Val)
    }

    /// `self` with the lever each of `changes` changes from `self` (each differs in one).
    pub fn combine(self, changes: &[Variant]) -> Variant {
        let mut v = self;
        for c in changes {
            if c.train_copies != self.train_copies {
                v.train_copies = c.train_copies;
            }
            if c.tta != self.tta {
                v.tta = c.tta;
            }
            if c.normalize != self.normalize {
                v.normalize = c.normalize;
            }
            if c.copies_used != self.copies_used {
                v.copies_used = c.copies_used;
            }
        }
        v
    }
}

/// Whether `data` holds augmented copies of `part`'s images (in the first split).
fn has_copies(data: &CacheData, part: Part) -> bool {
    (0..data.labels.len())
        .any(|r| data.usable[r] && data.copies[r] > 0 && data.parts[[r, 0]] == part)
}

/// The poolings auto compares for every layer: global average and maximum, and both over the
/// map's quarters (where in the image a feature fired: on centred, aligned images such as
/// scans or digits, the quarters of block4 beat the flattened deepest layer, see docs/levers.md).
pub const POOLINGS: [Pooling; 4] = [Pooling::Avg, Pooling::Max, Pooling::Avg2x2, Pooling::Max2x2];

/// Every representation one extraction stores for `layers` (shallow to deep): each of
/// `poolings` (auto's default: [`POOLINGS`]) of each, and the deepest flattened.
pub fn extraction_reprs(layers: &[String], poolings: &[Pooling]) -> Vec<Repr> {
    let mut reprs = Vec::new();
    for layer in layers {
        for &pooling in poolings {
            reprs.push(Repr {
                layer: layer.clone(),
                pooling,
            });
        }
    }
    if let Some(deepest) = layers.last() {
        reprs.push(Repr {
            layer: deepest.clone(),
            pooling: Pooling::Flatten,
        });
    }
    reprs
}

/// The feature sets compared: for each of `poolings` (auto's default: [`POOLINGS`]), every
/// run of adjacent layers (each layer alone, each pair, ..., all); and the deepest layer
/// flattened.
pub fn feature_sets(layers: &[String], poolings: &[Pooling]) -> Vec<Vec<Repr>> {
    let mut sets = Vec::new();
    for &pooling in poolings {
        for len in 1..=layers.len() {
            for run in layers.windows(len) {
                sets.push(Repr::each_layer(run, pooling));
            }
        }
    }
    if let Some(deepest) = layers.last() {
        sets.push(vec![Repr {
            layer: deepest.clone(),
            pooling: Pooling::Flatten,
        }]);
    }
    sets
}

/// One candidate: a feature set, a classifier and a C, with its validation scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// Side of the square image the backbone saw, in pixels (the cache's).
    pub size: u32,
    /// The representations, in column order (`layer:pooling`).
    pub reprs: Vec<String>,
    /// The layers, joined by `+`.
    pub layers: String,
    /// The pooling shared by the representations.
    pub pooling: String,
    /// Classifier.
    pub kind: Kind,
    /// How the rows are used: training copies, TTA.
    pub variant: Variant,
    /// Columns.
    pub dims: usize,
    /// Regularisation.
    pub c: f64,
    /// Validation accuracy, mean over the splits: the score the choice uses.
    pub val_accuracy: f64,
    /// Validation accuracy of each split.
    pub val_per_split: Vec<f64>,
    /// Validation images of each split.
    pub val_images: Vec<usize>,
    /// Seconds of the fits, summed over splits.
    pub fit_seconds: f64,
    /// False when a fit of any split stopped at its iteration limit: its validation score
    /// may be too low, so it is flagged (in the decision) rather than trusted silently.
    pub converged: bool,
    /// The search's stage that scored it: 1 ([`search`]) or 2 ([`refine`]).
    pub stage: u8,
}

impl Candidate {
    /// The representations, parsed back.
    pub fn representations(&self) -> Vec<Repr> {
        self.reprs
            .iter()
            .map(|r| r.parse().expect("written from a Repr"))
            .collect()
    }
}

/// Test accuracy of a (feature set, classifier) with C chosen on validation in each split, as
/// `tlearn train` does: for the appendix only, never read by [`best`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestOnly {
    /// Side of the square image the backbone saw, in pixels.
    pub size: u32,
    /// `layer:pooling` of the feature set, joined by `+`.
    pub features: String,
    /// Classifier.
    pub kind: Kind,
    /// How the rows are used: training copies, TTA.
    pub variant: Variant,
    /// Columns.
    pub dims: usize,
    /// Test accuracy of each split.
    pub test_accuracy: Vec<f64>,
    /// Test images of each split.
    pub test_images: Vec<usize>,
}

/// What the search gave: every candidate, and the appendix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Search {
    /// Every (feature set, classifier, C).
    pub candidates: Vec<Candidate>,
    /// Test accuracies, not used for choosing.
    pub test_only: Vec<TestOnly>,
    /// The searched fits scored with test-time augmentation switched the other way: not
    /// candidates, but what a TTA variant of stage 2 would fit again (the training rows and
    /// so the models are the same; only the scoring of validation and test images differs).
    #[serde(skip)]
    spare: Vec<Scoring>,
}

/// The candidates and appendix row of one (feature set, classifier, variant).
#[derive(Debug, Clone, PartialEq)]
struct Scoring {
    candidates: Vec<Candidate>,
    test_only: TestOnly,
}

/// How far the search is, for progress lines.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchProgress {
    /// (Feature set, classifier) pairs done.
    pub done: usize,
    /// All pairs.
    pub total: usize,
    /// Estimated seconds left (from the columns still to fit).
    pub eta_seconds: f64,
    /// What was just done.
    pub line: String,
}

/// One (cache, feature set, classifier, variant) to train over the C grid.
struct Job<'a> {
    data: &'a CacheData,
    set: &'a [Repr],
    kind: Kind,
    variant: Variant,
    dims: usize,
    stage: u8,
}

/// Stage 1: on each cache (one per image size), trains each of its feature sets with every
/// classifier over the C grid (`base` gives the rest of the protocol, its variant included,
/// but the quarters train on the originals: `first_variant`) and collects the validation
/// scores per C. The caches must hold the same images and splits. See [`run_jobs`] for how
/// the jobs of every size run together and stop.
pub fn search(
    caches: &[(&CacheData, &[Vec<Repr>])],
    kinds: &[Kind],
    base: &TrainConfig,
    stop: &Stop,
    progress: &mut (dyn Observer<SearchProgress> + Send),
) -> Result<Search, ClassifyError> {
    let mut jobs = Vec::new();
    for &(data, sets) in caches {
        for set in sets {
            let dims = data.identity.select(set)?.1.len();
            for &kind in kinds {
                jobs.push(Job {
                    data,
                    set,
                    kind,
                    variant: first_variant(data, set, Variant::of(base)),
                    dims,
                    stage: 1,
                });
            }
        }
    }
    run_jobs(&jobs, base, &[], stop, progress)
}

/// The variant stage 1 scores `set` with: `base`, except that the quarters' sets train on the
/// original images only when `data` holds training copies. They are half of the sets and each
/// has 4x the columns of its global pooling, so with the copies they made the search about 4x
/// longer; on the originals they cost a seventh of the rows (with 6 copies), and the copies'
/// crops and rotations move what a quarter records anyway (digits: 97.60 % of validation
/// without them, 95.73 % with). The best quarters pair tries the copies in stage 2
/// ([`top_pairs`] always refines the best of each layout).
fn first_variant(data: &CacheData, set: &[Repr], base: Variant) -> Variant {
    let quarters = set
        .iter()
        .any(|r| Layout::of_pooling(r.pooling) == Layout::Quarters);
    if quarters && has_copies(data, Part::Train) {
        Variant {
            train_copies: false,
            copies_used: None,
            ..base
        }
    } else {
        base
    }
}

/// Stage 2: for the `pairs` best (size, feature set, classifier) of `stage1` (by validation),
/// and the best of each layout they miss ([`top_pairs`]), on the cache of that size among
/// `caches`, each lever the cache allows changed alone from the pair's stage-1 variant
/// ([`Variant::axes`]), then, where changing more than one lever alone beat that variant,
/// those changes together. Gives `stage1` with these candidates added; [`best`] then chooses
/// among all of them on validation only.
pub fn refine(
    caches: &[&CacheData],
    stage1: Search,
    base: &TrainConfig,
    pairs: usize,
    stop: &Stop,
    progress: &mut (dyn Observer<SearchProgress> + Send),
) -> Result<Search, ClassifyError> {
    let top: Vec<Candidate> = top_pairs(&stage1.candidates, pairs);
    let sets: Vec<Vec<Repr>> = top.iter().map(Candidate::representations).collect();
    let data_of = |pair: &Candidate| {
        let sized = caches.iter().find(|d| size_of(d) == pair.size);
        *sized.expect("every candidate's size has its cache")
    };
    let mut singles = Vec::new();
    for (pair, set) in top.iter().zip(&sets) {
        let data = data_of(pair);
        for variant in pair.variant.axes(data).into_iter().flatten() {
            singles.push(Job {
                data,
                set,
                kind: pair.kind,
                variant,
                dims: pair.dims,
                stage: 2,
            });
        }
    }
    let mut search = stage1;
    let done = search.spare.clone();
    search.extend(run_jobs(&singles, base, &done, stop, progress)?);
    let mut combined = Vec::new();
    for (pair, set) in top.iter().zip(&sets) {
        let data = data_of(pair);
        let helped: Vec<Variant> = pair
            .variant
            .axes(data)
            .iter()
            .filter_map(|axis| {
                let mine = |v: &Variant| search.best_of(pair, *v);
                let winner = best(axis.iter().filter_map(mine))?;
                (winner.val_accuracy > pair.val_accuracy + TIE).then_some(winner.variant)
            })
            .collect();
        if helped.len() > 1 {
            combined.push(Job {
                data,
                set,
                kind: pair.kind,
                variant: pair.variant.combine(&helped),
                dims: pair.dims,
                stage: 2,
            });
        }
    }
    let done = search.spare.clone();
    search.extend(run_jobs(&combined, base, &done, stop, progress)?);
    Ok(search)
}

/// Side of the square image the backbone saw for `data`'s rows, in pixels.
pub fn size_of(data: &CacheData) -> u32 {
    data.identity.preprocessing.size
}

/// The best candidate of each of the `pairs` best (size, feature set, classifier), best first,
/// then the best of each [`Layout`] that none of those has. Stage 1 trains on the augmented
/// copies, whose crops and rotations move what a map's quarters or its flattened cells record:
/// on centred images (digits) the quarters ranked third with copies and first without them, so
/// each layout's best gets the second stage's variants (without copies among them).
fn top_pairs(candidates: &[Candidate], pairs: usize) -> Vec<Candidate> {
    let per_set: Vec<&Candidate> = best_per_set(candidates);
    let same_pair =
        |a: &Candidate, b: &Candidate| a.size == b.size && a.reprs == b.reprs && a.kind == b.kind;
    let mut top: Vec<Candidate> = Vec::new();
    while top.len() < pairs {
        let left = per_set
            .iter()
            .copied()
            .filter(|c| !top.iter().any(|t| same_pair(t, c)));
        let Some(b) = best(left).cloned() else {
            break;
        };
        top.push(b);
    }
    for layout in [Layout::Global, Layout::Quarters, Layout::Flattened] {
        if top.iter().all(|c| Layout::of(c) != layout) {
            let of_layout = per_set.iter().copied().filter(|c| Layout::of(c) == layout);
            top.extend(best(of_layout).cloned());
        }
    }
    top
}

/// How much of where in the image a feature fired a candidate's columns keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Global pooling: nothing.
    Global,
    /// The map's quarters.
    Quarters,
    /// The flattened map: every cell.
    Flattened,
}

impl Layout {
    /// The layout of `c`'s pooling (one pooling per feature set).
    fn of(c: &Candidate) -> Layout {
        c.representations()
            .first()
            .map_or(Layout::Global, |r| Layout::of_pooling(r.pooling))
    }

    /// The layout `pooling` gives.
    fn of_pooling(pooling: Pooling) -> Layout {
        match pooling {
            Pooling::Flatten => Layout::Flattened,
            Pooling::Avg2x2 | Pooling::Max2x2 => Layout::Quarters,
            Pooling::Avg | Pooling::Max => Layout::Global,
        }
    }
}

/// Trains each job over the C grid and collects its candidates and test-only scores. A job
/// whose scoring `spare` already holds is not fitted again. Jobs (of every size) run in parallel on rayon's
/// pool, the process's one pool (their large matrix products add tasks to it, not threads);
/// results keep the order of the jobs. Each job's fits are also scored with test-time
/// augmentation the other way when the cache allows it ([`Search::spare`]). Once `stop` is
/// set no job starts: the search ends after the jobs in flight with
/// [`ClassifyError::Interrupted`].
fn run_jobs(
    jobs: &[Job],
    base: &TrainConfig,
    spare: &[Scoring],
    stop: &Stop,
    progress: &mut (dyn Observer<SearchProgress> + Send),
) -> Result<Search, ClassifyError> {
    let total_cost: f64 = jobs.iter().map(Job::cost).sum();
    let start = Instant::now();
    let shared = Mutex::new((0usize, 0.0f64, progress));
    let results: Vec<Vec<Scoring>> = jobs
        .par_iter()
        .map(|job| {
            if stop.requested() {
                return Err(Interrupted.into());
            }
            let found = match spare.iter().find(|s| job.is(s)) {
                Some(done) => vec![done.for_stage(job.stage)],
                None => fit_job(job, base)?,
            };
            let best_here = found[0].candidates.iter().map(|c| c.val_accuracy);
            let best_here = best_here.fold(0.0f64, f64::max);
            let mut guard = shared.lock().unwrap_or_else(|p| p.into_inner());
            let (done, done_cost, progress) = &mut *guard;
            *done += 1;
            *done_cost += job.cost();
            let elapsed = start.elapsed().as_secs_f64();
            progress.observe(SearchProgress {
                done: *done,
                total: jobs.len(),
                eta_seconds: elapsed / *done_cost * (total_cost - *done_cost),
                line: format!(
                    "{} on {} ({} px, {} dims, {}): best validation accuracy {:.2}%",
                    job.kind,
                    label(job.set),
                    size_of(job.data),
                    job.dims,
                    job.variant.label(),
                    100.0 * best_here
                ),
            });
            Ok(found)
        })
        .collect::<Result<_, ClassifyError>>()?;
    let mut search = Search {
        candidates: Vec::new(),
        test_only: Vec::new(),
        spare: Vec::new(),
    };
    for mut found in results {
        let own = found.remove(0);
        search.candidates.extend(own.candidates);
        search.test_only.push(own.test_only);
        search.spare.extend(found);
    }
    Ok(search)
}

/// Fits one job over the C grid: its own scoring first, then (when its cache allows TTA) the
/// same fits scored with test-time augmentation the other way.
fn fit_job(job: &Job, base: &TrainConfig) -> Result<Vec<Scoring>, ClassifyError> {
    let sub = job.data.using(job.set)?;
    let cfg = job.variant.apply(&TrainConfig {
        kind: job.kind,
        ..base.clone()
    });
    let ttas: &[bool] = if Variant::tta_possible(job.data) {
        &[job.variant.tta, !job.variant.tta]
    } else {
        &[job.variant.tta]
    };
    // The job's own copy of its columns: a normalising variant works on it in place.
    let outcomes = train::run_scorings(Cow::Owned(sub), &cfg, ttas, &mut |_| {})?;
    Ok(outcomes
        .iter()
        .map(|outcome| Scoring {
            candidates: candidates_of(outcome, job.set, job.stage),
            test_only: test_only(outcome, job.set),
        })
        .collect())
}

impl Scoring {
    /// This scoring as a candidate of `stage` (a spare scoring fitted in stage 1 is used in 2).
    fn for_stage(&self, stage: u8) -> Scoring {
        let mut scoring = self.clone();
        scoring.candidates.iter_mut().for_each(|c| c.stage = stage);
        scoring
    }
}

impl Job<'_> {
    /// Relative cost, for the ETA: [`fit_cost`] times the rows it trains on (originals only,
    /// or with their copies).
    fn cost(&self) -> f64 {
        let rows = if self.variant.train_copies {
            1.0 + f64::from(self.data.identity.copies)
        } else {
            1.0
        };
        fit_cost(self.kind, self.dims) * rows
    }

    /// Whether `scoring` is this job's (same size, feature set, classifier and variant).
    fn is(&self, scoring: &Scoring) -> bool {
        let t = &scoring.test_only;
        t.size == size_of(self.data)
            && t.features == label(self.set)
            && t.kind == self.kind
            && t.variant == self.variant
    }
}

impl Search {
    /// Adds another search's candidates, appendix rows and spare scorings after these.
    fn extend(&mut self, more: Search) {
        self.candidates.extend(more.candidates);
        self.test_only.extend(more.test_only);
        self.spare.extend(more.spare);
    }

    /// The best C of `pair`'s (size, feature set, classifier) with `variant`, if it was tried.
    fn best_of(&self, pair: &Candidate, variant: Variant) -> Option<&Candidate> {
        best(self.candidates.iter().filter(|c| {
            c.size == pair.size
                && c.reprs == pair.reprs
                && c.kind == pair.kind
                && c.variant == variant
        }))
    }
}

/// Relative cost of a (classifier, columns) pair, for the ETA: an SVM grows with the columns,
/// the multinomial logistic's L-BFGS costs seconds per fit at any width (on the flowers, on a
/// loaded machine: the SVM's 18 fits on 256 columns took about 10 s, the logistic's 430 s).
fn fit_cost(kind: Kind, dims: usize) -> f64 {
    let fixed = match kind {
        Kind::Svm => 512.0,
        Kind::Logistic | Kind::LogisticOvr => 20_000.0,
    };
    dims as f64 + fixed
}

/// `layer:pooling` of a feature set, joined by `+`.
pub fn label(set: &[Repr]) -> String {
    set.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("+")
}

/// One candidate per C of the grid, scored by its mean validation accuracy over the splits.
fn candidates_of(outcome: &TrainOutcome, set: &[Repr], stage: u8) -> Vec<Candidate> {
    let grid = &outcome.config.grid;
    grid.iter()
        .enumerate()
        .map(|(g, &c)| {
            let points: Vec<_> = outcome.splits.iter().map(|s| &s.grid[g]).collect();
            let val_per_split: Vec<f64> = points.iter().map(|p| p.val_accuracy).collect();
            Candidate {
                size: outcome.identity.preprocessing.size,
                reprs: set.iter().map(ToString::to_string).collect(),
                layers: Repr::layers(set).join("+"),
                pooling: set[0].pooling.name().to_string(),
                kind: outcome.config.kind,
                variant: Variant::of(&outcome.config),
                dims: outcome.identity.dims,
                c,
                val_accuracy: val_per_split.iter().sum::<f64>() / val_per_split.len() as f64,
                val_per_split,
                val_images: outcome.splits.iter().map(|s| s.val_images).collect(),
                fit_seconds: points.iter().map(|p| p.fit_seconds).sum(),
                converged: points.iter().all(|p| p.converged),
                stage,
            }
        })
        .collect()
}

fn test_only(outcome: &TrainOutcome, set: &[Repr]) -> TestOnly {
    TestOnly {
        size: outcome.identity.preprocessing.size,
        features: label(set),
        kind: outcome.config.kind,
        variant: Variant::of(&outcome.config),
        dims: outcome.identity.dims,
        test_accuracy: outcome
            .splits
            .iter()
            .map(|s| {
                let right = s.test.iter().filter(|t| t.label == t.predicted).count();
                right as f64 / s.test.len().max(1) as f64
            })
            .collect(),
        test_images: outcome.splits.iter().map(|s| s.test.len()).collect(),
    }
}

/// Rank of a classifier when scores tie: the SVM first (fastest to fit and to use).
fn kind_rank(kind: Kind) -> usize {
    match kind {
        Kind::Svm => 0,
        Kind::Logistic => 1,
        Kind::LogisticOvr => 2,
    }
}

/// The candidate with the highest mean validation accuracy; ties go to the cheaper model: the
/// smaller image (its backbone pass, at every prediction, costs about the square of its side),
/// then fewer columns, then the SVM before logistic regression, then the variant of `tlearn
/// train`'s defaults ([`Variant::rank`]), then the smaller C (the stronger penalty, as
/// `tlearn train` keeps on ties).
pub fn best<'a>(candidates: impl IntoIterator<Item = &'a Candidate>) -> Option<&'a Candidate> {
    candidates.into_iter().reduce(|best, c| {
        let better = c.val_accuracy > best.val_accuracy + TIE;
        let tie = (c.val_accuracy - best.val_accuracy).abs() <= TIE;
        let key = |c: &Candidate| (c.size, c.dims, kind_rank(c.kind), c.variant.rank(), c.c);
        let cheaper = key(c) < key(best);
        if better || (tie && cheaper) {
            c
        } else {
            best
        }
    })
}

/// The best candidate of each (size, feature set, classifier), over its variants, in search
/// order: one point each in the plot.
pub fn best_per_set(candidates: &[Candidate]) -> Vec<&Candidate> {
    let mut keys: Vec<(u32, &[String], Kind)> = Vec::new();
    for c in candidates {
        if !keys.contains(&(c.size, c.reprs.as_slice(), c.kind)) {
            keys.push((c.size, &c.reprs, c.kind));
        }
    }
    keys.into_iter()
        .filter_map(|(size, reprs, kind)| {
            let same = |c: &&Candidate| c.size == size && c.reprs == reprs && c.kind == kind;
            best(candidates.iter().filter(same))
        })
        .collect()
}

/// The best C of each (size, feature set, classifier, variant), in search order: one row each
/// in the tables.
pub fn best_per_variant(candidates: &[Candidate]) -> Vec<&Candidate> {
    let mut keys: Vec<(u32, &[String], Kind, Variant)> = Vec::new();
    for c in candidates {
        if !keys.contains(&(c.size, c.reprs.as_slice(), c.kind, c.variant)) {
            keys.push((c.size, &c.reprs, c.kind, c.variant));
        }
    }
    keys.into_iter()
        .filter_map(|(size, reprs, kind, variant)| {
            let same = |c: &&Candidate| {
                c.size == size && c.reprs == reprs && c.kind == kind && c.variant == variant
            };
            best(candidates.iter().filter(same))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(dims: usize, kind: Kind, c: f64, val: f64) -> Candidate {
        Candidate {
            size: 224,
            reprs: vec![format!("l{dims}:avg")],
            layers: format!("l{dims}"),
            pooling: "avg".into(),
            kind,
            variant: Variant {
                train_copies: true,
                tta: false,
                normalize: Normalize::None,
                copies_used: None,
            },
            dims,
            c,
            val_accuracy: val,
            val_per_split: vec![val],
            val_images: vec![10],
            fit_seconds: 0.0,
            converged: true,
            stage: 1,
        }
    }

    /// `cand` reading layer `layer` with `pooling`.
    fn pooled(layer: &str, pooling: Pooling, kind: Kind, val: f64) -> Candidate {
        Candidate {
            reprs: vec![format!("{layer}:{}", pooling.name())],
            layers: layer.into(),
            pooling: pooling.name().into(),
            ..cand(8, kind, 1.0, val)
        }
    }

    #[test]
    fn the_second_stage_gets_the_best_pairs_and_the_best_of_each_layout_they_miss() {
        let all = vec![
            pooled("a", Pooling::Max, Kind::Svm, 0.95),
            pooled("a", Pooling::Max, Kind::Svm, 0.90),
            pooled("b", Pooling::Avg, Kind::Logistic, 0.94),
            pooled("a", Pooling::Max, Kind::Logistic, 0.93),
            pooled("b", Pooling::Max2x2, Kind::Svm, 0.80),
            pooled("b", Pooling::Avg2x2, Kind::Logistic, 0.85),
            pooled("b", Pooling::Flatten, Kind::Svm, 0.70),
        ];
        let names = |top: Vec<Candidate>| -> Vec<String> {
            top.iter()
                .map(|c| format!("{} {}", c.reprs[0], c.kind))
                .collect()
        };
        assert_eq!(
            names(top_pairs(&all, 2)),
            [
                "a:max svm",
                "b:avg logistic",
                "b:avg2x2 logistic",
                "b:flatten svm"
            ]
        );
        // A layout already among the best pairs adds nothing.
        let mut flat_first = all.clone();
        flat_first[6].val_accuracy = 0.99;
        assert_eq!(
            names(top_pairs(&flat_first, 2)),
            ["b:flatten svm", "a:max svm", "b:avg2x2 logistic"]
        );
        assert_eq!(
            names(top_pairs(&all[..4], 2)),
            ["a:max svm", "b:avg logistic"]
        );
    }

    #[test]
    fn ties_go_to_fewer_columns_then_the_svm_then_the_smaller_c() {
        let all = vec![
            cand(512, Kind::Logistic, 1e-3, 0.9),
            cand(1024, Kind::Svm, 1e-4, 0.9),
            cand(512, Kind::Svm, 1e-2, 0.9),
            cand(512, Kind::Svm, 1e-3, 0.9),
            cand(2048, Kind::Svm, 1e-3, 0.8),
        ];
        let b = best(&all).unwrap();
        assert_eq!((b.dims, b.kind, b.c), (512, Kind::Svm, 1e-3));
        let mut better = all.clone();
        better.push(cand(4096, Kind::Logistic, 1.0, 0.91));
        assert_eq!(best(&better).unwrap().dims, 4096);
        // A larger image costs more than any column count: on a tie the smaller one wins.
        let mut sized = vec![
            cand(512, Kind::Svm, 1e-3, 0.9),
            cand(1024, Kind::Svm, 1e-3, 0.9),
        ];
        sized[0].size = 320;
        assert_eq!(
            (best(&sized).unwrap().size, best(&sized).unwrap().dims),
            (224, 1024)
        );
        sized[0].val_accuracy = 0.95;
        assert_eq!(best(&sized).unwrap().size, 320);
    }

    #[test]
    fn variants_combine_the_levers_that_changed_and_ties_keep_the_defaults() {
        let base = Variant {
            train_copies: true,
            tta: false,
            normalize: Normalize::None,
            copies_used: None,
        };
        let off = Variant {
            train_copies: false,
            ..base
        };
        let tta = Variant { tta: true, ..base };
        let power = Variant {
            normalize: Normalize::Power,
            ..base
        };
        let fewer = Variant {
            copies_used: Some(3),
            ..base
        };
        let all_four = Variant {
            train_copies: false,
            tta: true,
            normalize: Normalize::Power,
            copies_used: Some(3),
        };
        assert_eq!(base.combine(&[off, tta, power, fewer]), all_four);
        assert_eq!(base.combine(&[]), base);
        assert_eq!(all_four.label(), "no copies (3 per image) + tta + power");
        assert_eq!(
            Variant { tta: true, ..fewer }.label(),
            "copies (3 per image) + tta"
        );
        let mut all = vec![cand(512, Kind::Svm, 1e-3, 0.9); 4];
        all[0].variant = tta;
        all[1].variant = off;
        all[3].variant = fewer;
        assert_eq!(best(&all).unwrap().variant, base);
        all[1].val_accuracy = 0.95;
        assert_eq!(best(&all).unwrap().variant, off);
        all[3].val_accuracy = 0.96;
        assert_eq!(best(&all).unwrap().variant, fewer);
    }

    #[test]
    fn the_sets_are_runs_of_adjacent_layers_and_the_deepest_flattened() {
        let layers: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let sets: Vec<String> = feature_sets(&layers, &POOLINGS)
            .iter()
            .map(|s| label(s))
            .collect();
        assert_eq!(sets.len(), 4 * 6 + 1);
        assert!(sets.contains(&"a:avg+b:avg".to_string()));
        assert!(sets.contains(&"b:avg2x2+c:avg2x2".to_string()));
        assert!(sets.contains(&"a:max2x2".to_string()));
        assert!(sets.contains(&"a:max+b:max+c:max".to_string()));
        assert!(!sets.contains(&"a:avg+c:avg".to_string()));
        assert_eq!(sets.last().unwrap(), "c:flatten");
        assert_eq!(extraction_reprs(&layers, &POOLINGS).len(), 3 * 4 + 1);
        let global = [Pooling::Avg, Pooling::Max];
        assert_eq!(feature_sets(&layers, &global).len(), 2 * 6 + 1);
        assert_eq!(extraction_reprs(&layers, &global).len(), 3 * 2 + 1);
    }
}
