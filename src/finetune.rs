//! Fine-tuning: a training graph written with standard ONNX operators, run by ONNX Runtime.
//!
//! ONNX Runtime's training API is in no build we can reach, so [`graph::train_graph`] writes
//! one training step (forward, softmax cross-entropy, backward from [`grad`]'s per-operator
//! builders, SGD with momentum and weight decay) as an ordinary inference graph. The training
//! loop ([`train`]) feeds it batches of the frozen part's cached output and keeps parameters and
//! momenta in ONNX Runtime values between steps ([`runner`]); [`checkpoint`] makes runs
//! resumable. [`mod@run`] is a whole run on a feature cache (network, pretrained weights, test
//! accuracy, exported inference model), [`mod@bench`] times both stages (and, with [`profile`],
//! where a step's time goes), [`curves`] draws the PNG. Parameters and momenta are named,
//! shape-checked tensors ([`store`]).
//!
//! Stage 1 trains the head on cached `block5_pool`; stage 2 trains the last convolutions with
//! the stage-1 head on an earlier cached layer (`block4_pool` for block 5). [`network`] knows
//! VGG16: the convolutions between the cached layer and the trainable ones are frozen and run
//! once per row before training, so an epoch runs only what trains.

pub mod bench;
pub mod checkpoint;
pub mod curves;
pub mod data;
pub mod ensemble;
pub mod grad;
pub mod graph;
pub mod network;
pub mod profile;
pub mod run;
pub mod runner;
pub mod schedule;
pub mod store;
pub mod train;

use std::path::PathBuf;

use crate::options::Opt;
use ort::session::Session;

pub use graph::{
    eval_graph, train_graph, train_graph_as, train_graph_smoothed, Arch, ConvLayer, HeadPool,
    StepConfig,
};
pub use network::Unfreeze;
pub use store::{Group, ParamSpec, ParamStore, ParamTensor, StoreError};

use crate::backbone::{BackboneError, Compute};
use crate::onnx::Model;

/// Everything that can go wrong while building graphs, training or checkpointing.
#[derive(Debug, thiserror::Error)]
pub enum FinetuneError {
    /// The layers do not fit together.
    #[error("network: {0}")]
    Arch(String),
    /// A training setting is out of range.
    #[error("invalid fine-tuning setting: {0}")]
    Param(String),
    /// Building or editing an ONNX graph failed.
    #[error(transparent)]
    Onnx(#[from] crate::onnx::OnnxError),
    /// ONNX Runtime could not be loaded or reported an error.
    #[error(transparent)]
    Backbone(#[from] BackboneError),
    /// ONNX Runtime reported an error while running a graph.
    #[error("ONNX Runtime: {0}")]
    Ort(#[from] ort::Error),
    /// The feature cache could not be read.
    #[error(transparent)]
    Cache(#[from] crate::cache::CacheError),
    /// The cache does not hold the representation asked for.
    #[error(transparent)]
    Select(#[from] crate::cache::SelectError),
    /// The linear classifier of an ensemble could not be trained.
    #[error(transparent)]
    Classify(#[from] crate::classify::ClassifyError),
    /// The data cannot be used for training.
    #[error("data: {0}")]
    Data(String),
    /// The loss became NaN or infinite, or grew far beyond its start.
    #[error("training diverged at epoch {epoch}, step {step}: loss {loss}; the last good checkpoint (epoch {kept}) is kept. Lower the learning rates ({opt_lr_new}, {opt_lr_pretrained}) and resume, or start afresh in another {opt_out}", opt_lr_new = Opt::LrNew, opt_lr_pretrained = Opt::LrPretrained, opt_out = Opt::Out)]
    Diverged {
        /// Epoch (1-based) of the bad step.
        epoch: usize,
        /// Step within the epoch (1-based).
        step: usize,
        /// The loss that stopped the run.
        loss: f32,
        /// Last completed epoch whose checkpoint is on disk (0: none).
        kept: usize,
    },
    /// Parameters missing, or of another shape than the network's.
    #[error("parameters: {0}")]
    Store(#[from] StoreError),
    /// ONNX Runtime's profile could not be read.
    #[error("ONNX Runtime's profile {}: {reason}", path.display())]
    Profile {
        /// The profile file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A checkpoint is missing, damaged, or from another run.
    #[error("checkpoint {}: {reason}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An output file could not be written.
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
    /// Filesystem error.
    #[error("{}: {}", path.display(), crate::output::describe_io(.source))]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// An ONNX Runtime session on `model`, where `compute` says.
pub fn session(model: &Model, compute: Compute) -> Result<Session, FinetuneError> {
    session_with(model, compute, None)
}

/// [`session`], with ONNX Runtime's profiler on when `profile` names where its file goes (a
/// prefix: ONNX Runtime adds the start time and `.json`; [`Session::end_profiling`] says).
pub fn session_with(
    model: &Model,
    compute: Compute,
    profile: Option<&std::path::Path>,
) -> Result<Session, FinetuneError> {
    let mut builder = compute.session_builder()?;
    if let Some(prefix) = profile {
        builder = builder.with_profiling(prefix).map_err(ort::Error::from)?;
    }
    Ok(builder.commit_from_memory(&model.to_bytes())?)
}
