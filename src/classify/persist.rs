//! Saving and loading trained models: one JSON file with the classes, scaler, weights and the
//! identity of the features they were trained on.

use std::path::Path;

use ndarray16::{Array1, Array2};
use serde::{Deserialize, Serialize};

use super::{Calibration, ClassifyError, Convergence, Kind, LinearClassifier, Normalize, Scaler};
use crate::cache::{Identity, IdentityCheck};

/// The `format` field of every model file.
pub const MODEL_FORMAT: &str = "tlearn-linear-model";

/// What a model.json is, in the record of tlearn's outputs beside it.
pub const MODEL_KIND: &str = "classifier model";

/// Version of the model file layout; bump when it changes incompatibly.
pub const MODEL_VERSION: u32 = 1;

/// Which fit a saved model is (recorded in model.json as `fit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelFit {
    /// Refit after the evaluation on every labelled row of the cache (`tlearn train`'s default).
    AllLabelled {
        /// Labelled images (originals) it was fitted on.
        images: usize,
        /// Rows it was fitted on (the images and, if used, their augmented copies).
        rows: usize,
    },
    /// The model of one split of the evaluation (no refit after it).
    Split {
        /// The split.
        split: usize,
        /// Rows it was fitted on (training rows; with validation rows when refit with them,
        /// `TrainConfig::refit_with_validation`).
        rows: usize,
    },
}

/// A classifier together with what it needs to be used on new features.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainedModel {
    /// The fitted classifier.
    pub classifier: LinearClassifier,
    /// Class names, index = class.
    pub class_names: Vec<String>,
    /// Identity of the cache whose features it was trained on.
    pub identity: Identity,
    /// The regularisation chosen on the validation split.
    pub c: f64,
    /// Which cache and rows it was trained on (free text, for people).
    pub trained_on: String,
    /// Which fit it is; `None` in models saved before it was recorded (the first split's).
    pub fit: Option<ModelFit>,
    /// SVM only: the temperature, fitted on validation margins, that turns margins into
    /// probabilities (absent in models saved before it existed: margins only; the per-class
    /// Platt sigmoids of older models are not used, since they could contradict the margins).
    pub calibration: Option<Calibration>,
    /// The absolute path of the backbone the features were made with, as the cache recorded
    /// it (its sha256 is `identity.model_sha256`); `predict` opens it from any folder.
    pub backbone: Option<std::path::PathBuf>,
    /// Test-time augmentation: its scores were chosen and tested averaged over each image's
    /// augmented copies (the identity's recipe and copies), so `predict` averages them too.
    pub tta: bool,
    /// The normalisation of the features' representation blocks before standardisation
    /// (none in models saved before it existed).
    pub normalize: Normalize,
    /// Of the identity's augmented copies of each image, the first this many were used (for
    /// training and as TTA views, so `predict` averages as many); `None`: all of them.
    pub copies_used: Option<u32>,
}

/// The file layout (flat vectors: small and fast to parse).
#[derive(Serialize, Deserialize)]
struct ModelFile {
    format: String,
    version: u32,
    tlearn_version: String,
    kind: Kind,
    c: f64,
    trained_on: String,
    class_names: Vec<String>,
    identity: Identity,
    dims: usize,
    mean: Vec<f32>,
    scale: Vec<f32>,
    /// Classes x dims, row-major.
    weights: Vec<f32>,
    bias: Vec<f32>,
    /// The temperature of the margins' softmax (SVM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    calibration: Option<Calibration>,
    /// Absolute path of the backbone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backbone: Option<std::path::PathBuf>,
    /// Which fit it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fit: Option<ModelFit>,
    /// The sha256 of the feature identity and the class names ([`identity_digest`]): a file
    /// edited to name other features or classes no longer matches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identity_sha256: Option<String>,
    /// Logistic models: iterations, final gradient norm and whether the solver converged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    convergence: Option<Convergence>,
    /// Test-time augmentation (absent, and not written, when off).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    tta: bool,
    /// Normalisation before standardisation; absent (none) in older files and for none.
    #[serde(default, skip_serializing_if = "Normalize::is_none")]
    normalize: Normalize,
    /// The first copies used of each image; absent (all) in older files and for all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    copies_used: Option<u32>,
}

/// The sha256 of what a model's features are (backbone, layers, pooling, preprocessing...)
/// and of its classes, as saved.
fn identity_digest(identity: &Identity, class_names: &[String]) -> String {
    use sha2::Digest;
    let text = serde_json::to_string(&(identity, class_names)).expect("identity serialises");
    format!("{:x}", sha2::Sha256::digest(text.as_bytes()))
}

/// What is wrong with a model file's identity, if anything: duplicate class names, or an
/// identity or classes that differ from those its digest was made of (edited by hand).
fn identity_problem(file: &ModelFile) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    if let Some(name) = file.class_names.iter().find(|n| !seen.insert(n.as_str())) {
        return Some(format!(
            "class {name:?} appears twice: class names must differ"
        ));
    }
    match &file.identity_sha256 {
        Some(sha) if *sha != identity_digest(&file.identity, &file.class_names) => Some(
            "its feature identity or classes differ from what it was trained on (the file was edited; its recorded digest no longer matches): train it again".into(),
        ),
        _ => None,
    }
}

/// What is wrong with a model file's numbers, if anything: NaN or infinite values, or a
/// scale that is not positive (standardising would divide by it).
fn value_problem(file: &ModelFile) -> Option<String> {
    let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
    if !(finite(&file.mean) && finite(&file.weights) && finite(&file.bias)) {
        return Some("it holds NaN or infinite values".into());
    }
    if !file.scale.iter().all(|s| s.is_finite() && *s > 0.0) {
        return Some("its scale is not a positive finite number everywhere".into());
    }
    if !file.c.is_finite() || file.c <= 0.0 {
        return Some(format!("its C ({}) is not a positive number", file.c));
    }
    if file.calibration.is_some_and(|c| !c.is_valid()) {
        return Some("its calibration temperature is not a positive finite number".into());
    }
    None
}

impl TrainedModel {
    /// Writes the model to `path` atomically (a failure leaves any old file intact).
    pub fn save(&self, path: &Path) -> Result<(), ClassifyError> {
        let c = &self.classifier;
        let file = ModelFile {
            format: MODEL_FORMAT.into(),
            version: MODEL_VERSION,
            tlearn_version: env!("CARGO_PKG_VERSION").into(),
            kind: c.kind,
            c: self.c,
            trained_on: self.trained_on.clone(),
            class_names: self.class_names.clone(),
            identity: self.identity.clone(),
            dims: c.dims(),
            mean: c.scaler.mean.clone(),
            scale: c.scaler.scale.clone(),
            weights: c.weights.iter().copied().collect(),
            bias: c.bias.to_vec(),
            calibration: self.calibration,
            backbone: self.backbone.clone(),
            fit: self.fit.clone(),
            identity_sha256: Some(identity_digest(&self.identity, &self.class_names)),
            convergence: c.convergence,
            tta: self.tta,
            normalize: self.normalize,
            copies_used: self.copies_used,
        };
        let text = serde_json::to_string(&file).expect("model serialises");
        let target = crate::output::Target::new(path).kind(MODEL_KIND);
        Ok(target.write(text.as_bytes())?)
    }

    /// Reads a model written by [`Self::save`]; refuses other files and other layout versions.
    pub fn load(path: &Path) -> Result<TrainedModel, ClassifyError> {
        let because = |reason: &str, source: crate::output::Cause| ClassifyError::ModelFile {
            path: path.to_path_buf(),
            reason: reason.into(),
            source: Some(source),
        };
        let bad = |reason: String| ClassifyError::ModelFile {
            path: path.to_path_buf(),
            reason,
            source: None,
        };
        let text = crate::input::read_regular_to_string(path).map_err(|e| because("", e.into()))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| because("not complete JSON", e.into()))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(MODEL_FORMAT) {
            return Err(bad("no tlearn model format marker".into()));
        }
        let version = value.get("version").and_then(|v| v.as_u64());
        if version != Some(MODEL_VERSION as u64) {
            return Err(bad(format!(
                "model layout version {}, this tlearn reads {MODEL_VERSION}",
                version.map_or("unknown".into(), |v| v.to_string())
            )));
        }
        let file: ModelFile = serde_json::from_value(value).map_err(|e| because("", e.into()))?;
        let classes = file.class_names.len();
        let consistent = classes >= 2
            && file.mean.len() == file.dims
            && file.scale.len() == file.dims
            && file.bias.len() == classes
            && file.weights.len() == classes * file.dims
            && file.identity.dims == file.dims;
        if !consistent {
            return Err(bad("its sizes do not agree with each other".into()));
        }
        if let Some(problem) = value_problem(&file).or_else(|| identity_problem(&file)) {
            return Err(bad(problem));
        }
        Ok(TrainedModel {
            classifier: LinearClassifier {
                kind: file.kind,
                scaler: Scaler {
                    mean: file.mean,
                    scale: file.scale,
                },
                weights: Array2::from_shape_vec((classes, file.dims), file.weights)
                    .expect("checked sizes"),
                bias: Array1::from(file.bias),
                convergence: file.convergence,
            },
            class_names: file.class_names,
            identity: file.identity,
            c: file.c,
            trained_on: file.trained_on,
            calibration: file.calibration,
            backbone: file.backbone,
            fit: file.fit,
            tta: file.tta,
            normalize: file.normalize,
            copies_used: file.copies_used,
        })
    }

    /// The classifier's scores of feature rows as extracted: each representation block
    /// normalised as in training, then standardised and scored.
    pub fn scores(&self, mut features: Array2<f32>) -> Array2<f32> {
        self.normalize
            .apply(features.view_mut(), &Normalize::blocks(&self.identity));
        self.classifier.scores(features.view())
    }

    /// The probabilities of one row of [`LinearClassifier::scores`]: the scores themselves for
    /// the logistic models, the calibrated margins for an SVM; `None` for an SVM saved without
    /// a calibration (margins only).
    pub fn probabilities(&self, scores: &[f32]) -> Option<Vec<f32>> {
        match self.classifier.kind {
            Kind::Svm => self.calibration.as_ref().map(|c| c.probabilities(scores)),
            Kind::Logistic | Kind::LogisticOvr => Some(scores.to_vec()),
        }
    }

    /// Refuses features made by another backbone, layers, pooling or preprocessing.
    pub fn check_features(&self, features: &Identity) -> Result<(), ClassifyError> {
        IdentityCheck::new("cache", "model")
            .features(features, &self.identity)
            .result()
            .map_err(ClassifyError::Incompatible)
    }
}
