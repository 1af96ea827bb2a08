//! Every sub-command not covered elsewhere runs here as a process, on the tiny generated model
//! and images: `model cut` / `inspect`, `augment preview`, `bench`, `bench-classifiers`.

use crate::common;

use std::ffi::OsString;
use std::path::Path;

use common::fixtures::{image_folder, serial, tiny_backbone, tlearn_ok};

fn os(s: impl Into<OsString>) -> OsString {
    s.into()
}

#[test]
fn model_inspect_lists_tensors_and_cut_keeps_what_is_asked() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let listed = tlearn_ok(&[os("model"), os("inspect"), model.clone().into()]);
    assert!(
        listed.contains("outputs: block1_pool, block2_pool"),
        "{listed}"
    );
    let cut = dir.path().join("cut.onnx");
    tlearn_ok(&[
        os("model"),
        os("cut"),
        model.into(),
        os("--output"),
        os("block1_pool=first"),
        os("--out"),
        cut.clone().into(),
    ]);
    let listed = tlearn_ok(&[os("model"), os("inspect"), cut.into()]);
    assert!(listed.contains("outputs: first\n"), "{listed}");
    assert!(!listed.contains("block2"), "block 2 was pruned: {listed}");
}

#[test]
fn augment_preview_writes_a_grid_of_the_variants() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let images = image_folder(dir.path(), 1, 1);
    let out = dir.path().join("grid.png");
    tlearn_ok(&[
        os("augment"),
        os("preview"),
        images.join("class_0/img_00.png").into(),
        os("--copies"),
        os("3"),
        os("--tile"),
        os("16"),
        os("--out"),
        out.clone().into(),
    ]);
    let grid = image::open(&out).unwrap();
    // The original and 3 variants in 2 x 2 cells: the 40 x 30 image fits 16 x 12, 2-pixel gaps.
    assert_eq!((grid.width(), grid.height()), (2 * 18 + 2, 2 * 14 + 2));
}

/// Runs `tlearn ARGS --json FILE` and reads the JSON it wrote (which it also prints).
fn bench_json(args: &[OsString], file: &Path) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend([os("--json"), file.into()]);
    let printed: serde_json::Value = serde_json::from_str(&tlearn_ok(&all)).unwrap();
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert_eq!(printed, written);
    written
}

#[test]
fn benchmarks_report_their_measurements_as_json() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 3, 6);
    let cache = dir.path().join("f.h5");
    let features = [
        os("--data"),
        data.into(),
        os("--model"),
        model.into(),
        os("--layer"),
        os("block2_pool"),
        os("--pool"),
        os("avg"),
        os("--quiet"),
    ];
    let mut bench = vec![os("bench"), os("--batch"), os("4")];
    bench.extend(features.iter().cloned());
    let report = bench_json(&bench, &dir.path().join("bench.json"));
    assert_eq!(report["bench"], "features");
    assert_eq!(report["rows"], 18);
    assert!(report["pipeline_images_per_s"].as_f64().unwrap() > 0.0);

    let mut extract = vec![os("features"), os("--out"), cache.clone().into()];
    extract.extend(features.iter().cloned());
    tlearn_ok(&extract);
    let args = [os("bench-classifiers"), os("--features"), cache.into()];
    let report = bench_json(&args, &dir.path().join("classifiers.json"));
    let kinds: Vec<&str> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["classifier"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["svm", "logistic", "logistic-ovr"]);
}
