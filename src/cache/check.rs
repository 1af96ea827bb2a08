//! The one structural check of a cache, used by every reader (classifiers, fine-tuning,
//! reports, predict): a file that was cut, widened, relabelled or edited by hand is refused
//! with what is wrong, before anything is trained or written.

use std::path::PathBuf;

use ndarray::Array2;

use super::{CacheError, FeatureCache, Identity, RowStatus, UNLABELED};
use crate::dataset::Part;

/// A cache read whole and checked: every dataset has one entry per row, the features are
/// `rows x identity.dims`, labels name a class, split codes and statuses are valid, copy
/// indices are within the identity's copies, and finished rows hold finite values. An
/// unlabeled cache has no class names, every label [`UNLABELED`] and no splits.
#[derive(Debug, Clone)]
pub struct Contents {
    /// The cache file.
    pub path: PathBuf,
    /// What made the features.
    pub identity: Identity,
    /// Class names, index = label.
    pub class_names: Vec<String>,
    /// Every row's features (rows that are not done hold zeros).
    pub features: Array2<f32>,
    /// State of every row.
    pub status: Vec<RowStatus>,
    /// Class index of every row; `None` for unlabeled images (use [`Contents::labels`]).
    pub labels: Option<Vec<usize>>,
    /// Augmented-copy index of every row (0 = the original image).
    pub copies: Vec<u16>,
    /// Source image of every row, relative to the data root.
    pub paths: Vec<String>,
    /// Part of every row's source image in each split (rows x splits).
    pub parts: Array2<Part>,
    /// The absolute path of the backbone, when recorded.
    pub backbone: Option<std::path::PathBuf>,
}

impl FeatureCache {
    /// Reads every dataset and checks that they agree with each other and with the identity.
    pub fn contents(&self) -> Result<Contents, CacheError> {
        let damaged = |problem: String| CacheError::Damaged {
            path: self.path.clone(),
            problem,
        };
        let rows = self.rows;
        let features = self.features()?;
        checked_shape(&features, rows, self.identity.dims).map_err(damaged)?;
        let class_names = self.class_names()?;
        let (labels, paths, copies) = (self.labels()?, self.paths()?, self.copies()?);
        let raw_status = self.raw_status()?;
        let lengths = [
            ("label", labels.len()),
            ("path", paths.len()),
            ("copy", copies.len()),
            ("status", raw_status.len()),
        ];
        checked_lengths(&lengths, rows).map_err(damaged)?;
        let labels = if self.identity.unlabeled {
            checked_unlabeled(&labels, class_names.len()).map_err(damaged)?;
            None
        } else {
            Some(checked_labels(&labels, class_names.len()).map_err(damaged)?)
        };
        let status = checked_status(&raw_status).map_err(damaged)?;
        let parts = checked_parts(&self.splits()?, rows, &self.identity).map_err(damaged)?;
        checked_copies(&copies, self.identity.copies).map_err(damaged)?;
        checked_finite(&features, &status, &paths).map_err(damaged)?;
        Ok(Contents {
            path: self.path.clone(),
            identity: self.identity.clone(),
            class_names,
            features,
            status,
            labels,
            copies,
            paths,
            parts,
            backbone: self.backbone(),
        })
    }
}

/// Features of `rows x dims`, as the identity says.
fn checked_shape(features: &Array2<f32>, rows: usize, dims: usize) -> Result<(), String> {
    if features.dim() != (rows, dims) {
        return Err(format!(
            "features are {} x {}, the identity says {rows} rows of {dims}",
            features.nrows(),
            features.ncols()
        ));
    }
    Ok(())
}

/// One entry per row in each named dataset.
fn checked_lengths(lengths: &[(&str, usize)], rows: usize) -> Result<(), String> {
    match lengths.iter().find(|(_, len)| *len != rows) {
        Some((name, len)) => Err(format!("{name} has {len} entries for {rows} rows")),
        None => Ok(()),
    }
}

/// Copy indices within the identity's `copies`.
fn checked_copies(copies: &[u16], most: u32) -> Result<(), String> {
    match copies.iter().position(|&c| u32::from(c) > most) {
        Some(row) => Err(format!(
            "row {row} is copy {} but the cache was made with {most} copies",
            copies[row]
        )),
        None => Ok(()),
    }
}

/// Finite values in every finished row (the others hold zeros).
fn checked_finite(
    features: &Array2<f32>,
    status: &[RowStatus],
    paths: &[String],
) -> Result<(), String> {
    let done = |row: usize| status[row] == RowStatus::Done;
    let bad = |row: usize| !features.row(row).iter().all(|v| v.is_finite());
    match (0..status.len()).find(|&row| done(row) && bad(row)) {
        Some(row) => Err(format!(
            "row {row} ({}) holds NaN or infinite values",
            paths[row]
        )),
        None => Ok(()),
    }
}

impl Contents {
    /// The class index of every row; refuses a cache of unlabeled images, which nothing can
    /// be trained on ([`CacheError::Unlabeled`]).
    pub fn labels(&self) -> Result<&[usize], CacheError> {
        self.labels
            .as_deref()
            .ok_or_else(|| CacheError::Unlabeled(self.path.clone()))
    }
}

/// An unlabeled cache's labels: no class names, every label [`UNLABELED`].
fn checked_unlabeled(labels: &[i32], classes: usize) -> Result<(), String> {
    if classes > 0 {
        return Err(format!(
            "it is marked unlabeled but holds {classes} class names"
        ));
    }
    match labels.iter().position(|&l| l != UNLABELED) {
        Some(row) => Err(format!(
            "it is marked unlabeled but row {row} has label {}",
            labels[row]
        )),
        None => Ok(()),
    }
}

/// Labels as class indices, each below `classes`.
fn checked_labels(labels: &[i32], classes: usize) -> Result<Vec<usize>, String> {
    labels
        .iter()
        .enumerate()
        .map(|(row, &label)| match usize::try_from(label) {
            Ok(l) if l < classes => Ok(l),
            _ => Err(format!(
                "row {row} has label {label}, outside the {classes} class names"
            )),
        })
        .collect()
}

/// Status bytes as [`RowStatus`], refusing codes tlearn never writes.
fn checked_status(raw: &[u8]) -> Result<Vec<RowStatus>, String> {
    raw.iter()
        .enumerate()
        .map(|(row, &code)| match code {
            0 => Ok(RowStatus::Missing),
            1 => Ok(RowStatus::Done),
            2 => Ok(RowStatus::Skipped),
            _ => Err(format!("row {row} has status code {code} (0, 1 or 2)")),
        })
        .collect()
}

/// Split codes as [`Part`]s: `rows x splits`, splits as the identity says (at least one, or
/// none for unlabeled images).
fn checked_parts(
    codes: &Array2<u8>,
    rows: usize,
    identity: &Identity,
) -> Result<Array2<Part>, String> {
    let splits = identity.splits;
    let (allowed, what) = if identity.unlabeled {
        (splits == 0, "none: unlabeled images")
    } else {
        (splits > 0, "at least one")
    };
    if !allowed || codes.dim() != (rows, splits) {
        return Err(format!(
            "split is {} x {}, the identity says {rows} rows x {splits} splits ({what})",
            codes.nrows(),
            codes.ncols()
        ));
    }
    if let Some(((row, split), code)) = codes.indexed_iter().find(|(_, c)| **c > 2) {
        return Err(format!(
            "row {row} has part code {code} in split {split} (0 train, 1 val, 2 test)"
        ));
    }
    Ok(codes.mapv(|c| match c {
        0 => Part::Train,
        1 => Part::Val,
        _ => Part::Test,
    }))
}
