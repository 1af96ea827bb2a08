//! `tlearn model quantize` on the tiny generated backbone: the int8 model, its descriptor, its
//! use as a backbone, the cache identity's precision, and every refusal.

use crate::common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use tlearn::progress::Stop;

use common::fixtures::{config, image_folder, tiny_backbone, tlearn};
use tlearn::backbone::{sha256_file, Descriptor, Pooling, Precision};
use tlearn::cache::{CacheError, FeatureCache};
use tlearn::extract::{run, ExtractError};
use tlearn::onnx::{attr_ints, DataType, Dim, GraphBuilder, Model};
use tlearn::options::Opt;
use tlearn::quantize::{CalibrationMethod, QuantizeError, QuantizeParams};

/// Quantises `model` into `dir/int8.onnx`, calibrated on `data`.
fn quantize(model: &Path, data: &Path, dir: &Path) -> Result<PathBuf, QuantizeError> {
    let out = dir.join("int8.onnx");
    QuantizeParams::new(model, data, &out)
        .images(6)
        .threads(1)
        .check()?
        .run()?;
    Ok(out)
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// Every row's average-pooled block1 + block2 features of `model` on `data`.
fn features(model: &Path, data: &Path, out: &Path) -> ndarray::Array2<f32> {
    let mut cfg = config(data, model, out);
    cfg.layers = vec!["block1_pool".into(), "block2_pool".into()];
    cfg.pooling = Pooling::Avg;
    run(&cfg, &Stop::new()).unwrap();
    FeatureCache::open(out).unwrap().features().unwrap()
}

#[test]
fn int8_model_is_qdq_with_int8_weights_and_a_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 4);
    let out = quantize(&model, &data, dir.path()).unwrap();

    let q = Model::load(&out).unwrap();
    let ops: Vec<&str> = q.graph().node.iter().map(|n| n.op_type()).collect();
    // input, two Relu outputs and two MaxPool outputs (sharing their input's parameters).
    assert_eq!(ops.iter().filter(|o| **o == "QuantizeLinear").count(), 5);
    assert_eq!(ops.iter().filter(|o| **o == "Conv").count(), 2);
    let int8: Vec<&str> = q
        .graph()
        .initializer
        .iter()
        .filter(|t| t.data_type() == DataType::Int8 as i32 && !t.dims.is_empty())
        .map(|t| t.name())
        .collect();
    assert!(int8.contains(&"block1_W_quantized") && int8.contains(&"block2_W_quantized"));
    assert!(
        q.initializer("block1_W").is_none(),
        "the fp32 weights are gone"
    );
    // The Conv reads its weights through a per-channel DequantizeLinear.
    let conv = q
        .graph()
        .node
        .iter()
        .find(|n| n.op_type() == "Conv")
        .unwrap();
    let dq = q
        .graph()
        .node
        .iter()
        .find(|n| n.output[0] == conv.input[1])
        .unwrap();
    assert_eq!(dq.op_type(), "DequantizeLinear");
    assert_eq!(dq.attribute[0].i, Some(0));

    let d = Descriptor::for_model(&out).unwrap();
    assert_eq!(d.precision, Precision::Int8);
    assert_eq!(d.name, "tiny-int8");
    assert_eq!(d.sha256, sha256_file(&out).unwrap());
    let c = d.calibration.unwrap();
    assert_eq!((c.images, c.convolutions, c.activations), (6, 2, 3));
    assert_eq!(c.source_sha256, sha256_file(&model).unwrap());
    assert_eq!(c.method, "minmax");
}

#[test]
fn int8_features_agree_with_fp32_features() {
    // HDF5 files open here must not leak into the processes other tests spawn.
    let _serial = common::fixtures::serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 3, 4);
    let int8 = quantize(&model, &data, dir.path()).unwrap();
    let a = features(&model, &data, &dir.path().join("fp32.h5"));
    let b = features(&int8, &data, &dir.path().join("int8.h5"));
    assert_eq!(a.dim(), b.dim());
    assert_ne!(a, b, "the int8 model computes in int8, not in fp32");
    for (r, (x, y)) in a.outer_iter().zip(b.outer_iter()).enumerate() {
        let c = cosine(x.as_slice().unwrap(), y.as_slice().unwrap());
        assert!(c > 0.99, "row {r}: cosine {c}");
    }
}

#[test]
fn quantising_twice_gives_the_same_bytes_and_percentile_narrows_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 4);
    let a = quantize(&model, &data, dir.path()).unwrap();
    let first = std::fs::read(&a).unwrap();
    quantize(&model, &data, dir.path()).unwrap();
    assert_eq!(first, std::fs::read(&a).unwrap());

    let p = dir.path().join("pct.onnx");
    QuantizeParams::new(&model, &data, &p)
        .images(6)
        .method(CalibrationMethod::Percentile)
        .percentile(99.0)
        .check()
        .unwrap()
        .run()
        .unwrap();
    let scale = |m: &Path| {
        let m = Model::load(m).unwrap();
        m.initializer_f32("block1_relu_scale").unwrap()[0]
    };
    assert!(scale(&p) < scale(&a), "{} vs {}", scale(&p), scale(&a));
    let d = Descriptor::for_model(&p).unwrap();
    assert_eq!(d.calibration.unwrap().method, "percentile 99");
}

#[test]
fn the_int8_backbone_works_from_the_command_line_and_its_cache_records_int8() {
    let _serial = common::fixtures::serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 3);
    let int8 = dir.path().join("tiny-int8.onnx");
    let cache = dir.path().join("f.h5");
    common::fixtures::tlearn_ok(&[
        OsStr::new("model"),
        OsStr::new("quantize"),
        model.as_os_str(),
        OsStr::new("--calibrate"),
        data.as_os_str(),
        OsStr::new("--images"),
        OsStr::new("4"),
        OsStr::new("--out"),
        int8.as_os_str(),
    ]);
    assert!(Descriptor::path_for(&int8).is_file());
    common::fixtures::tlearn_ok(&[
        OsStr::new("features"),
        OsStr::new("--data"),
        data.as_os_str(),
        OsStr::new("--backbone"),
        int8.as_os_str(),
        OsStr::new("--layer"),
        OsStr::new("block2_pool"),
        OsStr::new("--cache"),
        cache.as_os_str(),
        OsStr::new("-q"),
    ]);
    let id = FeatureCache::open(&cache).unwrap().identity;
    assert_eq!(
        (id.precision, id.model_name.as_str()),
        (Precision::Int8, "tiny-int8")
    );
    let shown = common::fixtures::tlearn_ok(&[OsStr::new("cache"), cache.as_os_str()]);
    assert!(shown.contains("(int8, sha256"), "{shown}");
}

#[test]
fn an_fp32_cache_is_not_resumed_with_the_int8_backbone() {
    // HDF5 files open here must not leak into the processes other tests spawn.
    let _serial = common::fixtures::serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 3);
    let int8 = quantize(&model, &data, dir.path()).unwrap();
    let out = dir.path().join("f.h5");
    run(&config(&data, &model, &out), &Stop::new()).unwrap();
    assert_eq!(
        FeatureCache::open(&out).unwrap().identity.precision,
        Precision::Fp32
    );
    let before = std::fs::read(&out).unwrap();
    let err = run(&config(&data, &int8, &out), &Stop::new()).unwrap_err();
    let ExtractError::Cache(CacheError::Mismatch { .. }) = &err else {
        panic!("expected a mismatch, got {err}");
    };
    let text = err.to_string();
    assert!(
        text.contains("precision") && text.contains("int8"),
        "{text}"
    );
    assert_eq!(
        before,
        std::fs::read(&out).unwrap(),
        "the cache is untouched"
    );
}

#[test]
fn empty_unreadable_and_imageless_calibration_folders_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = quantize(&model, &empty, dir.path()).unwrap_err();
    assert!(matches!(err, QuantizeError::Calibration { .. }), "{err}");
    assert!(err.to_string().contains("no images"), "{err}");

    let err = quantize(&model, &dir.path().join("absent"), dir.path()).unwrap_err();
    assert!(matches!(err, QuantizeError::Calibration { .. }), "{err}");
    assert!(err.to_string().contains("cannot read"), "{err}");

    // Image names, no image inside: every file fails to decode.
    let fake = dir.path().join("fake");
    for class in ["a", "b"] {
        std::fs::create_dir_all(fake.join(class)).unwrap();
        std::fs::write(fake.join(class).join("x.jpg"), b"not a jpeg").unwrap();
    }
    let err = quantize(&model, &fake, dir.path()).unwrap_err();
    assert!(
        matches!(err, QuantizeError::NoUsableImages { tried: 2, .. }),
        "{err}"
    );
    assert!(
        !dir.path().join("int8.onnx").exists(),
        "nothing was written"
    );
}

#[test]
fn a_model_without_conv_and_a_quantised_model_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 3);
    let int8 = quantize(&model, &data, dir.path()).unwrap();
    let again = QuantizeParams::new(&int8, &data, &dir.path().join("again.onnx"))
        .check()
        .unwrap()
        .run()
        .unwrap_err();
    assert!(
        matches!(again, QuantizeError::AlreadyQuantized { .. }),
        "{again}"
    );

    // The same QDQ model behind an fp32 descriptor: the graph itself gives it away.
    let disguised = dir.path().join("disguised.onnx");
    std::fs::copy(&int8, &disguised).unwrap();
    let mut d = Descriptor::for_model(&int8).unwrap();
    (d.precision, d.calibration) = (Precision::Fp32, None);
    d.save_beside(&disguised).unwrap();
    let err = QuantizeParams::new(&disguised, &data, &dir.path().join("x.onnx"))
        .check()
        .unwrap()
        .run()
        .unwrap_err();
    assert!(
        matches!(err, QuantizeError::AlreadyQuantized { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("QuantizeLinear"), "{err}");

    let pool_only = with_descriptor(dir.path(), "pool", pool_only_model());
    let err = quantize(&pool_only, &data, dir.path()).unwrap_err();
    assert!(matches!(err, QuantizeError::NoConv { .. }), "{err}");
}

#[test]
fn all_zero_activations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = image_folder(dir.path(), 2, 3);
    let dead = with_descriptor(dir.path(), "dead", dead_conv_model());
    let err = quantize(&dead, &data, dir.path()).unwrap_err();
    let QuantizeError::ZeroActivations { tensor } = &err else {
        panic!("expected all-zero activations, got {err}");
    };
    assert_eq!(tensor, "relu");
    assert!(err.to_string().contains("calibrat"), "{err}");
}

#[test]
fn bad_options_are_refused_before_anything_runs() {
    // HDF5 files open here must not leak into the processes other tests spawn.
    let _serial = common::fixtures::serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 2);
    let check = |p: QuantizeParams| p.check().unwrap_err().to_string();
    let out = dir.path().join("o.onnx");
    // The library names the options by its own names; the command line's flags are below.
    let images = check(QuantizeParams::new(&model, &data, &out).images(0));
    assert!(images.contains(&format!("{} 0", Opt::Images)), "{images}");
    let percentile = check(QuantizeParams::new(&model, &data, &out).percentile(0.0));
    assert!(
        percentile.contains(&Opt::Percentile.to_string()),
        "{percentile}"
    );
    assert!(check(QuantizeParams::new(&model, &data, &model)).contains(&Opt::Out.to_string()));
    let out = tlearn()
        .args(["model", "quantize"])
        .arg(&model)
        .arg("--calibrate")
        .arg(&data)
        .args(["--batch", "0", "--out"])
        .arg(dir.path().join("x.onnx"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--batch 0"));
}

/// Writes `model` as `dir/name.onnx` with a 32 x 32 caffe descriptor.
fn with_descriptor(dir: &Path, name: &str, model: Model) -> PathBuf {
    let path = dir.join(format!("{name}.onnx"));
    model.save(&path).unwrap();
    let d = Descriptor {
        name: name.into(),
        sha256: sha256_file(&path).unwrap(),
        input: "input".into(),
        layers: vec!["out".into()],
        preprocessing: tlearn::preprocess::Preprocessing::caffe(32),
        source: None,
        classes: None,
        precision: Precision::Fp32,
        calibration: None,
    };
    d.save_beside(&path).unwrap();
    path
}

fn image_input(b: &mut GraphBuilder) {
    let dims = [Dim::sym("batch"), 3.into(), Dim::sym("h"), Dim::sym("w")];
    b.input("input", DataType::Float, &dims);
}

/// input -> MaxPool -> out: nothing to quantise.
fn pool_only_model() -> Model {
    let mut b = GraphBuilder::new("pool");
    image_input(&mut b);
    b.node(
        "MaxPool",
        &["input"],
        &["out"],
        vec![
            attr_ints("kernel_shape", &[2, 2]),
            attr_ints("strides", &[2, 2]),
        ],
    );
    b.output_unshaped("out", DataType::Float);
    b.build(13).unwrap()
}

/// input -> Conv (zero weights, bias -1) -> Relu -> out: always 0.
fn dead_conv_model() -> Model {
    let mut b = GraphBuilder::new("dead");
    image_input(&mut b);
    b.initializer_f32("W", &[0.0; 2 * 3 * 9], &[2, 3, 3, 3]);
    b.initializer_f32("B", &[-1.0, -1.0], &[2]);
    b.node(
        "Conv",
        &["input", "W", "B"],
        &["conv"],
        vec![attr_ints("kernel_shape", &[3, 3])],
    );
    b.node("Relu", &["conv"], &["relu"], vec![]);
    b.node(
        "MaxPool",
        &["relu"],
        &["out"],
        vec![
            attr_ints("kernel_shape", &[2, 2]),
            attr_ints("strides", &[2, 2]),
        ],
    );
    b.output_unshaped("out", DataType::Float);
    b.build(13).unwrap()
}

/// Runs tests/python/quantize_reference.py on `fp32` and tlearn's `int8` (calibrated on every
/// image of `calib`), evaluating on `eval`; prints and returns its report.
fn python_reference(
    fp32: &Path,
    int8: &Path,
    calib: &Path,
    eval: &Path,
    size: u32,
    layers: &str,
    dir: &Path,
) -> serde_json::Value {
    let out = dir.join("quantize_reference.json");
    let status = common::fixtures::command(common::fixtures::python())
        .arg(common::fixtures::repo().join("tests/python/quantize_reference.py"))
        .args([fp32, int8, calib, eval])
        .args([size.to_string().as_str(), layers])
        .arg(&out)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the Python quantiser failed (does the venv's onnxruntime have onnxruntime.quantization?)"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    println!("tlearn vs ONNX Runtime's Python quantiser:\n{report:#}");
    report
}

fn values(report: &serde_json::Value, key: &str) -> Vec<f64> {
    let list = report[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} in {report}"));
    list.iter().map(|v| v.as_f64().unwrap()).collect()
}

fn worst(report: &serde_json::Value, key: &str) -> f64 {
    values(report, key)
        .into_iter()
        .fold(f64::INFINITY, f64::min)
}

/// The scales both quantisers give alike-named tensors (input, activations, weights).
fn worst_scale_diff(report: &serde_json::Value) -> (usize, f64) {
    let diffs = report["scale_rel_diff"].as_object().unwrap();
    let worst = diffs
        .values()
        .map(|v| v.as_f64().unwrap())
        .fold(0.0, f64::max);
    (diffs.len(), worst)
}

#[test]
fn agrees_with_onnx_runtime_python_quantiser_on_the_tiny_backbone() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let calib = image_folder(&dir.path().join("calib"), 2, 3);
    let eval = image_folder(&dir.path().join("eval"), 3, 3);
    let int8 = quantize(&model, &calib, dir.path()).unwrap();
    let report = python_reference(
        &model,
        &int8,
        &calib,
        &eval,
        32,
        "block1_pool,block2_pool",
        dir.path(),
    );
    assert_eq!(report["calibration_images"], 6);
    assert_eq!(values(&report, "cos_fp32_tlearn").len(), 9);
    // input, two Relu outputs, two weights: named alike by both quantisers.
    let (compared, scale_diff) = worst_scale_diff(&report);
    assert!(compared >= 5, "{compared} scales compared");
    assert!(scale_diff < 0.02, "scales differ by {scale_diff}");
    let (ours, theirs) = (
        worst(&report, "cos_fp32_tlearn"),
        worst(&report, "cos_fp32_python"),
    );
    assert!(
        ours > theirs - 0.005,
        "fp32 agreement: tlearn {ours}, Python {theirs}"
    );
    assert!(worst(&report, "cos_tlearn_python") > 0.99);
}

/// Copies flowers `first..first + n` of each of the first `classes` classes into `dir`.
fn flowers_images(dir: &Path, classes: usize, first: usize, n: usize) -> PathBuf {
    let source = common::fixtures::flowers().join("jpg");
    for c in 0..classes {
        let class_dir = dir.join(tlearn::dataset::FLOWERS17_CLASSES[c]);
        std::fs::create_dir_all(&class_dir).unwrap();
        for i in first..first + n {
            let name = format!("image_{:04}.jpg", c * 80 + i + 1);
            std::fs::copy(source.join(&name), class_dir.join(&name)).unwrap();
        }
    }
    dir.to_path_buf()
}

#[test]
fn agrees_with_onnx_runtime_python_quantiser_on_vgg16() {
    let dir = tempfile::tempdir().unwrap();
    let vgg16 = common::fixtures::vgg16();
    // 8 calibration flowers (2 of each of 4 classes), 8 others to compare features on.
    let calib = flowers_images(&dir.path().join("calib"), 4, 0, 2);
    let eval = flowers_images(&dir.path().join("eval"), 4, 40, 2);
    let int8 = dir.path().join("vgg16-int8.onnx");
    QuantizeParams::new(&vgg16, &calib, &int8)
        .images(8)
        .check()
        .unwrap()
        .run()
        .unwrap();
    let report = python_reference(
        &vgg16,
        &int8,
        &calib,
        &eval,
        224,
        "block4_pool,block5_pool",
        dir.path(),
    );
    assert_eq!(report["calibration_images"], 8);
    let (compared, scale_diff) = worst_scale_diff(&report);
    assert!(compared >= 27, "{compared} scales compared");
    assert!(scale_diff < 0.02, "scales differ by {scale_diff}");
    let (ours, theirs) = (
        worst(&report, "cos_fp32_tlearn"),
        worst(&report, "cos_fp32_python"),
    );
    // Without VNNI, ONNX Runtime's u8 x s8 kernels can saturate (pmaddubsw), which costs both
    // quantisers about a point of agreement on this CPU; the comparison with Python's is the
    // same either way.
    let floor = if cpu_has_vnni() { 0.99 } else { 0.98 };
    assert!(ours > floor, "fp32 agreement {ours} (floor {floor})");
    assert!(
        ours > theirs - 0.002,
        "fp32 agreement: tlearn {ours}, Python {theirs}"
    );
    assert!(worst(&report, "cos_tlearn_python") > 0.99);
}

/// Whether this CPU has the int8 dot-product instructions (AVX-512 VNNI or AVX-VNNI) that
/// ONNX Runtime's int8 kernels use without saturating.
fn cpu_has_vnni() -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .is_ok_and(|info| info.contains("avx512_vnni") || info.contains("avx_vnni"))
}
