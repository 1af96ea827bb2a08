//! The report of one training run: metrics per split, mean and standard deviation, the summed
//! confusion matrix, the misclassified test images, the configuration and identities.

use serde::{Deserialize, Serialize};

use super::metrics::{Averages, ClassMetrics, Metrics};
use crate::cache::Identity;
use crate::classify::train::{GridPoint, Scored, TrainConfig, TrainOutcome};
use crate::finetune::train::FinetuneParams;
use crate::finetune::HeadPool;

/// Version of the report.json layout (the comparison reads it).
pub const REPORT_VERSION: u32 = 3;

/// The oldest report.json layout still read (version 3 added `predictions` and `warnings`).
pub const OLDEST_READ_VERSION: u32 = 2;

/// How a run's classifier was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum Method {
    /// A linear classifier on cached features, its C chosen on validation.
    Linear(TrainConfig),
    /// A fine-tuned network: the last convolutions and a new head, trained together.
    Finetune(FinetuneMethod),
}

/// The settings of a fine-tuning run, as its report shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinetuneMethod {
    /// Convolutions trained with the head (the earlier ones stay frozen).
    pub trained_convs: Vec<String>,
    /// How `block5_pool` enters the head.
    pub pool: HeadPool,
    /// Length of the head's input vector.
    pub head_input: usize,
    /// Width of the head's hidden layer.
    pub hidden: usize,
    /// Optimiser, dropout and early-stopping settings.
    pub params: FinetuneParams,
    /// The head-only run whose head started this one (stage 2), if any.
    pub init_from: Option<String>,
}

impl Method {
    /// Short name of the classifier, as the comparison lists it.
    pub fn label(&self) -> String {
        match self {
            Method::Linear(c) => c.kind.to_string(),
            Method::Finetune(f) => format!(
                "fine-tuned ({} conv{} + {} head)",
                f.trained_convs.len(),
                if f.trained_convs.len() == 1 { "" } else { "s" },
                format!("{:?}", f.pool).to_lowercase()
            ),
        }
    }

    /// Whether augmented copies of training images were trained on.
    pub fn train_copies(&self) -> bool {
        match self {
            Method::Linear(c) => c.train_copies,
            Method::Finetune(_) => true,
        }
    }

    /// Whether test scores were averaged over augmented copies.
    pub fn tta(&self) -> bool {
        match self {
            Method::Linear(c) => c.tta,
            Method::Finetune(_) => false,
        }
    }

    /// What was chosen on validation in each split, as a column title.
    pub fn chosen_title(&self) -> &'static str {
        match self {
            Method::Linear(_) => "C",
            Method::Finetune(_) => "best epoch",
        }
    }

    /// One sentence on how the classifier was trained.
    pub fn training_line(&self) -> String {
        let copies = if self.train_copies() {
            "used"
        } else {
            "not used"
        };
        match self {
            Method::Linear(c) => format!(
                "augmented copies {copies}, test-time augmentation {}, C grid {:?} chosen on validation{}; {}",
                if c.tta { "on" } else { "off" },
                c.grid,
                if c.refit_with_validation {
                    ", then refit with it on training + validation images before testing"
                } else {
                    ""
                },
                if c.refit_on_all_labelled {
                    "after the evaluation, the model `predict` uses was refit on all labelled images with the C of best mean validation accuracy"
                } else {
                    "`predict` uses the first split's model (not refit on all labelled images)"
                }
            ),
            Method::Finetune(f) => {
                let p = &f.params;
                let convs = if f.trained_convs.is_empty() {
                    "none (head only)".to_string()
                } else {
                    f.trained_convs.join(", ")
                };
                format!(
                    "augmented copies {copies}; trained convolutions: {convs}; head: {} pooling -> {} -> ReLU -> dropout {} -> classes; SGD momentum {}, learning rates {:e} (pretrained) / {:e} (new), weight decay {:e}, batch {}, up to {} epochs, the epoch of lowest validation loss kept{}",
                    format!("{:?}", f.pool).to_lowercase(),
                    f.hidden,
                    p.dropout,
                    p.momentum,
                    p.lr_pretrained,
                    p.lr_new,
                    p.weight_decay,
                    p.batch,
                    p.epochs,
                    f.init_from
                        .as_ref()
                        .map_or(String::new(), |d| format!("; head started from {d}"))
                )
            }
        }
    }
}

/// How one split was trained and what validation chose, whatever the method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitFit {
    /// Split index.
    pub split: usize,
    /// What validation chose (a C, an epoch).
    pub chosen: String,
    /// Validation accuracy of the chosen classifier.
    pub val_accuracy: f64,
    /// Validation accuracy of every C tried (linear methods).
    pub grid: Vec<GridPoint>,
    /// Training rows.
    pub train_rows: usize,
    /// Validation images.
    pub val_images: usize,
    /// Seconds of the kept fit (all epochs, for fine-tuning).
    pub fit_seconds: f64,
    /// Seconds to score the test images.
    pub predict_seconds: f64,
}

/// One split's result: an input of [`RunReport::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct SplitResult {
    /// How it was trained.
    pub fit: SplitFit,
    /// Every test image.
    pub test: Vec<Scored>,
}

/// What a training run gave, whatever the method: the input of [`RunReport::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// How the classifier was made.
    pub method: Method,
    /// The feature cache.
    pub cache: String,
    /// What made the features.
    pub identity: Identity,
    /// Class names.
    pub class_names: Vec<String>,
    /// One entry per split.
    pub splits: Vec<SplitResult>,
}

impl From<&TrainOutcome> for RunOutcome {
    fn from(o: &TrainOutcome) -> Self {
        let splits = o
            .splits
            .iter()
            .map(|s| SplitResult {
                fit: SplitFit {
                    split: s.split,
                    chosen: format!("{:e}", s.c),
                    val_accuracy: s
                        .grid
                        .iter()
                        .find(|g| g.c == s.c)
                        .map_or(0.0, |g| g.val_accuracy),
                    grid: s.grid.clone(),
                    train_rows: s.train_rows,
                    val_images: s.val_images,
                    fit_seconds: s.fit_seconds,
                    predict_seconds: s.predict_seconds,
                },
                test: s.test.clone(),
            })
            .collect();
        RunOutcome {
            method: Method::Linear(o.config.clone()),
            cache: o.cache.clone(),
            identity: o.identity.clone(),
            class_names: o.class_names.clone(),
            splits,
        }
    }
}

/// One split's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitReport {
    /// How it was trained (its fields sit at the top level of report.json).
    #[serde(flatten)]
    pub fit: SplitFit,
    /// Test images.
    pub test_images: usize,
    /// Test metrics.
    pub metrics: Metrics,
    /// Every test image with its score per class (`predicted` is the first best score), so
    /// each number of the report, and PR / ROC curves, can be recomputed from report.json.
    #[serde(default)]
    pub predictions: Vec<Scored>,
}

/// Mean and sample standard deviation over splits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 with one split).
    pub std: f64,
}

/// The headline numbers over splits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Splits run.
    pub splits: usize,
    /// Test accuracy.
    pub accuracy: MeanStd,
    /// Test top-5 accuracy.
    pub top5_accuracy: MeanStd,
    /// Macro precision.
    pub macro_precision: MeanStd,
    /// Macro recall.
    pub macro_recall: MeanStd,
    /// Macro F1.
    pub macro_f1: MeanStd,
    /// Seconds of the chosen fits.
    pub fit_seconds: MeanStd,
    /// Seconds of test prediction.
    pub predict_seconds: MeanStd,
}

/// A misclassified test image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Miss {
    /// Split it was a test image of.
    pub split: usize,
    /// Source image, relative to the data root.
    pub path: String,
    /// True class.
    pub label: usize,
    /// Predicted class.
    pub predicted: usize,
    /// Score of the predicted class.
    pub score: f32,
    /// Score of the true class.
    pub true_score: f32,
}

/// Misclassified images shown in the gallery (the rest are listed in report.json).
pub const GALLERY_MAX: usize = 48;

/// A test image misclassified in one split or more, as the gallery shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Wrong<'a> {
    /// Its most confident mistake (highest score of a wrong class).
    pub worst: &'a Miss,
    /// Every split it was misclassified in.
    pub splits: Vec<usize>,
}

/// The saved model of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Where it was saved.
    pub path: String,
    /// What it was trained on.
    pub trained_on: String,
    /// What validation chose for it (a C, an epoch).
    pub chosen: String,
}

/// Everything report.json holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Layout version.
    pub version: u32,
    /// Run name.
    pub run: String,
    /// tlearn version that made it.
    pub tlearn_version: String,
    /// Seconds since the Unix epoch.
    pub created_unix: u64,
    /// How the classifier was made.
    pub method: Method,
    /// The feature cache.
    pub cache: String,
    /// What made the features.
    pub identity: Identity,
    /// Data root the image paths are relative to, if known.
    pub data_root: Option<String>,
    /// The saved model.
    pub model: Option<ModelInfo>,
    /// Class names.
    pub class_names: Vec<String>,
    /// Headline numbers.
    pub summary: Summary,
    /// Per split.
    pub splits: Vec<SplitReport>,
    /// Confusion counts summed over splits, `[true][predicted]`.
    pub confusion: Vec<Vec<u32>>,
    /// Per-class metrics of the summed confusion (the test images of all splits).
    #[serde(default)]
    pub per_class: Vec<ClassMetrics>,
    /// Macro and weighted averages of `per_class`.
    #[serde(default)]
    pub averages: Averages,
    /// Misclassified test images of every split.
    pub misclassified: Vec<Miss>,
    /// Training-curve images (PNG) to show, e.g. one per split of a fine-tuning run.
    #[serde(default)]
    pub curves: Vec<String>,
    /// What the numbers cannot be trusted for (few test images, empty classes, ...).
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl RunReport {
    /// Each misclassified image once, with the splits it was wrong in, the most confident
    /// mistakes first (by the wrong class's score; ties by path).
    pub fn wrong_images(&self) -> Vec<Wrong<'_>> {
        let mut by_path: std::collections::BTreeMap<&str, Wrong> = Default::default();
        for miss in &self.misclassified {
            let entry = by_path.entry(&miss.path).or_insert(Wrong {
                worst: miss,
                splits: Vec::new(),
            });
            entry.splits.push(miss.split);
            if miss.score > entry.worst.score {
                entry.worst = miss;
            }
        }
        let mut wrong: Vec<Wrong> = by_path.into_values().collect();
        wrong.sort_by(|a, b| {
            b.worst
                .score
                .total_cmp(&a.worst.score)
                .then(a.worst.path.cmp(&b.worst.path))
        });
        wrong
    }

    /// Test images of each split.
    pub fn test_images(&self) -> Vec<usize> {
        self.splits.iter().map(|s| s.test_images).collect()
    }
}
