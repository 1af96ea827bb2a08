//! Sharded extraction: one plan cut into N shards, each extracted by its own process (a Slurm
//! array task, a Kubernetes Indexed Job pod) into an ordinary, resumable cache, and merged by
//! [`crate::cache::merge`] into the cache a single machine would have written.
//!
//! A shard is a contiguous run of the plan's images, balanced by rows (an image and all its
//! augmented copies always land in one shard), so the single-machine row order is the shards'
//! rows one after the other. Every shard's identity names the whole plan (a sha256 of every
//! setting and every planned row), its index and the shard count, so shards of different plans
//! are never mixed, neither on resume nor at merge.

use std::io::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::cache::merge::ShardId;
use crate::cache::{Plan, RowPlan};
use crate::extract::{self, ExtractConfig, ExtractError, Summary};
use crate::options::Opt;
use crate::progress::Stop;

/// Errors of choosing or extracting a shard.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// The shard request could not be parsed.
    #[error("bad {opt_shard} {0:?}: give I/N (shard I of N, 0 <= I < N), auto, or auto/N", opt_shard = Opt::Shard)]
    BadSpec(String),
    /// `auto` without a scheduler's task index in the environment.
    #[error("{opt_shard} auto needs SLURM_ARRAY_TASK_ID (a Slurm job array task) or JOB_COMPLETION_INDEX (a Kubernetes Indexed Job), and neither is set: give {opt_shard} I/N", opt_shard = Opt::Shard)]
    NoIndex,
    /// The task index is known but not the number of shards.
    #[error("{opt_shard} auto: {0} gives this task's index but not the number of shards: give {opt_shard} auto/N", opt_shard = Opt::Shard)]
    NoCount(&'static str),
    /// A scheduler variable holds something other than a number.
    #[error("{opt_shard} auto: {var}={value:?} is not a number", opt_shard = Opt::Shard)]
    BadVariable {
        /// The environment variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// The index is not below the count.
    #[error("shard index {index} is not below the shard count {count}{}", if *.from_slurm_count { resubmit_hint() } else { String::new() })]
    OutOfRange {
        /// The index.
        index: usize,
        /// The count.
        count: usize,
        /// The count came from SLURM_ARRAY_TASK_COUNT: likely some tasks resubmitted alone.
        from_slurm_count: bool,
    },
    /// A Slurm array whose task ids do not fit shards 0..count (`--array=1-N`): some shard is
    /// never made and the last task fails.
    #[error("the Slurm array runs tasks {min}-{max}, but shards are numbered 0 to {last}: task {max} has no shard and shard 0 is never made unless a task 0 runs. Submit the array as --array=0-{last} (features.sbatch does), or give {opt_shard} auto/N with N above {max}", last = .count - 1, opt_shard = Opt::Shard)]
    ArrayOutOfRange {
        /// SLURM_ARRAY_TASK_MIN.
        min: usize,
        /// SLURM_ARRAY_TASK_MAX.
        max: usize,
        /// Shards.
        count: usize,
    },
    /// More shards than images: some would be empty.
    #[error("{count} shards for {images} images: use at most {images} shards")]
    TooManyShards {
        /// Shards asked for.
        count: usize,
        /// Images in the data set.
        images: usize,
    },
    /// The extraction itself failed.
    #[error(transparent)]
    Extract(#[from] ExtractError),
}

/// Shard `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSpec {
    /// This shard, 0..count.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

/// A shard request: a fixed shard, or one read from the scheduler's environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardRequest {
    /// `I/N`.
    Fixed(ShardSpec),
    /// `auto` or `auto/N`: the index (and without N, the count) from Slurm or Kubernetes.
    Auto {
        /// The count, when given.
        count: Option<usize>,
    },
}

impl FromStr for ShardRequest {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ShardError::BadSpec(s.to_string());
        let number = |t: &str| t.trim().parse::<usize>().map_err(|_| bad());
        let (index, count) = match s.split_once('/') {
            Some((i, n)) => (i.trim(), Some(number(n)?)),
            None => (s.trim(), None),
        };
        if count == Some(0) {
            return Err(bad());
        }
        match (index, count) {
            ("auto", count) => Ok(ShardRequest::Auto { count }),
            (index, Some(count)) => Ok(ShardRequest::Fixed(ShardSpec {
                index: number(index)?,
                count,
            })),
            _ => Err(bad()),
        }
    }
}

impl ShardRequest {
    /// The shard this process extracts; `var` reads the environment (`std::env::var(..).ok()`).
    pub fn resolve(&self, var: impl Fn(&str) -> Option<String>) -> Result<ShardSpec, ShardError> {
        let read = |name: &'static str| -> Result<Option<usize>, ShardError> {
            var(name)
                .map(|value| {
                    value.trim().parse().map_err(|_| ShardError::BadVariable {
                        var: name,
                        value: value.clone(),
                    })
                })
                .transpose()
        };
        let (spec, from_slurm_count) = match *self {
            ShardRequest::Fixed(spec) => (spec, false),
            ShardRequest::Auto { count } => {
                let (index, source) = match read("SLURM_ARRAY_TASK_ID")? {
                    Some(i) => (i, "SLURM_ARRAY_TASK_ID"),
                    None => match read("JOB_COMPLETION_INDEX")? {
                        Some(i) => (i, "JOB_COMPLETION_INDEX"),
                        None => return Err(ShardError::NoIndex),
                    },
                };
                let slurm_count = match source {
                    "SLURM_ARRAY_TASK_ID" => read("SLURM_ARRAY_TASK_COUNT")?,
                    _ => None,
                };
                let count = count.or(slurm_count).ok_or(ShardError::NoCount(source))?;
                if let (Some(min), Some(max)) =
                    (read("SLURM_ARRAY_TASK_MIN")?, read("SLURM_ARRAY_TASK_MAX")?)
                {
                    // Checked in every task, so task 1 of a 1-based array stops too.
                    if max >= count && count > 0 {
                        return Err(ShardError::ArrayOutOfRange { min, max, count });
                    }
                }
                let from_slurm_count = slurm_count.is_some_and(|n| n == count);
                (ShardSpec { index, count }, from_slurm_count)
            }
        };
        if spec.count == 0 || spec.index >= spec.count {
            return Err(ShardError::OutOfRange {
                index: spec.index,
                count: spec.count,
                from_slurm_count,
            });
        }
        Ok(spec)
    }
}

/// How to resubmit some tasks of an array, when the count came from Slurm's.
fn resubmit_hint() -> String {
    format!(" (SLURM_ARRAY_TASK_COUNT): when resubmitting some tasks of an array (--array=2), give the count: {} auto/N (features.sbatch: SHARDS=N)", Opt::Shard)
}

/// The file of shard `spec` of the cache `out`: `DIR/NAME.h5` -> `DIR/NAME.shard-IIIII-of-NNNNN.h5`.
pub fn shard_path(out: &Path, spec: ShardSpec) -> PathBuf {
    let stem = out
        .file_stem()
        .map_or_else(|| "features".into(), |s| s.to_string_lossy().into_owned());
    let ext = out
        .extension()
        .map_or_else(|| "h5".into(), |e| e.to_string_lossy().into_owned());
    out.with_file_name(format!(
        "{stem}.shard-{:05}-of-{:05}.{ext}",
        spec.index, spec.count
    ))
}

/// The rows of each of `count` shards: contiguous runs of whole images, as equal in rows as
/// image boundaries allow, none empty.
pub fn shard_rows(rows: &[RowPlan], count: usize) -> Result<Vec<Range<usize>>, ShardError> {
    let starts: Vec<usize> = (0..rows.len())
        .filter(|&r| r == 0 || rows[r].image != rows[r - 1].image)
        .collect();
    if count == 0 || count > starts.len() {
        return Err(ShardError::TooManyShards {
            count,
            images: starts.len(),
        });
    }
    // cuts[k]: the first image of shard k, the first image starting at or after k/count of the rows.
    let mut cuts = vec![0usize; count + 1];
    cuts[count] = starts.len();
    for k in 1..count {
        let first = starts.partition_point(|&s| s * count < k * rows.len());
        cuts[k] = first.clamp(cuts[k - 1] + 1, starts.len() - (count - k));
    }
    let row_of = |image: usize| starts.get(image).copied().unwrap_or(rows.len());
    Ok((0..count)
        .map(|k| row_of(cuts[k])..row_of(cuts[k + 1]))
        .collect())
}

/// sha256 of the whole plan: identity (without shard fields), class names and every row.
pub fn plan_sha256(plan: &Plan) -> String {
    let mut identity = plan.identity.clone();
    identity.shard = None;
    let mut hasher = Sha256::new();
    hash_json(&mut hasher, &identity);
    hash_json(&mut hasher, &plan.class_names);
    for row in &plan.rows {
        hash_json(&mut hasher, row);
    }
    format!("{:x}", hasher.finalize())
}

/// Feeds `value`'s JSON and a newline (so no two sequences of values hash alike) to `hasher`.
fn hash_json(hasher: &mut Sha256, value: &impl serde::Serialize) {
    serde_json::to_writer(&mut *hasher, value).expect("plans serialise");
    hasher.write_all(b"\n").expect("hashing cannot fail");
}

/// Restricts a whole plan to shard `spec`: its rows, and an identity naming the plan and the shard.
fn plan_shard(plan: &mut Plan, spec: ShardSpec) -> Result<Range<usize>, ShardError> {
    let range = shard_rows(&plan.rows, spec.count)?[spec.index].clone();
    let shard = ShardId {
        index: spec.index,
        count: spec.count,
        plan_sha256: plan_sha256(plan),
        first_row: range.start,
        plan_rows: plan.rows.len(),
    };
    plan.rows = plan.rows[range.clone()].to_vec();
    plan.identity.shard = Some(shard);
    Ok(range)
}

/// Runs (or resumes) shard `spec` of the extraction `cfg` into `cfg.cache` (see [`shard_path`]).
pub fn run(cfg: &ExtractConfig, spec: ShardSpec, stop: &Stop) -> Result<Summary, ShardError> {
    let cfg = &cfg.check()?;
    let mut setup = extract::setup(cfg)?;
    plan_shard(&mut setup.plan, spec)?;
    // The summary counts this shard's images; rows keep their image index in the whole data set.
    let images = match (setup.plan.rows.first(), setup.plan.rows.last()) {
        (Some(a), Some(b)) => a.image as usize..b.image as usize + 1,
        _ => 0..0,
    };
    let mut index = 0;
    setup.data.samples.retain(|_| {
        index += 1;
        images.contains(&(index - 1))
    });
    Ok(extract::run_setup(cfg, setup, stop)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(copies_per_image: &[u16]) -> Vec<RowPlan> {
        let mut rows = Vec::new();
        for (image, &copies) in copies_per_image.iter().enumerate() {
            for copy in 0..=copies {
                rows.push(RowPlan {
                    image: image as u32,
                    path: format!("c/{image}.png"),
                    label: 0,
                    copy,
                    augment: String::new(),
                    parts: vec![0],
                });
            }
        }
        rows
    }

    #[test]
    fn shards_tile_the_plan_in_order_keep_copies_together_and_balance_rows() {
        // 40 images, every third with two copies: 66 rows.
        let plan: Vec<u16> = (0..40).map(|i| if i % 3 == 0 { 2 } else { 0 }).collect();
        let rows = rows(&plan);
        for count in [1, 2, 3, 4, 7, 40] {
            let shards = shard_rows(&rows, count).unwrap();
            assert_eq!(shards.len(), count);
            assert_eq!(shards[0].start, 0);
            assert_eq!(shards[count - 1].end, rows.len());
            for pair in shards.windows(2) {
                assert_eq!(pair[0].end, pair[1].start, "contiguous, in order");
                assert_ne!(
                    rows[pair[1].start - 1].image,
                    rows[pair[1].start].image,
                    "an image and its copies stay in one shard"
                );
            }
            let ideal = rows.len() as f64 / count as f64;
            for shard in &shards {
                assert!(!shard.is_empty());
                assert!(
                    (shard.len() as f64 - ideal).abs() <= 3.0,
                    "{count} shards: {shard:?} is {} rows, ideal {ideal}",
                    shard.len()
                );
            }
        }
        assert!(matches!(
            shard_rows(&rows, 41),
            Err(ShardError::TooManyShards { .. })
        ));
    }

    #[test]
    fn shard_spec_parses_and_refuses() {
        let fixed = |index, count| ShardRequest::Fixed(ShardSpec { index, count });
        assert_eq!("2/4".parse::<ShardRequest>().unwrap(), fixed(2, 4));
        assert_eq!(
            "auto".parse::<ShardRequest>().unwrap(),
            ShardRequest::Auto { count: None }
        );
        assert_eq!(
            "auto/8".parse::<ShardRequest>().unwrap(),
            ShardRequest::Auto { count: Some(8) }
        );
        for bad in ["2", "a/4", "2/0", "2/x", "", "auto/0"] {
            assert!(bad.parse::<ShardRequest>().is_err(), "{bad}");
        }
        assert!(matches!(
            fixed(4, 4).resolve(|_| None),
            Err(ShardError::OutOfRange { .. })
        ));
    }

    #[test]
    fn auto_reads_slurm_then_kubernetes_and_says_what_is_missing() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let auto = ShardRequest::Auto { count: None };
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        assert_eq!(
            auto.resolve(slurm).unwrap(),
            ShardSpec { index: 3, count: 4 }
        );
        // A resubmitted single task sees a count of 1: the explicit count wins.
        let resubmitted = env(&[
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "1"),
        ]);
        let err = auto.resolve(resubmitted).unwrap_err().to_string();
        assert!(err.contains(&format!("{} auto/N", Opt::Shard)), "{err}");
        assert_eq!(
            ShardRequest::Auto { count: Some(4) }
                .resolve(resubmitted)
                .unwrap(),
            ShardSpec { index: 3, count: 4 }
        );
        // --array=1-2: task 1 would make shard 1, task 2 fail, shard 0 never be made.
        let one_based = env(&[
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "2"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_MAX", "2"),
        ]);
        let err = auto.resolve(one_based).unwrap_err();
        assert!(
            matches!(
                err,
                ShardError::ArrayOutOfRange {
                    min: 1,
                    max: 2,
                    count: 2
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("--array=0-1"), "{err}");
        // Resubmitting task 2 of 4 (--array=2, SHARDS=4) is fine.
        let again = env(&[
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "1"),
            ("SLURM_ARRAY_TASK_MIN", "2"),
            ("SLURM_ARRAY_TASK_MAX", "2"),
        ]);
        assert_eq!(
            ShardRequest::Auto { count: Some(4) }
                .resolve(again)
                .unwrap(),
            ShardSpec { index: 2, count: 4 }
        );
        let k8s = env(&[("JOB_COMPLETION_INDEX", "1")]);
        assert!(matches!(auto.resolve(k8s), Err(ShardError::NoCount(_))));
        assert_eq!(
            ShardRequest::Auto { count: Some(2) }.resolve(k8s).unwrap(),
            ShardSpec { index: 1, count: 2 }
        );
        assert!(matches!(auto.resolve(|_| None), Err(ShardError::NoIndex)));
        let bad = env(&[("SLURM_ARRAY_TASK_ID", "x")]);
        assert!(matches!(
            auto.resolve(bad),
            Err(ShardError::BadVariable { .. })
        ));
    }

    #[test]
    fn shard_files_are_named_after_the_cache() {
        let spec = ShardSpec {
            index: 2,
            count: 16,
        };
        assert_eq!(
            shard_path(Path::new("out/features.h5"), spec),
            Path::new("out/features.shard-00002-of-00016.h5")
        );
    }
}
