//! The extraction settings `features` and `auto` share, with one set of defaults, and the
//! library's extraction config they make.

use clap::Args;
use tlearn::augment::Recipe;
use tlearn::backbone::{ExecutionProvider, Pooling};
use tlearn::dataset::SplitSpec;

/// The extraction settings `features` and `auto` share, with one set of defaults.
#[derive(Debug, Args)]
pub struct RunOpts {
    /// Augment every image, not only those that are training images in some split.
    #[arg(long)]
    pub augment_all: bool,
    /// Fractions of each class for train,val,test.
    #[arg(long, default_value = "0.5,0.25,0.25")]
    pub split: SplitSpec,
    /// Number of seeded splits stored with the features.
    #[arg(long, default_value_t = 3)]
    pub splits: usize,
    /// Seed of the splits and the augmentation.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Side of the square image the backbone sees, in pixels (default: its descriptor's, 224
    /// for VGG16). VGG16's convolutions take larger images: pooled features keep their width,
    /// flattened ones grow; 320 takes about 2x the time of 224, 448 about 4x. Recorded in the
    /// cache's identity; predict and export use the model's.
    #[arg(long)]
    pub size: Option<u32>,
    /// Images per backbone run.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Execution provider.
    #[arg(long, value_enum, default_value = "cpu")]
    pub ep: ExecutionProvider,
    /// ONNX Runtime threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Fail before writing anything if any image cannot be used (default: skip and list it).
    #[arg(long)]
    pub strict: bool,
    /// Keep only the first N images of each class.
    #[arg(long)]
    pub per_class: Option<usize>,
}

impl RunOpts {
    /// The extraction of `data` with `backbone` into `cache`, augmented by `recipe` x `copies`;
    /// layers and pooling are the caller's to set.
    pub fn extract_config(
        &self,
        data: &std::path::Path,
        backbone: &std::path::Path,
        (recipe, copies): (&Recipe, u32),
        cache: &std::path::Path,
        quiet: bool,
    ) -> tlearn::extract::ExtractConfig {
        tlearn::extract::ExtractConfig {
            data: data.to_path_buf(),
            unlabeled: false,
            backbone: backbone.to_path_buf(),
            layers: Vec::new(),
            pooling: Pooling::Avg,
            reprs: Vec::new(),
            recipe: recipe.clone(),
            copies,
            size: self.size,
            augment_all: self.augment_all,
            split: self.split,
            splits: self.splits,
            seed: self.seed,
            batch: self.batch,
            ep: self.ep,
            threads: crate::cores::threads(self.threads),
            strict: self.strict,
            limits: tlearn::preprocess::DecodeLimits::default(),
            per_class: self.per_class,
            cache: cache.to_path_buf(),
            progress: crate::progress::bar(!quiet),
        }
    }
}
