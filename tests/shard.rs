//! Sharded extraction and `tlearn cache merge`: the merged cache equals a single-machine run's,
//! and every bad merge is refused before anything is written. Serialised: the CLI test's child
//! processes would inherit (and lock) HDF5 files the other tests have open.

use crate::common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use tlearn::progress::Stop;

use common::contents::assert_same_cache;
use common::fixtures::{
    config, feature_bytes, forget_rows, image_folder, serial, tiny_backbone, tlearn, tlearn_err,
};
use tlearn::cache::merge::{merge, MergeError};
use tlearn::cache::{CacheError, FeatureCache, RowStatus};
use tlearn::extract::{run, ExtractConfig, ExtractError};
use tlearn::shard::{self, ShardError, ShardSpec};

fn go() -> Stop {
    Stop::new()
}

/// Extracts every shard of `count` into `dir`, returning the shard files in index order.
fn run_shards(cfg: &ExtractConfig, dir: &Path, count: usize) -> Vec<PathBuf> {
    (0..count)
        .map(|index| {
            let spec = ShardSpec { index, count };
            let mut cfg = cfg.clone();
            cfg.cache = shard::shard_path(&dir.join("features.h5"), spec);
            shard::run(&cfg, spec, &go()).unwrap();
            cfg.cache
        })
        .collect()
}

/// Augmented copies, two splits and skipped (corrupt) images: every dataset has something to merge.
fn tiny_setup(dir: &Path) -> ExtractConfig {
    let model = tiny_backbone(dir);
    let data = image_folder(dir, 3, 5);
    std::fs::write(data.join("class_1/broken.png"), b"not a png").unwrap();
    let mut cfg = config(&data, &model, &dir.join("single.h5"));
    cfg.recipe = "flip,rotate=10".parse().unwrap();
    cfg.copies = 2;
    cfg.splits = 2;
    cfg
}

#[test]
fn merged_shards_equal_a_single_machine_run() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_setup(dir.path());
    let single = run(&cfg, &go()).unwrap();
    assert_eq!(single.skipped.len(), 1);
    for count in [1, 3, 4] {
        let shards_dir = dir.path().join(format!("shards-{count}"));
        let shards = run_shards(&cfg, &shards_dir, count);
        let rows: usize = shards
            .iter()
            .map(|s| FeatureCache::open(s).unwrap().rows)
            .sum();
        assert_eq!(rows, single.rows, "the shards hold every row once");
        let merged = shards_dir.join("features.h5");
        // Shards in any order.
        let mut inputs = shards.clone();
        inputs.reverse();
        let summary = merge(&inputs, &merged).unwrap();
        assert_eq!((summary.rows, summary.shards), (single.rows, count));
        assert_same_cache(&merged, &cfg.cache);
        assert_eq!(feature_bytes(&merged), feature_bytes(&cfg.cache));
        let identity = FeatureCache::open(&merged).unwrap().identity;
        assert_eq!(identity, FeatureCache::open(&cfg.cache).unwrap().identity);
        assert!(identity.shard.is_none());
    }
    // A shard is an ordinary cache of its rows, which other commands can read.
    let shard =
        FeatureCache::open(&dir.path().join("shards-3/features.shard-00001-of-00003.h5")).unwrap();
    assert!(shard.rows > 0 && shard.rows < single.rows);
    assert!(shard
        .status()
        .unwrap()
        .iter()
        .all(|s| *s != RowStatus::Missing));
}

#[test]
fn an_interrupted_shard_resumes_and_a_shard_of_another_plan_is_refused() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_setup(dir.path());
    let spec = ShardSpec { index: 1, count: 3 };
    let whole = run_shards(&cfg, &dir.path().join("whole"), 3);

    // A killed task leaves rows missing: forget two done rows, as such a kill would.
    let mut resumed = cfg.clone();
    resumed.cache = dir.path().join("resumed.h5");
    std::fs::copy(&whole[1], &resumed.cache).unwrap();
    let status = FeatureCache::open(&resumed.cache)
        .unwrap()
        .status()
        .unwrap();
    let done: Vec<usize> = (0..status.len())
        .filter(|&r| status[r] == RowStatus::Done)
        .collect();
    forget_rows(&resumed.cache, &done[..2]);
    let summary = shard::run(&resumed, spec, &go()).unwrap();
    assert_eq!((summary.computed, summary.reused), (2, done.len() - 2));
    assert_same_cache(&resumed.cache, &whole[1]);

    // One more image changes the plan (and where shards cut): the shard file is refused.
    image_folder(&dir.path().join("more"), 3, 6);
    let mut other = resumed.clone();
    other.data = dir.path().join("more/images");
    let before = std::fs::read(&other.cache).unwrap();
    let err = shard::run(&other, spec, &go()).unwrap_err();
    assert!(
        matches!(
            err,
            ShardError::Extract(ExtractError::Cache(CacheError::Mismatch { .. }))
        ),
        "{err}"
    );
    assert!(err.to_string().contains("shard"), "{err}");
    assert_eq!(std::fs::read(&other.cache).unwrap(), before);
}

#[test]
fn bad_merges_are_refused_and_write_nothing() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = tiny_setup(dir.path());
    let a = run_shards(&cfg, &dir.path().join("a"), 3);
    let two = run_shards(&cfg, &dir.path().join("two"), 2);
    let single = {
        run(&cfg, &go()).unwrap();
        cfg.cache.clone()
    };
    let duplicate = dir.path().join("copy-of-shard-1.h5");
    std::fs::copy(&a[1], &duplicate).unwrap();
    let old_version = dir.path().join("old-version.h5");
    std::fs::copy(&a[2], &old_version).unwrap();
    {
        let file = hdf5::File::open_rw(&old_version).unwrap();
        file.attr("tlearn_version")
            .unwrap()
            .write_scalar(&"0.0.1".parse::<hdf5::types::VarLenUnicode>().unwrap())
            .unwrap();
    }
    let incomplete = dir.path().join("incomplete.h5");
    std::fs::copy(&a[2], &incomplete).unwrap();
    forget_rows(&incomplete, &[0, 1]);
    cfg.seed += 1;
    let b = run_shards(&cfg, &dir.path().join("b"), 3);

    let out = dir.path().join("merged.h5");
    let cases: Vec<(Vec<PathBuf>, &str)> = vec![
        (vec![a[0].clone(), a[1].clone(), b[2].clone()], "seed"),
        (
            vec![a[0].clone(), a[1].clone(), duplicate, a[2].clone()],
            "given twice",
        ),
        (
            vec![a[0].clone(), a[1].clone(), a[1].clone()],
            "given twice",
        ),
        (
            vec![a[0].clone(), a[2].clone()],
            "missing shard(s) 1 of 0..3",
        ),
        (
            vec![a[0].clone(), a[1].clone(), a[2].clone(), two[1].clone()],
            "of 2",
        ),
        (vec![a[0].clone(), a[1].clone(), old_version], "0.0.1"),
        (vec![single.clone(), a[1].clone()], "not a shard"),
        (
            vec![a[0].clone(), a[1].clone(), incomplete.clone()],
            "shard 2 (",
        ),
    ];
    for (inputs, expected) in cases {
        let err = merge(&inputs, &out).unwrap_err();
        assert!(err.to_string().contains(expected), "{expected}: {err}");
        assert!(!out.exists() && !out.with_extension("h5.partial").exists());
    }
    let err = merge(&[a[0].clone(), a[1].clone(), incomplete], &out).unwrap_err();
    let MergeError::Incomplete { shards, report } = err else {
        panic!("{err}")
    };
    assert_eq!(shards, [2]);
    let first_row = FeatureCache::open(&a[2])
        .unwrap()
        .identity
        .shard
        .unwrap()
        .first_row;
    assert!(
        report.contains(&format!("plan rows {first_row}-")),
        "the missing rows are named as rows of the whole plan: {report}"
    );

    let before = std::fs::read(&a[0]).unwrap();
    let err = merge(&a, &a[0]).unwrap_err();
    assert!(matches!(err, MergeError::OutputIsInput(_)), "{err}");
    assert_eq!(std::fs::read(&a[0]).unwrap(), before);
    let err = merge(&a, &single).unwrap_err();
    assert!(matches!(err, MergeError::OutputExists(_)), "{err}");
    assert!(matches!(merge(&[], &out), Err(MergeError::NoShards)));
}

#[test]
fn cli_shard_auto_from_slurm_then_cache_merge() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_backbone(dir.path());
    let data = image_folder(dir.path(), 2, 3);
    let out = dir.path().join("out/features.h5");
    let features = |env: &[(&str, &str)], shard: &str| {
        let mut command = tlearn();
        command
            .args([
                "features",
                "--quiet",
                "--layer",
                "block2_pool",
                "--shard",
                shard,
            ])
            .arg("--data")
            .arg(&data)
            .arg("--backbone")
            .arg(&model)
            .arg("--cache")
            .arg(&out)
            .env_remove("SLURM_ARRAY_TASK_ID")
            .env_remove("SLURM_ARRAY_TASK_COUNT")
            .env_remove("JOB_COMPLETION_INDEX")
            .envs(env.iter().copied());
        command.output().unwrap()
    };
    let none = features(&[], "auto");
    assert!(!none.status.success());
    let stderr = String::from_utf8_lossy(&none.stderr);
    assert!(
        stderr.contains("SLURM_ARRAY_TASK_ID") && stderr.contains("JOB_COMPLETION_INDEX"),
        "{stderr}"
    );
    for task in ["0", "1"] {
        let done = features(
            &[
                ("SLURM_ARRAY_TASK_ID", task),
                ("SLURM_ARRAY_TASK_COUNT", "2"),
            ],
            "auto",
        );
        assert!(
            done.status.success(),
            "{}",
            String::from_utf8_lossy(&done.stderr)
        );
    }
    let k8s = features(&[("JOB_COMPLETION_INDEX", "1")], "auto/2");
    let stderr = String::from_utf8_lossy(&k8s.stderr);
    assert!(
        k8s.status.success() && stderr.contains("nothing left to compute"),
        "the Kubernetes index names the same shard, already done: {stderr}"
    );
    let shards: Vec<PathBuf> = (0..2)
        .map(|i| {
            dir.path()
                .join(format!("out/features.shard-0000{i}-of-00002.h5"))
        })
        .collect();
    let info = tlearn().arg("cache").arg(&shards[1]).output().unwrap();
    let stdout = String::from_utf8_lossy(&info.stdout);
    assert!(
        stdout.contains("shard: 1 of 2 (0-based), rows 3..6 of 6"),
        "{stdout}"
    );
    let merged = tlearn()
        .args(["cache", "merge", "--out"])
        .arg(&out)
        .args(&shards)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&merged.stderr);
    assert!(merged.status.success(), "{stderr}");
    assert!(stderr.contains("merged 2 shards, 6 rows"), "{stderr}");
    let info = tlearn().arg("cache").arg(&out).output().unwrap();
    let stdout = String::from_utf8_lossy(&info.stdout);
    assert!(stdout.contains("rows: 6 (6 done, 0 missing"), "{stdout}");
    let mut args = vec![OsStr::new("cache"), OsStr::new("merge")];
    args.extend([OsStr::new("--out"), out.as_os_str()]);
    args.extend(shards.iter().map(|s| s.as_os_str()));
    let again = tlearn_err(&args);
    assert!(again.contains("exists already"), "{again}");
}

/// The real VGG16 on a small slice of the flowers: merged shards equal one run, byte for byte.
#[test]
fn flowers_slice_merged_equals_single_machine() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let data = common::fixtures::flowers_slice(dir.path(), 2, 3);
    let mut cfg = config(
        &data,
        &common::fixtures::vgg16(),
        &dir.path().join("single.h5"),
    );
    cfg.layers = vec!["block5_pool".into()];
    cfg.recipe = "flip,rotate=10".parse().unwrap();
    cfg.copies = 1;
    cfg.threads = 2;
    run(&cfg, &go()).unwrap();
    let shards = run_shards(&cfg, &dir.path().join("shards"), 3);
    let merged = dir.path().join("shards/features.h5");
    merge(&shards, &merged).unwrap();
    assert_same_cache(&merged, &cfg.cache);
    assert_eq!(feature_bytes(&merged), feature_bytes(&cfg.cache));
}
