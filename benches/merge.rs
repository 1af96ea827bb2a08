//! `make bench-merge`: `tlearn cache merge` of 4 shards the size of the full flowers cache
//! (every flowers image, the `make features` recipe: 3758 rows x 25088 f32) against copying the
//! same files with `cp`, and the merge's peak memory. The shards come from a tiny generated
//! backbone at 224 x 224 (8 channels of 56 x 56 = 25088 values per row), so they take a minute
//! to make instead of VGG16's hour; the merge's cost depends on the sizes, not on the values.
//! Prints JSON and writes reports/bench-merge.json. `BENCH_MERGE_PER_CLASS=N` keeps the first
//! N images of each class (a quick check that the benchmark runs; not the documented figure).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use tlearn::backbone::{sha256_file, ExecutionProvider, Pooling};
use tlearn::preprocess::{DecodeLimits, Preprocessing};
use tlearn::progress::Stop;
use tlearn::shard::{self, ShardSpec};
use tlearn::ExtractConfig;

// The tests' fixtures: the same tiny VGG-like backbone the integration tests build.
#[path = "../tests/common/models.rs"]
#[allow(dead_code)]
mod models;

fn main() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir_in(repo.join("target")).expect("a folder under target/");
    let cfg = flowers_config(&tiny_backbone_224(dir.path()));
    // Each shard's fixed cost: its whole run less the extraction loop (listing the images,
    // planning, loading the model, creating the file at its full size).
    let (mut fixed_s, mut rows_per_s) = (Vec::new(), Vec::new());
    let shards: Vec<PathBuf> = (0..4)
        .map(|index| {
            let spec = ShardSpec { index, count: 4 };
            let mut cfg = cfg.clone();
            cfg.cache = shard::shard_path(&dir.path().join("shards/features.h5"), spec);
            let start = Instant::now();
            let summary = shard::run(&cfg, spec, &Stop::new()).expect("the shard is made");
            fixed_s.push(start.elapsed().as_secs_f64() - summary.seconds);
            rows_per_s.push(summary.rows_per_second);
            cfg.cache
        })
        .collect();
    let bytes: u64 = shards.iter().map(|s| file_len(s)).sum();

    // Median of three runs each (the page cache holds the shards after the first).
    let copies = dir.path().join("copies");
    std::fs::create_dir_all(&copies).expect("mkdir");
    let merged = dir.path().join("merged.h5");
    let (mut cp_s, mut merge_s, mut merge_peak_rss_mib) = (Vec::new(), Vec::new(), 0f64);
    for _ in 0..3 {
        let mut cp = Command::new("cp");
        cp.args(&shards).arg(&copies);
        cp_s.push(timed(cp).0);
        let _ = std::fs::remove_file(&merged);
        let mut merge = Command::new(env!("CARGO_BIN_EXE_tlearn"));
        merge
            .args(["cache", "merge", "--out"])
            .arg(&merged)
            .args(&shards);
        let (seconds, peak) = timed(merge);
        merge_s.push(seconds);
        merge_peak_rss_mib = merge_peak_rss_mib.max(peak);
    }
    let (cp_s, merge_s) = (median(&mut cp_s), median(&mut merge_s));
    let cache = tlearn::cache::FeatureCache::open(&merged).expect("the merged cache opens");
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
    let json = serde_json::to_string_pretty(&report).expect("JSON");
    println!("{json}");
    std::fs::create_dir_all(repo.join("reports")).expect("mkdir reports");
    std::fs::write(repo.join("reports/bench-merge.json"), json + "\n").expect("write the JSON");
}

/// The `make features` recipe over every flowers image (FLOWERS17_DIR), through `backbone`'s
/// block2_pool flattened.
fn flowers_config(backbone: &Path) -> ExtractConfig {
    let flowers = PathBuf::from(std::env::var_os("FLOWERS17_DIR").expect(
        "FLOWERS17_DIR names the flowers data set (`make bench-merge` sets it to data/flowers17)",
    ));
    let per_class = std::env::var("BENCH_MERGE_PER_CLASS")
        .ok()
        .map(|n| n.parse().expect("BENCH_MERGE_PER_CLASS is a number"));
    ExtractConfig {
        data: flowers,
        unlabeled: false,
        backbone: backbone.to_path_buf(),
        layers: vec!["block2_pool".into()],
        pooling: Pooling::Flatten,
        reprs: Vec::new(),
        recipe: "flip,rotate,scale,crop".parse().expect("a recipe"),
        copies: 2,
        size: None,
        augment_all: false,
        split: Default::default(),
        splits: 3,
        seed: 42,
        batch: 16,
        ep: ExecutionProvider::Cpu,
        threads: 2,
        strict: false,
        limits: DecodeLimits::default(),
        per_class,
        cache: PathBuf::new(),
        progress: None,
    }
}

/// A two-block VGG-like model (4 then 8 channels, each 3 x 3 convolution, ReLU, 2 x 2 max
/// pooling) with a 224 x 224 descriptor, in `dir`: the tests' tiny backbone.
fn tiny_backbone_224(dir: &Path) -> PathBuf {
    let model = dir.join("tiny224.onnx");
    models::tiny_vgg().save(&model).expect("save the model");
    let preprocessing = toml::to_string(&Preprocessing::caffe(224)).expect("TOML");
    let descriptor = format!(
        "name = \"tiny224\"\nsha256 = \"{}\"\ninput = \"input\"\nlayers = [\"block1_pool\", \"block2_pool\"]\n\n[preprocessing]\n{preprocessing}",
        sha256_file(&model).expect("hash the model")
    );
    std::fs::write(dir.join("tiny224.toml"), descriptor).expect("write the descriptor");
    model
}

/// Seconds `command` took, and its peak resident memory in MiB from GNU time's `%M`.
fn timed(command: Command) -> (f64, f64) {
    let report = tempfile::NamedTempFile::new().expect("a temporary file");
    let mut timed = Command::new("/usr/bin/time");
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
    let text = std::fs::read_to_string(report.path()).expect("GNU time's report");
    let kib: f64 = text
        .trim()
        .lines()
        .last()
        .and_then(|l| l.parse().ok())
        .expect("a peak in KiB");
    (seconds, kib / 1024.0)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("the shard exists").len()
}
