//! `tlearn predict` as a user pipes it: files, folders and standard input in, one record per
//! image out as soon as it is predicted (tsv, csv, jsonl), unreadable images skipped with a
//! reason, probabilities for every kind of model, and the backbone found from any folder.

mod export;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use tlearn::progress::Stop;

use crate::common;
use common::fixtures::{
    config, forget_rows, image_folder, mkfifo, output_within, serial, tiny_backbone, tlearn,
    tlearn_ok,
};
use tlearn::backbone::Pooling;

/// A tiny backbone, 3 classes of 8 generated images, their cache, and a model of `kind`
/// trained on it, in `dir`; the model's run folder.
fn trained(dir: &Path, kind: &str) -> PathBuf {
    let model = tiny_backbone(dir);
    let data = image_folder(dir, 3, 8);
    let cache = dir.join("tiny.h5");
    if !cache.exists() {
        let mut cfg = config(&data, &model, &cache);
        cfg.pooling = Pooling::Avg;
        tlearn::extract::run(&cfg, &Stop::new()).unwrap();
    }
    let runs = dir.join("runs");
    tlearn_ok(&[
        "train".as_ref(),
        kind.as_ref(),
        "--quiet".as_ref(),
        "--c".as_ref(),
        "0.1,1".as_ref(),
        "--cache".as_ref(),
        cache.as_os_str(),
        "--runs".as_ref(),
        runs.as_os_str(),
        "--reports".as_ref(),
        dir.join("reports").as_os_str(),
        "--run".as_ref(),
        kind.as_ref(),
    ]);
    runs.join(kind)
}

/// `tlearn predict --model RUN ARGS...` run in `cwd`.
fn predict(run: &Path, args: &[&std::ffi::OsStr], cwd: &Path) -> Output {
    tlearn()
        .args(["predict", "--quiet", "--model"])
        .arg(run)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The records of a tsv output: header fields, then each record's fields.
fn tsv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = text
        .lines()
        .map(|l| l.split('\t').map(String::from).collect());
    let header = lines.next().expect("a header line");
    (header, lines.collect())
}

#[test]
fn folders_files_and_stdin_give_one_record_per_image_in_every_format() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let run = trained(dir.path(), "svm");
    let images = dir.path().join("images");
    // A folder of 3 classes x 8 images, a nested folder, and a text file that is not an image.
    let nested = images.join("class_1/deeper");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::copy(images.join("class_2/img_00.png"), nested.join("z.png")).unwrap();
    std::fs::write(images.join("notes.txt"), "not an image").unwrap();

    let out = stdout(&predict(
        &run,
        &["--top".as_ref(), "2".as_ref(), images.as_os_str()],
        dir.path(),
    ));
    let (header, records) = tsv(&out);
    assert_eq!(
        header,
        [
            "path",
            "predicted",
            "class_1",
            "margin_1",
            "probability_1",
            "class_2",
            "margin_2",
            "probability_2"
        ]
    );
    assert_eq!(
        records.len(),
        25,
        "every image once, the text file not: {out}"
    );
    let paths: Vec<&str> = records.iter().map(|r| r[0].as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "name order");
    assert!(paths.contains(&nested.join("z.png").to_str().unwrap()));
    for r in &records {
        assert_eq!(r.len(), header.len(), "{r:?}");
        assert_eq!(r[1], r[2], "predicted is the first class");
        let (m1, m2): (f32, f32) = (r[3].parse().unwrap(), r[6].parse().unwrap());
        let (p1, p2): (f32, f32) = (r[4].parse().unwrap(), r[7].parse().unwrap());
        assert!(m1 >= m2, "ranked by margin: {r:?}");
        assert!((0.0..=1.0).contains(&p1) && p1 + p2 <= 1.0 + 1e-6, "{r:?}");
    }
    // Training images of the tiny set are well separated: the classifier finds them.
    let right = records
        .iter()
        .filter(|r| r[0].contains(&format!("/{}/", r[1])))
        .count();
    assert!(right >= 20, "{right} of 25 right");

    // The same images named on standard input, with a file given directly: same records.
    let mut child = tlearn()
        .args(["predict", "--quiet", "--top", "2", "--model"])
        .arg(&run)
        .arg(images.join("class_0/img_03.png"))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let listed: String = paths.iter().map(|p| format!("{p}\n")).collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(listed.as_bytes())
        .unwrap();
    let piped = stdout(&child.wait_with_output().unwrap());
    let (_, piped) = tsv(&piped);
    assert_eq!(piped.len(), 26);
    assert!(piped[0][0].ends_with("class_0/img_03.png"));
    assert_eq!(piped[1..], records[..]);

    // csv: the same values, comma-separated with quoting; jsonl: one object per image.
    let file = images.join("class_0/img_01.png");
    let csv = stdout(&predict(
        &run,
        &["--format".as_ref(), "csv".as_ref(), file.as_os_str()],
        dir.path(),
    ));
    let csv_lines: Vec<&str> = csv.lines().collect();
    assert_eq!(csv_lines.len(), 2);
    assert!(csv_lines[0].starts_with("path,predicted,class_1,margin_1,probability_1,class_2"));
    assert_eq!(
        csv_lines[1].split(',').count(),
        2 + 3 * 3,
        "top 5 of 3 classes: 3"
    );
    let jsonl = stdout(&predict(
        &run,
        &["--format".as_ref(), "jsonl".as_ref(), file.as_os_str()],
        dir.path(),
    ));
    let value: serde_json::Value = serde_json::from_str(jsonl.trim()).unwrap();
    assert_eq!(value["path"], file.to_str().unwrap());
    let top = value["top"].as_array().unwrap();
    assert_eq!(top.len(), 3);
    let total: f64 = top.iter().map(|c| c["probability"].as_f64().unwrap()).sum();
    assert!(
        (total - 1.0).abs() < 1e-5,
        "all classes' probabilities sum to 1: {value}"
    );
    assert_eq!(value["predicted"], top[0]["class"]);
    assert!(top[0]["margin"].as_f64().unwrap() >= top[1]["margin"].as_f64().unwrap());
}

/// Issue 20: an SVM's probabilities never contradict its prediction: on every image the
/// predicted class (best margin) has the highest probability, and probabilities fall with the
/// margins down the ranking.
#[test]
fn svm_probabilities_follow_the_margins_on_every_image() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let run = trained(dir.path(), "svm");
    let images = dir.path().join("images");
    let args = ["--format".as_ref(), "jsonl".as_ref(), images.as_os_str()];
    let jsonl = stdout(&predict(&run, &args, dir.path()));
    assert_eq!(jsonl.lines().count(), 24, "{jsonl}");
    for line in jsonl.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        let top = value["top"].as_array().unwrap();
        let field = |c: &serde_json::Value, key: &str| c[key].as_f64().unwrap();
        for pair in top.windows(2) {
            assert!(
                field(&pair[0], "margin") >= field(&pair[1], "margin"),
                "{line}"
            );
            assert!(
                field(&pair[0], "probability") >= field(&pair[1], "probability"),
                "{line}"
            );
        }
    }
}

#[test]
fn unreadable_images_are_skipped_with_a_reason_and_fail_the_exit_status() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let run = trained(dir.path(), "logistic");
    let images = dir.path().join("images/class_0");
    std::fs::write(images.join("broken.png"), b"not a png at all").unwrap();
    let out = predict(
        &run,
        &[
            images.as_os_str(),
            dir.path().join("absent.jpg").as_os_str(),
        ],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("skipped") && stderr.contains("broken.png"),
        "{stderr}"
    );
    assert!(stderr.contains("absent.jpg"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let (header, records) = tsv(&String::from_utf8(out.stdout).unwrap());
    // Logistic: probabilities only, no margins.
    assert_eq!(header[2..5], ["class_1", "probability_1", "class_2"]);
    assert_eq!(records.len(), 8, "the 8 good images are still predicted");
    for r in &records {
        let total: f32 = r[3..]
            .iter()
            .step_by(2)
            .map(|p| p.parse::<f32>().unwrap())
            .sum();
        assert!((total - 1.0).abs() < 1e-5, "softmax sums to 1: {r:?}");
    }
}

#[test]
fn a_fifo_given_listed_or_in_a_folder_is_a_logged_skip_not_a_hang() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let run = trained(dir.path(), "logistic");
    let images = dir.path().join("images/class_0");
    let named = dir.path().join("named.jpg");
    mkfifo(&named);
    mkfifo(&images.join("inside.png"));
    let listed = dir.path().join("listed.jpg");
    mkfifo(&listed);
    let good = images.join("img_01.png");
    let list = format!("{}\n{}\n", listed.display(), good.display());
    // Before: opening a FIFO waited for a writer for ever.
    let mut command = tlearn();
    command
        .args(["predict", "--quiet", "--model"])
        .arg(&run)
        .arg(&named)
        .arg(&images)
        .arg("-")
        .current_dir(dir.path());
    let out = output_within(
        &mut command,
        list.as_bytes(),
        std::time::Duration::from_secs(120),
    )
    .expect("predict returns instead of hanging on a FIFO");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "some inputs were skipped: {stderr}"
    );
    for fifo in ["named.jpg", "inside.png", "listed.jpg"] {
        let line = stderr.lines().find(|l| l.contains(fifo));
        assert!(
            line.is_some_and(|l| l.contains("skipped") && l.contains("FIFO")),
            "{fifo}: {stderr}"
        );
    }
    let (_, records) = tsv(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(
        records.len(),
        8 + 1,
        "the folder's 8 images and the listed one"
    );
}

#[test]
fn cache_export_of_an_incomplete_cache_is_refused_or_partial_with_the_count() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 4);
    let cache = dir.path().join("tiny.h5");
    let mut cfg = config(&data, &model, &cache);
    cfg.pooling = Pooling::Avg;
    tlearn::extract::run(&cfg, &Stop::new()).unwrap();
    // As a killed extraction leaves it: rows 2 and 5 never computed.
    forget_rows(&cache, &[2, 5]);
    let out = dir.path().join("export");
    let export = |extra: &[&str]| {
        tlearn()
            .args(["cache", "export", "--npy"])
            .arg(&out)
            .args(extra)
            .arg(&cache)
            .output()
            .unwrap()
    };
    let refused = export(&[]);
    let text = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{text}");
    assert!(
        text.contains("incomplete: 2 of 8 rows") && text.contains("--partial"),
        "{text}"
    );
    assert!(!out.join("features.npy").exists() && !out.join("rows.csv").exists());
    let partial = export(&["--partial"]);
    let text = String::from_utf8_lossy(&partial.stderr);
    assert!(partial.status.success(), "{text}");
    assert!(
        text.contains("6 rows of 8 features (2 rows not done left out"),
        "{text}"
    );
    let rows = std::fs::read_to_string(out.join("rows.csv")).unwrap();
    assert_eq!(rows.lines().count(), 1 + 6, "{rows}");
    assert!(rows.lines().skip(1).all(|l| l.contains(",done,")), "{rows}");
    let script = "import sys, numpy as np; a = np.load(sys.argv[1]); print(a.shape, bool((a != 0).any(axis=1).all()))";
    let numpy = common::fixtures::command(common::fixtures::python())
        .args(["-c", script])
        .arg(out.join("features.npy"))
        .output()
        .unwrap();
    assert_eq!(
        stdout(&numpy).trim(),
        "(6, 8) True",
        "done rows only, none zero"
    );
}

#[test]
fn results_stream_before_the_input_list_ends() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let run = trained(dir.path(), "svm");
    let mut child = tlearn()
        .args(["predict", "--quiet", "--batch", "1", "--model"])
        .arg(&run)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let image = dir.path().join("images/class_1/img_02.png");
    writeln!(stdin, "{}", image.display()).unwrap();
    stdin.flush().unwrap();
    // Standard input stays open: the record must come before the list ends. A reader thread
    // reports the lines; a program that collected every result first would send none.
    let out = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().take(2) {
            sender.send(line.unwrap()).unwrap();
        }
    });
    let wait = std::time::Duration::from_secs(300);
    let header = receiver
        .recv_timeout(wait)
        .expect("a header while input is open");
    let record = receiver
        .recv_timeout(wait)
        .expect("a record while input is open");
    assert!(header.starts_with("path\t") && record.starts_with(image.to_str().unwrap()));
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn the_backbone_is_found_from_any_folder_and_a_missing_or_changed_one_is_named() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let run = trained(dir.path(), "svm");
    let image = dir.path().join("images/class_2/img_05.png");
    let elsewhere = tempfile::tempdir().unwrap();
    let text = stdout(&predict(&run, &[image.as_os_str()], elsewhere.path()));
    assert_eq!(text.lines().count(), 2, "{text}");

    // An old model file (no calibration, or the per-class Platt sigmoids of earlier versions,
    // which could contradict the margins; no backbone path) still loads: margins only.
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("model.json")).unwrap()).unwrap();
    assert!(model["backbone"].as_str().unwrap().ends_with("tiny.onnx"));
    assert!(model["calibration"]["temperature"].as_f64().unwrap() > 0.0);
    assert!(model["calibration"]["validation_images"].as_u64().unwrap() > 0);
    let mut old = model.clone();
    old.as_object_mut().unwrap().remove("calibration");
    old.as_object_mut().unwrap().remove("backbone");
    old["platt"] =
        serde_json::json!({"sigmoids": vec![serde_json::json!({"a": -1.0, "b": 0.0}); 3]});
    let old_path = dir.path().join("old.json");
    std::fs::write(&old_path, old.to_string()).unwrap();
    let backbone = dir.path().join("tiny.onnx");
    let text = stdout(&predict(
        &old_path,
        &[
            "--backbone".as_ref(),
            backbone.as_os_str(),
            image.as_os_str(),
        ],
        elsewhere.path(),
    ));
    let (header, _) = tsv(&text);
    assert_eq!(header[2..5], ["class_1", "margin_1", "class_2"]);

    // Moved away: the error names the recorded path and what to pass.
    let moved = dir.path().join("moved");
    std::fs::create_dir(&moved).unwrap();
    for file in ["tiny.onnx", "tiny.toml"] {
        std::fs::rename(dir.path().join(file), moved.join(file)).unwrap();
    }
    let out = predict(&run, &[image.as_os_str()], elsewhere.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(backbone.to_str().unwrap())
            && stderr.contains("is missing")
            && stderr.contains("--backbone"),
        "{stderr}"
    );
    // --backbone overrides the recorded path.
    let text = stdout(&predict(
        &run,
        &[
            "--backbone".as_ref(),
            moved.join("tiny.onnx").as_os_str(),
            image.as_os_str(),
        ],
        elsewhere.path(),
    ));
    assert_eq!(text.lines().count(), 2);

    // Changed bytes (descriptor left as it was): named, with what to pass.
    let mut bytes = std::fs::read(moved.join("tiny.onnx")).unwrap();
    bytes.extend_from_slice(b"\0");
    std::fs::write(moved.join("tiny.onnx"), bytes).unwrap();
    let out = predict(
        &run,
        &[
            "--backbone".as_ref(),
            moved.join("tiny.onnx").as_os_str(),
            image.as_os_str(),
        ],
        elsewhere.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("has changed since the model was trained") && stderr.contains("--backbone"),
        "{stderr}"
    );
}

#[test]
fn cache_export_writes_features_numpy_reads_and_rows_as_csv() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 3);
    std::fs::write(data.join("class_1/broken.png"), b"not a png").unwrap();
    let cache = dir.path().join("tiny.h5");
    let mut cfg = config(&data, &model, &cache);
    cfg.pooling = Pooling::Avg;
    tlearn::extract::run(&cfg, &Stop::new()).unwrap();
    let out = dir.path().join("export");
    let args = [
        "cache".as_ref(),
        "export".as_ref(),
        "--npy".as_ref(),
        out.as_os_str(),
        cache.as_os_str(),
    ];
    tlearn_ok(&args);
    // NumPy reads the file; its values are the cache's, row for row.
    let script = "import sys, numpy as np; a = np.load(sys.argv[1]); \
                  print(a.dtype, a.shape[0], a.shape[1]); \
                  print(' '.join(repr(float(v)) for v in a.ravel()))";
    let numpy = common::fixtures::command(common::fixtures::python())
        .args(["-c", script])
        .arg(out.join("features.npy"))
        .output()
        .unwrap();
    let text = stdout(&numpy);
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "float32 6 8",
        "6 rows of 8 features: the broken file has no row"
    );
    let values: Vec<f32> = lines
        .next()
        .unwrap()
        .split(' ')
        .map(|v| v.parse().unwrap())
        .collect();
    let expected = tlearn::cache::FeatureCache::open(&cache)
        .unwrap()
        .features()
        .unwrap();
    assert_eq!(values, expected.iter().copied().collect::<Vec<_>>());
    let rows = std::fs::read_to_string(out.join("rows.csv")).unwrap();
    let lines: Vec<&str> = rows.lines().collect();
    assert_eq!(lines[0], "path,label,class,status,copy,split_0");
    assert_eq!(lines.len(), 7);
    assert!(!rows.contains("broken.png"), "{rows}");
    // A second export into the same folder replaces nothing.
    let again = tlearn().args(args).output().unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
}
