//! What can go wrong listing a data set or splitting it.

use crate::options::Opt;
use std::path::PathBuf;

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
    /// No image anywhere under the folder (unlabeled images).
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
    #[error("bad {opt_split} {0}: give three fractions train,val,test, each above 0, that sum to 1, e.g. 0.5,0.25,0.25", opt_split = Opt::SplitFractions)]
    BadSplit(String),
}
