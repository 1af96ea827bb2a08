//! The settings the library's checks and messages name ("give another path for ..."), known by
//! the library's own names. The program over the library says once how its users spell them
//! ([`spell_with`]; the command line: as its flags), as a program installs its logger once: the
//! library words its advice, the program supplies the words its users type.

use std::fmt;
use std::sync::OnceLock;

/// A setting the user gives, as the library knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Opt {
    /// The folder of images read.
    Data,
    /// The images carry no classes.
    Unlabeled,
    /// The backbone ONNX file.
    Backbone,
    /// The layers whose pooled outputs are concatenated.
    Layer,
    /// The one pooling of those layers.
    Pool,
    /// Representations stored side by side.
    Repr,
    /// Augmented copies per image.
    Copies,
    /// Side of the square image the backbone sees.
    Size,
    /// The image sides auto compares as candidates.
    Sizes,
    /// The poolings auto compares for each candidate layer.
    Poolings,
    /// The split fractions (train, validation, test).
    SplitFractions,
    /// Number of seeded splits.
    Splits,
    /// Images per backbone run.
    Batch,
    /// Compute threads.
    Threads,
    /// Refuse the run if any image cannot be used.
    Strict,
    /// Keep only the first N images of each class.
    PerClass,
    /// Name the images left out, and why.
    Verbose,
    /// The execution provider.
    Ep,
    /// The feature cache file.
    Cache,
    /// This process's shard of the plan.
    Shard,
    /// The output path of a command.
    Out,
    /// The timing JSON file.
    Json,
    /// The folder of exported `.npy` arrays.
    Npy,
    /// Export the done rows of an incomplete cache.
    Partial,
    /// The folder of trained runs.
    Runs,
    /// The folder of reports.
    Reports,
    /// The name of a run.
    Run,
    /// The representations a classifier reads.
    Use,
    /// Values of the regularisation constant C.
    C,
    /// Most solver iterations.
    MaxIterations,
    /// Test-time augmentation.
    Tta,
    /// How many of each image's augmented copies are read.
    CopiesUsed,
    /// Train on original images only.
    NoCopies,
    /// Do not refit the chosen configuration on training + validation images.
    NoRefitWithValidation,
    /// The trained model a prediction uses.
    Model,
    /// Always run auto's fine-tuning stages.
    Finetune,
    /// Never run auto's fine-tuning stages.
    NoFinetune,
    /// Convolutions fine-tuned.
    Unfreeze,
    /// Learning rate of the new head.
    LrNew,
    /// Learning rate of the pretrained convolutions.
    LrPretrained,
    /// Predictions listed per image.
    Top,
    /// Calibration images of quantisation.
    Images,
    /// Calibration percentile of quantisation.
    Percentile,
}

impl Opt {
    /// The library's own name: the field of the settings that holds it.
    pub fn name(self) -> &'static str {
        match self {
            Opt::Data => "data",
            Opt::Unlabeled => "unlabeled",
            Opt::Backbone => "backbone",
            Opt::Layer => "layers",
            Opt::Pool => "pooling",
            Opt::Repr => "reprs",
            Opt::Copies => "copies",
            Opt::Size => "size",
            Opt::Sizes => "sizes",
            Opt::Poolings => "poolings",
            Opt::SplitFractions => "split",
            Opt::Splits => "splits",
            Opt::Batch => "batch",
            Opt::Threads => "threads",
            Opt::Strict => "strict",
            Opt::PerClass => "per_class",
            Opt::Verbose => "verbose",
            Opt::Ep => "ep",
            Opt::Cache => "cache",
            Opt::Shard => "shard",
            Opt::Out => "out",
            Opt::Json => "json",
            Opt::Npy => "npy",
            Opt::Partial => "partial",
            Opt::Runs => "runs",
            Opt::Reports => "reports",
            Opt::Run => "run",
            Opt::Use => "use",
            Opt::C => "grid",
            Opt::MaxIterations => "max_iterations",
            Opt::Tta => "tta",
            Opt::CopiesUsed => "copies_used",
            Opt::NoCopies => "train_copies = false",
            Opt::NoRefitWithValidation => "refit_with_validation = false",
            Opt::Model => "model",
            Opt::Finetune => "finetune = always",
            Opt::NoFinetune => "finetune = never",
            Opt::Unfreeze => "unfreeze",
            Opt::LrNew => "lr_new",
            Opt::LrPretrained => "lr_pretrained",
            Opt::Top => "top",
            Opt::Images => "images",
            Opt::Percentile => "percentile",
        }
    }
}

/// How the program spells each setting; unset: the library's own names.
static SPELLING: OnceLock<fn(Opt) -> &'static str> = OnceLock::new();

/// Spells every setting with `spelling` in the library's messages from now on. Set once per
/// process, before any work; a second call changes nothing.
pub fn spell_with(spelling: fn(Opt) -> &'static str) {
    let _ = SPELLING.set(spelling);
}

impl fmt::Display for Opt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match SPELLING.get() {
            Some(spell) => f.write_str(spell(*self)),
            None => write!(f, "<{}>", self.name()),
        }
    }
}
