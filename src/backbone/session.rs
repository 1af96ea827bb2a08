//! A backbone opened for inference: its ONNX Runtime session, the layers it computes, and
//! feature maps pooled into rows.

use std::path::Path;

use ndarray::ArrayView4;
use ort::session::Session;

use super::compute::{Compute, ExecutionProvider};
use super::descriptor::Descriptor;
use super::error::BackboneError;
use super::pooling::{Pooling, Repr};

/// The layer name that stands for the network's input itself: the preprocessed image batch
/// (`[3, H, W]` per image), cached so that fine-tuning can train every convolution.
pub const INPUT_LAYER: &str = "input";

/// A ConvNet ready to turn preprocessed image batches into feature maps.
pub struct Backbone {
    /// The model's descriptor.
    pub descriptor: Descriptor,
    /// The layers this session computes, in request order.
    pub layers: Vec<String>,
    session: Session,
}

impl Backbone {
    /// Opens `model` after checking its sha256 against its descriptor, computing only `layers`.
    pub fn open(
        model: &Path,
        layers: &[String],
        ep: ExecutionProvider,
        threads: usize,
    ) -> Result<Backbone, BackboneError> {
        let descriptor = Descriptor::for_model(model)?;
        descriptor.verify(model)?;
        let session = Compute { ep, threads }
            .session_builder()?
            .commit_from_file(model)?;
        let available: Vec<String> = session
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        for layer in layers {
            if !available.contains(layer) && layer != INPUT_LAYER {
                return Err(BackboneError::UnknownLayer {
                    layer: layer.clone(),
                    model: model.to_path_buf(),
                    available: available.join(", "),
                });
            }
        }
        Ok(Backbone {
            descriptor,
            layers: layers.to_vec(),
            session,
        })
    }

    /// Feeds the backbone `size` x `size` images instead of its descriptor's size: a ConvNet
    /// without its fully-connected layers takes any size. Pooled features keep their width,
    /// flattened ones grow with the size; the preprocessing (and so a cache's identity)
    /// records it.
    pub fn set_size(&mut self, size: u32) {
        self.descriptor.preprocessing.size = size;
    }

    /// Runs a batch (`n` images, as for [`Self::features`]) through a model whose first
    /// requested layer is `N x K` (class probabilities) and returns it.
    pub fn rows(&mut self, batch: &[f32], n: usize) -> Result<ndarray::Array2<f32>, BackboneError> {
        let size = self.descriptor.preprocessing.size as usize;
        let input = ort::value::TensorRef::from_array_view(([n, 3, size, size], batch))?;
        let outputs = self
            .session
            .run(ort::inputs![self.descriptor.input.as_str() => input])?;
        let layer = self.layers[0].as_str();
        let rows = outputs[layer].try_extract_array::<f32>()?;
        Ok(rows
            .into_dimensionality::<ndarray::Ix2>()
            .map_err(|e| {
                BackboneError::Ort(ort::Error::new(format!("layer {layer} is not N x K: {e}")))
            })?
            .to_owned())
    }

    /// Runs a batch (`n` images, CHW f32 at the descriptor's size) and pools each requested layer
    /// into consecutive columns of the returned N x dims matrix.
    pub fn features(
        &mut self,
        batch: &[f32],
        n: usize,
        pooling: Pooling,
    ) -> Result<ndarray::Array2<f32>, BackboneError> {
        let reprs = Repr::each_layer(&self.layers, pooling);
        self.representations(batch, n, &reprs)
    }

    /// Runs a batch once and writes each representation (a layer and its pooling; layers may
    /// repeat with other poolings) into consecutive columns of the returned N x dims matrix.
    pub fn representations(
        &mut self,
        batch: &[f32],
        n: usize,
        reprs: &[Repr],
    ) -> Result<ndarray::Array2<f32>, BackboneError> {
        let size = self.descriptor.preprocessing.size as usize;
        let input = ort::value::TensorRef::from_array_view(([n, 3, size, size], batch))?;
        // The input alone needs no pass through the network.
        let outputs = match reprs.iter().all(|r| r.layer == INPUT_LAYER) {
            true => None,
            false => Some(
                self.session
                    .run(ort::inputs![self.descriptor.input.as_str() => input])?,
            ),
        };
        let images = ndarray::ArrayView4::from_shape((n, 3, size, size), batch)
            .map_err(|e| BackboneError::Ort(ort::Error::new(format!("input batch: {e}"))))?;
        let mut maps = Vec::with_capacity(reprs.len());
        for repr in reprs {
            let layer = repr.layer.as_str();
            if !self.layers.iter().any(|l| l == layer) {
                return Err(BackboneError::Ort(ort::Error::new(format!(
                    "layer {layer} was not opened with this backbone (opened: {})",
                    self.layers.join(", ")
                ))));
            }
            let Some(outputs) = outputs.as_ref().filter(|_| layer != INPUT_LAYER) else {
                maps.push(images.view());
                continue;
            };
            let map = outputs[layer].try_extract_array::<f32>()?;
            let map = map.into_dimensionality::<ndarray::Ix4>().map_err(|e| {
                BackboneError::Ort(ort::Error::new(format!(
                    "layer {layer} is not N x C x H x W: {e}"
                )))
            })?;
            maps.push(map);
        }
        let width = |repr: &Repr, m: &ArrayView4<f32>| {
            repr.pooling.dims(m.shape()[1], m.shape()[2], m.shape()[3])
        };
        let dims: usize = reprs.iter().zip(&maps).map(|(r, m)| width(r, m)).sum();
        let mut out = ndarray::Array2::<f32>::zeros((n, dims));
        let mut start = 0;
        for (repr, map) in reprs.iter().zip(maps) {
            let d = width(repr, &map);
            repr.pooling
                .apply(map, out.slice_mut(ndarray::s![.., start..start + d]));
            start += d;
        }
        Ok(out)
    }

    /// The number of columns of each representation, measured on one blank image.
    pub fn repr_dims(&mut self, reprs: &[Repr]) -> Result<Vec<usize>, BackboneError> {
        let probe = vec![0f32; self.descriptor.preprocessing.chw_len()];
        reprs
            .iter()
            .map(|r| {
                Ok(self
                    .representations(&probe, 1, std::slice::from_ref(r))?
                    .ncols())
            })
            .collect()
    }
}
