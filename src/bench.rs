//! Benchmarks with machine-readable results: the whole feature pipeline against bare ONNX
//! Runtime inference on the same batches.

use std::time::Instant;

use serde::Serialize;

use crate::cache::CacheError;
use crate::extract::{self, prepare_batch, ExtractConfig, ExtractError};
use crate::numeric::mean;

/// Result of [`features`], printed as JSON by `make bench`.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureBench {
    /// Benchmark name.
    pub bench: &'static str,
    /// Rows (images and copies) measured.
    pub rows: usize,
    /// Images per backbone run.
    pub batch: usize,
    /// ONNX Runtime threads.
    pub threads: usize,
    /// Feature length.
    pub dims: usize,
    /// Rows per second of the whole pipeline: decode, augment, preprocess, infer, pool, write HDF5.
    pub pipeline_images_per_s: f64,
    /// Rows per second of bare inference (backbone and pooling) on the same prepared batches.
    pub bare_images_per_s: f64,
    /// pipeline / bare; the goal is 0.95 or more.
    pub ratio: f64,
    /// Peak resident memory of the process after the pipeline run, MiB (VmHWM).
    pub peak_rss_mib_pipeline: f64,
    /// Peak resident memory after both runs, MiB.
    pub peak_rss_mib: f64,
}

/// Runs the pipeline into a temporary cache, then bare inference on the same rows.
pub fn features(cfg: &ExtractConfig) -> Result<FeatureBench, ExtractError> {
    cfg.check()?;
    // A fresh folder of its own, removed (with only what the run wrote in it) when dropped.
    let dir = tempfile::Builder::new()
        .prefix("tlearn-bench-")
        .tempdir()
        .map_err(|source| CacheError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
    let mut cfg = cfg.clone();
    cfg.cache = dir.path().join("features.h5");
    cfg.progress = None;
    let summary = extract::run(&cfg, &crate::progress::Stop::new());
    drop(dir);
    let summary = summary?;
    let peak_rss_mib_pipeline = peak_rss_mib();

    let mut setup = extract::setup(&cfg.check()?)?;
    let preprocessing = setup.plan.identity.preprocessing.clone();
    let rows: Vec<usize> = (0..setup.plan.rows.len()).collect();
    let reprs = setup.plan.identity.representations();
    let mut inference = 0.0;
    let mut measured = 0;
    for batch in rows.chunks(cfg.batch) {
        let prepared = prepare_batch(batch, &setup.plan, &setup.data, &preprocessing, &cfg.limits);
        let n = prepared.views;
        if n == 0 {
            continue;
        }
        let start = Instant::now();
        let features = setup
            .backbone
            .representations(&prepared.tensor, n, &reprs)?;
        inference += start.elapsed().as_secs_f64();
        measured += features.nrows();
    }
    let bare = if inference > 0.0 {
        measured as f64 / inference
    } else {
        0.0
    };
    Ok(FeatureBench {
        bench: "features",
        rows: summary.computed,
        batch: cfg.batch,
        threads: cfg.threads,
        dims: summary.dims,
        pipeline_images_per_s: summary.rows_per_second,
        bare_images_per_s: bare,
        ratio: if bare > 0.0 {
            summary.rows_per_second / bare
        } else {
            0.0
        },
        peak_rss_mib_pipeline,
        peak_rss_mib: peak_rss_mib(),
    })
}

/// One backbone's runs in [`backbones`].
#[derive(Debug, Clone, Serialize)]
pub struct BackboneRuns {
    /// The model file.
    pub model: String,
    /// Its precision, from its descriptor.
    pub precision: &'static str,
    /// Whole-pipeline rows per second of each run, in run order.
    pub pipeline_images_per_s: Vec<f64>,
    /// Bare-inference rows per second of each run.
    pub bare_images_per_s: Vec<f64>,
    /// Mean of `pipeline_images_per_s`.
    pub pipeline_mean: f64,
    /// Mean of `bare_images_per_s`.
    pub bare_mean: f64,
}

/// Result of [`backbones`], printed as JSON by `make bench` (fp32 against int8).
#[derive(Debug, Clone, Serialize)]
pub struct BackboneComparison {
    /// Benchmark name.
    pub bench: &'static str,
    /// Rows (images and copies) of each run.
    pub rows: usize,
    /// Images per backbone run.
    pub batch: usize,
    /// ONNX Runtime threads.
    pub threads: usize,
    /// Runs of each backbone, alternated A B B A ...
    pub rounds: usize,
    /// The backbone model given.
    pub baseline: BackboneRuns,
    /// The model it is compared with.
    pub other: BackboneRuns,
    /// other / baseline, whole pipeline (decode to HDF5), from the means.
    pub pipeline_speedup: f64,
    /// other / baseline, bare inference.
    pub bare_speedup: f64,
    /// Whether the CPU has VNNI (int8 kernels are much slower without it).
    pub cpu_vnni: bool,
    /// /proc/loadavg's 1-minute load before and after: the machine is shared.
    pub load_before_after: [f64; 2],
}

/// Measures `cfg`'s backbone and `other` on the same rows with the same batch, alternating
/// (A B B A ...) `rounds` times each so a change of machine load falls on both alike.
pub fn backbones(
    cfg: &ExtractConfig,
    other: &std::path::Path,
    rounds: usize,
) -> Result<BackboneComparison, ExtractError> {
    let load_before = load_average();
    let mut other_cfg = cfg.clone();
    other_cfg.backbone = other.to_path_buf();
    let mut runs: [Vec<FeatureBench>; 2] = [Vec::new(), Vec::new()];
    for round in 0..rounds.max(1) {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let c = if which == 0 { cfg } else { &other_cfg };
            runs[which].push(features(c)?);
        }
    }
    let describe =
        |c: &ExtractConfig, runs: &[FeatureBench]| -> Result<BackboneRuns, ExtractError> {
            let precision = crate::backbone::Descriptor::for_model(&c.backbone)?.precision;
            let pipeline: Vec<f64> = runs.iter().map(|r| r.pipeline_images_per_s).collect();
            let bare: Vec<f64> = runs.iter().map(|r| r.bare_images_per_s).collect();
            Ok(BackboneRuns {
                model: c.backbone.display().to_string(),
                precision: precision.name(),
                pipeline_mean: mean(&pipeline),
                bare_mean: mean(&bare),
                pipeline_images_per_s: pipeline,
                bare_images_per_s: bare,
            })
        };
    let baseline = describe(cfg, &runs[0])?;
    let other = describe(&other_cfg, &runs[1])?;
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    Ok(BackboneComparison {
        bench: "backbones",
        rows: runs[0][0].rows,
        batch: cfg.batch,
        threads: cfg.threads,
        rounds: rounds.max(1),
        pipeline_speedup: ratio(other.pipeline_mean, baseline.pipeline_mean),
        bare_speedup: ratio(other.bare_mean, baseline.bare_mean),
        baseline,
        other,
        cpu_vnni: crate::quantize::cpu_has_vnni(),
        load_before_after: [load_before, load_average()],
    })
}

/// The 1-minute load average from /proc (0 where unavailable).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The process's peak resident set size in MiB, from /proc (0 where unavailable).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
