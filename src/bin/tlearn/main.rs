//! `tlearn`: a thin command line over the tlearn library.

mod args;
mod auto_cmd;
mod classify_cmd;
mod finetune_cmd;

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Parser;
use tlearn::cache::{FeatureCache, RowStatus};
use tlearn::extract::{self, ExtractConfig, Summary};
use tlearn::onnx::{CutSpec, Model};
use tlearn::preprocess::{load_rgb, DecodeLimits};

use args::{AugmentCommand, Cli, Command, FeaturesArgs, ModelCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        Command::Cache { file } => cache_info(&file).map(|_| ExitCode::SUCCESS),
        Command::Model(ModelCommand::Cut {
            input,
            outputs,
            nchw_input,
            free_dims,
            out,
        }) => {
            let outputs = outputs
                .iter()
                .map(|o| match o.split_once('=') {
                    Some((tensor, name)) => (tensor.to_string(), name.to_string()),
                    None => (o.clone(), o.clone()),
                })
                .collect();
            let mut model = Model::load(&input)?;
            model.cut(&CutSpec {
                outputs,
                nchw_input,
                free_dims,
            })?;
            model.save(&out)?;
            eprintln!("wrote {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Model(ModelCommand::Inspect { input }) => {
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
        Command::Augment(AugmentCommand::Preview {
            image,
            augment,
            copies,
            seed,
            tile,
            out,
        }) => {
            let img = load_rgb(&image, &DecodeLimits::default())?;
            let grid = tlearn::augment::preview_grid(&img, &augment, seed, copies, tile);
            grid.save(&out)
                .with_context(|| format!("writing {}", out.display()))?;
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
        Command::Predict(args) => classify_cmd::predict(args),
        Command::Report(args) => classify_cmd::report(args),
        Command::BenchClassifiers(args) => classify_cmd::bench(args),
        Command::Finetune(command) => finetune_cmd::dispatch(command),
        Command::Bench(args) => {
            let report = tlearn::bench::features(&config(&args.features))?;
            print_json(&report, args.json.as_deref())
        }
    }
}

fn config(args: &FeaturesArgs) -> ExtractConfig {
    ExtractConfig {
        data: args.data.clone(),
        model: args.model.clone(),
        layers: args.layers.clone(),
        pooling: args.pooling,
        reprs: args.reprs.clone(),
        recipe: args.augment.clone(),
        copies: args.copies,
        augment_all: args.augment_all,
        split: args.split,
        splits: args.splits,
        seed: args.seed,
        batch: args.batch,
        ep: args.ep,
        threads: args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        strict: args.strict,
        limits: DecodeLimits::default(),
        per_class: args.per_class,
        out: args.out.clone(),
        progress: !args.quiet,
    }
}

/// A flag the first Ctrl-C raises (after saying `message`); a second Ctrl-C exits at once,
/// which is safe because every long job here can be abandoned at any point and resumed.
pub(crate) fn stop_on_ctrl_c(message: &'static str) -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let handler_stop = stop.clone();
    ctrlc::set_handler(move || {
        if handler_stop.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\n{message}");
    })
    .context("installing the Ctrl-C handler")?;
    Ok(stop)
}

/// Prints a benchmark's JSON on stdout and, when asked, writes it to a file too.
pub(crate) fn print_json(
    report: &impl serde::Serialize,
    path: Option<&std::path::Path>,
) -> Result<ExitCode> {
    let json = serde_json::to_string_pretty(report)?;
    println!("{json}");
    if let Some(path) = path {
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn features(args: FeaturesArgs) -> Result<ExitCode> {
    let stop = stop_on_ctrl_c("stopping after the batch in flight (Ctrl-C again to quit at once; the cache stays resumable)")?;
    let cfg = config(&args);
    let summary = extract::run(&cfg, &stop)?;
    print_summary(&cfg, &summary);
    Ok(if summary.interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_summary(cfg: &ExtractConfig, s: &Summary) {
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
        cfg.out.display(),
        s.images,
        s.rows,
        s.dims
    );
    if !s.skipped.is_empty() {
        eprintln!(
            "skipped {} image(s) (listed in the cache too):",
            s.skipped.len()
        );
        for (path, reason) in &s.skipped {
            eprintln!("  {path}: {reason}");
        }
    }
    if s.interrupted {
        eprintln!("interrupted: run the same command again to compute the remaining rows");
    }
}

fn cache_info(path: &std::path::Path) -> Result<()> {
    let cache = FeatureCache::open(path)?;
    let mut out = std::io::stdout().lock();
    let status = cache.status()?;
    let count = |s| status.iter().filter(|x| **x == s).count();
    let id = &cache.identity;
    writeln!(out, "{}", path.display())?;
    writeln!(
        out,
        "  rows: {} ({} done, {} missing, {} skipped)",
        cache.rows,
        count(RowStatus::Done),
        count(RowStatus::Missing),
        count(RowStatus::Skipped)
    )?;
    writeln!(out, "  classes: {}", cache.class_names()?.join(", "))?;
    writeln!(
        out,
        "  model: {} (sha256 {})",
        id.model_name, id.model_sha256
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
    writeln!(
        out,
        "  augment: {} x{}  seed: {}  splits: {} x {}",
        id.augment, id.copies, id.seed, id.splits, id.split
    )?;
    for (row, reason) in cache.skipped()? {
        writeln!(out, "  skipped row {row}: {reason}")?;
    }
    if cache.rows == 0 {
        bail!("the cache has no rows");
    }
    Ok(())
}
