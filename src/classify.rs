//! Linear classifiers on cached features: a linear SVM (one-vs-all, dual coordinate descent),
//! multinomial logistic regression and one-vs-all logistic regressions (our L-BFGS, [`lbfgs`]).
//!
//! Each classifier follows linfa's pattern: a params builder, checked by [`linfa::ParamGuard`]
//! into valid params, which implement [`linfa::traits::Fit`] on a linfa `Dataset` of
//! standardised-in-fit features and class indices; the fitted [`LinearClassifier`] implements
//! [`linfa::traits::PredictInplace`]. linfa 0.8 is built on ndarray 0.16 while the cache uses
//! ndarray 0.17: the two meet in one place only, [`data::to_linfa`].

pub mod bench;
pub mod calibration;
pub mod data;
pub mod gram;
pub mod lbfgs;
pub mod linear;
pub mod logistic;
pub mod normalize;
pub mod persist;
pub mod scaler;
pub mod svm;
#[cfg(test)]
mod tests;
pub mod train;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::cache::{CacheError, SelectError};
use crate::options::Opt;

pub use calibration::Calibration;
pub use lbfgs::Convergence;
pub use linear::LinearClassifier;
pub use logistic::{LogisticParams, LogisticValidParams};
pub use normalize::Normalize;
pub use persist::{ModelFit, TrainedModel};
pub use scaler::Scaler;
pub use svm::{LinearSvmParams, LinearSvmValidParams};

/// The ndarray version linfa is built on (0.16), distinct from the crate's ndarray (0.17).
pub use ndarray16 as nd;

/// Regularisation grid searched on the validation split, as C (larger = weaker penalty).
///
/// Features are standardised, so with thousands of dimensions the useful C is small; the grid
/// spans the range where flowers features move from under- to over-fitting. For the logistic
/// models C weighs the summed log loss against `|w|^2 / 2`, as scikit-learn's `C`.
pub const DEFAULT_C_GRID: [f64; 6] = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0];

/// Errors of training, evaluating, saving and loading classifiers.
#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    /// The feature cache could not be read.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The representations asked for are not in the cache.
    #[error(transparent)]
    Select(#[from] SelectError),
    /// The cache has no rows at all.
    #[error("{0} has no rows: make it again with `tlearn features`")]
    EmptyCache(PathBuf),
    /// Some rows were never computed (an interrupted extraction).
    #[error("{path} is incomplete: {missing} of {rows} rows have no features yet. Run the same `tlearn features` command again to finish it")]
    Incomplete {
        /// The cache file.
        path: PathBuf,
        /// Rows still missing.
        missing: usize,
        /// All rows.
        rows: usize,
    },
    /// Fewer than two classes: nothing to classify.
    #[error("{0}: a classifier needs at least two classes")]
    SingleClass(String),
    /// A class has no training row in a split.
    #[error("class {class} has no training rows in split {split}: add images of it, or use a split with more training images ({opt_split})", opt_split = Opt::SplitFractions)]
    EmptyClass {
        /// Class name.
        class: String,
        /// Split index.
        split: usize,
    },
    /// A split has no validation or test rows.
    #[error("split {split} has no {part} rows: use a {opt_split} with a non-zero {part} fraction when making the cache", opt_split = Opt::SplitFractions)]
    NoRows {
        /// Split index.
        split: usize,
        /// "validation" or "test".
        part: &'static str,
    },
    /// The requested split does not exist in the cache.
    #[error("split {split} does not exist: the cache has {available} split(s)")]
    NoSuchSplit {
        /// Requested split.
        split: usize,
        /// Splits in the cache.
        available: usize,
    },
    /// Invalid hyper-parameters.
    #[error("invalid parameter: {0}")]
    InvalidParams(String),
    /// The features were made differently from those the model was trained on.
    #[error("the model was trained on other features ({0}): use features made with the same backbone, layers, pooling and preprocessing, or train a model on these")]
    Incompatible(String),
    /// The model file cannot be used.
    #[error("{path} is not a usable tlearn model ({}); train it again with `tlearn train`", crate::output::with_cause(.reason, .source))]
    ModelFile {
        /// The model file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
        /// The error that made it unusable, if any.
        source: Option<crate::output::Cause>,
    },
    /// linfa reported an error.
    #[error("linfa: {0}")]
    Linfa(#[from] linfa::Error),
    /// Stopped on request (Ctrl-C) between fits.
    #[error(transparent)]
    Interrupted(#[from] crate::progress::Interrupted),
    /// The model could not be written.
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
}

/// The three kinds of linear classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Linear SVM, one-vs-all (squared hinge loss, as scikit-learn's LinearSVC).
    Svm,
    /// Multinomial (softmax) logistic regression.
    Logistic,
    /// One binary logistic regression per class (one-vs-all).
    LogisticOvr,
}

impl Kind {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Svm => "svm",
            Kind::Logistic => "logistic",
            Kind::LogisticOvr => "logistic-ovr",
        }
    }

    /// True if the scores are probabilities (logistic), false for SVM decision values.
    pub fn probabilistic(self) -> bool {
        self != Kind::Svm
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
