//! Merging the shards of one sharded plan into the cache a single machine would have written:
//! the same rows in the same order, the same feature bytes, labels, splits, skip reasons and
//! identity (without the shard fields).
//!
//! Everything is checked before anything is written: the shards are 0..N-1 of one plan, made by
//! this tlearn version, each given once, and complete. The merged file is then created like any
//! cache (complete layout under a temporary name), filled shard by shard in blocks of rows, so
//! memory stays bounded by one block whatever the size of the cache, and renamed into place.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hdf5::types::VarLenUnicode;
use ndarray::{s, Array1, Array2};
use serde::{Deserialize, Serialize};

use super::{
    create_filled, CacheError, FeatureCache, Identity, IdentityCheck, Plan, Reason, RowPlan,
    RowStatus,
};
use crate::options::Opt;

/// Feature bytes copied per block: bounds the merge's memory whatever the cache's size.
const BLOCK_BYTES: usize = 8 << 20;

/// Most row ranges named per incomplete shard in an error message.
const RANGES_SHOWN: usize = 10;

/// Which part of a sharded plan a cache holds (part of its identity).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardId {
    /// This shard's index, 0..count.
    pub index: usize,
    /// Number of shards the plan is cut into.
    pub count: usize,
    /// sha256 of the whole plan: every setting, the class names and every planned row.
    pub plan_sha256: String,
    /// Row of the whole plan where this shard's rows start.
    pub first_row: usize,
    /// Rows of the whole plan.
    pub plan_rows: usize,
}

/// Why shards cannot be merged; nothing is written in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// A shard could not be read, or the merged file could not be written.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// No input was given.
    #[error("no shard files given: tlearn cache merge {opt_out} ALL.h5 SHARD.h5...", opt_out = Opt::Out)]
    NoShards,
    /// The output is one of the inputs.
    #[error("{opt_out} {0} is one of the shards: choose another output path", opt_out = Opt::Out)]
    OutputIsInput(PathBuf),
    /// The output exists already; it is not overwritten.
    #[error("{opt_out} {0} exists already: it is left untouched; remove it or choose another path", opt_out = Opt::Out)]
    OutputExists(PathBuf),
    /// An input is a whole cache, not a shard.
    #[error("{0} is not a shard (it was not made with `tlearn features {opt_shard}`): only shards are merged", opt_shard = Opt::Shard)]
    NotAShard(PathBuf),
    /// Two inputs belong to different plans (settings, images or shard count).
    #[error("{other} belongs to another plan than {first} ({what}): merge the shards of one `tlearn features {opt_shard} I/N` run", opt_shard = Opt::Shard)]
    DifferentPlan {
        /// The first shard given.
        first: PathBuf,
        /// The shard that differs.
        other: PathBuf,
        /// What differs.
        what: String,
    },
    /// An input was made by another tlearn version.
    #[error(
        "{path} was made by tlearn {found}, this is {this}: extract and merge with one version"
    )]
    Version {
        /// The shard.
        path: PathBuf,
        /// The version that made it.
        found: String,
        /// This version.
        this: String,
    },
    /// The same shard index was given twice.
    #[error("shard {index} is given twice: {first} and {second}")]
    Duplicate {
        /// The index.
        index: usize,
        /// One file.
        first: PathBuf,
        /// The other.
        second: PathBuf,
    },
    /// Some shard indices were not given.
    #[error("missing shard(s) {} of 0..{count}: give every shard of the plan (files named *.shard-IIIII-of-NNNNN.h5)", list(.missing))]
    Missing {
        /// Number of shards of the plan.
        count: usize,
        /// The indices not given.
        missing: Vec<usize>,
    },
    /// A shard's rows do not line up with the plan (the file was altered).
    #[error("{path}: its rows do not line up with the plan ({reason}); extract that shard again")]
    Inconsistent {
        /// The shard.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Some shards have rows not computed yet.
    #[error("{} shard(s) incomplete, nothing written; rerun their tasks (`tlearn features ... {opt_shard} I/N` resumes them):\n{report}", .shards.len(), opt_shard = Opt::Shard)]
    Incomplete {
        /// Indices of the incomplete shards.
        shards: Vec<usize>,
        /// One line per incomplete shard: file, missing count, missing rows of the plan.
        report: String,
    },
}

/// What merging wrote.
#[derive(Debug, Clone, Serialize)]
pub struct MergeSummary {
    /// Shards merged.
    pub shards: usize,
    /// Rows of the merged cache.
    pub rows: usize,
    /// Rows skipped (their images could not be used).
    pub skipped: usize,
    /// Length of a feature row.
    pub dims: usize,
}

/// One input, as read for the checks; the file is closed again.
struct ShardFile {
    path: PathBuf,
    shard: ShardId,
    identity: Identity,
    version: String,
    rows: usize,
    planned: Vec<RowPlan>,
    missing: Vec<usize>,
    class_names: Vec<String>,
    backbone: Option<PathBuf>,
}

/// Merges the shard caches `inputs` (any order) into a new cache at `out`.
pub fn merge(inputs: &[PathBuf], out: &Path) -> Result<MergeSummary, MergeError> {
    if inputs.is_empty() {
        return Err(MergeError::NoShards);
    }
    check_output(inputs, out)?;
    let mut shards = inputs
        .iter()
        .map(|path| read_shard(path))
        .collect::<Result<Vec<_>, _>>()?;
    check_one_plan(&shards)?;
    shards.sort_by_key(|s| s.shard.index);
    check_indices(&shards)?;
    check_complete(&shards)?;

    let first = &shards[0];
    let mut identity = first.identity.clone();
    identity.shard = None;
    let plan = Plan {
        identity,
        class_names: first.class_names.clone(),
        backbone: first.backbone.clone(),
        rows: shards
            .iter_mut()
            .flat_map(|s| std::mem::take(&mut s.planned))
            .collect(),
    };
    create_filled(
        out,
        &plan,
        Some(&mut |partial: &Path| {
            copy_rows(&shards, partial).map_err(|source| CacheError::Hdf5 {
                path: partial.to_path_buf(),
                source,
            })
        }),
    )?;
    let merged = FeatureCache::open(out)?;
    Ok(MergeSummary {
        shards: shards.len(),
        rows: merged.rows,
        skipped: merged
            .status()?
            .iter()
            .filter(|s| **s == RowStatus::Skipped)
            .count(),
        dims: merged.identity.dims,
    })
}

/// Refuses an output that is an input or that exists already.
fn check_output(inputs: &[PathBuf], out: &Path) -> Result<(), MergeError> {
    let canonical = |p: &Path| -> Option<PathBuf> {
        let parent = p.parent().filter(|d| !d.as_os_str().is_empty());
        let dir = std::fs::canonicalize(parent.unwrap_or(Path::new("."))).ok()?;
        Some(dir.join(p.file_name()?))
    };
    let target = canonical(out);
    if target.is_some()
        && inputs
            .iter()
            .any(|i| i == out || canonical(i) == target || std::fs::canonicalize(i).ok() == target)
    {
        return Err(MergeError::OutputIsInput(out.to_path_buf()));
    }
    let place = crate::output::Target::new(out)
        .option(Opt::Out)
        .check_place();
    if place.map_err(CacheError::from)? {
        return Err(MergeError::OutputExists(out.to_path_buf()));
    }
    Ok(())
}

/// Reads one shard's identity, version, rows and missing rows.
fn read_shard(path: &Path) -> Result<ShardFile, MergeError> {
    let cache = FeatureCache::open(path)?;
    let shard = cache
        .identity
        .shard
        .clone()
        .ok_or_else(|| MergeError::NotAShard(path.to_path_buf()))?;
    let version = text_attr(&cache, "tlearn_version")?;
    let status = cache.status()?;
    let missing = (0..status.len())
        .filter(|&r| status[r] == RowStatus::Missing)
        .collect();
    let planned = planned_rows(&cache)?;
    Ok(ShardFile {
        path: path.to_path_buf(),
        identity: cache.identity.clone(),
        class_names: cache.class_names()?,
        backbone: cache.backbone(),
        shard,
        version,
        rows: planned.len(),
        planned,
        missing,
    })
}

/// The rows of a cache as they were planned (everything but features, status and skip reasons).
fn planned_rows(cache: &FeatureCache) -> Result<Vec<RowPlan>, CacheError> {
    let read = |name: &str| cache.hdf5(cache.file.dataset(name));
    let images = cache.hdf5(read("image")?.read_raw::<u32>())?;
    let augments = cache.strings("augment")?;
    let (paths, labels, copies, splits) = (
        cache.paths()?,
        cache.labels()?,
        cache.copies()?,
        cache.splits()?,
    );
    Ok((0..cache.rows)
        .map(|r| RowPlan {
            image: images[r],
            path: paths[r].clone(),
            label: labels[r],
            copy: copies[r],
            augment: augments[r].clone(),
            parts: splits.row(r).to_vec(),
        })
        .collect())
}

fn text_attr(cache: &FeatureCache, name: &str) -> Result<String, CacheError> {
    let value: VarLenUnicode = cache.hdf5(cache.file.attr(name).and_then(|a| a.read_scalar()))?;
    Ok(value.as_str().to_string())
}

/// All inputs share the first one's plan, shard count and this tlearn version.
fn check_one_plan(shards: &[ShardFile]) -> Result<(), MergeError> {
    let this = env!("CARGO_PKG_VERSION");
    let first = &shards[0];
    for s in shards {
        if s.version != this {
            return Err(MergeError::Version {
                path: s.path.clone(),
                found: s.version.clone(),
                this: this.to_string(),
            });
        }
        let what = if s.shard.count != first.shard.count {
            format!(
                "shard {} of {} vs shard {} of {}",
                s.shard.index, s.shard.count, first.shard.index, first.shard.count
            )
        } else if s.shard.plan_sha256 != first.shard.plan_sha256 {
            let (mut a, mut b) = (first.identity.clone(), s.identity.clone());
            (a.shard, b.shard) = (None, None);
            IdentityCheck::new(
                first.path.display().to_string(),
                s.path.display().to_string(),
            )
            .all(&a, &b)
            .result()
            .err()
            .unwrap_or_else(|| "another list of images or classes".to_string())
        } else {
            continue;
        };
        return Err(MergeError::DifferentPlan {
            first: first.path.clone(),
            other: s.path.clone(),
            what,
        });
    }
    Ok(())
}

/// Sorted shards are exactly 0..N-1, each once, and their rows tile the plan's rows in order.
fn check_indices(shards: &[ShardFile]) -> Result<(), MergeError> {
    let count = shards[0].shard.count;
    for pair in shards.windows(2) {
        if pair[0].shard.index == pair[1].shard.index {
            return Err(MergeError::Duplicate {
                index: pair[0].shard.index,
                first: pair[0].path.clone(),
                second: pair[1].path.clone(),
            });
        }
    }
    let given: Vec<usize> = shards.iter().map(|s| s.shard.index).collect();
    let missing: Vec<usize> = (0..count)
        .filter(|i| given.binary_search(i).is_err())
        .collect();
    if !missing.is_empty() {
        return Err(MergeError::Missing { count, missing });
    }
    if let Some(extra) = shards.iter().find(|s| s.shard.index >= count) {
        return Err(MergeError::Inconsistent {
            path: extra.path.clone(),
            reason: format!("index {} of {count}", extra.shard.index),
        });
    }
    let mut next = 0;
    for s in shards {
        if s.shard.first_row != next {
            return Err(MergeError::Inconsistent {
                path: s.path.clone(),
                reason: format!("starts at row {}, expected {next}", s.shard.first_row),
            });
        }
        next += s.rows;
    }
    if next != shards[0].shard.plan_rows {
        return Err(MergeError::Inconsistent {
            path: shards[shards.len() - 1].path.clone(),
            reason: format!(
                "the shards hold {next} rows, the plan {}",
                shards[0].shard.plan_rows
            ),
        });
    }
    Ok(())
}

/// Every row of every shard is done or skipped; else names the shards and the plan's missing rows.
fn check_complete(shards: &[ShardFile]) -> Result<(), MergeError> {
    let incomplete: Vec<&ShardFile> = shards.iter().filter(|s| !s.missing.is_empty()).collect();
    if incomplete.is_empty() {
        return Ok(());
    }
    let mut report = String::new();
    for s in &incomplete {
        let rows: Vec<usize> = s.missing.iter().map(|r| r + s.shard.first_row).collect();
        let _ = writeln!(
            report,
            "  shard {} ({}): {} of {} rows missing, plan rows {}",
            s.shard.index,
            s.path.display(),
            s.missing.len(),
            s.rows,
            ranges(&rows)
        );
    }
    Err(MergeError::Incomplete {
        shards: incomplete.iter().map(|s| s.shard.index).collect(),
        report: report.trim_end().to_string(),
    })
}

/// Copies features, fingerprints, status and skip reasons of every shard, block by block, into
/// `partial` (the status last, as extraction writes it).
fn copy_rows(shards: &[ShardFile], partial: &Path) -> hdf5::Result<()> {
    let file = hdf5::File::open_rw(partial)?;
    let features = file.dataset("features")?;
    let dims = features.shape()[1].max(1);
    // Blocks end on the merged file's chunk boundaries: no chunk is written in two halves
    // (except where one shard ends and the next begins).
    let chunk = features.chunk().map_or(1, |c| c[0].max(1));
    let block = (BLOCK_BYTES / (4 * dims) / chunk).max(1) * chunk;
    for s in shards {
        let input = hdf5::File::open(&s.path)?;
        let source = input.dataset("features")?;
        let (offset, rows) = (s.shard.first_row, s.rows);
        let mut start = offset;
        while start < offset + rows {
            let end = ((start / block + 1) * block).min(offset + rows);
            let values: Array2<f32> = source.read_slice_2d(s![start - offset..end - offset, ..])?;
            features.write_slice(&values, s![start..end, ..])?;
            start = end;
        }
        if rows > 0 {
            let status: Array1<u8> = input.dataset("status")?.read_1d()?;
            let reasons: Array1<Reason> = input.dataset("skip_reason")?.read_1d()?;
            let fingerprints: Array2<u64> =
                input.dataset(super::fingerprint::DATASET)?.read_2d()?;
            file.dataset(super::fingerprint::DATASET)?
                .write_slice(&fingerprints, s![offset..offset + rows, ..])?;
            file.dataset("skip_reason")?
                .write_slice(&reasons, s![offset..offset + rows])?;
            file.dataset("status")?
                .write_slice(&status, s![offset..offset + rows])?;
        }
        input.close()?;
    }
    file.flush()?;
    file.close()
}

/// "a-b, c, ..." for sorted row numbers, the first few ranges only.
fn ranges(rows: &[usize]) -> String {
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for &r in rows {
        match spans.last_mut() {
            Some((_, end)) if *end + 1 == r => *end = r,
            _ => spans.push((r, r)),
        }
    }
    let mut text: Vec<String> = spans
        .iter()
        .take(RANGES_SHOWN)
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    if spans.len() > RANGES_SHOWN {
        text.push(format!("... ({} ranges in all)", spans.len()));
    }
    text.join(", ")
}

fn list(indices: &[usize]) -> String {
    ranges(indices)
}

#[cfg(test)]
mod tests {
    use super::ranges;

    #[test]
    fn row_ranges_are_compact() {
        assert_eq!(ranges(&[1, 2, 3, 7, 9, 10]), "1-3, 7, 9-10");
        let many: Vec<usize> = (0..40).map(|i| i * 2).collect();
        assert!(ranges(&many).ends_with("... (40 ranges in all)"));
    }
}
