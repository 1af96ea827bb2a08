//! `tlearn finetune export-graph | train`: arguments and thin glue over `tlearn::finetune`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use tlearn::finetune::run::{prepare, run, RunConfig};
use tlearn::finetune::train::FinetuneParams;
use tlearn::finetune::{eval_graph, train_graph, StepConfig};

/// `tlearn finetune ...`
#[derive(Debug, Subcommand)]
pub enum FinetuneCommand {
    /// Write the ONNX training-step and evaluation graphs (parameters are inputs) for a cache.
    ExportGraph(ExportArgs),
    /// Fine-tune on a feature cache, split by split; resumes from each split's checkpoint.
    Train(TrainArgs),
    /// Seconds per epoch of stage 1 (measured) and stage 2 (from a few steps), as JSON.
    Bench(BenchArgs),
}

/// Arguments of `tlearn finetune bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// A block5_pool feature cache (stage 1 runs one epoch on split 0).
    #[arg(long, default_value = "data/features.h5")]
    pub features: PathBuf,
    /// Backbone ONNX (block-5 weights for stage 2).
    #[arg(long, default_value = "models/vgg16.onnx")]
    pub model: PathBuf,
    /// Rows per step.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Stage-2 steps to time.
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// ONNX Runtime threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Also write the JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// What the network looks like.
#[derive(Debug, Args)]
pub struct NetArgs {
    /// Feature cache of the frozen part: block5_pool (head only) or block4_pool (--unfreeze 3).
    #[arg(long, default_value = "data/features.h5")]
    pub features: PathBuf,
    /// Block-5 convolutions to train: 0 (head only) or 3 (all of block 5).
    #[arg(long, default_value_t = 0)]
    pub unfreeze: usize,
    /// Width of the head's hidden layer.
    #[arg(long, default_value_t = 256)]
    pub hidden: usize,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f32,
    /// L2 weight decay of the weights (not biases).
    #[arg(long, default_value_t = 5e-4)]
    pub weight_decay: f32,
}

/// Arguments of `tlearn finetune export-graph`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The network.
    #[command(flatten)]
    pub net: NetArgs,
    /// Split whose training rows set the head scale.
    #[arg(long, default_value_t = 0)]
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
    /// Backbone ONNX (pretrained weights; base of the exported model).
    #[arg(long, default_value = "models/vgg16.onnx")]
    pub model: PathBuf,
    /// Splits to run (comma-separated).
    #[arg(long = "split", value_delimiter = ',', default_value = "0,1,2")]
    pub splits: Vec<usize>,
    /// Most epochs.
    #[arg(long, default_value_t = 25)]
    pub epochs: usize,
    /// Rows per step.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Learning rate of the new layers (3e-3: best validation accuracy of 1e-3, 3e-3, 3e-4 on
    /// split 0 of the flowers).
    #[arg(long, default_value_t = 3e-3)]
    pub lr_new: f32,
    /// Learning rate of the pretrained layers.
    #[arg(long, default_value_t = 1e-3)]
    pub lr_pretrained: f32,
    /// Dropout rate of the head.
    #[arg(long, default_value_t = 0.5)]
    pub dropout: f32,
    /// Early stopping: epochs without a lower validation loss (0: off).
    #[arg(long, default_value_t = 5)]
    pub patience: usize,
    /// Seed of initialisation, shuffling and dropout.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// ONNX Runtime threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Start the head from a head-only run's OUT (its split-K/best.onnx), as stage 2 does.
    #[arg(long)]
    pub init_from: Option<PathBuf>,
    /// Run directory; split K goes to OUT/split-K.
    #[arg(long, default_value = "runs/finetune")]
    pub out: PathBuf,
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
            let cfg = RunConfig {
                features: args.net.features.clone(),
                split: args.split,
                backbone: PathBuf::new(),
                unfreeze: args.net.unfreeze,
                hidden: args.net.hidden,
                out: args.out.clone(),
                init_from: None,
            };
            // The graphs a training run on this split would use (the head scale is the data's).
            let (arch, _) = prepare(&cfg)?;
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
        FinetuneCommand::Bench(args) => {
            let threads = args.threads.unwrap_or_else(all_cores);
            let report = tlearn::finetune::bench::bench(
                &args.features,
                &args.model,
                args.batch,
                args.steps,
                threads,
            )?;
            crate::print_json(&report, args.json.as_deref())
        }
    }
}

fn train(args: TrainArgs) -> Result<ExitCode> {
    let stop = crate::stop_on_ctrl_c("stopping after this epoch's checkpoint (Ctrl-C again to quit at once; the last checkpoint stays)")?;
    let params = FinetuneParams {
        epochs: args.epochs,
        batch: args.batch,
        lr_new: args.lr_new,
        lr_pretrained: args.lr_pretrained,
        momentum: args.net.momentum,
        weight_decay: args.net.weight_decay,
        dropout: args.dropout,
        patience: args.patience,
        seed: args.seed,
        threads: args.threads.unwrap_or_else(all_cores),
        ..FinetuneParams::default()
    }
    .check()?;
    let mut accuracies = Vec::new();
    for &split in &args.splits {
        let cfg = RunConfig {
            features: args.net.features.clone(),
            split,
            backbone: args.model.clone(),
            unfreeze: args.net.unfreeze,
            hidden: args.net.hidden,
            out: args.out.join(format!("split-{split}")),
            init_from: args
                .init_from
                .as_ref()
                .map(|dir| dir.join(format!("split-{split}"))),
        };
        let summary = run(&cfg, &params, &mut |e| {
            eprintln!(
                "split {split} epoch {:>3}: train loss {:.4} acc {:.3} | val loss {:.4} acc {:.3} | {:.1} s",
                e.epoch, e.train_loss, e.train_accuracy, e.val_loss, e.val_accuracy, e.train_seconds
            );
            !stop.load(Ordering::SeqCst)
        })?;
        if stop.load(Ordering::SeqCst) {
            eprintln!("interrupted: run the same command again to resume");
            return Ok(ExitCode::from(130));
        }
        eprintln!(
            "split {split}: {:?} after {} epochs, best epoch {} (val acc {:.4}), test acc {:.4}, {:.2} s/epoch -> {}",
            summary.ending,
            summary.epochs,
            summary.best_epoch,
            summary.val_accuracy,
            summary.test_accuracy,
            summary.seconds_per_epoch,
            cfg.out.join("summary.json").display()
        );
        accuracies.push(summary.test_accuracy);
    }
    let mean = accuracies.iter().sum::<f64>() / accuracies.len().max(1) as f64;
    println!(
        "mean test accuracy over {} split(s): {mean:.4}",
        accuracies.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn all_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
