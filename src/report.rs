//! Offline evaluation reports: metrics of a training run's test images, the confusion matrix
//! as a PNG heat map, a gallery of misclassified images, written as report.json, report.md and
//! a self-contained report.html per run; and one comparison of every run. Both formats are
//! rendered from one model of the content ([`doc`]): what a report shows is written once. A
//! fine-tuning run is reported like a linear one ([`mod@finetune`]).

mod assemble;
pub mod compare;
pub mod content;
pub mod doc;
pub mod finetune;
pub(crate) mod format;
pub mod html;
pub mod metrics;
pub mod plot;
pub mod run;
mod warnings;
pub mod write;

use std::path::PathBuf;

pub use compare::compare;
pub use run::RunReport;
pub use write::write_run;

/// Errors of report writing.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Filesystem error.
    #[error("{path}: {}", crate::output::describe_io(.source))]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The report folder could not be replaced safely.
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
    /// A plot or picture could not be drawn.
    #[error("image encoding: {0}")]
    Image(String),
    /// An image could not be encoded as PNG.
    #[error("image encoding: {0}")]
    Encode(#[from] image::ImageError),
    /// No run reports to compare.
    #[error("no run reports (*/report.json) in {0}: train a classifier first, e.g. `make svm`")]
    NoRuns(PathBuf),
}
