//! The rows of a feature cache as classifier inputs: checks, and the train / validation / test
//! rows of each split.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ndarray16::{Array2, Axis};

use super::{ClassifyError, Normalize};
use crate::backbone::Repr;
use crate::cache::{FeatureCache, Identity, RowStatus};
use crate::dataset::Part;
use crate::options::Opt;

/// Converts a cache matrix (ndarray 0.17) into linfa's ndarray (0.16): the one border between them.
pub fn to_linfa(a: ndarray::Array2<f32>) -> Array2<f32> {
    let dim = a.dim();
    let values = if a.is_standard_layout() {
        let n = dim.0 * dim.1;
        match a.into_raw_vec_and_offset() {
            (values, Some(0)) if values.len() == n => values,
            (values, Some(offset)) => values[offset..offset + n].to_vec(),
            (values, None) => values,
        }
    } else {
        a.iter().copied().collect()
    };
    Array2::from_shape_vec(dim, values).expect("a standard-layout matrix has rows x cols values")
}

/// Everything a classifier needs from a cache, checked.
#[derive(Debug, Clone)]
pub struct CacheData {
    /// The cache file.
    pub path: PathBuf,
    /// What made the features.
    pub identity: Identity,
    /// Class names, index = label.
    pub class_names: Vec<String>,
    /// Every row's features (skipped rows are zeros and never selected).
    pub features: Array2<f32>,
    /// Class index of every row.
    pub labels: Vec<usize>,
    /// Copy index of every row (0 = original image).
    pub copies: Vec<u16>,
    /// Source image of every row, relative to the data root.
    pub paths: Vec<String>,
    /// Part of every row in each split: `parts[[row, split]]`.
    pub parts: ndarray::Array2<Part>,
    /// False for rows whose image could not be used.
    pub usable: Vec<bool>,
    /// The absolute path of the backbone that made the features, when the cache records it.
    pub backbone: Option<PathBuf>,
}

impl CacheData {
    /// Reads and checks a cache: structurally sound ([`FeatureCache::contents`]), not empty,
    /// complete, two classes or more.
    pub fn load(path: &Path) -> Result<CacheData, ClassifyError> {
        let cache = FeatureCache::open(path)?;
        if cache.rows == 0 {
            return Err(ClassifyError::EmptyCache(path.to_path_buf()));
        }
        let contents = cache.contents()?;
        let labels = contents.labels()?.to_vec();
        let missing = contents
            .status
            .iter()
            .filter(|s| **s == RowStatus::Missing)
            .count();
        if missing > 0 {
            return Err(ClassifyError::Incomplete {
                path: path.to_path_buf(),
                missing,
                rows: cache.rows,
            });
        }
        if contents.class_names.len() < 2 {
            return Err(ClassifyError::SingleClass(path.display().to_string()));
        }
        Ok(CacheData {
            path: path.to_path_buf(),
            usable: contents
                .status
                .iter()
                .map(|s| *s == RowStatus::Done)
                .collect(),
            parts: contents.parts,
            features: to_linfa(contents.features),
            identity: contents.identity,
            class_names: contents.class_names,
            labels,
            copies: contents.copies,
            paths: contents.paths,
            backbone: contents.backbone,
        })
    }

    /// The same rows with only the columns of `wanted` (in that order), the identity saying so:
    /// the one place a classifier's input is narrowed to some representations.
    pub fn using(&self, wanted: &[Repr]) -> Result<CacheData, ClassifyError> {
        let (identity, columns) = self.identity.select(wanted)?;
        let features = if identity == self.identity {
            self.features.clone()
        } else {
            self.features.select(Axis(1), &columns)
        };
        Ok(CacheData {
            identity,
            features,
            ..self.clone_without_features()
        })
    }

    /// The same rows, each representation block normalised as `how` says (in place: no copy
    /// of the features).
    pub fn normalized(mut self, how: Normalize) -> CacheData {
        how.apply(self.features.view_mut(), &Normalize::blocks(&self.identity));
        self
    }

    /// The same cache read as if it held only the first `k` augmented copies of each image:
    /// later copies are left out of every selection (training rows and TTA views alike), as
    /// rows that could not be used are. Refuses a `k` of 0 or above the copies it holds.
    pub fn first_copies(&self, k: u32) -> Result<CacheData, ClassifyError> {
        let held = self.identity.copies;
        let path = self.path.display();
        if held == 0 {
            return Err(ClassifyError::InvalidParams(format!(
                "{k} copies of each image asked for ({}), but {path} holds no augmented copies",
                Opt::CopiesUsed
            )));
        }
        if k == 0 || k > held {
            return Err(ClassifyError::InvalidParams(format!(
                "{k} copies of each image asked for, but {path} holds {held}: give {} from 1 to {held}, or {} to train on the originals only",
                Opt::CopiesUsed,
                Opt::NoCopies
            )));
        }
        // Only the rows kept are copied, in their order: later copies are not read at all.
        let kept: Vec<usize> = (0..self.copies.len())
            .filter(|&r| u32::from(self.copies[r]) <= k)
            .collect();
        Ok(CacheData {
            path: self.path.clone(),
            identity: self.identity.clone(),
            class_names: self.class_names.clone(),
            features: self.features.select(Axis(0), &kept),
            labels: kept.iter().map(|&r| self.labels[r]).collect(),
            copies: kept.iter().map(|&r| self.copies[r]).collect(),
            paths: kept.iter().map(|&r| self.paths[r].clone()).collect(),
            parts: self.parts.select(ndarray::Axis(0), &kept),
            usable: kept.iter().map(|&r| self.usable[r]).collect(),
            backbone: self.backbone.clone(),
        })
    }

    /// Everything but the features (cheap to copy).
    fn clone_without_features(&self) -> CacheData {
        CacheData {
            path: self.path.clone(),
            identity: self.identity.clone(),
            class_names: self.class_names.clone(),
            features: Array2::zeros((0, 0)),
            labels: self.labels.clone(),
            copies: self.copies.clone(),
            paths: self.paths.clone(),
            parts: self.parts.clone(),
            usable: self.usable.clone(),
            backbone: self.backbone.clone(),
        }
    }

    /// Number of seeded splits.
    pub fn splits(&self) -> usize {
        self.parts.ncols()
    }

    /// The rows of `split`: training rows (with augmented copies if `train_copies`) and the
    /// validation and test images, each with its rows (copy 0 first; all copies if `tta`).
    pub fn select(
        &self,
        split: usize,
        train_copies: bool,
        tta: bool,
    ) -> Result<Selection, ClassifyError> {
        if split >= self.splits() {
            return Err(ClassifyError::NoSuchSplit {
                split,
                available: self.splits(),
            });
        }
        let (train, val_rows, [val, test]) = self.gather(split, train_copies, tta);
        self.check_every_class_trains(&train, split)?;
        for (images, part) in [(&val, "validation"), (&test, "test")] {
            if images.is_empty() {
                return Err(ClassifyError::NoRows { split, part });
            }
        }
        Ok(Selection {
            train,
            val_rows,
            val,
            test,
        })
    }

    /// The training rows, the validation rows and the validation and test images of `split`
    /// (see [`Self::select`]), in row order.
    fn gather(
        &self,
        split: usize,
        train_copies: bool,
        tta: bool,
    ) -> (Vec<usize>, Vec<usize>, [Vec<EvalImage>; 2]) {
        let (mut train, mut val_rows) = (Vec::new(), Vec::new());
        let mut images: [BTreeMap<&str, EvalImage>; 2] = Default::default();
        for row in (0..self.labels.len()).filter(|&row| self.usable[row]) {
            let part = self.parts[[row, split]];
            let copy = self.copies[row];
            if part == Part::Val && (copy == 0 || train_copies) {
                val_rows.push(row);
            }
            match part {
                Part::Train if copy == 0 || train_copies => train.push(row),
                Part::Val | Part::Test if copy == 0 || tta => {
                    self.add_eval_row(&mut images[part as usize - 1], row)
                }
                _ => {}
            }
        }
        let images = images.map(|m| m.into_values().collect());
        (train, val_rows, images)
    }

    /// Adds `row` to its image's rows.
    fn add_eval_row<'a>(&'a self, images: &mut BTreeMap<&'a str, EvalImage>, row: usize) {
        let image = images.entry(&self.paths[row]).or_insert_with(|| EvalImage {
            path: self.paths[row].clone(),
            label: self.labels[row],
            rows: Vec::new(),
        });
        // Copy 0 first, so the first row is always the original image.
        if self.copies[row] == 0 {
            image.rows.insert(0, row);
        } else {
            image.rows.push(row);
        }
    }

    /// Refuses a split in which a class has no training row.
    fn check_every_class_trains(&self, train: &[usize], split: usize) -> Result<(), ClassifyError> {
        let mut counts = vec![0usize; self.class_names.len()];
        train.iter().for_each(|&r| counts[self.labels[r]] += 1);
        match counts.iter().position(|c| *c == 0) {
            Some(class) => Err(ClassifyError::EmptyClass {
                class: self.class_names[class].clone(),
                split,
            }),
            None => Ok(()),
        }
    }

    /// Every usable row: each image's original and, if `copies`, its augmented copies
    /// (the rows of a refit on all labelled images).
    pub fn labelled_rows(&self, copies: bool) -> Vec<usize> {
        (0..self.labels.len())
            .filter(|&r| self.usable[r] && (copies || self.copies[r] == 0))
            .collect()
    }

    /// The features of `rows`, in that order.
    pub fn rows(&self, rows: &[usize]) -> Array2<f32> {
        self.features.select(Axis(0), rows)
    }

    /// The class of each of `rows`.
    pub fn targets(&self, rows: &[usize]) -> ndarray16::Array1<usize> {
        rows.iter().map(|&r| self.labels[r]).collect()
    }
}

/// One validation or test image with its rows (the original first, then any augmented copies).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalImage {
    /// Source image, relative to the data root.
    pub path: String,
    /// True class.
    pub label: usize,
    /// Cache rows of the image.
    pub rows: Vec<usize>,
}

/// The rows of one split.
#[derive(Debug, Clone)]
pub struct Selection {
    /// Training rows (originals and, if asked, their augmented copies).
    pub train: Vec<usize>,
    /// Validation rows as training rows (originals and, if asked, their augmented copies): a
    /// refit after C is chosen trains on these too.
    pub val_rows: Vec<usize>,
    /// Validation images.
    pub val: Vec<EvalImage>,
    /// Test images.
    pub test: Vec<EvalImage>,
}
