//! An SVM's margins turned into probabilities by one temperature: `softmax(margins / T)`, with
//! `T` fitted on held-out (validation) margins (Guo et al. 2017, "On calibration of modern
//! neural networks"). One positive divisor keeps the order of the margins, so the most probable
//! class is always the predicted one; per-class sigmoids (Platt) do not guarantee that, and on
//! a few validation images per class they contradicted the prediction (issue 20).
//!
//! The fit minimises the cross-entropy against smoothed targets (the true class `1 - e`, the
//! others share `e`, `e = 1 / (n + 2)` for `n` images, as Platt smooths his targets), so a
//! validation set the SVM separates perfectly still gives a finite temperature.

use serde::{Deserialize, Serialize};

/// The temperature that turns margins into probabilities, and what it was fitted on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Divisor of the margins before the softmax (positive and finite).
    pub temperature: f32,
    /// Validation images it was fitted on.
    pub validation_images: usize,
}

/// Smallest inverse temperature: a classifier no better than chance on validation gets
/// (almost) uniform probabilities, still in the margins' order.
const MIN_INVERSE: f64 = 1e-6;
/// Largest inverse temperature searched (margins of a linear SVM are of order one).
const MAX_INVERSE: f64 = 1e6;

/// The cross-entropy's first and second derivative in the inverse temperature `s`.
fn derivatives(s: f64, rows: &[Vec<f64>], targets: &[Vec<f64>]) -> (f64, f64) {
    let (mut g, mut h) = (0.0, 0.0);
    for (m, q) in rows.iter().zip(targets) {
        let max = m.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = m.iter().map(|v| (s * (v - max)).exp()).collect();
        let sum: f64 = e.iter().sum();
        let mean: f64 = e.iter().zip(m).map(|(e, v)| e * v).sum::<f64>() / sum;
        let second: f64 = e.iter().zip(m).map(|(e, v)| e * v * v).sum::<f64>() / sum;
        let target: f64 = q.iter().zip(m).map(|(q, v)| q * v).sum();
        g += mean - target;
        h += (second - mean * mean).max(0.0);
    }
    (g, h)
}

impl Calibration {
    /// Fits the temperature on `margins` (rows x classes, row-major) of held-out rows whose
    /// true classes are `labels`. The loss is convex in `1 / T`: Newton steps, kept inside a
    /// bracket that bisection shrinks, find its minimum.
    pub fn fit(margins: &[f32], labels: &[usize], classes: usize) -> Calibration {
        let rows: Vec<Vec<f64>> = margins
            .chunks(classes)
            .map(|r| r.iter().map(|&v| f64::from(v)).collect())
            .collect();
        let e = 1.0 / (rows.len() as f64 + 2.0);
        let other = e / (classes.max(2) - 1) as f64;
        let targets: Vec<Vec<f64>> = labels
            .iter()
            .map(|&l| {
                (0..classes)
                    .map(|k| if k == l { 1.0 - e } else { other })
                    .collect()
            })
            .collect();
        let slope = |s: f64| derivatives(s, &rows, &targets);
        let (mut lo, mut hi) = (MIN_INVERSE, 1.0);
        while slope(hi).0 < 0.0 && hi < MAX_INVERSE {
            (lo, hi) = (hi, hi * 2.0);
        }
        let mut s = if slope(lo).0 >= 0.0 { lo } else { hi };
        for _ in 0..100 {
            if s == lo && slope(lo).0 >= 0.0 || hi - lo < 1e-9 * hi {
                break;
            }
            let (g, h) = slope(s);
            if g < 0.0 {
                lo = s
            } else {
                hi = s
            }
            let newton = s - g / h;
            s = if h > 0.0 && newton > lo && newton < hi {
                newton
            } else {
                (lo + hi) / 2.0
            };
        }
        Calibration {
            temperature: (1.0 / s) as f32,
            validation_images: rows.len(),
        }
    }

    /// The probabilities of one row of margins: `softmax(margins / T)`, in f32 as the exported
    /// ONNX model computes them.
    pub fn probabilities(&self, margins: &[f32]) -> Vec<f32> {
        let scaled: Vec<f32> = margins.iter().map(|m| m / self.temperature).collect();
        crate::numeric::softmax(&scaled)
    }

    /// Whether the temperature is a positive finite number (a model file may have been edited).
    pub fn is_valid(&self) -> bool {
        self.temperature.is_finite() && self.temperature > 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cross-entropy of `softmax(margins / t)` against the smoothed targets `fit` uses.
    fn loss(t: f32, margins: &[f32], labels: &[usize], classes: usize) -> f64 {
        let e = 1.0 / (labels.len() as f64 + 2.0);
        let c = Calibration {
            temperature: t,
            validation_images: 0,
        };
        margins
            .chunks(classes)
            .zip(labels)
            .map(|(m, &l)| {
                let p = c.probabilities(m);
                (0..classes)
                    .map(|k| {
                        let q = if k == l {
                            1.0 - e
                        } else {
                            e / (classes - 1) as f64
                        };
                        -q * f64::from(p[k]).ln()
                    })
                    .sum::<f64>()
            })
            .sum()
    }

    /// Three classes, rows mostly right, one wrong: a finite optimum.
    const MARGINS: [f32; 18] = [
        1.0, -1.0, -1.0, //
        -1.0, 1.2, -0.8, //
        -1.1, -0.9, 0.9, //
        0.8, -0.7, -1.2, //
        -0.9, 0.7, -1.0, //
        -1.0, 0.3, -0.1,
    ];
    const LABELS: [usize; 6] = [0, 1, 2, 0, 1, 2];

    #[test]
    fn the_fitted_temperature_minimises_the_smoothed_cross_entropy() {
        let c = Calibration::fit(&MARGINS, &LABELS, 3);
        assert!(c.is_valid() && c.validation_images == 6, "{c:?}");
        let best = loss(c.temperature, &MARGINS, &LABELS, 3);
        for factor in [0.9, 0.99, 1.01, 1.1] {
            let near = loss(c.temperature * factor, &MARGINS, &LABELS, 3);
            assert!(
                best <= near + 1e-9,
                "T {} loss {best}, x{factor}: {near}",
                c.temperature
            );
        }
    }

    #[test]
    fn separable_and_hopeless_margins_give_a_finite_positive_temperature() {
        let separable = [3.0, -3.0, -3.0, 3.0];
        let c = Calibration::fit(&separable, &[0, 1], 2);
        assert!(c.is_valid() && c.temperature < 10.0, "{c:?}");
        // Every row wrong: the temperature is huge but positive, probabilities near uniform.
        let c = Calibration::fit(&separable, &[1, 0], 2);
        assert!(c.is_valid(), "{c:?}");
        let p = c.probabilities(&[1.0, -1.0]);
        assert!(p[0] > p[1] && (p[0] - 0.5).abs() < 1e-3, "{p:?}");
    }

    #[test]
    fn probabilities_sum_to_one_and_keep_the_margins_order() {
        let c = Calibration::fit(&MARGINS, &LABELS, 3);
        for row in MARGINS.chunks(3) {
            let p = c.probabilities(row);
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{p:?}");
            let order = |v: &[f32]| crate::numeric::argmax(v.iter().copied());
            assert_eq!(order(&p), order(row), "{row:?} -> {p:?}");
        }
    }
}
