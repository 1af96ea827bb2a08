//! The learning-rate schedule: a factor on both groups' rates for every training step, a pure
//! function of the step's place in the run, so a resumed run uses exactly the rates an
//! uninterrupted one does.

use serde::{Deserialize, Serialize};

/// How the learning rates change after the warm-up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// The given rates throughout.
    #[default]
    Constant,
    /// Half a cosine from the given rates down to 0 at the end of the last epoch.
    Cosine,
}

impl Schedule {
    /// Whether the rates depend on how many epochs the run has (then a run cannot be extended
    /// to more epochs: the rates of the epochs done would differ).
    pub fn needs_horizon(self) -> bool {
        self == Schedule::Cosine
    }
}

/// Where a run's steps are: `warmup` steps of linear warm-up, `total` steps in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Steps {
    /// Steps of linear warm-up at the start.
    pub warmup: usize,
    /// Steps of the whole run (epochs times steps per epoch).
    pub total: usize,
}

impl Steps {
    /// The steps of a run of `epochs` epochs of `per_epoch` steps, `warmup_epochs` warming up.
    pub fn of_run(epochs: usize, warmup_epochs: usize, per_epoch: usize) -> Steps {
        Steps {
            warmup: warmup_epochs * per_epoch,
            total: epochs * per_epoch,
        }
    }
}

/// The factor on the learning rates at step `step` (from 0) of a run of `steps`.
///
/// Warm-up: `(step + 1) / (warmup + 1)` for the first `warmup` steps, so the rate rises
/// linearly and the first step is not wasted at 0. After it, 1 (constant) or
/// `(1 + cos(pi t)) / 2` (cosine) with `t = (step - warmup) / (total - warmup)`: 1 at the first
/// step after the warm-up, falling to near 0 at the last step (never exactly 0).
pub fn lr_factor(schedule: Schedule, steps: Steps, step: usize) -> f32 {
    if step < steps.warmup {
        return (step + 1) as f32 / (steps.warmup + 1) as f32;
    }
    match schedule {
        Schedule::Constant => 1.0,
        Schedule::Cosine => {
            let span = steps.total.saturating_sub(steps.warmup).max(1) as f64;
            let t = ((step - steps.warmup) as f64 / span).min(1.0);
            (0.5 * (1.0 + (std::f64::consts::PI * t).cos())) as f32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constant_schedule_without_warm_up_is_one_everywhere() {
        let steps = Steps::of_run(5, 0, 4);
        assert!((0..25).all(|s| lr_factor(Schedule::Constant, steps, s) == 1.0));
    }

    #[test]
    fn warm_up_rises_linearly_then_the_constant_rate_holds() {
        let steps = Steps::of_run(5, 1, 4);
        let f: Vec<f32> = (0..6)
            .map(|s| lr_factor(Schedule::Constant, steps, s))
            .collect();
        assert_eq!(f, [0.2, 0.4, 0.6, 0.8, 1.0, 1.0]);
    }

    #[test]
    fn cosine_falls_from_one_to_near_zero_after_the_warm_up() {
        let steps = Steps::of_run(3, 1, 4); // 4 warm-up steps, then 8 of cosine
        let f = |s| lr_factor(Schedule::Cosine, steps, s);
        assert_eq!(f(3), 0.8);
        assert_eq!(f(4), 1.0);
        // t = 2 / 8: (1 + cos(pi / 4)) / 2; t = 4 / 8: one half; t = 7 / 8 the last step.
        assert!((f(6) - (0.5 + 0.5 * std::f32::consts::FRAC_1_SQRT_2)).abs() < 1e-6);
        assert!((f(8) - 0.5).abs() < 1e-6);
        let last = (1.0 + (std::f64::consts::PI * 7.0 / 8.0).cos()) / 2.0;
        assert!((f64::from(f(11)) - last).abs() < 1e-6 && f(11) > 0.0);
        assert!((4..11).all(|s| f(s + 1) < f(s)), "strictly falling");
    }

    #[test]
    fn cosine_without_warm_up_starts_at_one_and_only_it_needs_the_horizon() {
        let steps = Steps::of_run(2, 0, 3);
        assert_eq!(lr_factor(Schedule::Cosine, steps, 0), 1.0);
        assert!((lr_factor(Schedule::Cosine, steps, 3) - 0.5).abs() < 1e-6);
        assert!(Schedule::Cosine.needs_horizon() && !Schedule::Constant.needs_horizon());
    }
}
