//! What can go wrong with a feature cache, and how HDF5's errors are told apart (a lock held
//! by another process, a full disk, a file that is not a cache).

use std::path::{Path, PathBuf};

use super::space;
use crate::options::Opt;

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
    #[error("cache {path} does not match this run ({what}); its rows are never mixed with another run's. Give {opt_cache} another file (tlearn auto: another {opt_out}), or delete this one to rebuild it", opt_cache = Opt::Cache, opt_out = Opt::Out)]
    Mismatch {
        /// The cache file.
        path: PathBuf,
        /// Which settings differ, old versus new.
        what: String,
    },
    /// The file is not a tlearn cache, or is damaged.
    #[error("{path} is not a readable tlearn feature cache ({}): check the {opt_cache} path, or make the cache with `tlearn features {opt_cache} FILE`", crate::output::with_cause(.reason, .source), opt_cache = Opt::Cache)]
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
    #[error("{path} is damaged: {problem}. Make the cache again with `tlearn features` (into a new {opt_cache}; this file is left as it is)", opt_cache = Opt::Cache)]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The cache holds unlabeled images: nothing to train a classifier on.
    #[error("{} holds features of unlabeled images (made with `tlearn features {opt_unlabeled}`): they have no classes to train on. Export them (`tlearn cache export {opt_npy}`) for other tools, or make a labelled cache from a folder with one sub-folder per class (`tlearn features {opt_data} DIR` without {opt_unlabeled})", .0.display(), opt_unlabeled = Opt::Unlabeled, opt_npy = Opt::Npy, opt_data = Opt::Data)]
    Unlabeled(PathBuf),
    /// There is no file at the path.
    #[error("no feature cache at {0}: make it with `tlearn features {opt_cache} {0}`", opt_cache = Opt::Cache)]
    Missing(PathBuf),
    /// Another process (another `tlearn features` run) has the file open for writing.
    #[error("cache {} is being written by another process (another `tlearn features` run?): wait for it to finish or stop it; `tlearn cache {}` shows its progress", path.display(), path.display())]
    Busy {
        /// The cache file.
        path: PathBuf,
    },
    /// The disk holding the file is full.
    #[error("the disk holding {} is full ({free} bytes free{}): free some space or choose another {opt_cache}", path.display(), needed.map(|n| format!(", the cache needs at least {n}")).unwrap_or_default(), opt_cache = Opt::Cache)]
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

/// The file at `path` is not a tlearn cache: `reason` says what is wrong, `source` why.
pub(super) fn not_a_cache(
    path: &Path,
    reason: String,
    source: Option<crate::output::Cause>,
) -> CacheError {
    CacheError::NotACache {
        path: path.to_path_buf(),
        reason,
        source,
    }
}

/// Whether HDF5 refused to open a file because another process holds its lock.
pub(super) fn is_lock_error(e: &hdf5::Error) -> bool {
    e.to_string().contains("unable to lock file")
}

/// An HDF5 error on `path`, said plainly when the disk is full.
pub(super) fn hdf5_error(path: &Path, source: hdf5::Error) -> CacheError {
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
