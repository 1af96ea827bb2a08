//! `make bench`'s auto timing: what one flattened extraction of the deepest layer plus one SVM
//! grid cost on the same data, to set against an auto run's phases.

use crate::progress::Stop;
use std::time::Instant;

use serde::Serialize;

use super::{AutoConfig, AutoError, Decision, PhaseTime};
use crate::backbone::Pooling;
use crate::classify::data::CacheData;
use crate::classify::train;
use crate::classify::Kind;
use crate::extract::{self, ExtractConfig};

/// Seconds of an auto run against the baseline, as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct AutoBench {
    /// Benchmark name.
    pub bench: &'static str,
    /// Images of the data set.
    pub images: usize,
    /// Rows the auto run extracted itself (fewer when its cache already existed: then its
    /// extraction time does not count).
    pub auto_rows_computed: usize,
    /// Seconds of each auto phase.
    pub auto_phases: Vec<PhaseTime>,
    /// All auto phases.
    pub auto_seconds: f64,
    /// One extraction of the deepest layer, flattened, with the same images and copies.
    pub baseline_extract_seconds: f64,
    /// One SVM over the same C grid and splits on it.
    pub baseline_svm_seconds: f64,
    /// Extraction plus SVM grid.
    pub baseline_seconds: f64,
    /// auto / baseline; the goal is 1.5 or less.
    pub ratio: f64,
}

/// Times the baseline (into a temporary cache, removed afterwards) after `decision`'s auto run.
pub fn against_baseline(
    cfg: &AutoConfig,
    decision: &Decision,
    stop: &Stop,
) -> Result<AutoBench, AutoError> {
    let dir = std::env::temp_dir().join(format!("tlearn-bench-auto-{}", std::process::id()));
    let deepest = decision.layers.last().cloned().unwrap_or_default();
    let ex = ExtractConfig {
        layers: vec![deepest],
        pooling: Pooling::Flatten,
        reprs: Vec::new(),
        cache: dir.join("flatten.h5"),
        progress: None,
        ..cfg.extract.clone()
    };
    let _ = std::fs::remove_dir_all(&dir);
    let timed = (|| -> Result<(f64, f64), AutoError> {
        let start = Instant::now();
        extract::run(&ex, stop)?;
        let extract_seconds = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let data = CacheData::load(&ex.cache)?;
        train::run(&data, &cfg.train_config(Kind::Svm), &mut |_: String| {})?;
        Ok((extract_seconds, start.elapsed().as_secs_f64()))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let (baseline_extract_seconds, baseline_svm_seconds) = timed?;
    let auto_seconds: f64 = decision.phases.iter().map(|p| p.seconds).sum();
    let baseline_seconds = baseline_extract_seconds + baseline_svm_seconds;
    Ok(AutoBench {
        bench: "auto",
        images: decision.stats.images,
        auto_rows_computed: decision.rows_computed,
        auto_phases: decision.phases.clone(),
        auto_seconds,
        baseline_extract_seconds,
        baseline_svm_seconds,
        baseline_seconds,
        ratio: auto_seconds / baseline_seconds.max(1e-9),
    })
}
