//! A measurement probe, not a tlearn feature: per-image validation and test probabilities of a
//! few linear configurations on one cache, as `tlearn train --tta --refit-with-validation`
//! scores them (C chosen per split on validation; the validation images scored by the
//! training-only fit, the test images by the refit), for `scripts/ensemble-probe.py` to
//! average. SVM margins become probabilities with the temperature fitted on the validation
//! margins, as a saved model's calibration is.
//!
//! `cargo run --release --example ensemble_probe -- CACHE OUT.json KIND:REPRS:NORM...`, where
//! KIND is svm or logistic, REPRS comma-separated `layer=pooling`, NORM none, l2 or power; the
//! environment variable COPIES=K reads only the first K copies of each image.

use std::path::Path;

use serde_json::{json, Value};
use tlearn::backbone::Repr;
use tlearn::classify::data::CacheData;
use tlearn::classify::train::{self, TrainConfig};
use tlearn::classify::{Kind, Normalize};
use tlearn::finetune::ensemble::{LinearScores, Scores};

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [cache, out, specs @ ..] = args.as_slice() else {
        return Err("usage: ensemble_probe CACHE OUT.json KIND:REPRS:NORM...".into());
    };
    let data = CacheData::load(Path::new(cache))?;
    let copies_used = std::env::var("COPIES")
        .ok()
        .map(|k| k.parse())
        .transpose()?;
    let mut members = Vec::new();
    for spec in specs {
        members.push(member(&data, spec, copies_used)?);
        eprintln!("{spec}: done");
    }
    std::fs::write(out, serde_json::to_string(&members)?)?;
    Ok(())
}

/// One configuration's per-split probabilities: `{"spec", "splits": [{"c", "val", "test"}]}`,
/// each image as `[label, [probability per class]]`.
fn member(data: &CacheData, spec: &str, copies_used: Option<u32>) -> Result<Value, Error> {
    let [kind, reprs, normalize] = spec.split(':').collect::<Vec<_>>()[..] else {
        return Err(format!("{spec}: expected KIND:REPRS:NORM").into());
    };
    let kind = match kind {
        "svm" => Kind::Svm,
        "logistic" => Kind::Logistic,
        other => return Err(format!("{other}: svm or logistic").into()),
    };
    let reprs = reprs
        .split(',')
        .map(|r| r.replace('=', ":").parse::<Repr>())
        .collect::<Result<Vec<_>, _>>()?;
    let normalize = match normalize {
        "l2" => Normalize::L2,
        "power" => Normalize::Power,
        _ => Normalize::None,
    };
    let cfg = TrainConfig {
        tta: true,
        refit_with_validation: true,
        refit_on_all_labelled: false,
        normalize,
        copies_used,
        ..TrainConfig::new(kind)
    };
    let sub = data.using(&reprs)?;
    let (outcome, _) = train::run(&sub, &cfg, &mut |_: String| {})?;
    let pairs = |s: &Scores| -> Vec<(usize, Vec<f32>)> {
        s.images
            .iter()
            .map(|(_, label)| *label)
            .zip(s.p.clone())
            .collect()
    };
    let splits: Vec<Value> = outcome
        .splits
        .iter()
        .map(|s| {
            let scores = LinearScores::from_split(kind, sub.class_names.len(), s);
            json!({"c": scores.c, "val": pairs(&scores.val), "test": pairs(&scores.test)})
        })
        .collect();
    Ok(json!({"spec": spec, "splits": splits}))
}
