//! `tlearn auto`: the method's decision ("which strategy, which layers") made from the user's
//! own data. Measure the data, extract every candidate representation in one backbone pass,
//! score feature sets x classifiers x C on validation images only, train the winner as a
//! normal run, and explain the decision next to its report.

pub mod bench;
pub mod choose;
pub mod decision;
pub mod finetune;
pub mod measure;
pub mod reproduce;
pub mod sizes;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::backbone::{BackboneError, Descriptor, Pooling, Repr};
use crate::cache;
use crate::classify::data::CacheData;
use crate::classify::train::TrainConfig;
use crate::classify::{ClassifyError, Kind, DEFAULT_C_GRID};
use crate::extract::{self, ExtractConfig, ExtractError};
use crate::finetune::train::{CheckedParams, FinetuneParams};
use crate::options::Opt;
use crate::output;
use crate::progress::{Interrupted, Observer, Stop};
use crate::report::{ReportError, RunReport};
use crate::runs::{self, RunError};

pub use choose::{Candidate, Search, TestOnly};
pub use measure::{DataStats, Size, TooSmall};
pub use sizes::Sizes;

/// Name of the chosen run (its model under `<out>/runs/`, its report under `<out>/reports/`).
pub const RUN: &str = "auto";

/// Errors of an auto run.
#[derive(Debug, thiserror::Error)]
pub enum AutoError {
    /// The data set cannot be split for choosing.
    #[error(transparent)]
    TooSmall(#[from] TooSmall),
    /// Extraction failed.
    #[error(transparent)]
    Extract(#[from] ExtractError),
    /// The backbone's descriptor cannot be read.
    #[error(transparent)]
    Backbone(#[from] BackboneError),
    /// Training or the cache failed.
    #[error(transparent)]
    Classify(#[from] ClassifyError),
    /// Writing the report failed.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// Fine-tuning failed.
    #[error(transparent)]
    Finetune(#[from] crate::finetune::FinetuneError),
    /// An output may not be written where it would go.
    #[error(transparent)]
    Output(#[from] output::OutputError),
    /// Training, saving or reporting a run failed.
    #[error(transparent)]
    Run(RunError),
    /// Bad settings.
    #[error("invalid parameter: {0}")]
    InvalidParams(String),
    /// Stopped on request; caches and checkpoints are kept and resume.
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

impl From<RunError> for AutoError {
    fn from(e: RunError) -> AutoError {
        match e {
            RunError::Interrupted(i) => AutoError::Interrupted(i),
            other => AutoError::Run(other),
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct AutoConfig {
    /// Data, backbone, augmentation, splits and compute; `cache` and `reprs` are set by auto.
    pub extract: ExtractConfig,
    /// Everything is written under this folder: `cache/`, `runs/`, `reports/`.
    pub out: PathBuf,
    /// Candidate layers, shallow to deep; empty: the deepest [`choose::DEFAULT_LAYERS`].
    pub layers: Vec<String>,
    /// How each candidate layer is pooled (besides the deepest flattened, always compared);
    /// by default all of [`choose::POOLINGS`]. Fewer make a smaller cache and a faster choice.
    pub poolings: Vec<Pooling>,
    /// Classifiers compared.
    pub kinds: Vec<Kind>,
    /// Values of C compared.
    pub grid: Vec<f64>,
    /// Most L-BFGS iterations of the logistic models.
    pub max_iterations: u64,
    /// Refit the chosen configuration on training + validation images before testing.
    pub refit_with_validation: bool,
    /// When to run the fine-tuning stages.
    pub finetune: finetune::When,
    /// Settings of the fine-tuning stages.
    pub finetune_params: FinetuneParams,
    /// Words the steps that make the chosen run by hand, as the decision shows them (the
    /// command line: `tlearn ...` lines); by default [`reproduce::plain`].
    pub reproduce: fn(&reproduce::Reproduce) -> Vec<String>,
    /// Image sides (pixels) compared as candidates, one extraction and cache each; empty: the
    /// extraction's own alone (`extract.size`, else the backbone's), which, if given, must be
    /// among them ([`Sizes::of`]).
    pub sizes: Vec<u32>,
    /// When set, `extract.copies` is the most augmented copies per image: a larger data set
    /// gets fewer, so that its cache stays within this many rows ([`copies_within`]), since
    /// the choice's memory and the backbone's time grow with the rows. `None` (the default):
    /// `extract.copies` as given. The command line sets [`ROW_BUDGET`] unless `--copies` is
    /// given.
    pub row_budget: Option<usize>,
}

/// Augmented copies per image auto extracts by default (within [`ROW_BUDGET`]).
pub const DEFAULT_COPIES: u32 = 6;

/// Rows of auto's cache (images x (1 + copies)) within which the command line keeps the
/// default number of copies: 6 copies up to 2857 images (the flowers' 1360 make 9520 rows),
/// then fewer, down to 2 from 6667 images. A row of flattened block5 is 100 KB, and each of the
/// choice's parallel jobs holds its own copy of its columns: 1000 images at 6 copies measured
/// a peak of 4.4 GB.
pub const ROW_BUDGET: usize = 20_000;

/// Augmented copies per image for `images` images: `most`, or fewer so that
/// `images x (1 + copies)` stays within `budget` rows, but never fewer than 2 (the default
/// before 6) unless `most` is.
pub fn copies_within(most: u32, images: usize, budget: usize) -> u32 {
    let fit = (budget / images.max(1)).saturating_sub(1);
    most.min(u32::try_from(fit).unwrap_or(u32::MAX).max(2))
}

impl AutoConfig {
    /// The defaults (SVM and multinomial logistic regression, the documented C grid).
    pub fn new(extract: ExtractConfig, out: &Path) -> AutoConfig {
        AutoConfig {
            extract,
            out: out.to_path_buf(),
            layers: Vec::new(),
            poolings: choose::POOLINGS.to_vec(),
            kinds: vec![Kind::Svm, Kind::Logistic],
            grid: DEFAULT_C_GRID.to_vec(),
            max_iterations: crate::classify::logistic::DEFAULT_MAX_ITERATIONS,
            refit_with_validation: true,
            finetune: finetune::When::Large,
            finetune_params: FinetuneParams::default(),
            reproduce: reproduce::plain,
            sizes: Vec::new(),
            row_budget: None,
        }
    }

    /// The cache of every candidate representation at the extraction's own size.
    pub fn cache(&self) -> PathBuf {
        self.out.join("cache").join("features.h5")
    }

    /// Folder of saved models.
    pub fn runs(&self) -> PathBuf {
        self.out.join("runs")
    }

    /// Folder of reports.
    pub fn reports(&self) -> PathBuf {
        self.out.join("reports")
    }

    /// The training protocol every candidate and the final run share (as `tlearn train`'s defaults).
    pub fn train_config(&self, kind: Kind) -> TrainConfig {
        TrainConfig {
            grid: self.grid.clone(),
            max_iterations: self.max_iterations,
            refit_with_validation: self.refit_with_validation,
            ..TrainConfig::new(kind)
        }
    }
}

/// What an auto run reports while it works (the library does not print).
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// A phase starts.
    Phase(String),
    /// Something the user should know (also written to the decision).
    Warning(String),
    /// A (feature set, classifier) was scored.
    Search(choose::SearchProgress),
    /// A step of a long phase (a fine-tuning epoch).
    Step(String),
}

/// Seconds of one phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseTime {
    /// Phase name.
    pub phase: String,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Similar or different from the backbone's training images, in the method's sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Similarity {
    /// The deepest layer is part of the winner.
    Similar,
    /// Only earlier layers win.
    Different,
}

/// The decision and everything that explains it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// The measured data.
    pub stats: DataStats,
    /// Warnings about the data and the estimates.
    pub warnings: Vec<String>,
    /// Images the extraction could not use, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Rows this run extracted (fewer when it resumed or reused its cache).
    pub rows_computed: usize,
    /// Candidate layers, shallow to deep.
    pub layers: Vec<String>,
    /// Every representation the one extraction stored (at the extraction's own size).
    pub extracted: Vec<String>,
    /// Image sides compared, in pixels: the extraction's own first.
    pub sizes: Vec<u32>,
    /// Similar or different, from which layers win.
    pub similarity: Similarity,
    /// Best validation accuracy of a feature set that includes the deepest layer.
    pub best_with_deepest: f64,
    /// Best validation accuracy of a feature set without the deepest layer.
    pub best_without_deepest: f64,
    /// The search.
    pub search: Search,
    /// The chosen candidate.
    pub chosen: Candidate,
    /// Why the fine-tuning stages ran or not.
    pub finetune_reason: String,
    /// The fine-tuning stages that ran.
    pub finetune: Vec<finetune::Stage>,
    /// The fine-tuning stage that beat `chosen` on validation, if one did (its run name).
    pub finetune_won: Option<String>,
    /// The steps that make the chosen run by hand, as [`AutoConfig::reproduce`] words them.
    pub commands: Vec<String>,
    /// Seconds per phase.
    pub phases: Vec<PhaseTime>,
}

/// An auto run's results: the decision, the chosen run's report and where things went.
#[derive(Debug, Clone)]
pub struct AutoOutcome {
    /// The decision.
    pub decision: Decision,
    /// The chosen run's report.
    pub report: RunReport,
    /// The saved model.
    pub model: PathBuf,
    /// The report folder (with the decision).
    pub report_dir: PathBuf,
}

/// Runs auto: measure, extract once, search on validation, train and report the winner.
pub fn run(
    cfg: &AutoConfig,
    stop: &Stop,
    progress: &mut (dyn Observer<Progress> + Send),
) -> Result<AutoOutcome, AutoError> {
    let (finetune_params, sizes) = check(cfg)?;
    let mut clock = Clock::start();
    let measured = measure_data(cfg, &sizes, progress)?;
    // Every later step (extraction, the reproducing commands) reads the copies measured.
    let cfg = &AutoConfig {
        extract: ExtractConfig {
            copies: measured.copies,
            ..cfg.extract.clone()
        },
        ..cfg.clone()
    };
    clock.lap("measure");
    let extractions = extract_sizes(cfg, &sizes, &measured.reprs, stop, progress)?;
    clock.lap("extract");
    let caches = extractions
        .iter()
        .map(|e| CacheData::load(&e.config.cache))
        .collect::<Result<Vec<_>, _>>()?;
    sizes::same_rows(&caches)?;
    let linear = search_candidates(cfg, &caches, &sizes, &measured.layers, stop, progress)?;
    clock.lap("choose");
    // Nothing of this run is written yet: the previous model and reports stay as they were.
    stop.check()?;
    let cache = caches
        .iter()
        .find(|c| choose::size_of(c) == linear.chosen.size)
        .expect("the chosen candidate's size has its cache");
    let (mut report, mut model) =
        train_chosen(cfg, cache, &linear.chosen, &measured.root, progress)?;
    clock.lap("train and report");
    let tuned = fine_tune(cfg, &measured, &finetune_params, &mut clock, stop, progress)?;
    if let Some(stage) = tuned.winner(&linear.chosen) {
        (report, model) = stage.as_auto(model);
    }
    let decision = decide(cfg, measured, extractions, linear, tuned, clock.phases);
    let report_dir = cfg.reports().join(RUN);
    decision::write(&decision, &report, &report_dir)?;
    Ok(AutoOutcome {
        decision,
        report,
        model,
        report_dir,
    })
}

/// Checks the settings now, so that a bad one fails before the extraction, not after it; gives
/// the checked fine-tuning parameters and the image sizes compared.
fn check(cfg: &AutoConfig) -> Result<(CheckedParams, Sizes), AutoError> {
    if cfg.kinds.is_empty() || cfg.grid.is_empty() {
        return Err(AutoError::InvalidParams(
            "auto needs at least one classifier and one C".into(),
        ));
    }
    // The extraction's options (no splits, an empty batch, ...) are refused before the data is
    // measured, not after a warning computed from them.
    cfg.extract.check()?;
    if let Some(c) = cfg.grid.iter().find(|c| !(c.is_finite() && **c > 0.0)) {
        return Err(AutoError::InvalidParams(format!(
            "{} {c}: every C is a positive finite number (values below about 1e-308 read as 0)",
            Opt::C
        )));
    }
    let sizes = Sizes::of(cfg)?;
    check_outputs(cfg, &sizes)?;
    Ok((cfg.finetune_params.clone().check()?, sizes))
}

/// Refuses, before any work, outputs auto may not write: `out` or its `cache/`, `runs/`,
/// `reports/` not folders, the chosen run's folders linked or holding files tlearn did not
/// write, a cache file (of any size) that is not tlearn's.
fn check_outputs(cfg: &AutoConfig, sizes: &Sizes) -> Result<(), AutoError> {
    let advice = format!(
        "Give {} a folder of auto's own (it writes cache/, runs/ and reports/ there)",
        Opt::Out
    );
    output::check_folder(&cfg.out, &advice)?;
    let advice = format!("Give {} another folder, or move this file away", Opt::Out);
    for dir in [cfg.out.join("cache"), cfg.runs(), cfg.reports()] {
        output::check_folder(&dir, &advice)?;
    }
    for &side in &sizes.all {
        cache::check_path(&sizes.cache(cfg, side)).map_err(ClassifyError::from)?;
    }
    let run = cfg.runs().join(RUN);
    output::check_run_folder(&run)?;
    output::Target::new(&run.join("model.json"))
        .kind(crate::classify::persist::MODEL_KIND)
        .option(Opt::Out)
        .check()?;
    output::check_replaceable(
        &cfg.reports().join(RUN),
        crate::report::write::is_report_file,
    )?;
    Ok(())
}

/// The decision: what each phase measured, found and chose, and how long each took;
/// `extractions` are those of every size, the extraction's own first.
fn decide(
    cfg: &AutoConfig,
    measured: Measured,
    extractions: Vec<Extracted>,
    linear: Linear,
    tuned: Finetuned,
    phases: Vec<PhaseTime>,
) -> Decision {
    let (similarity, best_with_deepest, best_without_deepest) =
        similarity(&linear.search, &linear.chosen, measured.deepest());
    let chosen = extractions
        .iter()
        .find(|e| e.size == linear.chosen.size)
        .unwrap_or(&extractions[0]);
    Decision {
        commands: (cfg.reproduce)(&reproduce::steps(cfg, &chosen.config, &linear.chosen)),
        stats: measured.stats,
        warnings: measured.warnings,
        skipped: extractions[0].summary.skipped.clone(),
        rows_computed: extractions.iter().map(|e| e.summary.computed).sum(),
        layers: measured.layers,
        extracted: measured.reprs.iter().map(ToString::to_string).collect(),
        sizes: extractions.iter().map(|e| e.size).collect(),
        similarity,
        best_with_deepest,
        best_without_deepest,
        finetune_won: tuned.winner(&linear.chosen).map(|s| s.run.clone()),
        search: linear.search,
        chosen: linear.chosen,
        finetune_reason: tuned.reason,
        finetune: tuned.stages,
        phases,
    }
}

/// What the fine-tuning stages did.
struct Finetuned {
    /// Why they ran or not.
    reason: String,
    /// The stages that ran.
    stages: Vec<finetune::Stage>,
}

/// The fine-tuning stages if [`finetune_plan`] runs them (timed as a phase), and why or why not.
fn fine_tune(
    cfg: &AutoConfig,
    measured: &Measured,
    params: &CheckedParams,
    clock: &mut Clock,
    stop: &Stop,
    progress: &mut (dyn Observer<Progress> + Send),
) -> Result<Finetuned, AutoError> {
    match finetune_plan(cfg, &measured.stats, &measured.layers)? {
        Err(reason) => Ok(Finetuned {
            reason,
            stages: Vec::new(),
        }),
        Ok((reason, before)) => {
            let stages =
                finetune::stages(cfg, measured.deepest(), &before, params, stop, progress)?;
            clock.lap("fine-tune");
            Ok(Finetuned { reason, stages })
        }
    }
}

impl Finetuned {
    /// The stage with the best validation accuracy, if it beats the linear choice.
    fn winner(&self, chosen: &Candidate) -> Option<&finetune::Stage> {
        self.stages
            .iter()
            .filter(|s| s.val_accuracy > chosen.val_accuracy + choose::TIE)
            .max_by(|a, b| a.val_accuracy.total_cmp(&b.val_accuracy))
    }
}

/// Wall-clock seconds of each phase, in order.
struct Clock {
    since: Instant,
    phases: Vec<PhaseTime>,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            since: Instant::now(),
            phases: Vec::new(),
        }
    }

    /// Ends `phase` now; the next one starts.
    fn lap(&mut self, phase: &str) {
        self.phases.push(PhaseTime {
            phase: phase.into(),
            seconds: self.since.elapsed().as_secs_f64(),
        });
        self.since = Instant::now();
    }
}

/// What measuring the data found.
struct Measured {
    stats: DataStats,
    /// Augmented copies per image the extraction makes ([`AutoConfig::row_budget`]).
    copies: u32,
    warnings: Vec<String>,
    /// The data set's root folder.
    root: PathBuf,
    /// Candidate layers, shallow to deep.
    layers: Vec<String>,
    /// Every representation the extraction stores.
    reprs: Vec<Repr>,
}

impl Measured {
    fn deepest(&self) -> &str {
        self.layers.last().expect("at least one layer")
    }
}

/// Measures the data (sizes, classes, splits) and settles the candidate layers; with several
/// image sizes, says the rows each will extract and what it costs.
fn measure_data(
    cfg: &AutoConfig,
    sizes: &Sizes,
    progress: &mut (dyn Observer<Progress> + Send),
) -> Result<Measured, AutoError> {
    progress.observe(Progress::Phase("measuring the data".into()));
    // As the extraction will see it: images its cache planned are kept as planned.
    let ex = &ExtractConfig {
        cache: cfg.cache(),
        ..cfg.extract.clone()
    };
    let data = extract::open_data(ex)?;
    let (stats, mut warnings) = measure::measure(&data, ex.split, ex.splits, ex.seed)?;
    let copies = match cfg.row_budget {
        Some(budget) => copies_within(ex.copies, stats.images, budget),
        None => ex.copies,
    };
    if copies < ex.copies {
        warnings.push(format!(
            "{} images: {copies} augmented copies per image, not {} ({} rows would pass the {} auto keeps its cache within, for memory and backbone time); give {} {} to extract them all",
            stats.images,
            ex.copies,
            stats.images * (1 + ex.copies as usize),
            cfg.row_budget.unwrap_or_default(),
            Opt::Copies,
            ex.copies
        ));
    }
    let ex = &ExtractConfig {
        copies,
        ..ex.clone()
    };
    warnings.extend(data.warnings.iter().cloned());
    warnings
        .iter()
        .for_each(|w| progress.observe(Progress::Warning(w.clone())));
    let layers = candidate_layers(cfg)?;
    let reprs = choose::extraction_reprs(&layers, &cfg.poolings);
    if sizes.several() {
        let rows = extract::plan_rows(&ex.check()?, &data).len();
        progress.observe(Progress::Phase(sizes.plan(rows)));
    }
    Ok(Measured {
        stats,
        copies,
        warnings,
        root: data.root,
        layers,
        reprs,
    })
}

/// One size's extraction: its side, its settings (the cache among them) and what it did.
struct Extracted {
    size: u32,
    config: ExtractConfig,
    summary: extract::Summary,
}

/// Extracts every representation of each size in one backbone pass into its cache (resumes
/// it), the extraction's own size first.
fn extract_sizes(
    cfg: &AutoConfig,
    sizes: &Sizes,
    reprs: &[Repr],
    stop: &Stop,
    progress: &mut (dyn Observer<Progress> + Send),
) -> Result<Vec<Extracted>, AutoError> {
    let mut done = Vec::new();
    for &size in &sizes.all {
        let config = sizes.extraction(cfg, size, reprs);
        let at = if size == sizes.base {
            String::new()
        } else {
            format!(
                " at {size} px (about {:.1}x the time per row)",
                sizes.cost(size)
            )
        };
        progress.observe(Progress::Phase(format!(
            "extracting {} representations{at} in one backbone pass into {}",
            config.reprs.len(),
            config.cache.display()
        )));
        let summary = extract::run(&config, stop)?;
        if let Some(stopped) = summary.interrupted {
            return Err(stopped.into());
        }
        // The same images at every size: each skipped one is said once.
        if size == sizes.base {
            for (path, reason) in &summary.skipped {
                progress.observe(Progress::Warning(format!("skipped {path}: {reason}")));
            }
        }
        done.push(Extracted {
            size,
            config,
            summary,
        });
    }
    Ok(done)
}

/// The linear search and its best candidate.
struct Linear {
    search: Search,
    chosen: Candidate,
}

/// Scores every feature set x classifier x C on validation images, on the cache of every
/// size (stage 1; `caches` in the order of `sizes.all`), then the variants of the best pairs
/// (stage 2, [`choose::refine`]), and picks the best.
fn search_candidates(
    cfg: &AutoConfig,
    caches: &[CacheData],
    sizes: &Sizes,
    layers: &[String],
    stop: &Stop,
    progress: &mut (dyn Observer<Progress> + Send),
) -> Result<Linear, AutoError> {
    // Candidates are scored as fitted on training images: the refits (one more fit per split,
    // and one on every labelled image) are for the chosen run only.
    let base = TrainConfig {
        refit_with_validation: false,
        refit_on_all_labelled: false,
        ..cfg.train_config(Kind::Svm)
    };
    let stage1 = score_stage1(cfg, (caches, sizes), layers, &base, stop, progress)?;
    let axes = choose::Variant::of(&base).axes(&caches[0]);
    let search = if axes.is_empty() {
        stage1
    } else {
        let tried: Vec<String> = axes.iter().flatten().map(|v| v.label()).collect();
        progress.observe(Progress::Phase(format!(
            "scoring the variants of the {} best (feature set, classifier), and of the best of \
             each layout (global, quarters, flattened) they miss, on validation images: each \
             lever changed alone from the pair's stage-1 variant ({} from {}), then those that \
             helped together",
            choose::REFINED_PAIRS,
            tried.join(", "),
            choose::Variant::of(&base).label()
        )));
        let mut report = |p: choose::SearchProgress| progress.observe(Progress::Search(p));
        let caches: Vec<&CacheData> = caches.iter().collect();
        choose::refine(
            &caches,
            stage1,
            &base,
            choose::REFINED_PAIRS,
            stop,
            &mut report,
        )
        .map_err(interrupted)?
    };
    let stopped = search.candidates.iter().filter(|c| !c.converged).count();
    if stopped > 0 {
        progress.observe(Progress::Warning(format!(
            "{stopped} of {} candidates had a fit that stopped at its iteration limit (marked `converged: false` in the decision): raise {} if one of them comes close to the chosen one",
            search.candidates.len(),
            Opt::MaxIterations
        )));
    }
    let chosen = choose::best(&search.candidates)
        .expect("at least one candidate")
        .clone();
    Ok(Linear { search, chosen })
}

/// Stage 1: every feature set of each size ([`Sizes::sets`]) x classifier x C, on that size's
/// cache (`caches` in the order of `sizes.all`), all in one search.
fn score_stage1(
    cfg: &AutoConfig,
    (caches, sizes): (&[CacheData], &Sizes),
    layers: &[String],
    base: &TrainConfig,
    stop: &Stop,
    progress: &mut (dyn Observer<Progress> + Send),
) -> Result<Search, AutoError> {
    let all_sets = choose::feature_sets(layers, &cfg.poolings);
    let sets: Vec<Vec<Vec<Repr>>> = sizes
        .all
        .iter()
        .map(|&s| sizes.sets(s, &all_sets))
        .collect();
    let at = if sizes.several() {
        let each: Vec<String> = sizes.all.iter().map(ToString::to_string).collect();
        format!(" at {} px", each.join(", "))
    } else {
        String::new()
    };
    progress.observe(Progress::Phase(format!(
        "scoring {} feature sets{at} x {} classifier(s) x {} C on validation images",
        sets.iter().map(Vec::len).sum::<usize>(),
        cfg.kinds.len(),
        cfg.grid.len()
    )));
    let mut report = |p: choose::SearchProgress| progress.observe(Progress::Search(p));
    let scored: Vec<(&CacheData, &[Vec<Repr>])> = caches
        .iter()
        .zip(&sets)
        .map(|(c, s)| (c, s.as_slice()))
        .collect();
    choose::search(&scored, &cfg.kinds, base, stop, &mut report).map_err(interrupted)
}

/// A search's error as auto's: a stop stays a stop.
fn interrupted(e: ClassifyError) -> AutoError {
    match e {
        ClassifyError::Interrupted(i) => AutoError::Interrupted(i),
        other => other.into(),
    }
}

/// Similar or different, from whether the chosen candidate reads the deepest layer, with the
/// best validation accuracy of the candidates with and without it.
fn similarity(search: &Search, chosen: &Candidate, deepest: &str) -> (Similarity, f64, f64) {
    let reads_deepest = |c: &Candidate| c.layers.split('+').any(|l| l == deepest);
    let best_of = |with: bool| {
        search
            .candidates
            .iter()
            .filter(|c| reads_deepest(c) == with)
            .map(|c| c.val_accuracy)
            .fold(0.0f64, f64::max)
    };
    let verdict = if reads_deepest(chosen) {
        Similarity::Similar
    } else {
        Similarity::Different
    };
    (verdict, best_of(true), best_of(false))
}

/// The candidate layers: as asked (each must be one of the backbone's), else the deepest
/// [`choose::DEFAULT_LAYERS`] of its descriptor.
fn candidate_layers(cfg: &AutoConfig) -> Result<Vec<String>, AutoError> {
    if cfg.poolings.is_empty() || cfg.poolings.contains(&Pooling::Flatten) {
        return Err(AutoError::InvalidParams(format!(
            "{} {:?}: give one or more of avg, max, avg2x2, max2x2 (the deepest layer \
             flattened is always compared)",
            Opt::Poolings,
            cfg.poolings.iter().map(|p| p.name()).collect::<Vec<_>>()
        )));
    }
    let all = Descriptor::for_model(&cfg.extract.backbone)?.layers;
    if cfg.layers.is_empty() {
        return Ok(all[all.len().saturating_sub(choose::DEFAULT_LAYERS)..].to_vec());
    }
    if let Some(unknown) = cfg.layers.iter().find(|l| !all.contains(l)) {
        return Err(AutoError::InvalidParams(format!(
            "layer {unknown} is not one of the backbone's: {}",
            all.join(", ")
        )));
    }
    // Shallow to deep, as the descriptor lists them, so "adjacent" means adjacent in the net.
    Ok(all.into_iter().filter(|l| cfg.layers.contains(l)).collect())
}

/// Whether the fine-tuning stages run: `Ok((why, the layer before the deepest))`, or
/// `Err(why not)`.
fn finetune_plan(
    cfg: &AutoConfig,
    stats: &DataStats,
    layers: &[String],
) -> Result<Result<(String, String), String>, AutoError> {
    let why = match (cfg.finetune, stats.size) {
        (finetune::When::Never, _) => return Ok(Err(format!("not run: {}", Opt::NoFinetune))),
        (finetune::When::Always, _) => format!("run because {} asked for them", Opt::Finetune),
        (finetune::When::Large, Size::Large) => "run because the data is large".into(),
        (finetune::When::Large, Size::Small) => {
            return Ok(Err(format!(
                "not run: the data is small (median {} images per class, large from {}); {} runs them anyway",
                stats.per_class_spread.median,
                measure::LARGE_PER_CLASS,
                Opt::Finetune
            )))
        }
    };
    let all = Descriptor::for_model(&cfg.extract.backbone)?.layers;
    let deepest = layers.last().expect("at least one layer");
    let at = all.iter().position(|l| l == deepest).unwrap_or(0);
    match at.checked_sub(1) {
        Some(before) => Ok(Ok((why, all[before].clone()))),
        None => Ok(Err(format!(
            "not run: {deepest} is the backbone's first layer, stage 2 needs the one before it"
        ))),
    }
}

/// Trains the chosen candidate as `tlearn train` would, saves its model and writes its report.
fn train_chosen(
    cfg: &AutoConfig,
    cache: &CacheData,
    chosen: &Candidate,
    data_root: &Path,
    progress: &mut (dyn Observer<Progress> + Send),
) -> Result<(RunReport, PathBuf), AutoError> {
    progress.observe(Progress::Phase(format!(
        "training the chosen {} on {} at {} px ({}, C = {:e}) as run {RUN}",
        chosen.kind,
        chosen.reprs.join("+"),
        chosen.size,
        chosen.variant.label(),
        chosen.c
    )));
    let sub = cache.using(&chosen.representations())?;
    let train_cfg = chosen.variant.apply(&TrainConfig {
        grid: vec![chosen.c],
        ..cfg.train_config(chosen.kind)
    });
    let run_dir = cfg.runs().join(RUN);
    let root = Some(data_root);
    Ok(runs::fit_and_save(
        &sub,
        &train_cfg,
        RUN,
        &run_dir,
        root,
        &mut |_| {},
    )?)
}
