//! An open feature cache: opened (locked, or not for reading beside a writer), checked
//! against the plan of a run, its rows written one batch at a time and read back.

use std::path::{Path, PathBuf};

use hdf5::plist::file_access::FileCloseDegree;
use hdf5::types::VarLenUnicode;
use ndarray::{s, Array1, Array2, ArrayView2};

use super::error::{hdf5_error, is_lock_error, not_a_cache};
use super::layout::{create, Reason, FORMAT_VERSION, OLDEST_READABLE_VERSION, REASON_LEN};
use super::{fingerprint, CacheError, Identity, IdentityCheck, Plan, RowStatus};
use crate::options::Opt;

/// An open feature cache.
pub struct FeatureCache {
    pub(super) path: PathBuf,
    pub(super) file: hdf5::File,
    /// What made the features.
    pub identity: Identity,
    /// Number of rows.
    pub rows: usize,
}

/// Refuses, before any work, a cache path tlearn may not write: a link, a folder, a path below
/// a file, or a file that is not a tlearn feature cache (tlearn's own caches resume).
pub fn check_path(path: &Path) -> Result<(), CacheError> {
    let target = crate::output::Target::new(path).option(Opt::Cache);
    if !target.check_place()? {
        return Ok(());
    }
    match FeatureCache::open_unlocked(path) {
        Err(CacheError::NotACache { reason, .. }) => Err(crate::output::OutputError::Refused {
            path: path.to_path_buf(),
            why: format!("is not a tlearn feature cache ({})", if reason.is_empty() { "not HDF5" } else { &reason }),
            advice: format!("tlearn resumes only caches it made: give {} a new file (tlearn auto: another {}), or move this one away", Opt::Cache, Opt::Out),
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

    pub(super) fn hdf5<T>(&self, r: hdf5::Result<T>) -> Result<T, CacheError> {
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
    pub(super) fn raw_status(&self) -> Result<Vec<u8>, CacheError> {
        self.hdf5(self.file.dataset("status").and_then(|d| d.read_raw::<u8>()))
    }

    /// Writes the features of `rows` (one matrix row each) and only then marks them done.
    /// (Extraction records the rows' [`Fingerprint`](super::Fingerprint)s first, with `write_fingerprints`.)
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

    pub(super) fn set_status(&self, rows: &[usize], status: RowStatus) -> Result<(), CacheError> {
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

    pub(super) fn strings(&self, name: &str) -> Result<Vec<String>, CacheError> {
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
