//! Prediction on new images: the backbone, layers, pooling and preprocessing that made the
//! model's training features, then the model. Glue between `backbone` and `classify`, which
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
    let probe = vec![0f32; net.descriptor.preprocessing.chw_len()];
    let dims = net.features(&probe, 1, id.pooling)?.ncols();
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
    model: &TrainedModel,
    net: &mut Backbone,
    images: &[PathBuf],
    top: usize,
) -> Result<Vec<Prediction>, PredictError> {
    let prep = net.descriptor.preprocessing.clone();
    let chw = prep.chw_len();
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
            let features = net.features(&tensor, loaded.len(), model.identity.pooling)?;
            let scores = model.classifier.scores(to_linfa(features).view());
            for (&slot, row) in loaded.iter().zip(scores.rows()) {
                let mut ranked: Vec<(usize, f32)> = row.iter().copied().enumerate().collect();
                // Stable: equal scores keep class order, as argmax does.
                ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
                let named = ranked
                    .into_iter()
                    .take(top.max(1))
                    .map(|(c, s)| (model.class_names[c].clone(), s))
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
