//! Classifiers: known answers on synthetic data, save / load, row selection, refusals.

use crate::common;

use tlearn::progress::Stop;

use common::fixtures::{config, image_folder, tiny_backbone};
use common::lcg_values;
use linfa::dataset::DatasetBase;
use linfa::traits::Fit;
use tlearn::backbone::Pooling;
use tlearn::cache::{CacheError, FeatureCache, Identity, Plan};
use tlearn::classify::data::CacheData;
use tlearn::classify::nd::{Array1, Array2};
use tlearn::classify::train::{run, TrainConfig};
use tlearn::classify::{
    ClassifyError, Kind, LinearClassifier, LinearSvmParams, LogisticParams, ModelFit, Normalize,
    TrainedModel,
};
use tlearn::dataset::Part;

fn fit(kind: Kind, x: Array2<f32>, y: Array1<usize>, c: f64) -> LinearClassifier {
    let dataset = DatasetBase::new(x, y);
    match kind {
        Kind::Svm => LinearSvmParams::new().c(c).fit(&dataset),
        Kind::Logistic => LogisticParams::multinomial().c(c).fit(&dataset),
        Kind::LogisticOvr => LogisticParams::one_vs_all().c(c).fit(&dataset),
    }
    .unwrap()
}

const KINDS: [Kind; 3] = [Kind::Svm, Kind::Logistic, Kind::LogisticOvr];

fn tiny_cache(dir: &std::path::Path, pooling: Pooling) -> std::path::PathBuf {
    common::fixtures::tiny_cache(dir, |c| {
        c.pooling = pooling;
        c.recipe = "flip".parse().unwrap();
        c.copies = 2;
        c.cache = dir.join(format!("{pooling:?}.h5"));
    })
}

#[test]
fn copies_of_validation_and_test_images_are_never_trained_on() {
    let _serial = common::fixtures::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = CacheData::load(&tiny_cache(dir.path(), Pooling::Avg)).unwrap();
    assert!(data.copies.iter().any(|c| *c > 0), "the cache has copies");
    for split in 0..2 {
        let sel = data.select(split, true, true).unwrap();
        let held_out: Vec<&str> = sel
            .val
            .iter()
            .chain(&sel.test)
            .map(|i| i.path.as_str())
            .collect();
        for &row in &sel.train {
            assert!(
                !held_out.contains(&data.paths[row].as_str()),
                "row {row} leaks"
            );
            assert_eq!(data.parts[[row, split]], Part::Train);
        }
        assert!(
            sel.train.iter().any(|&r| data.copies[r] > 0),
            "copies are trained on"
        );
        let without = data.select(split, false, false).unwrap();
        assert!(without.train.iter().all(|&r| data.copies[r] == 0));
        assert!(
            sel.test.iter().all(|i| data.copies[i.rows[0]] == 0),
            "original first"
        );
    }
}

#[test]
fn a_refit_with_validation_trains_on_training_and_validation_rows_only() {
    let _serial = common::fixtures::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = CacheData::load(&tiny_cache(dir.path(), Pooling::Avg)).unwrap();
    let sel = data.select(0, true, false).unwrap();
    for &row in &sel.val_rows {
        assert_eq!(
            data.parts[[row, 0]],
            Part::Val,
            "row {row} is not a validation row"
        );
    }
    let originals = sel
        .val_rows
        .iter()
        .filter(|&&r| data.copies[r] == 0)
        .count();
    assert_eq!(originals, sel.val.len(), "every validation image once");
    let cfg = TrainConfig {
        grid: vec![0.1],
        splits: vec![0],
        refit_with_validation: true,
        refit_on_all_labelled: false,
        ..TrainConfig::new(Kind::Svm)
    };
    let (outcome, model) = run(&data, &cfg, &mut |_| {}).unwrap();
    assert_eq!(
        outcome.splits[0].train_rows,
        sel.train.len() + sel.val_rows.len()
    );
    // The same model as one fit by hand on exactly those rows: no test row went in.
    let rows = [sel.train.as_slice(), &sel.val_rows].concat();
    let by_hand = cfg
        .fit(
            0.1,
            &DatasetBase::new(data.rows(&rows), data.targets(&rows)),
        )
        .unwrap();
    assert_eq!(model.classifier, by_hand);
    let plain = TrainConfig {
        refit_with_validation: false,
        ..cfg
    };
    let (_, unrefit) = run(&data, &plain, &mut |_| {}).unwrap();
    assert_ne!(unrefit.classifier, by_hand, "the refit changed the model");
}

#[test]
fn the_model_predict_uses_is_refit_on_every_labelled_row_with_the_best_mean_c() {
    let _serial = common::fixtures::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = CacheData::load(&tiny_cache(dir.path(), Pooling::Avg)).unwrap();
    let cfg = TrainConfig {
        grid: vec![1e-3, 0.1, 10.0],
        ..TrainConfig::new(Kind::Svm)
    };
    assert!(cfg.refit_on_all_labelled, "refit is the default");
    let (outcome, model) = run(&data, &cfg, &mut |_| {}).unwrap();
    assert_eq!(outcome.splits.len(), 2);
    // The C of best mean validation accuracy over both splits (the first on ties).
    let mean = |i: usize| {
        outcome
            .splits
            .iter()
            .map(|s| s.grid[i].val_accuracy)
            .sum::<f64>()
            / 2.0
    };
    let best = (0..3).fold(0, |b, i| if mean(i) > mean(b) { i } else { b });
    assert_eq!(model.c, cfg.grid[best]);
    // Every usable row: each split's training, validation and test images and all copies.
    let rows: Vec<usize> = (0..data.labels.len()).filter(|&r| data.usable[r]).collect();
    for split in 0..2 {
        let parts: Vec<Part> = rows.iter().map(|&r| data.parts[[r, split]]).collect();
        for part in [Part::Train, Part::Val, Part::Test] {
            assert!(
                parts.contains(&part),
                "split {split} has {part:?} rows in the refit"
            );
        }
    }
    assert!(rows.iter().any(|&r| data.copies[r] > 0));
    let by_hand = cfg
        .fit(
            model.c,
            &DatasetBase::new(data.rows(&rows), data.targets(&rows)),
        )
        .unwrap();
    assert_eq!(model.classifier, by_hand);
    let images = rows.iter().filter(|&&r| data.copies[r] == 0).count();
    assert_eq!(
        model.fit,
        Some(ModelFit::AllLabelled {
            images,
            rows: rows.len()
        })
    );
    assert!(
        model
            .trained_on
            .contains(&format!("refit on all {images} labelled images")),
        "{}",
        model.trained_on
    );
    // The fit is recorded in model.json.
    let path = dir.path().join("model.json");
    model.save(&path).unwrap();
    assert_eq!(TrainedModel::load(&path).unwrap(), model);

    // --no-refit: split 0's model, fitted on its training rows with split 0's C, as before;
    // the calibration is the same in both (split 0's validation margins).
    let split0 = TrainConfig {
        refit_on_all_labelled: false,
        ..cfg.clone()
    };
    let (same_outcome, first) = run(&data, &split0, &mut |_| {}).unwrap();
    let results = |o: &tlearn::classify::train::TrainOutcome| {
        o.splits
            .iter()
            .map(|s| (s.c, s.test.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        results(&same_outcome),
        results(&outcome),
        "the evaluation does not change"
    );
    let sel = data.select(0, true, false).unwrap();
    let c0 = outcome.splits[0].c;
    // The SVM fits the grid as one warm-started path: by hand too, then take C's model.
    let at = cfg.grid.iter().position(|&c| c == c0).unwrap();
    let split0_by_hand = cfg
        .fit_grid(
            &cfg.grid,
            &DatasetBase::new(data.rows(&sel.train), data.targets(&sel.train)),
        )
        .unwrap()
        .remove(at)
        .0;
    assert_eq!((first.classifier.clone(), first.c), (split0_by_hand, c0));
    assert_eq!(
        first.fit,
        Some(ModelFit::Split {
            split: 0,
            rows: sel.train.len()
        })
    );
    assert_ne!(
        first.classifier, model.classifier,
        "the refit changed the model"
    );
    assert!(first.calibration.is_some());
    assert_eq!(first.calibration, model.calibration);
}

#[test]
fn saved_models_predict_identically_and_refuse_other_features() {
    let _serial = common::fixtures::serial();
    let dir = tempfile::tempdir().unwrap();
    let cache = tiny_cache(dir.path(), Pooling::Avg);
    let data = CacheData::load(&cache).unwrap();
    for kind in KINDS {
        let mut cfg = TrainConfig::new(kind);
        cfg.grid = vec![0.1, 1.0];
        cfg.splits = vec![1];
        let (outcome, model) = run(&data, &cfg, &mut |_| {}).unwrap();
        assert_eq!(outcome.splits.len(), 1);
        assert_eq!(outcome.splits[0].grid.len(), 2);
        let path = dir.path().join(format!("{kind}.json"));
        model.save(&path).unwrap();
        let loaded = TrainedModel::load(&path).unwrap();
        assert_eq!(loaded, model);
        let before = model.classifier.scores(data.features.view());
        let after = loaded.classifier.scores(data.features.view());
        assert_eq!(before, after, "{kind}: identical scores after a round trip");
        loaded.check_features(&data.identity).unwrap();
    }
    let other = CacheData::load(&tiny_cache(dir.path(), Pooling::Max)).unwrap();
    let model = TrainedModel::load(&dir.path().join("svm.json")).unwrap();
    let err = model.check_features(&other.identity).unwrap_err();
    assert!(err.to_string().contains("pooling"), "{err}");
}

#[test]
fn model_files_of_other_versions_or_cut_short_are_refused() {
    let _serial = common::fixtures::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = CacheData::load(&tiny_cache(dir.path(), Pooling::Avg)).unwrap();
    let mut cfg = TrainConfig::new(Kind::Svm);
    cfg.grid = vec![1.0];
    cfg.splits = vec![0];
    let (_, model) = run(&data, &cfg, &mut |_| {}).unwrap();
    let path = dir.path().join("m.json");
    model.save(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let cases = [
        (
            "version",
            text.replace("\"version\":1", "\"version\":99"),
            "version 99",
        ),
        (
            "truncated",
            text[..text.len() / 2].to_string(),
            "not complete JSON",
        ),
        ("foreign", "{\"a\": 1}".to_string(), "format marker"),
    ];
    for (name, content, expected) in cases {
        let bad = dir.path().join(format!("{name}.json"));
        std::fs::write(&bad, content).unwrap();
        let err = TrainedModel::load(&bad).unwrap_err();
        assert!(err.to_string().contains(expected), "{name}: {err}");
    }
}

/// Overwrites raw values of the cache with HDF5 directly (a damaged or interrupted file).
fn poke(path: &std::path::Path, dataset: &str, row: usize, value: f64) {
    let file = hdf5::File::open_rw(path).unwrap();
    let ds = file.dataset(dataset).unwrap();
    if dataset == "status" {
        ds.write_slice(&ndarray::arr1(&[value as u8]), ndarray::s![row..row + 1])
            .unwrap();
    } else {
        let cols = ds.shape()[1];
        let mut values = ndarray::Array1::<f32>::zeros(cols);
        values[0] = value as f32;
        ds.write_slice(&values, ndarray::s![row, ..]).unwrap();
    }
}

#[test]
fn damaged_incomplete_empty_and_single_class_caches_are_refused() {
    let _serial = common::fixtures::serial();
    let dir = tempfile::tempdir().unwrap();
    let cache = tiny_cache(dir.path(), Pooling::Avg);
    let nan = dir.path().join("nan.h5");
    std::fs::copy(&cache, &nan).unwrap();
    poke(&nan, "features", 3, f64::NAN);
    let err = CacheData::load(&nan).unwrap_err();
    assert!(
        matches!(err, ClassifyError::Cache(CacheError::Damaged { .. }))
            && err.to_string().contains("row 3"),
        "{err}"
    );

    let partial = dir.path().join("partial.h5");
    std::fs::copy(&cache, &partial).unwrap();
    poke(&partial, "status", 5, 0.0);
    let err = CacheData::load(&partial).unwrap_err();
    assert!(
        err.to_string().contains("`tlearn features` command again"),
        "{err}"
    );

    let cut = dir.path().join("cut.h5");
    let bytes = std::fs::read(&cache).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    assert!(matches!(
        CacheData::load(&cut),
        Err(ClassifyError::Cache(_))
    ));

    let identity: Identity = FeatureCache::open(&cache).unwrap().identity.clone();
    let empty = dir.path().join("empty.h5");
    let plan = Plan {
        identity,
        class_names: vec!["a".into(), "b".into()],
        rows: vec![],
        backbone: None,
    };
    drop(FeatureCache::create_or_resume(&empty, &plan).unwrap());
    assert!(matches!(
        CacheData::load(&empty),
        Err(ClassifyError::EmptyCache(_))
    ));

    // tlearn features refuses a single class itself; a cache made by other means is refused too.
    let one = dir.path().join("one.h5");
    let mut plan = plan;
    plan.class_names.truncate(1);
    plan.rows = (0..4)
        .map(|i| tlearn::cache::RowPlan {
            image: i,
            path: format!("a/{i}.png"),
            label: 0,
            copy: 0,
            augment: String::new(),
            parts: vec![(i % 3) as u8; plan.identity.splits],
        })
        .collect();
    let written = FeatureCache::create_or_resume(&one, &plan).unwrap();
    let dims = plan.identity.dims;
    written
        .write_rows(
            &[0, 1, 2, 3],
            ndarray::Array2::<f32>::ones((4, dims)).view(),
        )
        .unwrap();
    drop(written);
    assert!(matches!(
        CacheData::load(&one),
        Err(ClassifyError::SingleClass(_))
    ));
}

#[test]
fn test_time_augmentation_averages_the_copies_of_an_image() {
    let _serial = common::fixtures::serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let images = image_folder(dir.path(), 3, 8);
    let out = dir.path().join("all.h5");
    let mut cfg = config(&images, &model, &out);
    cfg.pooling = Pooling::Avg;
    cfg.recipe = "flip,rotate".parse().unwrap();
    cfg.copies = 2;
    cfg.augment_all = true;
    tlearn::extract::run(&cfg, &Stop::new()).unwrap();
    let data = CacheData::load(&out).unwrap();
    let sel = data.select(0, true, true).unwrap();
    assert!(
        sel.test.iter().all(|i| i.rows.len() == 3),
        "original + 2 copies"
    );
    let mut train_cfg = TrainConfig::new(Kind::Logistic);
    train_cfg.grid = vec![1.0];
    train_cfg.tta = true;
    // The scores are those of split 0's model, not the refit on every image.
    train_cfg.refit_on_all_labelled = false;
    let (outcome, model) = run(&data, &train_cfg, &mut |_| {}).unwrap();
    let image = &sel.test[0];
    let rows = model.classifier.scores(data.rows(&image.rows).view());
    let expected = rows.mean_axis(tlearn::classify::nd::Axis(0)).unwrap();
    let got = &outcome.splits[0].test[0];
    assert_eq!(got.path, image.path);
    for (a, b) in got.scores.iter().zip(expected.iter()) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
}

/// An unreadable model file keeps what went wrong as its error source, and says what to do.
#[test]
fn unreadable_model_files_keep_their_cause() {
    let _serial = common::fixtures::serial();
    use std::error::Error;
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let e = TrainedModel::load(&missing).unwrap_err();
    assert!(matches!(e, ClassifyError::ModelFile { .. }), "{e}");
    assert!(e.to_string().contains("train it again"), "{e}");
    let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
    assert_eq!(
        io.map(|e| e.kind()),
        Some(std::io::ErrorKind::NotFound),
        "{e}"
    );

    let cut = dir.path().join("cut.json");
    std::fs::write(&cut, "{\"format\": ").unwrap();
    let e = TrainedModel::load(&cut).unwrap_err();
    assert!(e.to_string().contains("not complete JSON: "), "{e}");
    let json = e
        .source()
        .and_then(|s| s.downcast_ref::<serde_json::Error>());
    assert!(json.is_some_and(|j| j.is_eof()), "{e}");
}

/// Overlapping classes (`rows % classes`): noise plus a small class-specific shift in every
/// column, so no C makes the fit trivial.
fn overlapping(
    classes: usize,
    rows: usize,
    dims: usize,
    seed: u64,
) -> (Array2<f32>, Array1<usize>) {
    let noise = lcg_values(seed, rows * dims, 1.0);
    let centres = lcg_values(seed + 1, classes * dims, 0.25);
    let y: Array1<usize> = (0..rows).map(|i| i % classes).collect();
    let x = Array2::from_shape_fn((rows, dims), |(i, j)| {
        noise[i * dims + j] + centres[y[i] * dims + j]
    });
    (x, y)
}

/// scikit-learn's objective at its own optimum on the rows `x` standardised by tlearn's scaler.
fn sklearn_objective(x: &Array2<f32>, y: &Array1<usize>, c: f64, kind: Kind) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let standard = tlearn::classify::Scaler::fit(x.view()).transform(x.view());
    let bytes: Vec<u8> = standard.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.path().join("x.f32"), bytes).unwrap();
    let labels: Vec<String> = y.iter().map(ToString::to_string).collect();
    std::fs::write(dir.path().join("y.txt"), labels.join("\n")).unwrap();
    let mode = if kind == Kind::Logistic {
        "multinomial"
    } else {
        "one-vs-all"
    };
    let out = common::fixtures::command(common::fixtures::python())
        .arg(common::fixtures::repo().join("tests/python/logistic_reference.py"))
        .arg(dir.path().join("x.f32"))
        .arg(dir.path().join("y.txt"))
        .args([x.nrows().to_string(), x.ncols().to_string(), c.to_string()])
        .arg(mode)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.trim().parse().unwrap()
}

/// Both logistic models reach scikit-learn's objective (lbfgs run to tolerance 1e-8) within
/// 1e-4 relative, on the primal (rows >= columns) and the reduced (rows < columns) path, and
/// say they converged.
#[test]
fn logistic_fits_reach_scikit_learns_objective() {
    let _serial = common::fixtures::serial();
    // (classes, rows, columns, C): primal with 3000 rows; reduced up to 25088 columns.
    let cases = [
        (5, 3000, 64, 1.0),
        (4, 300, 2000, 0.1),
        (5, 1500, 2000, 0.01),
        (3, 300, 25088, 0.1),
    ];
    for (classes, rows, dims, c) in cases {
        let (x, y) = overlapping(classes, rows, dims, rows as u64);
        for kind in [Kind::Logistic, Kind::LogisticOvr] {
            let model = fit(kind, x.clone(), y.clone(), c);
            let ours = tlearn::classify::logistic::objective_of(&model, x.view(), y.view(), c);
            let reference = sklearn_objective(&x, &y, c, kind);
            let gap = (ours - reference) / reference.abs();
            let report = model.convergence.unwrap();
            eprintln!("{kind} {rows}x{dims} C={c}: ours {ours:.6} sklearn {reference:.6} ({gap:.2e}); {report:?}");
            assert!(report.converged, "{kind} {rows}x{dims}: {report:?}");
            assert!(
                gap.abs() <= 1e-4,
                "{kind} {rows}x{dims} C={c}: {ours} vs {reference}"
            );
        }
    }
}

/// Rows normalised by Python's NumPy (tests/python/normalize_reference.py): `x` with column
/// blocks of `widths`, normalised as `how` says.
fn numpy_normalized(x: &Array2<f32>, widths: &[usize], how: Normalize) -> Array2<f32> {
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.path().join("x.f32"), bytes).unwrap();
    let widths: Vec<String> = widths.iter().map(ToString::to_string).collect();
    let out = common::fixtures::command(common::fixtures::python())
        .arg(common::fixtures::repo().join("tests/python/normalize_reference.py"))
        .arg(dir.path().join("x.f32"))
        .args([x.nrows().to_string(), x.ncols().to_string()])
        .args([how.name().to_string(), widths.join(",")])
        .arg(dir.path().join("out.f32"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(dir.path().join("out.f32")).unwrap();
    let values = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    Array2::from_shape_vec(x.dim(), values).unwrap()
}

/// L2 and power normalisation of each block equal NumPy's float64 computation, on rows of
/// signed values with blocks of 1 to 25 088 columns and an all-zero block (which stays zero).
#[test]
fn normalisations_match_numpy() {
    let _serial = common::fixtures::serial();
    let widths = [3usize, 1, 40, 25088];
    let (rows, cols) = (5, widths.iter().sum::<usize>());
    let mut x = Array2::from_shape_vec((rows, cols), lcg_values(11, rows * cols, 4.0)).unwrap();
    x.slice_mut(tlearn::classify::nd::s![2, 4..44]).fill(0.0);
    let mut start = 0;
    let blocks: Vec<_> = widths
        .iter()
        .map(|w| {
            start += w;
            start - w..start
        })
        .collect();
    for how in [Normalize::None, Normalize::L2, Normalize::Power] {
        let mut ours = x.clone();
        how.apply(ours.view_mut(), &blocks);
        let reference = numpy_normalized(&x, &widths, how);
        let worst = (&ours - &reference)
            .iter()
            .fold(0f32, |m, d| m.max(d.abs()));
        assert!(worst <= 1e-6, "{how}: differs from NumPy by {worst}");
        if how != Normalize::None {
            assert!(ours
                .slice(tlearn::classify::nd::s![2, 4..44])
                .iter()
                .all(|v| *v == 0.0));
            assert_ne!(ours, x, "{how} changed the rows");
        }
    }
}

/// A tiny cache of two representations side by side (block1_pool:avg, block2_pool:max).
fn tiny_repr_cache(dir: &std::path::Path) -> std::path::PathBuf {
    let model = tiny_backbone(dir);
    let data = image_folder(dir, 3, 8);
    let out = dir.join("reprs.h5");
    let mut cfg = config(&data, &model, &out);
    cfg.reprs = vec![
        "block1_pool:avg".parse().unwrap(),
        "block2_pool:max".parse().unwrap(),
    ];
    cfg.splits = 2;
    tlearn::extract::run(&cfg, &Stop::new()).unwrap();
    out
}

/// A normalised model is trained, validated and tested on normalised rows (each
/// representation block on its own), saves its normalisation in model.json and scores raw
/// features as in training after loading; a model.json without the field reads as none.
#[test]
fn normalised_models_score_normalised_rows_and_round_trip() {
    let _serial = common::fixtures::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = CacheData::load(&tiny_repr_cache(dir.path())).unwrap();
    assert_eq!(Normalize::blocks(&data.identity), vec![0..4, 4..12]);
    for (kind, how) in [
        (Kind::Svm, Normalize::L2),
        (Kind::Logistic, Normalize::Power),
    ] {
        let mut cfg = TrainConfig::new(kind);
        cfg.grid = vec![0.1, 1.0];
        cfg.normalize = how;
        cfg.refit_on_all_labelled = false;
        let (outcome, model) = run(&data, &cfg, &mut |_| {}).unwrap();
        assert_eq!(model.normalize, how);
        assert_eq!(outcome.config.normalize, how);
        // The test scores of split 0 are its model's scores of the normalised rows.
        let normalized = data.clone().normalized(how);
        let image = &data.select(0, true, false).unwrap().test[0];
        let raw = model.scores(data.rows(&image.rows));
        let direct = model.classifier.scores(normalized.rows(&image.rows).view());
        assert_eq!(raw, direct);
        assert_eq!(outcome.splits[0].test[0].path, image.path);
        assert_eq!(outcome.splits[0].test[0].scores, raw.row(0).to_vec());
        let plain = model.classifier.scores(data.rows(&image.rows).view());
        assert_ne!(raw, plain, "{how}: the normalisation is applied");

        let path = dir.path().join(format!("{kind}.json"));
        model.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(&format!("\"normalize\":\"{how}\"")), "{text}");
        let loaded = TrainedModel::load(&path).unwrap();
        assert_eq!(loaded, model);
        assert_eq!(
            loaded.scores(data.features.clone()),
            model.scores(data.features.clone())
        );

        let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
        value.as_object_mut().unwrap().remove("normalize");
        std::fs::write(&path, value.to_string()).unwrap();
        assert_eq!(
            TrainedModel::load(&path).unwrap().normalize,
            Normalize::None
        );
    }
}

/// `copies_used = K` on a cache of N copies per image gives exactly what a cache extracted
/// with K copies gives (the same seed makes the same first copies): training rows, TTA views,
/// scores. K of 0 or above N is refused.
#[test]
fn reading_the_first_copies_equals_a_cache_extracted_with_that_many() {
    let _serial = common::fixtures::serial();
    let dir = tempfile::tempdir().unwrap();
    let backbone = tiny_backbone(dir.path());
    let images = image_folder(dir.path(), 3, 8);
    let extract = |copies: u32| {
        let out = dir.path().join(format!("copies{copies}.h5"));
        let mut cfg = config(&images, &backbone, &out);
        cfg.pooling = Pooling::Avg;
        cfg.recipe = "flip,rotate,crop".parse().unwrap();
        cfg.copies = copies;
        cfg.augment_all = true;
        tlearn::extract::run(&cfg, &Stop::new()).unwrap();
        CacheData::load(&out).unwrap()
    };
    let (three, one) = (extract(3), extract(1));
    let mut cfg = TrainConfig::new(Kind::Logistic);
    cfg.grid = vec![0.1, 1.0];
    cfg.tta = true;
    let (want, _) = run(&one, &cfg, &mut |_| {}).unwrap();
    cfg.copies_used = Some(1);
    let (got, model) = run(&three, &cfg, &mut |_| {}).unwrap();
    assert_eq!(model.copies_used, Some(1));
    for (g, w) in got.splits.iter().zip(&want.splits) {
        assert_eq!((g.train_rows, g.c), (w.train_rows, w.c));
        let val = |s: &tlearn::classify::train::SplitOutcome| -> Vec<f64> {
            s.grid.iter().map(|p| p.val_accuracy).collect()
        };
        assert_eq!(val(g), val(w));
        for (a, b) in g.test.iter().zip(&w.test) {
            assert_eq!(a.path, b.path);
            for (x, y) in a.scores.iter().zip(&b.scores) {
                assert!((x - y).abs() < 1e-5, "{}: {x} vs {y}", a.path);
            }
        }
    }
    cfg.copies_used = None;
    let (all, _) = run(&three, &cfg, &mut |_| {}).unwrap();
    assert!(all.splits[0].train_rows > got.splits[0].train_rows);
    for bad in [0, 4] {
        cfg.copies_used = Some(bad);
        let err = run(&three, &cfg, &mut |_| {}).unwrap_err();
        assert!(
            matches!(&err, ClassifyError::InvalidParams(m) if m.contains("holds 3")),
            "{err}"
        );
    }
}
