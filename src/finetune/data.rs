//! Training data in memory: the frozen part's output per row, labels, and which rows train,
//! validate and test.

use std::path::Path;

use ndarray::{Array2, Axis};
use serde::Serialize;

use super::FinetuneError;
use crate::backbone::Repr;
use crate::cache::{FeatureCache, RowStatus};
use crate::dataset::Part;

/// Rows of the frozen part's output with the parts of one split.
#[derive(Debug, Clone)]
pub struct Data {
    /// One flattened input per row (rows x dims).
    pub x: Array2<f32>,
    /// Shape of one row as the network sees it (`[C, H, W]` or `[D]`).
    pub shape: Vec<usize>,
    /// Class index per row.
    pub labels: Vec<i64>,
    /// Training rows: originals and augmented copies.
    pub train: Vec<usize>,
    /// Validation rows (originals only).
    pub val: Vec<usize>,
    /// Test rows (originals only).
    pub test: Vec<usize>,
    /// Class names, index = label.
    pub class_names: Vec<String>,
    /// Source image of each row, relative to the data root.
    pub paths: Vec<String>,
}

/// What identifies the data of a run, so a checkpoint is never resumed on other data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataFingerprint {
    rows: usize,
    dims: usize,
    classes: usize,
    parts: [usize; 3],
    /// FNV-1a of the labels and the three row lists.
    hash: u64,
}

impl Data {
    /// Reads a feature cache: split `split` decides the parts; augmented copies only train, and
    /// rows that are missing or skipped are left out. `repr` picks one representation of a
    /// cache that holds several (`None`: all its columns). `shape` reshapes a row (`None`: flat).
    pub fn from_cache(
        path: &Path,
        split: usize,
        repr: Option<&Repr>,
        shape: Option<Vec<usize>>,
    ) -> Result<Data, FinetuneError> {
        let contents = FeatureCache::open(path)?.contents()?;
        let labels: Vec<i64> = contents.labels()?.iter().map(|&l| l as i64).collect();
        let x = match repr {
            Some(repr) => {
                let (_, columns) = contents.identity.select(std::slice::from_ref(repr))?;
                // Row-major, as batches copy whole rows.
                let picked = contents.features.select(Axis(1), &columns);
                picked.as_standard_layout().into_owned()
            }
            None => contents.features,
        };
        if split >= contents.parts.ncols() {
            return Err(missing_split(path, contents.parts.ncols(), split));
        }
        let (mut train, mut val, mut test) = (Vec::new(), Vec::new(), Vec::new());
        for (row, status) in contents.status.iter().enumerate() {
            if *status != RowStatus::Done {
                continue;
            }
            match (contents.parts[[row, split]], contents.copies[row]) {
                (Part::Train, _) => train.push(row),
                (Part::Val, 0) => val.push(row),
                (Part::Test, 0) => test.push(row),
                _ => {}
            }
        }
        let shape = shape.unwrap_or_else(|| vec![x.ncols()]);
        if shape.iter().product::<usize>() != x.ncols() {
            return Err(FinetuneError::Data(format!(
                "rows of {} have {} values, not a {shape:?} map",
                path.display(),
                x.ncols()
            )));
        }
        let data = Data {
            x,
            shape,
            labels,
            train,
            val,
            test,
            class_names: contents.class_names,
            paths: contents.paths,
        };
        data.check()?;
        Ok(data)
    }

    /// Refuses data a run cannot use: empty parts, labels out of range, ragged sizes.
    pub fn check(&self) -> Result<(), FinetuneError> {
        let bad = |m: String| Err(FinetuneError::Data(m));
        if self.labels.len() != self.x.nrows() || self.paths.len() != self.x.nrows() {
            return bad(format!(
                "{} labels and {} paths for {} rows",
                self.labels.len(),
                self.paths.len(),
                self.x.nrows()
            ));
        }
        if self.train.is_empty() || self.val.is_empty() {
            return bad("training needs training and validation rows".into());
        }
        let k = self.class_names.len() as i64;
        if let Some(l) = self.labels.iter().find(|l| !(0..k).contains(*l)) {
            return bad(format!("label {l} outside the {k} classes"));
        }
        let rows = self.x.nrows();
        if [&self.train, &self.val, &self.test]
            .iter()
            .any(|part| part.iter().any(|&r| r >= rows))
        {
            return bad(format!("a part names a row beyond the {rows} rows"));
        }
        Ok(())
    }

    /// The rows of the three parts only, each replaced by its row of `x` (row `i` of `x`
    /// belongs to the `i`-th row of `self.rows()`), whose values have `shape`.
    pub fn replaced(self, x: Array2<f32>, shape: Vec<usize>) -> Result<Data, FinetuneError> {
        let kept = self.rows();
        if x.nrows() != kept.len() || x.ncols() != shape.iter().product::<usize>() {
            return Err(FinetuneError::Data(format!(
                "{} new rows of {} values for {} rows of shape {shape:?}",
                x.nrows(),
                x.ncols(),
                kept.len()
            )));
        }
        let mut at = vec![usize::MAX; self.x.nrows()];
        kept.iter().enumerate().for_each(|(i, &r)| at[r] = i);
        let remap = |part: &[usize]| part.iter().map(|&r| at[r]).collect();
        let data = Data {
            x,
            shape,
            labels: kept.iter().map(|&r| self.labels[r]).collect(),
            train: remap(&self.train),
            val: remap(&self.val),
            test: remap(&self.test),
            class_names: self.class_names,
            paths: kept.iter().map(|&r| self.paths[r].clone()).collect(),
        };
        data.check()?;
        Ok(data)
    }

    /// Every row of the three parts, ascending.
    pub fn rows(&self) -> Vec<usize> {
        let mut rows: Vec<usize> = [&self.train, &self.val, &self.test]
            .into_iter()
            .flatten()
            .copied()
            .collect();
        rows.sort_unstable();
        rows.dedup();
        rows
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.class_names.len()
    }

    /// The fingerprint a checkpoint records.
    pub fn fingerprint(&self) -> DataFingerprint {
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        let mut eat = |v: u64| {
            for byte in v.to_le_bytes() {
                hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
            }
        };
        self.labels.iter().for_each(|&l| eat(l as u64));
        for part in [&self.train, &self.val, &self.test] {
            eat(u64::MAX);
            part.iter().for_each(|&r| eat(r as u64));
        }
        DataFingerprint {
            rows: self.x.nrows(),
            dims: self.x.ncols(),
            classes: self.classes(),
            parts: [self.train.len(), self.val.len(), self.test.len()],
            hash,
        }
    }

    /// Copies `rows` into one batch buffer (row-major) and their labels.
    pub fn batch(&self, rows: &[usize]) -> (Vec<f32>, Vec<i64>) {
        let dims = self.x.ncols();
        let mut x = Vec::with_capacity(rows.len() * dims);
        for &r in rows {
            x.extend_from_slice(self.x.row(r).as_slice().expect("features are contiguous"));
        }
        (x, rows.iter().map(|&r| self.labels[r]).collect())
    }
}

/// The refusal of split `split` of a cache at `path` that holds `held` splits.
pub(crate) fn missing_split(path: &Path, held: usize, split: usize) -> FinetuneError {
    FinetuneError::Data(format!(
        "{} holds {held} split(s), numbered from 0; split {split} does not exist",
        path.display()
    ))
}
