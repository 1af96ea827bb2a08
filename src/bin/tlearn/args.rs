//! The command line, parsed by clap; kept apart from the work it asks for (see `main.rs`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use tlearn::augment::Recipe;
use tlearn::backbone::{Pooling, Repr};

/// Transfer learning on small image data sets.
#[derive(Debug, Parser)]
#[command(name = "tlearn", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The sub-commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compute backbone features of every image (and augmented copies) into an HDF5 cache; resumable.
    Features(FeaturesArgs),
    /// Inspect an HDF5 feature cache: rows, progress, skipped files, identity; or merge shards.
    Cache(crate::shard_cmd::CacheArgs),
    /// Inspect and edit ONNX models.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Data augmentation.
    #[command(subcommand)]
    Augment(AugmentCommand),
    /// Measure the feature pipeline against bare ONNX Runtime inference (JSON on stdout).
    Bench(BenchArgs),
    /// Choose layers, pooling and classifier on validation images, train the winner, explain why.
    Auto(crate::auto_cmd::AutoArgs),
    /// Train a linear classifier on a feature cache (every split), save it and write its report.
    Train(crate::classify_cmd::TrainArgs),
    /// Predict the classes of new images with a trained model.
    Predict(crate::predict_cmd::PredictArgs),
    /// Export a trained run as one ONNX file from pixels to class probabilities.
    Export(crate::export_cmd::ExportArgs),
    /// Compare every run report (reports/*/report.json) in one table.
    Report(crate::classify_cmd::ReportArgs),
    /// Fit and predict times of each classifier on a feature cache (JSON on stdout).
    BenchClassifiers(crate::classify_cmd::BenchClassifiersArgs),
    /// Fine-tune VGG16 with an ONNX training graph on ONNX Runtime.
    #[command(subcommand)]
    Finetune(crate::finetune_cmd::FinetuneCommand),
}

/// Arguments of `tlearn features`.
#[derive(Debug, Args)]
pub struct FeaturesArgs {
    /// Data set root: one sub-folder per class, or the flowers layout (jpg/image_NNNN.jpg);
    /// with --unlabeled, any folder tree of images.
    #[arg(long)]
    pub data: PathBuf,
    /// Every image under --data, at any depth, without classes: no labels (-1) and no splits
    /// (augmented copies only with --augment-all); classifiers refuse such a cache.
    #[arg(long, conflicts_with_all = ["split", "splits", "per_class"])]
    pub unlabeled: bool,
    /// Backbone ONNX model; its descriptor `<model>.toml` must sit beside it.
    #[arg(
        long = "backbone",
        alias = "model",
        default_value = "models/vgg16.onnx"
    )]
    pub backbone: PathBuf,
    /// Layer(s) whose pooled outputs are concatenated (repeat or comma-separate).
    #[arg(long = "layer", value_delimiter = ',', default_value = "block5_pool")]
    pub layers: Vec<String>,
    /// How each layer's feature map becomes a vector.
    #[arg(long = "pool", value_enum, default_value = "flatten")]
    pub pooling: Pooling,
    /// Representations stored side by side, LAYER:POOLING (e.g. block4_pool:avg,block5_pool:max);
    /// replaces --layer/--pool. `tlearn train --use` picks any of them.
    #[arg(long = "repr", value_delimiter = ',', conflicts_with_all = ["layers", "pooling"])]
    pub reprs: Vec<Repr>,
    /// Augmentation recipe: comma-separated flip, vflip, rotate[=DEG], scale[=MIN-MAX], crop[=MIN], or none.
    #[arg(long, default_value = "none")]
    pub augment: Recipe,
    /// Augmented copies per training image (ignored with --augment none).
    #[arg(long, default_value_t = 2)]
    pub copies: u32,
    /// Splits, seed and how the extraction runs.
    #[command(flatten)]
    pub run: crate::extract_opts::RunOpts,
    /// Extract only shard I of N (I/N), or the one a Slurm array task or Kubernetes Indexed Job
    /// pod is given (auto; auto/N when the scheduler does not tell N), into OUT.shard-IIIII-of-NNNNN.h5.
    #[arg(long)]
    pub shard: Option<tlearn::shard::ShardRequest>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Name every entry of the data folder that was ignored (the summary counts them by kind).
    #[arg(long, short)]
    pub verbose: bool,
    /// The HDF5 feature cache to create or resume.
    #[arg(long = "cache", alias = "out", default_value = "data/features.h5")]
    pub cache: PathBuf,
}

/// `tlearn model ...`
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Make tensors outputs (optionally renamed) and prune everything they do not need.
    Cut {
        /// The ONNX model to cut.
        input: PathBuf,
        /// TENSOR or TENSOR=NAME: a tensor to expose as an output (repeatable).
        #[arg(long = "output", required = true)]
        outputs: Vec<String>,
        /// The input is NHWC followed by a Transpose to NCHW (tf2onnx): drop it, take NCHW.
        #[arg(long)]
        nchw_input: bool,
        /// Make the input's batch, height and width free.
        #[arg(long)]
        free_dims: bool,
        /// Where to write the cut model.
        #[arg(long)]
        out: PathBuf,
    },
    /// Quantise a backbone to int8 (QDQ: int8 weights per channel, uint8 activations calibrated
    /// on images); writes OUT and its descriptor OUT.toml beside it.
    Quantize(QuantizeArgs),
    /// List a model's inputs, outputs and the tensors it can be cut at.
    Inspect {
        /// The ONNX model.
        input: PathBuf,
    },
}

/// Arguments of `tlearn model quantize`.
#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// The fp32 ONNX backbone (its descriptor `<model>.toml` beside it).
    pub input: PathBuf,
    /// Calibration images: a data set folder (one sub-folder per class, or the flowers layout).
    #[arg(long)]
    pub calibrate: PathBuf,
    /// Calibration images used, spread evenly over the folder.
    #[arg(long, default_value_t = 48)]
    pub images: usize,
    /// How each activation's range is chosen.
    #[arg(long, value_enum, default_value = "minmax")]
    pub method: tlearn::quantize::CalibrationMethod,
    /// Percentile of absolute values kept by `--method percentile`.
    #[arg(long, default_value_t = 99.999)]
    pub percentile: f64,
    /// Images per calibration run.
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// ONNX Runtime threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where to write the int8 model (its descriptor goes beside it, same name with .toml).
    #[arg(long)]
    pub out: PathBuf,
}

/// `tlearn augment ...`
#[derive(Debug, Subcommand)]
pub enum AugmentCommand {
    /// Write a PNG grid: the image, then augmented variants.
    Preview {
        /// The image.
        image: PathBuf,
        /// Augmentation recipe.
        #[arg(long, default_value = "flip,rotate,scale,crop")]
        augment: Recipe,
        /// Number of variants.
        #[arg(long, default_value_t = 11)]
        copies: u32,
        /// Seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Side of each grid cell in pixels.
        #[arg(long, default_value_t = 224)]
        tile: u32,
        /// The PNG to write.
        #[arg(long, default_value = "augment-preview.png")]
        out: PathBuf,
    },
}

/// Arguments of `tlearn bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The extraction to measure (its --out is ignored: a temporary cache is used).
    #[command(flatten)]
    pub features: FeaturesArgs,
    /// Also write the JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also measure this backbone (e.g. models/vgg16-int8.onnx) on the same rows and batch,
    /// alternating with --backbone, and report the speed-up.
    #[arg(long)]
    pub against: Option<PathBuf>,
    /// Runs of each backbone with --against (alternated A B B A ...).
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
}
