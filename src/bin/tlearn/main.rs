//! `tlearn`: a thin command line over the tlearn library.

mod args;
mod auto_cmd;
mod classify_cmd;
mod cores;
mod export_cmd;
mod extract_opts;
mod finetune_cmd;
mod flags;
mod predict_cmd;
mod progress;
mod shard_cmd;
mod support;

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;
use tlearn::cache::{CacheError, FeatureCache, RowStatus};
use tlearn::extract::{self, ExtractConfig, Summary};
use tlearn::onnx::{CutSpec, Model};
use tlearn::options::Opt;
use tlearn::preprocess::{load_rgb, DecodeLimits};

use args::{AugmentCommand, Cli, Command, FeaturesArgs, ModelCommand, QuantizeArgs};
use support::{check_json, json_target, print_json, stop_on_ctrl_c};
use tlearn::quantize::QuantizeParams;

fn main() -> ExitCode {
    tlearn::options::spell_with(flags::flag);
    let argv: Vec<String> = std::env::args().collect();
    let cli = Cli::parse();
    for (old, new) in deprecated_flags(&argv) {
        eprintln!(
            "warning: {old} is deprecated here and will be removed in the next release; use {new}"
        );
    }
    match dispatch(cli.command) {
        Ok(code) => code,
        // `tlearn model inspect x.onnx | head` closes the pipe early: not an error.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", describe(&error));
            ExitCode::FAILURE
        }
    }
}

/// Old spellings still accepted for one release, by command: (command, old flag, new flag).
const DEPRECATED: &[(&str, &str, &str)] = &[
    ("features", "--model", "--backbone"),
    ("features", "--out", "--cache"),
    ("bench", "--model", "--backbone"),
    ("bench", "--out", "--cache"),
    ("train", "--features", "--cache"),
    ("train", "--split", "--splits-used"),
    ("bench-classifiers", "--features", "--cache"),
    ("auto", "--model", "--backbone"),
    ("finetune train", "--features", "--cache"),
    ("finetune train", "--model", "--backbone"),
    ("finetune train", "--split", "--splits-used"),
    ("finetune train", "--out", "--runs and --run"),
    ("finetune export-graph", "--features", "--cache"),
    ("finetune export-graph", "--model", "--backbone"),
    ("finetune export-graph", "--split", "--split-used"),
    ("finetune bench", "--features", "--cache"),
    ("finetune bench", "--model", "--backbone"),
];

/// The deprecated flags `argv` uses, with their new spelling.
fn deprecated_flags(argv: &[String]) -> Vec<(&'static str, &'static str)> {
    let words: Vec<&str> = argv
        .iter()
        .skip(1)
        .take(2)
        .map(String::as_str)
        .take_while(|w| !w.starts_with('-'))
        .collect();
    let command = match words.as_slice() {
        ["finetune", sub, ..] => format!("finetune {sub}"),
        [first, ..] => first.to_string(),
        [] => return Vec::new(),
    };
    let used = |flag: &str| {
        argv.iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    };
    DEPRECATED
        .iter()
        .filter(|(c, old, _)| *c == command && used(old))
        .map(|(_, old, new)| (*old, *new))
        .collect()
}

/// The error and its causes, skipping causes that an outer message already quotes.
fn describe(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

fn dispatch(command: Command) -> Result<ExitCode> {
    match command {
        Command::Features(args) => features(args),
        Command::Cache(args) => match args.command {
            Some(command) => shard_cmd::cache(command),
            None => cache_info(&args.file.context("give a cache file")?).map(|_| ExitCode::SUCCESS),
        },
        Command::Model(command) => model(command),
        Command::Augment(AugmentCommand::Preview {
            image,
            augment,
            copies,
            seed,
            tile,
            out,
        }) => {
            let target = tlearn::output::Target::new(&out)
                .option(Opt::Out)
                .reading(&image);
            target.check()?;
            let format = image::ImageFormat::from_path(&out)
                .with_context(|| format!("{}: name it .png or .jpg", out.display()))?;
            let img = load_rgb(&image, &DecodeLimits::default())?;
            let grid = tlearn::augment::preview_grid(&img, &augment, seed, copies, tile);
            let mut bytes = std::io::Cursor::new(Vec::new());
            grid.write_to(&mut bytes, format)
                .with_context(|| format!("encoding {}", out.display()))?;
            target.write(bytes.get_ref())?;
            eprintln!(
                "wrote {} ({} variants of {})",
                out.display(),
                copies,
                image.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Auto(args) => auto_cmd::auto(args),
        Command::Train(args) => classify_cmd::train(args),
        Command::Predict(args) => predict_cmd::predict(args),
        Command::Export(args) => export_cmd::export_model(args),
        Command::Report(args) => classify_cmd::report(args),
        Command::BenchClassifiers(args) => classify_cmd::bench(args),
        Command::Finetune(command) => finetune_cmd::dispatch(command),
        Command::Bench(args) => bench(args),
    }
}

/// `tlearn model cut | quantize | inspect`.
fn model(command: ModelCommand) -> Result<ExitCode> {
    match command {
        ModelCommand::Cut {
            input,
            outputs,
            nchw_input,
            free_dims,
            out,
        } => {
            let outputs = outputs
                .iter()
                .map(|o| match o.split_once('=') {
                    Some((tensor, name)) => (tensor.to_string(), name.to_string()),
                    None => (o.clone(), o.clone()),
                })
                .collect();
            let target = tlearn::output::Target::new(&out)
                .kind(tlearn::onnx::ONNX_KIND)
                .option(Opt::Out)
                .reading(&input);
            target.check()?;
            let mut model = Model::load(&input)?;
            model.cut(&CutSpec {
                outputs,
                nchw_input,
                free_dims,
            })?;
            target.write(&model.to_bytes())?;
            eprintln!("wrote {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        ModelCommand::Quantize(args) => quantize(args),
        ModelCommand::Inspect { input } => {
            let model = Model::load(&input)?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "inputs: {}", model.input_names().join(", "))?;
            writeln!(out, "outputs: {}", model.output_names().join(", "))?;
            writeln!(out, "tensors (any can be given to `model cut --output`):")?;
            for name in model.tensor_names() {
                writeln!(out, "  {name}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `tlearn bench`: one backbone's pipeline, or two side by side (`--against`).
fn bench(args: args::BenchArgs) -> Result<ExitCode> {
    if args.features.shard.is_some() {
        bail!("tlearn bench measures a whole run: leave out --shard");
    }
    let cfg = config(&args.features);
    check_json(args.json.as_deref())?;
    let target = args.json.as_deref().map(json_target);
    match &args.against {
        None => print_json(&tlearn::bench::features(&cfg)?, target),
        Some(other) => print_json(&tlearn::bench::backbones(&cfg, other, args.rounds)?, target),
    }
}

fn quantize(args: QuantizeArgs) -> Result<ExitCode> {
    let mut params = QuantizeParams::new(&args.input, &args.calibrate, &args.out)
        .images(args.images)
        .method(args.method)
        .percentile(args.percentile)
        .batch(args.batch);
    if args.threads.is_some() {
        params = params.threads(cores::threads(args.threads));
    }
    let s = params.check()?.run()?;
    for (path, reason) in &s.skipped {
        eprintln!("skipped calibration image {path}: {reason}");
    }
    eprintln!(
        "wrote {} ({} convolutions, {} activations calibrated on {} images, {:.1} MB -> {:.1} MB, {:.1} s) and its descriptor {}",
        s.out.display(),
        s.convolutions,
        s.activations,
        s.images,
        s.fp32_bytes as f64 / 1e6,
        s.int8_bytes as f64 / 1e6,
        s.seconds,
        s.descriptor.display()
    );
    if !tlearn::quantize::cpu_has_vnni() {
        eprintln!("note: this CPU has no VNNI instructions: the int8 model runs, but ONNX Runtime's int8 kernels are slower here (possibly slower than fp32)");
    }
    Ok(ExitCode::SUCCESS)
}

fn config(args: &FeaturesArgs) -> ExtractConfig {
    let augment = (&args.augment, args.copies);
    let mut cfg =
        args.run
            .extract_config(&args.data, &args.backbone, augment, &args.cache, args.quiet);
    cfg.layers = args.layers.clone();
    cfg.pooling = args.pooling;
    cfg.reprs = args.reprs.clone();
    cfg.unlabeled = args.unlabeled;
    cfg
}

fn features(args: FeaturesArgs) -> Result<ExitCode> {
    let stop = stop_on_ctrl_c("stopping after the batch in flight (Ctrl-C again to quit at once; the cache stays resumable)")?;
    let mut cfg = config(&args);
    let summary = match &args.shard {
        None => extract::run(&cfg, &stop)?,
        Some(request) => shard_cmd::features(request, &mut cfg, &stop)?,
    };
    print_summary(&cfg, &summary, args.verbose);
    Ok(if summary.interrupted.is_some() {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_summary(cfg: &ExtractConfig, s: &Summary, verbose: bool) {
    for warning in &s.warnings {
        eprintln!("warning: {warning}");
    }
    let work = if s.computed == 0 {
        "nothing left to compute".to_string()
    } else {
        format!(
            "{} computed now in {:.1} s, {:.2} images/s; {} were cached already",
            s.computed, s.seconds, s.rows_per_second, s.reused
        )
    };
    eprintln!(
        "{}: {} images, {} rows of {} features ({work})",
        cfg.cache.display(),
        s.images,
        s.rows,
        s.dims
    );
    if !s.skipped.is_empty() {
        eprintln!(
            "skipped {} image(s), left out of every count and split:",
            s.skipped.len()
        );
        for (path, reason) in &s.skipped {
            eprintln!("  {path}: {reason}");
        }
    }
    if !s.recomputed.is_empty() {
        eprintln!(
            "recomputed {} image(s) whose file changed since it was cached (all their rows):",
            s.recomputed.len()
        );
        for path in &s.recomputed {
            eprintln!("  {path}");
        }
    }
    print_ignored(&s.ignored, verbose);
    if s.interrupted.is_some() {
        eprintln!("interrupted: run the same command again to compute the remaining rows");
    }
}

/// Counts of what the listing left out, by kind; the names too with `--verbose`.
fn print_ignored(ignored: &[tlearn::dataset::Ignored], verbose: bool) {
    let Some(summary) = tlearn::dataset::ignored_summary(ignored) else {
        return;
    };
    let hint = if verbose {
        ""
    } else {
        " (--verbose names them)"
    };
    eprintln!("{summary}{hint}");
    if verbose {
        for entry in ignored {
            eprintln!("  {}: {}", entry.path, entry.kind);
        }
    }
}

fn cache_info(path: &std::path::Path) -> Result<()> {
    // A cache another process is writing is read without the lock, to show its progress.
    let (cache, busy) = match FeatureCache::open(path) {
        Err(CacheError::Busy { .. }) => (FeatureCache::open_unlocked(path)?, true),
        other => (other?, false),
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", path.display())?;
    write_row_counts(&mut out, &cache, busy)?;
    write_identity(&mut out, &cache)?;
    for (row, reason) in cache.skipped()? {
        writeln!(out, "  skipped row {row}: {reason}")?;
    }
    if cache.rows == 0 {
        bail!("the cache has no rows");
    }
    Ok(())
}

/// How many rows are done, missing and skipped (and whether another process writes them).
fn write_row_counts(out: &mut impl Write, cache: &FeatureCache, busy: bool) -> Result<()> {
    let status = cache.status()?;
    let count = |s| status.iter().filter(|x| **x == s).count();
    writeln!(
        out,
        "  rows: {} ({} done, {} missing, {} skipped)",
        cache.rows,
        count(RowStatus::Done),
        count(RowStatus::Missing),
        count(RowStatus::Skipped)
    )?;
    if busy {
        writeln!(
            out,
            "  being written by another process: {} of {} rows finished",
            count(RowStatus::Done) + count(RowStatus::Skipped),
            cache.rows
        )?;
    }
    Ok(())
}

/// What the cache's identity says: classes, model, layers, augmentation, splits, shard.
fn write_identity(out: &mut impl Write, cache: &FeatureCache) -> Result<()> {
    let id = &cache.identity;
    if id.unlabeled {
        writeln!(out, "  classes: none (unlabeled images, label -1)")?;
    } else {
        writeln!(out, "  classes: {}", cache.class_names()?.join(", "))?;
    }
    writeln!(
        out,
        "  model: {} ({}, sha256 {})",
        id.model_name,
        id.precision.name(),
        id.model_sha256
    )?;
    writeln!(
        out,
        "  layers: {}  pooling: {:?}  dims: {}",
        id.layers.join(","),
        id.pooling,
        id.dims
    )?;
    if !id.reprs.is_empty() {
        let blocks = id.columns().unwrap_or_default();
        let listed: Vec<String> = blocks
            .iter()
            .map(|b| format!("{} [{}..{})", b.repr, b.start, b.end))
            .collect();
        writeln!(out, "  representations: {}", listed.join(", "))?;
    }
    let splits = if id.unlabeled {
        "none".to_string()
    } else {
        format!("{} x {}", id.splits, id.split)
    };
    writeln!(
        out,
        "  augment: {} x{}  seed: {}  splits: {splits}",
        id.augment,
        id.copies_held(),
        id.seed,
    )?;
    if let Some(shard) = &id.shard {
        writeln!(out, "  {}", shard_cmd::describe(shard, cache.rows))?;
    }
    Ok(())
}
