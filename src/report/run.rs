//! The report of one training run: metrics per split, mean and standard deviation, the summed
//! confusion matrix, the misclassified test images, the configuration and identities.

use serde::{Deserialize, Serialize};

use super::metrics::{mean_std, metrics, Metrics};
use crate::cache::Identity;
use crate::classify::train::{GridPoint, TrainConfig, TrainOutcome};

/// Version of the report.json layout (the comparison reads it).
pub const REPORT_VERSION: u32 = 1;

/// One split's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitReport {
    /// Split index.
    pub split: usize,
    /// C chosen on validation.
    pub c: f64,
    /// Validation accuracy of every C tried.
    pub grid: Vec<GridPoint>,
    /// Training rows.
    pub train_rows: usize,
    /// Validation images.
    pub val_images: usize,
    /// Test images.
    pub test_images: usize,
    /// Seconds of the chosen fit.
    pub fit_seconds: f64,
    /// Seconds to score the test images.
    pub predict_seconds: f64,
    /// Test metrics.
    pub metrics: Metrics,
}

impl SplitReport {
    /// Validation accuracy of the chosen C (0 if the grid does not hold it).
    pub fn chosen_val_accuracy(&self) -> f64 {
        self.grid
            .iter()
            .find(|g| g.c == self.c)
            .map_or(0.0, |g| g.val_accuracy)
    }
}

/// Mean and sample standard deviation over splits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 with one split).
    pub std: f64,
}

impl MeanStd {
    fn of(values: &[f64]) -> Self {
        let (mean, std) = mean_std(values);
        MeanStd { mean, std }
    }
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

/// The saved model of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Where it was saved.
    pub path: String,
    /// What it was trained on.
    pub trained_on: String,
    /// Its C.
    pub c: f64,
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
    /// Training configuration.
    pub config: TrainConfig,
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
    /// Misclassified test images of every split.
    pub misclassified: Vec<Miss>,
}

impl RunReport {
    /// Builds the report of a training outcome.
    pub fn new(
        run: &str,
        outcome: &TrainOutcome,
        data_root: Option<String>,
        model: Option<ModelInfo>,
    ) -> RunReport {
        let names = &outcome.class_names;
        let splits: Vec<SplitReport> = outcome
            .splits
            .iter()
            .map(|s| SplitReport {
                split: s.split,
                c: s.c,
                grid: s.grid.clone(),
                train_rows: s.train_rows,
                val_images: s.val_images,
                test_images: s.test.len(),
                fit_seconds: s.fit_seconds,
                predict_seconds: s.predict_seconds,
                metrics: metrics(names, &s.test),
            })
            .collect();
        let over =
            |f: fn(&SplitReport) -> f64| MeanStd::of(&splits.iter().map(f).collect::<Vec<_>>());
        let summary = Summary {
            splits: splits.len(),
            accuracy: over(|s| s.metrics.accuracy),
            top5_accuracy: over(|s| s.metrics.top5_accuracy),
            macro_precision: over(|s| s.metrics.macro_precision),
            macro_recall: over(|s| s.metrics.macro_recall),
            macro_f1: over(|s| s.metrics.macro_f1),
            fit_seconds: over(|s| s.fit_seconds),
            predict_seconds: over(|s| s.predict_seconds),
        };
        let k = names.len();
        let mut confusion = vec![vec![0u32; k]; k];
        for s in &splits {
            for (t, row) in s.metrics.confusion.iter().enumerate() {
                for (p, n) in row.iter().enumerate() {
                    confusion[t][p] += n;
                }
            }
        }
        let misclassified = outcome
            .splits
            .iter()
            .flat_map(|s| {
                s.test
                    .iter()
                    .filter(|t| t.label != t.predicted)
                    .map(move |t| Miss {
                        split: s.split,
                        path: t.path.clone(),
                        label: t.label,
                        predicted: t.predicted,
                        score: t.scores[t.predicted],
                        true_score: t.scores[t.label],
                    })
            })
            .collect();
        RunReport {
            version: REPORT_VERSION,
            run: run.to_string(),
            tlearn_version: env!("CARGO_PKG_VERSION").into(),
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            config: outcome.config.clone(),
            cache: outcome.cache.clone(),
            identity: outcome.identity.clone(),
            data_root,
            model,
            class_names: names.clone(),
            summary,
            splits,
            confusion,
            misclassified,
        }
    }
}
