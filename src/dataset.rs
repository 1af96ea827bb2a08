//! Listing a data set's images and classes, and seeded stratified splits.
//!
//! Two layouts are understood: one sub-folder per class (any image data set), and the
//! Oxford 17 flowers archive (`jpg/image_NNNN.jpg`, 80 images per class in file order).

mod error;
mod layout;
mod paths;
mod split;
#[cfg(test)]
mod tests;
mod walk;

pub use error::DatasetError;
pub use layout::{DataSet, Layout, Sample, FLOWERS17_CLASSES};
pub use paths::{path_to_stored, stored_to_path};
pub use split::{stratified_splits, Part, SplitSpec};
pub use walk::{has_image_extension, ignored_summary, Ignored, IgnoredKind, ImageWalk};
