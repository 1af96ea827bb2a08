//! Prediction on new images: the backbone, layers, pooling and preprocessing that made the
//! model's training features, then the model (a linear classifier); or a whole fine-tuned
//! network that ends in class probabilities. Glue between `backbone` and `classify`, which
//! know nothing of each other.

use std::path::{Path, PathBuf};

use crate::backbone::{Backbone, BackboneError, Descriptor, ExecutionProvider};
use crate::classify::data::to_linfa;
use crate::classify::{ClassifyError, TrainedModel};
use crate::preprocess::{load_rgb, DecodeLimits};

/// Images per backbone run.
const BATCH: usize = 8;

/// Errors of prediction.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// The backbone could not be opened or run.
    #[error(transparent)]
    Backbone(#[from] BackboneError),
    /// The model cannot be loaded or does not match the backbone.
    #[error(transparent)]
    Classify(#[from] ClassifyError),
}

/// The best classes of an image with their scores, best first; or why it could not be read.
pub type Ranked = Result<Vec<(String, f32)>, String>;

/// The prediction for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The image.
    pub image: PathBuf,
    /// The best classes with their scores, best first; or why the image could not be read.
    pub top: Ranked,
}

/// What turns a batch of prepared images into class scores.
pub enum Predictor {
    /// A linear classifier on the features of its backbone.
    Linear {
        /// The classifier (boxed: it is large beside the other variant).
        model: Box<TrainedModel>,
        /// The backbone its features came from.
        net: Backbone,
    },
    /// A network from image to class probabilities (an exported fine-tuned model).
    Network {
        /// The network.
        net: Backbone,
        /// Class names, index = output column.
        class_names: Vec<String>,
    },
}

impl Predictor {
    /// A linear model with the backbone it needs (see [`open_backbone`]).
    pub fn linear(
        model: TrainedModel,
        backbone: &Path,
        ep: ExecutionProvider,
        threads: usize,
    ) -> Result<Predictor, PredictError> {
        let net = open_backbone(&model, backbone, ep, threads)?;
        Ok(Predictor::Linear {
            model: Box::new(model),
            net,
        })
    }

    /// A network whose descriptor names its class names and its one output layer.
    pub fn network(
        model: &Path,
        ep: ExecutionProvider,
        threads: usize,
    ) -> Result<Predictor, PredictError> {
        let d = Descriptor::for_model(model)?;
        let (Some(class_names), Some(layer)) = (d.classes.clone(), d.layers.first()) else {
            return Err(ClassifyError::Incompatible(format!(
                "the descriptor of {} names no classes and output layer: it is a backbone, not a classifier; give a trained model (model.json or an exported model.onnx)",
                model.display()
            ))
            .into());
        };
        let net = Backbone::open(model, std::slice::from_ref(layer), ep, threads)?;
        Ok(Predictor::Network { net, class_names })
    }

    /// Whether the scores are probabilities (else SVM decision values).
    pub fn probabilistic(&self) -> bool {
        match self {
            Predictor::Linear { model, .. } => model.classifier.kind.probabilistic(),
            Predictor::Network { .. } => true,
        }
    }

    fn net(&mut self) -> &mut Backbone {
        match self {
            Predictor::Linear { net, .. } | Predictor::Network { net, .. } => net,
        }
    }

    fn class_names(&self) -> &[String] {
        match self {
            Predictor::Linear { model, .. } => &model.class_names,
            Predictor::Network { class_names, .. } => class_names,
        }
    }

    /// Scores (`n` x classes, row-major) of `n` prepared images.
    fn scores(&mut self, tensor: &[f32], n: usize) -> Result<Vec<f32>, PredictError> {
        Ok(match self {
            Predictor::Linear { model, net } => {
                let reprs = model.identity.representations();
                let features = net.representations(tensor, n, &reprs)?;
                let scores = model.classifier.scores(to_linfa(features).view());
                scores.iter().copied().collect()
            }
            Predictor::Network { net, .. } => net.rows(tensor, n)?.iter().copied().collect(),
        })
    }
}

/// Opens the backbone the model needs; refuses one whose model, preprocessing or feature
/// length differ from those of the model's training features.
pub fn open_backbone(
    model: &TrainedModel,
    backbone: &Path,
    ep: ExecutionProvider,
    threads: usize,
) -> Result<Backbone, PredictError> {
    // Compare identities before opening: a model of other features may name layers this
    // backbone does not have, and "other features" is the error that says what to do.
    let d = Descriptor::for_model(backbone)?;
    let id = &model.identity;
    let mut diffs = Vec::new();
    if d.sha256 != id.model_sha256 {
        diffs.push(format!(
            "backbone {} has sha256 {}, the model's features came from {} (sha256 {})",
            backbone.display(),
            d.sha256,
            id.model_name,
            id.model_sha256
        ));
    }
    if d.preprocessing != id.preprocessing {
        diffs.push("the backbone's descriptor has another preprocessing".into());
    }
    if !diffs.is_empty() {
        return Err(ClassifyError::Incompatible(diffs.join("; ")).into());
    }
    let mut net = Backbone::open(backbone, &id.layers, ep, threads)?;
    let dims: usize = net.repr_dims(&id.representations())?.iter().sum();
    if dims != id.dims {
        return Err(ClassifyError::Incompatible(format!(
            "{dims} features per image, the model wants {}",
            id.dims
        ))
        .into());
    }
    Ok(net)
}

/// Predicts the `top` best classes of each image (unreadable images get an error of their own).
pub fn predict_images(
    predictor: &mut Predictor,
    images: &[PathBuf],
    top: usize,
) -> Result<Vec<Prediction>, PredictError> {
    let prep = predictor.net().descriptor.preprocessing.clone();
    let chw = prep.chw_len();
    let k = predictor.class_names().len();
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(BATCH) {
        let mut tensor = Vec::with_capacity(chunk.len() * chw);
        let mut loaded = Vec::new();
        let mut results: Vec<Option<Ranked>> = Vec::new();
        for path in chunk {
            match load_rgb(path, &DecodeLimits::default()) {
                Ok(img) => {
                    let resized = prep.resize(&img);
                    let start = tensor.len();
                    tensor.resize(start + chw, 0.0);
                    prep.write_chw(&resized, &mut tensor[start..]);
                    loaded.push(results.len());
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e.to_string()))),
            }
        }
        if !loaded.is_empty() {
            let scores = predictor.scores(&tensor, loaded.len())?;
            for (&slot, row) in loaded.iter().zip(scores.chunks(k)) {
                let mut ranked: Vec<(usize, f32)> = row.iter().copied().enumerate().collect();
                // Stable: equal scores keep class order, as argmax does.
                ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
                let named = ranked
                    .into_iter()
                    .take(top.max(1))
                    .map(|(c, s)| (predictor.class_names()[c].clone(), s))
                    .collect();
                results[slot] = Some(Ok(named));
            }
        }
        for (path, result) in chunk.iter().zip(results) {
            out.push(Prediction {
                image: path.clone(),
                top: result.expect("every image has a result"),
            });
        }
    }
    Ok(out)
}
