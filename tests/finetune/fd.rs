//! Finite-difference checks: run a graph in ONNX Runtime, perturb inputs, compare slopes.

use ort::session::Session;
use ort::value::{DynValue, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tlearn::backbone::Compute;
use tlearn::finetune::grad::{Ops, OPSET};
use tlearn::onnx::{DataType, Dim};

/// A named input value.
#[derive(Clone, Debug)]
pub enum Input {
    /// f32 values and dims.
    F32(Vec<usize>, Vec<f32>),
    /// i64 values and dims.
    I64(Vec<usize>, Vec<i64>),
}

impl Input {
    fn value(&self) -> DynValue {
        match self {
            Input::F32(d, v) => Tensor::from_array((d.clone(), v.clone()))
                .unwrap()
                .into_dyn(),
            Input::I64(d, v) => Tensor::from_array((d.clone(), v.clone()))
                .unwrap()
                .into_dyn(),
        }
    }
}

/// Uniform values in [-scale, scale) from a seeded RNG.
pub fn uniform(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    if scale == 0.0 {
        return vec![0.0; n];
    }
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

/// Values at least `gap` away from zero (no ReLU kink within a finite-difference step).
pub fn away_from_zero(seed: u64, n: usize, gap: f32) -> Vec<f32> {
    uniform(seed, n, 1.0)
        .into_iter()
        .map(|v| v.signum() * (gap + v.abs()))
        .collect()
}

/// Distinct values, pairwise at least `gap` apart, shuffled (no MaxPool tie within a step).
pub fn distinct(seed: u64, n: usize, gap: f32) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut v: Vec<f32> = (0..n).map(|i| (i as f32 - n as f32 / 2.0) * gap).collect();
    for i in (1..n).rev() {
        v.swap(i, rng.random_range(0..=i));
    }
    v
}

/// Opens a session on a graph finished by the caller.
pub fn open(ops: Ops) -> Session {
    tlearn::finetune::session(&ops.g.build(OPSET).unwrap(), Compute::cpu(1)).unwrap()
}

/// Runs `session` on `inputs`, returning the named f32 outputs.
pub fn run(session: &mut Session, inputs: &[(&str, Input)], outputs: &[&str]) -> Vec<Vec<f32>> {
    let values: Vec<(String, DynValue)> = inputs
        .iter()
        .map(|(n, v)| (n.to_string(), v.value()))
        .collect();
    let out = session.run(values).unwrap();
    outputs
        .iter()
        .map(|o| {
            let (_, data) = out[*o].try_extract_tensor::<f32>().unwrap();
            data.to_vec()
        })
        .collect()
}

/// Declares f32/i64 graph inputs with their dims.
pub fn declare(ops: &mut Ops, inputs: &[(&str, Input)]) {
    for (name, input) in inputs {
        let (elem, dims) = match input {
            Input::F32(d, _) => (DataType::Float, d),
            Input::I64(d, _) => (DataType::Int64, d),
        };
        let dims: Vec<Dim> = dims.iter().map(|&d| Dim::Fixed(d as i64)).collect();
        ops.g.input(name, elem, &dims);
    }
}

/// Central-difference slope of the scalar `objective` with respect to every value of the f32
/// input `wrt`.
pub fn slopes(
    inputs: &[(&str, Input)],
    wrt: &str,
    eps: f32,
    mut objective: impl FnMut(&[(&str, Input)]) -> f64,
) -> Vec<f64> {
    let at = inputs.iter().position(|(n, _)| *n == wrt).unwrap();
    let Input::F32(dims, base) = &inputs[at].1 else {
        panic!("{wrt} is not f32")
    };
    (0..base.len())
        .map(|i| {
            let mut shifted = inputs.to_vec();
            let mut eval = |delta: f32| {
                let mut v = base.clone();
                v[i] += delta;
                shifted[at].1 = Input::F32(dims.clone(), v);
                objective(&shifted)
            };
            let (up, down) = (eval(eps), eval(-eps));
            (up - down) / (2.0 * f64::from(eps))
        })
        .collect()
}

/// Asserts `analytic` matches `numeric` within `atol + rtol * max |numeric|`, naming `what`.
pub fn assert_close(what: &str, analytic: &[f32], numeric: &[f64], atol: f64, rtol: f64) {
    assert_eq!(analytic.len(), numeric.len(), "{what}: lengths");
    let scale = numeric.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(
        scale > 1e-3,
        "{what}: the gradient is ~0, the check would prove nothing"
    );
    let tol = atol + rtol * scale;
    for (i, (a, n)) in analytic.iter().zip(numeric).enumerate() {
        assert!(
            (f64::from(*a) - n).abs() <= tol,
            "{what}[{i}]: backward {a} vs finite difference {n} (tolerance {tol})"
        );
    }
}

/// `sum(y * r)` in f64.
pub fn dot(y: &[f32], r: &[f32]) -> f64 {
    y.iter()
        .zip(r)
        .map(|(a, b)| f64::from(*a) * f64::from(*b))
        .sum()
}

/// Opens a session on a built model.
pub fn open_model(model: &tlearn::onnx::Model) -> Session {
    tlearn::finetune::session(model, Compute::cpu(1)).unwrap()
}
