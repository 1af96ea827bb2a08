//! The real VGG16 on a real slice of the flowers: agreement with an independent Python
//! computation, determinism, and a run killed or interrupted mid-way then resumed.
//! Needs `make models data venv` (which `make test` runs first). Tests are serialised because
//! they spawn processes (see `fixtures::serial`).

use crate::common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::fixtures::{
    config, feature_bytes, flowers, flowers_slice, python, repo, serial, tlearn, tlearn_ok, vgg16,
};
use tlearn::backbone::{Pooling, Repr};
use tlearn::cache::{FeatureCache, RowStatus};
use tlearn::preprocess::{load_rgb, DecodeLimits, Preprocessing};

fn go() -> tlearn::progress::Stop {
    tlearn::progress::Stop::new()
}

#[test]
fn features_agree_with_an_independent_python_computation() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let data = flowers_slice(dir.path(), 3, 2);
    let flat = dir.path().join("flat.h5");
    let mut flat_cfg = config(&data, &vgg16(), &flat);
    flat_cfg.layers = vec!["block5_pool".into()];
    let summary = tlearn::extract::run(&flat_cfg, &go()).unwrap();
    assert_eq!(
        (summary.rows, summary.dims),
        (6, 25088),
        "block5_pool is 512 x 7 x 7 at 224"
    );
    let mut avg_cfg = config(&data, &vgg16(), &dir.path().join("avg.h5"));
    avg_cfg.layers = vec!["block4_pool".into(), "block5_pool".into()];
    avg_cfg.pooling = Pooling::Avg;
    assert_eq!(tlearn::extract::run(&avg_cfg, &go()).unwrap().dims, 1024);
    // Quarters of an even map (block4_pool, 14 x 14) and of an odd one (block5_pool, 7 x 7).
    let mut quarters_cfg = config(&data, &vgg16(), &dir.path().join("quarters.h5"));
    quarters_cfg.reprs = vec![
        "block4_pool:max2x2".parse().unwrap(),
        "block5_pool:avg2x2".parse().unwrap(),
    ];
    quarters_cfg.layers = Repr::layers(&quarters_cfg.reprs);
    assert_eq!(
        tlearn::extract::run(&quarters_cfg, &go()).unwrap().dims,
        4096
    );

    // Hand Python tlearn's decoded image and its 224 crop of each row; it does the rest itself.
    let prep = Preprocessing::caffe(224);
    let paths = FeatureCache::open(&flat).unwrap().paths().unwrap();
    for (i, path) in paths.iter().enumerate() {
        let image = load_rgb(&data.join(path), &DecodeLimits::default()).unwrap();
        image
            .save(dir.path().join(format!("full_{i}.png")))
            .unwrap();
        prep.resize(&image)
            .save(dir.path().join(format!("crop_{i}.png")))
            .unwrap();
    }
    let original = repo().join(".cache/tumor_vgg16.onnx");
    assert!(
        original.exists(),
        "{} is missing: run `make models`",
        original.display()
    );
    let out = dir.path().join("reference.json");
    let status = common::fixtures::command(python())
        .arg(repo().join("tests/python/reference.py"))
        .args([&original, dir.path(), &flat, &avg_cfg.cache])
        .args([&quarters_cfg.cache, &out])
        .status()
        .unwrap();
    assert!(status.success(), "the Python reference failed");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    println!("{reference:#}");
    assert_eq!(reference["rows"], 6, "h5py reads the cache");
    assert_eq!(reference["status_done"], 6);
    for key in ["rel_err_flatten", "rel_err_avg", "rel_err_quarters"] {
        let worst = reference[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .fold(0.0, f64::max);
        assert!(
            worst < 1e-4,
            "{key}: relative error {worst} against the independent computation"
        );
    }
    let resize = reference["resize_max_abs_diff"].as_i64().unwrap();
    assert!(
        resize <= 1,
        "our resize differs from PIL's by {resize} levels"
    );
}

/// Starts `tlearn features` on 4 flowers per class (68 images) in batches of 4.
fn start_extraction(out: &Path) -> Child {
    tlearn()
        .args([
            "features",
            "--quiet",
            "--per-class",
            "4",
            "--batch",
            "4",
            "--pool",
            "avg",
            "--threads",
            "2",
            "--data",
        ])
        .arg(flowers())
        .arg("--model")
        .arg(vgg16())
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the cache another process is writing has its first finished batch, so a
/// signal sent now lands mid-run however loaded the machine is.
fn wait_for_first_batch(path: &Path) {
    let start = Instant::now();
    loop {
        let done = FeatureCache::open_unlocked(path)
            .and_then(|c| c.status())
            .map_or(0, |s| s.iter().filter(|s| **s == RowStatus::Done).count());
        if done > 0 {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "{} has no finished row after 300 s",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn done_rows(cache: &Path) -> usize {
    let status = FeatureCache::open(cache).unwrap().status().unwrap();
    status.iter().filter(|s| **s == RowStatus::Done).count()
}

#[test]
fn a_killed_run_resumes_to_the_same_bytes_as_an_uninterrupted_one() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean.h5");
    let run = start_extraction(&clean).wait_with_output().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let killed = dir.path().join("killed.h5");
    let mut child = start_extraction(&killed);
    wait_for_first_batch(&killed);
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let done = done_rows(&killed);
    assert!(
        done > 0 && done < 68,
        "the kill should land mid-run (done {done} of 68); the machine is unusually fast or slow"
    );

    let resumed = start_extraction(&killed).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{} computed now", 68 - done)),
        "only missing rows are computed: {stderr}"
    );
    assert_eq!(
        feature_bytes(&killed),
        feature_bytes(&clean),
        "deterministic, and nothing lost or doubled"
    );
}

#[test]
fn ctrl_c_stops_after_the_batch_in_flight() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f.h5");
    let child = start_extraction(&out);
    wait_for_first_batch(&out);
    let sent = common::fixtures::command("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let result = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted: run the same command again"),
        "{stderr}"
    );
    let done = done_rows(&out);
    assert!(done > 0 && done < 68, "done {done}");
    assert_eq!(done % 4, 0, "whole batches only");
}

#[test]
fn frozen_block_5_run_before_fine_tuning_matches_the_backbones_own_block5_pool() {
    use tlearn::finetune::run::{prepare, RunConfig};
    use tlearn::finetune::{HeadPool, Unfreeze};
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let data = flowers_slice(dir.path(), 3, 5);
    let cache = |layer: &str| {
        let out = dir.path().join(format!("{layer}.h5"));
        let mut cfg = config(&data, &vgg16(), &out);
        cfg.layers = vec![layer.into()];
        tlearn::extract::run(&cfg, &go()).unwrap();
        out
    };
    let (block4, block5) = (cache("block4_pool"), cache("block5_pool"));
    let run = |features: &Path, unfreeze| {
        let cfg = RunConfig {
            cache: features.to_path_buf(),
            repr: None,
            split: 0,
            backbone: vgg16(),
            unfreeze,
            pool: HeadPool::Flatten,
            hidden: 8,
            out: dir.path().join("unused"),
            init_from: None,
        };
        prepare(&cfg, tlearn::backbone::Compute::cpu(2)).unwrap()
    };
    let frozen = run(&block4, Unfreeze::Last(0));
    let direct = run(&block5, Unfreeze::Last(0));
    assert_eq!(frozen.data.shape, [512, 7, 7]);
    assert_eq!(frozen.data.shape, direct.data.shape);
    assert_eq!(frozen.data.x.nrows(), direct.data.x.nrows());
    for (i, path) in frozen.data.paths.iter().enumerate() {
        let j = direct.data.paths.iter().position(|p| p == path).unwrap();
        let (ours, onnx) = (frozen.data.x.row(i), direct.data.x.row(j));
        let scale = onnx.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = ours
            .iter()
            .zip(onnx)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            worst <= 1e-4 * scale,
            "{path}: differs by {worst} (max {scale})"
        );
    }
    let same = |a: f32, b: f32| (a / b - 1.0).abs() < 1e-4;
    assert!(same(frozen.arch.head_scale, direct.arch.head_scale));
    let last = run(&block4, Unfreeze::Last(1));
    assert_eq!(last.data.shape, [512, 14, 14]);
    let trained: Vec<&str> = last.arch.convs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(trained, ["block5_conv3"]);
    // The head scale comes from the pretrained convolutions: the same block5_pool.
    assert!(same(last.arch.head_scale, direct.arch.head_scale));
}

#[test]
fn a_fine_tuned_run_is_reported_compared_and_predicts_like_any_model() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let data = flowers_slice(dir.path(), 3, 5);
    let cache = dir.path().join("block5.h5");
    let mut cfg = config(&data, &vgg16(), &cache);
    cfg.layers = vec!["block5_pool".into()];
    tlearn::extract::run(&cfg, &go()).unwrap();
    let (runs, reports) = (dir.path().join("runs/ft"), dir.path().join("reports"));
    let ok = |args: &[&std::ffi::OsStr]| {
        let out = tlearn().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "tlearn {args:?}: {stderr}");
        String::from_utf8(out.stdout).unwrap()
    };
    let os = |s: &str| std::ffi::OsStr::new(s).to_owned();
    let train = [
        os("finetune"),
        os("train"),
        os("--cache"),
        cache.clone().into(),
        os("--backbone"),
        vgg16().into(),
        os("--head-pool"),
        os("avg"),
        os("--split"),
        os("0"),
        os("--epochs"),
        os("3"),
        os("--runs"),
        dir.path().join("runs").into(),
        os("--run"),
        os("ft"),
        os("--reports"),
        reports.clone().into(),
        os("--data"),
        data.clone().into(),
    ];
    let refs: Vec<&std::ffi::OsStr> = train.iter().map(|s| s.as_os_str()).collect();
    ok(&refs);

    // The graphs a run trains with, and the benchmark of both stages, on the same cache.
    let graphs = dir.path().join("graphs");
    let common = [
        os("--features"),
        cache.clone().into(),
        os("--model"),
        vgg16().into(),
    ];
    let mut export = vec![
        os("finetune"),
        os("export-graph"),
        os("--out"),
        graphs.clone().into(),
    ];
    export.extend(common.iter().cloned());
    tlearn_ok(&export);
    for graph in ["train_step.onnx", "eval.onnx"] {
        tlearn::onnx::Model::load(graphs.join(graph)).unwrap();
    }
    let mut bench = vec![
        os("finetune"),
        os("bench"),
        os("--batch"),
        os("4"),
        os("--steps"),
        os("1"),
    ];
    bench.extend(common.iter().cloned());
    let bench: serde_json::Value = serde_json::from_str(&tlearn_ok(&bench)).unwrap();
    assert!(
        bench["stage2_seconds_per_step"].as_f64().unwrap() > 0.0,
        "{bench}"
    );
    let text = std::fs::read_to_string(reports.join("ft/report.json")).unwrap();
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["method"]["method"], "finetune");
    assert_eq!(report["method"]["pool"], "avg");
    let summary = std::fs::read_to_string(runs.join("split-0/summary.json")).unwrap();
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(report["splits"][0]["test_images"], summary["rows"][2]);
    assert!(reports.join("ft/curves-0.png").is_file());

    let listed = ok(&[
        os("report").as_os_str(),
        os("--reports").as_os_str(),
        reports.as_os_str(),
    ]);
    assert!(
        listed.starts_with("ft\tfine-tuned (0 convs + avg head)"),
        "{listed}"
    );

    let image = data
        .join(tlearn::dataset::FLOWERS17_CLASSES[1])
        .join("image_0081.jpg");
    let top = ok(&[
        os("predict").as_os_str(),
        os("--model").as_os_str(),
        runs.join("split-0").as_os_str(),
        os("--top").as_os_str(),
        os("3").as_os_str(),
        image.as_os_str(),
    ]);
    let lines: Vec<&str> = top.lines().collect();
    assert_eq!(lines[0].split('\t').nth(3), Some("probability_1"), "{top}");
    let fields: Vec<&str> = lines[1].split('\t').collect();
    assert_eq!(
        fields.len(),
        2 + 2 * 3,
        "path, predicted, 3 classes and probabilities: {top}"
    );
    let total: f32 = fields[3..]
        .iter()
        .step_by(2)
        .map(|f| f.parse::<f32>().unwrap())
        .sum();
    assert!(
        (total - 1.0).abs() < 2e-3,
        "3 classes' probabilities sum to {total}"
    );
}
