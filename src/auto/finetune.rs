//! The table's large-data rows: the method's two fine-tuning stages on auto's own data, run
//! when the data is large (or when asked), and kept only if they beat the chosen linear
//! classifier on validation images.
//!
//! Stage 1 trains a new head on the deepest layer, flattened, read from auto's cache (no new
//! backbone pass). Stage 2 starts from that head and also trains every convolution after the
//! layer before the deepest (VGG16: block 5's three), from their pretrained weights; that layer
//! is extracted flattened into a second cache, as stage 2 needs its full maps.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{AutoConfig, AutoError, Progress};
use crate::backbone::{Pooling, Repr};
use crate::extract::{self, ExtractConfig};
use crate::finetune::network::Tail;
use crate::finetune::run::{RunConfig, SplitEvent, Summary, DEFAULT_HIDDEN};
use crate::finetune::train::CheckedParams;
use crate::finetune::{HeadPool, Unfreeze};
use crate::progress::{Observer, Stop};
use crate::report::RunReport;
use crate::runs::{self, FinetuneEvent, FinetuneRun};

/// Run names of the two stages (under `<out>/runs/` and `<out>/reports/`).
pub const STAGE_RUNS: [&str; 2] = ["auto-finetune-head", "auto-finetune"];

/// When auto runs the fine-tuning stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum When {
    /// When the data is large, as the method's table says.
    #[default]
    Large,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// One fine-tuning stage: what it trained and how it scored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stage {
    /// Its run name.
    pub run: String,
    /// What trained: the head alone, or convolutions and the head.
    pub trained: String,
    /// The cache it read and which representation.
    pub input: String,
    /// Validation accuracy of the kept epoch, mean over the splits: the score the choice uses.
    pub val_accuracy: f64,
    /// Validation accuracy of each split.
    pub val_per_split: Vec<f64>,
    /// Test accuracy of each split (for the appendix; not used for choosing).
    pub test_accuracy: Vec<f64>,
    /// Its report (the chosen run's report when it wins).
    #[serde(skip)]
    pub report: RunReport,
    /// Its exported model (split 0's), usable with `tlearn predict`.
    pub model: Option<PathBuf>,
}

/// Both stages, in order. `deepest` is the deepest candidate layer, `before` the backbone's
/// layer before it; `splits` the seeded splits to run.
pub fn stages(
    cfg: &AutoConfig,
    deepest: &str,
    before: &str,
    params: &CheckedParams,
    stop: &Stop,
    progress: &mut (dyn Observer<Progress> + Send),
) -> Result<Vec<Stage>, AutoError> {
    let head = stage(
        cfg,
        STAGE_RUNS[0],
        (&cfg.cache(), flattened(deepest)),
        (Unfreeze::Last(0), None),
        params,
        stop,
        progress,
    )?;
    progress.observe(Progress::Phase(format!(
        "extracting {before}, flattened, for stage 2 into {}",
        stage2_cache(cfg).display()
    )));
    let ex = ExtractConfig {
        reprs: vec![flattened(before)],
        cache: stage2_cache(cfg),
        ..cfg.extract.clone()
    };
    if let Some(stopped) = extract::run(&ex, stop)?.interrupted {
        return Err(stopped.into());
    }
    let head_dir = cfg.runs().join(STAGE_RUNS[0]);
    let block = stage(
        cfg,
        STAGE_RUNS[1],
        (&stage2_cache(cfg), flattened(before)),
        (Unfreeze::All, Some(&head_dir)),
        params,
        stop,
        progress,
    )?;
    Ok(vec![head, block])
}

impl Stage {
    /// This stage's report renamed as auto's run, and its model (`linear` if it has none).
    pub fn as_auto(&self, linear: PathBuf) -> (RunReport, PathBuf) {
        let mut report = self.report.clone();
        report.run = super::RUN.to_string();
        (report, self.model.clone().unwrap_or(linear))
    }
}

/// The cache of stage 2's input layer.
pub fn stage2_cache(cfg: &AutoConfig) -> PathBuf {
    cfg.out.join("cache").join("finetune-input.h5")
}

fn flattened(layer: &str) -> Repr {
    Repr {
        layer: layer.to_string(),
        pooling: Pooling::Flatten,
    }
}

/// One stage on every split, its report, and its scores; stopping on request is
/// [`crate::progress::Interrupted`] (checkpoints are kept and resume).
fn stage(
    cfg: &AutoConfig,
    name: &str,
    (cache, repr): (&Path, Repr),
    (unfreeze, init_from): (Unfreeze, Option<&Path>),
    params: &CheckedParams,
    stop: &Stop,
    progress: &mut (dyn Observer<Progress> + Send),
) -> Result<Stage, AutoError> {
    let run = FinetuneRun {
        net: RunConfig {
            cache: cache.to_path_buf(),
            repr: Some(repr.clone()),
            split: 0,
            backbone: cfg.extract.backbone.clone(),
            unfreeze,
            pool: HeadPool::Avg,
            hidden: DEFAULT_HIDDEN,
            out: cfg.runs().join(name),
            init_from: init_from.map(Path::to_path_buf),
        },
        splits: (0..cfg.extract.splits).collect(),
        data: Some(cfg.extract.data.clone()),
    };
    let mut trained = String::new();
    let done =
        runs::finetune_splits(
            &run,
            name,
            params,
            stop,
            &mut |event: FinetuneEvent<'_>| match event {
                FinetuneEvent::Start(tail) => {
                    trained = what_trains(tail, &repr);
                    progress.observe(Progress::Phase(format!("fine-tuning {name}: {trained}")));
                }
                FinetuneEvent::Split(SplitEvent::Epoch(split, e)) => {
                    progress.observe(Progress::Step(format!(
                        "{name} split {split} epoch {}: validation accuracy {:.2}% ({:.1} s)",
                        e.epoch,
                        100.0 * e.val_accuracy,
                        e.train_seconds
                    )))
                }
                FinetuneEvent::Split(_) => {}
            },
        )?;
    let input = format!("{} ({repr})", cache.display());
    Ok(Stage::scored(
        name,
        trained,
        input,
        done.report,
        &done.summaries,
    ))
}

/// What a stage trains, in words: a new head, or convolutions and the stage-1 head.
fn what_trains(tail: &Tail, repr: &Repr) -> String {
    match tail.trainable.len() {
        0 => format!("a new head on {repr}"),
        n => format!(
            "{n} convolution(s) ({}) and the stage-1 head, from {repr}",
            runs::conv_names(&tail.trainable)
        ),
    }
}

impl Stage {
    /// The stage `name` scored by its splits' `summaries`: validation accuracy averaged over
    /// them, split 0's model.
    fn scored(
        name: &str,
        trained: String,
        input: String,
        report: RunReport,
        summaries: &[Summary],
    ) -> Stage {
        let val_per_split: Vec<f64> = summaries.iter().map(|s| s.val_accuracy).collect();
        Stage {
            run: name.to_string(),
            trained,
            input,
            val_accuracy: val_per_split.iter().sum::<f64>() / val_per_split.len().max(1) as f64,
            val_per_split,
            test_accuracy: summaries.iter().map(|s| s.test_accuracy).collect(),
            model: summaries.first().and_then(|s| s.model.clone()),
            report,
        }
    }
}
