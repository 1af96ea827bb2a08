//! The pretrained ConvNet: its descriptor (a TOML file next to the model), the ONNX Runtime
//! session on CPU or CUDA, and pooling of its feature maps into feature vectors.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ndarray::{ArrayView4, ArrayViewMut2, Axis};
use ort::session::Session;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::preprocess::Preprocessing;

/// Environment variable naming the ONNX Runtime shared library (ort's own convention).
pub const ORT_LIB_ENV: &str = "ORT_DYLIB_PATH";

/// File name of the ONNX Runtime library (`make ort` puts it in the checkout's `.ort/`).
const ORT_LIB_NAME: &str = "libonnxruntime.so";

/// Errors of the backbone: descriptor, model file, ONNX Runtime.
#[derive(Debug, thiserror::Error)]
pub enum BackboneError {
    /// The descriptor TOML is missing or malformed.
    #[error("backbone descriptor {path}: {}", crate::output::with_cause(.message, .source))]
    Descriptor {
        /// The descriptor file.
        path: PathBuf,
        /// What is wrong, or what to do about `source`.
        message: String,
        /// The error reading, parsing or checking it.
        source: Option<crate::output::Cause>,
    },
    /// The model file does not have the sha256 its descriptor records.
    #[error("model {path} has sha256 {actual} but its descriptor expects {expected}: rebuild it with `make models`, or fix the descriptor if you changed the model on purpose")]
    Checksum {
        /// The model file.
        path: PathBuf,
        /// sha256 recorded in the descriptor.
        expected: String,
        /// sha256 of the file.
        actual: String,
    },
    /// A requested layer is not an output of the model.
    #[error("layer {layer} is not an output of {model}; available: {available}")]
    UnknownLayer {
        /// The requested layer.
        layer: String,
        /// The model file.
        model: PathBuf,
        /// Comma-separated outputs of the model.
        available: String,
    },
    /// The ONNX Runtime library could not be loaded.
    #[error("cannot load the ONNX Runtime library {path}: {message}. Run `make ort` (CPU) or `make ort-cuda` (CUDA), or set {ORT_LIB_ENV} to a libonnxruntime.so")]
    Runtime {
        /// The library path tried.
        path: PathBuf,
        /// The loader's message.
        message: String,
    },
    /// No ONNX Runtime library in any of the places tlearn looks.
    #[error("no ONNX Runtime library found; looked in: {}. Run `make ort` in the tlearn checkout, or set {ORT_LIB_ENV} to a libonnxruntime.so", .0.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    RuntimeNotFound(Vec<PathBuf>),
    /// The CUDA execution provider was asked for but cannot be used.
    #[error("the CUDA execution provider is not available: {}. Use `--ep cpu`, or install the CUDA build of ONNX Runtime with `make ort-cuda` and point {ORT_LIB_ENV} at it", .0.to_string().trim_end_matches('.'))]
    CudaUnavailable(#[source] ort::Error),
    /// ONNX Runtime reported an error.
    #[error("ONNX Runtime: {0}")]
    Ort(#[from] ort::Error),
    /// A file could not be written.
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

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

/// Where inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum ExecutionProvider {
    /// ONNX Runtime's CPU provider.
    Cpu,
    /// ONNX Runtime's CUDA provider (needs the CUDA build of ONNX Runtime); never falls back to CPU.
    Cuda,
}

/// Where ONNX Runtime runs a session, and with how many CPU threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compute {
    /// Execution provider.
    pub ep: ExecutionProvider,
    /// Intra-op threads.
    pub threads: usize,
}

/// ONNX Runtime threads when none are asked for: every core this process may use.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Compute {
    /// The CPU with `threads` threads.
    pub fn cpu(threads: usize) -> Compute {
        Compute {
            ep: ExecutionProvider::Cpu,
            threads,
        }
    }

    /// A session builder on this provider; CUDA that cannot start is an error, never a silent
    /// fall-back to the CPU.
    pub fn session_builder(self) -> Result<ort::session::builder::SessionBuilder, BackboneError> {
        let env = environment()?;
        let mut builder = Session::builder(env)?;
        if self.ep == ExecutionProvider::Cuda {
            builder = builder
                .with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()])
                .map_err(|e| BackboneError::CudaUnavailable(e.into()))?;
        }
        Ok(builder
            .with_intra_threads(self.threads.max(1))
            .map_err(ort::Error::from)?)
    }
}

/// How a layer's feature map (C x H x W) becomes a vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// All C*H*W values, channel-major (NCHW order; Keras' Flatten is HWC order, a permutation).
    Flatten,
    /// Global average over H x W: C values.
    Avg,
    /// Global maximum over H x W: C values.
    Max,
}

impl Pooling {
    /// Length of the pooled vector for a C x H x W map.
    pub fn dims(self, c: usize, h: usize, w: usize) -> usize {
        match self {
            Pooling::Flatten => c * h * w,
            Pooling::Avg | Pooling::Max => c,
        }
    }

    /// Pools each image of `maps` (N x C x H x W) into the matching row of `out` (N x dims).
    pub fn apply(self, maps: ArrayView4<f32>, mut out: ArrayViewMut2<f32>) {
        for (map, mut row) in maps.outer_iter().zip(out.outer_iter_mut()) {
            match self {
                Pooling::Flatten => row.iter_mut().zip(map.iter()).for_each(|(o, v)| *o = *v),
                Pooling::Avg => {
                    for (o, channel) in row.iter_mut().zip(map.axis_iter(Axis(0))) {
                        *o = channel.mean().unwrap_or(0.0);
                    }
                }
                Pooling::Max => {
                    for (o, channel) in row.iter_mut().zip(map.axis_iter(Axis(0))) {
                        *o = channel.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    }
                }
            }
        }
    }
}

/// One candidate representation of an image: a layer's feature map and how it is pooled,
/// written `layer:pooling` (e.g. `block4_pool:avg`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repr {
    /// The model output (e.g. `block5_pool`).
    pub layer: String,
    /// How its map becomes a vector.
    pub pooling: Pooling,
}

impl Repr {
    /// Every layer of `layers` with the same pooling: what `--layer ... --pool P` extracts.
    pub fn each_layer(layers: &[String], pooling: Pooling) -> Vec<Repr> {
        layers
            .iter()
            .map(|layer| Repr {
                layer: layer.clone(),
                pooling,
            })
            .collect()
    }

    /// The distinct layers of `reprs`, in order of first use: what the backbone must compute.
    pub fn layers(reprs: &[Repr]) -> Vec<String> {
        let mut layers: Vec<String> = Vec::new();
        for r in reprs {
            if !layers.contains(&r.layer) {
                layers.push(r.layer.clone());
            }
        }
        layers
    }
}

impl Pooling {
    /// The name used on the command line and in `layer:pooling`.
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Flatten => "flatten",
            Pooling::Avg => "avg",
            Pooling::Max => "max",
        }
    }
}

impl std::fmt::Display for Repr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.layer, self.pooling.name())
    }
}

impl std::str::FromStr for Repr {
    type Err = String;

    fn from_str(s: &str) -> Result<Repr, String> {
        let (layer, pooling) = s.trim().split_once(':').ok_or_else(|| {
            format!(
                "{s:?} is not LAYER:POOLING (e.g. block4_pool:avg; pooling flatten, avg or max)"
            )
        })?;
        let pooling = match pooling {
            "flatten" => Pooling::Flatten,
            "avg" => Pooling::Avg,
            "max" => Pooling::Max,
            other => {
                return Err(format!(
                    "{s:?}: unknown pooling {other:?}; use flatten, avg or max"
                ))
            }
        };
        if layer.is_empty() {
            return Err(format!("{s:?}: the layer name is empty"));
        }
        Ok(Repr {
            layer: layer.to_string(),
            pooling,
        })
    }
}

/// Loads ONNX Runtime once per process, from the first of [`ort_library_candidates`] that exists.
pub fn environment() -> Result<&'static ort::environment::Environment, BackboneError> {
    static ENV: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();
    let path = ort_library_path()?;
    let env = ENV.get_or_init(|| {
        ort::init_from(&path)
            .map_err(|e| e.to_string())?
            .with_name("tlearn")
            .build()
            .map_err(|e| e.to_string())
    });
    env.as_ref().map_err(|message| BackboneError::Runtime {
        path,
        message: message.clone(),
    })
}

/// The ONNX Runtime library that [`environment`] loads: the first candidate that exists.
fn ort_library_path() -> Result<PathBuf, BackboneError> {
    let candidates = ort_library_candidates();
    match candidates.iter().find(|p| p.is_file()) {
        Some(path) => Ok(path.clone()),
        None => Err(BackboneError::RuntimeNotFound(candidates)),
    }
}

/// Where ONNX Runtime is looked for, in order: `ORT_DYLIB_PATH` alone when it is set; else
/// next to the executable, then the `.ort/` of a checkout the executable was built in
/// (`target/<profile>/` or `target/<profile>/deps/` below it), then `./.ort/`. Nothing is baked
/// in at build time, so a copied binary finds a library beside it.
pub fn ort_library_candidates() -> Vec<PathBuf> {
    if let Some(path) = std::env::var_os(ORT_LIB_ENV) {
        return vec![PathBuf::from(path)];
    }
    let mut candidates = Vec::new();
    let exe = std::env::current_exe().and_then(|e| e.canonicalize());
    if let Some(dir) = exe.as_ref().ok().and_then(|e| e.parent()) {
        candidates.push(dir.join(ORT_LIB_NAME));
        for checkout in dir.ancestors().skip(2).take(2) {
            candidates.push(checkout.join(".ort").join(ORT_LIB_NAME));
        }
    }
    candidates.push(Path::new(".ort").join(ORT_LIB_NAME));
    candidates
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;

    #[test]
    fn pooling_flatten_avg_max() {
        let maps = Array4::from_shape_vec((1, 2, 1, 2), vec![1.0, 3.0, -2.0, 4.0]).unwrap();
        let mut out = ndarray::Array2::zeros((1, 4));
        Pooling::Flatten.apply(maps.view(), out.view_mut());
        assert_eq!(out.row(0).to_vec(), vec![1.0, 3.0, -2.0, 4.0]);
        let mut out = ndarray::Array2::zeros((1, 2));
        Pooling::Avg.apply(maps.view(), out.view_mut());
        assert_eq!(out.row(0).to_vec(), vec![2.0, 1.0]);
        Pooling::Max.apply(maps.view(), out.view_mut());
        assert_eq!(out.row(0).to_vec(), vec![3.0, 4.0]);
        assert_eq!(Pooling::Flatten.dims(512, 7, 7), 25088);
    }
}
