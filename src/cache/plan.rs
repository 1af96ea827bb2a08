//! What a cache is made for: the identity of its features and the plan of its rows (image,
//! copy, label, parts), and the state of each row.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::columns::ReprColumns;
use super::merge;
use crate::backbone::{Pooling, Precision};
use crate::dataset::SplitSpec;
use crate::preprocess::Preprocessing;

/// The label of every row of a cache of unlabeled images (`ExtractConfig::unlabeled`).
pub const UNLABELED: i32 = -1;

/// Everything that decides what a row's features are; two runs may share a cache only if equal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// Backbone name from its descriptor.
    pub model_name: String,
    /// sha256 of the backbone ONNX file.
    pub model_sha256: String,
    /// Number format of the backbone (fp32 in caches made before it was recorded): int8 and
    /// fp32 features are never mixed in one cache.
    #[serde(default)]
    pub precision: Precision,
    /// Layers whose pooled outputs are concatenated (with `reprs`: the layers they read).
    pub layers: Vec<String>,
    /// Pooling applied to each layer (with `reprs`: the first representation's).
    pub pooling: Pooling,
    /// Image preprocessing.
    pub preprocessing: Preprocessing,
    /// Augmentation recipe (canonical text).
    pub augment: String,
    /// Augmented copies per augmented image.
    pub copies: u32,
    /// Seed of splits and augmentation.
    pub seed: u64,
    /// Split fractions.
    pub split: SplitSpec,
    /// Number of seeded splits stored (0 for unlabeled images).
    pub splits: usize,
    /// Length of a feature row.
    pub dims: usize,
    /// The part of a sharded plan this cache holds; absent (and not written) for a whole plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<merge::ShardId>,
    /// The representations side by side (`ExtractConfig::reprs`), in column order; empty when
    /// every layer has `pooling` (layers with one pooling), so those identities stay as they were.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reprs: Vec<ReprColumns>,
    /// The rows are unlabeled images (`ExtractConfig::unlabeled`): no class names, every label
    /// [`UNLABELED`], no splits. Absent (and not written) for labelled caches.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unlabeled: bool,
}

impl Identity {
    /// Augmented copies per augmented image the cache holds: `copies`, or 0 without a recipe
    /// (no augmentation records the copies asked for, but makes no copies).
    pub fn copies_held(&self) -> u32 {
        if self.augment == "none" {
            0
        } else {
            self.copies
        }
    }
}

/// One planned row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowPlan {
    /// Index of the source image in the data set.
    pub image: u32,
    /// Source image path relative to the data root.
    pub path: String,
    /// Class index ([`UNLABELED`] for unlabeled images).
    pub label: i32,
    /// 0 for the original, k for the k-th augmented copy.
    pub copy: u16,
    /// JSON of the augmentation parameters (empty for copy 0).
    pub augment: String,
    /// Part (0 train, 1 val, 2 test) of the source image in each split.
    pub parts: Vec<u8>,
}

/// The whole content a cache is created with, before any features exist.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What makes the features.
    pub identity: Identity,
    /// Class names, index = label (none for unlabeled images).
    pub class_names: Vec<String>,
    /// Every row, in order.
    pub rows: Vec<RowPlan>,
    /// The absolute path of the backbone file, recorded (attribute `backbone`, not part of the
    /// identity: the same file elsewhere makes the same features) so that a model trained on
    /// the cache can find it from any folder.
    pub backbone: Option<PathBuf>,
}

/// State of one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RowStatus {
    /// Not computed yet.
    Missing = 0,
    /// Features written.
    Done = 1,
    /// The source image could not be used; see its reason.
    Skipped = 2,
}

impl From<u8> for RowStatus {
    fn from(v: u8) -> Self {
        match v {
            1 => RowStatus::Done,
            2 => RowStatus::Skipped,
            _ => RowStatus::Missing,
        }
    }
}
