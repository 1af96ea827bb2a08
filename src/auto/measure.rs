//! Measuring a data set before choosing: classes, images per class, image sizes, what each
//! seeded split gets; and which row of the method's table its size puts it in.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::Serialize;

use crate::dataset::{stratified_splits, DataSet, Part, SplitSpec};
use crate::options::Opt;

/// Images per class (the median class) from which a data set counts as large.
///
/// Why 1000: fine-tuning even VGG16's last block trains 7 M weights, while a linear classifier
/// on pooled features trains a few thousand per class. On the flowers (80 images per class) the
/// fine-tuned block 5 measured 95.88 ± 1.02 %, the same mean as auto's linear choice (95.88 ±
/// 1.35 %): no gain at that size. Chollet's Keras example of learning "from very little data"
/// calls 1000 training images per class little; below that count the feature extractor is the
/// method's choice.
pub const LARGE_PER_CLASS: usize = 1000;

/// Fewest images a class needs: one each for training, validation and test, and one more so a
/// split's fractions can give each part an image.
pub const MIN_PER_CLASS: usize = 4;

/// Test images per split below which an accuracy is flagged as unreliable (one image moves it
/// by more than 3 points).
pub const RELIABLE_TEST_IMAGES: usize = 30;

/// Smallest, median and largest of some counts or sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Spread {
    /// Smallest.
    pub min: usize,
    /// Median (the upper one of an even count).
    pub median: usize,
    /// Largest.
    pub max: usize,
}

impl Spread {
    /// The spread of `values` (zeros when empty).
    pub fn of(values: &[usize]) -> Spread {
        let mut v = values.to_vec();
        v.sort_unstable();
        Spread {
            min: v.first().copied().unwrap_or(0),
            median: v.get(v.len() / 2).copied().unwrap_or(0),
            max: v.last().copied().unwrap_or(0),
        }
    }
}

/// How many images of each part one seeded split gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SplitCounts {
    /// Training images.
    pub train: usize,
    /// Validation images.
    pub val: usize,
    /// Test images.
    pub test: usize,
}

/// Small or large, in the method's sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Size {
    /// Fewer than [`LARGE_PER_CLASS`] images in the median class.
    Small,
    /// At least [`LARGE_PER_CLASS`] images in the median class.
    Large,
}

/// What the data set looks like.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataStats {
    /// Number of classes.
    pub classes: usize,
    /// Number of images.
    pub images: usize,
    /// Images of each class, by class name.
    pub per_class: BTreeMap<String, usize>,
    /// Images per class.
    pub per_class_spread: Spread,
    /// The class with the fewest images.
    pub smallest_class: String,
    /// Widths of the images whose header could be read.
    pub width: Spread,
    /// Heights of the images whose header could be read.
    pub height: Spread,
    /// Images left out because they cannot be decoded (not counted anywhere else here).
    pub unreadable: Vec<String>,
    /// Images per part in each seeded split.
    pub splits: Vec<SplitCounts>,
    /// Small or large.
    pub size: Size,
}

impl DataStats {
    /// The fewest test images of any split.
    pub fn min_test_images(&self) -> usize {
        self.splits.iter().map(|s| s.test).min().unwrap_or(0)
    }
}

/// What is wrong with a data set too small for the splits: every problem, one per line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the data cannot be split into training, validation and test images:\n  {}", .0.join("\n  "))]
pub struct TooSmall(pub Vec<String>);

/// Measures `data` as split by `split` x `splits` with `seed` (the splits the cache will hold);
/// returns the statistics and warnings, or every reason the data cannot be used.
pub fn measure(
    data: &DataSet,
    split: SplitSpec,
    splits: usize,
    seed: u64,
) -> Result<(DataStats, Vec<String>), TooSmall> {
    let mut counts = vec![0usize; data.class_names.len()];
    data.samples.iter().for_each(|s| counts[s.label] += 1);
    let mut problems: Vec<String> = counts
        .iter()
        .zip(&data.class_names)
        .filter(|(n, _)| **n < MIN_PER_CLASS)
        .map(|(n, name)| {
            format!("class {name} has {n} image(s); at least {MIN_PER_CLASS} are needed (add images, or leave the class out)")
        })
        .collect();
    let labels = data.labels();
    let mut warnings = Vec::new();
    if let Some(ignored) = crate::dataset::ignored_summary(&data.ignored) {
        warnings.push(format!(
            "{ignored} (tlearn features {} names them)",
            Opt::Verbose
        ));
    }
    if !data.unusable.is_empty() {
        warnings.push(format!(
            "{} image file(s) cannot be decoded and are left out of every count and split (each is named below)",
            data.unusable.len()
        ));
    }
    let split_counts: Vec<SplitCounts> = stratified_splits(&labels, split, splits, seed)
        .iter()
        .enumerate()
        .map(|(s, parts)| {
            let by_class = by_class(&labels, parts, counts.len());
            check_split(s, &by_class, data, &counts, &mut problems, &mut warnings);
            let total = |p: Part| by_class.iter().map(|n| n[p as usize]).sum::<usize>();
            SplitCounts {
                train: total(Part::Train),
                val: total(Part::Val),
                test: total(Part::Test),
            }
        })
        .collect();
    if !problems.is_empty() {
        return Err(TooSmall(problems));
    }
    let min_test = split_counts.iter().map(|s| s.test).min().unwrap_or(0);
    if min_test < RELIABLE_TEST_IMAGES {
        warnings.push(format!(
            "only {min_test} test images per split: one image moves the accuracy by {:.1} points, so the test accuracies are unreliable estimates",
            100.0 / min_test.max(1) as f64
        ));
    }
    Ok((stats(data, counts, split_counts), warnings))
}

/// Images per class and part of one split: `[class][part]`.
fn by_class(labels: &[usize], parts: &[Part], classes: usize) -> Vec<[usize; 3]> {
    let mut by_class = vec![[0usize; 3]; classes];
    for (label, part) in labels.iter().zip(parts) {
        by_class[*label][*part as usize] += 1;
    }
    by_class
}

/// A class without training images in split `s` is a problem; without validation or test
/// images (when it has enough images overall), a warning.
fn check_split(
    s: usize,
    by_class: &[[usize; 3]],
    data: &DataSet,
    counts: &[usize],
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    for (c, n) in by_class.iter().enumerate() {
        let name = &data.class_names[c];
        if n[Part::Train as usize] == 0 {
            problems.push(format!("split {s} gives class {name} no training image"));
        }
        for (part, what) in [(Part::Val, "validation"), (Part::Test, "test")] {
            if n[part as usize] == 0 && counts[c] >= MIN_PER_CLASS {
                warnings.push(format!(
                    "split {s} gives class {name} no {what} image: its {what} accuracy says nothing about that class"
                ));
            }
        }
    }
}

/// The statistics of images per class (`counts`), image sizes (read from the headers) and
/// the splits.
fn stats(data: &DataSet, counts: Vec<usize>, splits: Vec<SplitCounts>) -> DataStats {
    let headers: Vec<Result<(u32, u32), String>> = data
        .samples
        .par_iter()
        .map(|s| image::image_dimensions(data.full_path(s)).map_err(|_| s.path.clone()))
        .collect();
    let sizes: Vec<(u32, u32)> = headers.iter().filter_map(|h| h.clone().ok()).collect();
    let unusable = data.unusable.iter().map(|(path, _)| path.clone());
    let unreadable = headers
        .into_iter()
        .filter_map(Result::err)
        .chain(unusable)
        .collect();
    let per_class_spread = Spread::of(&counts);
    let smallest = counts
        .iter()
        .position(|n| *n == per_class_spread.min)
        .unwrap_or(0);
    DataStats {
        classes: counts.len(),
        images: data.samples.len(),
        per_class: data.class_names.iter().cloned().zip(counts).collect(),
        per_class_spread,
        smallest_class: data.class_names[smallest].clone(),
        width: Spread::of(&sizes.iter().map(|s| s.0 as usize).collect::<Vec<_>>()),
        height: Spread::of(&sizes.iter().map(|s| s.1 as usize).collect::<Vec<_>>()),
        unreadable,
        splits,
        size: if per_class_spread.median >= LARGE_PER_CLASS {
            Size::Large
        } else {
            Size::Small
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{Layout, Sample};

    /// A data set (files need not exist: unreadable headers are only listed) with `counts[c]`
    /// images of class c.
    fn data(counts: &[usize]) -> DataSet {
        let samples = counts
            .iter()
            .enumerate()
            .flat_map(|(c, n)| {
                (0..*n).map(move |i| Sample {
                    path: format!("c{c}/{i}.png"),
                    label: c,
                })
            })
            .collect();
        DataSet {
            root: "/nonexistent".into(),
            layout: Layout::FolderPerClass,
            class_names: (0..counts.len()).map(|c| format!("c{c}")).collect(),
            samples,
            warnings: Vec::new(),
            ignored: Vec::new(),
            unusable: Vec::new(),
        }
    }

    #[test]
    fn classes_too_small_to_split_are_refused_with_their_names() {
        let err = measure(&data(&[3, 40, 2]), SplitSpec::default(), 3, 1).unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
        assert!(err.to_string().contains("class c0 has 3 image(s)"), "{err}");
        assert!(err.to_string().contains("class c2 has 2 image(s)"), "{err}");
    }

    #[test]
    fn parts_without_a_class_and_few_test_images_are_warned_about() {
        let spec: SplitSpec = "0.8,0.1,0.1".parse().unwrap();
        let (stats, warnings) = measure(&data(&[4, 40]), spec, 2, 1).unwrap();
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("class c0 no validation image")),
            "{warnings:?}"
        );
        assert!(
            warnings.iter().any(|w| w.contains("unreliable")),
            "{warnings:?}"
        );
        assert_eq!(stats.min_test_images(), 5);
        assert_eq!(
            stats.per_class_spread,
            Spread {
                min: 4,
                median: 40,
                max: 40
            }
        );
        assert_eq!(stats.size, Size::Small);
        assert_eq!(stats.unreadable.len(), 44);
        let (big, warnings) = measure(&data(&[1200, 1000]), SplitSpec::default(), 1, 1).unwrap();
        assert_eq!(big.size, Size::Large);
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}
