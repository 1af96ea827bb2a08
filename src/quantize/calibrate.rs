//! Calibration: the fp32 model runs in ONNX Runtime on preprocessed images with the tensors to
//! quantise exposed as extra outputs, and each tensor's range is measured.

use std::collections::HashMap;
use std::path::PathBuf;

use rayon::prelude::*;

use super::{CalibrationMethod, CheckedQuantizeParams, QuantizeError};
use crate::backbone::{BackboneError, Compute, Descriptor};
use crate::onnx::{value_info, DataType, Model};
use crate::preprocess::load_rgb;

/// Bins of the histogram of absolute values (ONNX Runtime's percentile calibrator uses 2048).
const BINS: usize = 2048;

/// Scale and zero point of a uint8 activation: `real = (q - zero_point) * scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ActParams {
    pub(crate) scale: f32,
    pub(crate) zero_point: u8,
}

impl ActParams {
    /// The uint8 grid covering `[lo, hi]` widened to hold 0 (zero must be exact: padding and
    /// Relu produce it); `None` when that range is empty.
    pub(crate) fn for_range(lo: f32, hi: f32) -> Option<ActParams> {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        let scale = (hi - lo) / 255.0;
        if !(scale.is_finite() && scale > 0.0) {
            return None;
        }
        // Ties to even, as ONNX Runtime's QuantizeLinear and numpy round.
        let zero_point = (-lo / scale).round_ties_even().clamp(0.0, 255.0) as u8;
        Some(ActParams { scale, zero_point })
    }
}

/// What the calibration images showed of one tensor.
#[derive(Debug, Clone)]
struct Range {
    min: f32,
    max: f32,
    finite: bool,
    /// Counts of |x| in `BINS` equal bins over `[0, bound]` (percentile only).
    hist: Option<Histogram>,
}

#[derive(Debug, Clone)]
struct Histogram {
    bound: f32,
    counts: Vec<u64>,
}

impl Range {
    fn new(percentile: bool) -> Range {
        Range {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            finite: true,
            hist: percentile.then(|| Histogram {
                bound: 0.0,
                counts: vec![0; BINS],
            }),
        }
    }

    fn add<'a>(&mut self, values: impl Iterator<Item = &'a f32> + Clone) {
        for &v in values.clone() {
            if v.is_finite() {
                self.min = self.min.min(v);
                self.max = self.max.max(v);
            } else {
                self.finite = false;
            }
        }
        if let Some(hist) = &mut self.hist {
            hist.grow(self.min.abs().max(self.max.abs()));
            hist.add(values.filter(|v| v.is_finite()));
        }
    }

    /// The range to quantise, or an error naming `tensor`.
    fn chosen(&self, tensor: &str, percentile: Option<f64>) -> Result<ActParams, QuantizeError> {
        if !self.finite {
            return Err(QuantizeError::NonFinite {
                tensor: tensor.to_string(),
            });
        }
        let (mut lo, mut hi) = (self.min, self.max);
        if let (Some(p), Some(hist)) = (percentile, &self.hist) {
            let t = hist.threshold(p);
            (lo, hi) = (lo.max(-t), hi.min(t));
        }
        ActParams::for_range(lo, hi).ok_or_else(|| QuantizeError::ZeroActivations {
            tensor: tensor.to_string(),
        })
    }
}

impl Histogram {
    fn bin(&self, v: f32) -> usize {
        ((v.abs() / self.bound * BINS as f32) as usize).min(BINS - 1)
    }

    /// Widens the bins to reach `bound`, moving each old bin's count to the new bin holding its
    /// centre (ONNX Runtime's calibrator merges histograms the same way).
    fn grow(&mut self, bound: f32) {
        if bound <= self.bound {
            return;
        }
        let old = std::mem::replace(&mut self.counts, vec![0; BINS]);
        let old_width = self.bound / BINS as f32;
        self.bound = bound;
        for (i, count) in old.into_iter().enumerate().filter(|(_, c)| *c > 0) {
            let centre = (i as f32 + 0.5) * old_width;
            let bin = self.bin(centre);
            self.counts[bin] += count;
        }
    }

    fn add<'a>(&mut self, values: impl Iterator<Item = &'a f32>) {
        if self.bound <= 0.0 {
            // Every value so far is 0: nothing to spread over bins.
            return;
        }
        for v in values {
            let bin = self.bin(*v);
            self.counts[bin] += 1;
        }
    }

    /// The upper edge of the bin where the cumulative share of |x| reaches `percentile`.
    fn threshold(&self, percentile: f64) -> f32 {
        let total: u64 = self.counts.iter().sum();
        if total == 0 {
            return self.bound;
        }
        let wanted = (percentile / 100.0 * total as f64).ceil() as u64;
        let mut seen = 0;
        for (i, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= wanted {
                return (i + 1) as f32 * self.bound / BINS as f32;
            }
        }
        self.bound
    }
}

/// The ranges the calibration images produced, by tensor.
#[derive(Debug)]
pub(crate) struct Observed {
    ranges: Vec<(String, Range)>,
    /// Images that went through the model.
    pub(crate) images: usize,
    /// Images that could not be read, with the reason.
    pub(crate) skipped: Vec<(String, String)>,
}

impl Observed {
    /// Scale and zero point of every observed tensor.
    pub(crate) fn activation_params(
        &self,
        method: CalibrationMethod,
        percentile: f64,
    ) -> Result<HashMap<String, ActParams>, QuantizeError> {
        let percentile = (method == CalibrationMethod::Percentile).then_some(percentile);
        self.ranges
            .iter()
            .map(|(t, r)| Ok((t.clone(), r.chosen(t, percentile)?)))
            .collect()
    }
}

/// Runs `model` on `images` (stored path, file) and measures every tensor of `tensors`.
pub(crate) fn observe(
    model: &Model,
    descriptor: &Descriptor,
    tensors: &[String],
    images: &[(String, PathBuf)],
    p: &CheckedQuantizeParams,
) -> Result<Observed, QuantizeError> {
    let input = descriptor.input.as_str();
    let mut session = Compute::cpu(p.threads)
        .session_builder()?
        .commit_from_memory(&probe(model, input, tensors).to_bytes())
        .map_err(BackboneError::from)?;
    let percentile = p.method == CalibrationMethod::Percentile;
    let mut ranges: Vec<(String, Range)> = tensors
        .iter()
        .map(|t| (t.clone(), Range::new(percentile)))
        .collect();
    let size = descriptor.preprocessing.size as usize;
    let mut used = 0;
    let mut skipped = Vec::new();
    for batch in images.chunks(p.batch) {
        let tensor = preprocessed(batch, descriptor, p, &mut skipped);
        let n = tensor.len() / descriptor.preprocessing.chw_len();
        if n == 0 {
            continue;
        }
        let fed = ort::value::TensorRef::from_array_view(([n, 3, size, size], &tensor[..]))
            .map_err(BackboneError::from)?;
        let out = session
            .run(ort::inputs![input => fed])
            .map_err(BackboneError::from)?;
        for (name, range) in &mut ranges {
            if name == input {
                range.add(tensor.iter());
            } else {
                let values = out[name.as_str()]
                    .try_extract_array::<f32>()
                    .map_err(BackboneError::from)?;
                range.add(values.iter());
            }
        }
        used += n;
    }
    if used == 0 {
        return Err(QuantizeError::NoUsableImages {
            dir: p.calibrate.clone(),
            tried: images.len(),
            first: skipped
                .first()
                .map_or_else(String::new, |(path, why)| format!("{path}: {why}")),
        });
    }
    Ok(Observed {
        ranges,
        images: used,
        skipped,
    })
}

/// `model` with every tensor of `tensors` (but the input) also a graph output.
fn probe(model: &Model, input: &str, tensors: &[String]) -> Model {
    let mut probe = model.clone();
    let outputs: Vec<String> = probe.output_names().iter().map(|s| s.to_string()).collect();
    for t in tensors {
        if t != input && !outputs.contains(t) {
            probe
                .graph_mut()
                .output
                .push(value_info(t, DataType::Float, None));
        }
    }
    probe
}

/// The batch's images, decoded and preprocessed exactly as extraction prepares an image's
/// original row, one after the other; images that fail go to `skipped`.
fn preprocessed(
    batch: &[(String, PathBuf)],
    descriptor: &Descriptor,
    p: &CheckedQuantizeParams,
    skipped: &mut Vec<(String, String)>,
) -> Vec<f32> {
    let prep = &descriptor.preprocessing;
    let chw = prep.chw_len();
    let decoded: Vec<Result<Vec<f32>, String>> = batch
        .par_iter()
        .map(|(_, path)| {
            let img = load_rgb(path, &p.limits).map_err(|e| e.to_string())?;
            let mut chw_values = vec![0f32; chw];
            prep.write_chw(&prep.resize(&img), &mut chw_values);
            Ok(chw_values)
        })
        .collect();
    let mut tensor = Vec::with_capacity(batch.len() * chw);
    for ((stored, _), result) in batch.iter().zip(decoded) {
        match result {
            Ok(values) => tensor.extend(values),
            Err(reason) => skipped.push((stored.clone(), reason)),
        }
    }
    tensor
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_hold_zero_exactly() {
        let relu = ActParams::for_range(0.0, 25.5).unwrap();
        assert_eq!(relu.zero_point, 0);
        assert!((relu.scale - 0.1).abs() < 1e-7);
        let signed = ActParams::for_range(-100.0, 155.0).unwrap();
        assert_eq!(signed.zero_point, 100);
        // A range that does not hold 0 is widened to it.
        assert_eq!(ActParams::for_range(2.0, 5.1).unwrap().zero_point, 0);
        assert!(ActParams::for_range(0.0, 0.0).is_none());
    }

    #[test]
    fn percentile_drops_rare_outliers() {
        let mut values: Vec<f32> = (0..100_000).map(|i| (i % 100) as f32 / 10.0).collect();
        values.push(1000.0);
        let mut range = Range::new(true);
        range.add(values[..50_000].iter());
        range.add(values[50_000..].iter());
        let minmax = range.chosen("t", None).unwrap();
        let pct = range.chosen("t", Some(99.9)).unwrap();
        assert!((minmax.scale - 1000.0 / 255.0).abs() < 1e-3);
        // 99.9 % of |x| are below 10: the outlier no longer sets the grid.
        assert!(pct.scale < 11.0 / 255.0, "{pct:?}");
        assert!(pct.scale > 9.0 / 255.0, "{pct:?}");
    }

    #[test]
    fn all_zero_and_non_finite_are_refused() {
        let mut zero = Range::new(false);
        zero.add([0.0f32; 8].iter());
        assert!(matches!(
            zero.chosen("z", None),
            Err(QuantizeError::ZeroActivations { .. })
        ));
        let mut nan = Range::new(false);
        nan.add([1.0, f32::NAN].iter());
        assert!(matches!(
            nan.chosen("n", None),
            Err(QuantizeError::NonFinite { .. })
        ));
    }
}
