//! `tlearn auto`: arguments, progress lines and the closing summary over `tlearn::auto`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::Args;
use tlearn::augment::Recipe;
use tlearn::auto::choose::POOLINGS;
use tlearn::auto::{self, AutoConfig, AutoError, Progress};
use tlearn::backbone::Pooling;
use tlearn::classify::Kind;

/// Parses one of auto's candidate poolings; `--help` lists only these (flatten, always compared
/// for the deepest layer, is not a choice here).
fn candidate_pooling() -> impl TypedValueParser<Value = Pooling> {
    PossibleValuesParser::new(POOLINGS.map(Pooling::name)).map(|name| {
        POOLINGS
            .into_iter()
            .find(|pooling| pooling.name() == name)
            .expect("PossibleValuesParser accepts only these names")
    })
}

/// Arguments of `tlearn auto`.
#[derive(Debug, Args)]
pub struct AutoArgs {
    /// Data set root: one sub-folder per class, or the flowers layout (jpg/image_NNNN.jpg).
    #[arg(long)]
    pub data: PathBuf,
    /// Everything goes under this folder: cache/features.h5, runs/auto/, reports/auto/.
    #[arg(long)]
    pub out: PathBuf,
    /// Backbone ONNX model; its descriptor `<model>.toml` must sit beside it.
    #[arg(
        long = "backbone",
        alias = "model",
        default_value = "models/vgg16.onnx"
    )]
    pub backbone: PathBuf,
    /// Candidate layers, comma-separated (default: the backbone's deepest three).
    #[arg(long = "layers", value_delimiter = ',')]
    pub layers: Vec<String>,
    /// How each candidate layer is pooled, comma-separated: global average and maximum, and
    /// both over each quarter of the map (avg2x2, max2x2: where in the image a feature fired,
    /// 4x the columns). The deepest layer flattened is always compared. Fewer make a smaller
    /// cache and a faster choice; a cache made with other poolings is refused, not mixed.
    #[arg(
        long,
        value_parser = candidate_pooling(),
        value_delimiter = ',',
        default_value = "avg,max,avg2x2,max2x2"
    )]
    pub poolings: Vec<Pooling>,
    /// Classifiers compared.
    #[arg(
        long = "classifiers",
        value_enum,
        value_delimiter = ',',
        default_value = "svm,logistic"
    )]
    pub kinds: Vec<Kind>,
    /// Values of C compared (comma-separated; default: the grid of `tlearn train`).
    #[arg(long = "c", value_delimiter = ',')]
    pub grid: Option<Vec<f64>>,
    /// Most L-BFGS iterations of the logistic models (a fit that stops at this limit is a
    /// warning in the report).
    #[arg(long, default_value_t = tlearn::classify::logistic::DEFAULT_MAX_ITERATIONS)]
    pub max_iterations: u64,
    /// Augmentation recipe of the training images' copies (as `make features`).
    #[arg(long, default_value = "flip,rotate,scale,crop")]
    pub augment: Recipe,
    /// Augmented copies per image. More copies train on more views and average more views with
    /// TTA (auto decides whether to read all of them or the first half on validation images),
    /// at one backbone pass per copy: 6 copies extract 7 rows per image, 2.3x the rows of 2.
    /// Default: 6, fewer for more than 2857 images (down to 2 from 6667) so the cache stays
    /// within 20000 rows, whose memory and backbone time grow with the rows.
    #[arg(long)]
    pub copies: Option<u32>,
    /// Augment only the images that are training images in some split (about 9 % fewer rows
    /// on the flowers), so test-time augmentation is not among the candidates. By default auto
    /// augments every image and decides TTA on validation images.
    #[arg(long, conflicts_with = "augment_all")]
    pub augment_training_only: bool,
    /// Splits, seed and how the extraction runs.
    #[command(flatten)]
    pub run: crate::extract_opts::RunOpts,
    /// Image sizes compared as candidates, in pixels, comma-separated (e.g. 224,320); must
    /// include the backbone's size (or --size's), whose cache stays cache/features.h5; each
    /// other size gets cache/features-<size>.h5 (pooled layers only) and its own stage 1.
    /// Costly: a size's extraction takes about (size/224)^2 the time of 224 px (about 2x at
    /// 320, 4x at 448), and its search as much again as the first size's. Default: the
    /// backbone's size alone.
    #[arg(long, value_delimiter = ',')]
    pub sizes: Vec<u32>,
    /// Score the test images with the chosen configuration fitted on training images only
    /// (default: refit on training + validation images once C is chosen).
    #[arg(long)]
    pub no_refit_with_validation: bool,
    /// Run the fine-tuning stages even on small data (default: only on large data).
    #[arg(long, conflicts_with = "no_finetune")]
    pub finetune: bool,
    /// Never run the fine-tuning stages.
    #[arg(long)]
    pub no_finetune: bool,
    /// Most epochs of each fine-tuning stage.
    #[arg(long, default_value_t = tlearn::finetune::train::FinetuneParams::default().epochs)]
    pub epochs: usize,
    /// Also write the seconds of each phase here (JSON).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Then time one flattened extraction of the deepest layer plus one SVM grid on the same
    /// data (in a temporary folder) and add it to the JSON: `make bench`'s comparison.
    #[arg(long, requires = "json")]
    pub baseline: bool,
    /// No progress bar or progress lines.
    #[arg(long, short)]
    pub quiet: bool,
}

fn config(args: &AutoArgs) -> AutoConfig {
    // Auto's cache path is its own (under --out): none is given here.
    let augment = (&args.augment, args.copies.unwrap_or(auto::DEFAULT_COPIES));
    let extract = args.run.extract_config(
        &args.data,
        &args.backbone,
        augment,
        Path::new(""),
        args.quiet,
    );
    let extract = tlearn::extract::ExtractConfig {
        augment_all: !args.augment_training_only,
        ..extract
    };
    let mut cfg = AutoConfig::new(extract, &args.out);
    cfg.reproduce = crate::flags::reproduce;
    cfg.layers = args.layers.clone();
    cfg.poolings = args.poolings.clone();
    cfg.kinds = args.kinds.clone();
    if let Some(grid) = &args.grid {
        cfg.grid = grid.clone();
    }
    cfg.max_iterations = args.max_iterations;
    cfg.sizes = args.sizes.clone();
    cfg.row_budget = args.copies.is_none().then_some(auto::ROW_BUDGET);
    cfg.refit_with_validation = !args.no_refit_with_validation;
    cfg.finetune = match (args.finetune, args.no_finetune) {
        (true, _) => auto::finetune::When::Always,
        (_, true) => auto::finetune::When::Never,
        _ => auto::finetune::When::Large,
    };
    cfg.finetune_params.epochs = args.epochs;
    cfg.finetune_params.seed = args.run.seed;
    cfg.finetune_params.compute = tlearn::backbone::Compute {
        ep: cfg.extract.ep,
        threads: cfg.extract.threads,
    };
    cfg
}

fn show(progress: Progress, quiet: bool) {
    match progress {
        Progress::Warning(w) => eprintln!("warning: {w}"),
        _ if quiet => {}
        Progress::Phase(p) => eprintln!("== {p}"),
        Progress::Step(line) => eprintln!("{line}"),
        Progress::Search(s) => eprintln!(
            "[{}/{}] {} (ETA {:.0} s)",
            s.done, s.total, s.line, s.eta_seconds
        ),
    }
}

/// `tlearn auto`: the whole decision, then a summary table on stdout.
pub fn auto(args: AutoArgs) -> Result<ExitCode> {
    let stop = crate::support::stop_on_ctrl_c(
        "stopping after the batch or fits in flight; the previous model and reports stay as they were (Ctrl-C again to quit at once; the cache stays resumable)",
    )?;
    let cfg = config(&args);
    if let Some(path) = &args.json {
        json_target(path, &cfg).check()?;
    }
    let quiet = args.quiet;
    let outcome = match auto::run(&cfg, &stop, &mut |p: Progress| show(p, quiet)) {
        Err(AutoError::Interrupted(_)) => {
            eprintln!("interrupted: run the same command again to resume");
            return Ok(ExitCode::from(130));
        }
        other => other?,
    };
    print_candidates(&outcome.decision);
    print_summary(&outcome);
    if let Some(path) = &args.json {
        write_json(path, args.baseline, &cfg, &outcome.decision, &stop)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The best C of every (size, feature set, classifier, variant), best first, the chosen one
/// marked (stdout); the size column only when several sizes were compared.
fn print_candidates(d: &auto::Decision) {
    let mut sorted = auto::choose::best_per_variant(&d.search.candidates);
    sorted.sort_by(|a, b| b.val_accuracy.total_cmp(&a.val_accuracy));
    let val = d.chosen.val_images.first().copied().unwrap_or(0);
    let several = d.sizes.len() > 1;
    let size = |text: String| {
        if several {
            format!("{text:>5} ")
        } else {
            String::new()
        }
    };
    // The variant column fits its longest label (`copies (3 per image) + tta + power`).
    let width = sorted
        .iter()
        .map(|c| c.variant.label().len())
        .fold(16, usize::max);
    println!(
        "{}{:<50} {:<9} {:<width$} {:>6} {:>7} {:>10}",
        size("size".into()),
        "features",
        "classifier",
        "variant",
        "dims",
        "best C",
        format!("val % (n={val})")
    );
    for c in sorted {
        let chosen = &d.chosen;
        let same = c.size == chosen.size && c.reprs == chosen.reprs && c.kind == chosen.kind;
        let mark = if same && c.variant == chosen.variant {
            " <- chosen"
        } else {
            ""
        };
        println!(
            "{}{:<50} {:<9} {:<width$} {:>6} {:>7} {:>10.2}{mark}",
            size(c.size.to_string()),
            c.reprs.join("+"),
            c.kind.to_string(),
            c.variant.label(),
            c.dims,
            format!("{:e}", c.c),
            100.0 * c.val_accuracy
        );
    }
}

/// The data, the choice, the fine-tuning stages and where the outputs went (stderr).
fn print_summary(outcome: &auto::AutoOutcome) {
    let d = &outcome.decision;
    let s = &outcome.report.summary;
    let tests = outcome
        .report
        .splits
        .first()
        .map_or(0, |split| split.test_images);
    eprintln!(
        "data: {} images, {} classes, median {} per class ({:?}); the winner reads {} ({:?})",
        d.stats.images,
        d.stats.classes,
        d.stats.per_class_spread.median,
        d.stats.size,
        d.chosen.layers,
        d.similarity
    );
    let at = if d.sizes.len() > 1 {
        format!(" at {} px", d.chosen.size)
    } else {
        String::new()
    };
    eprintln!(
        "chosen: {} on {}{at} ({}, C = {:e}): validation {:.2}%, test {:.2}% ± {:.2} over {} split(s) (n = {tests} test images per split)",
        d.chosen.kind,
        d.chosen.reprs.join("+"),
        d.chosen.variant.label(),
        d.chosen.c,
        100.0 * d.chosen.val_accuracy,
        100.0 * s.accuracy.mean,
        100.0 * s.accuracy.std,
        s.splits
    );
    eprintln!("fine-tuning: {}", d.finetune_reason);
    for stage in &d.finetune {
        let kept = if d.finetune_won.as_ref() == Some(&stage.run) {
            " <- kept: beats the linear choice on validation"
        } else {
            ""
        };
        eprintln!(
            "  {}: {}: validation {:.2}%{kept}",
            stage.run,
            stage.trained,
            100.0 * stage.val_accuracy
        );
    }
    if d.stats.min_test_images() < auto::measure::RELIABLE_TEST_IMAGES {
        eprintln!(
            "warning: only {} test images per split: the test accuracy is an unreliable estimate",
            d.stats.min_test_images()
        );
    }
    eprintln!(
        "model {}, report {} (decision section included)",
        outcome.model.display(),
        outcome.report_dir.join("report.html").display()
    );
}

/// The `--json` file: never the data, the backbone or auto's own cache, runs and reports.
fn json_target(path: &Path, cfg: &AutoConfig) -> tlearn::output::Target {
    let descriptor = tlearn::backbone::Descriptor::path_for(&cfg.extract.backbone);
    crate::support::json_target(path)
        .reading(&cfg.extract.data)
        .reading(&cfg.extract.backbone)
        .reading(&descriptor)
        .beside(&cfg.out.join("cache"))
        .beside(&cfg.runs())
        .beside(&cfg.reports())
}

/// The seconds of each phase as JSON at `path`; with `baseline`, first times the baseline
/// (one flattened extraction and one SVM grid) and writes the comparison instead.
fn write_json(
    path: &Path,
    baseline: bool,
    cfg: &AutoConfig,
    d: &auto::Decision,
    stop: &tlearn::progress::Stop,
) -> Result<()> {
    if baseline {
        eprintln!("== timing the baseline: one flattened extraction and one SVM grid");
        let bench = auto::bench::against_baseline(cfg, d, stop)?;
        crate::support::print_json(&bench, Some(json_target(path, cfg)))?;
    } else {
        let total: f64 = d.phases.iter().map(|p| p.seconds).sum();
        let json = serde_json::json!({
            "bench": "auto",
            "phases": d.phases,
            "total_seconds": total,
            "rows_computed": d.rows_computed,
            "chosen": d.chosen,
        });
        let text = serde_json::to_string_pretty(&json)? + "\n";
        json_target(path, cfg).write(text.as_bytes())?;
    }
    Ok(())
}
