//! The descriptor: what tlearn must know about a backbone model, a TOML file beside it, and the
//! model's checksum.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::BackboneError;
use crate::preprocess::Preprocessing;

/// Where the ConvNet came from, so `make models` can rebuild and check it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// File name of the pinned Python wheel holding the original model.
    pub wheel: String,
    /// sha256 of that wheel.
    pub wheel_sha256: String,
    /// Path of the original ONNX model inside the wheel.
    pub member: String,
    /// `tensor=name` pairs given to `tlearn model cut`.
    pub cut: Vec<String>,
}

/// What tlearn must know about a backbone model; stored as `<model>.toml` beside `<model>.onnx`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Descriptor {
    /// Short name, e.g. `vgg16`.
    pub name: String,
    /// sha256 of the ONNX file; checked before every use.
    pub sha256: String,
    /// Name of the image input (NCHW, f32).
    pub input: String,
    /// Outputs that can be used as feature layers, shallow to deep.
    pub layers: Vec<String>,
    /// How images must be prepared for this model.
    pub preprocessing: Preprocessing,
    /// Provenance, when the model is built by `make models`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// Class names, for a model that ends in class probabilities (a fine-tuned network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
    /// Number format of the model's weights and activations (fp32 unless written).
    #[serde(default, skip_serializing_if = "Precision::is_fp32")]
    pub precision: Precision,
    /// How an int8 model was made from its fp32 original (`tlearn model quantize`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
}

/// Number format of a backbone: features of different precisions are never mixed in a cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats throughout (every exported model).
    #[default]
    Fp32,
    /// int8 weights and uint8 activations around each convolution (QDQ), run by ONNX Runtime's
    /// int8 kernels.
    Int8,
}

impl Precision {
    /// Whether this is the default, fp32 (left out of descriptors and identities).
    pub fn is_fp32(&self) -> bool {
        *self == Precision::Fp32
    }

    /// The name written in descriptors and cache identities.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Int8 => "int8",
        }
    }
}

/// Where an int8 backbone came from and what it was calibrated on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// File name of the fp32 model it was quantised from.
    pub source_model: String,
    /// sha256 of that fp32 model.
    pub source_sha256: String,
    /// The calibration images' folder, as given.
    pub data: String,
    /// Calibration images that were used.
    pub images: usize,
    /// How activation ranges were chosen (`minmax`, or `percentile 99.999`).
    pub method: String,
    /// Quantised convolutions.
    pub convolutions: usize,
    /// Activations given a uint8 scale and zero point.
    pub activations: usize,
    /// tlearn version that quantised it.
    pub tlearn_version: String,
}

impl Descriptor {
    /// The descriptor path for a model: same path with the extension `.toml`.
    pub fn path_for(model: &Path) -> PathBuf {
        model.with_extension("toml")
    }

    /// Reads the descriptor that sits next to `model`.
    pub fn for_model(model: &Path) -> Result<Descriptor, BackboneError> {
        let path = Self::path_for(model);
        let text = crate::input::read_regular_to_string(&path).map_err(|e| {
            BackboneError::Descriptor {
            path: path.clone(),
            message:
                "cannot read it (every model needs a descriptor next to it, see models/vgg16.toml)"
                    .into(),
            source: Some(e.into()),
        }
        })?;
        let descriptor: Descriptor =
            toml::from_str(&text).map_err(|e| descriptor_error(&path, e))?;
        descriptor
            .preprocessing
            .validate()
            .map_err(|e| descriptor_error(&path, e))?;
        Ok(descriptor)
    }

    /// Checks that `model` has the sha256 this descriptor records.
    pub fn verify(&self, model: &Path) -> Result<(), BackboneError> {
        let actual = sha256_file(model)?;
        if actual != self.sha256 {
            return Err(BackboneError::Checksum {
                path: model.to_path_buf(),
                expected: self.sha256.clone(),
                actual,
            });
        }
        Ok(())
    }

    /// Writes this descriptor next to `model`.
    pub fn save_beside(&self, model: &Path) -> Result<(), BackboneError> {
        let path = Self::path_for(model);
        let text = toml::to_string(self).map_err(|e| descriptor_error(&path, e))?;
        let target = crate::output::Target::new(&path).kind(DESCRIPTOR_KIND);
        Ok(target.write(text.as_bytes())?)
    }
}

/// What a descriptor is, in the record of tlearn's outputs beside it.
pub const DESCRIPTOR_KIND: &str = "backbone descriptor";

/// The descriptor at `path` could not be parsed, checked or written because of `source`.
fn descriptor_error(path: &Path, source: impl Into<crate::output::Cause>) -> BackboneError {
    BackboneError::Descriptor {
        path: path.to_path_buf(),
        message: String::new(),
        source: Some(source.into()),
    }
}

/// sha256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String, BackboneError> {
    let io = |source| BackboneError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = crate::input::open_regular(path).map_err(io)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(io)?;
    Ok(format!("{:x}", hasher.finalize()))
}
