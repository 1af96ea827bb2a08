//! Checkpoints: parameters, momenta and the run's history in one file, written atomically.
//!
//! The file is an ONNX model holding only initializers (so `tlearn model inspect` and ONNX
//! viewers open it) with the JSON [`Meta`] in its metadata. [`Model::save`] writes a temporary
//! file and renames it, so a crash leaves the previous checkpoint or the new one, never half.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::graph::ParamSpec;
use super::FinetuneError;
use crate::onnx::proto::StringStringEntryProto;
use crate::onnx::{GraphBuilder, Model};

/// Metadata key of the JSON [`Meta`].
const META_KEY: &str = "tlearn.finetune.checkpoint";

/// One epoch's measurements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps (with dropout).
    pub train_loss: f64,
    /// Training accuracy over the epoch (with dropout).
    pub train_accuracy: f64,
    /// Validation loss after the epoch.
    pub val_loss: f64,
    /// Validation accuracy after the epoch.
    pub val_accuracy: f64,
    /// Wall-clock seconds of the epoch's training steps.
    pub train_seconds: f64,
    /// Wall-clock seconds of the validation pass.
    pub val_seconds: f64,
}

/// Everything but the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// Epochs completed.
    pub epoch: usize,
    /// The settings, network and data the run was started with (JSON); resuming needs equal.
    pub fingerprint: String,
    /// Every completed epoch.
    pub history: Vec<EpochStats>,
    /// Epoch with the lowest validation loss so far (0: none).
    pub best_epoch: usize,
}

/// Parameters and (for resumable checkpoints) momenta, in [`ParamSpec`] order.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensors {
    /// Parameter values.
    pub params: Vec<Vec<f32>>,
    /// Momentum values; empty in a parameters-only file.
    pub momenta: Vec<Vec<f32>>,
}

/// Writes `meta` and `tensors` to `path` atomically.
pub fn save(
    path: &Path,
    specs: &[ParamSpec],
    meta: &Meta,
    tensors: &Tensors,
) -> Result<(), FinetuneError> {
    let mut b = GraphBuilder::new("tlearn_finetune_checkpoint");
    let dims = |p: &ParamSpec| p.dims.iter().map(|&d| d as i64).collect::<Vec<_>>();
    for (i, p) in specs.iter().enumerate() {
        b.initializer_f32(&p.name, &tensors.params[i], &dims(p));
        if let Some(m) = tensors.momenta.get(i) {
            b.initializer_f32(&p.momentum(), m, &dims(p));
        }
    }
    let mut model = b.build(super::grad::OPSET)?;
    model
        .proto_mut()
        .metadata_props
        .push(StringStringEntryProto {
            key: Some(META_KEY.into()),
            value: Some(serde_json::to_string(meta).expect("meta serialises")),
        });
    model.save(path)?;
    Ok(())
}

/// Reads a checkpoint written by [`save`]; `momenta` asks for the momenta too.
pub fn load(
    path: &Path,
    specs: &[ParamSpec],
    momenta: bool,
) -> Result<(Meta, Tensors), FinetuneError> {
    let bad = |reason: String| FinetuneError::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    let model = Model::load(path)?;
    let meta = model
        .proto()
        .metadata_props
        .iter()
        .find(|e| e.key() == META_KEY)
        .ok_or_else(|| bad("not a tlearn fine-tuning checkpoint (no metadata)".into()))?;
    let meta: Meta = serde_json::from_str(meta.value()).map_err(|e| bad(e.to_string()))?;
    let read = |name: &str, len: usize| -> Result<Vec<f32>, FinetuneError> {
        let values = model
            .initializer_f32(name)
            .map_err(|e| bad(e.to_string()))?;
        if values.len() != len {
            return Err(bad(format!(
                "'{name}' holds {} values, the network needs {len}",
                values.len()
            )));
        }
        Ok(values)
    };
    let mut tensors = Tensors {
        params: Vec::new(),
        momenta: Vec::new(),
    };
    for p in specs {
        tensors.params.push(read(&p.name, p.len())?);
        if momenta {
            tensors.momenta.push(read(&p.momentum(), p.len())?);
        }
    }
    Ok((meta, tensors))
}
