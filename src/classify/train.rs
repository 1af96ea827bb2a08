//! The training protocol on one cache: for each seeded split, fit on the training rows for every
//! C of the grid, keep the C with the best validation accuracy, and score the test images.

use std::borrow::Cow;
use std::time::Instant;

use linfa::dataset::DatasetBase;
use linfa::ParamGuard;
use ndarray16::{Array1, Axis};
use serde::{Deserialize, Serialize};

use super::data::{CacheData, EvalImage, Selection};
use super::linear::argmax_rows;
use super::logistic::DEFAULT_MAX_ITERATIONS;
use super::{
    Calibration, ClassifyError, Kind, LinearClassifier, LinearSvmParams, LogisticParams, ModelFit,
    Normalize, TrainedModel, DEFAULT_C_GRID,
};
use crate::cache::Identity;
use crate::progress::Observer;

/// The run name `train` uses when none is given: KIND-CACHE[-nocopies][-tta][-l2|-power]
/// (the cache's file stem), checked like any run name.
pub fn default_run_name(
    cfg: &TrainConfig,
    cache: &std::path::Path,
) -> Result<crate::output::RunName, crate::output::OutputError> {
    let stem = cache
        .file_stem()
        .map_or("features".into(), |s| s.to_string_lossy().to_string());
    let mut name = format!("{}-{stem}", cfg.kind);
    if !cfg.train_copies {
        name.push_str("-nocopies");
    }
    if let Some(k) = cfg.copies_used {
        name.push_str(&format!("-copies{k}"));
    }
    if cfg.tta {
        name.push_str("-tta");
    }
    if !cfg.normalize.is_none() {
        name = format!("{name}-{}", cfg.normalize);
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
    /// Logistic: most L-BFGS iterations per fit.
    pub max_iterations: u64,
    /// Once C is chosen on validation, fit again with it on the training and validation rows
    /// before scoring the test images (scikit-learn's grid search refits the same way): the
    /// choice still never sees a test image, and the scored model learns from more images.
    #[serde(default)]
    pub refit_with_validation: bool,
    /// After the evaluation, fit the model `predict` uses once more, on every labelled row
    /// of the cache (every split's training, validation and test images, with their copies
    /// when `train_copies`) with the C of best mean validation accuracy over the splits run,
    /// as scikit-learn's grid search refits by default. False: keep the first split's model.
    /// (Not [`Self::refit_with_validation`], which refits inside each split before testing.)
    /// Absent in older reports, which kept the first split's model.
    #[serde(default)]
    pub refit_on_all_labelled: bool,
    /// Normalisation of each representation block of a row before standardisation, in
    /// training, validation and test scoring alike (and saved with the model, so `predict`
    /// and `export` apply it too). Absent in older reports: none.
    #[serde(default)]
    pub normalize: Normalize,
    /// Of the cache's augmented copies of each image, only the first this many are read
    /// (as training rows and as TTA views); `None`: all of them. Absent in older reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies_used: Option<u32>,
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
            max_iterations: DEFAULT_MAX_ITERATIONS,
            refit_with_validation: false,
            refit_on_all_labelled: true,
            normalize: Normalize::None,
            copies_used: None,
        }
    }

    /// Fits one classifier with regularisation `c` on `rows` of `data`; with its seconds.
    pub fn fit_rows(
        &self,
        c: f64,
        data: &CacheData,
        rows: &[usize],
    ) -> Result<(LinearClassifier, f64), ClassifyError> {
        let start = Instant::now();
        let dataset = DatasetBase::new(data.rows(rows), data.targets(rows));
        let model = self.fit(c, &dataset)?;
        Ok((model, start.elapsed().as_secs_f64()))
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
        logistic
            .max_iterations(self.max_iterations)
            .check()?
            .fit_path(grid, dataset)
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
    /// Logistic: false when the solver stopped at its iteration limit (absent in older
    /// reports and for the SVM: true).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub converged: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
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
    /// Every validation image, scored by the training-only fit of the chosen C (what an SVM's
    /// calibration and an ensemble's weights are fitted on); not written to reports.
    #[serde(skip)]
    pub val: Vec<Scored>,
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

/// The temperature of an SVM's margins, fitted on its validation images' margins (held out
/// from its fit); `None` for the logistic models, whose scores are probabilities.
fn calibrate(model: &LinearClassifier, val: &[Scored]) -> Option<Calibration> {
    (model.kind == Kind::Svm).then(|| {
        let margins: Vec<f32> = val.iter().flat_map(|s| s.scores.iter().copied()).collect();
        let labels: Vec<usize> = val.iter().map(|s| s.label).collect();
        Calibration::fit(&margins, &labels, model.classes())
    })
}

/// Runs the protocol; returns the outcome and the model `predict` uses: refit on every
/// labelled row ([`TrainConfig::refit_on_all_labelled`]), or the first split's.
pub fn run(
    data: &CacheData,
    cfg: &TrainConfig,
    log: &mut dyn Observer<String>,
) -> Result<(TrainOutcome, TrainedModel), ClassifyError> {
    let rows = prepared_rows(Cow::Borrowed(data), cfg)?;
    let data: &CacheData = &rows;
    let (splits, selections) = select_splits(data, cfg)?;
    let mut outcomes = Vec::new();
    let mut first_model = None;
    for (&split, sel) in splits.iter().zip(&selections) {
        let fits = fit_split(data, cfg, split, sel)?;
        let (outcome, classifier) = run_split(data, cfg, split, sel, &fits, log)?;
        if first_model.is_none() {
            first_model = Some(split_model(data, cfg, &outcome, classifier));
        }
        outcomes.push(outcome);
    }
    let first_model = first_model.expect("at least one split");
    let model = if cfg.refit_on_all_labelled {
        refit_on_all_labelled(data, cfg, &outcomes, first_model, log)?
    } else {
        first_model
    };
    let outcome = TrainOutcome {
        config: cfg.clone(),
        cache: data.path.display().to_string(),
        identity: data.identity.clone(),
        class_names: data.class_names.clone(),
        splits: outcomes,
    };
    Ok((outcome, model))
}

/// `data` with its rows limited to the copies and normalised as `cfg` asks, once: every fit
/// and every score of a run then reads the same rows. Owned data is normalised in place (no
/// second copy of its features); borrowed data is copied first.
fn prepared_rows<'a>(
    data: Cow<'a, CacheData>,
    cfg: &TrainConfig,
) -> Result<Cow<'a, CacheData>, ClassifyError> {
    let limited = match cfg.copies_used {
        None => data,
        Some(k) => Cow::Owned(data.first_copies(k)?),
    };
    Ok(match cfg.normalize.is_none() {
        true => limited,
        false => Cow::Owned(limited.into_owned().normalized(cfg.normalize)),
    })
}

/// The protocol of [`run`] once per test-time-augmentation setting of `ttas` (`cfg.tta` is
/// not read), each split's grid fitted once: the training rows do not depend on TTA, only how
/// validation and test images are scored does, so the outcomes are those of one [`run`] per
/// setting. No model is refit on all labelled rows ([`TrainConfig::refit_on_all_labelled`]
/// is not read): this is for comparing settings, as auto's search does. Give `data` owned
/// when the caller no longer needs it: a normalising `cfg` then works on it in place.
pub fn run_scorings(
    data: Cow<'_, CacheData>,
    cfg: &TrainConfig,
    ttas: &[bool],
    log: &mut dyn Observer<String>,
) -> Result<Vec<TrainOutcome>, ClassifyError> {
    let cfgs: Vec<TrainConfig> = ttas
        .iter()
        .map(|&tta| TrainConfig { tta, ..cfg.clone() })
        .collect();
    let rows = prepared_rows(data, cfg)?;
    let data: &CacheData = &rows;
    let selected = cfgs
        .iter()
        .map(|cfg| select_splits(data, cfg))
        .collect::<Result<Vec<_>, _>>()?;
    let mut outcomes: Vec<Vec<SplitOutcome>> = vec![Vec::new(); cfgs.len()];
    let Some((splits, _)) = selected.first() else {
        return Ok(Vec::new());
    };
    for (i, &split) in splits.iter().enumerate() {
        let fits = fit_split(data, cfg, split, &selected[0].1[i])?;
        for ((cfg, (_, sels)), done) in cfgs.iter().zip(&selected).zip(&mut outcomes) {
            done.push(run_split(data, cfg, split, &sels[i], &fits, log)?.0);
        }
    }
    Ok(cfgs
        .into_iter()
        .zip(outcomes)
        .map(|(config, splits)| TrainOutcome {
            config,
            cache: data.path.display().to_string(),
            identity: data.identity.clone(),
            class_names: data.class_names.clone(),
            splits,
        })
        .collect())
}

/// The splits to run and their rows, every one checked first, so a bad one fails before
/// minutes of fitting.
fn select_splits(
    data: &CacheData,
    cfg: &TrainConfig,
) -> Result<(Vec<usize>, Vec<Selection>), ClassifyError> {
    if cfg.grid.is_empty() {
        return Err(ClassifyError::InvalidParams("the C grid is empty".into()));
    }
    let splits: Vec<usize> = if cfg.splits.is_empty() {
        (0..data.splits()).collect()
    } else {
        cfg.splits.clone()
    };
    let selections = splits
        .iter()
        .map(|&s| data.select(s, cfg.train_copies, cfg.tta))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((splits, selections))
}

/// What validation chose in one split.
struct Chosen {
    /// The C of the best validation accuracy (the earlier, more regularised one on ties).
    c: f64,
    /// Its validation accuracy.
    val_accuracy: f64,
    /// Its fit on the training rows.
    model: LinearClassifier,
    /// Seconds of that fit.
    fit_seconds: f64,
    /// The validation images scored by that training-only fit.
    val_scored: Vec<Scored>,
}

/// Fits the grid on the split's training rows (with the seconds of each fit).
fn fit_split(
    data: &CacheData,
    cfg: &TrainConfig,
    split: usize,
    sel: &Selection,
) -> Result<Vec<(LinearClassifier, f64)>, ClassifyError> {
    let dataset = DatasetBase::new(data.rows(&sel.train), data.targets(&sel.train));
    cfg.fit_grid(&cfg.grid, &dataset).map_err(|e| match e {
        ClassifyError::EmptyClass { class, .. } => ClassifyError::EmptyClass { class, split },
        other => other,
    })
}

/// Keeps the C of `fits` (the grid's fits on the split's training rows) with the best
/// validation accuracy; also every C's validation accuracy.
fn choose_c(
    data: &CacheData,
    cfg: &TrainConfig,
    split: usize,
    sel: &Selection,
    fits: &[(LinearClassifier, f64)],
    log: &mut dyn Observer<String>,
) -> (Chosen, Vec<GridPoint>) {
    let mut best: Option<Chosen> = None;
    let mut grid = Vec::new();
    for (&c, (model, fit_seconds)) in cfg.grid.iter().zip(fits) {
        let fit_seconds = *fit_seconds;
        let val_scored = score_images(model, data, &sel.val);
        let val_accuracy = accuracy(&val_scored);
        log.observe(format!(
            "{} split {split}: C = {c:e}: validation accuracy {:.2}% (fit {fit_seconds:.1} s, {} rows)",
            cfg.kind,
            100.0 * val_accuracy,
            sel.train.len()
        ));
        grid.push(GridPoint {
            c,
            val_accuracy,
            fit_seconds,
            converged: model.convergence.is_none_or(|r| r.converged),
        });
        // Strictly better only: on ties the earlier (more regularised) C stays.
        if best.as_ref().is_none_or(|b| val_accuracy > b.val_accuracy) {
            best = Some(Chosen {
                c,
                val_accuracy,
                model: model.clone(),
                fit_seconds,
                val_scored,
            });
        }
    }
    (best.expect("the grid is not empty"), grid)
}

/// One split, from its grid's `fits` on the training rows: C chosen on validation, the refit
/// on training + validation rows if asked, the test images scored (and the validation images
/// by the training-only fit, in [`SplitOutcome::val`]). Also the split's classifier.
fn run_split(
    data: &CacheData,
    cfg: &TrainConfig,
    split: usize,
    sel: &Selection,
    fits: &[(LinearClassifier, f64)],
    log: &mut dyn Observer<String>,
) -> Result<(SplitOutcome, LinearClassifier), ClassifyError> {
    let (chosen, grid) = choose_c(data, cfg, split, sel, fits, log);
    let c = chosen.c;
    let (model, fit_seconds, train_rows) = if cfg.refit_with_validation {
        let rows = [sel.train.as_slice(), &sel.val_rows].concat();
        let (model, seconds) = cfg.fit_rows(c, data, &rows)?;
        (model, seconds, rows.len())
    } else {
        (chosen.model, chosen.fit_seconds, sel.train.len())
    };
    let start = Instant::now();
    let test = score_images(&model, data, &sel.test);
    let predict_seconds = start.elapsed().as_secs_f64();
    log.observe(format!(
        "{} split {split}: chose C = {c:e}; test accuracy {:.2}% on {} images",
        cfg.kind,
        100.0 * accuracy(&test),
        test.len()
    ));
    let outcome = SplitOutcome {
        split,
        c,
        grid,
        train_rows,
        val_images: sel.val.len(),
        fit_seconds,
        predict_seconds,
        test,
        val: chosen.val_scored,
    };
    Ok((outcome, model))
}

/// The saved form of one split's classifier. The calibration comes from the validation
/// margins of the training-only fit (`outcome.val`): a refit on training + validation rows has
/// seen those images, so its own margins on them would be overconfident.
fn split_model(
    data: &CacheData,
    cfg: &TrainConfig,
    outcome: &SplitOutcome,
    classifier: LinearClassifier,
) -> TrainedModel {
    let (split, rows) = (outcome.split, outcome.train_rows);
    TrainedModel {
        calibration: calibrate(&classifier, &outcome.val),
        normalize: cfg.normalize,
        backbone: data.backbone.clone(),
        classifier,
        class_names: data.class_names.clone(),
        identity: data.identity.clone(),
        c: outcome.c,
        trained_on: format!(
            "split {split}'s model: {} split {split} ({rows} training rows{}), not refit on all labelled images",
            data.path.display(),
            if cfg.refit_with_validation {
                ", validation rows included after choosing C"
            } else {
                ""
            }
        ),
        fit: Some(ModelFit::Split { split, rows }),
        tta: cfg.tta,
        copies_used: cfg.copies_used,
    }
}

/// The C of best mean validation accuracy over the splits run (the earlier, more regularised
/// one on ties), as scikit-learn's grid search chooses the C it refits with.
fn best_mean_c(grid: &[f64], outcomes: &[SplitOutcome]) -> f64 {
    let mean = |c: f64| {
        let found: Vec<f64> = outcomes
            .iter()
            .flat_map(|o| o.grid.iter().filter(|g| g.c == c).map(|g| g.val_accuracy))
            .collect();
        found.iter().sum::<f64>() / found.len().max(1) as f64
    };
    let mut best = (grid[0], mean(grid[0]));
    for &c in &grid[1..] {
        let m = mean(c);
        if m > best.1 {
            best = (c, m);
        }
    }
    best.0
}

/// The model `predict` uses, fitted after the evaluation on every labelled row of the cache
/// with the C of [`best_mean_c`]; the rest (classes, identity, backbone) as `first`.
fn refit_on_all_labelled(
    data: &CacheData,
    cfg: &TrainConfig,
    outcomes: &[SplitOutcome],
    first: TrainedModel,
    log: &mut dyn Observer<String>,
) -> Result<TrainedModel, ClassifyError> {
    let c = best_mean_c(&cfg.grid, outcomes);
    let rows = data.labelled_rows(cfg.train_copies);
    let images = rows.iter().filter(|&&r| data.copies[r] == 0).count();
    let (classifier, seconds) = cfg.fit_rows(c, data, &rows)?;
    log.observe(format!(
        "{}: refit with C = {c:e} on all {images} labelled images ({} rows) in {seconds:.1} s: the model predict uses",
        cfg.kind,
        rows.len()
    ));
    Ok(TrainedModel {
        classifier,
        c,
        trained_on: format!(
            "refit on all {images} labelled images of {} ({} rows: every split's training, validation and test images{}) after the evaluation, with the C of best mean validation accuracy over {} split(s)",
            data.path.display(),
            rows.len(),
            if cfg.train_copies { " and their augmented copies" } else { "" },
            outcomes.len()
        ),
        fit: Some(ModelFit::AllLabelled {
            images,
            rows: rows.len(),
        }),
        // The calibration stays that of the first split's training-only fit, fitted on its
        // validation images' margins: the refit has seen every labelled image, so no
        // held-out margins are left to fit it on.
        ..first
    })
}
