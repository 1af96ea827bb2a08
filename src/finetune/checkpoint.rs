//! Checkpoints: parameters, momenta and the run's history in one file, written atomically.
//!
//! The file is an ONNX model holding only initializers (so `tlearn model inspect` and ONNX
//! viewers open it) with the JSON [`Meta`] in its metadata. [`Model::save`] writes a temporary
//! file and renames it, so a crash leaves the previous checkpoint or the new one, never half.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::store::{momentum_name, ParamSpec, ParamStore, ParamTensor, StoreError};
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
    /// Factor on the learning rates at the epoch's last step (warm-up and schedule; 1 without).
    #[serde(default = "one")]
    pub lr_scale: f64,
}

/// The learning-rate factor of epochs recorded before schedules existed.
fn one() -> f64 {
    1.0
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

/// Parameters and (for resumable checkpoints) momenta, by parameter name.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensors {
    /// Parameter values.
    pub params: ParamStore,
    /// Momentum values, by the name of their parameter; empty in a parameters-only file.
    pub momenta: ParamStore,
}

impl Tensors {
    /// `params` with zero momenta: the start of a run.
    pub fn fresh(params: ParamStore) -> Tensors {
        Tensors {
            momenta: params.zeros_like(),
            params,
        }
    }
}

/// Writes `meta` and `tensors` to `path` atomically: each parameter `P` under its name, its
/// momentum as `P.momentum`, each with its shape.
pub fn save(path: &Path, meta: &Meta, tensors: &Tensors) -> Result<(), FinetuneError> {
    let mut b = GraphBuilder::new("tlearn_finetune_checkpoint");
    let dims = |t: &ParamTensor| t.dims.iter().map(|&d| d as i64).collect::<Vec<_>>();
    for (name, t) in tensors.params.iter() {
        b.initializer_f32(name, &t.values, &dims(t));
        if let Some(m) = tensors.momenta.get(name) {
            b.initializer_f32(&momentum_name(name), &m.values, &dims(m));
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

/// Reads the tensors of `specs` from a checkpoint written by [`save`] (this version's or an
/// earlier one's: the layout has not changed), each checked to have its spec's shape;
/// `momenta` asks for the momenta too.
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
    let other_network = |e: StoreError| {
        bad(format!(
            "{e}: it was made for another network; use another run name, or move that folder away to start afresh"
        ))
    };
    let mut tensors = Tensors {
        params: ParamStore::new(),
        momenta: ParamStore::new(),
    };
    for p in specs {
        let mut names = vec![(p.name.clone(), &mut tensors.params)];
        if momenta {
            names.push((p.momentum(), &mut tensors.momenta));
        }
        for (name, store) in names {
            let (dims, values) = model
                .initializer_f32_shaped(&name)
                .map_err(|e| bad(e.to_string()))?;
            store.insert(&p.name, dims, values).map_err(other_network)?;
            store.values(p).map_err(other_network)?;
        }
    }
    Ok((meta, tensors))
}
