//! Never losing a user's work: run names that would leave their folder, outputs that would
//! overwrite each other or foreign files, and tampered caches and models. Every case must end
//! in a clear error (exit code 1, never a panic's 101), with nothing the user had lost.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::AtomicBool;

use common::fixtures::{config, image_folder, python, repo, serial, tiny_backbone, tlearn};
use tlearn::backbone::Pooling;

/// A complete tiny cache: 3 classes of 8 images, average-pooled, two splits.
fn tiny_cache(dir: &Path) -> PathBuf {
    let model = tiny_backbone(dir);
    let data = image_folder(dir, 3, 8);
    let out = dir.join("tiny.h5");
    let mut cfg = config(&data, &model, &out);
    cfg.pooling = Pooling::Avg;
    cfg.splits = 2;
    tlearn::extract::run(&cfg, &AtomicBool::new(false)).unwrap();
    out
}

/// `tlearn train svm` on `cache` into `runs` / `reports` (extra arguments after).
fn train(cache: &Path, runs: &Path, reports: &Path, extra: &[&str]) -> Output {
    tlearn()
        .args(["train", "svm", "--quiet", "--c", "0.1"])
        .arg("--cache")
        .arg(cache)
        .arg("--runs")
        .arg(runs)
        .arg("--reports")
        .arg(reports)
        .args(extra)
        .output()
        .unwrap()
}

/// Asserts a clear refusal: exit code 1 (not a panic) and `expected` in the message.
fn assert_refused(out: &Output, expected: &str, case: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{case}: {stderr}");
    assert!(stderr.contains(expected), "{case}: {stderr}");
    assert!(!stderr.contains("panicked"), "{case}: {stderr}");
}

/// Every file below `dir` with its bytes, to show nothing changed.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn run_names_that_leave_their_folder_are_refused_and_nothing_is_deleted() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let cache = tiny_cache(dir.path());
    let proj = dir.path().join("proj");
    let (runs, reports) = (proj.join("runs"), proj.join("reports"));
    let ok = train(&cache, &runs, &reports, &["--run", "kept"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let before = snapshot(dir.path());
    for name in ["", ".", "..", "../../escape", "a/b", ".hidden", "tab\tname"] {
        let out = train(&cache, &runs, &reports, &["--run", name]);
        assert_refused(&out, "run name", name);
        assert_eq!(snapshot(dir.path()), before, "{name:?} changed files");
    }
    // Fine-tuning's runs follow the same rules, also through the deprecated --out folder.
    for (flag, value) in [
        ("--run", "."),
        ("--run", "../x"),
        ("--out", ".."),
        ("--out", "runs/.."),
    ] {
        let out = tlearn()
            .args(["finetune", "train", "--cache"])
            .arg(&cache)
            .args([flag, value])
            .arg("--reports")
            .arg(&reports)
            .current_dir(&proj)
            .output()
            .unwrap();
        assert_refused(&out, "run name", value);
        assert_eq!(snapshot(dir.path()), before, "{flag} {value} changed files");
    }
}

#[test]
fn outputs_never_overwrite_each_other_or_foreign_files() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let cache = tiny_cache(dir.path());
    let x = dir.path().join("x");
    // A model from an earlier run, in a folder that --reports would name too.
    let first = train(&cache, &x, &dir.path().join("r"), &["--run", "z"]);
    assert!(first.status.success());
    let model = std::fs::read(x.join("z/model.json")).unwrap();
    let out = train(&cache, &x, &x, &["--run", "z"]);
    assert_refused(&out, "different folders", "--runs X --reports X");
    let out = train(&cache, &x, &dir.path().join("./x"), &["--run", "z"]);
    assert_refused(&out, "different folders", "--runs X --reports ./X");
    assert_eq!(std::fs::read(x.join("z/model.json")).unwrap(), model);

    // A report folder that holds a file tlearn did not write is never replaced.
    let reports = dir.path().join("reports");
    std::fs::create_dir_all(reports.join("mine")).unwrap();
    std::fs::write(reports.join("mine/notes.txt"), "my notes").unwrap();
    let out = train(
        &cache,
        &dir.path().join("runs"),
        &reports,
        &["--run", "mine"],
    );
    assert_refused(&out, "notes.txt", "foreign file in the report folder");
    assert_eq!(
        std::fs::read(reports.join("mine/notes.txt")).unwrap(),
        b"my notes"
    );
    assert!(!dir.path().join("runs/mine").exists(), "nothing trained");

    // tlearn's own report is replaced whole, with no temporary folder left.
    let runs = dir.path().join("runs");
    for _ in 0..2 {
        let out = train(&cache, &runs, &reports, &["--run", "again"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(reports.join("again/report.html").is_file());
    let hidden: Vec<_> = std::fs::read_dir(&reports)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "left behind: {hidden:?}");
}

#[test]
fn tampered_caches_are_refused_before_anything_is_written() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let cache = tiny_cache(dir.path());
    let tampered = dir.path().join("tampered");
    std::fs::create_dir_all(&tampered).unwrap();
    let made = std::process::Command::new(python())
        .arg(repo().join("tests/python/tamper.py"))
        .arg(&cache)
        .arg(&tampered)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let cases: Vec<String> = String::from_utf8(made.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert!(cases.len() >= 15, "{cases:?}");
    let (runs, reports) = (dir.path().join("runs"), dir.path().join("reports"));
    for case in &cases {
        let file = tampered.join(format!("{case}.h5"));
        // A model already saved under this run name must survive the refusal.
        let good = train(&cache, &runs, &reports, &["--run", case]);
        assert!(good.status.success());
        let before = snapshot(dir.path().join("runs").as_path());
        let out = train(&file, &runs, &reports, &["--run", case]);
        assert_refused(&out, "damaged", case);
        assert_eq!(snapshot(&runs), before, "{case}: a model changed");
        // Fine-tuning reads caches through the same check.
        let err = tlearn::finetune::data::Data::from_cache(&file, 0, None, None).unwrap_err();
        assert!(err.to_string().contains("damaged"), "{case}: {err}");
    }
}

#[test]
fn models_with_unusable_numbers_are_refused_by_predict() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let cache = tiny_cache(dir.path());
    let runs = dir.path().join("runs");
    let out = train(&cache, &runs, &dir.path().join("reports"), &["--run", "m"]);
    assert!(out.status.success());
    let path = runs.join("m/model.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let image = dir.path().join("images/class_0/img_00.png");
    for (case, field, value) in [
        ("zero scale", "scale", serde_json::json!(0.0)),
        ("infinite weights", "weights", serde_json::json!(1e39)),
    ] {
        let mut model: serde_json::Value = serde_json::from_str(&text).unwrap();
        let values = model[field].as_array_mut().unwrap();
        values.iter_mut().for_each(|v| *v = value.clone());
        let bad = dir.path().join("bad.json");
        // JSON has no NaN; 1e39 is beyond f32 and reads as infinity.
        std::fs::write(&bad, model.to_string()).unwrap();
        let out = tlearn()
            .args(["predict", "--model"])
            .arg(&bad)
            .arg("--backbone")
            .arg(dir.path().join("tiny.onnx"))
            .arg(&image)
            .output()
            .unwrap();
        assert_refused(&out, "not a usable tlearn model", case);
        assert!(out.stdout.is_empty(), "{case}: printed scores");
    }
}
