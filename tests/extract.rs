//! The feature pipeline end to end on a tiny generated backbone and generated images.

use crate::common;

use tlearn::progress::Stop;

use common::fixtures::{config, feature_bytes, forget_rows, image_folder, tiny_backbone};
use tlearn::backbone::{BackboneError, ExecutionProvider, Pooling};
use tlearn::cache::{CacheError, FeatureCache, RowStatus};
use tlearn::extract::{run, ExtractError};
use tlearn::options::Opt;

fn go() -> Stop {
    Stop::new()
}

#[test]
fn features_of_every_image_land_in_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 3, 5);
    let out = dir.path().join("f.h5");
    let summary = run(&config(&data, &model, &out), &go()).unwrap();
    // 32x32 input, two 2x2 pools -> 8 channels of 8x8.
    assert_eq!(
        (summary.images, summary.rows, summary.computed, summary.dims),
        (15, 15, 15, 512)
    );
    let cache = FeatureCache::open(&out).unwrap();
    assert!(cache
        .status()
        .unwrap()
        .iter()
        .all(|s| *s == RowStatus::Done));
    assert_eq!(
        cache.class_names().unwrap(),
        ["class_0", "class_1", "class_2"]
    );
    assert_eq!(
        cache.labels().unwrap(),
        [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2]
    );
    assert_eq!(cache.paths().unwrap()[6], "class_1/img_01.png");
    let features = cache.features().unwrap();
    assert_eq!(features.dim(), (15, 512));
    assert!(features.iter().all(|v| v.is_finite()) && features.iter().any(|v| *v != 0.0));
    assert_ne!(
        features.row(0),
        features.row(5),
        "different images, different features"
    );
}

#[test]
fn layers_concatenate_and_pooling_sets_the_length() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 2);
    let mut cfg = config(&data, &model, &dir.path().join("a.h5"));
    cfg.layers = vec!["block1_pool".into(), "block2_pool".into()];
    cfg.pooling = Pooling::Avg;
    assert_eq!(run(&cfg, &go()).unwrap().dims, 4 + 8);
    cfg.pooling = Pooling::Max;
    cfg.cache = dir.path().join("m.h5");
    let max = FeatureCache::open(&{
        run(&cfg, &go()).unwrap();
        cfg.cache.clone()
    })
    .unwrap()
    .features()
    .unwrap();
    let avg = FeatureCache::open(&dir.path().join("a.h5"))
        .unwrap()
        .features()
        .unwrap();
    assert!(
        max.iter().zip(avg.iter()).all(|(m, a)| m >= a),
        "max pooling >= average pooling"
    );
}

#[test]
fn augmented_copies_only_of_training_images_and_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 4);
    let mut cfg = config(&data, &model, &dir.path().join("a.h5"));
    cfg.recipe = "flip,rotate=10".parse().unwrap();
    cfg.copies = 2;
    let summary = run(&cfg, &go()).unwrap();
    // One split of 4 per class: 2 train images per class get 2 copies each.
    assert_eq!(summary.rows, 8 + 2 * 2 * 2);
    let cache = FeatureCache::open(&cfg.cache).unwrap();
    let (copies, splits, features) = (
        cache.copies().unwrap(),
        cache.splits().unwrap(),
        cache.features().unwrap(),
    );
    for row in 0..summary.rows {
        if copies[row] > 0 {
            assert_eq!(
                splits[[row, 0]],
                0,
                "row {row} is a copy of a non-training image"
            );
            assert_ne!(
                features.row(row),
                features.row(row - copies[row] as usize),
                "a copy differs from its original"
            );
        }
    }
    cfg.cache = dir.path().join("b.h5");
    run(&cfg, &go()).unwrap();
    assert_eq!(
        feature_bytes(&dir.path().join("a.h5")),
        feature_bytes(&cfg.cache),
        "same seed, same bytes"
    );
}

#[test]
fn resume_computes_only_missing_rows() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 5);
    let cfg = config(&data, &model, &dir.path().join("f.h5"));
    run(&cfg, &go()).unwrap();
    let complete = feature_bytes(&cfg.cache);
    // Forget rows 3..7 as a killed run would have: features zero, status missing.
    forget_rows(&cfg.cache, &[3, 4, 5, 6]);
    let summary = run(&cfg, &go()).unwrap();
    assert_eq!((summary.computed, summary.reused), (4, 6));
    assert_eq!(feature_bytes(&cfg.cache), complete);
    let again = run(&cfg, &go()).unwrap();
    assert_eq!(again.computed, 0, "a complete cache computes nothing");
}

#[test]
fn a_cache_made_otherwise_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 3);
    let mut cfg = config(&data, &model, &dir.path().join("f.h5"));
    run(&cfg, &go()).unwrap();
    let before = std::fs::read(&cfg.cache).unwrap();
    cfg.pooling = Pooling::Avg;
    let err = run(&cfg, &go()).unwrap_err();
    assert!(
        matches!(err, ExtractError::Cache(CacheError::Mismatch { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("pooling"), "{err}");
    // One readable sentence: what differs, then what to do (not "was made with X differs").
    let text = err.to_string();
    assert!(
        text.contains("does not match this run (") && text.contains("pooling differs: cache has"),
        "{text}"
    );
    assert!(
        !text.contains("made with") && text.contains(&format!("Give {} another file", Opt::Cache)),
        "{text}"
    );
    cfg.pooling = Pooling::Flatten;
    image_folder(&dir.path().join("more"), 2, 4);
    cfg.data = dir.path().join("more/images");
    let err = run(&cfg, &go()).unwrap_err();
    assert!(err.to_string().contains("another list of images"), "{err}");
    assert_eq!(std::fs::read(&cfg.cache).unwrap(), before);
}

#[test]
fn bad_images_are_skipped_listed_and_strict_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 3);
    let class0 = data.join("class_0");
    std::fs::write(class0.join("empty.jpg"), b"").unwrap();
    std::fs::write(class0.join("text.png"), b"this is not an image at all").unwrap();
    let jpeg = std::fs::read(class0.join("img_00.png")).unwrap();
    std::fs::write(class0.join("truncated.png"), &jpeg[..jpeg.len() / 2]).unwrap();
    image::RgbImage::new(1, 1)
        .save(class0.join("dot.png"))
        .unwrap();
    image::GrayImage::from_pixel(20, 20, image::Luma([90]))
        .save(class0.join("gray.png"))
        .unwrap();
    image::RgbaImage::from_pixel(20, 20, image::Rgba([9, 80, 200, 10]))
        .save(class0.join("alpha.png"))
        .unwrap();
    image::ImageBuffer::<image::Rgb<u16>, _>::from_pixel(20, 20, image::Rgb([4000u16, 60000, 9]))
        .save(class0.join("deep.png"))
        .unwrap();
    std::fs::create_dir_all(data.join("class_empty")).unwrap();

    let mut cfg = config(&data, &model, &dir.path().join("strict.h5"));
    cfg.strict = true;
    let err = run(&cfg, &go()).unwrap_err();
    assert!(
        matches!(&err, ExtractError::Strict(bad) if bad.len() == 4),
        "{err}"
    );
    assert!(
        !cfg.cache.exists(),
        "--strict failed before writing anything"
    );

    cfg.strict = false;
    cfg.cache = dir.path().join("f.h5");
    let summary = run(&cfg, &go()).unwrap();
    let skipped: Vec<&str> = summary.skipped.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        skipped,
        [
            "class_0/dot.png",
            "class_0/empty.jpg",
            "class_0/text.png",
            "class_0/truncated.png"
        ]
    );
    assert!(summary.skipped.iter().all(|(_, reason)| !reason.is_empty()));
    // Left out before planning: no row, no split place; grayscale, alpha and 16-bit are used.
    assert_eq!((summary.images, summary.rows), (6 + 3, 9));
    assert_eq!(summary.computed, summary.rows);
    let cache = FeatureCache::open(&cfg.cache).unwrap();
    assert!(cache.skipped().unwrap().is_empty());
    assert!(!cache
        .paths()
        .unwrap()
        .iter()
        .any(|p| p.ends_with("text.png")));
    assert_eq!(
        cache.class_names().unwrap(),
        ["class_0", "class_1"],
        "the empty class is left out"
    );
}

#[test]
fn non_finite_features_stop_the_run_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let mut broken = tlearn::onnx::Model::load(&model).unwrap();
    let weights = &mut broken.graph_mut().initializer[0];
    let mut values = tlearn::onnx::tensor_f32_data(weights).unwrap();
    values[0] = f32::NAN;
    *weights = tlearn::onnx::tensor_f32(weights.name(), &values, &weights.dims);
    broken.save(&model).unwrap();
    let descriptor = dir.path().join("tiny.toml");
    let text = std::fs::read_to_string(&descriptor).unwrap();
    let old = text
        .lines()
        .find(|l| l.starts_with("sha256"))
        .unwrap()
        .to_string();
    let sha = tlearn::backbone::sha256_file(&model).unwrap();
    std::fs::write(
        &descriptor,
        text.replace(&old, &format!("sha256 = \"{sha}\"")),
    )
    .unwrap();
    let data = image_folder(dir.path(), 2, 2);
    let err = run(&config(&data, &model, &dir.path().join("f.h5")), &go()).unwrap_err();
    assert!(matches!(err, ExtractError::NonFinite(_)), "{err}");
}

#[test]
fn wrong_models_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 2);
    let mut cfg = config(&data, &model, &dir.path().join("f.h5"));
    cfg.layers = vec!["block9_pool".into()];
    let err = run(&cfg, &go()).unwrap_err();
    assert!(
        matches!(
            err,
            ExtractError::Backbone(BackboneError::UnknownLayer { .. })
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("block1_pool, block2_pool"),
        "{err}"
    );

    cfg.layers = vec!["block2_pool".into()];
    cfg.ep = ExecutionProvider::Cuda;
    let err = run(&cfg, &go()).unwrap_err();
    assert!(
        matches!(
            err,
            ExtractError::Backbone(BackboneError::CudaUnavailable(_))
        ),
        "never a silent CPU fall-back: {err}"
    );

    cfg.ep = ExecutionProvider::Cpu;
    let mut bytes = std::fs::read(&model).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&model, bytes).unwrap();
    let err = run(&cfg, &go()).unwrap_err();
    assert!(
        matches!(err, ExtractError::Backbone(BackboneError::Checksum { .. })),
        "{err}"
    );

    std::fs::remove_file(dir.path().join("tiny.toml")).unwrap();
    let err = run(&cfg, &go()).unwrap_err();
    assert!(
        matches!(
            err,
            ExtractError::Backbone(BackboneError::Descriptor { .. })
        ),
        "{err}"
    );
    assert!(!cfg.cache.exists());
}

/// `size`: pooled widths stay and flattened ones grow with the image; the size is in the
/// cache's identity (the descriptor's size when not given, the identity of a cache made
/// without the option), so a cache of one size is refused for another and left untouched;
/// a size out of range is refused before anything is written.
#[test]
fn the_image_size_is_in_the_identity_and_sets_flattened_widths() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 3);
    let mut cfg = config(&data, &model, &dir.path().join("default.h5"));
    cfg.reprs = vec![
        "block2_pool:avg".parse().unwrap(),
        "block2_pool:flatten".parse().unwrap(),
    ];
    // The tiny backbone's descriptor says 32: block2_pool is 8 channels of 8 x 8.
    assert_eq!(run(&cfg, &go()).unwrap().dims, 8 + 8 * 8 * 8);
    let default = FeatureCache::open(&cfg.cache).unwrap().identity;
    assert_eq!(default.preprocessing.size, 32);
    cfg.size = Some(32);
    cfg.cache = dir.path().join("32.h5");
    run(&cfg, &go()).unwrap();
    assert_eq!(FeatureCache::open(&cfg.cache).unwrap().identity, default);

    cfg.size = Some(64);
    cfg.cache = dir.path().join("64.h5");
    assert_eq!(run(&cfg, &go()).unwrap().dims, 8 + 8 * 16 * 16);
    let large = FeatureCache::open(&cfg.cache).unwrap().identity;
    assert_eq!(large.preprocessing.size, 64);
    let widths: Vec<usize> = large.reprs.iter().map(|r| r.dims).collect();
    assert_eq!(widths, [8, 8 * 16 * 16], "pooled stays, flattened grows");

    let before = std::fs::read(&cfg.cache).unwrap();
    cfg.size = None;
    let err = run(&cfg, &go()).unwrap_err();
    assert!(
        matches!(err, ExtractError::Cache(CacheError::Mismatch { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("preprocessing"), "{err}");
    assert_eq!(std::fs::read(&cfg.cache).unwrap(), before);

    for size in [16, 4096] {
        cfg.size = Some(size);
        cfg.cache = dir.path().join(format!("{size}.h5"));
        let err = run(&cfg, &go()).unwrap_err();
        assert!(err.to_string().contains("size"), "{err}");
        assert!(!cfg.cache.exists());
    }
}
