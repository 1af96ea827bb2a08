//! Reports: known metrics from a known outcome, files written from a real (tiny) cache, the
//! comparison, and the CLI end to end on a slice of the flowers with the real VGG16.

mod common;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use common::fixtures::{config, flowers_slice, image_folder, serial, tiny_backbone, tlearn, vgg16};
use tlearn::backbone::Pooling;
use tlearn::classify::data::CacheData;
use tlearn::classify::train::{run, Scored, SplitOutcome, TrainConfig, TrainOutcome};
use tlearn::classify::Kind;
use tlearn::report::{compare, write_run, RunReport};

fn tiny_cache(dir: &Path) -> std::path::PathBuf {
    let model = tiny_backbone(dir);
    let data = image_folder(dir, 3, 8);
    let out = dir.join("tiny.h5");
    let mut cfg = config(&data, &model, &out);
    cfg.pooling = Pooling::Avg;
    cfg.splits = 2;
    tlearn::extract::run(&cfg, &AtomicBool::new(false)).unwrap();
    out
}

fn scored(path: &str, label: usize, predicted: usize) -> Scored {
    let mut scores = vec![0.1f32; 3];
    scores[predicted] = 0.7;
    Scored {
        path: path.into(),
        label,
        predicted,
        scores,
    }
}

/// An outcome with two splits: 3 of 4 right, then 2 of 4 right.
fn known_outcome(identity: tlearn::cache::Identity) -> TrainOutcome {
    let split = |split, test: Vec<Scored>| SplitOutcome {
        split,
        c: 0.1,
        grid: vec![],
        train_rows: 10,
        val_images: 4,
        fit_seconds: 1.0,
        predict_seconds: 0.01,
        test,
    };
    TrainOutcome {
        config: TrainConfig::new(Kind::Svm),
        cache: "x.h5".into(),
        identity,
        class_names: vec!["class_0".into(), "class_1".into(), "class_2".into()],
        splits: vec![
            split(
                0,
                vec![
                    scored("class_0/img_00.png", 0, 0),
                    scored("class_1/img_00.png", 1, 1),
                    scored("class_2/img_00.png", 2, 2),
                    scored("class_2/img_01.png", 2, 0),
                ],
            ),
            split(
                1,
                vec![
                    scored("class_0/img_02.png", 0, 0),
                    scored("class_1/img_02.png", 1, 2),
                    scored("class_2/img_02.png", 2, 2),
                    scored("class_1/img_03.png", 1, 0),
                ],
            ),
        ],
    }
}

#[test]
fn report_of_a_known_outcome_has_known_numbers_and_a_gallery() {
    // Other tests here spawn tlearn: a child would inherit this test's open HDF5 files.
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let cache = tiny_cache(dir.path());
    let identity = CacheData::load(&cache).unwrap().identity;
    let root = dir.path().join("images");
    let root = Some(root.display().to_string());
    let report = RunReport::new("known", &(&known_outcome(identity)).into(), root, None);
    assert!((report.summary.accuracy.mean - 0.625).abs() < 1e-9);
    assert!((report.summary.accuracy.std - (2.0f64 * 0.125 * 0.125).sqrt()).abs() < 1e-9);
    assert_eq!(
        report.confusion,
        vec![vec![2, 0, 0], vec![1, 1, 1], vec![1, 0, 2]]
    );
    assert_eq!(report.misclassified.len(), 3);
    let out = dir.path().join("reports/known");
    write_run(&report, &out).unwrap();
    let gallery: Vec<_> = std::fs::read_dir(out.join("gallery")).unwrap().collect();
    assert_eq!(gallery.len(), 3, "one thumbnail per misclassified image");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("Test accuracy 62.50% ± 17.68"), "{md}");
    assert!(
        md.contains("| `class_2/img_01.png` | class_2 | class_0 |"),
        "{md}"
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(html.matches("data:image/jpeg;base64,").count(), 3);
    assert!(html.contains("data:image/png;base64,"));
    assert!(
        !html.contains("src=\"http") && !html.contains("<script"),
        "self-contained"
    );
    let png = image::open(out.join("confusion.png")).unwrap();
    assert!(png.width() > 90 && png.width() == png.height());
    let back: RunReport =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    // JSON keeps values to within an ulp, not to the bit.
    assert_eq!(back.confusion, report.confusion);
    assert!((back.summary.macro_f1.std - report.summary.macro_f1.std).abs() < 1e-12);
}

#[test]
fn runs_on_a_real_cache_are_reported_and_compared() {
    // Other tests here spawn tlearn: a child would inherit this test's open HDF5 files.
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let data = CacheData::load(&tiny_cache(dir.path())).unwrap();
    let reports = dir.path().join("reports");
    for kind in [Kind::Svm, Kind::Logistic] {
        let mut cfg = TrainConfig::new(kind);
        cfg.grid = vec![0.01, 1.0];
        let (outcome, _) = run(&data, &cfg, &mut |_| {}).unwrap();
        assert_eq!(outcome.splits.len(), 2);
        let report = RunReport::new(kind.name(), &(&outcome).into(), None, None);
        let (mean, _) = tlearn::report::metrics::mean_std(
            &report
                .splits
                .iter()
                .map(|s| s.metrics.accuracy)
                .collect::<Vec<_>>(),
        );
        assert_eq!(report.summary.accuracy.mean, mean);
        let tested: usize = report.confusion.iter().flatten().map(|n| *n as usize).sum();
        assert_eq!(
            tested,
            outcome.splits.iter().map(|s| s.test.len()).sum::<usize>()
        );
        write_run(&report, &reports.join(kind.name())).unwrap();
    }
    std::fs::create_dir_all(reports.join("broken")).unwrap();
    std::fs::write(reports.join("broken/report.json"), "{").unwrap();
    let mut warnings = Vec::new();
    let rows = compare(&reports, &mut |w| warnings.push(w)).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        warnings.len(),
        1,
        "the broken report is skipped with a warning"
    );
    assert!(rows[0].accuracy >= rows[1].accuracy, "best first");
    let index = std::fs::read_to_string(reports.join("index.md")).unwrap();
    assert!(index.contains("[svm](svm/report.md)") && index.contains("| logistic |"));
    assert!(reports.join("index.html").is_file() && reports.join("comparison.json").is_file());
}

#[test]
fn cli_trains_predicts_and_compares_on_real_flowers() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let slice = flowers_slice(dir.path(), 3, 8);
    let cache = dir.path().join("avg5.h5");
    let ok = |cmd: &mut std::process::Command| {
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{cmd:?}:\n{text}");
        text
    };
    ok(tlearn()
        .args([
            "features",
            "--quiet",
            "--pool",
            "avg",
            "--augment",
            "flip",
            "--copies",
            "1",
        ])
        .args(["--splits", "2", "--model"])
        .args([
            vgg16().as_path(),
            Path::new("--data"),
            &slice,
            Path::new("--out"),
            &cache,
        ]));
    let (runs, reports) = (dir.path().join("runs"), dir.path().join("reports"));
    let train = |kind: &str| {
        let mut cmd = tlearn();
        cmd.args(["train", kind, "--quiet", "--c", "0.001,0.1", "--features"])
            .args([
                &cache,
                Path::new("--runs"),
                &runs,
                Path::new("--reports"),
                &reports,
            ])
            .args([Path::new("--data"), &slice]);
        cmd
    };
    ok(&mut train("svm"));
    ok(&mut train("logistic-ovr"));
    let report = reports.join("svm-avg5");
    for file in ["report.json", "report.md", "report.html", "confusion.png"] {
        assert!(report.join(file).is_file(), "{file}");
    }
    let image = slice.join("Daffodil/image_0001.jpg");
    let predicted = ok(tlearn().args(["predict", "--top", "2", "--model"]).args([
        &runs.join("svm-avg5"),
        Path::new("--backbone"),
        &vgg16(),
        &image,
    ]));
    let lines: Vec<&str> = predicted.lines().collect();
    assert_eq!(
        lines[0],
        "path\tpredicted\tclass_1\tmargin_1\tprobability_1\tclass_2\tmargin_2\tprobability_2"
    );
    let fields: Vec<&str> = lines[1].split('\t').collect();
    assert_eq!(fields[0], image.display().to_string());
    assert_eq!(
        fields.len(),
        8,
        "path, predicted, two classes with margin and Platt's probability: {predicted}"
    );
    let probabilities: Vec<f32> = [fields[4], fields[7]]
        .iter()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(
        probabilities.iter().all(|p| (0.0..=1.0).contains(p))
            && probabilities.iter().sum::<f32>() <= 1.0 + 1e-6,
        "{predicted}"
    );
    let compared = ok(tlearn().args(["report", "--reports"]).arg(&reports));
    assert!(compared.contains("svm-avg5") && compared.contains("logistic-ovr-avg5"));

    // A broken cache is refused and the earlier report stays as it was.
    let before = std::fs::read(report.join("report.json")).unwrap();
    let bytes = std::fs::read(&cache).unwrap();
    std::fs::write(&cache, &bytes[..bytes.len() / 2]).unwrap();
    let out = train("svm").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tlearn features"));
    assert_eq!(std::fs::read(report.join("report.json")).unwrap(), before);
}

#[test]
fn predict_refuses_a_model_of_other_features() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let data = CacheData::load(&tiny_cache(dir.path())).unwrap();
    let mut cfg = TrainConfig::new(Kind::Svm);
    cfg.grid = vec![1.0];
    cfg.splits = vec![0];
    let (_, model) = run(&data, &cfg, &mut |_| {}).unwrap();
    let path = dir.path().join("tiny-model.json");
    model.save(&path).unwrap();
    let image = dir.path().join("images/class_0/img_00.png");
    let out = tlearn()
        .args(["predict", "--model"])
        .args([&path, Path::new("--backbone"), &vgg16(), &image])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("trained on other features"), "{err}");
}
