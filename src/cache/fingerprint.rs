//! Per-image fingerprints: the size and xxh3-64 hash of the bytes each row was computed from,
//! so a resumed run can tell which cached images changed on disk since and recompute them.

use std::path::Path;

use ndarray::{s, Array1, Array2};

use super::{CacheError, FeatureCache, RowPlan, RowStatus};
use crate::preprocess::{read_image_file, DecodeLimits};

/// Size and content hash of the file a row was computed from (or found unusable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    /// File size in bytes; `u64::MAX` when the file could not be read.
    pub size: u64,
    /// xxh3-64 of the file's bytes.
    pub hash: u64,
}

impl Fingerprint {
    /// The fingerprint of a file that could not be read (missing, unreadable, too large).
    pub const UNREAD: Fingerprint = Fingerprint {
        size: u64::MAX,
        hash: 0,
    };

    /// The fingerprint of a file's bytes.
    pub fn of(bytes: &[u8]) -> Fingerprint {
        Fingerprint {
            size: bytes.len() as u64,
            hash: xxhash_rust::xxh3::xxh3_64(bytes),
        }
    }

    /// Reads `path` as extraction does (bounded by `limits`) and fingerprints it.
    pub fn of_file(path: &Path, limits: &DecodeLimits) -> Fingerprint {
        read_image_file(path, limits).map_or(Fingerprint::UNREAD, |b| Fingerprint::of(&b))
    }
}

/// Name of the dataset: rows x 2 u64, (size, hash); zeros for rows not computed yet.
pub(super) const DATASET: &str = "fingerprint";

/// Creates the (zeroed) fingerprint dataset while the layout is written.
pub(super) fn create_dataset(file: &hdf5::File, rows: usize) -> hdf5::Result<()> {
    file.new_dataset_builder()
        .with_data(&Array2::<u64>::zeros((rows, 2)))
        .create(DATASET)?;
    Ok(())
}

impl FeatureCache {
    /// The fingerprint recorded for every row (meaningful for done and skipped rows).
    pub fn fingerprints(&self) -> Result<Vec<Fingerprint>, CacheError> {
        let raw = self.hdf5(self.file.dataset(DATASET).and_then(|d| d.read_2d::<u64>()))?;
        Ok(raw
            .outer_iter()
            .map(|r| Fingerprint {
                size: r[0],
                hash: r[1],
            })
            .collect())
    }

    /// The fingerprint each image's rows were computed from, by image path: images with a done
    /// row only (a fingerprint is recorded when a row is computed).
    pub fn image_fingerprints(
        &self,
    ) -> Result<std::collections::HashMap<String, Fingerprint>, CacheError> {
        let status = self.status()?;
        Ok(self
            .paths()?
            .into_iter()
            .zip(self.fingerprints()?)
            .zip(status)
            .filter(|(_, s)| *s == RowStatus::Done)
            .map(|(row, _)| row)
            .collect())
    }

    /// Records the fingerprints of the files `rows` are computed from, and flushes: called
    /// before [`FeatureCache::write_rows`] or [`FeatureCache::mark_skipped`] sets their status.
    pub fn write_fingerprints(
        &self,
        rows: &[usize],
        fingerprints: &[Fingerprint],
    ) -> Result<(), CacheError> {
        let dataset = self.hdf5(self.file.dataset(DATASET))?;
        for (&row, f) in rows.iter().zip(fingerprints) {
            self.hdf5(dataset.write_slice(&Array1::from(vec![f.size, f.hash]), s![row, ..]))?;
        }
        self.hdf5(self.file.flush())
    }

    /// Marks every row of the images whose file changed since their rows were computed as
    /// missing again, so this run recomputes them (all copies). Returns those images' paths.
    ///
    /// Each image with a done or skipped row is read and hashed once: for the flowers
    /// (60 MB) that is a fraction of a second.
    pub fn forget_changed_images(
        &self,
        rows: &[RowPlan],
        root: &Path,
        limits: &DecodeLimits,
    ) -> Result<Vec<String>, CacheError> {
        use rayon::prelude::*;
        let status = self.status()?;
        let recorded = self.fingerprints()?;
        // The first computed row of each image holds the fingerprint of what it was made from.
        let mut first_row = std::collections::BTreeMap::new();
        for (row, plan) in rows.iter().enumerate() {
            if status[row] != RowStatus::Missing {
                first_row.entry(plan.image).or_insert(row);
            }
        }
        let first_row: Vec<(u32, usize)> = first_row.into_iter().collect();
        let changed: Vec<(u32, usize)> = first_row
            .into_par_iter()
            .filter(|(_, row)| {
                let path = root.join(crate::dataset::stored_to_path(&rows[*row].path));
                Fingerprint::of_file(&path, limits) != recorded[*row]
            })
            .collect();
        let images: std::collections::HashSet<u32> = changed.iter().map(|(i, _)| *i).collect();
        let stale: Vec<usize> = (0..rows.len())
            .filter(|&r| status[r] != RowStatus::Missing && images.contains(&rows[r].image))
            .collect();
        self.set_status(&stale, RowStatus::Missing)?;
        Ok(changed
            .into_iter()
            .map(|(_, row)| rows[row].path.clone())
            .collect())
    }
}

/// Images shown by name when a cache's list of images differs from the data folder's.
const NAMES_SHOWN: usize = 5;

/// "; not in this run's list (...): ...; new (...): ..." for a cache whose rows name other images
/// than the plan; empty when the same images are listed (other copies).
pub(super) fn list_changes(cached: &[String], planned: &[RowPlan]) -> String {
    use std::collections::BTreeSet;
    let cached: BTreeSet<&str> = cached.iter().map(String::as_str).collect();
    let planned: BTreeSet<&str> = planned.iter().map(|r| r.path.as_str()).collect();
    let names = |set: Vec<&&str>| {
        let shown: Vec<&str> = set.iter().take(NAMES_SHOWN).map(|s| **s).collect();
        let more = set.len().saturating_sub(NAMES_SHOWN);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        format!("{}{more}", shown.join(", "))
    };
    let gone: Vec<&&str> = cached.difference(&planned).collect();
    let new: Vec<&&str> = planned.difference(&cached).collect();
    let mut text = String::new();
    if !gone.is_empty() {
        text += &format!(
            "; not in this run's list (removed from the data folder, or no longer decodable): {}",
            names(gone)
        );
    }
    if !new.is_empty() {
        text += &format!("; new (added, or decodable now): {}", names(new));
    }
    text
}
