//! How the command line spells the settings the library names in its messages, and the
//! commands that make auto's chosen run by hand: the library knows no flag.

use std::path::Path;

use tlearn::auto::reproduce::{Reproduce, TrainStep, Work};
use tlearn::extract::ExtractConfig;
use tlearn::options::Opt;

/// The flag that sets `option` (installed with [`tlearn::options::spell_with`]).
pub fn flag(option: Opt) -> &'static str {
    match option {
        Opt::Data => "--data",
        Opt::Unlabeled => "--unlabeled",
        Opt::Backbone => "--backbone",
        Opt::Layer => "--layer",
        Opt::Pool => "--pool",
        Opt::Repr => "--repr",
        Opt::Copies => "--copies",
        Opt::Size => "--size",
        Opt::Sizes => "--sizes",
        Opt::Poolings => "--poolings",
        Opt::SplitFractions => "--split",
        Opt::Splits => "--splits",
        Opt::Batch => "--batch",
        Opt::Threads => "--threads",
        Opt::Strict => "--strict",
        Opt::PerClass => "--per-class",
        Opt::Verbose => "--verbose",
        Opt::Ep => "--ep",
        Opt::Cache => "--cache",
        Opt::Shard => "--shard",
        Opt::Out => "--out",
        Opt::Json => "--json",
        Opt::Npy => "--npy",
        Opt::Partial => "--partial",
        Opt::Runs => "--runs",
        Opt::Reports => "--reports",
        Opt::Run => "--run",
        Opt::Use => "--use",
        Opt::C => "--c",
        Opt::MaxIterations => "--max-iterations",
        Opt::Tta => "--tta",
        Opt::CopiesUsed => "--copies-used",
        Opt::NoCopies => "--no-copies",
        Opt::NoRefitWithValidation => "--no-refit-with-validation",
        Opt::Model => "--model",
        Opt::Finetune => "--finetune",
        Opt::NoFinetune => "--no-finetune",
        Opt::Unfreeze => "--unfreeze",
        Opt::LrNew => "--lr-new",
        Opt::LrPretrained => "--lr-pretrained",
        Opt::Top => "--top",
        Opt::Images => "--images",
        Opt::Percentile => "--percentile",
    }
}

/// Auto's steps as `tlearn` commands, one block per step under a `#` line saying what it is for.
pub fn reproduce(reproduce: &Reproduce) -> Vec<String> {
    reproduce
        .steps
        .iter()
        .map(|step| {
            let lines: Vec<String> = step
                .work
                .iter()
                .map(|work| match work {
                    Work::Extract(ex) => features(ex),
                    Work::Train(train) => train_command(train),
                })
                .collect();
            format!("# {}:\n{}", step.purpose, lines.join("\n"))
        })
        .collect()
}

/// The `tlearn features` command of an extraction.
fn features(ex: &ExtractConfig) -> String {
    let reprs: Vec<String> = ex.reprs.iter().map(ToString::to_string).collect();
    format!(
        "tlearn features --data {} --backbone {} --repr {} --augment {} --copies {}{}{} --split {} --splits {} --seed {}{} --cache {}",
        ex.data.display(),
        ex.backbone.display(),
        reprs.join(","),
        ex.recipe,
        ex.copies,
        ex.size.map_or(String::new(), |s| format!(" --size {s}")),
        if ex.augment_all { " --augment-all" } else { "" },
        ex.split,
        ex.splits,
        ex.seed,
        ex.per_class.map_or(String::new(), |n| format!(" --per-class {n}")),
        ex.cache.display()
    )
}

/// The `tlearn train` command of a training.
fn train_command(t: &TrainStep) -> String {
    let path = |p: &Path| p.display().to_string();
    let mut variant = String::new();
    if !t.variant.train_copies {
        variant.push_str(" --no-copies");
    }
    if let Some(k) = t.variant.copies_used {
        variant.push_str(&format!(" --copies-used {k}"));
    }
    if t.variant.tta {
        variant.push_str(" --tta");
    }
    if !t.variant.normalize.is_none() {
        variant = format!("{variant} --normalize {}", t.variant.normalize.name());
    }
    format!(
        "tlearn train {} --cache {}{} --c {:e}{variant} --max-iterations {}{} --run {} --runs {} --reports {} --data {}",
        t.kind,
        path(&t.cache),
        t.reprs.as_ref().map_or(String::new(), |r| format!(" --use {}", r.join(","))),
        t.c,
        t.max_iterations,
        if t.refit_with_validation { " --refit-with-validation" } else { "" },
        t.run,
        path(&t.runs),
        path(&t.reports),
        path(&t.data)
    )
}
