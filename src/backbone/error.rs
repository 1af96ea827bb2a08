//! What can go wrong opening a backbone: its descriptor, its model file, ONNX Runtime.

use crate::options::Opt;
use std::path::PathBuf;

/// Environment variable naming the ONNX Runtime shared library (ort's own convention).
pub const ORT_LIB_ENV: &str = "ORT_DYLIB_PATH";

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
    #[error("the CUDA execution provider is not available: {}. Use `{opt_ep} cpu`, or install the CUDA build of ONNX Runtime with `make ort-cuda` and point {ORT_LIB_ENV} at it", .0.to_string().trim_end_matches('.'), opt_ep = Opt::Ep)]
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
