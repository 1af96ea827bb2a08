//! Reports: known metrics from a known outcome, files written from a real (tiny) cache, the
//! comparison, and the CLI end to end on a slice of the flowers with the real VGG16.

use crate::common;

use std::path::Path;

use common::fixtures::{flowers_slice, python, repo, serial, tlearn, tlearn_err, vgg16};
use tlearn::backbone::Pooling;
use tlearn::classify::data::CacheData;
use tlearn::classify::train::{run, Scored, SplitOutcome, TrainConfig, TrainOutcome};
use tlearn::classify::Kind;
use tlearn::options::Opt;
use tlearn::report::{compare, write_run, RunReport};

/// The tiny cache, average-pooled; `--augment none --copies 2`: no copies are made, whatever
/// --copies says.
fn tiny_cache(dir: &Path) -> std::path::PathBuf {
    common::fixtures::tiny_cache(dir, |c| {
        c.pooling = Pooling::Avg;
        c.copies = 2;
    })
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
        val: Vec::new(),
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
    let gallery: Vec<_> = std::fs::read_dir(out.join("gallery"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name() != tlearn::output::MANIFEST)
        .collect();
    assert_eq!(gallery.len(), 3, "one thumbnail per misclassified image");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("Test accuracy 62.50% ± 17.68"), "{md}");
    // Each image once, with its scores and the splits it was wrong in.
    assert!(
        md.contains("| `class_2/img_01.png` | class_2 | class_0 (0.700) | 0.100 | 0 |"),
        "{md}"
    );
    assert!(md.contains("[← all runs](../index.md)"), "{md}");
    for plot in ["confusion-normalised.png", "pr-curves.png"] {
        assert!(image::open(out.join(plot)).is_ok(), "{plot}");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(html.matches("data:image/jpeg;base64,").count(), 3);
    assert!(html.contains("data:image/png;base64,"));
    assert!(
        !html.contains("src=\"http") && !html.contains("<script src") && !html.contains("<link"),
        "self-contained"
    );
    let png = image::open(out.join("confusion.png")).unwrap();
    assert!(png.width() > 90 && png.height() > 90);
    let back: RunReport =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    // JSON keeps values to within an ulp, not to the bit.
    assert_eq!(back.confusion, report.confusion);
    assert!((back.summary.macro_f1.std - report.summary.macro_f1.std).abs() < 1e-12);
}

/// Every number of a report, recomputed from its report.json's predictions by an independent
/// Python script.
fn assert_recomputable(report: &Path) {
    let out = common::fixtures::command(python())
        .arg(repo().join("tests/python/recompute_report.py"))
        .arg(report)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {text}", report.display());
    assert!(text.starts_with("ok: "), "{text}");
}

#[test]
fn report_json_changed_by_hand_is_caught_by_the_recomputation() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let cache = tiny_cache(dir.path());
    let identity = CacheData::load(&cache).unwrap().identity;
    let report = RunReport::new("known", &(&known_outcome(identity)).into(), None, None);
    let out = dir.path().join("reports/known");
    write_run(&report, &out).unwrap();
    assert_recomputable(&out.join("report.json"));
    // One score changed: split 0's last image becomes right, so its accuracy no longer matches.
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    json["splits"][0]["predictions"][3]["scores"][2] = serde_json::json!(5.0);
    let edited = dir.path().join("edited.json");
    std::fs::write(&edited, json.to_string()).unwrap();
    let run = common::fixtures::command(python())
        .arg(repo().join("tests/python/recompute_report.py"))
        .arg(&edited)
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stdout).contains("split 0 accuracy"));
}

#[test]
fn warnings_name_small_test_sets_trivial_top5_and_the_data_root_that_holds_the_images() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let cache = tiny_cache(dir.path());
    let identity = CacheData::load(&cache).unwrap().identity;
    let known = known_outcome(identity);
    let outcome = (&known).into();
    // A --data one level too deep: the images are found one level up, and the warning says so.
    let too_deep = dir.path().join("images/class_0").display().to_string();
    let report = RunReport::new("known", &outcome, Some(too_deep), None);
    let all = report.warnings.join("\n");
    assert!(
        all.contains("only 4 test images per split (fewer than 30)"),
        "{all}"
    );
    assert!(
        all.contains("top-5 accuracy is 100% by construction with 3 classes"),
        "{all}"
    );
    let fix = format!(
        "`{} {}` would find them",
        Opt::Data,
        dir.path().join("images").display()
    );
    assert!(all.contains(&fix), "{all}");
    // Every class has test images in both splits; without split 1's class_0 image, one lacks.
    assert!(!all.contains("no test images of"), "{all}");
    let mut lacking = known.clone();
    lacking.splits[1].test.remove(0);
    let report = RunReport::new("known", &(&lacking).into(), None, None);
    let all = report.warnings.join("\n");
    assert!(all.contains("split 1: no test images of class_0"), "{all}");
    assert!(
        all.contains("no thumbnails in the gallery: the data root is not known"),
        "{all}"
    );

    // A fit stopped at its iteration limit is a warning that names it and the flag.
    let mut stopped = known.clone();
    stopped.splits[1].grid = vec![tlearn::classify::train::GridPoint {
        c: 0.1,
        val_accuracy: 0.5,
        fit_seconds: 0.1,
        converged: false,
    }];
    let all = RunReport::new("known", &(&stopped).into(), None, None)
        .warnings
        .join("\n");
    assert!(
        all.contains("stopped at its iteration limit before converging for C = 1e-1 in split 1"),
        "{all}"
    );
    assert!(all.contains(&Opt::MaxIterations.to_string()), "{all}");

    // An image wrong in two splits is shown once, with both.
    let mut twice = known.clone();
    twice.splits[1].test[1].path = "class_2/img_01.png".into();
    let report = RunReport::new("known", &(&twice).into(), None, None);
    let wrong = report.wrong_images();
    assert_eq!(report.misclassified.len(), 3);
    assert_eq!(wrong.len(), 2);
    let both = wrong
        .iter()
        .find(|w| w.worst.path == "class_2/img_01.png")
        .unwrap();
    assert_eq!(both.splits, vec![0, 1]);
    let right = RunReport::new(
        "known",
        &outcome,
        Some(dir.path().join("images").display().to_string()),
        None,
    );
    assert!(
        !right.warnings.iter().any(|w| w.contains("thumbnails")),
        "{:?}",
        right.warnings
    );

    // The CLI prints them and the report shows them, with n beside the accuracy.
    let (runs, reports) = (dir.path().join("runs"), dir.path().join("reports"));
    let train = |extra: &[&str]| {
        tlearn()
            .args(["train", "svm", "--quiet", "--c", "1"])
            .args(extra)
            .arg("--cache")
            .arg(&cache)
            .arg("--runs")
            .arg(&runs)
            .arg("--reports")
            .arg(&reports)
            .output()
            .unwrap()
    };
    let out = train(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: only 6 test images per split"),
        "{stderr}"
    );
    assert!(stderr.contains("of 6 test images"), "{stderr}");
    let md = std::fs::read_to_string(reports.join("svm-tiny/report.md")).unwrap();
    assert!(md.contains("n = 6 test images per split"), "{md}");
    assert!(
        md.contains("> **Warning:** only 6 test images per split"),
        "{md}"
    );
    let html = std::fs::read_to_string(reports.join("svm-tiny/report.html")).unwrap();
    assert!(html.contains("<div class=\"warn\">"), "{html}");

    // The report and model.json say which model `predict` uses: refit on every labelled
    // image by default, split 0's with --no-refit.
    assert!(
        md.contains("model that `predict` uses: `")
            && md.contains("refit on all 24 labelled images"),
        "{md}"
    );
    let model = std::fs::read_to_string(runs.join("svm-tiny/model.json")).unwrap();
    assert!(
        model.contains(r#""fit":{"kind":"all_labelled","images":24"#),
        "{model}"
    );
    let out = train(&["--no-refit", "--run", "split0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = std::fs::read_to_string(reports.join("split0/report.md")).unwrap();
    assert!(
        md.contains("`predict` uses the first split's model") && md.contains("split 0's model: "),
        "{md}"
    );
    let model = std::fs::read_to_string(runs.join("split0/model.json")).unwrap();
    assert!(
        model.contains(r#""fit":{"kind":"split","split":0"#),
        "{model}"
    );
}

#[test]
fn runs_on_a_real_cache_are_reported_and_compared() {
    // Other tests here spawn tlearn: a child would inherit this test's open HDF5 files.
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let cache = tiny_cache(dir.path());
    let data = CacheData::load(&cache).unwrap();
    let shown = common::fixtures::tlearn_ok(&[Path::new("cache"), cache.as_path()]);
    assert!(shown.contains("augment: none x0"), "{shown}");
    let reports = dir.path().join("reports");
    for kind in [Kind::Svm, Kind::Logistic] {
        let mut cfg = TrainConfig::new(kind);
        cfg.grid = vec![0.01, 1.0];
        let (outcome, _) = run(&data, &cfg, &mut |_| {}).unwrap();
        assert_eq!(outcome.splits.len(), 2);
        let report = RunReport::new(kind.name(), &(&outcome).into(), None, None);
        let (mean, _) = tlearn::numeric::mean_std(
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
    for kind in [Kind::Svm, Kind::Logistic] {
        assert_recomputable(&reports.join(kind.name()).join("report.json"));
    }
    std::fs::create_dir_all(reports.join("broken")).unwrap();
    std::fs::write(reports.join("broken/report.json"), "{").unwrap();
    let mut warnings = Vec::new();
    let rows = compare(&reports, &mut |w| warnings.push(w)).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        warnings.iter().filter(|w| w.contains("skipped")).count(),
        1,
        "the broken report is skipped with a warning: {warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("svm: only 6 test images per split")),
        "each run's own warnings are repeated: {warnings:?}"
    );
    assert!(rows[0].accuracy >= rows[1].accuracy, "best first");
    assert!(
        rows.iter().all(|r| r.train_copies == 0),
        "no copies in the cache"
    );
    let index = std::fs::read_to_string(reports.join("index.md")).unwrap();
    assert!(index.contains("[svm](svm/report.md)") && index.contains("| logistic |"));
    assert!(reports.join("index.html").is_file() && reports.join("comparison.json").is_file());
}

#[test]
fn the_gallery_hint_never_names_another_data_set_that_only_shares_relative_paths() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let cache = tiny_cache(dir.path());
    let identity = CacheData::load(&cache).unwrap().identity;
    let mut known = known_outcome(identity);
    known.cache = cache.display().to_string();
    // Another data set with the same relative paths (class_0/img_00.png, ...), other pixels,
    // where the hint looks (beside the given, missing, data root).
    for class in 0..3 {
        let folder = dir.path().join(format!("class_{class}"));
        std::fs::create_dir_all(&folder).unwrap();
        for i in 0..8 {
            image::RgbImage::from_pixel(9, 9, image::Rgb([i as u8, 1, 2]))
                .save(folder.join(format!("img_{i:02}.png")))
                .unwrap();
        }
    }
    let moved = dir.path().join("moved").display().to_string();
    let report = RunReport::new("known", &(&known).into(), Some(moved), None);
    let all = report.warnings.join("\n");
    assert!(all.contains("no thumbnails in the gallery"), "{all}");
    assert!(
        !all.contains("would find them"),
        "the decoy is not the run's data: {all}"
    );
    assert!(
        all.contains(&format!("pass `{}` with the folder", Opt::Data)),
        "{all}"
    );
    // The run's own images, one level up from a --data too deep, are still found.
    let too_deep = dir.path().join("images/class_0").display().to_string();
    let report = RunReport::new("known", &(&known).into(), Some(too_deep), None);
    let fix = format!(
        "`{} {}` would find them",
        Opt::Data,
        dir.path().join("images").display()
    );
    assert!(
        report.warnings.join("\n").contains(&fix),
        "{:?}",
        report.warnings
    );
}

#[test]
fn report_quiet_prints_nothing_but_errors() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let cache = tiny_cache(dir.path());
    let identity = CacheData::load(&cache).unwrap().identity;
    let reports = dir.path().join("reports");
    let report = RunReport::new("known", &(&known_outcome(identity)).into(), None, None);
    write_run(&report, &reports.join("known")).unwrap();
    std::fs::create_dir_all(reports.join("broken")).unwrap();
    std::fs::write(reports.join("broken/report.json"), "{").unwrap();
    let run = |quiet: bool| {
        let mut command = tlearn();
        command.arg("report").arg("--reports").arg(&reports);
        if quiet {
            command.arg("-q");
        }
        command.output().unwrap()
    };
    let loud = run(false);
    assert!(loud.status.success());
    assert!(String::from_utf8_lossy(&loud.stderr).contains("warning: "));
    let quiet = run(true);
    assert!(quiet.status.success());
    assert_eq!(
        String::from_utf8_lossy(&quiet.stderr),
        "",
        "-q: no warnings"
    );
    assert!(!quiet.stdout.is_empty(), "the table is still printed");
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
        "path, predicted, two classes with margin and calibrated probability: {predicted}"
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
    let backbone = vgg16();
    let (predict, model, flag) = (
        Path::new("predict"),
        Path::new("--model"),
        Path::new("--backbone"),
    );
    let err = tlearn_err::<&Path>(&[predict, model, &path, flag, &backbone, &image]);
    assert!(err.contains("trained on other features"), "{err}");
}
