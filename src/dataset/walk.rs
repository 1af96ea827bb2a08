//! Walking folders: which entries are images (by extension), what is left out and why, the
//! sorted listing of one folder, and the lazy recursive walk of a tree of images.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::paths::{os_bytes, path_to_stored};
use super::DatasetError;

/// File extensions taken as images when listing a folder (compared case-insensitively).
const IMAGE_EXTENSIONS: [&str; 9] = [
    "jpg", "jpeg", "png", "bmp", "gif", "tif", "tiff", "webp", "ppm",
];

/// Why an entry found while listing was not taken as an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IgnoredKind {
    /// A file whose extension is not an image extension (`.txt`, `.csv`, no extension, ...).
    NotAnImage,
    /// A folder inside a class folder: classes are not nested, its images are not used.
    SubFolder,
    /// A symbolic link whose target does not exist.
    DanglingLink,
    /// Something that is neither a file nor a folder (FIFO, socket, device), or unreadable.
    Other,
    /// A file directly in the data root, outside every class folder.
    OutsideClasses,
    /// A symbolic link to a folder: not followed (a link loop could trap the listing).
    LinkedFolder,
}

impl fmt::Display for IgnoredKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IgnoredKind::NotAnImage => "not an image by its extension",
            IgnoredKind::SubFolder => "nested folder",
            IgnoredKind::DanglingLink => "dangling symbolic link",
            IgnoredKind::Other => "not a regular file",
            IgnoredKind::OutsideClasses => "file outside the class folders",
            IgnoredKind::LinkedFolder => "linked folder, not followed",
        })
    }
}

/// What the listing left out, counted by kind: "ignored 2 entries of the data folder: 1
/// dangling symbolic link, 1 not a regular file"; `None` when nothing was.
pub fn ignored_summary(ignored: &[Ignored]) -> Option<String> {
    if ignored.is_empty() {
        return None;
    }
    let mut counts = std::collections::BTreeMap::new();
    for entry in ignored {
        *counts.entry(entry.kind).or_insert(0usize) += 1;
    }
    let counts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    Some(format!(
        "ignored {} entr{} of the data folder: {}",
        ignored.len(),
        if ignored.len() == 1 { "y" } else { "ies" },
        counts.join(", ")
    ))
}

/// An entry of the data folder left out of the data set, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ignored {
    /// Path relative to the data root, in the form of [`path_to_stored`].
    pub path: String,
    /// Why it was left out.
    pub kind: IgnoredKind,
}

/// What a folder entry is, following symbolic links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EntryKind {
    File,
    Folder,
    DanglingLink,
    Other,
}

impl EntryKind {
    /// The reason an entry of this kind is not an image.
    pub(super) fn ignored_kind(self) -> IgnoredKind {
        match self {
            EntryKind::File => IgnoredKind::NotAnImage,
            EntryKind::Folder => IgnoredKind::SubFolder,
            EntryKind::DanglingLink => IgnoredKind::DanglingLink,
            EntryKind::Other => IgnoredKind::Other,
        }
    }
}

pub(super) fn entry_kind(entry: &std::fs::DirEntry) -> EntryKind {
    path_kind(&entry.path())
}

pub(super) fn path_kind(path: &Path) -> EntryKind {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => EntryKind::File,
        Ok(meta) if meta.is_dir() => EntryKind::Folder,
        Ok(_) => EntryKind::Other,
        Err(_) if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_symlink()) => {
            EntryKind::DanglingLink
        }
        Err(_) => EntryKind::Other,
    }
}

/// The entries of `root/relative` as paths relative to `root`, sorted by name and reversed
/// (the walk pops from the end), hidden ones left out.
pub(super) fn sorted_entries(root: &Path, relative: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let dir = root.join(relative);
    let unreadable = |source| DatasetError::Unreadable {
        path: dir.clone(),
        source,
    };
    let mut names: Vec<OsString> = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(unreadable)? {
        let name = entry.map_err(unreadable)?.file_name();
        if !os_bytes(&name).starts_with(b".") {
            names.push(name);
        }
    }
    names.sort();
    Ok(names.into_iter().rev().map(|n| relative.join(n)).collect())
}

/// Image files (by extension) directly in `dir`, as `prefix/name` stored paths; every other
/// entry goes to `ignored`.
pub(super) fn list_images(
    dir: &Path,
    prefix: &str,
    ignored: &mut Vec<Ignored>,
) -> std::io::Result<Vec<String>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let path = format!("{prefix}/{}", path_to_stored(Path::new(&name)));
        let is_image = has_image_extension(Path::new(&name));
        match entry_kind(&entry) {
            EntryKind::File if is_image => files.push(path),
            kind => ignored.push(Ignored {
                path,
                kind: kind.ignored_kind(),
            }),
        }
    }
    Ok(files)
}

/// Whether a file name has an image extension (compared case-insensitively).
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str()))
}

/// The image files (by extension) under a folder, recursively, depth first in name order at
/// each level; hidden entries (`.name`) are left out and linked folders are not followed (a
/// link loop cannot trap it). Entries named like images that are not regular files (a FIFO,
/// a dangling link) are listed too, so that reading them fails with a reason the caller
/// reports, rather than vanishing unseen. Lazy: its memory is the entries of the folders being walked,
/// not the whole tree. An unreadable folder is an `Err` item and the walk goes on.
pub struct ImageWalk {
    /// Entries still to visit, one list per folder being walked (deepest last), reversed.
    stack: Vec<Vec<PathBuf>>,
}

impl ImageWalk {
    /// A walk of `root` (a folder).
    pub fn new(root: &Path) -> ImageWalk {
        ImageWalk {
            stack: vec![vec![root.to_path_buf()]],
        }
    }

    /// The entries of `dir`, sorted, reversed (popped from the end), without hidden ones.
    fn entries(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
        sorted_entries(Path::new(""), dir)
    }
}

impl Iterator for ImageWalk {
    type Item = Result<PathBuf, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let top = self.stack.last_mut()?;
            let Some(path) = top.pop() else {
                self.stack.pop();
                continue;
            };
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                match Self::entries(&path) {
                    Ok(entries) => self.stack.push(entries),
                    Err(e) => return Some(Err(e)),
                }
            } else if has_image_extension(&path)
                && !std::fs::metadata(&path).is_ok_and(|m| m.is_dir())
            {
                // A FIFO or a dangling link named like an image is given too: reading it fails
                // with the reason, so the caller logs a skip instead of dropping it unseen.
                return Some(Ok(path));
            }
        }
    }
}
