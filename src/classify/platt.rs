//! Platt scaling: SVM margins turned into probabilities by one sigmoid per class, fitted on
//! held-out (validation) margins, then normalised over the classes (one-vs-all, as
//! scikit-learn's `CalibratedClassifierCV` does).
//!
//! The fit is Platt's (1999) with the Newton method and line search of Lin, Lin and Weng (2007),
//! "A note on Platt's probabilistic outputs for support vector machines", as libsvm does it.

use serde::{Deserialize, Serialize};

/// `P(class | margin f) = 1 / (1 + exp(a * f + b))`; `a` is negative for a useful margin.
/// Kept in f32 like the rest of a model, so a saved model reads back bit for bit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sigmoid {
    /// Slope.
    pub a: f32,
    /// Offset.
    pub b: f32,
}

/// The parameters while fitting, in f64.
#[derive(Debug, Clone, Copy)]
struct Params {
    a: f64,
    b: f64,
}

impl Params {
    fn probability(self, margin: f64) -> f64 {
        let z = self.a * margin + self.b;
        if z >= 0.0 {
            (-z).exp() / (1.0 + (-z).exp())
        } else {
            1.0 / (1.0 + z.exp())
        }
    }
}

/// One sigmoid fit: the margins, Platt's smoothed targets and the starting point.
struct Problem<'a> {
    margins: &'a [f64],
    targets: Vec<f64>,
    start: Params,
}

/// A Newton step in (a, b), with the loss's slope along it.
#[derive(Debug, Clone, Copy)]
struct Direction {
    da: f64,
    db: f64,
    slope: f64,
}

impl<'a> Problem<'a> {
    /// Targets are `(n+ + 1) / (n+ + 2)` for the class and `1 / (n- + 2)` for the rest.
    fn new(margins: &'a [f64], positive: &[bool]) -> Problem<'a> {
        let positives = positive.iter().filter(|p| **p).count() as f64;
        let negatives = positive.len() as f64 - positives;
        let (hi, lo) = (
            (positives + 1.0) / (positives + 2.0),
            1.0 / (negatives + 2.0),
        );
        Problem {
            margins,
            targets: positive.iter().map(|&p| if p { hi } else { lo }).collect(),
            start: Params {
                a: 0.0,
                b: ((negatives + 1.0) / (positives + 1.0)).ln(),
            },
        }
    }

    /// The cross-entropy of `s` against the targets.
    fn loss(&self, s: Params) -> f64 {
        self.margins
            .iter()
            .zip(&self.targets)
            .map(|(f, t)| {
                let z = s.a * f + s.b;
                // -(t ln p + (1 - t) ln (1 - p)) with p = 1 / (1 + e^z), without overflow.
                if z >= 0.0 {
                    t * z + (-z).exp().ln_1p()
                } else {
                    (t - 1.0) * z + z.exp().ln_1p()
                }
            })
            .sum()
    }

    /// The Newton step from `s`, or `None` when the gradient is small enough to stop.
    fn newton_direction(&self, s: Params) -> Option<Direction> {
        // Gradient and Hessian of the loss in (a, b).
        let (mut h11, mut h22, mut h21, mut g1, mut g2) = (SIGMA, SIGMA, 0.0, 0.0, 0.0);
        for (f, t) in self.margins.iter().zip(&self.targets) {
            let p = s.probability(*f);
            let d2 = p * (1.0 - p);
            h11 += f * f * d2;
            h22 += d2;
            h21 += f * d2;
            let d1 = t - p;
            g1 += f * d1;
            g2 += d1;
        }
        if g1.abs() < EPSILON && g2.abs() < EPSILON {
            return None;
        }
        let det = h11 * h22 - h21 * h21;
        let (da, db) = (-(h22 * g1 - h21 * g2) / det, -(-h21 * g1 + h11 * g2) / det);
        let slope = g1 * da + g2 * db;
        Some(Direction { da, db, slope })
    }

    /// The first of the halved steps along `d` that lowers the loss enough (Armijo), with its
    /// loss; `None` when even the smallest does not.
    fn line_search(&self, s: Params, value: f64, d: Direction) -> Option<(Params, f64)> {
        let mut step = 1.0;
        while step >= MIN_STEP {
            let next = Params {
                a: s.a + step * d.da,
                b: s.b + step * d.db,
            };
            let next_value = self.loss(next);
            if next_value < value + 1e-4 * step * d.slope {
                return Some((next, next_value));
            }
            step /= 2.0;
        }
        None
    }
}

/// Most Newton iterations of a fit.
const MAX_ITERATIONS: usize = 100;
/// Smallest line-search step before the fit gives up (and keeps its best point).
const MIN_STEP: f64 = 1e-10;
/// Keeps the Hessian positive definite.
const SIGMA: f64 = 1e-12;
/// Gradient small enough to stop.
const EPSILON: f64 = 1e-5;

impl Sigmoid {
    /// Fits the sigmoid to margins and whether each belongs to the class. Targets are Platt's
    /// smoothed labels (`(n+ + 1) / (n+ + 2)` and `1 / (n- + 2)`), so a perfectly separated set
    /// does not send the slope to infinity. Stops when the gradient is below 1e-5 (libsvm's
    /// tolerance), so the parameters are within about 1e-5 of the optimum.
    pub fn fit(margins: &[f64], positive: &[bool]) -> Sigmoid {
        let problem = Problem::new(margins, positive);
        let mut s = problem.start;
        let mut value = problem.loss(s);
        for _ in 0..MAX_ITERATIONS {
            let Some(direction) = problem.newton_direction(s) else {
                break;
            };
            match problem.line_search(s, value, direction) {
                Some(next) => (s, value) = next,
                None => break,
            }
        }
        Sigmoid {
            a: s.a as f32,
            b: s.b as f32,
        }
    }

    /// The probability of a margin.
    pub fn probability(self, margin: f64) -> f64 {
        Params {
            a: f64::from(self.a),
            b: f64::from(self.b),
        }
        .probability(margin)
    }
}

/// One sigmoid per class, fitted on validation margins (one-vs-all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// The sigmoid of each class, index = class.
    pub sigmoids: Vec<Sigmoid>,
}

impl Calibration {
    /// Fits each class's sigmoid on `margins` (rows x classes, row-major) of held-out rows
    /// whose true classes are `labels`.
    pub fn fit(margins: &[f32], labels: &[usize], classes: usize) -> Calibration {
        let sigmoids = (0..classes)
            .map(|class| {
                let column: Vec<f64> = margins
                    .chunks(classes)
                    .map(|row| f64::from(row[class]))
                    .collect();
                let positive: Vec<bool> = labels.iter().map(|&l| l == class).collect();
                Sigmoid::fit(&column, &positive)
            })
            .collect();
        Calibration { sigmoids }
    }

    /// The probabilities of one row of margins (one per class): each class's sigmoid,
    /// normalised to sum to one.
    pub fn probabilities(&self, margins: &[f32]) -> Vec<f32> {
        let raw: Vec<f64> = self
            .sigmoids
            .iter()
            .zip(margins)
            .map(|(s, &m)| s.probability(f64::from(m)))
            .collect();
        let sum = raw.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        raw.iter().map(|p| (p / sum) as f32).collect()
    }

    /// Whether every parameter is a finite number (a model file may have been edited).
    pub fn is_finite(&self) -> bool {
        self.sigmoids
            .iter()
            .all(|s| s.a.is_finite() && s.b.is_finite())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Targets (n+ + 1) / (n+ + 2) and 1 / (n- + 2) are reachable exactly when every positive
    /// shares one margin and every negative another: then the fit must pass through both.
    #[test]
    fn fit_reaches_the_closed_form_optimum() {
        let close = |x: f32, y: f64| (f64::from(x) - y).abs() < 1e-5;
        // One positive at +1, one negative at -1: targets 2/3 and 1/3, so b = 0, a = -ln 2.
        let s = Sigmoid::fit(&[1.0, -1.0], &[true, false]);
        assert!(close(s.a, -2f64.ln()) && close(s.b, 0.0), "{s:?}");
        // Asymmetric: two positives at 1 (target 3/4), two negatives at 0 (target 1/4):
        // p(0) = 1/4 gives b = ln 3, p(1) = 3/4 gives a + b = -ln 3.
        let s = Sigmoid::fit(&[1.0, 1.0, 0.0, 0.0], &[true, true, false, false]);
        assert!(
            close(s.b, 3f64.ln()) && close(s.a, -2.0 * 3f64.ln()),
            "{s:?}"
        );
        let p = |m| s.probability(m) as f32;
        assert!(close(p(1.0), 0.75) && close(p(0.0), 0.25));
    }

    #[test]
    fn overlapping_margins_give_a_finite_increasing_sigmoid() {
        let margins = [-2.0, -1.0, -0.5, 0.2, 0.3, 1.0, 1.5, -0.1, 0.8, 2.0];
        let positive = [
            false, false, false, false, true, true, true, true, false, true,
        ];
        let s = Sigmoid::fit(&margins, &positive);
        assert!(s.a.is_finite() && s.b.is_finite() && s.a < 0.0, "{s:?}");
        assert!(s.probability(2.0) > s.probability(-2.0));
        // Separable data: the smoothed targets keep the slope finite.
        let s = Sigmoid::fit(&[-3.0, -2.0, 2.0, 3.0], &[false, false, true, true]);
        assert!(s.a.is_finite() && s.a < 0.0, "{s:?}");
    }

    #[test]
    fn calibrated_probabilities_sum_to_one_and_follow_the_margins() {
        // Three classes, each validation row has its own class's margin highest.
        let margins = [
            1.0, -1.0, -1.0, //
            -1.0, 1.2, -0.8, //
            -1.1, -0.9, 0.9, //
            0.8, -0.7, -1.2, //
            -0.9, 0.7, -1.0, //
            -1.0, -1.0, 1.1,
        ];
        let labels = [0, 1, 2, 0, 1, 2];
        let calibration = Calibration::fit(&margins, &labels, 3);
        assert!(calibration.is_finite());
        let p = calibration.probabilities(&[2.0, -1.0, -1.5]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{p:?}");
        assert!(p[0] > p[1] && p[0] > p[2], "{p:?}");
    }
}
