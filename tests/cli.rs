//! The command line, run as a separate process. Tests here are serialised: a child process
//! inherits the open HDF5 files (and their locks) of any test running beside it.

mod common;

use common::fixtures::{image_folder, serial, tiny_backbone, tlearn};

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

    let bad = tlearn()
        .args(["features", "--quiet", "--split", "0.9,0.9,0.1", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("sum to 1"));
}
