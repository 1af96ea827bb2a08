//! Disk space: a cache is refused before it is created when its disk cannot hold it, and an
//! HDF5 failure on a full disk is reported as such (HDF5 itself says "unknown library error").

use std::path::Path;

/// Below this many free bytes, a failed write is taken to be caused by the full disk.
const NEARLY_FULL_BYTES: u64 = 1 << 20;

/// Bytes available to this user on the file system holding `path` (a file or a folder);
/// `None` where it cannot be asked.
pub(super) fn available_bytes(path: &Path) -> Option<u64> {
    let dir = if path.is_dir() {
        path
    } else {
        path.parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    };
    statvfs_available(dir)
}

#[cfg(unix)]
fn statvfs_available(dir: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(not(unix))]
fn statvfs_available(_dir: &Path) -> Option<u64> {
    None
}

/// Whether the disk holding `path` is (nearly) full: the likely cause of a failed write.
pub(super) fn is_full(path: &Path) -> bool {
    available_bytes(path).is_some_and(|free| free < NEARLY_FULL_BYTES)
}

/// The least a cache of `rows` x `dims` features takes on disk: its feature matrix.
pub fn cache_bytes(rows: usize, dims: usize) -> u64 {
    (rows as u64)
        .saturating_mul(dims as u64)
        .saturating_mul(std::mem::size_of::<f32>() as u64)
}
