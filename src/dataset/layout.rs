//! The two layouts a data set is read from: one sub-folder per class (any image data set) and
//! the Oxford 17 flowers archive; and a tree of images without classes (unlabeled).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::paths::{os_bytes, path_to_stored, stored_to_path};
use super::walk::{
    entry_kind, has_image_extension, list_images, path_kind, sorted_entries, EntryKind, Ignored,
    IgnoredKind,
};
use super::DatasetError;

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

/// The layout a data set was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// One sub-folder per class.
    FolderPerClass,
    /// The Oxford 17 flowers archive layout.
    Flowers17,
    /// Any folder tree of images without classes (`ExtractConfig::unlabeled`).
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

    /// Every image under `root`, at any depth, as one data set without classes
    /// (`ExtractConfig::unlabeled`): depth first in name order at each level, hidden entries left
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
