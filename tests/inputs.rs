//! Careful and hostile input to feature extraction: options out of range, huge files,
//! non-UTF-8 names, images changed after caching, non-image entries, a full disk.

use crate::common;

use std::path::Path;
use tlearn::progress::Stop;

use common::fixtures::{config, image_folder, tiny_backbone};
use tlearn::augment::Recipe;
use tlearn::cache::{CacheError, FeatureCache, RowStatus};
use tlearn::dataset::{stored_to_path, IgnoredKind, SplitSpec};
use tlearn::extract::{run, ExtractError};
use tlearn::options::Opt;

fn go() -> Stop {
    Stop::new()
}

/// The features of every row, one byte vector per row.
fn row_bytes(cache: &Path) -> Vec<Vec<u8>> {
    let features = FeatureCache::open(cache).unwrap().features().unwrap();
    features
        .outer_iter()
        .map(|r| r.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect()
}

#[test]
fn numeric_options_out_of_range_are_refused_naming_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 2);
    let base = config(&data, &model, &dir.path().join("f.h5"));
    type Edit = Box<dyn Fn(&mut tlearn::extract::ExtractConfig)>;
    // The library names each option (its own names here; the command line spells them as flags).
    let cases: Vec<(Opt, &str, Edit)> = vec![
        (Opt::Splits, "0", Box::new(|c| c.splits = 0)),
        (
            Opt::Copies,
            "65536",
            Box::new(|c| {
                c.copies = 65536;
                c.recipe = "flip".parse::<Recipe>().unwrap();
            }),
        ),
        (Opt::PerClass, "0", Box::new(|c| c.per_class = Some(0))),
        (Opt::Batch, "0", Box::new(|c| c.batch = 0)),
        (Opt::Threads, "0", Box::new(|c| c.threads = 0)),
        (
            Opt::SplitFractions,
            "1,0,0",
            Box::new(|c| {
                c.split = SplitSpec {
                    train: 1.0,
                    val: 0.0,
                    test: 0.0,
                }
            }),
        ),
    ];
    for (option, value, edit) in cases {
        let mut cfg = base.clone();
        edit(&mut cfg);
        let err = run(&cfg, &go()).unwrap_err();
        let named = format!("{option} {value}");
        assert!(err.to_string().contains(&named), "{named}: {err}");
        assert!(!cfg.cache.exists(), "{named}: nothing written");
    }
    // The bounds themselves are accepted.
    let mut cfg = base.clone();
    cfg.copies = 65535;
    cfg.per_class = Some(1);
    assert!(cfg.check().is_ok());
}

#[test]
fn a_changed_image_has_all_its_rows_recomputed_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 4);
    let mut cfg = config(&data, &model, &dir.path().join("f.h5"));
    cfg.recipe = "flip,rotate".parse().unwrap();
    cfg.copies = 2;
    cfg.augment_all = true;
    run(&cfg, &go()).unwrap();
    let before = row_bytes(&cfg.cache);

    // Same path, other pixels (another image of the set, so the size changes too).
    let changed = data.join("class_0/img_01.png");
    std::fs::copy(data.join("class_1/img_03.png"), &changed).unwrap();
    let summary = run(&cfg, &go()).unwrap();
    assert_eq!(summary.recomputed, ["class_0/img_01.png"]);
    assert_eq!((summary.computed, summary.reused), (3, 21));
    let after = row_bytes(&cfg.cache);
    let paths = FeatureCache::open(&cfg.cache).unwrap().paths().unwrap();
    for (row, path) in paths.iter().enumerate() {
        if path == "class_0/img_01.png" {
            assert_ne!(after[row], before[row], "row {row} recomputed");
        } else {
            assert_eq!(after[row], before[row], "row {row} untouched");
        }
    }
    // The recomputed rows are what a fresh run makes of the new file.
    let mut fresh = cfg.clone();
    fresh.cache = dir.path().join("fresh.h5");
    run(&fresh, &go()).unwrap();
    assert_eq!(row_bytes(&fresh.cache), after);

    // Same size, one byte of content changed: a skipped row is retried too.
    let bytes = std::fs::read(&changed).unwrap();
    let mut broken = bytes.clone();
    let last = broken.len() - 20;
    broken[last] ^= 0xFF;
    std::fs::write(&changed, &broken).unwrap();
    let summary = run(&cfg, &go()).unwrap();
    assert_eq!(summary.recomputed, ["class_0/img_01.png"]);
    assert_eq!(summary.skipped.len(), 1, "{:?}", summary.skipped);
    std::fs::write(&changed, &bytes).unwrap();
    let summary = run(&cfg, &go()).unwrap();
    assert_eq!(summary.recomputed, ["class_0/img_01.png"]);
    assert!(summary.skipped.is_empty());
    assert_eq!(row_bytes(&cfg.cache), after);
    assert!(run(&cfg, &go()).unwrap().recomputed.is_empty());
}

#[test]
fn a_vanished_image_is_named_and_the_cache_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 3);
    let cfg = config(&data, &model, &dir.path().join("f.h5"));
    run(&cfg, &go()).unwrap();
    let before = std::fs::read(&cfg.cache).unwrap();
    std::fs::remove_file(data.join("class_1/img_02.png")).unwrap();
    let err = run(&cfg, &go()).unwrap_err();
    assert!(
        matches!(err, ExtractError::Cache(CacheError::Mismatch { .. })),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("no longer decodable): class_1/img_02.png"),
        "{err}"
    );
    assert_eq!(std::fs::read(&cfg.cache).unwrap(), before);
}

#[cfg(unix)]
#[test]
fn non_utf8_file_and_folder_names_keep_their_images() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 2);
    let odd = |b: &[u8]| std::ffi::OsStr::from_bytes(b).to_os_string();
    std::fs::rename(data.join("class_1"), data.join(odd(b"caf\xe9"))).unwrap();
    std::fs::rename(
        data.join("class_0/img_01.png"),
        data.join("class_0").join(odd(b"\xff%41.png")),
    )
    .unwrap();
    let cfg = config(&data, &model, &dir.path().join("f.h5"));
    let summary = run(&cfg, &go()).unwrap();
    assert!(summary.skipped.is_empty(), "{:?}", summary.skipped);
    assert_eq!((summary.images, summary.computed), (4, 4));
    let cache = FeatureCache::open(&cfg.cache).unwrap();
    assert_eq!(cache.class_names().unwrap(), ["caf%E9", "class_0"]);
    let paths = cache.paths().unwrap();
    assert_eq!(
        paths,
        [
            "caf%E9/img_00.png",
            "caf%E9/img_01.png",
            "class_0/%FF%2541.png",
            "class_0/img_00.png"
        ]
    );
    for path in &paths {
        assert!(data.join(stored_to_path(path)).is_file(), "{path}");
    }
    assert!(cache
        .status()
        .unwrap()
        .iter()
        .all(|s| *s == RowStatus::Done));
}

#[test]
fn a_huge_file_is_skipped_with_its_size_and_good_rows_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 3);
    // 3 GB, sparse: no disk space, but reading it whole would take 3 GB of memory.
    let huge = std::fs::File::create(data.join("class_0/x.jpg")).unwrap();
    huge.set_len(3 << 30).unwrap();
    drop(huge);
    let cfg = config(&data, &model, &dir.path().join("f.h5"));
    let summary = run(&cfg, &go()).unwrap();
    assert_eq!(summary.skipped.len(), 1);
    let (path, reason) = &summary.skipped[0];
    assert_eq!(path, "class_0/x.jpg");
    assert!(
        reason.contains("image too large") && reason.contains("3221225472 bytes"),
        "{reason}"
    );
    assert_eq!(summary.computed, 6, "every good image is kept");
}

#[cfg(unix)]
#[test]
fn what_is_not_an_image_is_listed_not_dropped_silently() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 2);
    std::fs::write(data.join("class_0/notes.txt"), b"hello").unwrap();
    std::fs::create_dir_all(data.join("class_0/more")).unwrap();
    std::fs::copy(
        data.join("class_1/img_00.png"),
        data.join("class_0/more/img_00.png"),
    )
    .unwrap();
    std::os::unix::fs::symlink(data.join("nowhere.png"), data.join("class_1/link.png")).unwrap();
    let cfg = config(&data, &model, &dir.path().join("f.h5"));
    let summary = run(&cfg, &go()).unwrap();
    let ignored: Vec<(&str, IgnoredKind)> = summary
        .ignored
        .iter()
        .map(|i| (i.path.as_str(), i.kind))
        .collect();
    assert_eq!(
        ignored,
        [
            ("class_0/more", IgnoredKind::SubFolder),
            ("class_0/notes.txt", IgnoredKind::NotAnImage),
            ("class_1/link.png", IgnoredKind::DanglingLink),
        ]
    );
    assert_eq!(summary.computed, 4);
}

#[test]
fn every_flower_decodes_as_the_lenient_decoder_decodes_it() {
    // The strict JPEG decoding refuses no real photo and changes no pixel.
    let jpg = common::fixtures::flowers().join("jpg");
    let mut files: Vec<_> = std::fs::read_dir(&jpg)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    files.sort();
    assert!(files.len() >= 1360, "{} files", files.len());
    let limits = tlearn::preprocess::DecodeLimits::default();
    for path in files {
        let ours = tlearn::preprocess::load_rgb(&path, &limits).unwrap_or_else(|e| panic!("{e}"));
        let reference = image::open(&path).unwrap().into_rgb8();
        assert!(ours == reference, "{}", path.display());
    }
}

#[test]
fn a_cache_of_the_layout_before_fingerprints_is_read_but_not_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 2);
    let cfg = config(&data, &model, &dir.path().join("f.h5"));
    run(&cfg, &go()).unwrap();
    let rows = row_bytes(&cfg.cache);
    {
        // What tlearn wrote before the fingerprints: layout 1, no `fingerprint` dataset.
        let file = hdf5::File::open_rw(&cfg.cache).unwrap();
        file.unlink("fingerprint").unwrap();
        let one: hdf5::types::VarLenUnicode = "1".parse().unwrap();
        file.attr("format_version")
            .unwrap()
            .write_scalar(&one)
            .unwrap();
    }
    assert_eq!(row_bytes(&cfg.cache), rows, "still read");
    let before = std::fs::read(&cfg.cache).unwrap();
    let err = run(&cfg, &go()).unwrap_err();
    assert!(
        matches!(err, ExtractError::Cache(CacheError::Mismatch { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("layout version 1"), "{err}");
    assert_eq!(std::fs::read(&cfg.cache).unwrap(), before);
}
