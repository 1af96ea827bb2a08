//! The command line, run as a separate process. Tests here are serialised: a child process
//! inherits the open HDF5 files (and their locks) of any test running beside it.

use crate::common;

use std::ffi::OsStr;

use common::fixtures::{image_folder, serial, tiny_backbone, tlearn, tlearn_err};

#[test]
fn cli_features_then_cache_info() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 3);
    let out = dir.path().join("f.h5");
    let status = tlearn()
        .args([
            "features",
            "--quiet",
            "--layer",
            "block1_pool,block2_pool",
            "--pool",
            "avg",
            "--augment",
            "flip",
            "--copies",
            "1",
        ])
        .arg("--data")
        .arg(&data)
        .arg("--model")
        .arg(&model)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(status.status.success(), "{stderr}");
    assert!(
        stderr.contains("6 images") && stderr.contains("12 features"),
        "{stderr}"
    );
    let info = tlearn().arg("cache").arg(&out).output().unwrap();
    let stdout = String::from_utf8_lossy(&info.stdout);
    assert!(stdout.contains("done, 0 missing, 0 skipped"), "{stdout}");

    let args = ["features", "--quiet", "--split", "0.9,0.9,0.1", "--data"];
    let mut args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    args.push(data.as_os_str());
    let bad = tlearn_err(&args);
    assert!(bad.contains("sum to 1"), "{bad}");
}

#[test]
fn onnx_runtime_is_found_from_any_folder_and_a_missing_one_is_named() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 2);
    let features = |ort: Option<&str>| {
        let mut command = tlearn();
        command
            .args([
                "features",
                "--quiet",
                "--layer",
                "block2_pool",
                "--out",
                "f.h5",
                "--data",
            ])
            .arg(&data)
            .arg("--model")
            .arg(&model)
            // Another working directory: nothing may depend on running from the checkout.
            .current_dir(dir.path());
        match ort {
            Some(path) => command.env("ORT_DYLIB_PATH", path),
            None => command.env_remove("ORT_DYLIB_PATH"),
        };
        command.output().unwrap()
    };
    // The binary was built in the checkout: its .ort/ is found through the executable's path.
    let found = features(None);
    assert!(
        found.status.success(),
        "{}",
        String::from_utf8_lossy(&found.stderr)
    );
    let missing = features(Some("/no/such/libonnxruntime.so"));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(missing.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("looked in: /no/such/libonnxruntime.so"),
        "{stderr}"
    );
}

#[test]
fn old_flag_spellings_still_work_for_one_release_with_a_warning() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 4);
    let cache = dir.path().join("f.h5");
    let stderr = |out: std::process::Output| {
        let text = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{text}");
        text
    };
    let old = stderr(
        tlearn()
            .args([
                "features",
                "--quiet",
                "--layer",
                "block2_pool",
                "--pool",
                "avg",
            ])
            .arg("--data")
            .arg(&data)
            .arg("--model")
            .arg(&model)
            .arg("--out")
            .arg(&cache)
            .output()
            .unwrap(),
    );
    assert!(
        old.contains("--model is deprecated here") && old.contains("use --backbone"),
        "{old}"
    );
    assert!(
        old.contains("--out is deprecated here") && old.contains("use --cache"),
        "{old}"
    );
    assert!(cache.is_file());
    let train = |flags: [&str; 2]| {
        tlearn()
            .args(["train", "svm", "--quiet", "--c", "1"])
            .arg(flags[0])
            .arg(&cache)
            .arg(flags[1])
            .arg("0")
            .arg("--runs")
            .arg(dir.path().join("runs"))
            .arg("--reports")
            .arg(dir.path().join("reports"))
            .output()
            .unwrap()
    };
    let old = stderr(train(["--features", "--split"]));
    assert!(old.contains("--features is deprecated here"), "{old}");
    assert!(old.contains("--split is deprecated here"), "{old}");
    let new = stderr(train(["--cache", "--splits-used"]));
    assert!(!new.contains("deprecated"), "{new}");
}
