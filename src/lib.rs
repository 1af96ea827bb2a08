//! tlearn: transfer learning on small image data sets.
//!
//! The modules follow the pipeline, data flowing one way:
//! `dataset` -> `augment` -> `preprocess` -> `backbone` (ONNX Runtime) -> `cache` (HDF5),
//! with `extract` driving the whole run. `onnx` reads, edits and writes ONNX models.

#![warn(missing_docs)]

pub mod augment;
pub mod auto;
pub mod backbone;
pub mod bench;
pub mod cache;
pub mod classify;
pub mod dataset;
pub mod export;
pub mod extract;
pub mod finetune;
pub mod input;
pub mod numeric;
pub mod onnx;
pub mod output;
pub mod predict;
pub mod preprocess;
pub mod quantize;
pub mod report;
pub mod shard;
