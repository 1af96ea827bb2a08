//! The [`Model`] wrapper: loading, saving and looking around a `ModelProto`.

use std::collections::HashSet;
use std::path::Path;

use prost::Message;

use super::proto::{GraphProto, ModelProto, TensorProto};
use super::tensor::{tensor_f32, tensor_f32_data};
use super::OnnxError;

/// An ONNX model that is known to have a graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    proto: ModelProto,
}

/// What an ONNX model is, in the record of tlearn's outputs beside it.
pub const ONNX_KIND: &str = "ONNX model";

impl Model {
    /// Reads and decodes an `.onnx` file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, OnnxError> {
        let path = path.as_ref();
        let bytes = crate::input::read_regular(path).map_err(|source| OnnxError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::decode(&bytes, &format!("ONNX file {}", path.display()))
    }

    /// Decodes a serialized `ModelProto`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OnnxError> {
        Self::decode(bytes, "in-memory bytes")
    }

    fn decode(bytes: &[u8], origin: &str) -> Result<Self, OnnxError> {
        let proto = ModelProto::decode(bytes).map_err(|source| OnnxError::Decode {
            origin: origin.to_string(),
            source,
        })?;
        Self::with_origin(proto, origin)
    }

    /// Wraps a `ModelProto`, refusing one without a graph.
    pub fn from_proto(proto: ModelProto) -> Result<Self, OnnxError> {
        Self::with_origin(proto, "the model")
    }

    fn with_origin(proto: ModelProto, origin: &str) -> Result<Self, OnnxError> {
        if proto.graph.is_none() {
            return Err(OnnxError::NoGraph {
                origin: origin.to_string(),
            });
        }
        Ok(Self { proto })
    }

    /// Serializes the model to protobuf bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.proto.encode_to_vec()
    }

    /// Writes the model to `path` atomically: a crash leaves either the old file or the new one.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), OnnxError> {
        let target = crate::output::Target::new(path.as_ref()).kind(ONNX_KIND);
        Ok(target.write(&self.to_bytes())?)
    }

    /// The underlying protobuf.
    pub fn proto(&self) -> &ModelProto {
        &self.proto
    }

    /// The underlying protobuf, for edits this module has no helper for; keep the graph set.
    pub fn proto_mut(&mut self) -> &mut ModelProto {
        &mut self.proto
    }

    /// The main graph.
    pub fn graph(&self) -> &GraphProto {
        self.proto
            .graph
            .as_ref()
            .expect("Model invariant: the graph is always set")
    }

    /// The main graph, mutably.
    pub fn graph_mut(&mut self) -> &mut GraphProto {
        self.proto
            .graph
            .as_mut()
            .expect("Model invariant: the graph is always set")
    }

    /// Opset version imported for `domain` ("" is the default ONNX domain).
    pub fn opset_version(&self, domain: &str) -> Option<i64> {
        self.proto
            .opset_import
            .iter()
            .find(|o| o.domain() == domain)
            .map(|o| o.version())
    }

    /// Names of the inputs a caller must feed (graph inputs that are not initializers).
    pub fn input_names(&self) -> Vec<&str> {
        let g = self.graph();
        let inits: HashSet<&str> = g.initializer.iter().map(|t| t.name()).collect();
        g.input
            .iter()
            .map(|v| v.name())
            .filter(|n| !inits.contains(n))
            .collect()
    }

    /// Names of the graph outputs.
    pub fn output_names(&self) -> Vec<&str> {
        self.graph().output.iter().map(|v| v.name()).collect()
    }

    /// Every tensor a node produces, in graph order: the places [`Model::cut`] can cut at.
    pub fn tensor_names(&self) -> Vec<&str> {
        self.graph()
            .node
            .iter()
            .flat_map(|n| n.output.iter().map(String::as_str))
            .filter(|n| !n.is_empty())
            .collect()
    }

    /// The initializer called `name`, if any.
    pub fn initializer(&self, name: &str) -> Option<&TensorProto> {
        self.graph().initializer.iter().find(|t| t.name() == name)
    }

    /// The values of the f32 initializer called `name`.
    pub fn initializer_f32(&self, name: &str) -> Result<Vec<f32>, OnnxError> {
        let t = self
            .initializer(name)
            .ok_or_else(|| missing_initializer(name))?;
        tensor_f32_data(t)
    }

    /// The dims and values of the f32 initializer called `name`.
    pub fn initializer_f32_shaped(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), OnnxError> {
        let t = self
            .initializer(name)
            .ok_or_else(|| missing_initializer(name))?;
        let dims = t
            .dims
            .iter()
            .map(|&d| usize::try_from(d).unwrap_or(usize::MAX));
        Ok((dims.collect(), tensor_f32_data(t)?))
    }

    /// Replaces the values of the f32 initializer `name`, keeping its dims (e.g. trained weights).
    pub fn set_initializer_f32(&mut self, name: &str, data: &[f32]) -> Result<(), OnnxError> {
        let t = self
            .graph_mut()
            .initializer
            .iter_mut()
            .find(|t| t.name() == name)
            .ok_or_else(|| missing_initializer(name))?;
        // Validates type and size, and catches external data we must not silently shadow.
        let old = tensor_f32_data(t)?;
        if old.len() != data.len() {
            return Err(OnnxError::Tensor {
                name: name.to_string(),
                reason: format!(
                    "has {} values, cannot replace them by {}",
                    old.len(),
                    data.len()
                ),
            });
        }
        *t = tensor_f32(name, data, &t.dims);
        Ok(())
    }

    /// Up to five node-produced tensor names that look like `wanted`, for error messages.
    pub(crate) fn similar_tensors(&self, wanted: &str) -> Vec<String> {
        let names = self.tensor_names();
        let lower = wanted.to_lowercase();
        // Users often type a layer name ("block5_pool"), exporters add scopes and ":0".
        let stem = lower.rsplit('/').next().unwrap_or(&lower);
        let stem = stem.split(':').next().unwrap_or(stem);
        let mut found: Vec<String> = names
            .iter()
            .filter(|n| n.to_lowercase().contains(&lower))
            .map(|n| n.to_string())
            .collect();
        if found.is_empty() && !stem.is_empty() {
            found = names
                .iter()
                .filter(|n| n.to_lowercase().contains(stem))
                .map(|n| n.to_string())
                .collect();
        }
        found.truncate(5);
        found
    }
}

fn missing_initializer(name: &str) -> OnnxError {
    OnnxError::Tensor {
        name: name.to_string(),
        reason: "no initializer has this name".to_string(),
    }
}
