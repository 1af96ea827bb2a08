//! Several representations from one extraction (`--repr`, `--use`) and `tlearn auto`: it picks
//! an early layer when only that layer sees the classes, the deepest when the deepest is right,
//! never reads test labels to choose, and leaves a report and a model `tlearn predict` uses.

use crate::common;

use std::path::{Path, PathBuf};
use tlearn::progress::Stop;

use common::fixtures::{config, image_folder, serial, tiny_backbone, tlearn};
use common::lcg_values;
use image::{Rgb, RgbImage};
use tlearn::auto::{self, AutoConfig, Similarity};
use tlearn::backbone::{sha256_file, Pooling, Repr};
use tlearn::cache::{CacheError, FeatureCache};
use tlearn::classify::data::CacheData;
use tlearn::classify::Kind;
use tlearn::onnx::{attr_ints, DataType, Dim, GraphBuilder};
use tlearn::preprocess::Preprocessing;

fn go() -> Stop {
    Stop::new()
}

fn reprs(list: &str) -> Vec<Repr> {
    list.split(',').map(|r| r.parse().unwrap()).collect()
}

/// A two-block model like `tiny_vgg` whose second block ignores its input (zero weights, a
/// positive bias): block2_pool is the same for every image, so only block1_pool sees anything.
fn blind_block2_backbone(dir: &Path) -> PathBuf {
    let mut b = GraphBuilder::new("blind_block2");
    let sym = Dim::sym;
    b.input(
        "input",
        DataType::Float,
        &[sym("batch"), 3.into(), sym("height"), sym("width")],
    );
    let block =
        |b: &mut GraphBuilder, name: &str, input: &str, cin: i64, w: Vec<f32>, bias: Vec<f32>| {
            let cout = bias.len() as i64;
            b.initializer_f32(&format!("{name}_W"), &w, &[cout, cin, 3, 3]);
            b.initializer_f32(&format!("{name}_B"), &bias, &[cout]);
            b.node(
                "Conv",
                &[input, &format!("{name}_W"), &format!("{name}_B")],
                &[&format!("{name}_conv")],
                vec![
                    attr_ints("kernel_shape", &[3, 3]),
                    attr_ints("pads", &[1, 1, 1, 1]),
                ],
            );
            b.node(
                "Relu",
                &[&format!("{name}_conv")],
                &[&format!("{name}_relu")],
                vec![],
            );
            b.node(
                "MaxPool",
                &[&format!("{name}_relu")],
                &[&format!("{name}_pool")],
                vec![
                    attr_ints("kernel_shape", &[2, 2]),
                    attr_ints("strides", &[2, 2]),
                ],
            );
        };
    block(
        &mut b,
        "block1",
        "input",
        3,
        lcg_values(3, 4 * 3 * 9, 0.5),
        lcg_values(4, 4, 0.05),
    );
    block(
        &mut b,
        "block2",
        "block1_pool",
        4,
        vec![0.0; 8 * 4 * 9],
        vec![0.1; 8],
    );
    for (name, c) in [("block1_pool", 4), ("block2_pool", 8)] {
        b.output(
            name,
            DataType::Float,
            &[sym("batch"), c.into(), sym("h"), sym("w")],
        );
    }
    let model = dir.join("blind.onnx");
    b.build(13).unwrap().save(&model).unwrap();
    let preprocessing = toml::to_string(&Preprocessing::caffe(32)).unwrap();
    std::fs::write(
        dir.join("blind.toml"),
        format!(
            "name = \"blind\"\nsha256 = \"{}\"\ninput = \"input\"\nlayers = [\"block1_pool\", \"block2_pool\"]\n\n[preprocessing]\n{preprocessing}",
            sha256_file(&model).unwrap()
        ),
    )
    .unwrap();
    model
}

/// 32 x 32 images whose class is a colour tint, with random brightness and pixel noise.
fn tinted(dir: &Path, classes: usize, per_class: usize) -> PathBuf {
    let root = dir.join("tinted");
    for c in 0..classes {
        let class_dir = root.join(format!("tint_{c}"));
        std::fs::create_dir_all(&class_dir).unwrap();
        for i in 0..per_class {
            let noise = lcg_values((c * 1000 + i) as u64, 32 * 32, 40.0);
            let level = 90.0 + 3.0 * i as f32;
            let img = RgbImage::from_fn(32, 32, |x, y| {
                let n = noise[(y * 32 + x) as usize];
                let mut px = [level + n; 3];
                px[c % 3] += 80.0;
                Rgb(px.map(|v| v.clamp(0.0, 255.0) as u8))
            });
            img.save(class_dir.join(format!("{i:02}.png"))).unwrap();
        }
    }
    root
}

/// 32 x 32 grey images with a bright disc of random size and brightness; the class is only
/// where the disc is (a corner of its own), which global pooling does not keep.
fn discs(dir: &Path, per_class: usize) -> PathBuf {
    discs_at(dir, per_class, "discs", &[(9, 9), (22, 22), (22, 9)])
}

/// As [`discs`], but every disc lies inside the image's top-left quarter (up to 15.7 px from
/// the corner), the classes a few pixels apart: neither global pooling nor pooling over each
/// quarter keeps where the disc is, only a flattened map does.
fn discs_in_one_quarter(dir: &Path, per_class: usize) -> PathBuf {
    discs_at(dir, per_class, "near-discs", &[(4, 4), (10, 10), (10, 4)])
}

/// 32 x 32 grey images with a bright disc of random size, brightness and offset (up to 2 px)
/// around its class's centre, under `dir/name/<class>/`.
fn discs_at(dir: &Path, per_class: usize, name: &str, centres: &[(i32, i32)]) -> PathBuf {
    let root = dir.join(name);
    for (c, (cx, cy)) in centres.iter().enumerate() {
        let class_dir = root.join(format!("corner_{c}"));
        std::fs::create_dir_all(&class_dir).unwrap();
        for i in 0..per_class {
            let r = lcg_values((c * 100 + i) as u64, 4, 1.0);
            let radius = 3.0 + 1.2 * r[0];
            let (dx, dy) = ((r[1] * 1.5).round() as i32, (r[2] * 1.5).round() as i32);
            let bright = (200.0 + 50.0 * r[3]) as u8;
            let img = RgbImage::from_fn(32, 32, |x, y| {
                let (ex, ey) = ((x as i32 - cx - dx) as f32, (y as i32 - cy - dy) as f32);
                if (ex * ex + ey * ey).sqrt() <= radius {
                    Rgb([bright, bright, bright / 2])
                } else {
                    Rgb([100, 100, 100])
                }
            });
            img.save(class_dir.join(format!("{i:02}.png"))).unwrap();
        }
    }
    root
}

fn auto_config(data: &Path, model: &Path, out: &Path, splits: usize) -> AutoConfig {
    let mut extract = config(data, model, Path::new(""));
    extract.splits = splits;
    AutoConfig::new(extract, out)
}

#[test]
fn one_extraction_stores_representations_side_by_side_with_their_columns() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 3, 4);
    let both = dir.path().join("both.h5");
    let mut cfg = config(&data, &model, &both);
    cfg.reprs = reprs("block2_pool:max,block1_pool:avg,block2_pool:flatten");
    let summary = tlearn::extract::run(&cfg, &go()).unwrap();
    assert_eq!(summary.dims, 8 + 4 + 512);
    // Each representation's columns are what an extraction of it alone gives.
    let full = FeatureCache::open(&both).unwrap();
    let features = full.features().unwrap();
    let blocks = full.identity.columns().unwrap();
    assert_eq!(
        blocks
            .iter()
            .map(|b| (b.repr.as_str(), b.start, b.end))
            .collect::<Vec<_>>(),
        vec![
            ("block2_pool:max", 0, 8),
            ("block1_pool:avg", 8, 12),
            ("block2_pool:flatten", 12, 524)
        ]
    );
    for (layer, pooling, block) in [
        ("block2_pool", Pooling::Max, &blocks[0]),
        ("block1_pool", Pooling::Avg, &blocks[1]),
        ("block2_pool", Pooling::Flatten, &blocks[2]),
    ] {
        let alone = dir.path().join(format!("{layer}-{pooling:?}.h5"));
        let mut one = config(&data, &model, &alone);
        one.layers = vec![layer.into()];
        one.pooling = pooling;
        tlearn::extract::run(&one, &go()).unwrap();
        let expected = FeatureCache::open(&alone).unwrap().features().unwrap();
        assert_eq!(
            features.slice(ndarray::s![.., block.start..block.end]),
            expected,
            "{layer} {pooling:?}"
        );
        // --layer/--pool caches keep the identity they always had.
        let text = serde_json::to_string(&FeatureCache::open(&alone).unwrap().identity).unwrap();
        assert!(!text.contains("reprs"), "{text}");
    }
    // The map is an attribute for h5py users.
    drop(full);
    let file = hdf5::File::open(&both).unwrap();
    let attr: hdf5::types::VarLenUnicode = file.attr("columns").unwrap().read_scalar().unwrap();
    let listed: Vec<serde_json::Value> = serde_json::from_str(attr.as_str()).unwrap();
    assert_eq!(listed[1]["repr"], "block1_pool:avg");
    assert_eq!(
        (listed[2]["start"].as_u64(), listed[2]["end"].as_u64()),
        (Some(12), Some(524))
    );
    drop(file);
    // Another list of representations is another identity: refused, file untouched.
    cfg.reprs = reprs("block2_pool:max,block1_pool:max,block2_pool:flatten");
    let err = tlearn::extract::run(&cfg, &go()).unwrap_err();
    assert!(
        matches!(
            err,
            tlearn::extract::ExtractError::Cache(CacheError::Mismatch { .. })
        ),
        "{err}"
    );
    // Classifiers read any subset, in the order asked.
    let cache = CacheData::load(&both).unwrap();
    let sub = cache
        .using(&reprs("block1_pool:avg,block2_pool:max"))
        .unwrap();
    assert_eq!(sub.features.ncols(), 12);
    assert_eq!(sub.features.column(0), cache.features.column(8));
    assert_eq!(sub.features.column(4), cache.features.column(0));
    assert_eq!(sub.identity.layers, vec!["block1_pool", "block2_pool"]);
    assert!(cache.using(&reprs("block1_pool:max")).is_err());
}

#[test]
fn auto_picks_the_early_layer_when_only_it_sees_the_classes() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = blind_block2_backbone(dir.path());
    let data = tinted(dir.path(), 3, 12);
    let cfg = auto_config(&data, &model, &dir.path().join("out"), 2);
    let outcome = auto::run(&cfg, &go(), &mut |_: auto::Progress| {}).unwrap();
    let d = &outcome.decision;
    assert_eq!(d.chosen.layers, "block1_pool", "{:?}", d.chosen);
    assert_eq!(d.similarity, Similarity::Different);
    assert!(d.best_without_deepest > d.best_with_deepest - 1e-9);
    assert!(d.chosen.val_accuracy > 0.9, "{:?}", d.chosen);
    // Every candidate reading block2_pool alone is at chance or near it.
    let blind = d
        .search
        .candidates
        .iter()
        .filter(|c| c.layers == "block2_pool")
        .map(|c| c.val_accuracy)
        .fold(0.0f64, f64::max);
    assert!(blind < 0.5, "block2_pool alone scored {blind}");
}

#[test]
fn a_row_budget_lowers_the_copies_auto_extracts_and_the_decision_says_so() {
    // The rule: the most copies that keep images x (1 + copies) within the budget, at least 2.
    let within = |images| auto::copies_within(6, images, auto::ROW_BUDGET);
    let cases = [
        (1000, 6),
        (1360, 6),
        (2857, 6),
        (2858, 5),
        (5000, 3),
        (7023, 2),
        (10_000_000, 2),
    ];
    for (images, copies) in cases {
        assert_eq!(within(images), copies, "{images} images");
    }
    assert_eq!(auto::copies_within(1, 10_000_000, auto::ROW_BUDGET), 1);
    assert_eq!(auto::copies_within(6, 0, auto::ROW_BUDGET), 6);

    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = blind_block2_backbone(dir.path());
    let data = tinted(dir.path(), 3, 12);
    let mut cfg = auto_config(&data, &model, &dir.path().join("out"), 2);
    cfg.extract.recipe = "flip".parse().unwrap();
    cfg.extract.copies = 6;
    cfg.extract.augment_all = true;
    // 36 images x (1 + 3 copies) = 144 rows.
    cfg.row_budget = Some(36 * 4);
    let outcome = auto::run(&cfg, &go(), &mut |_: auto::Progress| {}).unwrap();
    let cache = CacheData::load(&dir.path().join("out/cache/features.h5")).unwrap();
    assert_eq!((cache.identity.copies, cache.labels.len()), (3, 144));
    let d = &outcome.decision;
    let said = "36 images: 3 augmented copies per image, not 6 (252 rows would pass the 144";
    assert!(
        d.warnings.iter().any(|w| w.contains(said)),
        "{:?}",
        d.warnings
    );
    // The reproducing steps extract what auto extracted (the library words them as settings).
    assert!(d.commands[0].contains("copies: 3,"), "{}", d.commands[0]);
}

#[test]
fn auto_picks_the_deepest_layer_when_it_is_right() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = discs_in_one_quarter(dir.path(), 12);
    let cfg = auto_config(&data, &model, &dir.path().join("out"), 2);
    let outcome = auto::run(&cfg, &go(), &mut |_: auto::Progress| {}).unwrap();
    let d = &outcome.decision;
    assert_eq!(
        d.chosen.reprs,
        vec!["block2_pool:flatten"],
        "{:?}",
        d.chosen
    );
    assert_eq!(d.similarity, Similarity::Similar);
    assert!(d.chosen.val_accuracy > 0.9, "{:?}", d.chosen);
    // 18 test images per split: flagged as unreliable.
    assert!(
        d.warnings.iter().any(|w| w.contains("unreliable")),
        "{:?}",
        d.warnings
    );
}

#[test]
fn choosing_never_reads_test_labels() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = discs(dir.path(), 12);
    let out = dir.path().join("f.h5");
    let mut cfg = config(&data, &model, &out);
    cfg.reprs = auto::choose::extraction_reprs(
        &["block1_pool".into(), "block2_pool".into()],
        &auto::choose::POOLINGS,
    );
    // Copies of every image: stage 2 (training copies on / off, TTA) runs too.
    cfg.recipe = "flip,crop".parse().unwrap();
    cfg.copies = 1;
    cfg.augment_all = true;
    tlearn::extract::run(&cfg, &go()).unwrap();
    let layers = ["block1_pool".to_string(), "block2_pool".to_string()];
    let sets = auto::choose::feature_sets(&layers, &auto::choose::POOLINGS);
    let kinds = [Kind::Svm, Kind::Logistic];
    let base = tlearn::classify::train::TrainConfig::new(Kind::Svm);
    let search = |cache: &CacheData| {
        let stage1 = auto::choose::search(
            &[(cache, &sets)],
            &kinds,
            &base,
            &go(),
            &mut |_: auto::choose::SearchProgress| {},
        )
        .unwrap();
        auto::choose::refine(
            &[cache],
            stage1,
            &base,
            2,
            &go(),
            &mut |_: auto::choose::SearchProgress| {},
        )
        .unwrap()
    };
    let cache = CacheData::load(&out).unwrap();
    let honest = search(&cache);
    assert!(
        honest.candidates.iter().any(|c| c.variant.tta),
        "stage 2 ran"
    );
    // Scramble the label of every test row (one split: test rows are never training rows).
    let mut scrambled = cache.clone();
    let classes = scrambled.class_names.len();
    for row in 0..scrambled.labels.len() {
        if scrambled.parts[[row, 0]] == tlearn::dataset::Part::Test {
            scrambled.labels[row] = (scrambled.labels[row] + 1) % classes;
        }
    }
    let blind = search(&scrambled);
    // Everything but the fit times (which vary run to run) is the same.
    let scores = |s: &auto::Search| -> Vec<_> {
        s.candidates
            .iter()
            .map(|c| {
                (
                    c.reprs.clone(),
                    c.kind,
                    c.variant,
                    c.c,
                    c.val_per_split.clone(),
                )
            })
            .collect()
    };
    assert_eq!(
        scores(&honest),
        scores(&blind),
        "every validation score is the same"
    );
    let chosen = |s: &auto::Search| {
        let b = auto::choose::best(&s.candidates).unwrap();
        (b.reprs.clone(), b.kind, b.variant, b.c)
    };
    assert_eq!(chosen(&honest), chosen(&blind));
    assert_ne!(
        honest.test_only, blind.test_only,
        "the scrambling reached the test rows"
    );
}

#[test]
fn cli_auto_writes_the_decision_and_a_model_predict_uses() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = tinted(dir.path(), 3, 8);
    let out = dir.path().join("out");
    let run = tlearn()
        .args(["auto", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .arg("--backbone")
        .arg(&model)
        .args([
            "--copies",
            "1",
            "--splits",
            "2",
            "--c",
            "0.01,1",
            "--threads",
            "1",
        ])
        .arg("--json")
        .arg(dir.path().join("auto.json"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("[26/26]"), "{stderr}");
    assert!(stderr.contains("unreliable"), "{stderr}");
    assert!(stdout.contains("<- chosen"), "{stdout}");
    let report = out.join("reports/auto");
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    for part in [
        "## Decision (tlearn auto)",
        "The method's table",
        "Candidates",
        "Reproduce by hand",
        "not used for choosing",
        "n = 6 test images per split",
    ] {
        assert!(md.contains(part), "{part} missing from report.md:\n{md}");
    }
    assert!(std::fs::read_to_string(report.join("report.html"))
        .unwrap()
        .contains("<h2>Decision (tlearn auto)</h2>"));
    assert!(image::open(report.join("candidates.png")).is_ok());
    // Run again: the report folder, decision files and all, is tlearn's own and is replaced
    // whole (the decision appears once), not refused.
    let again = tlearn()
        .args(["auto", "--quiet", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .arg("--backbone")
        .arg(&model)
        .args([
            "--copies",
            "1",
            "--splits",
            "2",
            "--c",
            "0.01,1",
            "--threads",
            "1",
        ])
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert_eq!(md.matches("## Decision (tlearn auto)").count(), 1, "{md}");
    assert!(md.contains("not run: the data is small"), "{md}");
    // The chosen section says which model `predict` uses: the refit on every labelled image.
    let chosen = md.split("### Chosen").nth(1).unwrap_or_default();
    assert!(chosen.contains("refit on all"), "{chosen}");
    assert!(!out.join("runs/auto-finetune-head").exists());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("auto.json")).unwrap())
            .unwrap();
    assert_eq!(json["phases"].as_array().unwrap().len(), 4);
    assert!(out.join("cache/features.h5").exists());
    // The chosen model predicts new images through `tlearn predict`.
    let image = data.join("tint_2/03.png");
    let predicted = tlearn()
        .args(["predict", "--model"])
        .arg(out.join("runs/auto"))
        .arg("--backbone")
        .arg(&model)
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        predicted.status.success(),
        "{}",
        String::from_utf8_lossy(&predicted.stderr)
    );
    let line = String::from_utf8_lossy(&predicted.stdout);
    assert!(line.contains("tint_"), "{line}");
    // The commands the decision lists (what auto extracted, the chosen run from that cache,
    // the same from scratch) run as printed, and each training gives auto's model.
    let decision: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("decision.json")).unwrap())
            .unwrap();
    let steps = decision["commands"].as_array().unwrap();
    assert_eq!(steps.len(), 3, "{steps:?}");
    let load = |p: PathBuf| tlearn::classify::TrainedModel::load(&p).unwrap();
    let a = load(out.join("runs/auto/model.json"));
    let mut trained = 0;
    for line in steps.iter().flat_map(|s| s.as_str().unwrap().lines()) {
        let Some(args) = line.strip_prefix("tlearn ") else {
            assert!(line.starts_with("# "), "{line}");
            continue;
        };
        let ran = tlearn()
            .args(args.split_whitespace())
            .arg("--quiet")
            .output()
            .unwrap();
        assert!(
            ran.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&ran.stderr)
        );
        if args.starts_with("train ") {
            let b = load(out.join("runs/auto-by-hand/model.json"));
            assert_eq!(a.classifier, b.classifier, "{line}");
            if trained == 0 {
                // From auto's own cache: the same features too.
                assert_eq!(a.identity, b.identity, "{line}");
            }
            trained += 1;
        }
    }
    assert_eq!(trained, 2);
    // Both are refit on every labelled image after the evaluation, as `tlearn train` does.
    assert!(
        matches!(a.fit, Some(tlearn::classify::ModelFit::AllLabelled { .. })),
        "{:?}",
        a.fit
    );
}

#[test]
fn cli_auto_plans_splits_over_images_that_decode_and_counts_every_skip() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = tinted(dir.path(), 3, 19);
    // 30 junk ".jpg" in one class: before, auto counted 49 images there and gave the class
    // test places the junk took, so a split could hold none of its real images.
    for i in 0..30 {
        std::fs::write(data.join(format!("tint_0/junk_{i:02}.jpg")), b"not a jpeg").unwrap();
    }
    // A FIFO and a dangling link in class folders: skipped, and counted without --verbose.
    common::fixtures::mkfifo(&data.join("tint_1/pipe.png"));
    std::os::unix::fs::symlink(dir.path().join("gone.png"), data.join("tint_2/gone.png")).unwrap();
    let out = dir.path().join("out");
    let mut command = tlearn();
    command
        .args([
            "auto",
            "--classifiers",
            "logistic",
            "--c",
            "1",
            "--copies",
            "0",
            "--splits",
            "2",
        ])
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .arg("--backbone")
        .arg(&model);
    let run =
        common::fixtures::output_within(&mut command, b"", std::time::Duration::from_secs(600))
            .expect("auto finishes");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    // 19 real images per class: 10 train, 5 validation, 4 test each; 12 test images per split.
    assert!(stderr.contains("data: 57 images, 3 classes"), "{stderr}");
    assert!(stderr.contains("n = 12 test images per split"), "{stderr}");
    assert!(
        stderr.contains(
            "30 image file(s) cannot be decoded and are left out of every count and split"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("skipped tint_0/junk_00.jpg"), "{stderr}");
    assert!(
        stderr.contains(
            "ignored 2 entries of the data folder: 1 dangling symbolic link, 1 not a regular file"
        ),
        "{stderr}"
    );
    // The cache size is said before the work: 57 rows (no copies) of 4 + 8 + ... features.
    assert!(stderr.contains("computing 57 rows of "), "{stderr}");
    let cache = FeatureCache::open(&out.join("cache/features.h5")).unwrap();
    assert_eq!(cache.rows, 57);
    let decision = std::fs::read_to_string(out.join("reports/auto/decision.json")).unwrap();
    let decision: serde_json::Value = serde_json::from_str(&decision).unwrap();
    for split in decision["stats"]["splits"].as_array().unwrap() {
        assert_eq!(split["test"], 12, "{split}");
    }
    assert_eq!(decision["skipped"].as_array().unwrap().len(), 30);
}

#[test]
fn cli_auto_refuses_splits_0_before_any_work() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = tinted(dir.path(), 2, 6);
    let out = dir.path().join("out");
    let run = tlearn()
        .args(["auto", "--splits", "0", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .arg("--backbone")
        .arg(&model)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--splits 0: at least one split"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("test images"),
        "no warning computed from 0 splits: {stderr}"
    );
    assert!(!out.exists(), "nothing written");
}

#[test]
fn cli_auto_refuses_classes_too_small_to_split() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = tinted(dir.path(), 3, 6);
    for i in 0..4 {
        std::fs::remove_file(data.join(format!("tint_1/{i:02}.png"))).unwrap();
    }
    let out = dir.path().join("out");
    let run = tlearn()
        .args(["auto", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .arg("--backbone")
        .arg(&model)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(
        stderr.contains("class tint_1 has 2 image(s); at least 4"),
        "{stderr}"
    );
    assert!(
        !out.join("cache").exists(),
        "nothing is extracted for data that cannot be split"
    );
}

#[test]
fn cli_auto_finetune_runs_both_stages_on_real_vgg16_and_keeps_the_best_on_validation() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let data = common::fixtures::flowers_slice(dir.path(), 3, 8);
    let out = dir.path().join("out");
    let run = tlearn()
        .args(["auto", "--finetune", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .arg("--backbone")
        .arg(common::fixtures::vgg16())
        .args([
            "--layers",
            "block4_pool,block5_pool",
            "--classifiers",
            "svm",
            "--c",
            "0.01",
            "--copies",
            "1",
            "--splits",
            "1",
            "--epochs",
            "2",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("fine-tuning: run because --finetune asked for them"),
        "{stderr}"
    );
    // Stage 1: a head on block5_pool from auto's own cache; stage 2: block 5's convolutions
    // from a second, flattened block4_pool cache, starting from stage 1's head.
    assert!(
        stderr.contains("auto-finetune-head: a new head on block5_pool:flatten"),
        "{stderr}"
    );
    assert!(
        stderr.contains("auto-finetune: 3 convolution(s) (block5_conv1"),
        "{stderr}"
    );
    assert!(out.join("cache/finetune-input.h5").exists());
    for stage in ["auto-finetune-head", "auto-finetune"] {
        assert!(
            out.join(format!("runs/{stage}/split-0/model.onnx"))
                .exists(),
            "{stage}"
        );
    }
    let decision: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("reports/auto/decision.json")).unwrap(),
    )
    .unwrap();
    let stages = decision["finetune"].as_array().unwrap();
    assert_eq!(stages.len(), 2);
    // The kept one is the best on validation (ties: the linear classifier).
    let linear = decision["chosen"]["val_accuracy"].as_f64().unwrap();
    let best = stages
        .iter()
        .max_by(|a, b| {
            let v = |s: &serde_json::Value| s["val_accuracy"].as_f64().unwrap();
            v(a).total_cmp(&v(b))
        })
        .unwrap();
    let expected = (best["val_accuracy"].as_f64().unwrap() > linear + 1e-9)
        .then(|| best["run"].as_str().unwrap().to_string());
    assert_eq!(
        decision["finetune_won"].as_str().map(String::from),
        expected
    );
    let md = std::fs::read_to_string(out.join("reports/auto/report.md")).unwrap();
    assert!(
        md.contains("## Fine-tuning") || md.contains("### Fine-tuning"),
        "{md}"
    );
    assert!(
        md.contains("fine-tuning `auto-finetune`"),
        "appendix row: {md}"
    );
}

/// Every file under `dir` with its bytes (sorted by path).
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                files.push((path, bytes));
            }
        }
    }
    files.sort();
    files
}

/// A stop during the search ends the run between fits with `Interrupted`, leaves the previous
/// run's model and reports byte for byte, and a rerun resumes from the complete cache.
#[test]
fn a_stop_during_the_search_keeps_the_previous_run_and_resumes() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = discs(dir.path(), 12);
    let out = dir.path().join("out");
    let cfg = auto_config(&data, &model, &out, 2);
    auto::run(&cfg, &go(), &mut |_: auto::Progress| {}).unwrap();
    let (runs, reports) = (snapshot(&cfg.runs()), snapshot(&cfg.reports()));
    assert!(!runs.is_empty() && !reports.is_empty());
    let stop = go();
    let mut searched = 0;
    let stopped = auto::run(&cfg, &stop, &mut |p: auto::Progress| {
        if let auto::Progress::Search(_) = p {
            // As Ctrl-C would, once the first pair of the search is done.
            stop.request();
            searched += 1;
        }
    });
    assert!(
        matches!(stopped, Err(auto::AutoError::Interrupted(_))),
        "{stopped:?}"
    );
    assert!(searched >= 1);
    assert_eq!(snapshot(&cfg.runs()), runs, "the previous model changed");
    assert_eq!(
        snapshot(&cfg.reports()),
        reports,
        "the previous reports changed"
    );
    let resumed = auto::run(&cfg, &go(), &mut |_: auto::Progress| {}).unwrap();
    assert_eq!(
        resumed.decision.rows_computed, 0,
        "the rerun extracted again"
    );
}

/// A cache of tinted images with 2 flipped copies of every image (one split, both layers'
/// representations), whose features are then replaced by `shape(label, copy, part, column)`
/// plus uniform noise in [-1, 1): the levers' effect is set by construction.
fn shaped_cache(
    dir: &Path,
    shape: impl Fn(usize, u16, tlearn::dataset::Part, usize) -> f32,
) -> CacheData {
    let model = tiny_backbone(dir);
    let data = tinted(dir, 3, 20);
    let out = dir.join("copies.h5");
    let mut cfg = config(&data, &model, &out);
    cfg.reprs = auto::choose::extraction_reprs(
        &["block1_pool".into(), "block2_pool".into()],
        &auto::choose::POOLINGS,
    );
    cfg.recipe = "flip".parse().unwrap();
    cfg.copies = 2;
    cfg.augment_all = true;
    tlearn::extract::run(&cfg, &go()).unwrap();
    let mut cache = CacheData::load(&out).unwrap();
    let (rows, dims) = cache.features.dim();
    let noise = lcg_values(11, rows * dims, 1.0);
    cache.features = tlearn::classify::nd::Array2::from_shape_fn((rows, dims), |(r, j)| {
        shape(cache.labels[r], cache.copies[r], cache.parts[[r, 0]], j) + noise[r * dims + j]
    });
    cache
}

/// The candidate stages 1 and 2 choose on `cache` (every layer, both classifiers, 2 C).
fn choose_with_variants(cache: &CacheData) -> (auto::Search, auto::Candidate) {
    let layers = ["block1_pool".to_string(), "block2_pool".to_string()];
    let sets = auto::choose::feature_sets(&layers, &auto::choose::POOLINGS);
    let mut base = tlearn::classify::train::TrainConfig::new(Kind::Svm);
    base.grid = vec![0.01, 1.0];
    base.refit_on_all_labelled = false;
    let kinds = [Kind::Svm, Kind::Logistic];
    let stage1 = auto::choose::search(
        &[(cache, &sets)],
        &kinds,
        &base,
        &go(),
        &mut |_: auto::choose::SearchProgress| {},
    )
    .unwrap();
    let search = auto::choose::refine(
        &[cache],
        stage1,
        &base,
        2,
        &go(),
        &mut |_: auto::choose::SearchProgress| {},
    )
    .unwrap();
    let chosen = auto::choose::best(&search.candidates).unwrap().clone();
    (search, chosen)
}

/// The best validation accuracy of `search`'s candidates whose variant `keep` keeps.
fn best_val_where(search: &auto::Search, keep: impl Fn(&auto::choose::Variant) -> bool) -> f64 {
    let kept = search.candidates.iter().filter(|c| keep(&c.variant));
    kept.map(|c| c.val_accuracy).fold(0.0, f64::max)
}

/// Class `class`'s centre in column `j` (in [-2, 2)).
fn centre(class: usize, j: usize) -> f32 {
    lcg_values((class * 100_000 + j) as u64, 1, 2.0)[0]
}

#[test]
fn auto_trains_without_the_copies_when_they_mislead() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // Copy k looks like the class k after its own (a crop that cuts away what tells classes
    // apart), so with the copies every class centre is claimed by every class.
    let cache = shaped_cache(dir.path(), |label, copy, _, j| {
        centre((label + copy as usize) % 3, j)
    });
    let (search, chosen) = choose_with_variants(&cache);
    assert!(!chosen.variant.train_copies, "{chosen:?}");
    assert!(
        !chosen.variant.tta,
        "the validation copies mislead too: {chosen:?}"
    );
    // Stage 1 ran with copies (the quarters without); stage 2 tried without them and with TTA,
    // on the best pairs only.
    let variants: Vec<_> = search.candidates.iter().map(|c| c.variant).collect();
    assert!(variants.iter().any(|v| v.train_copies && !v.tta));
    assert!(variants.iter().any(|v| v.train_copies && v.tta));
    assert!(
        variants.iter().any(|v| v.copies_used == Some(1)),
        "stage 2 tried the first half of the copies"
    );
    let mut refined: Vec<_> = search
        .candidates
        .iter()
        .filter(|c| c.stage == 2)
        .map(|c| format!("{} {}", c.reprs.join("+"), c.kind))
        .collect();
    refined.sort();
    refined.dedup();
    // The 2 best pairs, and the best pair of each layout they leave out: at most 2 more.
    let layouts = ["avg2x2", "flatten"].map(|l| refined.iter().any(|r| r.contains(l)));
    let global = refined
        .iter()
        .any(|r| r.contains(":avg ") || r.contains(":max "));
    assert!(
        (2..=4).contains(&refined.len()) && layouts == [true, true] && global,
        "stage 2 refines the 2 best pairs and the best of each layout they miss: {refined:?}"
    );
    assert!(chosen.val_accuracy > 0.9, "{chosen:?}");
}

#[test]
fn auto_keeps_the_copies_when_they_teach_what_validation_images_look_like() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // The class shows in even columns in training originals, in odd columns in every copy and
    // in validation and test images (say, the photos to classify are mirrored): only the
    // copies teach the odd columns.
    let cache = shaped_cache(dir.path(), |label, copy, part, j| {
        let as_trained = part == tlearn::dataset::Part::Train && copy == 0;
        if as_trained == (j % 2 == 0) {
            centre(label, j)
        } else {
            0.0
        }
    });
    let (search, chosen) = choose_with_variants(&cache);
    assert!(chosen.variant.train_copies, "{chosen:?}");
    let without = best_val_where(&search, |v| !v.train_copies);
    assert!(
        chosen.val_accuracy > without + 0.2,
        "{chosen:?} vs {without} without copies"
    );
    // Stage 1 scored the quarters on the originals only, every other set with the copies;
    // stage 2 gave the best quarters pair its copies, which teach here.
    let quarters = |c: &&auto::Candidate| c.pooling.ends_with("2x2");
    for c in search.candidates.iter().filter(|c| c.stage == 1) {
        assert_eq!(c.variant.train_copies, !quarters(&c), "{c:?}");
    }
    let best_of = |stage: u8, copies: bool| {
        let of = search.candidates.iter().filter(quarters);
        let of = of.filter(|c| c.stage == stage && c.variant.train_copies == copies);
        of.map(|c| c.val_accuracy).fold(0.0, f64::max)
    };
    assert!(
        best_of(2, true) > best_of(1, false) + 0.2,
        "the quarters with copies in stage 2: {} vs {} without",
        best_of(2, true),
        best_of(1, false)
    );
}

#[test]
fn auto_reads_only_the_first_copies_when_the_later_ones_mislead() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // Training originals show the class in even columns, validation and test images in odd
    // ones; copy 1 teaches the odd columns, copy 2 shows the next class's centre there.
    let cache = shaped_cache(dir.path(), |label, copy, part, j| {
        let as_trained = part == tlearn::dataset::Part::Train && copy == 0;
        match (as_trained == (j % 2 == 0), copy) {
            (false, _) => 0.0,
            (true, 2) => centre((label + 1) % 3, j),
            (true, _) => centre(label, j),
        }
    });
    let (search, chosen) = choose_with_variants(&cache);
    assert_eq!(chosen.variant.copies_used, Some(1), "{chosen:?}");
    assert!(chosen.variant.train_copies, "{chosen:?}");
    // The same pair and levers with every copy read does worse.
    let every_copy = auto::choose::Variant {
        copies_used: None,
        ..chosen.variant
    };
    let all_copies = search
        .candidates
        .iter()
        .filter(|c| c.reprs == chosen.reprs && c.kind == chosen.kind)
        .filter(|c| c.variant == every_copy)
        .map(|c| c.val_accuracy)
        .fold(0.0, f64::max);
    assert!(
        chosen.val_accuracy > all_copies + 0.1,
        "{chosen:?} vs {all_copies} with every copy"
    );
}

/// Stage 2 scores its TTA variants with the fits already made for the same rows (only the
/// scoring of validation and test images differs): every TTA candidate and appendix row must
/// equal what `tlearn train --tta` of that variant gives when it fits from scratch.
#[test]
fn tta_variants_scored_on_shared_fits_equal_fits_from_scratch() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let cache = shaped_cache(dir.path(), |label, copy, _, j| {
        centre(label, j) * if copy == 0 { 1.0 } else { 0.7 }
    });
    let (search, _) = choose_with_variants(&cache);
    let mut checked = 0;
    for t in search.test_only.iter().filter(|t| t.variant.tta) {
        let mut cfg = tlearn::classify::train::TrainConfig::new(t.kind);
        cfg.grid = vec![0.01, 1.0];
        cfg.refit_on_all_labelled = false;
        cfg.train_copies = t.variant.train_copies;
        cfg.tta = true;
        cfg.normalize = t.variant.normalize;
        cfg.copies_used = t.variant.copies_used;
        let sub = cache.using(&reprs(&t.features.replace('+', ","))).unwrap();
        let (outcome, _) = tlearn::classify::train::run(&sub, &cfg, &mut |_| {}).unwrap();
        for (g, &c) in cfg.grid.iter().enumerate() {
            let candidate = search
                .candidates
                .iter()
                .find(|x| {
                    x.reprs.join("+") == t.features
                        && x.kind == t.kind
                        && x.variant == t.variant
                        && x.c == c
                })
                .unwrap();
            let scratch: Vec<f64> = outcome
                .splits
                .iter()
                .map(|s| s.grid[g].val_accuracy)
                .collect();
            assert_eq!(candidate.val_per_split, scratch, "{t:?} C = {c}");
        }
        let test: Vec<f64> = outcome
            .splits
            .iter()
            .map(|s| {
                s.test.iter().filter(|i| i.label == i.predicted).count() as f64
                    / s.test.len() as f64
            })
            .collect();
        assert_eq!(t.test_accuracy, test, "{t:?}");
        checked += 1;
    }
    assert!(checked >= 2, "stage 2 tried TTA on its 2 pairs: {checked}");
}

/// A model trained with TTA records it in model.json, `predict` averages the same views as the
/// evaluation did (the cache's recipe, seed and copies: keyed by the same relative paths, its
/// scores equal the split's test scores), and `export` refuses it (one graph scores one view).
#[test]
fn a_tta_model_round_trips_and_predict_averages_the_same_copies() {
    use tlearn::classify::train::{run, TrainConfig};
    use tlearn::classify::TrainedModel;
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let backbone = tiny_backbone(dir.path());
    let images = image_folder(dir.path(), 3, 8);
    let out = dir.path().join("all.h5");
    let mut cfg = config(&images, &backbone, &out);
    cfg.pooling = Pooling::Avg;
    cfg.recipe = "flip,rotate,crop".parse().unwrap();
    cfg.copies = 2;
    cfg.augment_all = true;
    tlearn::extract::run(&cfg, &go()).unwrap();
    let data = CacheData::load(&out).unwrap();
    let mut train_cfg = TrainConfig::new(Kind::Logistic);
    train_cfg.grid = vec![1.0];
    train_cfg.tta = true;
    train_cfg.refit_on_all_labelled = false;
    let (outcome, model) = run(&data, &train_cfg, &mut |_| {}).unwrap();
    assert!(model.tta);
    let file = dir.path().join("tta/model.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    model.save(&file).unwrap();
    assert_eq!(TrainedModel::load(&file).unwrap(), model);
    let mut plain = model.clone();
    plain.tta = false;
    let plain_file = dir.path().join("plain/model.json");
    std::fs::create_dir_all(plain_file.parent().unwrap()).unwrap();
    plain.save(&plain_file).unwrap();
    assert!(!TrainedModel::load(&plain_file).unwrap().tta);

    let test = &outcome.splits[0].test;
    let predict = |model: &std::path::Path| -> Vec<Vec<f32>> {
        let got = tlearn()
            .current_dir(&images)
            .args(["predict", "--format", "jsonl", "--top", "3", "--model"])
            .arg(model)
            .arg("--backbone")
            .arg(&backbone)
            .args(test.iter().map(|t| t.path.clone()))
            .output()
            .unwrap();
        assert!(
            got.status.success(),
            "{}",
            String::from_utf8_lossy(&got.stderr)
        );
        String::from_utf8(got.stdout)
            .unwrap()
            .lines()
            .map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let mut p = vec![0f32; 3];
                for t in v["top"].as_array().unwrap() {
                    let class = model_class(&data, t["class"].as_str().unwrap());
                    p[class] = t["probability"].as_f64().unwrap() as f32;
                }
                p
            })
            .collect()
    };
    let with_tta = predict(&file);
    let without = predict(&plain_file);
    assert_eq!(with_tta.len(), test.len());
    for (got, scored) in with_tta.iter().zip(test) {
        for (a, b) in got.iter().zip(&scored.scores) {
            assert!(
                (a - b).abs() < 1e-4,
                "{}: {got:?} vs {:?}",
                scored.path,
                scored.scores
            );
        }
    }
    let differs = without
        .iter()
        .zip(&with_tta)
        .any(|(a, b)| a.iter().zip(b).any(|(x, y)| (x - y).abs() > 1e-3));
    assert!(differs, "the copies change the scores");

    // A model that read only the first copy averages the original and that copy alone.
    train_cfg.copies_used = Some(1);
    let (first, first_model) = run(&data, &train_cfg, &mut |_| {}).unwrap();
    let first_file = dir.path().join("first/model.json");
    std::fs::create_dir_all(first_file.parent().unwrap()).unwrap();
    first_model.save(&first_file).unwrap();
    assert_eq!(
        TrainedModel::load(&first_file).unwrap().copies_used,
        Some(1)
    );
    let first_test = &first.splits[0].test;
    let got = predict(&first_file);
    for (got, scored) in got.iter().zip(first_test) {
        for (a, b) in got.iter().zip(&scored.scores) {
            assert!(
                (a - b).abs() < 1e-4,
                "{}: {got:?} vs {:?}",
                scored.path,
                scored.scores
            );
        }
    }
    assert_ne!(first_test, test, "one copy of two scores otherwise");

    let exported = tlearn()
        .args(["export", "--model"])
        .arg(&file)
        .arg("--backbone")
        .arg(&backbone)
        .arg("--out")
        .arg(dir.path().join("tta.onnx"))
        .output()
        .unwrap();
    assert!(!exported.status.success());
    let stderr = String::from_utf8_lossy(&exported.stderr);
    assert!(stderr.contains("test-time augmentation"), "{stderr}");
}

/// The index of class `name`.
fn model_class(data: &CacheData, name: &str) -> usize {
    data.class_names.iter().position(|c| c == name).unwrap()
}

/// 64 x 64 grey images of 1-pixel stripes, horizontal (class 0) or vertical (class 1), at a
/// random brightness. Halved to 32 px, the bilinear resize averages every dark and light pair
/// into one grey, so inside the image both classes look alike (only the border, where the
/// filter's taps are cut, keeps the stripes' phase); at 48 px the stripes leave an oriented
/// pattern everywhere.
fn fine_stripes(dir: &Path, per_class: usize) -> PathBuf {
    let root = dir.join("stripes");
    for (c, name) in ["horizontal", "vertical"].iter().enumerate() {
        let class_dir = root.join(name);
        std::fs::create_dir_all(&class_dir).unwrap();
        for i in 0..per_class {
            let level = 120.0 + lcg_values((c * 100 + i) as u64, 1, 30.0)[0];
            let img = RgbImage::from_fn(64, 64, |x, y| {
                let on = if c == 0 { y % 2 == 0 } else { x % 2 == 0 };
                let v = if on { level + 60.0 } else { level - 60.0 };
                Rgb([v as u8; 3])
            });
            img.save(class_dir.join(format!("{i:02}.png"))).unwrap();
        }
    }
    root
}

/// `tlearn auto --sizes 32,48` on the tiny backbone: both sizes' candidates are scored, the
/// choice is the best validation score of both (the stripes only 48 px sees), the chosen model
/// and its cache are 48 px, `predict` runs on it, and the commands name that cache and size.
#[test]
fn cli_auto_compares_image_sizes_and_predict_uses_the_chosen_size() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = fine_stripes(dir.path(), 12);
    let out = dir.path().join("out");
    let run = tlearn()
        .args(["auto", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .arg("--backbone")
        .arg(&model)
        .args(["--sizes", "32,48", "--augment", "flip", "--copies", "1"])
        // Global pooling only: the quarters of a 32 px map keep the stripes' phase at the
        // border, which would let 32 px tie 48.
        .args(["--poolings", "avg,max"])
        .args(["--splits", "2", "--c", "0.01,1", "--classifiers", "svm"])
        .args(["--threads", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stderr}");
    // The plan is said before the extractions: the rows of each size and the cost.
    assert!(
        stderr.contains("comparing 2 image sizes, one cache each: 32 px (48 rows")
            && stderr.contains("48 px (48 rows, about 2."),
        "{stderr}"
    );
    assert!(stdout.contains("size features"), "{stdout}");
    let decision = std::fs::read_to_string(out.join("reports/auto/decision.json")).unwrap();
    let d: serde_json::Value = serde_json::from_str(&decision).unwrap();
    assert_eq!(d["sizes"], serde_json::json!([32, 48]));
    let candidates = d["search"]["candidates"].as_array().unwrap();
    let best_at = |size: u64| {
        candidates
            .iter()
            .filter(|c| c["size"] == size)
            .map(|c| c["val_accuracy"].as_f64().unwrap())
            .fold(f64::NAN, f64::max)
    };
    let (at32, at48) = (best_at(32), best_at(48));
    // Both sizes were scored; the flattened layer at the extraction's own size only.
    assert!(!at32.is_nan() && !at48.is_nan(), "{candidates:?}");
    let flat: Vec<_> = candidates
        .iter()
        .filter(|c| c["reprs"].to_string().contains("flatten"))
        .collect();
    assert!(!flat.is_empty() && flat.iter().all(|c| c["size"] == 32));
    assert!(
        at48 > at32,
        "48 px sees the stripes better: {at48} vs {at32}"
    );
    let chosen = &d["chosen"];
    assert_eq!(chosen["size"], 48, "{chosen}");
    assert_eq!(chosen["val_accuracy"].as_f64().unwrap(), at48.max(at32));
    // Each cache holds its own size; the saved model is the chosen size's.
    let side = |p: &Path| FeatureCache::open(p).unwrap().identity.preprocessing.size;
    assert_eq!(side(&out.join("cache/features.h5")), 32);
    assert_eq!(side(&out.join("cache/features-48.h5")), 48);
    let saved = tlearn::classify::TrainedModel::load(&out.join("runs/auto/model.json")).unwrap();
    assert_eq!(saved.identity.preprocessing.size, 48);
    let commands = d["commands"].as_array().unwrap();
    let commands: Vec<&str> = commands.iter().map(|c| c.as_str().unwrap()).collect();
    assert!(commands[0].contains(" --size 48 "), "{commands:?}");
    assert!(commands[1].contains("features-48.h5"), "{commands:?}");
    let md = std::fs::read_to_string(out.join("reports/auto/decision.md")).unwrap();
    assert!(md.contains("| size |") && md.contains("at 48 px"), "{md}");
    // `predict` runs the backbone at 48 px, as the model's identity says, and tells the
    // stripes apart.
    let predicted = tlearn()
        .args(["predict", "--model"])
        .arg(out.join("runs/auto"))
        .arg("--backbone")
        .arg(&model)
        .arg(data.join("horizontal/01.png"))
        .arg(data.join("vertical/02.png"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&predicted.stdout);
    assert!(
        predicted.status.success(),
        "{}",
        String::from_utf8_lossy(&predicted.stderr)
    );
    let predicted: Vec<&str> = said
        .lines()
        .skip(1)
        .map(|l| l.split('\t').nth(1).unwrap_or_default())
        .collect();
    assert_eq!(predicted, ["horizontal", "vertical"], "{said}");
    // Run again: both caches resume complete (no row computed) and the choice is the same.
    let json = dir.path().join("again.json");
    let again = tlearn()
        .args(["auto", "--quiet", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .arg("--backbone")
        .arg(&model)
        .args(["--sizes", "48,32", "--augment", "flip", "--copies", "1"])
        .args(["--poolings", "avg,max"])
        .args(["--splits", "2", "--c", "0.01,1", "--classifiers", "svm"])
        .args(["--threads", "1", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(again["rows_computed"], 0, "{again}");
    let timeless = |c: &serde_json::Value| {
        let mut c = c.clone();
        c.as_object_mut().unwrap().remove("fit_seconds");
        c
    };
    assert_eq!(timeless(&again["chosen"]), timeless(chosen));
}

/// `--sizes` out of range, given twice or without the backbone's own size is refused before
/// anything is written.
#[test]
fn cli_auto_refuses_bad_sizes_before_any_work() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = tinted(dir.path(), 2, 6);
    let out = dir.path().join("out");
    for (sizes, said) in [
        (
            "32,16",
            "--sizes 32,16: 16: every side is 32 to 2048 pixels",
        ),
        ("32,4096", "4096: every side is 32 to 2048 pixels"),
        ("32,48,32", "--sizes 32,48,32: 32 is given twice"),
        ("48,64", "the list must include 32"),
    ] {
        let run = tlearn()
            .args(["auto", "--sizes", sizes, "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&out)
            .arg("--backbone")
            .arg(&model)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{sizes}: {stderr}");
        assert!(stderr.contains(said), "{sizes}: {stderr}");
        assert!(!out.exists(), "{sizes}: nothing written");
    }
}

#[test]
fn cli_auto_offers_and_accepts_only_candidate_poolings() {
    let help = tlearn().args(["auto", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("[possible values: avg, max, avg2x2, max2x2]"),
        "{help}"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let run = tlearn()
        .args(["auto", "--poolings", "avg,flatten", "--data"])
        .arg(dir.path())
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid value 'flatten'"), "{stderr}");
    assert!(!out.exists(), "nothing written");
}
