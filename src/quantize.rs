//! Static int8 quantisation of a backbone (`tlearn model quantize`): the fp32 model gets
//! QuantizeLinear / DequantizeLinear pairs (QDQ) that ONNX Runtime fuses into int8 kernels.
//!
//! - Every Conv's weights become int8, symmetric, one scale per output channel (axis 0), and
//!   its bias int32 at the scale input scale x weight scale (what the int8 kernel adds).
//! - Every tensor a Conv reads, and every tensor its activation (the Relu behind it) writes,
//!   becomes uint8 with a scale and zero point from calibration: the fp32 model runs in ONNX
//!   Runtime on images of a data set, preprocessed as extraction does, and each tensor's range
//!   is measured ([`CalibrationMethod`]). The outputs are quantised too because ONNX Runtime
//!   fuses a Conv into its int8 kernel only when a QuantizeLinear follows it; without one the
//!   Conv would run in fp32 behind its DequantizeLinear nodes, slower than before.
//! - A MaxPool reading a quantised tensor shares its scale and zero point, so it runs on uint8
//!   too (the maximum of values on one grid is on that grid: nothing is lost).
//!
//! The descriptor is written beside the model (`precision = "int8"`, the calibration set, its
//! sha256), so the result is used like any backbone.

mod calibrate;
mod qdq;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::backbone::{
    sha256_file, BackboneError, Calibration, Descriptor, Precision, DESCRIPTOR_KIND,
};
use crate::dataset::{DataSet, DatasetError};
use crate::onnx::{Model, OnnxError, ONNX_KIND};
use crate::options::Opt;
use crate::output::Target;
use crate::preprocess::DecodeLimits;

/// Errors of quantisation; nothing is written when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    /// An option is out of its range.
    #[error("{option} {value}: {why}")]
    BadOption {
        /// The option.
        option: Opt,
        /// The value given.
        value: String,
        /// What it must be.
        why: &'static str,
    },
    /// The model could not be read, edited or written.
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    /// An output may not be written there.
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
    /// The descriptor, the model's sha256 or ONNX Runtime failed.
    #[error(transparent)]
    Backbone(#[from] BackboneError),
    /// The calibration folder cannot be listed or holds no images.
    #[error("calibration folder {}: {source}; give a folder of images laid out as for `tlearn features {opt_data}` (one sub-folder per class, or the flowers layout)", dir.display(), opt_data = Opt::Data)]
    Calibration {
        /// The folder.
        dir: PathBuf,
        /// Why it cannot be used.
        source: DatasetError,
    },
    /// Not one calibration image could be decoded.
    #[error("none of the {tried} calibration image(s) in {} could be read (first: {first}); give a folder of readable images", dir.display())]
    NoUsableImages {
        /// The folder.
        dir: PathBuf,
        /// Images tried.
        tried: usize,
        /// The first image's error.
        first: String,
    },
    /// The model has no convolution to quantise.
    #[error("{} has no Conv node: tlearn quantises convolutions (a ConvNet backbone such as models/vgg16.onnx)", model.display())]
    NoConv {
        /// The model file.
        model: PathBuf,
    },
    /// The model is quantised already.
    #[error("{} is already quantised ({what}); quantise its fp32 original instead", model.display())]
    AlreadyQuantized {
        /// The model file.
        model: PathBuf,
        /// What shows it.
        what: String,
    },
    /// The model's graph is not one this quantiser can rewrite.
    #[error("{} cannot be quantised: {why}", model.display())]
    Unsupported {
        /// The model file.
        model: PathBuf,
        /// Why.
        why: String,
    },
    /// A calibrated activation was zero on every image: it has no range to quantise.
    #[error("tensor '{tensor}' was 0 on every calibration image, so it has no range to quantise; calibrate on real images of the kind you will extract (not blank ones), or check the model")]
    ZeroActivations {
        /// The tensor.
        tensor: String,
    },
    /// A calibrated activation held NaN or infinite values.
    #[error("tensor '{tensor}' held NaN or infinite values on the calibration images: check the model and its descriptor's preprocessing")]
    NonFinite {
        /// The tensor.
        tensor: String,
    },
}

/// How the range of each activation is chosen from the calibration images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum CalibrationMethod {
    /// The smallest and largest value seen (ONNX Runtime's MinMax).
    Minmax,
    /// The range holding the given percentile of the absolute values (ONNX Runtime's
    /// Percentile): rare outliers do not widen the grid of every other value.
    Percentile,
}

/// Options of a quantisation (unchecked; [`QuantizeParams::check`] gives the checked ones).
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizeParams(CheckedQuantizeParams);

/// Checked options of a quantisation; [`CheckedQuantizeParams::run`] carries it out.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedQuantizeParams {
    model: PathBuf,
    calibrate: PathBuf,
    out: PathBuf,
    images: usize,
    method: CalibrationMethod,
    percentile: f64,
    batch: usize,
    threads: usize,
    limits: DecodeLimits,
}

impl QuantizeParams {
    /// Quantise `model` into `out`, calibrated on 48 images of `calibrate` by min/max.
    pub fn new(model: &Path, calibrate: &Path, out: &Path) -> Self {
        QuantizeParams(CheckedQuantizeParams {
            model: model.to_path_buf(),
            calibrate: calibrate.to_path_buf(),
            out: out.to_path_buf(),
            images: 48,
            method: CalibrationMethod::Minmax,
            percentile: 99.999,
            batch: 4,
            threads: crate::backbone::default_threads(),
            limits: DecodeLimits::default(),
        })
    }

    /// Calibration images, spread evenly over the data set (all of them when it has fewer).
    pub fn images(mut self, images: usize) -> Self {
        self.0.images = images;
        self
    }

    /// How activation ranges are chosen.
    pub fn method(mut self, method: CalibrationMethod) -> Self {
        self.0.method = method;
        self
    }

    /// The percentile of absolute values kept by [`CalibrationMethod::Percentile`].
    pub fn percentile(mut self, percentile: f64) -> Self {
        self.0.percentile = percentile;
        self
    }

    /// Images per calibration run of the fp32 model.
    pub fn batch(mut self, batch: usize) -> Self {
        self.0.batch = batch;
        self
    }

    /// ONNX Runtime threads of the calibration runs.
    pub fn threads(mut self, threads: usize) -> Self {
        self.0.threads = threads;
        self
    }

    /// Decoding limits for the calibration images.
    pub fn limits(mut self, limits: DecodeLimits) -> Self {
        self.0.limits = limits;
        self
    }
}

impl QuantizeParams {
    /// Checks every option and output once, before anything is read or written (as
    /// [`crate::extract::ExtractConfig::check`] and [`crate::finetune::train::FinetuneParams::check`]).
    pub fn check(self) -> Result<CheckedQuantizeParams, QuantizeError> {
        let p = &self.0;
        let bad = |option, value: String, why| Err(QuantizeError::BadOption { option, value, why });
        if p.images == 0 {
            return bad(Opt::Images, "0".into(), "calibrate on at least one image");
        }
        if p.batch == 0 {
            return bad(Opt::Batch, "0".into(), "a batch holds at least one image");
        }
        if p.threads == 0 {
            return bad(Opt::Threads, "0".into(), "at least one thread is needed");
        }
        if !(p.percentile > 0.0 && p.percentile <= 100.0) {
            return bad(
                Opt::Percentile,
                p.percentile.to_string(),
                "give a percentile above 0 and at most 100, e.g. 99.999",
            );
        }
        if same_file(&p.model, &p.out) {
            return bad(
                Opt::Out,
                p.out.display().to_string(),
                "is the model being quantised; write the int8 model to another file",
            );
        }
        for target in output_targets(p) {
            target.check()?;
        }
        Ok(self.0)
    }
}

/// The int8 model and its descriptor beside it, neither of which may replace an input or a
/// file tlearn did not write.
fn output_targets(p: &CheckedQuantizeParams) -> [Target; 2] {
    let inputs = [
        p.model.clone(),
        Descriptor::path_for(&p.model),
        p.calibrate.clone(),
    ];
    let model = Target::new(&p.out).kind(ONNX_KIND).option(Opt::Out);
    let descriptor = Target::new(&Descriptor::path_for(&p.out))
        .kind(DESCRIPTOR_KIND)
        .option_with(
            Opt::Out,
            " (the int8 model's descriptor goes beside it, as OUT with .toml)",
        )
        .beside(&p.out);
    [model, descriptor].map(|t| inputs.iter().fold(t, |t, input| t.reading(input)))
}

/// Whether two paths name one file (the same text, or the same file on disk).
fn same_file(a: &Path, b: &Path) -> bool {
    a == b
        || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
        || Descriptor::path_for(a) == Descriptor::path_for(b)
}

/// What a quantisation did.
#[derive(Debug, Clone, Serialize)]
pub struct QuantizeSummary {
    /// The int8 model written.
    pub out: PathBuf,
    /// Its descriptor, beside it.
    pub descriptor: PathBuf,
    /// Its sha256.
    pub sha256: String,
    /// Convolutions quantised.
    pub convolutions: usize,
    /// Activations given a uint8 scale and zero point.
    pub activations: usize,
    /// Calibration images used.
    pub images: usize,
    /// Calibration images that could not be read, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Size of the fp32 model, bytes.
    pub fp32_bytes: u64,
    /// Size of the int8 model, bytes.
    pub int8_bytes: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl CheckedQuantizeParams {
    /// Calibrates the fp32 model, writes the int8 model and its descriptor beside it.
    pub fn run(&self) -> Result<QuantizeSummary, QuantizeError> {
        let start = Instant::now();
        let descriptor = Descriptor::for_model(&self.model)?;
        descriptor.verify(&self.model)?;
        if descriptor.precision != Precision::Fp32 {
            return Err(QuantizeError::AlreadyQuantized {
                model: self.model.clone(),
                what: format!(
                    "its descriptor says precision = {:?}",
                    descriptor.precision.name()
                ),
            });
        }
        let model = Model::load(&self.model)?;
        let sites = qdq::find_sites(&model, &self.model)?;
        let images = self.calibration_images()?;
        let observed = calibrate::observe(&model, &descriptor, &sites.calibrated, &images, self)?;
        let params = observed.activation_params(self.method, self.percentile)?;
        let quantized = qdq::rewrite(&model, &sites, &params)?;
        quantized.save(&self.out)?;
        let sha256 = sha256_file(&self.out)?;
        let int8 = Descriptor {
            name: format!("{}-int8", descriptor.name),
            sha256: sha256.clone(),
            precision: Precision::Int8,
            source: None,
            calibration: Some(Calibration {
                source_model: file_name(&self.model),
                source_sha256: descriptor.sha256.clone(),
                data: self.calibrate.display().to_string(),
                images: observed.images,
                method: match self.method {
                    CalibrationMethod::Minmax => "minmax".into(),
                    CalibrationMethod::Percentile => format!("percentile {}", self.percentile),
                },
                convolutions: sites.convs.len(),
                activations: params.len(),
                tlearn_version: env!("CARGO_PKG_VERSION").into(),
            }),
            ..descriptor
        };
        int8.save_beside(&self.out)?;
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        Ok(QuantizeSummary {
            out: self.out.clone(),
            descriptor: Descriptor::path_for(&self.out),
            sha256,
            convolutions: sites.convs.len(),
            activations: params.len(),
            images: observed.images,
            skipped: observed.skipped,
            fp32_bytes: size(&self.model),
            int8_bytes: size(&self.out),
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// Up to `images` images of the calibration data set, spread evenly over it (it is sorted
    /// by class, so every class contributes), as (stored path, file) pairs.
    fn calibration_images(&self) -> Result<Vec<(String, PathBuf)>, QuantizeError> {
        let data = DataSet::open(&self.calibrate).map_err(|source| QuantizeError::Calibration {
            dir: self.calibrate.clone(),
            source,
        })?;
        let total = data.samples.len();
        let n = self.images.min(total);
        Ok((0..n)
            .map(|i| &data.samples[i * total / n])
            .map(|s| (s.path.clone(), data.full_path(s)))
            .collect())
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Whether this CPU has the VNNI instructions ONNX Runtime's int8 kernels are fastest with;
/// without them an int8 model still runs, more slowly (possibly slower than fp32).
pub fn cpu_has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512vnni")
            || std::arch::is_x86_feature_detected!("avxvnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
