//! `tlearn export`: a trained run as one self-contained ONNX file (see `tlearn::export`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use tlearn::export::{export, ExportConfig, ExportInput};

/// Arguments of `tlearn export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A run folder (runs/NAME), or its model.json (linear) or model.onnx (fine-tuned).
    #[arg(long)]
    pub model: PathBuf,
    /// The ONNX file to write; an existing one is replaced only if tlearn exported it.
    #[arg(long)]
    pub out: PathBuf,
    /// The backbone of a linear model (default: the one the model records).
    #[arg(long)]
    pub backbone: Option<PathBuf>,
    /// The graph's input: uint8 [N, 224, 224, 3] RGB pixels (resized and centre-cropped as
    /// `predict` does), or float [N, 3, 224, 224] already preprocessed.
    #[arg(long, value_enum, default_value = "uint8")]
    pub input: ExportInput,
    /// Print nothing on success.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `tlearn export`: writes the file and says what it holds.
pub fn export_model(args: ExportArgs) -> Result<ExitCode> {
    let summary = export(&ExportConfig {
        model: args.model,
        backbone: args.backbone,
        out: args.out.clone(),
        input: args.input,
    })?;
    if !args.quiet {
        eprintln!(
            "exported {} ({}, {} classes) to {} ({:.1} MB): input `images`, outputs `probabilities`, `label`{}; see docs/deploy.md",
            summary.model.display(),
            summary.kind,
            summary.classes.len(),
            args.out.display(),
            summary.bytes as f64 / 1e6,
            if summary.kind == "svm" { ", `margins`" } else { "" }
        );
    }
    Ok(ExitCode::SUCCESS)
}
