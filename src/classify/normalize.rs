//! Row normalisation of features before standardisation: L2, and signed square root followed
//! by L2 ("power" normalisation), each applied to every representation block of a row
//! (`layer:pooling`) separately.
//!
//! Per block, not over the whole row: a row can concatenate a 512-wide pooled layer with a
//! 25 088-wide flattened one, and one norm over both would be the large block's norm, leaving
//! the small block scaled by an unrelated number. Normalising each block alone gives every
//! representation the same unit length, as the literature's concatenated CNN descriptors do.
//! A cache whose per-layer widths are not recorded (several layers with one pooling) has
//! one block: the whole row.

use std::ops::Range;

use ndarray16::{ArrayViewMut1, ArrayViewMut2, Axis};
use serde::{Deserialize, Serialize};

use crate::cache::Identity;

/// Which normalisation a row's representation blocks get before standardisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Normalize {
    /// The features as extracted.
    #[default]
    None,
    /// Each block divided by its Euclidean norm.
    L2,
    /// Each value replaced by `sign(x) * sqrt(|x|)`, then each block divided by its norm.
    Power,
}

/// The smallest norm divided by: an all-zero block stays zero instead of becoming NaN (the
/// same floor is in the exported graph).
pub const NORM_FLOOR: f32 = 1e-12;

impl Normalize {
    /// The name used on the command line, in model.json and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Normalize::None => "none",
            Normalize::L2 => "l2",
            Normalize::Power => "power",
        }
    }

    /// True for [`Normalize::None`] (the features are used as extracted).
    pub fn is_none(&self) -> bool {
        *self == Normalize::None
    }

    /// The column ranges normalised separately: each representation of `identity`, or the
    /// whole row when their widths are not recorded.
    pub fn blocks(identity: &Identity) -> Vec<Range<usize>> {
        match identity.columns() {
            Some(blocks) => blocks.iter().map(|b| b.start..b.end).collect(),
            None => std::iter::once(0..identity.dims).collect(),
        }
    }

    /// Normalises every row of `features` in place, each of `blocks` on its own.
    pub fn apply(self, mut features: ArrayViewMut2<f32>, blocks: &[Range<usize>]) {
        if self.is_none() {
            return;
        }
        for mut row in features.axis_iter_mut(Axis(0)) {
            for block in blocks {
                let part = row.slice_mut(ndarray16::s![block.clone()]);
                self.apply_block(part);
            }
        }
    }

    /// One block of one row: the signed square root (power), then division by the norm.
    fn apply_block(self, mut block: ArrayViewMut1<f32>) {
        if self == Normalize::Power {
            block.mapv_inplace(|x| x.signum() * x.abs().sqrt());
        }
        // The sum in f64: a 25 088-wide block summed in f32 loses digits.
        let squares: f64 = block.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        let norm = (squares.sqrt() as f32).max(NORM_FLOOR);
        block.mapv_inplace(|x| x / norm);
    }
}

impl std::fmt::Display for Normalize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
