//! Numeric routines shared by classifiers, fine-tuning and prediction, each written once.

/// Index of the largest value (ties and NaN: the first largest; 0 for an empty input).
pub fn argmax(values: impl IntoIterator<Item = f32>) -> usize {
    values
        .into_iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
        .0
}

/// The arithmetic mean (0 of nothing).
pub fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// `ln(sum(exp(z)))`, in f64 and shifted by the maximum so large logits do not overflow.
pub fn log_sum_exp(z: &[f32]) -> f64 {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    z.iter().map(|v| f64::from(v - max).exp()).sum::<f64>().ln() + f64::from(max)
}

/// Replaces logits by their softmax probabilities (shifted by the maximum for stability).
pub fn softmax_in_place(z: &mut [f32]) {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    z.iter_mut().for_each(|v| *v = (*v - max).exp());
    let sum: f32 = z.iter().sum();
    z.iter_mut().for_each(|v| *v /= sum);
}

/// Softmax probabilities of logits.
pub fn softmax(z: &[f32]) -> Vec<f32> {
    let mut p = z.to_vec();
    softmax_in_place(&mut p);
    p
}

/// Mean and sample standard deviation (n - 1; 0 for a single value).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let var = if n > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
    } else {
        0.0
    };
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_std_is_the_sample_deviation() {
        assert_eq!(mean_std(&[1.0, 3.0]), (2.0, 2f64.sqrt()));
        assert_eq!(mean_std(&[2.0]), (2.0, 0.0));
    }

    #[test]
    fn argmax_takes_the_first_largest() {
        assert_eq!(argmax([1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(argmax([f32::NAN, 0.5]), 1);
        assert_eq!(argmax(std::iter::empty()), 0);
    }

    #[test]
    fn softmax_sums_to_one_and_survives_large_logits() {
        let p = softmax(&[1000.0, 1000.0, 0.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((p[0] - 0.5).abs() < 1e-6 && p[2] < 1e-30);
        let lse = log_sum_exp(&[1000.0, 1000.0]);
        assert!((lse - (1000.0 + 2f64.ln())).abs() < 1e-9);
    }
}
