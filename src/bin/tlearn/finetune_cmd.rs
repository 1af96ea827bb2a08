//! `tlearn finetune export-graph | train`: arguments and thin glue over `tlearn::finetune`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use tlearn::backbone::{Compute, ExecutionProvider};
use tlearn::classify::train::TrainConfig;
use tlearn::finetune::bench::BenchConfig;
use tlearn::finetune::ensemble::EnsembleConfig;
use tlearn::finetune::network::Tail;
use tlearn::finetune::run::{prepare, RunConfig, SplitEvent, DEFAULT_HIDDEN};
use tlearn::finetune::schedule::Schedule;
use tlearn::finetune::train::FinetuneParams;
use tlearn::finetune::{eval_graph, train_graph, HeadPool, StepConfig, Unfreeze};
use tlearn::output::RunName;
use tlearn::runs::{self, FinetuneEvent, FinetuneRun, Place, RunError};

use crate::progress;

/// The library's defaults, shown by `--help` and used when a flag is not given: set in one
/// place, `FinetuneParams::default`.
fn defaults() -> FinetuneParams {
    FinetuneParams::default()
}

/// `tlearn finetune ...`
#[derive(Debug, Subcommand)]
pub enum FinetuneCommand {
    /// Write the ONNX training-step and evaluation graphs (parameters are inputs) for a cache.
    ExportGraph(ExportArgs),
    /// Fine-tune on a feature cache, split by split; resumes from each split's checkpoint.
    Train(TrainArgs),
    /// Seconds per epoch of stage 1 (measured) and stage 2 (from a few steps), as JSON.
    Bench(BenchArgs),
    /// Average a fine-tuned run's probabilities with a linear classifier's, the weight (and
    /// the linear C) chosen on each split's validation images; JSON of both and the blend.
    Ensemble(EnsembleArgs),
}

/// Arguments of `tlearn finetune ensemble`.
#[derive(Debug, Args)]
pub struct EnsembleArgs {
    /// The fine-tuned run's folder (RUNS/NAME, with split-K/summary.json).
    #[arg(long)]
    pub run: PathBuf,
    /// The feature cache the linear classifier trains on: the same images and splits as the
    /// run's cache (e.g. that cache itself).
    #[arg(long = "cache", alias = "features", default_value = "data/features.h5")]
    pub cache: PathBuf,
    /// Representations of the linear classifier (comma-separated LAYER:POOLING; default: all
    /// of the cache's).
    #[arg(long = "use", value_delimiter = ',')]
    pub uses: Vec<tlearn::backbone::Repr>,
    /// The linear classifier (an SVM's margins become probabilities through a temperature
    /// fitted on validation).
    #[arg(long, value_enum, default_value = "logistic")]
    pub classifier: tlearn::classify::Kind,
    /// Values of C tried on validation.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1e-4,1e-3,1e-2,1e-1,1,10"
    )]
    pub c: Vec<f64>,
    /// How the linear classifier trains and scores, as in `tlearn train`.
    #[command(flatten)]
    pub linear: crate::classify_cmd::LinearFlags,
    /// Splits (comma-separated; default: all of the cache's).
    #[arg(long = "splits-used", alias = "split", value_delimiter = ',')]
    pub splits: Vec<usize>,
    /// Also write the JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Arguments of `tlearn finetune bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// A block5_pool feature cache (stage 1 runs one epoch on split 0).
    #[arg(long = "cache", alias = "features", default_value = "data/features.h5")]
    pub cache: PathBuf,
    /// Backbone ONNX (block-5 weights for stage 2).
    #[arg(
        long = "backbone",
        alias = "model",
        default_value = "models/vgg16.onnx"
    )]
    pub backbone: PathBuf,
    /// Rows per step.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Stage-2 steps to time.
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Block-5 convolutions stage 2 trains (the last ones; 3, all of block 5, as `make finetune`).
    #[arg(long, default_value_t = 3)]
    pub unfreeze: usize,
    /// How block5_pool enters the head.
    #[arg(long, value_enum, default_value = "avg")]
    pub head_pool: HeadPool,
    /// Where ONNX Runtime runs.
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// Also write the JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Where ONNX Runtime runs.
#[derive(Debug, Args)]
pub struct ComputeArgs {
    /// Execution provider (cuda needs `make ort-cuda` and ORT_DYLIB_PATH; never falls back to
    /// the CPU).
    #[arg(long, value_enum, default_value = "cpu")]
    pub ep: ExecutionProvider,
    /// ONNX Runtime threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

impl ComputeArgs {
    fn compute(&self) -> Compute {
        Compute {
            ep: self.ep,
            threads: crate::cores::threads(self.threads),
        }
    }
}

/// What the network looks like.
#[derive(Debug, Args)]
pub struct NetArgs {
    /// Feature cache of a VGG16 pooling layer, flattened: block5_pool (head only), block4_pool
    /// (up to block 5's 3 convolutions), block3_pool (up to 6), ...
    #[arg(long = "cache", alias = "features", default_value = "data/features.h5")]
    pub cache: PathBuf,
    /// The representation to train from, when the cache holds several (LAYER:flatten, e.g.
    /// block5_pool:flatten of a `tlearn auto` cache).
    #[arg(long = "use")]
    pub uses: Option<tlearn::backbone::Repr>,
    /// Convolutions after the cached layer to train with the head: 0 (head only), a number
    /// (the last ones; the others run once, frozen), or `all`.
    #[arg(long, default_value = "0")]
    pub unfreeze: Unfreeze,
    /// How block5_pool enters the head: every value (flatten) or each channel's mean (avg).
    #[arg(long, value_enum, default_value = "flatten")]
    pub head_pool: HeadPool,
    /// Backbone ONNX (pretrained weights; base of the exported model).
    #[arg(
        long = "backbone",
        alias = "model",
        default_value = "models/vgg16.onnx"
    )]
    pub backbone: PathBuf,
    /// Width of the head's hidden layer.
    #[arg(long, default_value_t = DEFAULT_HIDDEN)]
    pub hidden: usize,
    /// SGD momentum.
    #[arg(long, default_value_t = defaults().momentum)]
    pub momentum: f32,
    /// L2 weight decay of the weights (not biases).
    #[arg(long, default_value_t = defaults().weight_decay)]
    pub weight_decay: f32,
}

/// Arguments of `tlearn finetune export-graph`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The network.
    #[command(flatten)]
    pub net: NetArgs,
    /// Where ONNX Runtime runs.
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// Split whose training rows set the head scale.
    #[arg(long = "split-used", alias = "split", default_value_t = 0)]
    pub split: usize,
    /// Directory for train_step.onnx and eval.onnx.
    #[arg(long, default_value = "runs/finetune-graph")]
    pub out: PathBuf,
}

/// Arguments of `tlearn finetune train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The network.
    #[command(flatten)]
    pub net: NetArgs,
    /// Splits to run (comma-separated; default: all of the cache's).
    #[arg(long = "splits-used", alias = "split", value_delimiter = ',')]
    pub splits: Vec<usize>,
    /// Most epochs.
    #[arg(long, default_value_t = defaults().epochs)]
    pub epochs: usize,
    /// Rows per step.
    #[arg(long, default_value_t = defaults().batch)]
    pub batch: usize,
    /// Learning rate of the new layers (3e-3: best validation accuracy of 1e-3, 3e-3, 3e-4 on
    /// split 0 of the flowers).
    #[arg(long, default_value_t = defaults().lr_new)]
    pub lr_new: f32,
    /// Learning rate of the pretrained layers.
    #[arg(long, default_value_t = defaults().lr_pretrained)]
    pub lr_pretrained: f32,
    /// Dropout rate of the head.
    #[arg(long, default_value_t = defaults().dropout)]
    pub dropout: f32,
    /// Early stopping: epochs without a lower validation loss (0: off). The epoch with the
    /// lowest validation loss is kept either way.
    #[arg(long, default_value_t = defaults().patience)]
    pub patience: usize,
    /// Learning-rate schedule after the warm-up: constant, or cosine decay to 0 at the last
    /// epoch (--epochs then cannot grow on resume).
    #[arg(long, value_enum, default_value = "constant")]
    pub schedule: Schedule,
    /// Epochs of linear learning-rate warm-up at the start (0: none).
    #[arg(long, default_value_t = defaults().warmup_epochs)]
    pub warmup_epochs: usize,
    /// Label smoothing of the training loss, e.g. 0.1 (0: plain cross-entropy).
    #[arg(long, default_value_t = defaults().label_smoothing)]
    pub label_smoothing: f32,
    /// Seed of initialisation, shuffling and dropout.
    #[arg(long, default_value_t = defaults().seed)]
    pub seed: u64,
    /// Where ONNX Runtime runs.
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// Start the head from a head-only run's folder (its split-K/best.onnx), as stage 2 does.
    #[arg(long)]
    pub init_from: Option<PathBuf>,
    /// Run name: split K goes to RUNS/NAME/split-K, the report to REPORTS/NAME.
    #[arg(long, default_value = "finetune")]
    pub run: String,
    /// Folder of runs.
    #[arg(long, default_value = "runs")]
    pub runs: PathBuf,
    /// Deprecated: the run's folder (RUNS/NAME); use --runs and --run.
    #[arg(long, hide = true)]
    pub out: Option<PathBuf>,
    /// Folder of reports, for the comparison with the linear classifiers (`tlearn report`).
    #[arg(long, default_value = "reports")]
    pub reports: PathBuf,
    /// No per-epoch lines.
    #[arg(long, short)]
    pub quiet: bool,
    /// Image folder the cache was made from (pictures of misclassified images in the report).
    #[arg(long)]
    pub data: Option<PathBuf>,
}

fn step(net: &NetArgs) -> StepConfig {
    StepConfig {
        momentum: net.momentum,
        weight_decay: net.weight_decay,
    }
}

/// Runs a `tlearn finetune` command.
pub fn dispatch(command: FinetuneCommand) -> Result<ExitCode> {
    match command {
        FinetuneCommand::ExportGraph(args) => {
            let cfg = run_config(&args.net, args.split, args.out.clone(), None);
            // The graphs a training run on this split would use (the head scale is the data's).
            let arch = prepare(&cfg, args.compute.compute())?.arch;
            std::fs::create_dir_all(&args.out)
                .with_context(|| format!("creating {}", args.out.display()))?;
            for (name, model) in [
                ("train_step.onnx", train_graph(&arch, step(&args.net))?),
                ("eval.onnx", eval_graph(&arch)?),
            ] {
                let path = args.out.join(name);
                model.save(&path)?;
                eprintln!("wrote {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        FinetuneCommand::Train(args) => train(args),
        FinetuneCommand::Ensemble(args) => {
            crate::support::check_json(args.json.as_deref())?;
            let reprs = match args.uses.is_empty() {
                false => args.uses,
                true => tlearn::cache::FeatureCache::open(&args.cache)?
                    .identity
                    .representations(),
            };
            let linear = TrainConfig {
                grid: args.c,
                ..args.linear.config(args.classifier)
            };
            let report = tlearn::finetune::ensemble::ensemble(&EnsembleConfig {
                run: args.run,
                cache: args.cache,
                reprs,
                linear,
                splits: args.splits,
            })?;
            crate::support::print_json(
                &report,
                args.json.as_deref().map(crate::support::json_target),
            )
        }
        FinetuneCommand::Bench(args) => {
            crate::support::check_json(args.json.as_deref())?;
            let report = tlearn::finetune::bench::bench(&BenchConfig {
                cache: args.cache,
                backbone: args.backbone,
                batch: args.batch,
                stage2_steps: args.steps,
                unfreeze: args.unfreeze,
                pool: args.head_pool,
                compute: args.compute.compute(),
            })?;
            crate::support::print_json(
                &report,
                args.json.as_deref().map(crate::support::json_target),
            )
        }
    }
}

fn train(args: TrainArgs) -> Result<ExitCode> {
    let stop = crate::support::stop_on_ctrl_c("stopping after this training step (Ctrl-C again to quit at once); the epoch in progress is redone on resume from the last checkpoint")?;
    let params = params(&args).check()?;
    let place = place(&args)?;
    let cfg = FinetuneRun {
        net: run_config(&args.net, 0, place.run_dir.clone(), args.init_from.clone()),
        splits: args.splits.clone(),
        data: args.data.clone(),
    };
    let mut shown = Shown {
        quiet: args.quiet,
        run_dir: &place.run_dir,
        bar: None,
    };
    let done = runs::finetune(&cfg, &place, &params, &stop, &mut |e: FinetuneEvent<'_>| {
        shown.event(e)
    });
    shown.clear();
    match done {
        Err(RunError::Interrupted(_)) => {
            eprintln!("interrupted: run the same command again to resume");
            Ok(ExitCode::from(130))
        }
        done => {
            print_outcome(&done?.report, &place.report_dir);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The fine-tuning settings the flags give (checked by the caller).
fn params(args: &TrainArgs) -> FinetuneParams {
    FinetuneParams {
        epochs: args.epochs,
        batch: args.batch,
        lr_new: args.lr_new,
        lr_pretrained: args.lr_pretrained,
        momentum: args.net.momentum,
        weight_decay: args.net.weight_decay,
        dropout: args.dropout,
        patience: args.patience,
        seed: args.seed,
        schedule: args.schedule,
        warmup_epochs: args.warmup_epochs,
        label_smoothing: args.label_smoothing,
        compute: args.compute.compute(),
        ..FinetuneParams::default()
    }
}

/// The run's test accuracy and report (stdout), its warnings (stderr).
fn print_outcome(report: &tlearn::report::RunReport, dir: &Path) {
    let s = &report.summary;
    println!(
        "{}: test accuracy {:.2}% ± {:.2} over {} split(s) of {} test images; report {}",
        report.run,
        100.0 * s.accuracy.mean,
        100.0 * s.accuracy.std,
        s.splits,
        tlearn::report::content::per_split(&report.test_images()),
        dir.join("report.html").display()
    );
    report
        .warnings
        .iter()
        .for_each(|w| eprintln!("warning: {w}"));
}

/// What `tlearn finetune train` shows of a run: a bar over each epoch's steps and each epoch's
/// line (unless quiet), each finished split's line.
struct Shown<'a> {
    quiet: bool,
    run_dir: &'a Path,
    bar: Option<indicatif::ProgressBar>,
}

impl Shown<'_> {
    fn event(&mut self, event: FinetuneEvent) {
        let event = match event {
            FinetuneEvent::Start(tail) => return self.start(tail),
            FinetuneEvent::Split(event) => event,
        };
        match event {
            SplitEvent::Step(split, done) if !self.quiet => {
                let bar = self.bar.get_or_insert_with(|| progress::steps_bar(done.steps));
                bar.set_message(format!("split {split} epoch {:>3}", done.epoch));
                bar.set_position(done.step as u64);
            }
            SplitEvent::Step(..) => {}
            SplitEvent::Epoch(split, e) => {
                self.clear();
                if !self.quiet {
                    eprintln!(
                        "split {split} epoch {:>3}: train loss {:.4} acc {:.3} | val loss {:.4} acc {:.3} | {:.1} s",
                        e.epoch, e.train_loss, e.train_accuracy, e.val_loss, e.val_accuracy, e.train_seconds
                    );
                }
            }
            SplitEvent::Done(s) => eprintln!(
                "split {}: {:?} after {} epochs, best epoch {} (val acc {:.4}), test acc {:.4}, {:.2} s/epoch -> {}",
                s.split,
                s.ending,
                s.epochs,
                s.best_epoch,
                s.val_accuracy,
                s.test_accuracy,
                s.seconds_per_epoch,
                self.run_dir.join(format!("split-{}", s.split)).join("summary.json").display()
            ),
        }
    }

    /// What stays frozen and what trains, when some convolutions stay frozen (unless quiet).
    fn start(&self, tail: &Tail) {
        if !tail.frozen.is_empty() && !self.quiet {
            eprintln!(
                "frozen {} run once per row before training; training {}",
                names(&tail.frozen),
                names(&tail.trainable)
            );
        }
    }

    /// Removes the bar of the epoch that just ended (or was interrupted).
    fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// Where the run goes: RUNS/NAME, or the deprecated --out folder (NAME its last part); its
/// report in REPORTS/NAME.
fn place(args: &TrainArgs) -> Result<Place> {
    let name = match &args.out {
        Some(out) => RunName::of_folder(out)?,
        None => RunName::new(&args.run)?,
    };
    let mut place = Place::new(name, &args.runs, &args.reports);
    if let Some(out) = &args.out {
        place.run_dir = out.clone();
    }
    Ok(place)
}

/// The names of `convs`, or "the head only" when none.
fn names(convs: &[tlearn::finetune::ConvLayer]) -> String {
    if convs.is_empty() {
        return "the head only".into();
    }
    runs::conv_names(convs)
}

fn run_config(net: &NetArgs, split: usize, out: PathBuf, init_from: Option<PathBuf>) -> RunConfig {
    RunConfig {
        cache: net.cache.clone(),
        repr: net.uses.clone(),
        split,
        backbone: net.backbone.clone(),
        unfreeze: net.unfreeze,
        pool: net.head_pool,
        hidden: net.hidden,
        out,
        init_from,
    }
}
