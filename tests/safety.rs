//! Never losing a user's work: run names that would leave their folder, outputs that would
//! overwrite each other or foreign files, and tampered caches and models. Every case must end
//! in a clear error (exit code 1, never a panic's 101), with nothing the user had lost.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::fixtures::{image_folder, python, repo, serial, tiny_backbone, tlearn};
use tlearn::backbone::Pooling;

/// A complete tiny cache: 3 classes of 8 images, average-pooled, two splits.
fn tiny_cache(dir: &Path) -> PathBuf {
    common::fixtures::tiny_cache(dir, |c| c.pooling = Pooling::Avg)
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
    let made = common::fixtures::command(python())
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

// ---- Issue 20: nothing tlearn did not make is ever overwritten ----

/// Runs `cmd` with a time limit: a hang fails the test instead of blocking the suite.
fn run_limited(mut cmd: std::process::Command, case: &str) -> Output {
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{case}: still running after 120 s (a hang)");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Asserts a refusal that names `file` and `flag`, with no panic.
fn assert_names(out: &Output, file: &Path, flag: &str, case: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_refused(out, &file.display().to_string(), case);
    assert!(stderr.contains(flag), "{case}: no {flag} in {stderr}");
}

/// `tlearn auto` of `data` with the tiny `model` into `out`, small and fast settings.
fn auto_command(data: &Path, model: &Path, out: &Path) -> std::process::Command {
    let mut cmd = tlearn();
    cmd.args([
        "auto",
        "--quiet",
        "--copies",
        "1",
        "--splits",
        "2",
        "--no-finetune",
    ])
    .arg("--data")
    .arg(data)
    .arg("--backbone")
    .arg(model)
    .arg("--out")
    .arg(out);
    cmd
}

/// [`auto_command`] run, plus `extra` arguments.
fn auto(data: &Path, model: &Path, out: &Path, extra: &[&std::ffi::OsStr]) -> Output {
    let mut cmd = auto_command(data, model, out);
    cmd.args(extra);
    run_limited(cmd, "auto")
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

#[test]
fn item_1_auto_json_never_replaces_a_file_tlearn_did_not_write_or_its_own_outputs() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 3, 6);
    let out = dir.path().join("out");
    // auto's own model and report, made as auto makes them (train into out/runs/auto).
    let cache = tiny_cache(&dir.path().join("c"));
    let made = train(
        &cache,
        &out.join("runs"),
        &out.join("reports"),
        &["--run", "auto"],
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "my notes").unwrap();
    let before = snapshot(dir.path());
    let image = data.join("class_0/img_00.png");
    let cases = [
        ("a user's file", notes.clone()),
        ("an input image", image),
        ("the run's own model", out.join("runs/auto/model.json")),
        ("the run's own report", out.join("reports/auto/report.json")),
        ("the cache", out.join("cache/features.h5")),
        ("the backbone", model.clone()),
    ];
    for (case, path) in cases {
        let got = auto(&data, &model, &out, &[os("--json"), path.as_os_str()]);
        assert_names(&got, &path, "--json", case);
        assert_eq!(snapshot(dir.path()), before, "{case}: files changed");
        assert!(!out.join("cache").exists(), "{case}: extracted first");
    }
}

#[test]
fn item_9_values_checkable_before_work_fail_before_extraction() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 3, 6);
    let out = dir.path().join("out");
    let before = snapshot(dir.path());
    for c in ["0", "nan", "inf", "-1", "1e-400", "0.1,0"] {
        let got = auto(&data, &model, &out, &[os(&format!("--c={c}"))]);
        assert_refused(&got, "--c", c);
        assert_eq!(snapshot(dir.path()), before, "--c {c}");
        assert!(!out.exists(), "--c {c}: work started");
    }
    let folder = dir.path().join("folder");
    std::fs::create_dir_all(&folder).unwrap();
    let got = auto(&data, &model, &out, &[os("--json"), folder.as_os_str()]);
    assert_names(&got, &folder, "--json", "--json a folder");
    assert!(!out.exists(), "--json a folder: work started");
    let file = dir.path().join("out-file");
    std::fs::write(&file, "mine").unwrap();
    let got = auto(&data, &model, &file, &[]);
    assert_names(&got, &file, "--out", "--out a file");
    // A file where auto keeps its cache folder: named, with what to do (not "File exists").
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("cache"), "mine").unwrap();
    let got = auto(&data, &model, &out, &[]);
    assert_names(&got, &out.join("cache"), "--out", "O/cache a file");
    assert!(!String::from_utf8_lossy(&got.stderr).contains("File exists"));
    assert_eq!(std::fs::read(out.join("cache")).unwrap(), b"mine");
    assert_eq!(std::fs::read(&file).unwrap(), b"mine");
}

/// `tlearn model quantize` of the tiny backbone into `out`.
fn quantize(model: &Path, data: &Path, out: &Path) -> Output {
    let mut cmd = tlearn();
    cmd.args(["model", "quantize"])
        .arg(model)
        .arg("--calibrate")
        .arg(data)
        .args(["--images", "3", "--out"])
        .arg(out);
    run_limited(cmd, "quantize")
}

#[test]
fn item_2_quantize_replaces_neither_a_foreign_model_nor_its_sibling_toml() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 3);
    let user = dir.path().join("user");
    std::fs::create_dir_all(&user).unwrap();
    std::fs::write(user.join("x.onnx"), "my model").unwrap();
    std::fs::write(user.join("y.toml"), "my settings").unwrap();
    std::fs::write(user.join("z.toml"), "my settings").unwrap();
    let before = snapshot(dir.path());
    let cases = [
        ("a foreign model", user.join("x.onnx"), user.join("x.onnx")),
        (
            "a foreign sibling .toml",
            user.join("y.onnx"),
            user.join("y.toml"),
        ),
        (
            "--out x.dat beside x.toml",
            user.join("z.dat"),
            user.join("z.toml"),
        ),
        ("the input", model.clone(), model.clone()),
        (
            "the input's descriptor",
            dir.path().join("tiny.dat"),
            dir.path().join("tiny.dat"),
        ),
    ];
    for (case, out, named) in cases {
        let got = quantize(&model, &data, &out);
        assert_names(&got, &named, "--out", case);
        assert_eq!(snapshot(dir.path()), before, "{case}: files changed");
    }
    // A folder: said so, not "Not a directory".
    for out in [format!("{}/", user.display()), user.display().to_string()] {
        let got = quantize(&model, &data, Path::new(&out));
        assert_refused(&got, "folder", &out);
        assert!(!String::from_utf8_lossy(&got.stderr).contains("Not a directory"));
    }
    // Its own output is replaced on a rerun.
    let own = dir.path().join("int8/own.onnx");
    for _ in 0..2 {
        let got = quantize(&model, &data, &own);
        assert!(
            got.status.success(),
            "{}",
            String::from_utf8_lossy(&got.stderr)
        );
    }
    assert!(own.with_extension("toml").is_file());
    assert_eq!(
        snapshot(&user),
        before
            .iter()
            .filter(|(p, _)| p.starts_with(&user))
            .cloned()
            .collect::<Vec<_>>()
    );
}

#[test]
fn item_3_model_cut_never_writes_onto_its_input() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let before = snapshot(dir.path());
    let same = dir.path().join(".").join("tiny.onnx");
    let link = dir.path().join("link.onnx");
    std::os::unix::fs::symlink(&model, &link).unwrap();
    for out in [model.clone(), same, link.clone()] {
        let mut cmd = tlearn();
        cmd.args(["model", "cut"])
            .arg(&model)
            .args(["--output", "block1_pool", "--out"])
            .arg(&out);
        let got = run_limited(cmd, "cut");
        assert_names(&got, &out, "--out", &out.display().to_string());
        std::fs::remove_file(&link).ok();
        assert_eq!(snapshot(dir.path()), before, "{}", out.display());
        std::os::unix::fs::symlink(&model, &link).unwrap();
    }
}

/// `tlearn report --reports reports`.
fn report(reports: &Path) -> Output {
    let mut cmd = tlearn();
    cmd.args(["report", "--quiet", "--reports"]).arg(reports);
    run_limited(cmd, "report")
}

#[test]
fn item_4_report_never_replaces_a_users_index_or_comparison() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let cache = tiny_cache(dir.path());
    let reports = dir.path().join("reports");
    let made = train(&cache, &dir.path().join("runs"), &reports, &["--run", "r"]);
    assert!(made.status.success());
    for name in ["index.html", "index.md", "comparison.json"] {
        let file = reports.join(name);
        std::fs::write(&file, "mine").unwrap();
        let before = snapshot(dir.path());
        let got = report(&reports);
        assert_names(&got, &file, "--reports", name);
        assert_eq!(snapshot(dir.path()), before, "{name}: files changed");
        std::fs::remove_file(&file).unwrap();
    }
    for _ in 0..2 {
        let got = report(&reports);
        assert!(
            got.status.success(),
            "{}",
            String::from_utf8_lossy(&got.stderr)
        );
    }
}

#[test]
fn item_5_run_folders_are_protected_by_record_not_by_file_name() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let cache = tiny_cache(dir.path());
    let (runs, reports) = (dir.path().join("runs"), dir.path().join("reports"));
    // A user's own model.json and report.md, named as tlearn names its files.
    std::fs::create_dir_all(runs.join("m")).unwrap();
    std::fs::write(runs.join("m/model.json"), "{\"mine\": 1}").unwrap();
    std::fs::create_dir_all(reports.join("r")).unwrap();
    std::fs::write(reports.join("r/report.md"), "# my report").unwrap();
    // A run folder that is a link to a folder of the user's.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("keep.txt"), "keep").unwrap();
    std::os::unix::fs::symlink(&elsewhere, runs.join("l")).unwrap();
    let before = snapshot(dir.path());
    for (run, named) in [
        ("m", runs.join("m/model.json")),
        ("r", reports.join("r")),
        ("l", runs.join("l")),
    ] {
        let got = train(&cache, &runs, &reports, &["--run", run]);
        assert_refused(&got, &named.display().to_string(), run);
        assert_eq!(snapshot(dir.path()), before, "--run {run}: files changed");
    }
    // auto's run folder too, before any work.
    let out = dir.path().join("out");
    std::fs::create_dir_all(out.join("runs/auto")).unwrap();
    std::fs::write(out.join("runs/auto/model.json"), "mine").unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 3, 6);
    let got = auto(&data, &model, &out, &[]);
    assert_refused(&got, "model.json", "auto over a user's model.json");
    assert!(!out.join("cache").exists());
    assert_eq!(
        std::fs::read(out.join("runs/auto/model.json")).unwrap(),
        b"mine"
    );
}

#[test]
fn item_13_an_edited_model_record_or_duplicate_classes_are_refused() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let cache = tiny_cache(dir.path());
    let runs = dir.path().join("runs");
    let made = train(&cache, &runs, &dir.path().join("reports"), &["--run", "m"]);
    assert!(made.status.success());
    let text = std::fs::read_to_string(runs.join("m/model.json")).unwrap();
    let image = dir.path().join("images/class_0/img_00.png");
    let predict = |model: &Path| {
        let mut cmd = tlearn();
        cmd.args(["predict", "--model"])
            .arg(model)
            .arg("--backbone")
            .arg(dir.path().join("tiny.onnx"))
            .arg(&image);
        run_limited(cmd, "predict")
    };
    let ok = predict(&runs.join("m/model.json"));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    type Edit = fn(&mut serde_json::Value);
    let edits: [(&str, Edit); 3] = [
        ("another layer", |m| {
            m["identity"]["layers"] = serde_json::json!(["block1_pool"]);
        }),
        ("another pooling", |m| {
            let pooling = m["identity"]["pooling"].clone();
            m["identity"]["pooling"] = if pooling == "Max" {
                "Avg".into()
            } else {
                "Max".into()
            };
        }),
        ("duplicate classes", |m| {
            m["class_names"][1] = m["class_names"][0].clone();
        }),
    ];
    for (case, edit) in edits {
        let mut model: serde_json::Value = serde_json::from_str(&text).unwrap();
        edit(&mut model);
        let bad = dir.path().join("edited.json");
        std::fs::write(&bad, model.to_string()).unwrap();
        let got = predict(&bad);
        assert_refused(&got, "not a usable tlearn model", case);
        assert!(got.stdout.is_empty(), "{case}: printed scores");
    }
}

#[test]
fn messages_about_outputs_name_the_right_flag_and_what_to_do() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let cache = tiny_cache(dir.path());
    let features = |out: &Path, extra: &[&str]| {
        let mut cmd = tlearn();
        cmd.args(["features", "--quiet", "--layer", "block2_pool", "--data"])
            .arg(dir.path().join("images"))
            .arg("--backbone")
            .arg(dir.path().join("tiny.onnx"))
            .arg("--cache")
            .arg(out)
            .args(extra);
        run_limited(cmd, "features")
    };
    // --cache a folder: named as one, no advice to delete it.
    let folder = dir.path().join("folder");
    std::fs::create_dir_all(folder.join("inside")).unwrap();
    let got = features(&folder, &[]);
    assert_names(&got, &folder, "--cache", "--cache a folder");
    assert!(!String::from_utf8_lossy(&got.stderr).contains("delete"));
    // --cache a file tlearn did not make: refused, unchanged.
    let notes = dir.path().join("notes.h5");
    std::fs::write(&notes, "my notes").unwrap();
    let got = features(&notes, &[]);
    assert_names(&got, &notes, "--cache", "--cache a foreign file");
    assert_eq!(std::fs::read(&notes).unwrap(), b"my notes");
    // A cache made for another run: the flag is --cache now.
    let got = features(&cache, &["--seed", "7"]);
    assert_refused(&got, "--cache", "mismatch");
    assert!(!String::from_utf8_lossy(&got.stderr).contains("Use another --out"));
    // export --npy FILE: the file is named, not "rows.csv: File exists".
    let export = |to: &Path| {
        let mut cmd = tlearn();
        cmd.args(["cache", "export"])
            .arg(&cache)
            .arg("--npy")
            .arg(to);
        run_limited(cmd, "export")
    };
    let got = export(&notes);
    assert_names(&got, &notes, "--npy", "--npy a file");
    assert!(!String::from_utf8_lossy(&got.stderr).contains("File exists"));
    // A foreign rows.csv in the export folder is never replaced, and no features.npy is left.
    let to = dir.path().join("export");
    std::fs::create_dir_all(&to).unwrap();
    std::fs::write(to.join("rows.csv"), "mine").unwrap();
    let got = export(&to);
    assert_refused(&got, "rows.csv", "a foreign rows.csv");
    assert!(!to.join("features.npy").exists());
    assert_eq!(std::fs::read(to.join("rows.csv")).unwrap(), b"mine");
}

// ---- The generated hostile suite: every writer, every output place, every hostile setup ----

/// What the generated suite puts where an output goes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Hostile {
    /// A file of the user's, at the output's path.
    ForeignFile,
    /// A link to a file of the user's, at the output's path.
    LinkToUserFile,
    /// The output's folder is a link to a folder of the user's.
    LinkedFolder,
    /// The output's folder is read-only (root writes anyway: then only "nothing lost" holds).
    ReadOnlyFolder,
}

/// Everything the suite's commands read, made once.
struct Base {
    dir: PathBuf,
    cache: PathBuf,
    model: PathBuf,
    images: PathBuf,
    reports: PathBuf,
}

/// One output place of one command: the file (relative to the case's folder), whether its
/// folder is a run folder tlearn makes (a link there must be refused), and the command.
struct Place {
    name: &'static str,
    file: &'static str,
    run_folder: bool,
    /// Whether the command does long work once its checks pass (then only refusals are tried).
    long: bool,
    command: fn(&Base, &Path) -> std::process::Command,
}

fn train_cmd(b: &Base, s: &Path) -> std::process::Command {
    let mut cmd = tlearn();
    cmd.args([
        "train", "svm", "--quiet", "--c", "0.1", "--run", "n", "--cache",
    ])
    .arg(&b.cache)
    .arg("--runs")
    .arg(s.join("runs"))
    .arg("--reports")
    .arg(s.join("reports"));
    cmd
}

fn report_cmd(_: &Base, s: &Path) -> std::process::Command {
    let mut cmd = tlearn();
    cmd.args(["report", "--quiet", "--reports"])
        .arg(s.join("reports"));
    cmd
}

fn export_cmd(b: &Base, s: &Path) -> std::process::Command {
    let mut cmd = tlearn();
    cmd.args(["cache", "export"])
        .arg(&b.cache)
        .arg("--npy")
        .arg(s.join("export"));
    cmd
}

fn cut_cmd(b: &Base, s: &Path) -> std::process::Command {
    let mut cmd = tlearn();
    cmd.args(["model", "cut"]).arg(&b.model);
    cmd.args(["--output", "block1_pool", "--out"])
        .arg(s.join("cut/out.onnx"));
    cmd
}

fn features_cmd(b: &Base, s: &Path) -> std::process::Command {
    let mut cmd = tlearn();
    cmd.args(["features", "--quiet", "--layer", "block2_pool", "--data"])
        .arg(&b.images);
    cmd.arg("--backbone")
        .arg(&b.model)
        .arg("--cache")
        .arg(s.join("f/features.h5"));
    cmd
}

fn bench_cmd(b: &Base, s: &Path) -> std::process::Command {
    let mut cmd = tlearn();
    cmd.args(["bench-classifiers", "--c", "0.1", "--cache"])
        .arg(&b.cache);
    cmd.arg("--json").arg(s.join("b/bench.json"));
    cmd
}

fn auto_cmd(b: &Base, s: &Path) -> std::process::Command {
    let mut cmd = auto_command(&b.images, &b.model, &s.join("auto-out"));
    cmd.arg("--json").arg(s.join("a/auto.json"));
    cmd
}

/// Every output place of every writer the suite tries.
fn places() -> Vec<Place> {
    type Command = fn(&Base, &Path) -> std::process::Command;
    let table: [(&str, &str, Command); 12] = [
        ("train model", "runs/n/model.json", train_cmd),
        ("train report", "reports/n/report.md", train_cmd),
        ("report index", "reports/index.html", report_cmd),
        ("report comparison", "reports/comparison.json", report_cmd),
        ("export rows", "export/rows.csv", export_cmd),
        ("export features", "export/features.npy", export_cmd),
        ("model cut", "cut/out.onnx", cut_cmd),
        ("quantize model", "q/out.onnx", quantize_cmd),
        ("quantize descriptor", "q/out.toml", quantize_cmd),
        ("features cache", "f/features.h5", features_cmd),
        ("bench-classifiers json", "b/bench.json", bench_cmd),
        ("auto json", "a/auto.json", auto_cmd),
    ];
    table
        .into_iter()
        .map(|(name, file, command)| Place {
            name,
            file,
            run_folder: file.starts_with("runs/n/") || file.starts_with("reports/n/"),
            long: name == "auto json",
            command,
        })
        .collect()
}

fn quantize_cmd(b: &Base, s: &Path) -> std::process::Command {
    let mut cmd = tlearn();
    cmd.args(["model", "quantize"])
        .arg(&b.model)
        .arg("--calibrate")
        .arg(&b.images)
        .args(["--images", "3", "--out"])
        .arg(s.join("q/out.onnx"));
    cmd
}

/// Copies the files of `from` into `to` (the record of tlearn's outputs travels with them).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// Puts `hostile` at `file` (in the case's folder `s`); the user's files live in `user`.
fn place_hostile(hostile: Hostile, s: &Path, file: &Path, user: &Path) {
    let folder = file.parent().unwrap();
    std::fs::create_dir_all(folder).unwrap();
    match hostile {
        Hostile::ForeignFile => std::fs::write(file, "the user's own bytes").unwrap(),
        Hostile::LinkToUserFile => {
            std::os::unix::fs::symlink(user.join("secret.txt"), file).unwrap()
        }
        Hostile::LinkedFolder => {
            std::fs::remove_dir_all(folder).unwrap();
            let theirs = user.join(s.file_name().unwrap());
            std::fs::create_dir_all(&theirs).unwrap();
            std::fs::write(theirs.join("keep.txt"), "keep").unwrap();
            std::os::unix::fs::symlink(theirs, folder).unwrap();
        }
        Hostile::ReadOnlyFolder => {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o555)).unwrap();
        }
    }
}

#[test]
fn generated_hostile_outputs_never_lose_a_users_file() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let cache = tiny_cache(dir.path());
    let prep = dir.path().join("prep");
    let made = train(
        &cache,
        &prep.join("runs"),
        &prep.join("reports"),
        &["--run", "r"],
    );
    assert!(made.status.success());
    let base = Base {
        dir: dir.path().to_path_buf(),
        cache,
        model: dir.path().join("tiny.onnx"),
        images: dir.path().join("images"),
        reports: prep.join("reports"),
    };
    let user = base.dir.join("user");
    std::fs::create_dir_all(&user).unwrap();
    std::fs::write(user.join("secret.txt"), "secret").unwrap();
    let hostiles = [
        Hostile::ForeignFile,
        Hostile::LinkToUserFile,
        Hostile::LinkedFolder,
        Hostile::ReadOnlyFolder,
    ];
    let mut tried = 0;
    for (i, place) in places().iter().enumerate() {
        for hostile in hostiles {
            let refusal_expected =
                matches!(hostile, Hostile::ForeignFile | Hostile::LinkToUserFile)
                    || (hostile == Hostile::LinkedFolder && place.run_folder);
            if place.long && !refusal_expected {
                continue;
            }
            let case = format!("{} / {hostile:?}", place.name);
            let s = base.dir.join(format!("case-{i}-{hostile:?}"));
            if place.file.starts_with("reports/") {
                copy_dir(&base.reports, &s.join("reports"));
            }
            let file = s.join(place.file);
            place_hostile(hostile, &s, &file, &user);
            let before = snapshot(&user);
            let foreign = std::fs::read(&file).ok();
            // A linked output folder the user named may receive new files; none of theirs changes.
            let got = run_limited((place.command)(&base, &s), &case);
            let stderr = String::from_utf8_lossy(&got.stderr);
            assert!(
                matches!(got.status.code(), Some(0) | Some(1)),
                "{case}: {:?} {stderr}",
                got.status
            );
            assert!(!stderr.contains("panicked"), "{case}: {stderr}");
            for (path, bytes) in &before {
                assert_eq!(
                    &std::fs::read(path).unwrap(),
                    bytes,
                    "{case}: {} changed",
                    path.display()
                );
            }
            if refusal_expected {
                assert_eq!(
                    got.status.code(),
                    Some(1),
                    "{case}: nothing useful was done, yet it succeeded: {stderr}"
                );
                assert_eq!(
                    std::fs::read(&file).ok(),
                    foreign,
                    "{case}: the foreign file changed"
                );
            }
            tried += 1;
        }
    }
    assert!(tried >= 40, "only {tried} cases ran");
}
