//! The pretrained ConvNet: its descriptor (a TOML file next to the model), the ONNX Runtime
//! session on CPU or CUDA, and pooling of its feature maps into feature vectors.

mod compute;
mod descriptor;
mod error;
mod pooling;
mod runtime;
mod session;

pub use compute::{default_threads, Compute, ExecutionProvider};
pub use descriptor::{sha256_file, Calibration, Descriptor, Precision, Source, DESCRIPTOR_KIND};
pub use error::{BackboneError, ORT_LIB_ENV};
pub use pooling::{Pooling, Repr};
pub use runtime::{environment, ort_library_candidates};
pub use session::{Backbone, INPUT_LAYER};
