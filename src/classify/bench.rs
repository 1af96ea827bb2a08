//! One fit of each classifier on a cache's split 0, timed: `tlearn bench-classifiers`.

use std::time::Instant;

use serde::Serialize;

use super::data::CacheData;
use super::linear::argmax_rows;
use super::train::TrainConfig;
use super::{ClassifyError, Kind};
use crate::progress::Observer;

/// One classifier's measurements.
#[derive(Debug, Clone, Serialize)]
pub struct KindBench {
    /// Classifier name.
    pub classifier: &'static str,
    /// C of the fit.
    pub c: f64,
    /// Seconds of the fit.
    pub fit_seconds: f64,
    /// Seconds to score the test images.
    pub predict_seconds: f64,
    /// Share of test images predicted right.
    pub test_accuracy: f64,
}

/// The benchmark's JSON.
#[derive(Debug, Clone, Serialize)]
pub struct ClassifierBench {
    /// Always "classifiers".
    pub bench: &'static str,
    /// The cache.
    pub features: String,
    /// Training rows of split 0 (with augmented copies).
    pub train_rows: usize,
    /// Test images of split 0.
    pub test_images: usize,
    /// Length of a feature row.
    pub dims: usize,
    /// Threads of the rayon pool.
    pub threads: usize,
    /// Each classifier's fit.
    pub results: Vec<KindBench>,
}

/// Fits each kind once with `c` on split 0's training rows and scores its test images;
/// `on_fit` hears about each finished fit.
pub fn bench(
    data: &CacheData,
    c: f64,
    on_fit: &mut dyn for<'a> Observer<&'a KindBench>,
) -> Result<ClassifierBench, ClassifyError> {
    let sel = data.select(0, true, false)?;
    let dataset = linfa::dataset::DatasetBase::new(data.rows(&sel.train), data.targets(&sel.train));
    let test_rows: Vec<usize> = sel.test.iter().map(|i| i.rows[0]).collect();
    let test = data.rows(&test_rows);
    let mut results = Vec::new();
    for kind in [Kind::Svm, Kind::Logistic, Kind::LogisticOvr] {
        let start = Instant::now();
        let model = TrainConfig::new(kind).fit(c, &dataset)?;
        let fit_seconds = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let predicted = argmax_rows(model.scores(test.view()).view());
        let predict_seconds = start.elapsed().as_secs_f64();
        let right = predicted
            .iter()
            .zip(&test_rows)
            .filter(|(p, r)| **p == data.labels[**r])
            .count();
        let result = KindBench {
            classifier: kind.name(),
            c,
            fit_seconds,
            predict_seconds,
            test_accuracy: right as f64 / test_rows.len() as f64,
        };
        on_fit.observe(&result);
        results.push(result);
    }
    Ok(ClassifierBench {
        bench: "classifiers",
        features: data.path.display().to_string(),
        train_rows: sel.train.len(),
        test_images: test_rows.len(),
        dims: data.identity.dims,
        threads: rayon::current_num_threads(),
        results,
    })
}
