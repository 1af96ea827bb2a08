//! Standardisation of feature columns: fitted on training rows only, applied to every row.

use ndarray16::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// Per-column mean and scale; `(x - mean) / scale`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    /// Column means of the training rows.
    pub mean: Vec<f32>,
    /// Column standard deviations of the training rows (1 where a column is constant, so a
    /// dead ReLU channel stays 0 instead of becoming NaN).
    pub scale: Vec<f32>,
}

impl Scaler {
    /// Fits on `x` (the training rows); sums in f64 so thousands of rows lose no precision.
    pub fn fit(x: ArrayView2<f32>) -> Scaler {
        let n = x.nrows().max(1) as f64;
        let mut sum = vec![0f64; x.ncols()];
        let mut sq = vec![0f64; x.ncols()];
        for row in x.axis_iter(Axis(0)) {
            for ((s, q), v) in sum.iter_mut().zip(sq.iter_mut()).zip(row.iter()) {
                let v = *v as f64;
                *s += v;
                *q += v * v;
            }
        }
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let scale = sq
            .iter()
            .zip(&mean)
            .map(|(q, m)| {
                let var = (q / n - m * m).max(0.0);
                if var > 1e-12 {
                    var.sqrt() as f32
                } else {
                    1.0
                }
            })
            .collect();
        Scaler {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            scale,
        }
    }

    /// Number of columns.
    pub fn dims(&self) -> usize {
        self.mean.len()
    }

    /// The standardised copy of `x`.
    pub fn transform(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut out = x.to_owned();
        for mut row in out.axis_iter_mut(Axis(0)) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.scale) {
                *v = (*v - m) / s;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray16::array;

    #[test]
    fn standardises_and_keeps_constant_columns_finite() {
        let x = array![[1.0f32, 5.0], [3.0, 5.0]];
        let scaler = Scaler::fit(x.view());
        assert_eq!(scaler.mean, vec![2.0, 5.0]);
        assert_eq!(scaler.scale, vec![1.0, 1.0]);
        let t = scaler.transform(x.view());
        assert_eq!(t, array![[-1.0f32, 0.0], [1.0, 0.0]]);
    }
}
