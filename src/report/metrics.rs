//! Classification metrics of scored test images.
//!
//! Accuracy comes from linfa's `ConfusionMatrix`. Per-class precision / recall / F1 are computed
//! here from our own counts: linfa's matrix is private, holds only the labels that occur, puts
//! predictions on its rows, and its macro F1 is the F1 of macro precision and recall rather than
//! the mean of per-class F1 (scikit-learn's `f1_score(average="macro")`, which we report).

use linfa::prelude::ToConfusionMatrix;
use serde::{Deserialize, Serialize};

use crate::classify::train::Scored;

/// Metrics of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Class name.
    pub name: String,
    /// Right predictions of the class / all predictions of it (0 if never predicted).
    pub precision: f64,
    /// Right predictions of the class / its test images.
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 if both are 0).
    pub f1: f64,
    /// Test images of the class.
    pub support: usize,
}

/// Metrics of one set of scored images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Fraction predicted right.
    pub accuracy: f64,
    /// Fraction whose true class is among the five best scores.
    pub top5_accuracy: f64,
    /// Mean over classes of precision.
    pub macro_precision: f64,
    /// Mean over classes of recall.
    pub macro_recall: f64,
    /// Mean over classes of F1.
    pub macro_f1: f64,
    /// Per class.
    pub per_class: Vec<ClassMetrics>,
    /// Counts: `confusion[true][predicted]`.
    pub confusion: Vec<Vec<u32>>,
}

/// Computes every metric; classes are indexed as in `class_names`.
pub fn metrics(class_names: &[String], scored: &[Scored]) -> Metrics {
    let k = class_names.len();
    let mut confusion = vec![vec![0u32; k]; k];
    for s in scored {
        confusion[s.label][s.predicted] += 1;
    }
    let per_class = per_class(class_names, &confusion);
    let mean = |f: fn(&ClassMetrics) -> f64| per_class.iter().map(f).sum::<f64>() / k.max(1) as f64;
    let top5 = scored.iter().filter(|s| in_top(s, 5)).count() as f64 / scored.len().max(1) as f64;
    Metrics {
        accuracy: linfa_accuracy(scored),
        top5_accuracy: top5,
        macro_precision: mean(|c| c.precision),
        macro_recall: mean(|c| c.recall),
        macro_f1: mean(|c| c.f1),
        per_class,
        confusion,
    }
}

/// Per-class metrics of a confusion matrix `[true][predicted]`.
pub fn per_class(class_names: &[String], confusion: &[Vec<u32>]) -> Vec<ClassMetrics> {
    (0..class_names.len())
        .map(|c| {
            let tp = confusion[c][c] as f64;
            let predicted: u32 = confusion.iter().map(|row| row[c]).sum();
            let support: u32 = confusion[c].iter().sum();
            let ratio = |a: f64, b: u32| if b == 0 { 0.0 } else { a / b as f64 };
            let (precision, recall) = (ratio(tp, predicted), ratio(tp, support));
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            ClassMetrics {
                name: class_names[c].clone(),
                precision,
                recall,
                f1,
                support: support as usize,
            }
        })
        .collect()
}

/// Precision, recall and F1 averaged over classes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Average {
    /// Mean precision.
    pub precision: f64,
    /// Mean recall.
    pub recall: f64,
    /// Mean F1.
    pub f1: f64,
}

/// The two averages of a per-class table, as scikit-learn's `classification_report` gives them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Averages {
    /// Every class counts the same.
    pub macro_avg: Average,
    /// Each class counts by its test images (support).
    pub weighted: Average,
}

/// Macro and support-weighted averages of per-class metrics.
pub fn averages(per_class: &[ClassMetrics]) -> Averages {
    let average = |weight: &dyn Fn(&ClassMetrics) -> f64| {
        let total: f64 = per_class.iter().map(weight).sum();
        let mean = |f: fn(&ClassMetrics) -> f64| {
            if total == 0.0 {
                0.0
            } else {
                per_class.iter().map(|c| weight(c) * f(c)).sum::<f64>() / total
            }
        };
        Average {
            precision: mean(|c| c.precision),
            recall: mean(|c| c.recall),
            f1: mean(|c| c.f1),
        }
    };
    Averages {
        macro_avg: average(&|_| 1.0),
        weighted: average(&|c| c.support as f64),
    }
}

/// Accuracy through linfa's confusion matrix.
fn linfa_accuracy(scored: &[Scored]) -> f64 {
    if scored.is_empty() {
        return 0.0;
    }
    let predicted: ndarray16::Array1<usize> = scored.iter().map(|s| s.predicted).collect();
    let truth: ndarray16::Array1<usize> = scored.iter().map(|s| s.label).collect();
    predicted
        .confusion_matrix(&truth)
        .map_or(0.0, |cm| cm.accuracy() as f64)
}

/// True if the true class has one of the `n` best scores (ties count against it).
fn in_top(s: &Scored, n: usize) -> bool {
    let own = s.scores[s.label];
    s.scores.iter().filter(|v| **v > own).count() < n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(label: usize, predicted: usize) -> Scored {
        let mut scores = vec![0.0; 3];
        scores[predicted] = 1.0;
        scores[label] += 0.5;
        Scored {
            path: String::new(),
            label,
            predicted,
            scores,
        }
    }

    #[test]
    fn known_counts_give_known_metrics() {
        // Truth 0,0,1,1,2 predicted 0,1,1,1,0.
        let s: Vec<Scored> = [(0, 0), (0, 1), (1, 1), (1, 1), (2, 0)]
            .iter()
            .map(|&(l, p)| scored(l, p))
            .collect();
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let m = metrics(&names, &s);
        assert!((m.accuracy - 0.6).abs() < 1e-6);
        assert_eq!(
            m.confusion,
            vec![vec![1, 1, 0], vec![0, 2, 0], vec![1, 0, 0]]
        );
        assert!((m.per_class[0].precision - 0.5).abs() < 1e-12);
        assert!((m.per_class[1].precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.per_class[0].recall - 0.5).abs() < 1e-12);
        assert_eq!(m.per_class[2].f1, 0.0);
        assert!((m.macro_recall - 0.5).abs() < 1e-12);
        let avg = averages(&m.per_class);
        assert!((avg.macro_avg.recall - m.macro_recall).abs() < 1e-12);
        // Weighted recall is accuracy: supports 2, 2, 1 with recalls 1/2, 1, 0.
        assert!((avg.weighted.recall - 0.6).abs() < 1e-12);
        assert!((avg.weighted.precision - (2.0 * 0.5 + 2.0 * 2.0 / 3.0) / 5.0).abs() < 1e-12);
    }
}
