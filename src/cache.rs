//! The HDF5 feature cache: one row per image or augmented copy.
//!
//! Crash safety comes from the layout, not from luck: the file is created complete (every
//! dataset at its final size, space allocated early, all metadata written) under a temporary
//! name and renamed into place. Afterwards extraction only overwrites raw row data and then
//! the row's `status` byte, so HDF5's metadata never changes again and a killed process leaves
//! a file that opens, with at most the rows in flight marked as still missing.

mod check;
mod columns;
mod compare;
mod error;
pub mod export;
mod file;
mod fingerprint;
mod layout;
pub mod merge;
mod plan;
mod space;

pub use check::Contents;
pub use columns::{ColumnBlock, ReprColumns, SelectError};
pub use compare::IdentityCheck;
pub use error::CacheError;
pub use file::{check_path, FeatureCache};
pub use fingerprint::Fingerprint;
pub use layout::FORMAT_VERSION;
pub use plan::{Identity, Plan, RowPlan, RowStatus, UNLABELED};
pub use space::cache_bytes;

// For the merge, which lays out a new cache from its shards.
use layout::{create_filled, Reason};
