//! A fine-tuning run's evaluation report, built like a linear classifier's from the splits'
//! summaries, so `tlearn report` compares both.

use std::path::Path;

use super::run::{FinetuneMethod, Method, ModelInfo, RunOutcome, SplitFit, SplitResult};
use super::RunReport;
use crate::cache::FeatureCache;
use crate::classify::train::Scored;
use crate::finetune::graph::map_dims;
use crate::finetune::network::Tail;
use crate::finetune::run::Summary;
use crate::finetune::train::CheckedParams;
use crate::finetune::{FinetuneError, HeadPool};
use crate::numeric::argmax;

/// What a fine-tuning run trained: the convolutions of `tail`, a `pool` head of `hidden` units.
pub fn method(
    tail: &Tail,
    pool: HeadPool,
    hidden: usize,
    params: &CheckedParams,
    init_from: Option<&Path>,
) -> Method {
    Method::Finetune(FinetuneMethod {
        trained_convs: tail.trainable.iter().map(|c| c.name.clone()).collect(),
        pool,
        head_input: pool.output_len(&map_dims(&tail.trainable_input(), &tail.trainable)),
        hidden,
        params: (**params).clone(),
        init_from: init_from.map(|d| d.display().to_string()),
    })
}

/// The report of run `name` (split K in `run_dir/split-K`) on `cache`; `data_root` gives the
/// gallery its thumbnails.
pub fn run_report(
    name: &str,
    method: Method,
    cache: &Path,
    data_root: Option<&Path>,
    run_dir: &Path,
    summaries: &[Summary],
) -> Result<RunReport, FinetuneError> {
    let opened = FeatureCache::open(cache)?;
    let outcome = RunOutcome {
        method,
        cache: cache.display().to_string(),
        identity: opened.identity.clone(),
        class_names: opened.class_names()?,
        splits: summaries.iter().map(split_result).collect(),
    };
    let model = summaries.first().and_then(|s| {
        s.model.as_ref().map(|m| ModelInfo {
            path: m.display().to_string(),
            trained_on: format!("split {}", s.split),
            chosen: s.best_epoch.to_string(),
        })
    });
    let root = data_root.map(|d| d.display().to_string());
    let mut report = RunReport::new(name, &outcome, root, model);
    report.curves = summaries
        .iter()
        .map(|s| {
            let split = run_dir.join(format!("split-{}", s.split));
            split.join("curves.png").display().to_string()
        })
        .collect();
    Ok(report)
}

/// How a split was trained and how its test images scored.
fn split_result(s: &Summary) -> SplitResult {
    let fit_seconds = s
        .history
        .iter()
        .map(|e| e.train_seconds + e.val_seconds)
        .sum();
    SplitResult {
        fit: SplitFit {
            split: s.split,
            chosen: format!("{} of {}", s.best_epoch, s.epochs),
            val_accuracy: s.val_accuracy,
            grid: Vec::new(),
            train_rows: s.rows[0],
            val_images: s.rows[1],
            fit_seconds,
            predict_seconds: s.test_seconds,
        },
        test: s
            .test_images
            .iter()
            .zip(&s.test_probabilities)
            .map(|((path, label), p)| Scored {
                path: path.clone(),
                label: *label,
                predicted: argmax(p.iter().copied()),
                scores: p.clone(),
            })
            .collect(),
    }
}
