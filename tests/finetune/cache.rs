//! Training data read from a real (tiny) feature cache.

use tlearn::progress::Stop;

use tlearn::finetune::data::Data;
use tlearn::finetune::run::{run, RunConfig};
use tlearn::finetune::train::FinetuneParams;
use tlearn::finetune::train::TrainEvent;
use tlearn::finetune::{FinetuneError, HeadPool, Unfreeze};

use super::common::fixtures::{config, image_folder, serial, tlearn_err, tlearn_ok};

/// 3 classes of 8 generated images through the tiny backbone, 2 flipped copies, 2 splits.
fn tiny_cache(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let cache = super::common::fixtures::tiny_cache(dir, |c| {
        c.recipe = "flip".parse().unwrap();
        c.copies = 2;
    });
    (cache, dir.join("tiny.onnx"))
}

#[test]
fn cache_rows_split_into_parts_with_copies_only_in_training() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (cache, _) = tiny_cache(dir.path());
    let c = tlearn::cache::FeatureCache::open(&cache).unwrap();
    let (copies, parts, paths) = (c.copies().unwrap(), c.splits().unwrap(), c.paths().unwrap());
    drop(c);
    for split in 0..2 {
        let data = Data::from_cache(&cache, split, None, None).unwrap();
        assert_eq!(data.classes(), 3);
        assert!(data.train.iter().any(|&r| copies[r] > 0), "copies train");
        for &r in &data.train {
            assert_eq!(parts[[r, split]], 0);
        }
        for (part, rows) in [(1, &data.val), (2, &data.test)] {
            assert!(!rows.is_empty());
            for &r in rows.iter() {
                assert_eq!((parts[[r, split]], copies[r]), (part, 0), "row {r}");
                assert!(
                    !data.train.iter().any(|&t| paths[t] == paths[r]),
                    "{} leaks",
                    paths[r]
                );
            }
        }
        // Every original image is in exactly one part.
        let originals = copies.iter().filter(|c| **c == 0).count();
        let held_out = data.val.len() + data.test.len();
        let trained = data.train.iter().filter(|&&r| copies[r] == 0).count();
        assert_eq!(trained + held_out, originals);
    }
    let e = Data::from_cache(&cache, 2, None, None).unwrap_err();
    assert!(e.to_string().contains("split 2 does not exist"), "{e}");
    let e = Data::from_cache(&cache, 0, None, Some(vec![7, 7])).unwrap_err();
    assert!(matches!(e, FinetuneError::Data(_)), "{e}");
}

#[test]
fn a_run_on_a_layer_it_cannot_train_from_is_refused_with_the_reason() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (cache, model) = tiny_cache(dir.path());
    let cfg = RunConfig {
        cache,
        repr: None,
        split: 0,
        backbone: model,
        unfreeze: Unfreeze::Last(0),
        pool: HeadPool::Flatten,
        hidden: 4,
        out: dir.path().join("run"),
        init_from: None,
    };
    let params = FinetuneParams::default().check().unwrap();
    // The tiny backbone's convolutions are not named as VGG's (`blockB_convC`): which of them
    // follow block2_pool, and with how many channels, cannot be read from it.
    let e = run(&cfg, &params, (&Stop::new(), &mut |_: TrainEvent<'_>| {})).unwrap_err();
    assert!(
        e.to_string().contains("no convolutions named like VGG's"),
        "{e}"
    );
    assert!(!dir.path().join("run").exists(), "nothing written");
}

/// A VGG-like model named as tf2onnx names Keras' VGG16 (`model/blockB_convC_1/...`): input
/// `input` NCHW at 16 x 16, block 1 (two convolutions, 4 channels), block 2 (two, 6), block 3
/// (one, 8), each max-pooled into the outputs `blockB_pool`; with its descriptor.
fn tiny_named_vgg(dir: &std::path::Path) -> std::path::PathBuf {
    use tlearn::onnx::{attr_ints, DataType, GraphBuilder};
    let mut b = GraphBuilder::new("tiny_named_vgg");
    let batch = tlearn::onnx::Dim::sym("batch");
    b.input(
        "input",
        DataType::Float,
        &[batch, 3.into(), 16.into(), 16.into()],
    );
    let (mut x, mut cin, mut seed) = ("input".to_string(), 3i64, 80u64);
    for (block, convs, cout) in [(1, 2, 4i64), (2, 2, 6), (3, 1, 8)] {
        for c in 1..=convs {
            let name = format!("block{block}_conv{c}");
            let (w, bias) = (format!("{name}/kernel"), format!("{name}/bias"));
            // He-like scale: the maps keep their size through the blocks.
            let scale = (6.0 / (9 * cin) as f32).sqrt();
            let values = super::fd::uniform(seed, (cout * cin * 9) as usize, scale);
            b.initializer_f32(&w, &values, &[cout, cin, 3, 3]);
            b.initializer_f32(
                &bias,
                &super::fd::uniform(seed + 1, cout as usize, 0.1),
                &[cout],
            );
            seed += 2;
            let conv = format!("model/{name}_1/BiasAdd:0");
            let pads = attr_ints("pads", &[1, 1, 1, 1]);
            b.node(
                "Conv",
                &[&x, &w, &bias],
                &[&conv],
                vec![attr_ints("kernel_shape", &[3, 3]), pads],
            );
            x = format!("model/{name}_1/Relu:0");
            b.node("Relu", &[&conv], &[&x], vec![]);
            cin = cout;
        }
        let pool = format!("block{block}_pool");
        let window = vec![
            attr_ints("kernel_shape", &[2, 2]),
            attr_ints("strides", &[2, 2]),
        ];
        b.node("MaxPool", &[&x], &[&pool], window);
        b.output_unshaped(&pool, DataType::Float);
        x = pool;
    }
    let model = dir.join("named.onnx");
    b.build(13).unwrap().save(&model).unwrap();
    let preprocessing = toml::to_string(&tlearn::preprocess::Preprocessing::caffe(16)).unwrap();
    let descriptor = format!(
        "name = \"named\"\nsha256 = \"{}\"\ninput = \"input\"\nlayers = [\"block1_pool\", \"block2_pool\", \"block3_pool\"]\n\n[preprocessing]\n{preprocessing}",
        tlearn::backbone::sha256_file(&model).unwrap()
    );
    std::fs::write(dir.join("named.toml"), descriptor).unwrap();
    model
}

/// A flattened cache of `layer` of [`tiny_named_vgg`] on 3 classes of 8 generated images, 2
/// flipped copies, 2 splits.
fn named_cache(dir: &std::path::Path, model: &std::path::Path, layer: &str) -> std::path::PathBuf {
    let data = image_folder(dir, 3, 8);
    let out = dir.join(format!("{layer}.h5"));
    let mut cfg = config(&data, model, &out);
    cfg.layers = vec![layer.into()];
    cfg.recipe = "flip".parse().unwrap();
    cfg.copies = 2;
    cfg.splits = 2;
    tlearn::extract::run(&cfg, &Stop::new()).unwrap();
    out
}

fn named_run(
    cache: &std::path::Path,
    model: &std::path::Path,
    unfreeze: Unfreeze,
    out: std::path::PathBuf,
) -> RunConfig {
    RunConfig {
        cache: cache.to_path_buf(),
        repr: None,
        split: 0,
        backbone: model.to_path_buf(),
        unfreeze,
        pool: HeadPool::Avg,
        hidden: 6,
        out,
        init_from: None,
    }
}

fn few_epochs() -> tlearn::finetune::train::CheckedParams {
    FinetuneParams {
        epochs: 3,
        batch: 8,
        lr_new: 0.01,
        lr_pretrained: 0.005,
        patience: 0,
        compute: tlearn::backbone::Compute::cpu(1),
        ..FinetuneParams::default()
    }
    .check()
    .unwrap()
}

/// The exported model's probabilities of the first test image, fed its cached preprocessed
/// input (`input_cache`), against the run's own.
fn assert_export_matches(summary: &tlearn::finetune::run::Summary, input_cache: &std::path::Path) {
    let model = summary
        .model
        .as_ref()
        .expect("a finished run exports its model");
    let mut session = tlearn::finetune::session(
        &tlearn::onnx::Model::load(model).unwrap(),
        tlearn::backbone::Compute::cpu(1),
    )
    .unwrap();
    let images = Data::from_cache(input_cache, 0, None, None).unwrap();
    let (path, _) = &summary.test_images[0];
    let row = *images
        .test
        .iter()
        .find(|&&r| &images.paths[r] == path)
        .unwrap();
    let x = images.x.row(row).to_vec();
    let input = ort::value::Tensor::from_array((vec![1usize, 3, 16, 16], x)).unwrap();
    let out = session.run(ort::inputs!["input" => input]).unwrap();
    let (_, p) = out["probabilities"].try_extract_tensor::<f32>().unwrap();
    for (a, b) in p.iter().zip(&summary.test_probabilities[0]) {
        assert!(
            (a - b).abs() < 1e-4,
            "{p:?} vs {:?}",
            summary.test_probabilities[0]
        );
    }
}

#[test]
fn stage_2_trains_the_last_two_blocks_from_the_pooling_before_them() {
    // As block 4 and block 5 train from VGG16's block3_pool: here blocks 2 and 3 from block1_pool.
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_named_vgg(dir.path());
    let cache = named_cache(dir.path(), &model, "block1_pool");
    let inputs = named_cache(dir.path(), &model, "input");
    let (tail, classes) =
        tlearn::finetune::run::cache_tail(&cache, None, Unfreeze::All, &model).unwrap();
    let names: Vec<&str> = tail.trainable.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["block2_conv1", "block2_conv2", "block3_conv1"]);
    assert_eq!((tail.input.clone(), classes), (vec![4, 8, 8], 3));
    for unfreeze in [Unfreeze::All, Unfreeze::Last(1)] {
        let out = dir.path().join(format!("run-{unfreeze:?}"));
        let cfg = named_run(&cache, &model, unfreeze, out);
        let summary = run(
            &cfg,
            &few_epochs(),
            (&Stop::new(), &mut |_: TrainEvent<'_>| {}),
        )
        .unwrap();
        assert_eq!(summary.epochs, 3);
        assert!(summary.history.iter().all(|h| h.train_loss.is_finite()));
        assert_export_matches(&summary, &inputs);
    }
}

#[test]
fn unfreezing_every_layer_trains_from_cached_preprocessed_images() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_named_vgg(dir.path());
    let cache = named_cache(dir.path(), &model, "input");
    // The cache holds the network's input: 3 x 16 x 16 preprocessed values per row.
    let c = tlearn::cache::FeatureCache::open(&cache).unwrap();
    assert_eq!(c.identity.dims, 3 * 16 * 16);
    drop(c);
    let (tail, _) = tlearn::finetune::run::cache_tail(&cache, None, Unfreeze::All, &model).unwrap();
    assert_eq!(tail.trainable.len(), 5, "every convolution trains");
    assert!(tail.frozen.is_empty());
    let cfg = named_run(&cache, &model, Unfreeze::All, dir.path().join("all"));
    let summary = run(
        &cfg,
        &few_epochs(),
        (&Stop::new(), &mut |_: TrainEvent<'_>| {}),
    )
    .unwrap();
    assert_eq!(summary.epochs, 3);
    assert_export_matches(&summary, &cache);
    // Nothing trained: the frozen network from the input gives the backbone's own block3_pool.
    let frozen = named_run(&cache, &model, Unfreeze::Last(0), dir.path().join("frozen"));
    let p = tlearn::finetune::run::prepare(&frozen, tlearn::backbone::Compute::cpu(1)).unwrap();
    let pooled = named_cache(&dir.path().join("pooled"), &model, "block3_pool");
    let direct = Data::from_cache(&pooled, 0, None, None).unwrap();
    // Row i of the prepared data is the i-th row of the split's parts.
    let rows = direct.rows();
    assert_eq!(p.data.x.nrows(), rows.len());
    for (i, &r) in rows.iter().enumerate() {
        assert_eq!(p.data.paths[i], direct.paths[r]);
        for (a, b) in p.data.x.row(i).iter().zip(direct.x.row(r)) {
            assert!(
                (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                "row {i}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn the_ensembles_linear_model_trains_and_scores_as_train_does_with_the_same_flags() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_named_vgg(dir.path());
    // Copies of every image, for the linear model's TTA (fine-tuning reads the originals).
    let mut cfg = config(
        &image_folder(dir.path(), 3, 8),
        &model,
        &dir.path().join("b3.h5"),
    );
    cfg.layers = vec!["block3_pool".into()];
    (cfg.recipe, cfg.copies, cfg.augment_all, cfg.splits) =
        ("flip,crop".parse().unwrap(), 2, true, 2);
    tlearn::extract::run(&cfg, &Stop::new()).unwrap();
    let path = |p: &std::path::Path| p.display().to_string();
    let (cache, backbone) = (path(&cfg.cache), path(&model));
    let (runs, reports) = (
        path(&dir.path().join("runs")),
        path(&dir.path().join("reports")),
    );
    let json = path(&dir.path().join("ensemble.json"));
    let flags = "--c 1e-3,1 --tta --refit-with-validation --copies-used 1";
    let folders = format!("--runs {runs} --reports {reports} --quiet");
    let args = |line: String| {
        line.split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    tlearn_ok(&args(format!(
        "finetune train --cache {cache} --backbone {backbone} --head-pool avg --hidden 6 \
         --epochs 2 --run head {folders}"
    )));
    tlearn_ok(&args(format!(
        "finetune ensemble --run {runs}/head --cache {cache} --classifier svm {flags} \
         --json {json}"
    )));
    tlearn_ok(&args(format!(
        "train svm --cache {cache} {flags} --no-refit --run linear {folders}"
    )));

    // A split the cache lacks is refused before any split trains.
    let err = tlearn_err(&args(format!(
        "finetune train --cache {cache} --backbone {backbone} --splits-used 1,2 --run late {folders}"
    )));
    assert!(err.contains("split 2 does not exist"), "{err}");
    assert!(!dir.path().join("runs/late/split-1").exists());
    let read = |path: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let (ensemble, report) = (read(&json), read(&format!("{reports}/linear/report.json")));
    let config = &ensemble["linear_config"];
    assert_eq!(config["tta"], true);
    assert_eq!(config["refit_with_validation"], true);
    assert_eq!(config["copies_used"], 1);
    assert_eq!(config["grid"], serde_json::json!([1e-3, 1.0]));
    for k in 0..2 {
        let (mixed, alone) = (&ensemble["splits"][k], &report["splits"][k]);
        assert_eq!(mixed["split"], k);
        // The linear column: the same C, the same validation and test accuracies as train's.
        let chosen: f64 = alone["chosen"].as_str().unwrap().parse().unwrap();
        assert_eq!(mixed["linear_c"].as_f64(), Some(chosen));
        assert_eq!(mixed["val_accuracy"][1], alone["val_accuracy"]);
        assert_eq!(mixed["test_accuracy"][1], alone["metrics"]["accuracy"]);
    }
}
