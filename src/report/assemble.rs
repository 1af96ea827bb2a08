//! A run's report assembled from its outcome: metrics per split, their mean and spread, the
//! summed confusion matrix, the misclassified images, and the warnings read from all of that.

use super::metrics::{averages, metrics, per_class};
use super::run::{
    MeanStd, Miss, ModelInfo, RunOutcome, RunReport, SplitReport, Summary, REPORT_VERSION,
};
use super::warnings;
use crate::numeric::mean_std;

impl RunReport {
    /// Builds the report of a training outcome.
    pub fn new(
        run: &str,
        outcome: &RunOutcome,
        data_root: Option<String>,
        model: Option<ModelInfo>,
    ) -> RunReport {
        let names = &outcome.class_names;
        let splits: Vec<SplitReport> = outcome
            .splits
            .iter()
            .map(|s| SplitReport {
                fit: s.fit.clone(),
                test_images: s.test.len(),
                metrics: metrics(names, &s.test),
                predictions: s.test.clone(),
            })
            .collect();
        let summary = Summary::over(&splits);
        let confusion = summed_confusion(&splits, names.len());
        let per_class = per_class(names, &confusion);
        let averages = averages(&per_class);
        let misclassified = misses(outcome);
        let mut report = RunReport {
            version: REPORT_VERSION,
            run: run.to_string(),
            tlearn_version: env!("CARGO_PKG_VERSION").into(),
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            method: outcome.method.clone(),
            cache: outcome.cache.clone(),
            identity: outcome.identity.clone(),
            data_root,
            model,
            class_names: names.clone(),
            summary,
            splits,
            confusion,
            per_class,
            averages,
            misclassified,
            curves: Vec::new(),
            warnings: Vec::new(),
        };
        report.warnings = warnings::of(&report);
        report
    }
}

impl MeanStd {
    /// Mean and sample standard deviation of `values`.
    fn of(values: &[f64]) -> Self {
        let (mean, std) = mean_std(values);
        MeanStd { mean, std }
    }
}

impl Summary {
    /// Mean and spread of each split's metrics and times.
    fn over(splits: &[SplitReport]) -> Summary {
        let over =
            |f: fn(&SplitReport) -> f64| MeanStd::of(&splits.iter().map(f).collect::<Vec<_>>());
        Summary {
            splits: splits.len(),
            accuracy: over(|s| s.metrics.accuracy),
            top5_accuracy: over(|s| s.metrics.top5_accuracy),
            macro_precision: over(|s| s.metrics.macro_precision),
            macro_recall: over(|s| s.metrics.macro_recall),
            macro_f1: over(|s| s.metrics.macro_f1),
            fit_seconds: over(|s| s.fit.fit_seconds),
            predict_seconds: over(|s| s.fit.predict_seconds),
        }
    }
}

/// The confusion matrices of every split added up: `[true][predicted]`.
fn summed_confusion(splits: &[SplitReport], classes: usize) -> Vec<Vec<u32>> {
    let mut confusion = vec![vec![0u32; classes]; classes];
    for s in splits {
        for (t, row) in s.metrics.confusion.iter().enumerate() {
            for (p, n) in row.iter().enumerate() {
                confusion[t][p] += n;
            }
        }
    }
    confusion
}

/// Every misclassified test image of every split.
fn misses(outcome: &RunOutcome) -> Vec<Miss> {
    outcome
        .splits
        .iter()
        .flat_map(|s| {
            s.test
                .iter()
                .filter(|t| t.label != t.predicted)
                .map(move |t| Miss {
                    split: s.fit.split,
                    path: t.path.clone(),
                    label: t.label,
                    predicted: t.predicted,
                    score: t.scores[t.predicted],
                    true_score: t.scores[t.label],
                })
        })
        .collect()
}
