//! L-BFGS in f64 (Nocedal & Wright, algorithms 7.4 and 7.5) with a backtracking line search,
//! stopping as scikit-learn's `lbfgs` solver does (scipy's L-BFGS-B): when the largest
//! gradient component falls below a tolerance, or when a step no longer lowers the
//! objective by more than a few rounding errors.
//!
//! The objectives minimised here are strictly convex (an L2 penalty on a convex loss), so
//! every step has positive curvature (`s . y > 0`): Armijo's sufficient decrease is all the
//! line search has to ensure.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Pairs of steps and gradient changes kept (scipy's default).
const MEMORY: usize = 10;

/// Sufficient decrease of Armijo's rule.
const ARMIJO: f64 = 1e-4;

/// A relative decrease below this is rounding noise (scipy's `ftol` as scikit-learn sets it).
const STALL: f64 = 64.0 * f64::EPSILON;

/// How a minimisation ended: kept in the model record and reported when it did not converge.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Convergence {
    /// Iterations (gradient steps) taken.
    pub iterations: usize,
    /// Largest absolute gradient component at the end (of the objective scaled by 1 / rows).
    pub gradient_norm: f64,
    /// False when the iteration limit stopped it before the gradient tolerance was met.
    pub converged: bool,
}

/// When to stop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stop {
    /// Most iterations.
    pub max_iterations: usize,
    /// Stop once the largest absolute gradient component is at most this.
    pub tolerance: f64,
}

/// Minimises `f` (which returns the value and writes the gradient) from `x`; returns the
/// minimiser and how it ended.
pub fn minimize<F>(mut f: F, mut x: Vec<f64>, stop: Stop) -> (Vec<f64>, Convergence)
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    let mut g = vec![0.0; x.len()];
    let mut fx = f(&x, &mut g);
    let mut history: VecDeque<Pair> = VecDeque::with_capacity(MEMORY);
    let mut iterations = 0;
    let mut stalled = false;
    while iterations < stop.max_iterations && max_abs(&g) > stop.tolerance && !stalled {
        let mut d = direction(&g, &history);
        if dot(&g, &d) >= 0.0 {
            // Not a descent direction (rounding): restart from steepest descent.
            history.clear();
            d = g.iter().map(|v| -v).collect();
        }
        // The first step is scaled to a unit move (as scipy does); later ones try 1 first.
        let first = if history.is_empty() {
            1.0 / norm(&g).max(1.0)
        } else {
            1.0
        };
        let Some(step) = line_search(&mut f, &x, fx, &g, &d, first) else {
            stalled = true;
            continue;
        };
        iterations += 1;
        let s: Vec<f64> = d.iter().map(|v| v * step.alpha).collect();
        let y: Vec<f64> = step.g.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > f64::EPSILON * dot(&y, &y) {
            if history.len() == MEMORY {
                history.pop_front();
            }
            history.push_back(Pair {
                s,
                y,
                rho: 1.0 / sy,
            });
        }
        stalled = fx - step.f <= STALL * fx.abs().max(step.f.abs()).max(1.0);
        (x, g, fx) = (step.x, step.g, step.f);
    }
    let gradient_norm = max_abs(&g);
    let converged = gradient_norm <= stop.tolerance || stalled;
    let report = Convergence {
        iterations,
        gradient_norm,
        converged,
    };
    (x, report)
}

/// One remembered step `s` and gradient change `y`, with `rho = 1 / s.y`.
struct Pair {
    s: Vec<f64>,
    y: Vec<f64>,
    rho: f64,
}

/// A point the line search accepted.
struct Accepted {
    alpha: f64,
    x: Vec<f64>,
    g: Vec<f64>,
    f: f64,
}

/// `-H g` by the two-loop recursion, `H` the inverse Hessian estimate of `history`.
fn direction(g: &[f64], history: &VecDeque<Pair>) -> Vec<f64> {
    let mut q: Vec<f64> = g.iter().map(|v| -v).collect();
    let mut alphas = Vec::with_capacity(history.len());
    for p in history.iter().rev() {
        let a = p.rho * dot(&p.s, &q);
        axpy(-a, &p.y, &mut q);
        alphas.push(a);
    }
    if let Some(last) = history.back() {
        let gamma = 1.0 / (last.rho * dot(&last.y, &last.y));
        q.iter_mut().for_each(|v| *v *= gamma);
    }
    for (p, a) in history.iter().zip(alphas.into_iter().rev()) {
        let b = p.rho * dot(&p.y, &q);
        axpy(a - b, &p.s, &mut q);
    }
    q
}

/// Backtracking from `alpha` along `d` until Armijo's condition holds, each trial at the
/// minimum of the quadratic through what is known (kept within [0.1, 0.5] of the last
/// step). `None` when no step lowers `f` (the minimum is reached to rounding).
fn line_search<F>(
    f: &mut F,
    x: &[f64],
    fx: f64,
    g: &[f64],
    d: &[f64],
    mut alpha: f64,
) -> Option<Accepted>
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    let slope = dot(g, d);
    let mut trial_g = vec![0.0; x.len()];
    for _ in 0..60 {
        let trial: Vec<f64> = x.iter().zip(d).map(|(a, b)| a + alpha * b).collect();
        let value = f(&trial, &mut trial_g);
        if value.is_finite() && value <= fx + ARMIJO * alpha * slope {
            return Some(Accepted {
                alpha,
                x: trial,
                g: trial_g,
                f: value,
            });
        }
        let curve = value - fx - slope * alpha;
        let fitted = if value.is_finite() && curve > 0.0 {
            -slope * alpha * alpha / (2.0 * curve)
        } else {
            0.1 * alpha
        };
        alpha = fitted.clamp(0.1 * alpha, 0.5 * alpha);
    }
    None
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

fn max_abs(a: &[f64]) -> f64 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += a * x);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimises_an_ill_conditioned_quadratic() {
        // f = sum_i c_i (x_i - 1)^2 / 2 with curvatures from 1 to 1e4 (scipy's L-BFGS-B needs
        // about 800 iterations for this tolerance too).
        let curv: Vec<f64> = (0..50).map(|i| 10f64.powf(i as f64 * 4.0 / 49.0)).collect();
        let f = |x: &[f64], g: &mut [f64]| {
            let mut v = 0.0;
            for ((g, x), c) in g.iter_mut().zip(x).zip(&curv) {
                *g = c * (x - 1.0);
                v += 0.5 * c * (x - 1.0).powi(2);
            }
            v
        };
        let stop = Stop {
            max_iterations: 2000,
            tolerance: 1e-6,
        };
        let (x, report) = minimize(f, vec![0.0; 50], stop);
        assert!(report.converged, "{report:?}");
        assert!(x.iter().all(|v| (v - 1.0).abs() < 1e-5), "{x:?}");
    }

    #[test]
    fn says_when_the_iteration_limit_stopped_it() {
        let f = |x: &[f64], g: &mut [f64]| {
            g[0] = 4.0 * x[0].powi(3) + x[0];
            x[0].powi(4) + 0.5 * x[0] * x[0]
        };
        let stop = Stop {
            max_iterations: 1,
            tolerance: 1e-12,
        };
        let (_, report) = minimize(f, vec![10.0], stop);
        assert_eq!(report.iterations, 1);
        assert!(!report.converged, "{report:?}");
    }
}
