//! A trained run, made the same way by every command that makes one: a linear classifier
//! trained, saved and reported (`tlearn train`, the run `tlearn auto` chooses), and a
//! fine-tuning run on every split, reported (`tlearn finetune train`, auto's stages).

use std::path::{Path, PathBuf};

use crate::backbone::Repr;
use crate::classify::data::CacheData;
use crate::classify::train::{self, TrainConfig};
use crate::classify::{persist, ClassifyError};
use crate::finetune::network::Tail;
use crate::finetune::run::{cache_tail, run_splits, RunConfig, SplitEvent, Summary};
use crate::finetune::train::{CheckedParams, Ending};
use crate::finetune::{ConvLayer, FinetuneError};
use crate::options::Opt;
use crate::output::{self, OutputError, RunName};
use crate::progress::{Interrupted, Observer, Stop};
use crate::report::finetune::{method, run_report};
use crate::report::run::ModelInfo;
use crate::report::{ReportError, RunReport};

/// Errors of making a run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// An output may not be written where it would go.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// Training, the cache or the model file failed.
    #[error(transparent)]
    Classify(#[from] ClassifyError),
    /// Fine-tuning failed.
    #[error(transparent)]
    Finetune(#[from] FinetuneError),
    /// Writing the report failed.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// Stopped on request; checkpoints are kept and resume.
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

/// Where a run goes: its model (or splits) in `runs/NAME`, its report in `reports/NAME`.
#[derive(Debug, Clone)]
pub struct Place {
    /// The run's name.
    pub name: RunName,
    /// The run's folder: the model, or a fine-tuning run's `split-K` folders.
    pub run_dir: PathBuf,
    /// The report's folder.
    pub report_dir: PathBuf,
}

impl Place {
    /// Run `name` under the folders `runs` and `reports`.
    pub fn new(name: RunName, runs: &Path, reports: &Path) -> Place {
        Place {
            run_dir: runs.join(name.as_str()),
            report_dir: reports.join(name.as_str()),
            name,
        }
    }

    /// Refuses, before any work, a place tlearn may not write: the model and the report in one
    /// folder, a run folder that is a link or not tlearn's, a `model` file tlearn may not
    /// replace, a report folder of other files.
    fn check(&self, model: Option<output::Target>) -> Result<(), OutputError> {
        output::check_apart(&self.run_dir, &self.report_dir)?;
        output::check_run_folder(&self.run_dir)?;
        model.map_or(Ok(()), |m| m.check())?;
        output::check_replaceable(&self.report_dir, crate::report::write::is_report_file)
    }
}

/// What `tlearn train` asks for: a linear classifier on a cache.
#[derive(Debug, Clone)]
pub struct LinearRun {
    /// The feature cache.
    pub cache: PathBuf,
    /// Representations trained on (empty: all of the cache's).
    pub uses: Vec<Repr>,
    /// The training protocol.
    pub train: TrainConfig,
    /// The run's name; `None`: [`train::default_run_name`].
    pub name: Option<RunName>,
    /// Folder of saved models.
    pub runs: PathBuf,
    /// Folder of reports.
    pub reports: PathBuf,
    /// The data set root the cache was made from (the gallery's thumbnails).
    pub data: Option<PathBuf>,
}

/// A run made: its report, where its model and report went.
#[derive(Debug, Clone)]
pub struct Made {
    /// The run's report (written to `report_dir`).
    pub report: RunReport,
    /// The saved model.
    pub model: PathBuf,
    /// The report's folder.
    pub report_dir: PathBuf,
}

/// Trains a linear classifier as `cfg` asks, saves it and writes its report; every output is
/// checked before the cache is read. `log` gets the training's progress lines.
pub fn train_linear(cfg: &LinearRun, log: &mut dyn Observer<String>) -> Result<Made, RunError> {
    let name = match &cfg.name {
        Some(name) => name.clone(),
        None => train::default_run_name(&cfg.train, &cfg.cache)?,
    };
    let place = Place::new(name, &cfg.runs, &cfg.reports);
    let model = output::Target::new(&place.run_dir.join(MODEL_FILE))
        .kind(persist::MODEL_KIND)
        .option(Opt::Run)
        .reading(&cfg.cache);
    place.check(Some(model))?;
    let mut data = CacheData::load(&cfg.cache)?;
    if !cfg.uses.is_empty() {
        data = data.using(&cfg.uses)?;
    }
    let (report, model) = fit_and_save(
        &data,
        &cfg.train,
        place.name.as_str(),
        &place.run_dir,
        cfg.data.as_deref(),
        log,
    )?;
    crate::report::write_run(&report, &place.report_dir)?;
    Ok(Made {
        report,
        model,
        report_dir: place.report_dir,
    })
}

/// A linear run's model file in its folder.
pub const MODEL_FILE: &str = "model.json";

/// Trains on `data` as `cfg` asks, saves the model in `run_dir` and gives the report of run
/// `name` (not written: the caller decides where, or whether another run replaces it) and the
/// model's path. `data_root` gives the gallery its thumbnails.
pub fn fit_and_save(
    data: &CacheData,
    cfg: &TrainConfig,
    name: &str,
    run_dir: &Path,
    data_root: Option<&Path>,
    log: &mut dyn Observer<String>,
) -> Result<(RunReport, PathBuf), RunError> {
    let (outcome, model) = train::run(data, cfg, log)?;
    let model_path = run_dir.join(MODEL_FILE);
    model.save(&model_path)?;
    let info = ModelInfo {
        path: model_path.display().to_string(),
        trained_on: model.trained_on.clone(),
        chosen: format!("{:e}", model.c),
    };
    let root = data_root.map(|d| d.display().to_string());
    let report = RunReport::new(name, &(&outcome).into(), root, Some(info));
    Ok((report, model_path))
}

/// What `tlearn finetune train` asks for: one network trained on each of `splits`.
#[derive(Debug, Clone)]
pub struct FinetuneRun {
    /// The network and its data; `net.out` is the run's folder (split K trains in
    /// `split-K`), `net.split` is not read.
    pub net: RunConfig,
    /// Splits to run.
    pub splits: Vec<usize>,
    /// The data set root the cache was made from (the gallery's pictures).
    pub data: Option<PathBuf>,
}

/// What a fine-tuning run reports as it goes.
#[derive(Debug)]
pub enum FinetuneEvent<'a> {
    /// The run starts: what stays frozen and what trains.
    Start(&'a Tail),
    /// A step, an epoch or a split finished.
    Split(SplitEvent<'a>),
}

/// A fine-tuning run done on every split.
#[derive(Debug, Clone)]
pub struct Finetuned {
    /// What was frozen and what trained.
    pub tail: Tail,
    /// Each split's summary, in order.
    pub summaries: Vec<Summary>,
    /// The run's report.
    pub report: RunReport,
}

/// Fine-tunes as `cfg` asks into `place` (every output checked first) and writes the report.
/// Stopping on request (`stop`, checked after every step) is [`Interrupted`]; the
/// checkpoints are kept and the same call resumes.
pub fn finetune(
    cfg: &FinetuneRun,
    place: &Place,
    params: &CheckedParams,
    stop: &Stop,
    observe: &mut dyn for<'e> Observer<FinetuneEvent<'e>>,
) -> Result<Finetuned, RunError> {
    place.check(None)?;
    let done = finetune_splits(cfg, place.name.as_str(), params, stop, observe)?;
    crate::report::write_run(&done.report, &place.report_dir)?;
    Ok(done)
}

/// Fine-tunes as `cfg` asks and gives the report of run `name` (not written).
pub fn finetune_splits(
    cfg: &FinetuneRun,
    name: &str,
    params: &CheckedParams,
    stop: &Stop,
    observe: &mut dyn for<'e> Observer<FinetuneEvent<'e>>,
) -> Result<Finetuned, RunError> {
    let net = &cfg.net;
    let (tail, _) = cache_tail(&net.cache, net.repr.as_ref(), net.unfreeze, &net.backbone)?;
    observe.observe(FinetuneEvent::Start(&tail));
    let summaries = run_splits(net, &cfg.splits, params, stop, &mut |event: SplitEvent<
        '_,
    >| {
        observe.observe(FinetuneEvent::Split(event))
    })?;
    if summaries.last().map(|s| s.ending) == Some(Ending::Interrupted) {
        return Err(Interrupted.into());
    }
    let init_from = net.init_from.as_deref();
    let method = method(&tail, net.pool, net.hidden, params, init_from);
    let data = cfg.data.as_deref();
    let report = run_report(name, method, &net.cache, data, &net.out, &summaries)?;
    Ok(Finetuned {
        tail,
        summaries,
        report,
    })
}

/// The names of `convs`, comma-separated.
pub fn conv_names(convs: &[ConvLayer]) -> String {
    convs
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
