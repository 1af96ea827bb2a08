//! The training protocol on one cache: for each seeded split, fit on the training rows for every
//! C of the grid, keep the C with the best validation accuracy, and score the test images.

use std::time::Instant;

use linfa::dataset::DatasetBase;
use linfa::traits::Fit;
use linfa::ParamGuard;
use ndarray16::{Array1, Axis};
use serde::{Deserialize, Serialize};

use super::data::{CacheData, EvalImage};
use super::linear::argmax_rows;
use super::{
    Calibration, ClassifyError, Kind, LinearClassifier, LinearSvmParams, LogisticParams,
    TrainedModel, DEFAULT_C_GRID,
};
use crate::cache::Identity;

/// The run name `train` uses when none is given: KIND-CACHE[-nocopies][-tta] (the cache's file
/// stem), checked like any run name.
pub fn default_run_name(
    kind: Kind,
    cache: &std::path::Path,
    train_copies: bool,
    tta: bool,
) -> Result<crate::output::RunName, crate::output::OutputError> {
    let stem = cache
        .file_stem()
        .map_or("features".into(), |s| s.to_string_lossy().to_string());
    let mut name = format!("{kind}-{stem}");
    if !train_copies {
        name.push_str("-nocopies");
    }
    if tta {
        name.push_str("-tta");
    }
    crate::output::RunName::new(&name)
}

/// How to train and evaluate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Which classifier.
    pub kind: Kind,
    /// Values of C tried on the validation split.
    pub grid: Vec<f64>,
    /// Splits to run (empty: all of the cache's).
    pub splits: Vec<usize>,
    /// Train on the augmented copies of training images too.
    pub train_copies: bool,
    /// Test-time augmentation: average a validation / test image's scores over its copies.
    pub tta: bool,
    /// Seed of the SVM's row order.
    pub seed: u64,
    /// SVM: stopping tolerance of dual coordinate descent.
    pub svm_tol: f64,
    /// Logistic: most L-BFGS iterations.
    pub max_iterations: u64,
    /// Once C is chosen on validation, fit again with it on the training and validation rows
    /// before scoring the test images (scikit-learn's grid search refits the same way): the
    /// choice still never sees a test image, and the scored model learns from more images.
    #[serde(default)]
    pub refit_with_validation: bool,
}

impl TrainConfig {
    /// The defaults for `kind`: the documented grid, all splits, copies on, no TTA.
    pub fn new(kind: Kind) -> Self {
        TrainConfig {
            kind,
            grid: DEFAULT_C_GRID.to_vec(),
            splits: Vec::new(),
            train_copies: true,
            tta: false,
            seed: 0,
            svm_tol: 1e-3,
            max_iterations: 100,
            refit_with_validation: false,
        }
    }

    /// Fits one classifier of this configuration with regularisation `c`.
    pub fn fit(
        &self,
        c: f64,
        dataset: &DatasetBase<ndarray16::Array2<f32>, Array1<usize>>,
    ) -> Result<LinearClassifier, ClassifyError> {
        Ok(self.fit_grid(&[c], dataset)?.remove(0).0)
    }

    /// Fits one classifier per C of `grid` (in its order, with the seconds each fit took).
    /// The SVM solves the whole grid as one path (shared standardisation, warm starts).
    pub fn fit_grid(
        &self,
        grid: &[f64],
        dataset: &DatasetBase<ndarray16::Array2<f32>, Array1<usize>>,
    ) -> Result<Vec<(LinearClassifier, f64)>, ClassifyError> {
        let logistic = match self.kind {
            Kind::Svm => {
                return LinearSvmParams::new()
                    .tol(self.svm_tol)
                    .seed(self.seed)
                    .check()?
                    .fit_path(grid, dataset)
            }
            Kind::Logistic => LogisticParams::multinomial(),
            Kind::LogisticOvr => LogisticParams::one_vs_all(),
        };
        grid.iter()
            .map(|&c| {
                let start = Instant::now();
                let model = logistic
                    .clone()
                    .c(c)
                    .max_iterations(self.max_iterations)
                    .fit(dataset)?;
                Ok((model, start.elapsed().as_secs_f64()))
            })
            .collect()
    }
}

/// Validation result of one C.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridPoint {
    /// Regularisation.
    pub c: f64,
    /// Validation accuracy.
    pub val_accuracy: f64,
    /// Seconds of the fit.
    pub fit_seconds: f64,
}

/// Scores of one test image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    /// Source image, relative to the data root.
    pub path: String,
    /// True class.
    pub label: usize,
    /// Predicted class.
    pub predicted: usize,
    /// Score of every class (averaged over the image's copies with TTA).
    pub scores: Vec<f32>,
}

/// What one split gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitOutcome {
    /// Split index.
    pub split: usize,
    /// C chosen on validation.
    pub c: f64,
    /// Every C tried.
    pub grid: Vec<GridPoint>,
    /// Training rows (with copies, if used).
    pub train_rows: usize,
    /// Validation images.
    pub val_images: usize,
    /// Seconds of the chosen fit.
    pub fit_seconds: f64,
    /// Seconds to score all test images.
    pub predict_seconds: f64,
    /// Every test image.
    pub test: Vec<Scored>,
}

/// Everything a training run gave, for reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOutcome {
    /// The configuration.
    pub config: TrainConfig,
    /// The cache file.
    pub cache: String,
    /// What made the features.
    pub identity: Identity,
    /// Class names.
    pub class_names: Vec<String>,
    /// One entry per split.
    pub splits: Vec<SplitOutcome>,
}

/// Scores each image: its rows' scores, averaged when it has several (TTA).
pub fn score_images(
    model: &LinearClassifier,
    data: &CacheData,
    images: &[EvalImage],
) -> Vec<Scored> {
    let rows: Vec<usize> = images.iter().flat_map(|i| i.rows.iter().copied()).collect();
    let scores = model.scores(data.rows(&rows).view());
    let mut at = 0;
    images
        .iter()
        .map(|image| {
            let n = image.rows.len();
            let mean = scores
                .slice(ndarray16::s![at..at + n, ..])
                .mean_axis(Axis(0))
                .expect("an image has at least one row");
            at += n;
            let predicted = argmax_rows(mean.view().insert_axis(Axis(0)))[0];
            Scored {
                path: image.path.clone(),
                label: image.label,
                predicted,
                scores: mean.to_vec(),
            }
        })
        .collect()
}

fn accuracy(scored: &[Scored]) -> f64 {
    let right = scored.iter().filter(|s| s.label == s.predicted).count();
    right as f64 / scored.len().max(1) as f64
}

/// Platt's sigmoids of an SVM, fitted on its validation images' margins (held out from its
/// fit, as Platt asks); `None` for the logistic models, whose scores are probabilities.
fn calibrate(model: &LinearClassifier, val: &[Scored]) -> Option<Calibration> {
    (model.kind == Kind::Svm).then(|| {
        let margins: Vec<f32> = val.iter().flat_map(|s| s.scores.iter().copied()).collect();
        let labels: Vec<usize> = val.iter().map(|s| s.label).collect();
        Calibration::fit(&margins, &labels, model.classes())
    })
}

/// Runs the protocol; returns the outcome and the model of the first split run.
pub fn run(
    data: &CacheData,
    cfg: &TrainConfig,
    log: &mut dyn FnMut(String),
) -> Result<(TrainOutcome, TrainedModel), ClassifyError> {
    if cfg.grid.is_empty() {
        return Err(ClassifyError::InvalidParams("the C grid is empty".into()));
    }
    let splits: Vec<usize> = if cfg.splits.is_empty() {
        (0..data.splits()).collect()
    } else {
        cfg.splits.clone()
    };
    // Check every split first, so a bad one fails before minutes of fitting.
    let selections = splits
        .iter()
        .map(|&s| data.select(s, cfg.train_copies, cfg.tta))
        .collect::<Result<Vec<_>, _>>()?;
    let mut outcomes = Vec::new();
    let mut first_model = None;
    for (&split, sel) in splits.iter().zip(&selections) {
        let dataset = DatasetBase::new(data.rows(&sel.train), data.targets(&sel.train));
        let fits = cfg.fit_grid(&cfg.grid, &dataset).map_err(|e| match e {
            ClassifyError::EmptyClass { class, .. } => ClassifyError::EmptyClass { class, split },
            other => other,
        })?;
        let mut best: Option<(f64, LinearClassifier, f64, f64, Vec<Scored>)> = None;
        let mut grid = Vec::new();
        for (&c, (model, fit_seconds)) in cfg.grid.iter().zip(fits) {
            let val_scored = score_images(&model, data, &sel.val);
            let val_accuracy = accuracy(&val_scored);
            log(format!(
                "{} split {split}: C = {c:e}: validation accuracy {:.2}% (fit {fit_seconds:.1} s, {} rows)",
                cfg.kind,
                100.0 * val_accuracy,
                sel.train.len()
            ));
            grid.push(GridPoint {
                c,
                val_accuracy,
                fit_seconds,
            });
            // Strictly better only: on ties the earlier (more regularised) C stays.
            if best.as_ref().is_none_or(|b| val_accuracy > b.0) {
                best = Some((val_accuracy, model, fit_seconds, c, val_scored));
            }
        }
        // Platt's sigmoids come from the validation margins of the training-only fit: a refit
        // has seen those images, so its own margins on them would be overconfident.
        let (_, model, fit_seconds, c, val_scored) = best.expect("the grid is not empty");
        let (model, fit_seconds, train_rows) = if cfg.refit_with_validation {
            let rows = [sel.train.as_slice(), &sel.val_rows].concat();
            let start = Instant::now();
            let dataset = DatasetBase::new(data.rows(&rows), data.targets(&rows));
            let model = cfg.fit(c, &dataset)?;
            (model, start.elapsed().as_secs_f64(), rows.len())
        } else {
            (model, fit_seconds, sel.train.len())
        };
        let start = Instant::now();
        let test = score_images(&model, data, &sel.test);
        let predict_seconds = start.elapsed().as_secs_f64();
        log(format!(
            "{} split {split}: chose C = {c:e}; test accuracy {:.2}% on {} images",
            cfg.kind,
            100.0 * accuracy(&test),
            test.len()
        ));
        if first_model.is_none() {
            first_model = Some(TrainedModel {
                calibration: calibrate(&model, &val_scored),
                backbone: data.backbone.clone(),
                classifier: model,
                class_names: data.class_names.clone(),
                identity: data.identity.clone(),
                c,
                trained_on: format!(
                    "{} split {split} ({train_rows} training rows{})",
                    data.path.display(),
                    if cfg.refit_with_validation {
                        ", validation rows included after choosing C"
                    } else {
                        ""
                    }
                ),
            });
        }
        outcomes.push(SplitOutcome {
            split,
            c,
            grid,
            train_rows,
            val_images: sel.val.len(),
            fit_seconds,
            predict_seconds,
            test,
        });
    }
    let outcome = TrainOutcome {
        config: cfg.clone(),
        cache: data.path.display().to_string(),
        identity: data.identity.clone(),
        class_names: data.class_names.clone(),
        splits: outcomes,
    };
    Ok((outcome, first_model.expect("at least one split")))
}
