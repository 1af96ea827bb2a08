//! `tlearn features --unlabeled`: every image of any folder tree, without classes or splits,
//! into the usual cache layout; shown, exported for NumPy, resumed after a partial run, and
//! refused (clearly) by everything that trains.

use crate::common;

use std::path::{Path, PathBuf};
use tlearn::progress::Stop;

use common::fixtures::{config, feature_bytes, python, serial, tiny_backbone, tlearn, tlearn_ok};
use image::{Rgb, RgbImage};
use tlearn::backbone::Pooling;
use tlearn::cache::{CacheError, FeatureCache, UNLABELED};
use tlearn::extract::{run, ExtractError};

/// The images of [`nested_tree`], in the order a run lists them (name order, depth first).
const IMAGES: [&str; 5] = [
    "2024/a.png",
    "2024/b.jpg",
    "2024/march/day1/c.png",
    "top.png",
    "zeta/d.PNG",
];

/// Images at the root and one, two and three levels down, beside a text file, a file without
/// an extension and a hidden folder, none of which is an image.
fn nested_tree(dir: &Path) -> PathBuf {
    let root = dir.join("photos");
    for (i, name) in IMAGES.iter().enumerate() {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let img = RgbImage::from_fn(36 + 5 * i as u32, 40, |x, y| {
            Rgb([(x * 7) as u8, (y * 5 + 40 * i as u32) as u8, (60 * i) as u8])
        });
        let format = image::ImageFormat::from_path(name.to_lowercase()).unwrap();
        img.save_with_format(&path, format).unwrap();
    }
    std::fs::write(root.join("2024/notes.txt"), "not an image").unwrap();
    std::fs::write(root.join("2024/march/README"), "not an image").unwrap();
    std::fs::create_dir_all(root.join(".thumbnails")).unwrap();
    std::fs::write(root.join(".thumbnails/x.png"), "hidden").unwrap();
    root
}

fn tlearn_fails(args: &[&std::ffi::OsStr]) -> String {
    let out = tlearn().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn features_of_a_folder_tree_are_cached_shown_exported_and_refused_for_training() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = nested_tree(dir.path());
    let cache = dir.path().join("unlabeled.h5");
    let features = |extra: &[&str]| {
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "features".as_ref(),
            "--unlabeled".as_ref(),
            "--data".as_ref(),
            data.as_os_str(),
            "--backbone".as_ref(),
            model.as_os_str(),
            "--layer".as_ref(),
            "block2_pool".as_ref(),
            "--pool".as_ref(),
            "avg".as_ref(),
            "--quiet".as_ref(),
            "--cache".as_ref(),
            cache.as_os_str(),
        ];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        tlearn().args(args).output().unwrap()
    };
    let out = features(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("5 images, 5 rows"), "{stderr}");

    let opened = FeatureCache::open(&cache).unwrap();
    assert!(opened.identity.unlabeled);
    assert_eq!(opened.identity.splits, 0);
    assert_eq!(opened.paths().unwrap(), IMAGES);
    assert_eq!(opened.labels().unwrap(), vec![UNLABELED; 5]);
    assert!(opened.class_names().unwrap().is_empty());
    let contents = opened.contents().unwrap();
    assert_eq!(contents.parts.dim(), (5, 0), "no splits");
    assert!(
        matches!(contents.labels(), Err(CacheError::Unlabeled(_))),
        "no labels to train on"
    );
    drop(opened);

    let shown = tlearn_ok(&["cache".as_ref(), cache.as_os_str()]);
    assert!(
        shown.contains("classes: none (unlabeled") && shown.contains("splits: none"),
        "{shown}"
    );

    // NumPy reads the features; the CSV lists the rows with label -1 and no class.
    let export = dir.path().join("export");
    tlearn_ok(&[
        "cache".as_ref(),
        "export".as_ref(),
        "--npy".as_ref(),
        export.as_os_str(),
        cache.as_os_str(),
    ]);
    let script = "import sys, numpy as np; a = np.load(sys.argv[1]); \
                  print(a.dtype, a.shape[0], a.shape[1]); \
                  print(' '.join(repr(float(v)) for v in a.ravel()))";
    let numpy = common::fixtures::command(python())
        .args(["-c", script])
        .arg(export.join("features.npy"))
        .output()
        .unwrap();
    assert!(
        numpy.status.success(),
        "{}",
        String::from_utf8_lossy(&numpy.stderr)
    );
    let text = String::from_utf8(numpy.stdout).unwrap();
    let mut lines = text.lines();
    let dims = contents.identity.dims;
    assert_eq!(lines.next().unwrap(), format!("float32 5 {dims}"));
    let values: Vec<f32> = lines
        .next()
        .unwrap()
        .split(' ')
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(
        values,
        contents.features.iter().copied().collect::<Vec<_>>()
    );
    let rows = std::fs::read_to_string(export.join("rows.csv")).unwrap();
    let expected: Vec<String> = std::iter::once("path,label,class,status,copy".to_string())
        .chain(IMAGES.iter().map(|p| format!("{p},-1,,done,0")))
        .collect();
    assert_eq!(rows.lines().collect::<Vec<_>>(), expected);

    // Everything that trains refuses it, saying why and what to do, and writes nothing.
    let runs = dir.path().join("runs");
    for kind in ["svm", "logistic"] {
        let stderr = tlearn_fails(&[
            "train".as_ref(),
            kind.as_ref(),
            "--cache".as_ref(),
            cache.as_os_str(),
            "--runs".as_ref(),
            runs.as_os_str(),
            "--reports".as_ref(),
            dir.path().join("reports").as_os_str(),
        ]);
        assert!(
            stderr.contains("holds features of unlabeled images")
                && stderr.contains("--unlabeled")
                && !stderr.contains("damaged"),
            "{stderr}"
        );
    }
    assert!(!runs.exists(), "nothing written");
    let err = tlearn::finetune::data::Data::from_cache(&cache, 0, None, None).unwrap_err();
    assert!(err.to_string().contains("unlabeled images"), "{err}");

    // Classes, slices and splits mean nothing here: refused before anything runs.
    for flag in [["--per-class", "2"], ["--splits", "2"]] {
        let out = features(&flag);
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("cannot be used with"),
            "{flag:?}"
        );
    }
}

#[test]
fn an_unlabeled_cache_resumes_to_the_same_bytes_and_is_never_mixed_with_a_labelled_one() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = nested_tree(dir.path());
    let mut cfg = config(&data, &model, &dir.path().join("u.h5"));
    cfg.unlabeled = true;
    cfg.pooling = Pooling::Avg;
    cfg.batch = 2;
    // With --augment-all, each image gets its copies (there are no training images to pick).
    cfg.recipe = "flip".parse().unwrap();
    cfg.copies = 1;
    cfg.augment_all = true;
    let first = run(&cfg, &Stop::new()).unwrap();
    assert_eq!((first.images, first.rows, first.computed), (5, 10, 10));
    let ignored: Vec<&str> = first.ignored.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(ignored, ["2024/march/README", "2024/notes.txt"]);
    let complete = feature_bytes(&cfg.cache);
    // Forget rows 3..7 as a killed run would have: features zero, status missing.
    common::fixtures::forget_rows(&cfg.cache, &[3, 4, 5, 6]);
    let resumed = run(&cfg, &Stop::new()).unwrap();
    assert_eq!((resumed.computed, resumed.reused), (4, 6));
    assert_eq!(
        feature_bytes(&cfg.cache),
        complete,
        "resumed to the same bytes"
    );

    // The same tree read as folders of classes is another cache: refused, left as it is.
    let before = std::fs::read(&cfg.cache).unwrap();
    cfg.unlabeled = false;
    let err = run(&cfg, &Stop::new()).unwrap_err();
    assert!(
        matches!(err, ExtractError::Cache(CacheError::Mismatch { .. }))
            && err.to_string().contains("unlabeled"),
        "{err}"
    );
    assert_eq!(std::fs::read(&cfg.cache).unwrap(), before);
}
