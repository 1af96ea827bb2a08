//! The fitted model every kind produces: a scaler, one weight row and bias per class, and the
//! link that turns decision values into scores.

use linfa::traits::PredictInplace;
use ndarray16::{Array1, Array2, ArrayView2, Axis};

use super::{Convergence, Kind, Scaler};

/// A fitted linear classifier: `scores = link(W · standardise(x) + b)`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearClassifier {
    /// Which kind made it (decides the link).
    pub kind: Kind,
    /// Standardisation fitted on the training rows.
    pub scaler: Scaler,
    /// Weights, classes x dims (on standardised features).
    pub weights: Array2<f32>,
    /// Bias per class.
    pub bias: Array1<f32>,
    /// How the solver ended (the logistic models); `None` for the SVM and older model files.
    pub convergence: Option<Convergence>,
}

impl LinearClassifier {
    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.weights.nrows()
    }

    /// Length of a feature row.
    pub fn dims(&self) -> usize {
        self.weights.ncols()
    }

    /// Raw decision values (rows x classes).
    pub fn decision(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let z = self.scaler.transform(x);
        let mut out = z.dot(&self.weights.t());
        out += &self.bias;
        out
    }

    /// Scores (rows x classes): SVM decision values; softmax probabilities (multinomial); sigmoid
    /// probabilities normalised to sum to one (one-vs-all logistic, as scikit-learn does).
    pub fn scores(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut s = self.decision(x);
        match self.kind {
            Kind::Svm => {}
            Kind::Logistic => {
                for mut row in s.axis_iter_mut(Axis(0)) {
                    crate::numeric::softmax_in_place(
                        row.as_slice_mut()
                            .expect("rows of a new matrix are contiguous"),
                    );
                }
            }
            Kind::LogisticOvr => {
                for mut row in s.axis_iter_mut(Axis(0)) {
                    row.mapv_inplace(|v| 1.0 / (1.0 + (-v).exp()));
                    let sum = row.sum().max(f32::MIN_POSITIVE);
                    row.mapv_inplace(|v| v / sum);
                }
            }
        }
        s
    }
}

/// Index of the largest value of each row (ties: the first).
pub fn argmax_rows(scores: ArrayView2<f32>) -> Vec<usize> {
    scores
        .axis_iter(Axis(0))
        .map(|row| crate::numeric::argmax(row.iter().copied()))
        .collect()
}

impl PredictInplace<Array2<f32>, Array1<usize>> for LinearClassifier {
    fn predict_inplace(&self, x: &Array2<f32>, y: &mut Array1<usize>) {
        assert_eq!(x.nrows(), y.len(), "one target per row");
        let best = argmax_rows(self.decision(x.view()).view());
        y.iter_mut().zip(best).for_each(|(t, b)| *t = b);
    }

    fn default_target(&self, x: &Array2<f32>) -> Array1<usize> {
        Array1::zeros(x.nrows())
    }
}
