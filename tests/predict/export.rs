//! `tlearn export`: the exported file gives `tlearn predict`'s probabilities (1e-4) in ONNX
//! Runtime's Python API and in onnxruntime-node, through the snippets of docs/deploy.md, for
//! every kind of run (SVM, logistic, one-vs-all logistic, fine-tuned network; fp32 and int8
//! backbones; the real VGG16 on a slice of the flowers), passes `onnx.checker`'s full check,
//! and is refused clearly when it cannot be made or would overwrite a user's file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tlearn::progress::Stop;

use super::common::fixtures::{
    config, flowers_slice, python, repo, serial, tiny_backbone, tlearn, tlearn_ok, vgg16,
};
use super::{predict, stdout, trained};
use tlearn::backbone::Descriptor;
use tlearn::preprocess::{load_rgb, DecodeLimits};

/// Probabilities of one image by class name, and the predicted class.
#[derive(Debug)]
struct Scored {
    predicted: String,
    probabilities: HashMap<String, f64>,
}

/// Copies of every image under `images` already brought to `size` x `size` by tlearn's own
/// resize, as PNG (lossless), named by their order: tlearn's resize leaves them as they are
/// (checked), so `predict` and the exported model see the very same pixels.
fn sized_images(images: &Path, size: u32, out: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(out).unwrap();
    let prep = tlearn::preprocess::Preprocessing::caffe(size);
    let limits = DecodeLimits::default();
    let mut written = Vec::new();
    for (i, path) in tlearn::predict::expand([images.to_path_buf()]).enumerate() {
        let sized = prep.resize(&load_rgb(&path.unwrap(), &limits).unwrap());
        assert_eq!(
            prep.resize(&sized),
            sized,
            "a {size} x {size} image is left as it is"
        );
        let png = out.join(format!("{i:03}.png"));
        sized.save(&png).unwrap();
        std::fs::write(png.with_extension("rgb"), sized.as_raw()).unwrap();
        written.push(png);
    }
    written
}

/// `tlearn predict --format jsonl` of `images` with every class, by image path.
fn predicted(model: &Path, images: &[PathBuf], classes: usize) -> HashMap<String, Scored> {
    let top = classes.to_string();
    let mut refs: Vec<&std::ffi::OsStr> = vec![
        "--format".as_ref(),
        "jsonl".as_ref(),
        "--top".as_ref(),
        top.as_ref(),
    ];
    refs.extend(images.iter().map(|p| p.as_os_str()));
    let text = stdout(&predict(model, &refs, &repo()));
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let probabilities = v["top"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["class"].as_str().unwrap().to_string(),
                        c["probability"].as_f64().unwrap(),
                    )
                })
                .collect();
            let scored = Scored {
                predicted: v["predicted"].as_str().unwrap().to_string(),
                probabilities,
            };
            (v["path"].as_str().unwrap().to_string(), scored)
        })
        .collect()
}

/// `tlearn export --model RUN --out OUT ARGS...`.
fn export(run: &Path, out: &Path, args: &[&str]) -> Output {
    tlearn()
        .args(["export", "--quiet", "--model"])
        .arg(run)
        .arg("--out")
        .arg(out)
        .args(args)
        .output()
        .unwrap()
}

/// Runs a checked command; its stdout.
fn run_ok(command: &mut Command, what: &str) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what} cannot run ({e}): it must be installed for this test"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `onnx.checker.check_model(full_check=True)` of the file, and its metadata as a map.
fn checked_metadata(model: &Path) -> HashMap<String, String> {
    let script = "import json, sys, onnx\n\
        onnx.checker.check_model(sys.argv[1], full_check=True)\n\
        m = onnx.load(sys.argv[1])\n\
        print(json.dumps({p.key: p.value for p in m.metadata_props}))";
    let text = run_ok(
        super::common::fixtures::command(python())
            .args(["-c", script])
            .arg(model),
        "onnx.checker",
    );
    serde_json::from_str(&text).unwrap()
}

/// The exported model's probabilities of `images` in ONNX Runtime's Python API, through
/// docs/deploy/classify.py, by path; and the class names it printed.
fn python_scores(model: &Path, images: &[PathBuf]) -> HashMap<String, (String, Vec<f64>)> {
    let text = run_ok(
        super::common::fixtures::command(python())
            .arg(repo().join("docs/deploy/classify.py"))
            .arg(model)
            .args(images),
        "python docs/deploy/classify.py",
    );
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let p = v["probabilities"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap());
            let path = v["path"].as_str().unwrap().to_string();
            (
                path,
                (v["predicted"].as_str().unwrap().to_string(), p.collect()),
            )
        })
        .collect()
}

/// The same in onnxruntime-node, through docs/deploy/classify.mjs (copied verbatim beside a
/// link to the test setup's node_modules), on the raw RGB bytes of each image; by PNG path.
fn node_scores(model: &Path, images: &[PathBuf], dir: &Path) -> HashMap<String, (usize, Vec<f64>)> {
    let modules = repo().join("tests/node/node_modules");
    assert!(
        modules.join("onnxruntime-node").is_dir(),
        "{} is missing: run `make node` (or `make test`)",
        modules.display()
    );
    let script_dir = dir.join("node-check");
    std::fs::create_dir_all(&script_dir).unwrap();
    std::fs::copy(
        repo().join("docs/deploy/classify.mjs"),
        script_dir.join("classify.mjs"),
    )
    .unwrap();
    let _ = std::os::unix::fs::symlink(&modules, script_dir.join("node_modules"));
    let raw: Vec<PathBuf> = images.iter().map(|p| p.with_extension("rgb")).collect();
    let text = run_ok(
        super::common::fixtures::command("node")
            .arg(script_dir.join("classify.mjs"))
            .arg(model)
            .args(&raw),
        "node docs/deploy/classify.mjs",
    );
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let p = v["probabilities"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap());
            let png = PathBuf::from(v["path"].as_str().unwrap()).with_extension("png");
            (
                png.display().to_string(),
                (v["label"].as_u64().unwrap() as usize, p.collect()),
            )
        })
        .collect()
}

/// Exports `run` and checks the file against `predict` (`model`, the run's model file) on
/// `images` in Python and Node: probabilities within 1e-4, the same predicted class. The
/// largest difference seen.
fn assert_export_matches_predict(run: &Path, images: &[PathBuf], dir: &Path) -> f64 {
    let out = dir.join("classifier.onnx");
    let exported = export(run, &out, &[]);
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    let meta = checked_metadata(&out);
    let classes: Vec<String> = serde_json::from_str(&meta["classes"]).unwrap();
    assert_eq!(meta["tlearn.export"], "1");
    for key in [
        "tlearn.version",
        "training_features",
        "accuracy",
        "date",
        "resize",
        "backbone",
    ] {
        assert!(!meta[key].is_empty(), "metadata {key}");
    }
    let reference = predicted(run, images, classes.len());
    let in_python = python_scores(&out, images);
    let in_node = node_scores(&out, images, dir);
    let mut worst = 0f64;
    for image in images {
        let key = image.display().to_string();
        let expected = &reference[&key];
        let (python_class, python_p) = &in_python[&key];
        let (node_label, node_p) = &in_node[&key];
        assert_eq!(python_class, &expected.predicted, "{key}");
        assert_eq!(classes[*node_label], expected.predicted, "{key}");
        for (c, class) in classes.iter().enumerate() {
            let want = expected.probabilities[class];
            worst = worst
                .max((python_p[c] - want).abs())
                .max((node_p[c] - want).abs());
        }
    }
    assert!(worst <= 1e-4, "largest probability difference {worst:e}");
    worst
}

#[test]
fn every_kind_of_linear_run_exports_what_predict_gives() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    for kind in ["svm", "logistic", "logistic-ovr"] {
        let run = trained(dir.path(), kind);
        let images = sized_images(&dir.path().join("images"), 32, &dir.path().join("sized"));
        let worst = assert_export_matches_predict(&run, &images, dir.path());
        println!(
            "{kind}: largest probability difference {worst:e} over {} images",
            images.len()
        );
    }
}

#[test]
fn a_float_input_export_takes_preprocessed_tensors() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let run = trained(dir.path(), "logistic");
    let images = sized_images(
        &dir.path().join("images/class_1"),
        32,
        &dir.path().join("sized"),
    );
    let out = dir.path().join("float.onnx");
    let exported = export(&run, &out, &["--input", "float"]);
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    checked_metadata(&out);
    // Caffe preprocessing done by hand: BGR planes minus the ImageNet mean.
    let script = "import json, sys, numpy as np, onnxruntime as ort\nfrom PIL import Image\n\
        s = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n\
        x = np.stack([np.asarray(Image.open(p).convert('RGB'), np.float32) for p in sys.argv[2:]])\n\
        x = x[..., ::-1] - np.array([103.939, 116.779, 123.68], np.float32)\n\
        p = s.run(['probabilities'], {'images': np.ascontiguousarray(x.transpose(0, 3, 1, 2))})[0]\n\
        print(json.dumps(p.tolist()))";
    let text = run_ok(
        super::common::fixtures::command(python())
            .args(["-c", script])
            .arg(&out)
            .args(&images),
        "python",
    );
    let rows: Vec<Vec<f64>> = serde_json::from_str(&text).unwrap();
    let reference = predicted(&run, &images, 3);
    let classes = ["class_0", "class_1", "class_2"];
    for (image, row) in images.iter().zip(&rows) {
        let expected = &reference[&image.display().to_string()];
        for (c, class) in classes.iter().enumerate() {
            let diff = (row[c] - expected.probabilities[*class]).abs();
            assert!(
                diff <= 1e-4,
                "{}: {class} differs by {diff}",
                image.display()
            );
        }
    }
}

/// The tiny backbone quantised to int8 (QDQ) with its descriptor, in `dir`.
fn int8_backbone(model: &Path, data: &Path, dir: &Path) -> PathBuf {
    let out = dir.join("tiny-int8.onnx");
    tlearn::quantize::QuantizeParams::new(model, data, &out)
        .images(6)
        .threads(1)
        .check()
        .unwrap()
        .run()
        .unwrap();
    out
}

/// Trains `kind` on the representations `reprs` (`layer:pooling`, side by side as `auto`
/// extracts them) of `data` made by `backbone`; the run folder.
fn train_on(backbone: &Path, data: &Path, reprs: &[&str], dir: &Path, kind: &str) -> PathBuf {
    train_with(backbone, data, (reprs, None), dir, &[kind])
}

/// As [`train_on`], the images fed at `size` (`features --size`) when given, with more
/// `tlearn train` arguments after the kind (`kind_args[0]`).
fn train_with(
    backbone: &Path,
    data: &Path,
    (reprs, size): (&[&str], Option<u32>),
    dir: &Path,
    kind_args: &[&str],
) -> PathBuf {
    let kind = kind_args[0];
    let cache = dir.join(format!("{kind}.h5"));
    let mut cfg = config(data, backbone, &cache);
    cfg.size = size;
    cfg.reprs = reprs.iter().map(|r| r.parse().unwrap()).collect();
    cfg.layers = tlearn::backbone::Repr::layers(&cfg.reprs);
    tlearn::extract::run(&cfg, &Stop::new()).unwrap();
    let runs = dir.join("runs");
    let (runs_s, reports) = (
        runs.display().to_string(),
        dir.join("reports").display().to_string(),
    );
    let head: &[&str] = &["train"];
    tlearn_ok(
        &[
            head,
            kind_args,
            &[
                "--quiet",
                "--c",
                "0.1,1",
                "--cache",
                &cache.display().to_string(),
                "--runs",
                &runs_s,
                "--reports",
                &reports,
                "--run",
                kind,
            ],
        ]
        .concat(),
    );
    runs.join(kind)
}

#[test]
fn an_int8_backbone_exports_what_int8_predict_gives() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let fp32 = tiny_backbone(dir.path());
    let data = super::common::fixtures::image_folder(dir.path(), 3, 8);
    let int8 = int8_backbone(&fp32, &data, dir.path());
    let run = train_on(
        &int8,
        &data,
        &["block1_pool:flatten", "block2_pool:max"],
        dir.path(),
        "svm",
    );
    let images = sized_images(&data, 32, &dir.path().join("sized"));
    assert_export_matches_predict(&run, &images, dir.path());
    let meta = checked_metadata(&dir.path().join("classifier.onnx"));
    assert!(
        meta["backbone"].contains("\"int8\""),
        "{}",
        meta["backbone"]
    );
}

/// A fine-tuned run folder as `tlearn finetune train` leaves it, made from the tiny backbone:
/// model.onnx (backbone, head, softmax, by the library's own export) and its descriptor.
fn fine_tuned_run(dir: &Path) -> PathBuf {
    use tlearn::finetune::{Arch, HeadPool, ParamStore, StoreError};
    let backbone = tiny_backbone(dir);
    let mut model = tlearn::onnx::Model::load(&backbone).unwrap();
    model
        .cut(&tlearn::onnx::CutSpec {
            outputs: vec![("block2_pool".into(), "block5_pool".into())],
            ..Default::default()
        })
        .unwrap();
    let arch = Arch {
        input: vec![8, 8, 8],
        convs: vec![],
        pool: HeadPool::Avg,
        hidden: 6,
        classes: 3,
        head_scale: 0.5,
    };
    let mut seed = 3;
    let params = ParamStore::from_specs(&arch.params(), |p| {
        seed += 11;
        Ok::<_, StoreError>(super::common::lcg_values(seed, p.len(), 0.5))
    })
    .unwrap();
    let run = dir.join("runs/finetune");
    std::fs::create_dir_all(&run).unwrap();
    let path = run.join("model.onnx");
    tlearn::finetune::network::inference_model(&model, &arch, &params)
        .unwrap()
        .save(&path)
        .unwrap();
    let mut d = Descriptor::for_model(&backbone).unwrap();
    d.sha256 = tlearn::backbone::sha256_file(&path).unwrap();
    d.layers = vec!["probabilities".into()];
    d.classes = Some(vec!["class_0".into(), "class_1".into(), "class_2".into()]);
    d.save_beside(&path).unwrap();
    run
}

#[test]
fn a_fine_tuned_run_exports_what_predict_gives() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let run = fine_tuned_run(dir.path());
    let data = super::common::fixtures::image_folder(dir.path(), 3, 4);
    let images = sized_images(&data, 32, &dir.path().join("sized"));
    assert_export_matches_predict(&run, &images, dir.path());
}

/// The real VGG16 on a slice of the flowers (3 classes, 8 images each), average-pooled block4
/// beside max-pooled block5 (as `auto` picks them), an SVM: the export agrees with predict on
/// 224 x 224 flowers.
#[test]
fn a_vgg16_run_on_real_flowers_exports_what_predict_gives() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let slice = flowers_slice(dir.path(), 3, 8);
    let backbone = dir.path().join("vgg16.onnx");
    std::os::unix::fs::symlink(vgg16(), &backbone).unwrap();
    std::fs::copy(
        vgg16().with_extension("toml"),
        backbone.with_extension("toml"),
    )
    .unwrap();
    let run = train_on(
        &backbone,
        &slice,
        &["block4_pool:avg", "block5_pool:max"],
        dir.path(),
        "svm",
    );
    let images = sized_images(&slice, 224, &dir.path().join("sized"));
    let worst = assert_export_matches_predict(&run, &images, dir.path());
    println!(
        "VGG16 svm: largest probability difference {worst:e} over {} flowers",
        images.len()
    );
}

#[test]
fn unusable_runs_and_foreign_outputs_are_refused_and_left_untouched() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let run = trained(dir.path(), "svm");
    let out = dir.path().join("classifier.onnx");
    let refused = |run: &Path, out: &Path, needle: &str| {
        let result = export(run, out, &[]);
        let stderr = String::from_utf8_lossy(&result.stderr).to_string();
        assert!(
            !result.status.success() && stderr.contains(needle),
            "{needle}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    };
    // A user's file, a folder, a link, the model itself: named, and byte-identical after.
    let user = dir.path().join("notes.onnx");
    std::fs::write(&user, b"my notes").unwrap();
    refused(&run, &user, "is not a file tlearn exported");
    assert_eq!(std::fs::read(&user).unwrap(), b"my notes");
    refused(&run, dir.path(), "--out");
    let link = dir.path().join("link.onnx");
    std::os::unix::fs::symlink(&user, &link).unwrap();
    refused(&run, &link, "--out");
    let model_json = run.join("model.json");
    let before = std::fs::read(&model_json).unwrap();
    refused(&run, &model_json, "--out");
    assert_eq!(std::fs::read(&model_json).unwrap(), before);
    // Its own export is replaced.
    assert!(export(&run, &out, &[]).status.success());
    assert!(
        export(&run, &out, &[]).status.success(),
        "a file tlearn exported is replaced"
    );

    // An unknown kind.
    let mut edited: serde_json::Value = serde_json::from_slice(&before).unwrap();
    edited["kind"] = "tree".into();
    let odd = dir.path().join("odd/model.json");
    std::fs::create_dir_all(odd.parent().unwrap()).unwrap();
    std::fs::write(&odd, edited.to_string()).unwrap();
    refused(&odd, &out, "tree");
    // An SVM saved without a calibration.
    edited["kind"] = "svm".into();
    edited.as_object_mut().unwrap().remove("calibration");
    std::fs::write(&odd, edited.to_string()).unwrap();
    refused(&odd, &out, "without a calibration");
    // A changed backbone, then a missing one.
    let backbone = dir.path().join("tiny.onnx");
    let original = std::fs::read(&backbone).unwrap();
    let mut changed = original.clone();
    changed.extend_from_slice(b"\0");
    std::fs::write(&backbone, &changed).unwrap();
    refused(&run, &out, "has changed since the model was trained");
    std::fs::remove_file(&backbone).unwrap();
    refused(&run, &out, "is missing");
    assert!(
        checked_metadata(&out).contains_key("tlearn.export"),
        "the last good export stays"
    );
}

/// Seconds of a command, run to completion (its output discarded, its success checked).
fn seconds(command: &mut Command, what: &str) -> f64 {
    let start = std::time::Instant::now();
    run_ok(command, what);
    start.elapsed().as_secs_f64()
}

/// `make bench-export`: `tlearn predict --batch 16` against the exported model in ONNX
/// Runtime's Python API (the snippet's PIL decoding and resizing, batches of 16), each a whole
/// process from start to last result, on the same 68 flowers (4 per class), alternated
/// predict, export, export, predict; JSON in reports/bench-export.json.
#[test]
#[ignore = "a measurement: run by `make bench-export`"]
fn bench_export() {
    let dir = tempfile::tempdir().unwrap();
    let slice = flowers_slice(dir.path(), 17, 4);
    let backbone = dir.path().join("vgg16.onnx");
    std::os::unix::fs::symlink(vgg16(), &backbone).unwrap();
    std::fs::copy(
        vgg16().with_extension("toml"),
        backbone.with_extension("toml"),
    )
    .unwrap();
    let run = train_on(
        &backbone,
        &slice,
        &["block4_pool:avg", "block5_pool:max"],
        dir.path(),
        "svm",
    );
    let out = dir.path().join("classifier.onnx");
    assert!(export(&run, &out, &[]).status.success());
    let images: Vec<PathBuf> = tlearn::predict::expand([slice.clone()])
        .map(Result::unwrap)
        .collect();
    let script = "import sys, runpy, numpy as np, onnxruntime as ort\n\
        snippet = runpy.run_path(sys.argv[1])\n\
        s = ort.InferenceSession(sys.argv[2], providers=['CPUExecutionProvider'])\n\
        paths = sys.argv[3:]\n\
        for i in range(0, len(paths), 16):\n\
        \x20   batch = np.stack([snippet['pixels'](p, 224) for p in paths[i:i + 16]])\n\
        \x20   s.run(['probabilities', 'label'], {'images': batch})";
    let mut predict_s = Vec::new();
    let mut export_s = Vec::new();
    for round in ["predict", "export", "export", "predict"] {
        if round == "predict" {
            let mut c = tlearn();
            c.args([
                "predict", "--quiet", "--batch", "16", "--format", "jsonl", "--model",
            ]);
            predict_s.push(seconds(c.arg(&run).args(&images), "tlearn predict"));
        } else {
            let mut c = super::common::fixtures::command(python());
            c.args(["-c", script])
                .arg(repo().join("docs/deploy/classify.py"))
                .arg(&out);
            export_s.push(seconds(c.args(&images), "exported model in Python"));
        }
    }
    let uptime = run_ok(&mut super::common::fixtures::command("uptime"), "uptime");
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let report = serde_json::json!({
        "images": images.len(),
        "batch": 16,
        "model": "svm on block4_pool:avg + block5_pool:max of VGG16 (fp32)",
        "predict_seconds": predict_s,
        "export_python_seconds": export_s,
        "export_over_predict": mean(&export_s) / mean(&predict_s),
        "uptime": uptime.trim(),
    });
    println!("{report:#}");
    let path = repo().join("reports/bench-export.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, format!("{report:#}\n")).unwrap();
}

/// docs/deploy.md shows the two example files the tests run, verbatim.
#[test]
fn the_deploy_guide_shows_the_tested_snippets_verbatim() {
    let guide = std::fs::read_to_string(repo().join("docs/deploy.md")).unwrap();
    for file in ["docs/deploy/classify.py", "docs/deploy/classify.mjs"] {
        let text = std::fs::read_to_string(repo().join(file)).unwrap();
        assert!(
            guide.contains(&text),
            "docs/deploy.md does not show {file} as it is"
        );
    }
}

/// Normalised models export what predict gives: an SVM on l2-normalised blocks, and a
/// logistic model on power-normalised blocks of 36 px images (the tiny backbone's descriptor
/// says 32), whose exported input and resize recipe say 36. Both read the quarters of each
/// layer too, of even maps at 32 px (16 x 16, 8 x 8) and of an odd one at 36 (block2_pool is
/// 9 x 9: its middle row and column belong to two quarters).
#[test]
fn normalised_runs_and_larger_images_export_what_predict_gives() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = super::common::fixtures::image_folder(dir.path(), 3, 8);
    let reprs: &[&str] = &[
        "block1_pool:avg",
        "block2_pool:max",
        "block2_pool:flatten",
        "block1_pool:max2x2",
        "block2_pool:avg2x2",
        "block2_pool:max2x2",
    ];
    for (args, size) in [
        (["svm", "--normalize", "l2"], None),
        (["logistic", "--normalize", "power"], Some(36)),
    ] {
        let run = train_with(&model, &data, (reprs, size), dir.path(), &args);
        let model_json = std::fs::read_to_string(run.join("model.json")).unwrap();
        assert!(model_json.contains(&format!("\"normalize\":\"{}\"", args[2])));
        let side = size.unwrap_or(32);
        let sized = dir.path().join(format!("sized-{side}"));
        let images = sized_images(&data, side, &sized);
        let worst = assert_export_matches_predict(&run, &images, dir.path());
        println!("{args:?} at {side} px: largest probability difference {worst:e}");
        let meta = checked_metadata(&dir.path().join("classifier.onnx"));
        assert!(
            meta["input"].contains(&format!("[N, {side}, {side}, 3]")),
            "{}",
            meta["input"]
        );
        assert!(
            meta["resize"].contains(&format!("{side} x {side}")),
            "{}",
            meta["resize"]
        );
    }
}
