//! `make bench-merge`: `tlearn cache merge` of 4 shards the size of the full flowers cache
//! (every flowers image, the `make features` recipe: 3758 rows x 25088 f32) against copying the
//! same files with `cp`, and the merge's peak memory. The shards come from a tiny generated
//! backbone at 224 x 224 (8 channels of 56 x 56 = 25088 values per row), so they take a minute
//! to make instead of VGG16's hour; the merge's cost depends on the sizes, not on the values.
//! Ignored by `cargo test`; prints JSON and writes reports/bench-merge.json.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use tlearn::progress::Stop;

use common::fixtures::{config, flowers, repo, tlearn};
use tlearn::backbone::sha256_file;
use tlearn::preprocess::Preprocessing;
use tlearn::shard::{self, ShardSpec};

/// The tiny VGG-like model with a 224 x 224 descriptor, in `dir`.
fn tiny_backbone_224(dir: &Path) -> PathBuf {
    let model = dir.join("tiny224.onnx");
    common::tiny_vgg().save(&model).unwrap();
    let preprocessing = toml::to_string(&Preprocessing::caffe(224)).unwrap();
    let descriptor = format!(
        "name = \"tiny224\"\nsha256 = \"{}\"\ninput = \"input\"\nlayers = [\"block1_pool\", \"block2_pool\"]\n\n[preprocessing]\n{preprocessing}",
        sha256_file(&model).unwrap()
    );
    std::fs::write(dir.join("tiny224.toml"), descriptor).unwrap();
    model
}

/// Seconds `command` took, and its peak resident memory in MiB from GNU time's `%M`.
fn timed(command: Command) -> (f64, f64) {
    let report = tempfile::NamedTempFile::new().unwrap();
    let mut timed = common::fixtures::command("/usr/bin/time");
    timed
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(report.path())
        .arg(command.get_program())
        .args(command.get_args());
    let start = Instant::now();
    let out = timed.output().expect("/usr/bin/time (GNU time) runs");
    let seconds = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kib: f64 = std::fs::read_to_string(report.path())
        .unwrap()
        .trim()
        .lines()
        .last()
        .unwrap()
        .parse()
        .unwrap();
    (seconds, kib / 1024.0)
}

#[test]
#[ignore = "benchmark: make bench-merge"]
fn bench_merge() {
    let dir = tempfile::tempdir_in(repo().join("target")).unwrap();
    let model = tiny_backbone_224(dir.path());
    let mut cfg = config(&flowers(), &model, &dir.path().join("unused.h5"));
    cfg.recipe = "flip,rotate,scale,crop".parse().unwrap();
    cfg.copies = 2;
    cfg.splits = 3;
    cfg.seed = 42;
    cfg.batch = 16;
    cfg.threads = 2;
    // Each shard's fixed cost: its whole run less the extraction loop (listing the images,
    // planning, loading the model, creating the file at its full size).
    let (mut fixed_s, mut rows_per_s) = (Vec::new(), Vec::new());
    let shards: Vec<PathBuf> = (0..4)
        .map(|index| {
            let spec = ShardSpec { index, count: 4 };
            let mut cfg = cfg.clone();
            cfg.cache = shard::shard_path(&dir.path().join("shards/features.h5"), spec);
            let start = Instant::now();
            let summary = shard::run(&cfg, spec, &Stop::new()).unwrap();
            fixed_s.push(start.elapsed().as_secs_f64() - summary.seconds);
            rows_per_s.push(summary.rows_per_second);
            cfg.cache
        })
        .collect();
    let bytes: u64 = shards
        .iter()
        .map(|s| std::fs::metadata(s).unwrap().len())
        .sum();

    // Median of three runs each (the page cache holds the shards after the first).
    let copies = dir.path().join("copies");
    std::fs::create_dir_all(&copies).unwrap();
    let merged = dir.path().join("merged.h5");
    let (mut cp_s, mut merge_s, mut merge_peak_rss_mib) = (Vec::new(), Vec::new(), 0f64);
    for _ in 0..3 {
        let mut cp = common::fixtures::command("cp");
        cp.args(&shards).arg(&copies);
        cp_s.push(timed(cp).0);
        let _ = std::fs::remove_file(&merged);
        let mut merge = tlearn();
        merge
            .args(["cache", "merge", "--out"])
            .arg(&merged)
            .args(&shards);
        let (seconds, peak) = timed(merge);
        merge_s.push(seconds);
        merge_peak_rss_mib = merge_peak_rss_mib.max(peak);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (cp_s, merge_s) = (median(&mut cp_s), median(&mut merge_s));
    let cache = tlearn::cache::FeatureCache::open(&merged).unwrap();
    let report = serde_json::json!({
        "bench": "merge",
        "shards": shards.len(),
        "rows": cache.rows,
        "dims": cache.identity.dims,
        "shard_bytes": bytes,
        "shard_fixed_s": fixed_s,
        "shard_rows_per_s": rows_per_s,
        "cp_s": cp_s,
        "merge_s": merge_s,
        "merge_over_cp": merge_s / cp_s,
        "merge_peak_rss_mib": merge_peak_rss_mib,
    });
    let json = serde_json::to_string_pretty(&report).unwrap();
    println!("{json}");
    std::fs::create_dir_all(repo().join("reports")).unwrap();
    std::fs::write(repo().join("reports/bench-merge.json"), json + "\n").unwrap();
}
