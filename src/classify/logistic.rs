//! Logistic regression through linfa-logistic (L-BFGS): multinomial (softmax), or one binary
//! regression per class (one-vs-all). Features are standardised inside `fit`.

use linfa::dataset::DatasetBase;
use linfa::traits::Fit;
use linfa::ParamGuard;
use linfa_logistic::{LogisticRegression, MultiLogisticRegression};
use ndarray16::{Array1, Array2, ArrayView1, ArrayView2};
use rayon::prelude::*;

use super::svm::class_count;
use super::{gram, ClassifyError, Kind, LinearClassifier, Scaler};

/// Hyper-parameters of the logistic models (unchecked; see [`ParamGuard`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticParams(LogisticValidParams);

/// Checked hyper-parameters of the logistic models; they fit models.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticValidParams {
    multinomial: bool,
    c: f64,
    max_iterations: u64,
    gradient_tolerance: f64,
}

impl LogisticParams {
    /// Multinomial (softmax) regression, C = 1, at most 100 L-BFGS iterations.
    pub fn multinomial() -> Self {
        LogisticParams(LogisticValidParams {
            multinomial: true,
            c: 1.0,
            max_iterations: 100,
            gradient_tolerance: 1e-4,
        })
    }

    /// One binary regression per class against all others, C = 1, at most 100 iterations.
    pub fn one_vs_all() -> Self {
        let mut p = Self::multinomial();
        p.0.multinomial = false;
        p
    }

    /// Inverse penalty: linfa's `alpha = 1 / C` on the summed log loss (scikit-learn's C).
    pub fn c(mut self, c: f64) -> Self {
        self.0.c = c;
        self
    }

    /// Most L-BFGS iterations per fit.
    pub fn max_iterations(mut self, n: u64) -> Self {
        self.0.max_iterations = n;
        self
    }

    /// Stop when the gradient norm falls below this.
    pub fn gradient_tolerance(mut self, tol: f64) -> Self {
        self.0.gradient_tolerance = tol;
        self
    }
}

impl ParamGuard for LogisticParams {
    type Checked = LogisticValidParams;
    type Error = ClassifyError;

    fn check_ref(&self) -> Result<&Self::Checked, Self::Error> {
        let p = &self.0;
        if !(p.c.is_finite() && p.c > 0.0) {
            return Err(ClassifyError::InvalidParams(format!(
                "logistic C must be positive, got {}",
                p.c
            )));
        }
        if !(p.gradient_tolerance.is_finite() && p.gradient_tolerance > 0.0)
            || p.max_iterations == 0
        {
            return Err(ClassifyError::InvalidParams(
                "logistic tolerance and iterations must be positive".into(),
            ));
        }
        Ok(p)
    }

    fn check(self) -> Result<Self::Checked, Self::Error> {
        self.check_ref()?;
        Ok(self.0)
    }
}

impl Fit<Array2<f32>, Array1<usize>, ClassifyError> for LogisticValidParams {
    type Object = LinearClassifier;

    fn fit(
        &self,
        dataset: &DatasetBase<Array2<f32>, Array1<usize>>,
    ) -> Result<LinearClassifier, ClassifyError> {
        let classes = class_count(dataset)?;
        let scaler = Scaler::fit(dataset.records().view());
        let standard = scaler.transform(dataset.records().view());
        // Fewer rows than dimensions: fit on the exact n x n reduction (see `gram`).
        let reduced = (standard.nrows() < standard.ncols()).then(|| gram::reduce(standard.view()));
        // linfa-logistic's line search wants f64; the copy is the price.
        let x = match &reduced {
            Some(l) => l.clone(),
            None => standard.mapv(|v| v as f64),
        };
        let y = dataset.targets().view();
        let (mut weights, bias) = if self.multinomial {
            self.fit_multinomial(x.view(), y, classes)?
        } else {
            self.fit_one_vs_all(x.view(), y, classes)?
        };
        if let Some(l) = &reduced {
            weights = gram::expand(l, weights.mapv(|v| v as f64).view(), standard.view());
        }
        Ok(LinearClassifier {
            kind: if self.multinomial {
                Kind::Logistic
            } else {
                Kind::LogisticOvr
            },
            scaler,
            weights,
            bias,
        })
    }
}

/// One weight row and one bias per class.
type Weights = (Array2<f32>, Array1<f32>);

impl LogisticValidParams {
    /// One softmax regression over all classes.
    fn fit_multinomial(
        &self,
        x: ArrayView2<f64>,
        y: ArrayView1<usize>,
        classes: usize,
    ) -> Result<Weights, ClassifyError> {
        let fitted = MultiLogisticRegression::default()
            .alpha(1.0 / self.c)
            .max_iterations(self.max_iterations)
            .gradient_tolerance(self.gradient_tolerance)
            .fit(&DatasetBase::new(x, y))?;
        let mut weights = Array2::<f32>::zeros((classes, x.ncols()));
        let mut bias = Array1::<f32>::zeros(classes);
        // linfa orders its classes by value; all are present (checked by `class_count`).
        for (col, &class) in fitted.classes().iter().enumerate() {
            weights
                .row_mut(class)
                .assign(&fitted.params().column(col).mapv(|v| v as f32));
            bias[class] = fitted.intercept()[col] as f32;
        }
        Ok((weights, bias))
    }

    /// One binary regression per class against the rest, in parallel.
    fn fit_one_vs_all(
        &self,
        x: ArrayView2<f64>,
        y: ArrayView1<usize>,
        classes: usize,
    ) -> Result<Weights, ClassifyError> {
        let solved: Vec<Result<(Array1<f32>, f32), ClassifyError>> = (0..classes)
            .into_par_iter()
            .map(|class| self.fit_binary(x, y, class))
            .collect();
        let mut weights = Array2::<f32>::zeros((classes, x.ncols()));
        let mut bias = Array1::<f32>::zeros(classes);
        for (class, result) in solved.into_iter().enumerate() {
            let (w, b) = result?;
            weights.row_mut(class).assign(&w);
            bias[class] = b;
        }
        Ok((weights, bias))
    }

    /// `class` against the rest: its weights and bias, positive for `class`.
    fn fit_binary(
        &self,
        x: ArrayView2<f64>,
        y: ArrayView1<usize>,
        class: usize,
    ) -> Result<(Array1<f32>, f32), ClassifyError> {
        let target: Array1<bool> = y.iter().map(|&c| c == class).collect();
        let fitted = LogisticRegression::default()
            .alpha(1.0 / self.c)
            .max_iterations(self.max_iterations)
            .gradient_tolerance(self.gradient_tolerance)
            .fit(&DatasetBase::new(x, target))?;
        // linfa labels the more frequent class positive: flip when that is "rest".
        let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
        Ok((
            fitted.params().mapv(|v| (sign * v) as f32),
            (sign * fitted.intercept()) as f32,
        ))
    }
}

impl LogisticValidParams {
    /// C of these parameters.
    pub fn c_value(&self) -> f64 {
        self.c
    }
}
