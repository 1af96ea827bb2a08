//! `tlearn predict`: its arguments, where the images come from (files, folders, stdin), and
//! the formats results are printed in, one record per image as soon as it is predicted.

use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, ValueEnum};
use tlearn::backbone::ExecutionProvider;
use tlearn::predict::{self, ClassScore, PredictOptions, Prediction, Predictor, Values};

use crate::progress::ImageBar;

/// Arguments of `tlearn predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// A model (model.json of a linear classifier, model.onnx of a fine-tuned network), or a
    /// run folder holding one.
    #[arg(long)]
    pub model: PathBuf,
    /// The backbone a linear model's features came from (default: the one the model records).
    #[arg(long)]
    pub backbone: Option<PathBuf>,
    /// Classes shown per image.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Output format: tab- or comma-separated with a header line, or one JSON object per line.
    #[arg(long, value_enum, default_value = "tsv")]
    pub format: Format,
    /// Images per backbone run.
    #[arg(long, default_value_t = predict::DEFAULT_BATCH)]
    pub batch: usize,
    /// Execution provider.
    #[arg(long, value_enum, default_value = "cpu")]
    pub ep: ExecutionProvider,
    /// ONNX Runtime threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Image files, folders (their images, recursively, in name order), or `-`: paths read from
    /// standard input, one per line.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Tab-separated values with a header line.
    Tsv,
    /// Comma-separated values (RFC 4180 quoting) with a header line.
    Csv,
    /// One JSON object per line: path, predicted, top (class, margin, probability).
    Jsonl,
}

/// Lists with more images than this get a progress bar.
const BAR_ABOVE: usize = 32;

/// `tlearn predict`: one record per image with its best classes, in input order; an image that
/// cannot be read is skipped with its reason on stderr, and the exit status is 1.
pub fn predict(args: PredictArgs) -> Result<ExitCode> {
    let threads = crate::cores::threads(args.threads);
    let mut predictor = Predictor::open(&args.model, args.backbone.as_deref(), args.ep, threads)?;
    let options = PredictOptions {
        top: args.top,
        batch: args.batch,
        ..PredictOptions::default()
    };
    let classes = top_len(&predictor, args.top);
    let mut out = Records::new(args.format, predictor.values(), classes);
    out.header()?;
    let bar = ImageBar::new(image_count(&args), BAR_ABOVE, !args.quiet);
    let (mut failed, mut write_error) = (0usize, None);
    predictor.predict(
        predict::expand(inputs(args.images)),
        &options,
        &mut |p: Prediction| {
            bar.inc();
            match &p.top {
                Ok(top) => {
                    if let Err(e) = bar.suspend(|| out.record(&p.image, top)) {
                        write_error = Some(e);
                        return ControlFlow::Break(());
                    }
                }
                Err(reason) => {
                    failed += 1;
                    bar.suspend(|| eprintln!("skipped {}: {reason}", p.image.display()));
                }
            }
            ControlFlow::Continue(())
        },
    )?;
    bar.finish();
    if let Some(e) = write_error {
        return Err(e.into());
    }
    if failed > 0 {
        eprintln!("{failed} image(s) could not be read (listed above); the others were predicted");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Classes each record has: `--top`, at most the model's classes.
fn top_len(predictor: &Predictor, top: usize) -> usize {
    top.min(predictor.class_names().len())
}

/// The I/O error inside a CSV writer's error (a closed pipe stays one).
fn io_error(e: csv::Error) -> std::io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => std::io::Error::other(format!("{other:?}")),
    }
}

/// The paths the arguments stand for, `-` replaced by the lines of standard input (read as they
/// are needed, so `find ... | tlearn predict -` starts at once).
fn inputs(args: Vec<PathBuf>) -> impl Iterator<Item = PathBuf> + Send {
    args.into_iter().flat_map(|arg| {
        let paths: Box<dyn Iterator<Item = PathBuf> + Send> = if arg.as_os_str() == "-" {
            Box::new(stdin_paths())
        } else {
            Box::new(std::iter::once(arg))
        };
        paths
    })
}

/// Paths from standard input, one per line (any bytes but newline; a final `\r` and empty
/// lines are dropped).
fn stdin_paths() -> impl Iterator<Item = PathBuf> + Send {
    let stdin = std::io::stdin();
    std::iter::from_fn(move || loop {
        let mut line = Vec::new();
        match stdin.lock().read_until(b'\n', &mut line) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) => {
                eprintln!("error: reading paths from standard input: {e}");
                return None;
            }
        }
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        if !line.is_empty() {
            return Some(PathBuf::from(os_string(line)));
        }
    })
}

#[cfg(unix)]
fn os_string(bytes: Vec<u8>) -> OsString {
    std::os::unix::ffi::OsStringExt::from_vec(bytes)
}

#[cfg(not(unix))]
fn os_string(bytes: Vec<u8>) -> OsString {
    OsString::from(String::from_utf8_lossy(&bytes).into_owned())
}

/// How many images the arguments name, when that is known before reading them (not with
/// `-`); listing folders twice is cheap beside running the backbone.
fn image_count(args: &PredictArgs) -> Option<usize> {
    if args.quiet || args.images.iter().any(|a| a.as_os_str() == "-") {
        return None;
    }
    Some(predict::expand(args.images.clone()).count())
}

/// Prints results in one format, flushing each record (results stream).
struct Records {
    format: Format,
    values: Values,
    classes: usize,
    csv: Option<csv::Writer<std::io::Stdout>>,
}

impl Records {
    fn new(format: Format, values: Values, classes: usize) -> Records {
        let delimiter = match format {
            Format::Tsv => Some(b'\t'),
            Format::Csv => Some(b','),
            Format::Jsonl => None,
        };
        let csv = delimiter.map(|d| {
            csv::WriterBuilder::new()
                .delimiter(d)
                .from_writer(std::io::stdout())
        });
        Records {
            format,
            values,
            classes,
            csv,
        }
    }

    /// The header line of tsv and csv: path, predicted, then class_i, margin_i,
    /// probability_i for each rank i (the values the model gives).
    fn header(&mut self) -> std::io::Result<()> {
        let Some(csv) = &mut self.csv else {
            return Ok(());
        };
        let mut fields = vec!["path".to_string(), "predicted".to_string()];
        for i in 1..=self.classes {
            fields.push(format!("class_{i}"));
            if self.values.margin {
                fields.push(format!("margin_{i}"));
            }
            if self.values.probability {
                fields.push(format!("probability_{i}"));
            }
        }
        csv.write_record(&fields).map_err(io_error)?;
        csv.flush()
    }

    fn record(&mut self, image: &Path, top: &[ClassScore]) -> std::io::Result<()> {
        let path = image.display().to_string();
        let predicted = top.first().map_or("", |c| c.class.as_str());
        match (&mut self.csv, self.format) {
            (Some(csv), _) => {
                let mut fields = vec![path.clone(), predicted.to_string()];
                for c in top {
                    fields.push(c.class.clone());
                    fields.extend(c.margin.map(|m| m.to_string()));
                    fields.extend(c.probability.map(|p| p.to_string()));
                }
                csv.write_record(&fields).map_err(io_error)?;
                csv.flush()
            }
            _ => {
                let line = serde_json::json!({"path": path, "predicted": predicted, "top": top});
                let mut stdout = std::io::stdout().lock();
                writeln!(stdout, "{line}")?;
                stdout.flush()
            }
        }
    }
}
