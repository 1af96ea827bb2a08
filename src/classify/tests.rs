//! The classifiers on synthetic data: known answers, the solvers' agreement, refusals.

use linfa::dataset::DatasetBase;
use linfa::traits::{Fit, Predict};

use super::nd::{Array1, Array2};
use super::{ClassifyError, Kind, LinearClassifier, LinearSvmParams, LogisticParams};

#[path = "../../tests/common/lcg.rs"]
mod lcg;
pub use lcg::lcg_values;

/// `classes` Gaussian-ish blobs in `dims` dimensions: class k is centred at 3 on axis k.
fn blobs(classes: usize, per_class: usize, dims: usize, seed: u64) -> (Array2<f32>, Array1<usize>) {
    let noise = lcg_values(seed, classes * per_class * dims, 1.0);
    let x = Array2::from_shape_fn((classes * per_class, dims), |(i, j)| {
        let class = i / per_class;
        noise[i * dims + j] + if j == class { 3.0 } else { 0.0 }
    });
    let y = (0..classes * per_class).map(|i| i / per_class).collect();
    (x, y)
}

fn fit(kind: Kind, x: Array2<f32>, y: Array1<usize>, c: f64) -> LinearClassifier {
    let dataset = DatasetBase::new(x, y);
    match kind {
        Kind::Svm => LinearSvmParams::new().c(c).fit(&dataset),
        Kind::Logistic => LogisticParams::multinomial().c(c).fit(&dataset),
        Kind::LogisticOvr => LogisticParams::one_vs_all().c(c).fit(&dataset),
    }
    .unwrap()
}

const KINDS: [Kind; 3] = [Kind::Svm, Kind::Logistic, Kind::LogisticOvr];

/// Overlapping classes (`rows % classes`): noise plus a small class-specific shift in every
/// column, so no C makes the fit trivial.
fn overlapping(
    classes: usize,
    rows: usize,
    dims: usize,
    seed: u64,
) -> (Array2<f32>, Array1<usize>) {
    let noise = lcg_values(seed, rows * dims, 1.0);
    let centres = lcg_values(seed + 1, classes * dims, 0.25);
    let y: Array1<usize> = (0..rows).map(|i| i % classes).collect();
    let x = Array2::from_shape_fn((rows, dims), |(i, j)| {
        noise[i * dims + j] + centres[y[i] * dims + j]
    });
    (x, y)
}

#[test]
fn each_classifier_learns_separable_blobs() {
    for kind in KINDS {
        let (x, y) = blobs(4, 30, 12, 1);
        let model = fit(kind, x, y, 1.0);
        let (test_x, test_y) = blobs(4, 25, 12, 99);
        let predicted: Array1<usize> = model.predict(&test_x);
        let right = predicted
            .iter()
            .zip(&test_y)
            .filter(|(p, t)| p == t)
            .count();
        assert!(right >= 98, "{kind}: {right}/100 held-out points right");
        // The weight of class k on its own axis is the largest of its row.
        for k in 0..4 {
            let row = model.weights.row(k);
            let top = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0;
            assert_eq!(top, k, "{kind}: class {k} weights {row}");
        }
    }
}

#[test]
fn probabilities_sum_to_one_and_svm_scores_are_margins() {
    let (x, y) = blobs(3, 20, 5, 2);
    for kind in KINDS {
        let model = fit(kind, x.clone(), y.clone(), 1.0);
        let scores = model.scores(x.view());
        for row in scores.rows() {
            let sum: f32 = row.sum();
            if kind.probabilistic() {
                assert!((sum - 1.0).abs() < 1e-4, "{kind}: {sum}");
            }
        }
        if kind == Kind::Svm {
            // Training points of a separable problem sit at margin >= ~1 on their own class.
            let own = scores[(0, 0)];
            assert!(own > 0.5, "svm margin of a training point: {own}");
        }
    }
}

#[test]
fn stronger_regularisation_gives_smaller_weights() {
    let (x, y) = blobs(3, 20, 6, 3);
    for kind in KINDS {
        let norm = |c| {
            let m = fit(kind, x.clone(), y.clone(), c);
            m.weights.iter().map(|w| w * w).sum::<f32>()
        };
        assert!(norm(0.001) < norm(1.0), "{kind}");
    }
}

#[test]
fn svm_refuses_bad_parameters_and_missing_classes() {
    let (x, mut y) = blobs(3, 5, 4, 4);
    let dataset = DatasetBase::new(x.clone(), y.clone());
    assert!(matches!(
        LinearSvmParams::new().c(-1.0).fit(&dataset),
        Err(ClassifyError::InvalidParams(_))
    ));
    y.fill(0);
    let single = DatasetBase::new(x.clone(), y.clone());
    for result in [
        LinearSvmParams::new().fit(&single),
        LogisticParams::multinomial().fit(&single),
    ] {
        assert!(
            matches!(result, Err(ClassifyError::SingleClass(_))),
            "{result:?}"
        );
    }
    // Class 1 of three has no rows.
    y.iter_mut().skip(10).for_each(|c| *c = 2);
    let gap = DatasetBase::new(x, y);
    match LogisticParams::one_vs_all().fit(&gap) {
        Err(ClassifyError::EmptyClass { class, .. }) => assert_eq!(class, "#1"),
        other => panic!("expected EmptyClass, got {other:?}"),
    }
}

/// A real cache on the tiny backbone: 3 classes of 8 generated images, 2 augmented copies.
#[test]
fn svm_gram_and_primal_solvers_agree() {
    // 40 rows x 30 dims is solved in the primal; 20 constant columns more (standardised to 0,
    // so the problem is the same) make it 40 x 50, solved through the Gram matrix.
    let (x, y) = blobs(4, 10, 30, 5);
    let padded = Array2::from_shape_fn((40, 50), |(i, j)| if j < 30 { x[(i, j)] } else { 1.0 });
    let primal = fit(Kind::Svm, x, y.clone(), 0.1);
    let dual = fit(Kind::Svm, padded, y, 0.1);
    for k in 0..4 {
        for j in 0..30 {
            let (a, b) = (primal.weights[(k, j)], dual.weights[(k, j)]);
            assert!(
                (a - b).abs() < 1e-3 * (1.0 + a.abs()),
                "class {k} dim {j}: {a} vs {b}"
            );
        }
        assert!(dual.weights.row(k).iter().skip(30).all(|w| *w == 0.0));
        assert!((primal.bias[k] - dual.bias[k]).abs() < 1e-3);
    }
}

#[test]
fn the_warm_started_svm_path_gives_the_models_of_separate_fits() {
    // The path solves the C's from the smallest up, each from the last one's solution; each
    // model must be the one a fit from zero gives (in the primal and through the Gram matrix).
    use linfa::ParamGuard;
    let grid = [1e-1, 1e-3, 10.0, 1e-2, 1.0];
    for (rows_per_class, dims) in [(15, 12), (6, 40)] {
        let (x, y) = blobs(3, rows_per_class, dims, 11);
        let dataset = DatasetBase::new(x, y);
        let params = LinearSvmParams::new().tol(1e-5);
        let path = params
            .clone()
            .check()
            .unwrap()
            .fit_path(&grid, &dataset)
            .unwrap();
        assert_eq!(path.len(), grid.len());
        for (&c, (warm, _)) in grid.iter().zip(&path) {
            let cold = params.clone().c(c).fit(&dataset).unwrap();
            let scale = 1.0 + cold.weights.iter().fold(0f32, |m, w| m.max(w.abs()));
            for (a, b) in warm.weights.iter().zip(&cold.weights) {
                assert!((a - b).abs() < 2e-3 * scale, "C = {c}: {a} vs {b}");
            }
            for (a, b) in warm.bias.iter().zip(&cold.bias) {
                assert!((a - b).abs() < 2e-3 * scale, "C = {c}: bias {a} vs {b}");
            }
        }
    }
}

#[test]
fn logistic_on_the_reduced_problem_matches_the_full_one() {
    // 40 x 30 is fitted directly; padded to 40 x 50 it is fitted on its 40 x 40 reduction.
    let (x, y) = blobs(4, 10, 30, 6);
    let padded = Array2::from_shape_fn((40, 50), |(i, j)| if j < 30 { x[(i, j)] } else { 1.0 });
    for kind in [Kind::Logistic, Kind::LogisticOvr] {
        let full = fit(kind, x.clone(), y.clone(), 0.1);
        let reduced = fit(kind, padded.clone(), y.clone(), 0.1);
        let (a, b) = (full.scores(x.view()), reduced.scores(padded.view()));
        let worst = (&a - &b).iter().fold(0f32, |m, d| m.max(d.abs()));
        assert!(worst < 2e-3, "{kind}: probabilities differ by {worst}");
    }
}

/// The warm-started C path gives the models of fits from zero (within the solver's tolerance).
#[test]
fn warm_started_logistic_path_equals_fits_from_zero() {
    let grid = [1e-3, 1e-2, 1e-1, 1.0];
    for (rows, dims) in [(600, 40), (150, 900)] {
        let (x, y) = overlapping(4, rows, dims, 7);
        let dataset = DatasetBase::new(x.clone(), y.clone());
        for params in [LogisticParams::multinomial(), LogisticParams::one_vs_all()] {
            let path = linfa::ParamGuard::check(params.clone())
                .unwrap()
                .fit_path(&grid, &dataset)
                .unwrap();
            for (&c, (warm, _)) in grid.iter().zip(&path) {
                let cold = params.clone().c(c).fit(&dataset).unwrap();
                let objective = |m| super::logistic::objective_of(m, x.view(), y.view(), c);
                let (w, z) = (objective(warm), objective(&cold));
                assert!(
                    (w - z).abs() <= 1e-5 * z.abs(),
                    "{rows}x{dims} C={c}: {w} vs {z}"
                );
                assert!(warm.convergence.unwrap().converged);
            }
        }
    }
}

/// A fit stopped by its iteration limit says so (model record and grid point).
#[test]
fn a_logistic_fit_at_its_iteration_limit_says_so() {
    let (x, y) = overlapping(3, 300, 50, 11);
    let dataset = DatasetBase::new(x, y);
    let model = LogisticParams::multinomial()
        .max_iterations(2)
        .fit(&dataset)
        .unwrap();
    let report = model.convergence.unwrap();
    assert_eq!(report.iterations, 2);
    assert!(
        !report.converged && report.gradient_norm > 0.0,
        "{report:?}"
    );
}
