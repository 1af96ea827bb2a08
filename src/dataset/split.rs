//! Seeded stratified splits of a data set into training, validation and test images.

use std::fmt;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::DatasetError;

/// Which part of a split an image belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum Part {
    /// Used to fit classifiers.
    Train = 0,
    /// Used to choose hyper-parameters.
    Val = 1,
    /// Held out for the final report.
    Test = 2,
}

/// Fractions of each class that go to train / validation / test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitSpec {
    /// Fraction of each class used for training.
    pub train: f64,
    /// Fraction of each class used for validation.
    pub val: f64,
    /// Fraction of each class held out for testing (the rest).
    pub test: f64,
}

impl Default for SplitSpec {
    /// The flowers protocol: 40 / 20 / 20 of 80 images per class.
    fn default() -> Self {
        SplitSpec {
            train: 0.5,
            val: 0.25,
            test: 0.25,
        }
    }
}

impl std::str::FromStr for SplitSpec {
    type Err = DatasetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<f64> = s
            .split(',')
            .map(|p| p.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| DatasetError::BadSplit(s.to_string()))?;
        let [train, val, test] = parts[..] else {
            return Err(DatasetError::BadSplit(s.to_string()));
        };
        let spec = SplitSpec { train, val, test };
        spec.check()?;
        Ok(spec)
    }
}

impl SplitSpec {
    /// Refuses fractions that are not each above 0 (every part needs images: training fits,
    /// validation chooses C, test scores) or that do not sum to 1.
    pub fn check(&self) -> Result<(), DatasetError> {
        let parts = [self.train, self.val, self.test];
        let ok = parts.iter().all(|f| *f > 0.0 && *f < 1.0)
            && (parts.iter().sum::<f64>() - 1.0).abs() < 1e-6;
        if ok {
            Ok(())
        } else {
            Err(DatasetError::BadSplit(self.to_string()))
        }
    }
}

impl fmt::Display for SplitSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{},{}", self.train, self.val, self.test)
    }
}

/// `count` seeded stratified splits: element `[k][i]` is the part of sample `i` in split `k`.
///
/// Within each class the images are shuffled (seed, split index) and cut into
/// round(n * train) training and round(n * val) validation images, the rest for testing.
pub fn stratified_splits(
    labels: &[usize],
    spec: SplitSpec,
    count: usize,
    seed: u64,
) -> Vec<Vec<Part>> {
    let classes = labels.iter().copied().max().map_or(0, |m| m + 1);
    (0..count)
        .map(|k| {
            let mut rng =
                ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(k as u64));
            let mut parts = vec![Part::Test; labels.len()];
            for class in 0..classes {
                let mut members: Vec<usize> =
                    (0..labels.len()).filter(|&i| labels[i] == class).collect();
                members.shuffle(&mut rng);
                let n = members.len() as f64;
                let n_train =
                    ((n * spec.train).round() as usize).clamp(1.min(members.len()), members.len());
                let n_val = ((n * spec.val).round() as usize).min(members.len() - n_train);
                for (j, &i) in members.iter().enumerate() {
                    parts[i] = if j < n_train {
                        Part::Train
                    } else if j < n_train + n_val {
                        Part::Val
                    } else {
                        Part::Test
                    };
                }
            }
            parts
        })
        .collect()
}
