//! The fine-tuned model and a linear classifier averaged: `w p_finetuned + (1 - w) p_linear`
//! per image, with the weight `w` (and the linear model's C) chosen on validation images only.
//! Test images are scored once, with what validation chose.

use std::path::Path;

use serde::Serialize;

use super::run::Summary;
use super::FinetuneError;
use crate::backbone::Repr;
use crate::classify::calibration::Calibration;
use crate::classify::data::CacheData;
use crate::classify::train::{self, Scored, SplitOutcome, TrainConfig};
use crate::classify::Kind;
use crate::numeric::argmax;
use crate::numeric::mean_std;

/// The weights of the fine-tuned model tried: 0 (the linear model alone) to 1 by tenths.
pub const WEIGHTS: [f64; 11] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];

/// Class probabilities of images, in image order, with the images (path, label).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scores {
    /// Source image and true class of each row.
    pub images: Vec<(String, usize)>,
    /// Probabilities, one row per image.
    pub p: Vec<Vec<f32>>,
}

impl Scores {
    /// Fraction of images whose arg-max is their label.
    pub fn accuracy(&self) -> f64 {
        let hits = self
            .p
            .iter()
            .zip(&self.images)
            .filter(|(p, (_, label))| argmax(p.iter().copied()) == *label)
            .count();
        hits as f64 / self.p.len().max(1) as f64
    }

    /// Mean negative log-probability of the labels (probabilities floored at 1e-12).
    pub fn log_loss(&self) -> f64 {
        let sum: f64 = self
            .p
            .iter()
            .zip(&self.images)
            .map(|(p, (_, label))| -f64::from(p[*label]).max(1e-12).ln())
            .sum();
        sum / self.p.len().max(1) as f64
    }

    /// These scores in the order of `images` (the same set of images; refused naming one
    /// that is missing).
    pub fn ordered_as(&self, images: &[(String, usize)]) -> Result<Scores, FinetuneError> {
        let at: std::collections::HashMap<&(String, usize), usize> = self
            .images
            .iter()
            .enumerate()
            .map(|(i, im)| (im, i))
            .collect();
        let p = images
            .iter()
            .map(|im| {
                at.get(im).map(|&i| self.p[i].clone()).ok_or_else(|| {
                    FinetuneError::Data(format!(
                        "{} (class {}) is scored by one model only; ensembles need the same cache's splits",
                        im.0, im.1
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        if images.len() != self.images.len() {
            return Err(FinetuneError::Data(format!(
                "one model scores {} images, the other {}; ensembles need the same cache's splits",
                images.len(),
                self.images.len()
            )));
        }
        Ok(Scores {
            images: images.to_vec(),
            p,
        })
    }

    /// `w self + (1 - w) other`, image by image; `other` must score the same images in the
    /// same order (refused naming the first that differs).
    pub fn blend(&self, other: &Scores, w: f64) -> Result<Scores, FinetuneError> {
        if let Some(i) = (0..self.images.len().max(other.images.len()))
            .find(|&i| self.images.get(i) != other.images.get(i))
        {
            return Err(FinetuneError::Data(format!(
                "the two models score other images (image {i}: {:?} vs {:?}); ensembles need the same cache's splits",
                self.images.get(i),
                other.images.get(i)
            )));
        }
        let (a, b) = (w as f32, (1.0 - w) as f32);
        let p = self
            .p
            .iter()
            .zip(&other.p)
            .map(|(x, y)| x.iter().zip(y).map(|(u, v)| a * u + b * v).collect())
            .collect();
        Ok(Scores {
            images: self.images.clone(),
            p,
        })
    }
}

/// The weight chosen and how it scored on validation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Weight {
    /// Weight of the fine-tuned model (1 - weight: the linear model's).
    pub weight: f64,
    /// Validation accuracy of the blend.
    pub val_accuracy: f64,
    /// Validation log loss of the blend.
    pub val_log_loss: f64,
}

/// The weight of [`WEIGHTS`] whose blend of the validation scores has the highest accuracy;
/// ties go to the lower log loss. Takes validation scores only: test images cannot sway it.
pub fn choose_weight(finetuned: &Scores, linear: &Scores) -> Result<Weight, FinetuneError> {
    let mut best: Option<Weight> = None;
    for w in WEIGHTS {
        let blend = finetuned.blend(linear, w)?;
        let here = Weight {
            weight: w,
            val_accuracy: blend.accuracy(),
            val_log_loss: blend.log_loss(),
        };
        let better = best.is_none_or(|b| {
            here.val_accuracy > b.val_accuracy
                || (here.val_accuracy == b.val_accuracy && here.val_log_loss < b.val_log_loss)
        });
        if better {
            best = Some(here);
        }
    }
    Ok(best.expect("WEIGHTS is not empty"))
}

/// A linear classifier's validation and test probabilities on one split, as `tlearn train`
/// with the same configuration scores them: C chosen on validation, the validation images
/// scored by the training-only fit of that C, the test images by the model `train` tests
/// (refit on training + validation images when the configuration says so), each image's
/// scores averaged over its views under TTA.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinearScores {
    /// The C chosen.
    pub c: f64,
    /// Validation images' probabilities.
    pub val: Scores,
    /// Test images' probabilities.
    pub test: Scores,
}

impl LinearScores {
    /// One split of a training run as probabilities: a logistic model's as they are, an SVM's
    /// margins through the temperature fitted on the validation margins (as a saved model's
    /// calibration is).
    pub fn from_split(kind: Kind, classes: usize, split: &SplitOutcome) -> LinearScores {
        let calibration = (kind == Kind::Svm).then(|| {
            let margins: Vec<f32> = split.val.iter().flat_map(|s| s.scores.clone()).collect();
            let labels: Vec<usize> = split.val.iter().map(|s| s.label).collect();
            Calibration::fit(&margins, &labels, classes)
        });
        let scores = |images: &[Scored]| Scores {
            images: images.iter().map(|s| (s.path.clone(), s.label)).collect(),
            p: images
                .iter()
                .map(|s| match &calibration {
                    Some(t) => t.probabilities(&s.scores),
                    None => s.scores.clone(),
                })
                .collect(),
        };
        LinearScores {
            c: split.c,
            val: scores(&split.val),
            test: scores(&split.test),
        }
    }
}

/// Trains `linear` on `reprs` of `cache` as `tlearn train` does (no model for `predict` is
/// fitted) and gives each split's probabilities, in the order of `linear.splits`.
pub fn linear_scores(
    cache: &Path,
    reprs: &[Repr],
    linear: &TrainConfig,
) -> Result<Vec<LinearScores>, FinetuneError> {
    let data = CacheData::load(cache)?.using(reprs)?;
    let cfg = TrainConfig {
        refit_on_all_labelled: false,
        ..linear.clone()
    };
    let (outcome, _) = train::run(&data, &cfg, &mut |_: String| {})?;
    let classes = data.class_names.len();
    Ok(outcome
        .splits
        .iter()
        .map(|s| LinearScores::from_split(cfg.kind, classes, s))
        .collect())
}

/// The ensemble of one split: the weight chosen on validation, and each model's and the
/// blend's validation and test accuracy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitEnsemble {
    /// Split index.
    pub split: usize,
    /// The linear model's C, chosen on validation.
    pub linear_c: f64,
    /// The fine-tuned model's weight, chosen on validation.
    pub weight: Weight,
    /// Validation accuracy: fine-tuned, linear, blend.
    pub val_accuracy: [f64; 3],
    /// Test accuracy: fine-tuned, linear, blend.
    pub test_accuracy: [f64; 3],
}

/// The fine-tuned run's validation and test scores of a split (its `summary.json`).
pub fn finetuned_scores(summary: &Summary) -> Result<(Scores, Scores), FinetuneError> {
    if summary.val_probabilities.is_empty() {
        return Err(FinetuneError::Data(format!(
            "split {}'s summary holds no validation probabilities (written by an earlier version): run `tlearn finetune train` again into a new run",
            summary.split
        )));
    }
    let val = Scores {
        images: summary.val_images.clone(),
        p: summary.val_probabilities.clone(),
    };
    let test = Scores {
        images: summary.test_images.clone(),
        p: summary.test_probabilities.clone(),
    };
    Ok((val, test))
}

/// Blends a split's fine-tuned and linear scores with the weight validation chooses.
pub fn ensemble_split(
    summary: &Summary,
    linear: &LinearScores,
) -> Result<SplitEnsemble, FinetuneError> {
    let (val, test) = finetuned_scores(summary)?;
    let linear_val = linear.val.ordered_as(&val.images)?;
    let linear_test = linear.test.ordered_as(&test.images)?;
    let weight = choose_weight(&val, &linear_val)?;
    let blended = test.blend(&linear_test, weight.weight)?;
    Ok(SplitEnsemble {
        split: summary.split,
        linear_c: linear.c,
        weight,
        val_accuracy: [val.accuracy(), linear_val.accuracy(), weight.val_accuracy],
        test_accuracy: [test.accuracy(), linear_test.accuracy(), blended.accuracy()],
    })
}

/// An ensemble over several splits, as `tlearn finetune ensemble` writes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnsembleReport {
    /// The fine-tuned run's folder.
    pub run: String,
    /// The linear model: kind, cache and representations.
    pub linear: String,
    /// How the linear model trained and scored.
    pub linear_config: TrainConfig,
    /// Each split.
    pub splits: Vec<SplitEnsemble>,
    /// Test accuracy over the splits, mean and sample standard deviation: fine-tuned, linear,
    /// blend.
    pub test_mean_std: [(f64, f64); 3],
    /// Validation accuracy over the splits, mean and standard deviation: fine-tuned, linear,
    /// blend.
    pub val_mean_std: [(f64, f64); 3],
}

/// What to ensemble: the fine-tuned run's folder (its `split-K/summary.json`) and the linear
/// model to train on the same splits.
#[derive(Debug, Clone)]
pub struct EnsembleConfig {
    /// The fine-tuned run's folder.
    pub run: std::path::PathBuf,
    /// The cache the linear model trains on (the same images and splits as the run's).
    pub cache: std::path::PathBuf,
    /// Its representations.
    pub reprs: Vec<Repr>,
    /// The linear classifier and how it trains and scores, as `tlearn train` would (its C
    /// grid, copies, TTA, normalisation, refit on training + validation images).
    pub linear: TrainConfig,
    /// The splits (empty: all of the cache's).
    pub splits: Vec<usize>,
}

/// Ensembles each split of `cfg` (see [`ensemble_split`]) and summarises them.
pub fn ensemble(cfg: &EnsembleConfig) -> Result<EnsembleReport, FinetuneError> {
    // Every summary is read before the linear model trains: a missing split fails at once.
    let splits = super::run::splits_to_run(&cfg.cache, &cfg.splits)?;
    let summaries = splits
        .iter()
        .map(|&split| read_summary(&cfg.run, split))
        .collect::<Result<Vec<_>, _>>()?;
    let linear = TrainConfig {
        splits,
        ..cfg.linear.clone()
    };
    let scores = linear_scores(&cfg.cache, &cfg.reprs, &linear)?;
    let splits = summaries
        .iter()
        .zip(&scores)
        .map(|(summary, linear)| ensemble_split(summary, linear))
        .collect::<Result<Vec<_>, _>>()?;
    let stats = |pick: &dyn Fn(&SplitEnsemble) -> [f64; 3]| {
        [0, 1, 2].map(|k| mean_std(&splits.iter().map(|s| pick(s)[k]).collect::<Vec<_>>()))
    };
    let reprs: Vec<String> = cfg.reprs.iter().map(Repr::to_string).collect();
    Ok(EnsembleReport {
        run: cfg.run.display().to_string(),
        linear: format!(
            "{} on {} ({})",
            linear.kind.name(),
            cfg.cache.display(),
            reprs.join(",")
        ),
        linear_config: linear,
        test_mean_std: stats(&|s| s.test_accuracy),
        val_mean_std: stats(&|s| s.val_accuracy),
        splits,
    })
}

/// Split `split`'s summary of the fine-tuned run in `run`.
fn read_summary(run: &Path, split: usize) -> Result<Summary, FinetuneError> {
    let path = run.join(format!("split-{split}")).join("summary.json");
    let text = std::fs::read_to_string(&path).map_err(|source| FinetuneError::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| {
        FinetuneError::Data(format!(
            "{}: not a fine-tuning summary: {e}",
            path.display()
        ))
    })
}
