//! Where ONNX Runtime runs a session: the execution provider and its CPU threads.

use ort::session::Session;
use serde::{Deserialize, Serialize};

use super::error::BackboneError;
use super::runtime::environment;

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
