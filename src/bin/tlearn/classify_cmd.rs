//! `tlearn train`, `report` and `bench-classifiers`: arguments and their thin glue over
//! `tlearn::classify` and `tlearn::report`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use tlearn::classify::data::CacheData;
use tlearn::classify::train::TrainConfig;
use tlearn::classify::Kind;
use tlearn::output::RunName;
use tlearn::runs::{self, LinearRun};

/// Arguments of `tlearn train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Classifier: svm (linear, one-vs-all), logistic (multinomial), logistic-ovr (one-vs-all).
    #[arg(value_enum)]
    pub kind: Kind,
    /// The HDF5 feature cache.
    #[arg(long = "cache", alias = "features", default_value = "data/features.h5")]
    pub cache: PathBuf,
    /// Run name (default: KIND-CACHE[-nocopies][-tta][-l2|-power]); the model goes to runs/NAME, the report to reports/NAME.
    #[arg(long)]
    pub run: Option<String>,
    /// Folder of saved models.
    #[arg(long, default_value = "runs")]
    pub runs: PathBuf,
    /// Folder of reports.
    #[arg(long, default_value = "reports")]
    pub reports: PathBuf,
    /// Data set root the cache was made from (for the gallery's thumbnails).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Values of C to choose from on the validation split (comma-separated).
    #[arg(long = "c", value_delimiter = ',')]
    pub grid: Option<Vec<f64>>,
    /// Splits to run (default: all of the cache's).
    #[arg(long = "splits-used", alias = "split", value_delimiter = ',')]
    pub splits: Vec<usize>,
    /// How the classifier trains and scores.
    #[command(flatten)]
    pub linear: LinearFlags,
    /// Train on these representations of the cache only, LAYER:POOLING comma-separated
    /// (e.g. block4_pool:avg,block5_pool:avg; the cache must hold them, see `features --repr`).
    #[arg(long = "use", value_delimiter = ',')]
    pub uses: Vec<tlearn::backbone::Repr>,
    /// Save the first split's model for `predict` instead of refitting, after the evaluation,
    /// on all labelled images (every split's training, validation and test images) with the C
    /// of best mean validation accuracy (the default, as scikit-learn's grid search does).
    #[arg(long)]
    pub no_refit: bool,
    /// No progress lines.
    #[arg(long, short)]
    pub quiet: bool,
}

/// How a linear classifier trains and scores: the flags `tlearn train` and `tlearn finetune
/// ensemble` share.
#[derive(Debug, Args)]
pub struct LinearFlags {
    /// Train on original images only, not their augmented copies.
    #[arg(long)]
    pub no_copies: bool,
    /// Average a test image's scores over its augmented copies (cache made with --augment-all).
    #[arg(long)]
    pub tta: bool,
    /// Read only the first K augmented copies of each image the cache holds, as training rows
    /// and as --tta's views (default: all of them). The model records K: predict averages as
    /// many views.
    #[arg(long, value_name = "K")]
    pub copies_used: Option<u32>,
    /// Normalise each representation (LAYER:POOLING block) of a feature row before
    /// standardisation: l2 divides it by its Euclidean norm, power takes the signed square
    /// root of every value, then divides by the norm. Saved with the model: predict and
    /// export apply it too.
    #[arg(long, value_enum, default_value_t = tlearn::classify::Normalize::None)]
    pub normalize: tlearn::classify::Normalize,
    /// Most L-BFGS iterations of the logistic models (a fit that stops at this limit is a
    /// warning in the report).
    #[arg(long, default_value_t = tlearn::classify::logistic::DEFAULT_MAX_ITERATIONS)]
    pub max_iterations: u64,
    /// Once C is chosen on validation, refit with it on training + validation images before
    /// scoring the test images.
    #[arg(long)]
    pub refit_with_validation: bool,
}

impl LinearFlags {
    /// The configuration of a `kind` classifier these flags ask for (every other setting at
    /// [`TrainConfig::new`]'s default).
    pub fn config(&self, kind: Kind) -> TrainConfig {
        TrainConfig {
            train_copies: !self.no_copies,
            tta: self.tta,
            copies_used: self.copies_used,
            normalize: self.normalize,
            max_iterations: self.max_iterations,
            refit_with_validation: self.refit_with_validation,
            ..TrainConfig::new(kind)
        }
    }
}

/// Arguments of `tlearn report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Folder of run reports (each NAME/report.json); the comparison is written there.
    #[arg(long, default_value = "reports")]
    pub reports: PathBuf,
    /// No messages but errors.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Arguments of `tlearn bench-classifiers`.
#[derive(Debug, Args)]
pub struct BenchClassifiersArgs {
    /// The HDF5 feature cache (all training rows of split 0 are used).
    #[arg(long = "cache", alias = "features", default_value = "data/features.h5")]
    pub cache: PathBuf,
    /// C of every fit.
    #[arg(long, default_value_t = 0.01)]
    pub c: f64,
    /// Also write the JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// The training configuration the arguments ask for.
fn train_config(args: &TrainArgs) -> TrainConfig {
    let mut cfg = args.linear.config(args.kind);
    if let Some(grid) = &args.grid {
        cfg.grid = grid.clone();
    }
    cfg.splits = args.splits.clone();
    cfg.refit_on_all_labelled = !args.no_refit;
    cfg
}

/// `tlearn train`: every check happens before anything is written.
pub fn train(args: TrainArgs) -> Result<ExitCode> {
    let run = LinearRun {
        cache: args.cache.clone(),
        uses: args.uses.clone(),
        train: train_config(&args),
        name: args.run.as_deref().map(RunName::new).transpose()?,
        runs: args.runs.clone(),
        reports: args.reports.clone(),
        data: args.data.clone(),
    };
    let quiet = args.quiet;
    let made = runs::train_linear(&run, &mut |line: String| {
        if !quiet {
            eprintln!("{line}");
        }
    })?;
    let (report, s) = (&made.report, &made.report.summary);
    eprintln!(
        "{}: test accuracy {:.2}% ± {:.2} over {} split(s) of {} test images (top-5 {:.2}%, macro F1 {:.2}%); model {}, report {}",
        report.run,
        100.0 * s.accuracy.mean,
        100.0 * s.accuracy.std,
        s.splits,
        tlearn::report::content::per_split(&report.test_images()),
        100.0 * s.top5_accuracy.mean,
        100.0 * s.macro_f1.mean,
        made.model.display(),
        made.report_dir.join("report.html").display()
    );
    report
        .warnings
        .iter()
        .for_each(|w| eprintln!("warning: {w}"));
    Ok(ExitCode::SUCCESS)
}

/// `tlearn report`: the comparison of every run.
pub fn report(args: ReportArgs) -> Result<ExitCode> {
    // -q: "no messages but errors"; the warnings are in index.html too.
    let quiet = args.quiet;
    let rows = tlearn::report::compare(&args.reports, &mut |w| {
        if !quiet {
            eprintln!("warning: {w}")
        }
    })?;
    let mut out = std::io::stdout().lock();
    for row in &rows {
        writeln!(out, "{}", row.cells().join("\t"))?;
    }
    if args.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "compared {} run(s): {}",
        rows.len(),
        args.reports.join("index.html").display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `tlearn bench-classifiers`: fit and predict seconds of each kind on split 0 (JSON).
pub fn bench(args: BenchClassifiersArgs) -> Result<ExitCode> {
    crate::support::check_json(args.json.as_deref())?;
    let data = CacheData::load(&args.cache)?;
    let report = tlearn::classify::bench::bench(
        &data,
        args.c,
        &mut |r: &tlearn::classify::bench::KindBench| {
            eprintln!(
                "{}: fit {:.2} s, predict {:.3} s",
                r.classifier, r.fit_seconds, r.predict_seconds
            )
        },
    )?;
    crate::support::print_json(
        &report,
        args.json.as_deref().map(crate::support::json_target),
    )
}
