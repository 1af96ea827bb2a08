//! The HDF5 feature cache: one row per image or augmented copy.
//!
//! Crash safety comes from the layout, not from luck: the file is created complete (every
//! dataset at its final size, space allocated early, all metadata written) under a temporary
//! name and renamed into place. Afterwards extraction only overwrites raw row data and then
//! the row's `status` byte, so HDF5's metadata never changes again and a killed process leaves
//! a file that opens, with at most the rows in flight marked as still missing.

mod fingerprint;
mod space;

use std::path::{Path, PathBuf};

pub use fingerprint::Fingerprint;
pub use space::cache_bytes;

use hdf5::plist::dataset_create::{AllocTime, FillTime};
use hdf5::plist::file_access::FileCloseDegree;
use hdf5::types::{FixedAscii, VarLenUnicode};
use ndarray::{s, Array1, Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::backbone::{Pooling, Precision};

pub mod columns;

use crate::dataset::SplitSpec;
use crate::preprocess::Preprocessing;
pub use columns::{ColumnBlock, ReprColumns, SelectError};

mod check;
pub use check::Contents;
mod compare;
pub use compare::IdentityCheck;
pub mod export;
pub mod merge;

/// Version of the layout below; bump when it changes incompatibly.
pub const FORMAT_VERSION: u32 = 2;

/// The oldest layout still read (version 1 lacks only the `fingerprint` dataset, which reading
/// does not need); resuming needs [`FORMAT_VERSION`].
const OLDEST_READABLE_VERSION: u32 = 1;

/// The label of every row of a cache of unlabeled images (`tlearn features --unlabeled`).
pub const UNLABELED: i32 = -1;

/// Longest skip reason kept per row (fixed-length, so writing it never touches metadata).
const REASON_LEN: usize = 200;

/// Fixed-length skip reason as stored.
type Reason = FixedAscii<REASON_LEN>;

/// Errors of the feature cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// HDF5 reported an error.
    #[error("HDF5 error on {path}: {source}")]
    Hdf5 {
        /// The cache file.
        path: PathBuf,
        /// The underlying error.
        source: hdf5::Error,
    },
    /// The file exists but was made for another request; it is never mixed.
    #[error("cache {path} does not match this run ({what}); its rows are never mixed with another run's. Give --cache another file (tlearn auto: another --out), or delete this one to rebuild it")]
    Mismatch {
        /// The cache file.
        path: PathBuf,
        /// Which settings differ, old versus new.
        what: String,
    },
    /// The file is not a tlearn cache, or is damaged.
    #[error("{path} is not a readable tlearn feature cache ({}): check the --cache path, or make the cache with `tlearn features --cache FILE`", crate::output::with_cause(.reason, .source))]
    NotACache {
        /// The file.
        path: PathBuf,
        /// What is wrong (or which part could not be read).
        reason: String,
        /// The error that made it unreadable, if any.
        source: Option<crate::output::Cause>,
    },
    /// The file's datasets disagree with each other or with its identity (cut, widened,
    /// relabelled or edited by hand).
    #[error("{path} is damaged: {problem}. Make the cache again with `tlearn features` (into a new --cache; this file is left as it is)")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The cache holds unlabeled images: nothing to train a classifier on.
    #[error("{} holds features of unlabeled images (made with `tlearn features --unlabeled`): they have no classes to train on. Export them (`tlearn cache export --npy`) for other tools, or make a labelled cache from a folder with one sub-folder per class (`tlearn features --data DIR` without --unlabeled)", .0.display())]
    Unlabeled(PathBuf),
    /// There is no file at the path.
    #[error("no feature cache at {0}: make it with `tlearn features --cache {0}`")]
    Missing(PathBuf),
    /// Another process (another `tlearn features` run) has the file open for writing.
    #[error("cache {} is being written by another process (another `tlearn features` run?): wait for it to finish or stop it; `tlearn cache {}` shows its progress", path.display(), path.display())]
    Busy {
        /// The cache file.
        path: PathBuf,
    },
    /// The disk holding the file is full.
    #[error("the disk holding {} is full ({free} bytes free{}): free some space or choose another --cache", path.display(), needed.map(|n| format!(", the cache needs at least {n}")).unwrap_or_default())]
    DiskFull {
        /// The cache file.
        path: PathBuf,
        /// Bytes left on its disk.
        free: u64,
        /// Bytes the cache needs, when known.
        needed: Option<u64>,
    },
    /// The cache may not be written there (a link, a folder, a file tlearn did not make).
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
    /// Filesystem error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Everything that decides what a row's features are; two runs may share a cache only if equal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// Backbone name from its descriptor.
    pub model_name: String,
    /// sha256 of the backbone ONNX file.
    pub model_sha256: String,
    /// Number format of the backbone (fp32 in caches made before it was recorded): int8 and
    /// fp32 features are never mixed in one cache.
    #[serde(default)]
    pub precision: Precision,
    /// Layers whose pooled outputs are concatenated (with `reprs`: the layers they read).
    pub layers: Vec<String>,
    /// Pooling applied to each layer (with `reprs`: the first representation's).
    pub pooling: Pooling,
    /// Image preprocessing.
    pub preprocessing: Preprocessing,
    /// Augmentation recipe (canonical text).
    pub augment: String,
    /// Augmented copies per augmented image.
    pub copies: u32,
    /// Seed of splits and augmentation.
    pub seed: u64,
    /// Split fractions.
    pub split: SplitSpec,
    /// Number of seeded splits stored (0 for unlabeled images).
    pub splits: usize,
    /// Length of a feature row.
    pub dims: usize,
    /// The part of a sharded plan this cache holds; absent (and not written) for a whole plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<merge::ShardId>,
    /// The representations side by side (`--repr`), in column order; empty when every layer
    /// has `pooling` (`--layer/--pool`), so those identities stay as they were.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reprs: Vec<ReprColumns>,
    /// The rows are unlabeled images (`--unlabeled`): no class names, every label
    /// [`UNLABELED`], no splits. Absent (and not written) for labelled caches.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unlabeled: bool,
}

impl Identity {
    /// Augmented copies per augmented image the cache holds: `copies`, or 0 without a recipe
    /// (`--augment none` records the `--copies` asked for, but makes no copies).
    pub fn copies_held(&self) -> u32 {
        if self.augment == "none" {
            0
        } else {
            self.copies
        }
    }
}

/// One planned row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowPlan {
    /// Index of the source image in the data set.
    pub image: u32,
    /// Source image path relative to the data root.
    pub path: String,
    /// Class index ([`UNLABELED`] for unlabeled images).
    pub label: i32,
    /// 0 for the original, k for the k-th augmented copy.
    pub copy: u16,
    /// JSON of the augmentation parameters (empty for copy 0).
    pub augment: String,
    /// Part (0 train, 1 val, 2 test) of the source image in each split.
    pub parts: Vec<u8>,
}

/// The whole content a cache is created with, before any features exist.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What makes the features.
    pub identity: Identity,
    /// Class names, index = label (none for unlabeled images).
    pub class_names: Vec<String>,
    /// Every row, in order.
    pub rows: Vec<RowPlan>,
    /// The absolute path of the backbone file, recorded (attribute `backbone`, not part of the
    /// identity: the same file elsewhere makes the same features) so that a model trained on
    /// the cache can find it from any folder.
    pub backbone: Option<PathBuf>,
}

/// State of one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RowStatus {
    /// Not computed yet.
    Missing = 0,
    /// Features written.
    Done = 1,
    /// The source image could not be used; see its reason.
    Skipped = 2,
}

impl From<u8> for RowStatus {
    fn from(v: u8) -> Self {
        match v {
            1 => RowStatus::Done,
            2 => RowStatus::Skipped,
            _ => RowStatus::Missing,
        }
    }
}

/// An open feature cache.
pub struct FeatureCache {
    path: PathBuf,
    file: hdf5::File,
    /// What made the features.
    pub identity: Identity,
    /// Number of rows.
    pub rows: usize,
}

/// Refuses, before any work, a cache path tlearn may not write: a link, a folder, a path below
/// a file, or a file that is not a tlearn feature cache (tlearn's own caches resume).
pub fn check_path(path: &Path) -> Result<(), CacheError> {
    let target = crate::output::Target::new(path).flag("--cache");
    if !target.check_place()? {
        return Ok(());
    }
    match FeatureCache::open_unlocked(path) {
        Err(CacheError::NotACache { reason, .. }) => Err(crate::output::OutputError::Refused {
            path: path.to_path_buf(),
            why: format!("is not a tlearn feature cache ({})", if reason.is_empty() { "not HDF5" } else { &reason }),
            advice: "tlearn resumes only caches it made: give --cache a new file (tlearn auto: another --out), or move this one away".into(),
        }
        .into()),
        _ => Ok(()),
    }
}

impl FeatureCache {
    /// Opens the cache at `path` for writing `plan`, creating it if absent; refuses a cache made for another plan.
    pub fn create_or_resume(path: &Path, plan: &Plan) -> Result<FeatureCache, CacheError> {
        check_path(path)?;
        if !path.exists() {
            create(path, plan)?;
        }
        let cache = Self::open_with(path, true)?;
        cache.check_plan(plan)?;
        Ok(cache)
    }

    /// Opens an existing cache read-only.
    pub fn open(path: &Path) -> Result<FeatureCache, CacheError> {
        if !path.exists() {
            return Err(CacheError::Missing(path.to_path_buf()));
        }
        Self::open_with(path, false)
    }

    /// Opens a cache read-only without taking HDF5's file lock, to watch the progress of a
    /// cache another process is writing. Safe because a cache's metadata never changes
    /// after creation: only row data and status bytes are written.
    pub fn open_unlocked(path: &Path) -> Result<FeatureCache, CacheError> {
        Self::open_as(path, false, false)
    }

    fn open_with(path: &Path, write: bool) -> Result<FeatureCache, CacheError> {
        Self::open_as(path, write, true)
    }

    fn open_as(path: &Path, write: bool, lock: bool) -> Result<FeatureCache, CacheError> {
        let file = open_hdf5(path, write, lock)?;
        let format: u32 = string_attr(&file, path, "format_version")?
            .parse()
            .unwrap_or(0);
        check_format(path, format, write)?;
        let identity: Identity = serde_json::from_str(&string_attr(&file, path, "identity")?)
            .map_err(|e| not_a_cache(path, "identity".into(), Some(e.into())))?;
        let rows = file
            .dataset("status")
            .map_err(|e| not_a_cache(path, String::new(), Some(e.into())))?
            .size();
        Ok(FeatureCache {
            path: path.to_path_buf(),
            file,
            identity,
            rows,
        })
    }

    fn hdf5<T>(&self, r: hdf5::Result<T>) -> Result<T, CacheError> {
        r.map_err(|source| hdf5_error(&self.path, source))
    }

    /// Refuses (with the differing settings named) a cache whose identity or rows differ from `plan`.
    fn check_plan(&self, plan: &Plan) -> Result<(), CacheError> {
        let check = IdentityCheck::new("cache", "this run").all(&self.identity, &plan.identity);
        let mut diffs: Vec<String> = check.result().err().into_iter().collect();
        if diffs.is_empty() {
            let paths = self.paths()?;
            let copies = self.hdf5(self.file.dataset("copy").and_then(|d| d.read_raw::<u16>()))?;
            let same_rows = paths.len() == plan.rows.len()
                && plan
                    .rows
                    .iter()
                    .zip(paths.iter().zip(&copies))
                    .all(|(row, (path, copy))| row.path == *path && row.copy == *copy);
            if !same_rows {
                diffs.push(format!(
                    "another list of images ({} rows there, {} planned now{})",
                    paths.len(),
                    plan.rows.len(),
                    fingerprint::list_changes(&paths, &plan.rows)
                ));
            }
        }
        if diffs.is_empty() {
            Ok(())
        } else {
            Err(CacheError::Mismatch {
                path: self.path.clone(),
                what: diffs.join("; "),
            })
        }
    }

    /// The status of every row.
    pub fn status(&self) -> Result<Vec<RowStatus>, CacheError> {
        Ok(self
            .raw_status()?
            .into_iter()
            .map(RowStatus::from)
            .collect())
    }

    /// The status bytes as stored.
    fn raw_status(&self) -> Result<Vec<u8>, CacheError> {
        self.hdf5(self.file.dataset("status").and_then(|d| d.read_raw::<u8>()))
    }

    /// Writes the features of `rows` (one matrix row each) and only then marks them done.
    /// (Extraction records the rows' [`Fingerprint`]s first, with `write_fingerprints`.)
    pub fn write_rows(&self, rows: &[usize], features: ArrayView2<f32>) -> Result<(), CacheError> {
        let dataset = self.hdf5(self.file.dataset("features"))?;
        for (&row, values) in rows.iter().zip(features.outer_iter()) {
            self.hdf5(dataset.write_slice(values, s![row, ..]))?;
        }
        self.hdf5(self.file.flush())?;
        self.set_status(rows, RowStatus::Done)
    }

    /// Marks `rows` skipped with a reason (cut to the stored length).
    pub fn mark_skipped(&self, rows: &[usize], reason: &str) -> Result<(), CacheError> {
        let ascii: String = reason
            .chars()
            .map(|c| {
                if c.is_ascii() && !c.is_ascii_control() {
                    c
                } else {
                    '?'
                }
            })
            .take(REASON_LEN)
            .collect();
        let reason = Reason::from_ascii(ascii.as_bytes()).expect("ascii of bounded length");
        let dataset = self.hdf5(self.file.dataset("skip_reason"))?;
        for &row in rows {
            self.hdf5(dataset.write_slice(&Array1::from_elem(1, reason), s![row..row + 1]))?;
        }
        self.set_status(rows, RowStatus::Skipped)
    }

    fn set_status(&self, rows: &[usize], status: RowStatus) -> Result<(), CacheError> {
        let dataset = self.hdf5(self.file.dataset("status"))?;
        for &row in rows {
            self.hdf5(dataset.write_slice(&Array1::from_elem(1, status as u8), s![row..row + 1]))?;
        }
        self.hdf5(self.file.flush())
    }

    /// All feature rows (rows x dims); missing and skipped rows are zeros, check [`Self::status`].
    pub fn features(&self) -> Result<Array2<f32>, CacheError> {
        self.hdf5(
            self.file
                .dataset("features")
                .and_then(|d| d.read_2d::<f32>()),
        )
    }

    /// The absolute path of the backbone that made the features, when the cache records it
    /// (caches made before it was recorded do not).
    pub fn backbone(&self) -> Option<PathBuf> {
        let value: VarLenUnicode = self.file.attr("backbone").ok()?.read_scalar().ok()?;
        Some(PathBuf::from(value.as_str()))
    }

    /// Source image path of every row.
    pub fn paths(&self) -> Result<Vec<String>, CacheError> {
        self.strings("path")
    }

    /// Class names, index = label.
    pub fn class_names(&self) -> Result<Vec<String>, CacheError> {
        self.strings("class_names")
    }

    /// Class index of every row.
    pub fn labels(&self) -> Result<Vec<i32>, CacheError> {
        self.hdf5(self.file.dataset("label").and_then(|d| d.read_raw::<i32>()))
    }

    /// Augmented-copy index of every row (0 = original).
    pub fn copies(&self) -> Result<Vec<u16>, CacheError> {
        self.hdf5(self.file.dataset("copy").and_then(|d| d.read_raw::<u16>()))
    }

    /// Parts (rows x splits; 0 train, 1 val, 2 test).
    pub fn splits(&self) -> Result<Array2<u8>, CacheError> {
        self.hdf5(self.file.dataset("split").and_then(|d| d.read_2d::<u8>()))
    }

    /// Skip reasons of skipped rows, as (row, reason).
    pub fn skipped(&self) -> Result<Vec<(usize, String)>, CacheError> {
        let reasons = self.hdf5(
            self.file
                .dataset("skip_reason")
                .and_then(|d| d.read_raw::<Reason>()),
        )?;
        Ok(self
            .status()?
            .iter()
            .enumerate()
            .filter(|(_, s)| **s == RowStatus::Skipped)
            .map(|(i, _)| (i, reasons[i].as_str().to_string()))
            .collect())
    }

    fn strings(&self, name: &str) -> Result<Vec<String>, CacheError> {
        let raw = self.hdf5(
            self.file
                .dataset(name)
                .and_then(|d| d.read_raw::<VarLenUnicode>()),
        )?;
        Ok(raw.iter().map(|s| s.as_str().to_string()).collect())
    }
}

/// Opens the HDF5 file at `path` (read-write when `write`; without HDF5's file lock unless
/// `lock`); a file another process holds is [`CacheError::Busy`].
fn open_hdf5(path: &Path, write: bool, lock: bool) -> Result<hdf5::File, CacheError> {
    // A strong close degree: dropping the cache closes the file at once, not whenever the
    // last dataset handle goes, so a following open never meets a stale lock.
    // HDF5 opens without O_NONBLOCK: a FIFO at `path` would block it for ever.
    crate::input::open_regular(path).map_err(|source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut builder = hdf5::File::with_options();
    builder.with_fapl(|fapl| fapl.fclose_degree(FileCloseDegree::Strong));
    if !lock {
        builder.with_fapl(|fapl| fapl.file_locking(false));
    }
    let file = if write {
        builder.open_rw(path)
    } else {
        builder.open(path)
    };
    file.map_err(|e| {
        if is_lock_error(&e) {
            CacheError::Busy {
                path: path.to_path_buf(),
            }
        } else {
            not_a_cache(path, String::new(), Some(e.into()))
        }
    })
}

/// The string attribute `name` of the cache file at `path`.
fn string_attr(file: &hdf5::File, path: &Path, name: &str) -> Result<String, CacheError> {
    let value: VarLenUnicode = file
        .attr(name)
        .and_then(|a| a.read_scalar())
        .map_err(|e| not_a_cache(path, format!("attribute {name}"), Some(e.into())))?;
    Ok(value.as_str().to_string())
}

/// Refuses a layout this tlearn cannot read, and resuming (`write`) an older one, which
/// records no file fingerprints.
fn check_format(path: &Path, format: u32, write: bool) -> Result<(), CacheError> {
    if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&format) {
        return Err(not_a_cache(
            path,
            format!("layout version {format}, this tlearn reads {OLDEST_READABLE_VERSION} to {FORMAT_VERSION}"),
            None,
        ));
    }
    if write && format != FORMAT_VERSION {
        return Err(CacheError::Mismatch {
            path: path.to_path_buf(),
            what: format!("layout version {format}, which records no file fingerprints (this run: {FORMAT_VERSION}); it can still be read (train, report, finetune) but not resumed"),
        });
    }
    Ok(())
}

/// The file at `path` is not a tlearn cache: `reason` says what is wrong, `source` why.
fn not_a_cache(path: &Path, reason: String, source: Option<crate::output::Cause>) -> CacheError {
    CacheError::NotACache {
        path: path.to_path_buf(),
        reason,
        source,
    }
}

/// Whether HDF5 refused to open a file because another process holds its lock.
fn is_lock_error(e: &hdf5::Error) -> bool {
    e.to_string().contains("unable to lock file")
}

/// An HDF5 error on `path`, said plainly when the disk is full.
fn hdf5_error(path: &Path, source: hdf5::Error) -> CacheError {
    if space::is_full(path) {
        CacheError::DiskFull {
            path: path.to_path_buf(),
            free: space::available_bytes(path).unwrap_or(0),
            needed: None,
        }
    } else {
        CacheError::Hdf5 {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Writes every row's data into a newly laid out (temporary) cache file.
type FillRows<'a> = &'a mut dyn FnMut(&Path) -> Result<(), CacheError>;

/// Builds the complete file under a temporary name, then renames it into place; on failure
/// the temporary file is removed.
fn create(path: &Path, plan: &Plan) -> Result<(), CacheError> {
    create_filled(path, plan, None)
}

/// [`create`]; with `fill`, which writes every row's data into the temporary file before the
/// rename, the features are not zeroed first (they would be written twice).
fn create_filled(path: &Path, plan: &Plan, fill: Option<FillRows>) -> Result<(), CacheError> {
    let io = |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let needed = space::cache_bytes(plan.rows.len(), plan.identity.dims);
    if let Some(free) = space::available_bytes(path).filter(|free| *free < needed) {
        return Err(CacheError::DiskFull {
            path: path.to_path_buf(),
            free,
            needed: Some(needed),
        });
    }
    let partial = path.with_extension("h5.partial");
    // A partial file another process holds open is that process's creation, never removed.
    if let Err(e) = hdf5::File::open_rw(&partial) {
        if is_lock_error(&e) {
            return Err(CacheError::Busy {
                path: path.to_path_buf(),
            });
        }
    }
    let _ = std::fs::remove_file(&partial);
    let filled = write_layout(&partial, plan, fill.is_none())
        .map_err(|source| hdf5_error(path, source))
        .and_then(|()| fill.map_or(Ok(()), |fill| fill(&partial)));
    if let Err(error) = filled {
        // Judged (in hdf5_error) before the removal frees the space.
        let _ = std::fs::remove_file(&partial);
        return Err(error);
    }
    std::fs::rename(&partial, path).map_err(io)
}

/// HDF5 variable-length text; NULs (which HDF5 strings cannot hold) are dropped.
fn text(value: &str) -> VarLenUnicode {
    value.replace('\0', "").parse().expect("text without NUL")
}

fn write_layout(path: &Path, plan: &Plan, zero_features: bool) -> hdf5::Result<()> {
    let file = hdf5::File::create(path)?;
    create_features(&file, plan, zero_features)?;
    write_rows(&file, plan)?;
    write_identity_attrs(&file, plan)?;
    file.flush()?;
    file.close()
}

/// The `features` dataset, allocated whole (zeros when `zero_features`).
fn create_features(file: &hdf5::File, plan: &Plan, zero_features: bool) -> hdf5::Result<()> {
    let rows = plan.rows.len();
    let dims = plan.identity.dims;
    // About 512 KiB per chunk so a chunk fits HDF5's default 1 MiB chunk cache.
    let chunk_rows = (131_072 / dims.max(1)).clamp(1, rows.max(1));
    file.new_dataset::<f32>()
        .shape((rows, dims))
        .chunk((chunk_rows, dims))
        .alloc_time(Some(AllocTime::Early))
        .fill_time(if zero_features {
            FillTime::Alloc
        } else {
            FillTime::Never
        })
        .create("features")?;
    Ok(())
}

/// Every row's metadata (class names, paths, augmentation, label, image, copy, split parts),
/// and the per-row status, skip reason and fingerprint datasets, all "not done yet".
fn write_rows(file: &hdf5::File, plan: &Plan) -> hdf5::Result<()> {
    let rows = plan.rows.len();
    let strings = |values: Vec<VarLenUnicode>, name: &str| -> hdf5::Result<()> {
        file.new_dataset_builder()
            .with_data(&Array1::from(values))
            .create(name)?;
        Ok(())
    };
    strings(
        plan.class_names.iter().map(|s| text(s)).collect(),
        "class_names",
    )?;
    strings(plan.rows.iter().map(|r| text(&r.path)).collect(), "path")?;
    strings(
        plan.rows.iter().map(|r| text(&r.augment)).collect(),
        "augment",
    )?;
    file.new_dataset_builder()
        .with_data(&Array1::from_iter(plan.rows.iter().map(|r| r.label)))
        .create("label")?;
    file.new_dataset_builder()
        .with_data(&Array1::from_iter(plan.rows.iter().map(|r| r.image)))
        .create("image")?;
    file.new_dataset_builder()
        .with_data(&Array1::from_iter(plan.rows.iter().map(|r| r.copy)))
        .create("copy")?;
    let splits = plan.identity.splits;
    let parts = Array2::from_shape_fn((rows, splits), |(r, k)| plan.rows[r].parts[k]);
    file.new_dataset_builder()
        .with_data(&parts)
        .create("split")?;
    file.new_dataset_builder()
        .with_data(&Array1::<u8>::zeros(rows))
        .create("status")?;
    file.new_dataset_builder()
        .with_data(&Array1::from_elem(rows, Reason::new()))
        .create("skip_reason")?;
    fingerprint::create_dataset(file, rows)?;
    Ok(())
}

/// The identity and its parts as file attributes (the parts for h5py users).
fn write_identity_attrs(file: &hdf5::File, plan: &Plan) -> hdf5::Result<()> {
    let attr = |name: &str, value: String| -> hdf5::Result<()> {
        file.new_attr::<VarLenUnicode>()
            .create(name)?
            .write_scalar(&text(&value))
    };
    let identity = &plan.identity;
    attr("format_version", FORMAT_VERSION.to_string())?;
    attr(
        "identity",
        serde_json::to_string(identity).expect("identity serialises"),
    )?;
    attr("tlearn_version", env!("CARGO_PKG_VERSION").to_string())?;
    attr("model_sha256", identity.model_sha256.clone())?;
    attr("layers", identity.layers.join(","))?;
    attr(
        "pooling",
        serde_json::to_string(&identity.pooling).expect("serialises"),
    )?;
    attr(
        "preprocessing",
        serde_json::to_string(&identity.preprocessing).expect("serialises"),
    )?;
    attr("augment", identity.augment.clone())?;
    attr("seed", identity.seed.to_string())?;
    if let Some(backbone) = plan.backbone.as_ref().and_then(|b| b.to_str()) {
        attr("backbone", backbone.to_string())?;
    }
    // Which columns hold which layer:pooling, for h5py users (absent when not recorded).
    if let Some(columns) = identity.columns() {
        attr(
            "columns",
            serde_json::to_string(&columns).expect("serialises"),
        )?;
    }
    Ok(())
}
