//! Benchmarks with machine-readable results: the whole feature pipeline against bare ONNX
//! Runtime inference on the same batches.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde::Serialize;

use crate::cache::CacheError;
use crate::extract::{self, prepare_batch, ExtractConfig, ExtractError};

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
    cfg.out = dir.path().join("features.h5");
    cfg.progress = None;
    let summary = extract::run(&cfg, &AtomicBool::new(false));
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
        let n = prepared.rows.len();
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
