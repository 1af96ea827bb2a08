//! Listing a data set's images and classes, and seeded stratified splits.
//!
//! Two layouts are understood: one sub-folder per class (any image data set), and the
//! Oxford 17 flowers archive (`jpg/image_NNNN.jpg`, 80 images per class in file order).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Class names of the Oxford 17 flowers data set, in class-index order.
pub const FLOWERS17_CLASSES: [&str; 17] = [
    "Daffodil",
    "Snowdrop",
    "LilyValley",
    "Bluebell",
    "Crocus",
    "Iris",
    "Tigerlily",
    "Tulip",
    "Fritillary",
    "Sunflower",
    "Daisy",
    "ColtsFoot",
    "Dandelion",
    "Cowslip",
    "Buttercup",
    "Windflower",
    "Pansy",
];

/// Images per class in the Oxford 17 flowers data set.
const FLOWERS17_PER_CLASS: usize = 80;

/// File extensions taken as images when listing a folder (compared case-insensitively).
const IMAGE_EXTENSIONS: [&str; 9] = [
    "jpg", "jpeg", "png", "bmp", "gif", "tif", "tiff", "webp", "ppm",
];

/// Errors met while listing a data set or splitting it.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The data folder cannot be read.
    #[error("cannot read data folder {path}: {source}")]
    Unreadable {
        /// The folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// No class with at least one image was found.
    #[error("no images found in {0}: expected one sub-folder per class holding images, or the flowers layout (jpg/image_NNNN.jpg)")]
    Empty(PathBuf),
    /// No image anywhere under the folder (`--unlabeled`).
    #[error("no images found in {0} or its sub-folders (image files are recognised by their extension: jpg, jpeg, png, bmp, gif, tif, tiff, webp, ppm)")]
    NoImages(PathBuf),
    /// Every listed image failed to decode.
    #[error("none of the {skipped} image(s) listed in {} can be decoded (the first: {first}): give a folder of image files", path.display())]
    NoUsableImages {
        /// The data folder.
        path: PathBuf,
        /// Images listed and left out.
        skipped: usize,
        /// Why the first of them cannot be used.
        first: String,
    },
    /// Only one class: a classifier needs at least two.
    #[error(
        "only one class ({0}) found: a classifier needs at least two classes (one sub-folder each)"
    )]
    SingleClass(String),
    /// The split fractions are not usable.
    #[error("bad --split {0}: give three fractions train,val,test, each above 0, that sum to 1, e.g. 0.5,0.25,0.25")]
    BadSplit(String),
}

/// The layout a data set was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// One sub-folder per class.
    FolderPerClass,
    /// The Oxford 17 flowers archive layout.
    Flowers17,
    /// Any folder tree of images without classes (`tlearn features --unlabeled`).
    Unlabeled,
}

/// One image of the data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Path relative to the data set root, with `/` separators, in the lossless text form of
    /// [`path_to_stored`] (stable across machines; [`stored_to_path`] gives the file back).
    pub path: String,
    /// Class index into [`DataSet::class_names`] (0 in an unlabeled data set, which has none:
    /// see [`DataSet::is_labelled`]).
    pub label: usize,
}

/// A data set: its root, classes and images, in a deterministic order.
#[derive(Debug, Clone)]
pub struct DataSet {
    /// The folder the relative sample paths start from.
    pub root: PathBuf,
    /// How the folder was laid out.
    pub layout: Layout,
    /// Class names, index = label.
    pub class_names: Vec<String>,
    /// Images sorted by class, then path.
    pub samples: Vec<Sample>,
    /// Human-readable notes about what was left out (empty classes, unreadable sub-folders).
    pub warnings: Vec<String>,
    /// Entries of the data folder that are not images (in class folders or beside them), by path.
    pub ignored: Vec<Ignored>,
    /// Image files left out of `samples` because they cannot be used (unreadable, undecodable,
    /// beyond the decoding limits), with the reason: found by decoding each image before the
    /// splits are planned, so every count and split is over images that decode. Empty until
    /// `extract::leave_out_unusable` runs.
    pub unusable: Vec<(String, String)>,
}

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

/// The lossless text form of a relative path kept in caches and reports: components joined by
/// `/`; valid UTF-8 is kept as it is, except `%`, written `%25`; every byte that is not part of
/// valid UTF-8 (Linux file names are any bytes) is written `%XX` (two upper-case hex digits).
/// [`stored_to_path`] is its inverse.
pub fn path_to_stored(relative: &Path) -> String {
    let mut out = String::new();
    for (i, part) in relative.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        escape_component(part, &mut out);
    }
    out
}

/// The path a [`path_to_stored`] text stands for (relative; join it to the data root).
/// A `%` not followed by two hex digits is kept as it is.
pub fn stored_to_path(stored: &str) -> PathBuf {
    let bytes = stored.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    PathBuf::from(os_string_from_bytes(out))
}

/// Appends one path component in the stored form.
fn escape_component(part: &OsStr, out: &mut String) {
    for chunk in os_bytes(part).utf8_chunks() {
        out.push_str(&chunk.valid().replace('%', "%25"));
        for byte in chunk.invalid() {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

#[cfg(unix)]
fn os_bytes(s: &OsStr) -> std::borrow::Cow<'_, [u8]> {
    use std::os::unix::ffi::OsStrExt;
    std::borrow::Cow::Borrowed(s.as_bytes())
}

#[cfg(not(unix))]
fn os_bytes(s: &OsStr) -> std::borrow::Cow<'_, [u8]> {
    match s.to_string_lossy() {
        std::borrow::Cow::Borrowed(t) => std::borrow::Cow::Borrowed(t.as_bytes()),
        std::borrow::Cow::Owned(t) => std::borrow::Cow::Owned(t.into_bytes()),
    }
}

#[cfg(unix)]
fn os_string_from_bytes(bytes: Vec<u8>) -> OsString {
    use std::os::unix::ffi::OsStringExt;
    OsString::from_vec(bytes)
}

#[cfg(not(unix))]
fn os_string_from_bytes(bytes: Vec<u8>) -> OsString {
    OsString::from(String::from_utf8_lossy(&bytes).into_owned())
}

impl DataSet {
    /// Lists the data set at `root`, recognising the flowers layout and falling back to folder-per-class.
    pub fn open(root: &Path) -> Result<DataSet, DatasetError> {
        let unreadable = |source| DatasetError::Unreadable {
            path: root.to_path_buf(),
            source,
        };
        std::fs::read_dir(root).map_err(unreadable)?;
        let data = match flowers17_samples(root) {
            Some(samples) => DataSet {
                root: root.to_path_buf(),
                layout: Layout::Flowers17,
                class_names: FLOWERS17_CLASSES.iter().map(|s| s.to_string()).collect(),
                samples,
                warnings: Vec::new(),
                ignored: Vec::new(),
                unusable: Vec::new(),
            },
            None => folder_per_class(root)?,
        };
        if data.samples.is_empty() {
            return Err(DatasetError::Empty(root.to_path_buf()));
        }
        if data.class_names.len() == 1 {
            return Err(DatasetError::SingleClass(data.class_names[0].clone()));
        }
        Ok(data)
    }

    /// Every image under `root`, at any depth, as one data set without classes (`tlearn
    /// features --unlabeled`): depth first in name order at each level, hidden entries left
    /// out, linked folders not followed; what is not an image is listed in `ignored`.
    pub fn unlabeled(root: &Path) -> Result<DataSet, DatasetError> {
        let mut data = DataSet {
            root: root.to_path_buf(),
            layout: Layout::Unlabeled,
            class_names: Vec::new(),
            samples: Vec::new(),
            warnings: Vec::new(),
            ignored: Vec::new(),
            unusable: Vec::new(),
        };
        // Entries still to visit, one reversed list per folder being walked (deepest last).
        let mut stack = vec![sorted_entries(root, Path::new(""))?];
        while let Some(top) = stack.last_mut() {
            let Some(relative) = top.pop() else {
                stack.pop();
                continue;
            };
            let path = root.join(&relative);
            let stored = path_to_stored(&relative);
            let linked = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_symlink());
            match path_kind(&path) {
                EntryKind::Folder if linked => data.ignored.push(Ignored {
                    path: stored,
                    kind: IgnoredKind::LinkedFolder,
                }),
                EntryKind::Folder => match sorted_entries(root, &relative) {
                    Ok(entries) => stack.push(entries),
                    Err(e) => data
                        .warnings
                        .push(format!("folder {stored}/ left out: {e}")),
                },
                EntryKind::File if has_image_extension(&relative) => data.samples.push(Sample {
                    path: stored,
                    label: 0,
                }),
                kind => data.ignored.push(Ignored {
                    path: stored,
                    kind: kind.ignored_kind(),
                }),
            }
        }
        if data.samples.is_empty() {
            return Err(DatasetError::NoImages(root.to_path_buf()));
        }
        data.ignored.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(data)
    }

    /// Whether the images have classes (every layout but [`Layout::Unlabeled`]).
    pub fn is_labelled(&self) -> bool {
        self.layout != Layout::Unlabeled
    }

    /// Absolute (root-joined) path of a sample.
    pub fn full_path(&self, sample: &Sample) -> PathBuf {
        self.root.join(stored_to_path(&sample.path))
    }

    /// Labels of all samples, in order.
    pub fn labels(&self) -> Vec<usize> {
        self.samples.iter().map(|s| s.label).collect()
    }
}

/// The flowers layout: `jpg/image_NNNN.jpg`, class = (NNNN - 1) / 80. `None` when absent.
fn flowers17_samples(root: &Path) -> Option<Vec<Sample>> {
    let jpg = root.join("jpg");
    let mut samples = Vec::new();
    for entry in std::fs::read_dir(&jpg).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(number) = name
            .strip_prefix("image_")
            .and_then(|n| n.strip_suffix(".jpg"))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        let label = number.checked_sub(1)? / FLOWERS17_PER_CLASS;
        if label < FLOWERS17_CLASSES.len() {
            samples.push(Sample {
                path: format!("jpg/{name}"),
                label,
            });
        }
    }
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(|a, b| (a.label, &a.path).cmp(&(b.label, &b.path)));
    Some(samples)
}

/// Folder-per-class: every sub-folder with at least one image file is a class, named after the
/// folder (in the form of [`path_to_stored`]).
fn folder_per_class(root: &Path) -> Result<DataSet, DatasetError> {
    let mut warnings = Vec::new();
    let mut ignored = Vec::new();
    let mut class_dirs: Vec<OsString> = Vec::new();
    let entries = std::fs::read_dir(root).map_err(|source| DatasetError::Unreadable {
        path: root.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if os_bytes(&name).starts_with(b".") {
            continue;
        }
        match entry_kind(&entry) {
            EntryKind::Folder => class_dirs.push(name),
            kind => ignored.push(Ignored {
                path: path_to_stored(Path::new(&name)),
                kind: match kind {
                    EntryKind::File => IgnoredKind::OutsideClasses,
                    other => other.ignored_kind(),
                },
            }),
        }
    }
    class_dirs.sort();
    let mut class_names = Vec::new();
    let mut samples = Vec::new();
    for class in class_dirs {
        let dir = root.join(&class);
        let class = path_to_stored(Path::new(&class));
        let mut files = match list_images(&dir, &class, &mut ignored) {
            Ok(files) => files,
            Err(e) => {
                warnings.push(format!(
                    "class folder {}: unreadable ({e}); left out",
                    dir.display()
                ));
                continue;
            }
        };
        if files.is_empty() {
            warnings.push(format!("class folder {class}/ holds no images; left out"));
            continue;
        }
        files.sort();
        let label = class_names.len();
        class_names.push(class);
        samples.extend(files.into_iter().map(|path| Sample { path, label }));
    }
    ignored.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(DataSet {
        root: root.to_path_buf(),
        layout: Layout::FolderPerClass,
        class_names,
        samples,
        warnings,
        ignored,
        unusable: Vec::new(),
    })
}

/// What a folder entry is, following symbolic links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryKind {
    File,
    Folder,
    DanglingLink,
    Other,
}

impl EntryKind {
    /// The reason an entry of this kind is not an image.
    fn ignored_kind(self) -> IgnoredKind {
        match self {
            EntryKind::File => IgnoredKind::NotAnImage,
            EntryKind::Folder => IgnoredKind::SubFolder,
            EntryKind::DanglingLink => IgnoredKind::DanglingLink,
            EntryKind::Other => IgnoredKind::Other,
        }
    }
}

fn entry_kind(entry: &std::fs::DirEntry) -> EntryKind {
    path_kind(&entry.path())
}

fn path_kind(path: &Path) -> EntryKind {
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
fn sorted_entries(root: &Path, relative: &Path) -> Result<Vec<PathBuf>, DatasetError> {
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
fn list_images(
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

/// Which part of a split an image belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum Part {
    /// Used to fit classifiers.
    Train = 0,
    /// Used to choose hyper-parameters.
    Val = 1,
    /// Held out for the final report.
    Test = 2,
}

/// Fractions of each class that go to train / validation / test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitSpec {
    /// Fraction of each class used for training.
    pub train: f64,
    /// Fraction of each class used for validation.
    pub val: f64,
    /// Fraction of each class held out for testing (the rest).
    pub test: f64,
}

impl Default for SplitSpec {
    /// The flowers protocol: 40 / 20 / 20 of 80 images per class.
    fn default() -> Self {
        SplitSpec {
            train: 0.5,
            val: 0.25,
            test: 0.25,
        }
    }
}

impl std::str::FromStr for SplitSpec {
    type Err = DatasetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<f64> = s
            .split(',')
            .map(|p| p.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| DatasetError::BadSplit(s.to_string()))?;
        let [train, val, test] = parts[..] else {
            return Err(DatasetError::BadSplit(s.to_string()));
        };
        let spec = SplitSpec { train, val, test };
        spec.check()?;
        Ok(spec)
    }
}

impl SplitSpec {
    /// Refuses fractions that are not each above 0 (every part needs images: training fits,
    /// validation chooses C, test scores) or that do not sum to 1.
    pub fn check(&self) -> Result<(), DatasetError> {
        let parts = [self.train, self.val, self.test];
        let ok = parts.iter().all(|f| *f > 0.0 && *f < 1.0)
            && (parts.iter().sum::<f64>() - 1.0).abs() < 1e-6;
        if ok {
            Ok(())
        } else {
            Err(DatasetError::BadSplit(self.to_string()))
        }
    }
}

impl fmt::Display for SplitSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{},{}", self.train, self.val, self.test)
    }
}

/// `count` seeded stratified splits: element `[k][i]` is the part of sample `i` in split `k`.
///
/// Within each class the images are shuffled (seed, split index) and cut into
/// round(n * train) training and round(n * val) validation images, the rest for testing.
pub fn stratified_splits(
    labels: &[usize],
    spec: SplitSpec,
    count: usize,
    seed: u64,
) -> Vec<Vec<Part>> {
    let classes = labels.iter().copied().max().map_or(0, |m| m + 1);
    (0..count)
        .map(|k| {
            let mut rng =
                ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(k as u64));
            let mut parts = vec![Part::Test; labels.len()];
            for class in 0..classes {
                let mut members: Vec<usize> =
                    (0..labels.len()).filter(|&i| labels[i] == class).collect();
                members.shuffle(&mut rng);
                let n = members.len() as f64;
                let n_train =
                    ((n * spec.train).round() as usize).clamp(1.min(members.len()), members.len());
                let n_val = ((n * spec.val).round() as usize).min(members.len() - n_train);
                for (j, &i) in members.iter().enumerate() {
                    parts[i] = if j < n_train {
                        Part::Train
                    } else if j < n_train + n_val {
                        Part::Val
                    } else {
                        Part::Test
                    };
                }
            }
            parts
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Images at several depths, a text file, and an image in a hidden folder.
    const MIXED: [&str; 5] = [
        "b.jpg",
        "a/z.PNG",
        "a/notes.txt",
        "a/deeper/c.webp",
        ".hidden/x.jpg",
    ];

    /// What a listing left out, as (path, kind).
    fn ignored(data: &DataSet) -> Vec<(&str, IgnoredKind)> {
        data.ignored
            .iter()
            .map(|i| (i.path.as_str(), i.kind))
            .collect()
    }

    /// Writes a one-byte file at each of `files` (relative to `root`), making the folders.
    fn tree(root: &Path, files: &[&str]) {
        for file in files {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"x").unwrap();
        }
    }

    #[test]
    fn image_walk_is_recursive_sorted_and_skips_non_images_hidden_and_linked_folders() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        tree(root, &MIXED);
        tree(root, &["c.jpg"]);
        // A link back to the root: followed, it would loop for ever.
        #[cfg(unix)]
        std::os::unix::fs::symlink(root, root.join("a/loop")).unwrap();
        // Named like images but not files: listed, so the reader can say why it skips them.
        std::os::unix::fs::symlink(root.join("gone.jpg"), root.join("a/dangling.jpg")).unwrap();
        let found: Vec<PathBuf> = ImageWalk::new(root)
            .map(|p| p.unwrap().strip_prefix(root).unwrap().to_path_buf())
            .collect();
        let expected: Vec<PathBuf> = [
            "a/dangling.jpg",
            "a/deeper/c.webp",
            "a/z.PNG",
            "b.jpg",
            "c.jpg",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(found, expected);
        let missing: Vec<_> = ImageWalk::new(&root.join("absent")).collect();
        assert!(missing.is_empty(), "a path that is not there lists nothing");
    }

    #[cfg(unix)]
    #[test]
    fn an_unlabeled_tree_lists_images_at_every_depth_and_what_it_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        tree(root, &MIXED);
        std::os::unix::fs::symlink(root, root.join("a/loop")).unwrap();
        std::os::unix::fs::symlink(root.join("gone.jpg"), root.join("dangling.jpg")).unwrap();
        let data = DataSet::unlabeled(root).unwrap();
        assert!(!data.is_labelled() && data.class_names.is_empty());
        let paths: Vec<&str> = data.samples.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(
            paths,
            ["a/deeper/c.webp", "a/z.PNG", "b.jpg"],
            "as ImageWalk lists them"
        );
        assert_eq!(
            ignored(&data),
            [
                ("a/loop", IgnoredKind::LinkedFolder),
                ("a/notes.txt", IgnoredKind::NotAnImage),
                ("dangling.jpg", IgnoredKind::DanglingLink),
            ]
        );
        let empty = tempfile::tempdir().unwrap();
        std::fs::write(empty.path().join("notes.txt"), b"x").unwrap();
        assert!(matches!(
            DataSet::unlabeled(empty.path()),
            Err(DatasetError::NoImages(_))
        ));
    }

    #[test]
    fn flowers_sized_split_is_40_20_20_and_seeded() {
        let labels: Vec<usize> = (0..17 * 80).map(|i| i / 80).collect();
        let splits = stratified_splits(&labels, SplitSpec::default(), 3, 7);
        for split in &splits {
            for class in 0..17 {
                let count = |p| {
                    (0..labels.len())
                        .filter(|&i| labels[i] == class && split[i] == p)
                        .count()
                };
                assert_eq!(
                    (count(Part::Train), count(Part::Val), count(Part::Test)),
                    (40, 20, 20)
                );
            }
        }
        assert_ne!(splits[0], splits[1], "the three splits differ");
        assert_eq!(
            splits,
            stratified_splits(&labels, SplitSpec::default(), 3, 7)
        );
        assert_ne!(
            splits,
            stratified_splits(&labels, SplitSpec::default(), 3, 8)
        );
    }

    #[test]
    fn split_spec_parses_and_refuses() {
        let spec: SplitSpec = "0.6,0.2,0.2".parse().unwrap();
        assert_eq!(spec.train, 0.6);
        assert_eq!(spec.to_string().parse::<SplitSpec>().unwrap(), spec);
        for bad in [
            "0.5,0.5",
            "0.5,0.4,0.4",
            "a,b,c",
            "0,0.5,0.5",
            "-0.5,1,0.5",
            "1,0,0",
            "0,0,1",
            "0.5,0.5,0",
            "NaN,0.5,0.5",
        ] {
            assert!(bad.parse::<SplitSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn tiny_classes_keep_a_training_image() {
        let labels = vec![0, 1, 1];
        let split = &stratified_splits(&labels, SplitSpec::default(), 1, 1)[0];
        assert_eq!(split[0], Part::Train);
        assert_eq!(split.iter().filter(|p| **p == Part::Train).count(), 2);
    }

    #[cfg(unix)]
    fn os(bytes: &[u8]) -> OsString {
        os_string_from_bytes(bytes.to_vec())
    }

    #[cfg(unix)]
    #[test]
    fn stored_paths_are_lossless_and_keep_utf8_as_it_is() {
        assert_eq!(
            path_to_stored(Path::new("cats/été 1.jpg")),
            "cats/été 1.jpg"
        );
        let tricky = [
            &b"caf\xe9/img.jpg"[..],
            b"a%25b/100%.png",
            b"\xff\xfe%41/\x80x.jpg",
            b"plain/ok.jpg",
        ];
        let mut seen = std::collections::HashSet::new();
        for bytes in tricky {
            let path = PathBuf::from(os(bytes));
            let stored = path_to_stored(&path);
            assert_eq!(stored_to_path(&stored), path, "{stored}");
            assert!(seen.insert(stored), "distinct paths, distinct texts");
        }
        assert_eq!(path_to_stored(Path::new(&os(b"caf\xe9"))), "caf%E9");
        assert_eq!(path_to_stored(Path::new("100%")), "100%25");
    }

    #[cfg(unix)]
    #[test]
    fn listing_keeps_non_utf8_names_and_lists_what_it_ignores() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let odd_class = root.join(os(b"caf\xe9"));
        let plain = root.join("plain");
        std::fs::create_dir_all(&odd_class).unwrap();
        std::fs::create_dir_all(plain.join("nested")).unwrap();
        std::fs::write(odd_class.join(os(b"\xff.jpg")), b"x").unwrap();
        std::fs::write(plain.join("a.png"), b"x").unwrap();
        std::fs::write(plain.join("notes.txt"), b"x").unwrap();
        std::os::unix::fs::symlink(root.join("gone.jpg"), plain.join("dangling.jpg")).unwrap();
        std::fs::write(root.join("README"), b"x").unwrap();
        let data = DataSet::open(root).unwrap();
        assert_eq!(data.class_names, ["caf%E9", "plain"]);
        let paths: Vec<&str> = data.samples.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(paths, ["caf%E9/%FF.jpg", "plain/a.png"]);
        assert!(data.full_path(&data.samples[0]).is_file());
        assert_eq!(
            ignored(&data),
            [
                ("README", IgnoredKind::OutsideClasses),
                ("plain/dangling.jpg", IgnoredKind::DanglingLink),
                ("plain/nested", IgnoredKind::SubFolder),
                ("plain/notes.txt", IgnoredKind::NotAnImage),
            ]
        );
    }
}
