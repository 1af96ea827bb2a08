//! How to make auto's chosen run by hand, as data: the extraction and training settings of
//! each step. The program words each step as its users type it ([`AutoConfig::reproduce`]:
//! the command line renders `tlearn ...` lines), and the decision shows those lines.

use std::path::{Path, PathBuf};

use super::choose::{Candidate, Variant};
use super::{AutoConfig, RUN};
use crate::classify::Kind;
use crate::extract::ExtractConfig;

/// The steps that make the chosen run by hand, in order.
#[derive(Debug, Clone)]
pub struct Reproduce {
    /// The steps: what auto extracted, the chosen run from that cache, the same from scratch.
    pub steps: Vec<Step>,
}

/// One step: what it is for, and the work it does.
#[derive(Debug, Clone)]
pub struct Step {
    /// What the step is for ("the chosen run, from that cache").
    pub purpose: &'static str,
    /// The extractions and trainings it runs, in order.
    pub work: Vec<Work>,
}

/// One extraction or one training.
#[derive(Debug, Clone)]
pub enum Work {
    /// An extraction with these settings (`reprs` and `cache` as the step needs them).
    Extract(Box<ExtractConfig>),
    /// A training with these settings.
    Train(TrainStep),
}

/// The settings of a training that makes the chosen run.
#[derive(Debug, Clone)]
pub struct TrainStep {
    /// The classifier.
    pub kind: Kind,
    /// The cache it reads.
    pub cache: PathBuf,
    /// The representations it reads, when the cache holds others too.
    pub reprs: Option<Vec<String>>,
    /// The chosen C.
    pub c: f64,
    /// The chosen way of using the cache's rows.
    pub variant: Variant,
    /// Most solver iterations.
    pub max_iterations: u64,
    /// Refit on training + validation images before testing.
    pub refit_with_validation: bool,
    /// The run's name.
    pub run: String,
    /// The folder of runs.
    pub runs: PathBuf,
    /// The folder of reports.
    pub reports: PathBuf,
    /// The images (for the report's thumbnails).
    pub data: PathBuf,
}

/// The steps that make `chosen` by hand: from auto's cache `ex.cache`, and from scratch.
pub fn steps(cfg: &AutoConfig, ex: &ExtractConfig, chosen: &Candidate) -> Reproduce {
    let train = |cache: &Path, reprs: Option<Vec<String>>| {
        Work::Train(TrainStep {
            kind: chosen.kind,
            cache: cache.to_path_buf(),
            reprs,
            c: chosen.c,
            variant: chosen.variant,
            max_iterations: cfg.max_iterations,
            refit_with_validation: cfg.refit_with_validation,
            run: format!("{RUN}-by-hand"),
            runs: cfg.runs(),
            reports: cfg.reports(),
            data: ex.data.clone(),
        })
    };
    let alone = cfg.out.join("cache").join("chosen.h5");
    let extract_alone = ExtractConfig {
        reprs: chosen.representations(),
        cache: alone.clone(),
        ..ex.clone()
    };
    let step = |purpose, work| Step { purpose, work };
    Reproduce {
        steps: vec![
            step(
                "what auto extracted (one pass)",
                vec![Work::Extract(Box::new(ex.clone()))],
            ),
            step(
                "the chosen run, from that cache",
                vec![train(&ex.cache, Some(chosen.reprs.clone()))],
            ),
            step(
                "or from scratch, extracting the chosen representations only (the same columns)",
                vec![Work::Extract(Box::new(extract_alone)), train(&alone, None)],
            ),
        ],
    }
}

/// The steps in the library's own words (a program words them as its users type them).
pub fn plain(reproduce: &Reproduce) -> Vec<String> {
    reproduce
        .steps
        .iter()
        .map(|step| {
            let work: Vec<String> = step.work.iter().map(|w| format!("{w:?}")).collect();
            format!("# {}:\n{}", step.purpose, work.join("\n"))
        })
        .collect()
}
