//! Fine-tuning: every backward builder and a whole training step against finite differences,
//! and the training loop (learning, resume, divergence) on tiny generated data.

mod cache;
mod export;
mod fd;
mod network;
mod step;
mod train;

use crate::common;
use fd::{assert_close, away_from_zero, declare, distinct, dot, open, run, slopes, uniform, Input};
use tlearn::finetune::grad::{self, ConvGrad, ConvShape, Ops};

/// Checks the backward of a one-operator graph: the graph gets the op's inputs plus `dy`, and
/// outputs `y` and the gradients; the objective of the finite differences is `sum(y * dy)`.
///
/// `build` appends the op and returns `(y, [(input, its gradient)])`.
fn check_op(
    inputs: &[(&str, Input)],
    y_dims: &[usize],
    eps: f32,
    tol: (f64, f64),
    build: impl Fn(&mut Ops) -> (String, Vec<(String, String)>),
) {
    let mut ops = Ops::new("op");
    let dy = uniform(99, y_dims.iter().product(), 1.0);
    let mut all = inputs.to_vec();
    all.push(("dy", Input::F32(y_dims.to_vec(), dy.clone())));
    declare(&mut ops, &all);
    let (y, grads) = build(&mut ops);
    ops.g.node("Identity", &[&y], &["y"], vec![]);
    ops.g.output_unshaped("y", tlearn::onnx::DataType::Float);
    let mut names = vec!["y".to_string()];
    for (input, g) in &grads {
        let out = format!("grad_{input}");
        ops.g.node("Identity", &[g], &[&out], vec![]);
        ops.g.output_unshaped(&out, tlearn::onnx::DataType::Float);
        names.push(out);
    }
    let mut session = open(ops);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let analytic = run(&mut session, &all, &names);
    assert_eq!(analytic[0].len(), dy.len(), "y has the declared size");
    for (k, (input, _)) in grads.iter().enumerate() {
        let numeric = slopes(&all, input, eps, |shifted| {
            dot(&run(&mut session, shifted, &["y"])[0], &dy)
        });
        assert_close(input, &analytic[k + 1], &numeric, tol.0, tol.1);
    }
}

#[test]
fn dense_backward_matches_finite_differences() {
    let inputs = [
        ("x", Input::F32(vec![3, 4], uniform(1, 12, 1.0))),
        ("w", Input::F32(vec![4, 5], uniform(2, 20, 1.0))),
        ("b", Input::F32(vec![5], uniform(3, 5, 1.0))),
    ];
    // Gemm is linear in each argument: central differences are exact up to rounding.
    check_op(&inputs, &[3, 5], 1e-2, (1e-3, 1e-3), |ops| {
        let y = grad::dense(ops, "x", "w", "b");
        let (dx, dw, db) = grad::dense_backward(ops, "x", "w", "dy", true);
        let grads = vec![("x", dx.unwrap()), ("w", dw), ("b", db)];
        (y, grads.into_iter().map(|(a, b)| (a.into(), b)).collect())
    });
}

#[test]
fn global_avg_pool_backward_matches_finite_differences() {
    let inputs = [("x", Input::F32(vec![2, 3, 4, 5], uniform(3, 120, 1.0)))];
    check_op(&inputs, &[2, 3], 1e-2, (1e-4, 1e-3), |ops| {
        let y = grad::global_avg_pool(ops, "x");
        let dx = grad::global_avg_pool_backward(ops, "x", "dy", 20);
        (y, vec![("x".into(), dx)])
    });
}

#[test]
fn relu_backward_matches_finite_differences() {
    let inputs = [("x", Input::F32(vec![4, 6], away_from_zero(4, 24, 0.05)))];
    check_op(&inputs, &[4, 6], 1e-2, (1e-3, 1e-3), |ops| {
        let y = grad::relu(ops, "x");
        let dx = grad::relu_backward(ops, &y, "dy");
        (y, vec![("x".into(), dx)])
    });
}

#[test]
fn dropout_backward_matches_finite_differences() {
    // A mask as the training loop makes it: 0 or 1 / (1 - rate).
    let mask: Vec<f32> = uniform(5, 24, 1.0)
        .iter()
        .map(|u| if *u < 0.0 { 0.0 } else { 2.0 })
        .collect();
    assert!(mask.contains(&0.0) && mask.contains(&2.0));
    let inputs = [
        ("x", Input::F32(vec![4, 6], uniform(6, 24, 1.0))),
        ("mask", Input::F32(vec![4, 6], mask)),
    ];
    check_op(&inputs, &[4, 6], 1e-2, (1e-3, 1e-3), |ops| {
        let y = grad::dropout(ops, "x", "mask");
        let dx = grad::dropout_backward(ops, "mask", "dy");
        (y, vec![("x".into(), dx)])
    });
}

#[test]
fn max_pool_backward_matches_finite_differences() {
    // Values 0.01 apart, so a step of 0.002 never changes which element wins a window.
    let inputs = [("x", Input::F32(vec![2, 3, 4, 6], distinct(7, 144, 0.01)))];
    check_op(&inputs, &[2, 3, 2, 3], 2e-3, (1e-3, 1e-3), |ops| {
        let (y, indices) = grad::max_pool(ops, "x");
        let dx = grad::max_pool_backward(ops, "x", &indices, "dy");
        (y, vec![("x".into(), dx)])
    });
}

#[test]
fn max_pool_backward_gives_a_tied_window_one_gradient() {
    // A window of equal values (zeros after a ReLU): only one element gets the gradient.
    let mut ops = Ops::new("tie");
    let inputs = [
        ("x", Input::F32(vec![1, 1, 2, 2], vec![0.0; 4])),
        ("dy", Input::F32(vec![1, 1, 1, 1], vec![1.5])),
    ];
    declare(&mut ops, &inputs);
    let (_, indices) = grad::max_pool(&mut ops, "x");
    let dx = grad::max_pool_backward(&mut ops, "x", &indices, "dy");
    ops.g.node("Identity", &[&dx], &["dx"], vec![]);
    ops.g.output_unshaped("dx", tlearn::onnx::DataType::Float);
    let dx = run(&mut open(ops), &inputs, &["dx"]).remove(0);
    assert_eq!(dx.iter().filter(|v| **v == 1.5).count(), 1, "{dx:?}");
    assert_eq!(dx.iter().sum::<f32>(), 1.5);
}

#[test]
fn conv_backward_matches_finite_differences() {
    check_conv_backward(ConvGrad::default(), ConvShape::VGG);
}

#[test]
fn conv_backward_as_im2col_matches_finite_differences() {
    check_conv_backward(ConvGrad::Im2col, ConvShape::VGG);
}

#[test]
fn conv_backward_as_transposed_matches_finite_differences() {
    check_conv_backward(ConvGrad::Transposed, ConvShape::VGG);
}

#[test]
fn conv_backward_matches_finite_differences_without_padding_and_with_a_5x5_kernel() {
    // Other shapes exercise the im2col slices' ends, the 3-D convolution's padding and the input
    // gradient's "full" padding.
    for how in [ConvGrad::Volume, ConvGrad::Im2col, ConvGrad::Transposed] {
        check_conv_backward(how, ConvShape { kernel: 3, pad: 0 });
        check_conv_backward(how, ConvShape { kernel: 5, pad: 2 });
    }
}

/// A conv of a 5x4 map (3 -> 4 channels, batch 2) against finite differences, written `how`.
fn check_conv_backward(how: ConvGrad, shape: ConvShape) {
    let k = shape.kernel as usize;
    let out = |side: usize| side + 2 * shape.pad as usize + 1 - k;
    let inputs = [
        ("x", Input::F32(vec![2, 3, 5, 4], uniform(8, 120, 1.0))),
        (
            "w",
            Input::F32(vec![4, 3, k, k], uniform(9, 12 * k * k, 1.0)),
        ),
        ("b", Input::F32(vec![4], uniform(10, 4, 1.0))),
    ];
    check_op(
        &inputs,
        &[2, 4, out(5), out(4)],
        1e-2,
        (2e-3, 1e-3),
        |ops| {
            let y = grad::conv(ops, "x", "w", "b", shape);
            let (dx, dw, db) = grad::conv_backward_as(how, ops, "x", "w", "dy", shape, true);
            let grads = vec![("x", dx.unwrap()), ("w", dw), ("b", db)];
            (y, grads.into_iter().map(|(a, b)| (a.into(), b)).collect())
        },
    );
}

#[test]
fn softmax_cross_entropy_matches_finite_differences_and_counts_hits() {
    let (n, k) = (5, 4);
    let logits = uniform(11, n * k, 2.0);
    let labels: Vec<i64> = vec![0, 3, 1, 1, 2];
    let inputs = [
        ("logits", Input::F32(vec![n, k], logits.clone())),
        ("labels", Input::I64(vec![n], labels.clone())),
    ];
    let mut ops = Ops::new("ce");
    declare(&mut ops, &inputs);
    let t = grad::softmax_cross_entropy(&mut ops, "logits", "labels", k);
    for (tensor, name) in [(&t.loss, "loss"), (&t.dlogits, "dlogits")] {
        ops.g.node("Identity", &[tensor], &[name], vec![]);
        ops.g.output_unshaped(name, tlearn::onnx::DataType::Float);
    }
    ops.g.node("Identity", &[&t.correct], &["correct"], vec![]);
    ops.g
        .output_unshaped("correct", tlearn::onnx::DataType::Int64);
    let mut session = open(ops);
    let out = run(&mut session, &inputs, &["loss", "dlogits"]);
    // The loss itself, computed here in f64.
    let mut expected = 0.0;
    let mut hits = 0;
    for (row, &label) in logits.chunks(k).zip(&labels) {
        let max = row.iter().fold(f32::MIN, |m, v| m.max(*v));
        let lse = row
            .iter()
            .map(|v| f64::from(v - max).exp())
            .sum::<f64>()
            .ln()
            + f64::from(max);
        expected += (lse - f64::from(row[label as usize])) / n as f64;
        let arg = (0..k).max_by(|a, b| row[*a].total_cmp(&row[*b])).unwrap();
        hits += i64::from(arg as i64 == label);
    }
    assert!(
        (f64::from(out[0][0]) - expected).abs() < 1e-5,
        "{} vs {expected}",
        out[0][0]
    );
    let numeric = slopes(&inputs, "logits", 1e-2, |shifted| {
        f64::from(run(&mut session, shifted, &["loss"])[0][0])
    });
    assert_close("dlogits", &out[1], &numeric, 2e-4, 1e-2);
    let values: Vec<(String, ort::value::DynValue)> = vec![
        (
            "logits".into(),
            ort::value::Tensor::from_array((vec![n, k], logits))
                .unwrap()
                .into_dyn(),
        ),
        (
            "labels".into(),
            ort::value::Tensor::from_array((vec![n], labels))
                .unwrap()
                .into_dyn(),
        ),
    ];
    let outputs = session.run(values).unwrap();
    let correct = outputs["correct"].try_extract_scalar::<i64>().unwrap();
    assert_eq!(correct, hits);
}

#[test]
fn sgd_momentum_updates_with_decay() {
    let inputs = [
        ("w", Input::F32(vec![3], vec![1.0, -2.0, 0.5])),
        ("v", Input::F32(vec![3], vec![0.1, 0.0, -0.3])),
        ("g", Input::F32(vec![3], vec![0.5, 0.25, -1.0])),
        ("lr", Input::F32(vec![], vec![0.1])),
        ("mu", Input::F32(vec![], vec![0.9])),
        ("wd", Input::F32(vec![], vec![0.01])),
    ];
    let mut ops = Ops::new("sgd");
    declare(&mut ops, &inputs);
    let (w, v) = grad::sgd_momentum(&mut ops, "w", "v", "g", "lr", "mu", Some("wd"));
    let (w_plain, _) = grad::sgd_momentum(&mut ops, "w", "v", "g", "lr", "mu", None);
    for (t, name) in [(&w, "w_new"), (&v, "v_new"), (&w_plain, "w_plain")] {
        ops.g.node("Identity", &[t], &[name], vec![]);
        ops.g.output_unshaped(name, tlearn::onnx::DataType::Float);
    }
    let out = run(&mut open(ops), &inputs, &["w_new", "v_new", "w_plain"]);
    let (w0, v0, g0) = (
        [1.0f32, -2.0, 0.5],
        [0.1f32, 0.0, -0.3],
        [0.5f32, 0.25, -1.0],
    );
    for i in 0..3 {
        let v1 = 0.9 * v0[i] + g0[i] + 0.01 * w0[i];
        assert!((out[1][i] - v1).abs() < 1e-6);
        assert!((out[0][i] - (w0[i] - 0.1 * v1)).abs() < 1e-6);
        let plain = w0[i] - 0.1 * (0.9 * v0[i] + g0[i]);
        assert!((out[2][i] - plain).abs() < 1e-6);
    }
}

#[test]
fn smoothed_loss_its_gradient_and_the_validation_loss_match_f64_and_finite_differences() {
    let (n, k, eps) = (5, 4, 0.1f32);
    let logits = uniform(12, n * k, 2.0);
    let labels: Vec<i64> = vec![3, 0, 2, 2, 1];
    let inputs = [
        ("logits", Input::F32(vec![n, k], logits.clone())),
        ("labels", Input::I64(vec![n], labels.clone())),
    ];
    let mut ops = Ops::new("ce_smoothed");
    declare(&mut ops, &inputs);
    let t = grad::softmax_cross_entropy_smoothed(&mut ops, "logits", "labels", k, eps);
    for (tensor, name) in [(&t.loss, "loss"), (&t.dlogits, "dlogits")] {
        ops.g.node("Identity", &[tensor], &[name], vec![]);
        ops.g.output_unshaped(name, tlearn::onnx::DataType::Float);
    }
    let mut session = open(ops);
    let out = run(&mut session, &inputs, &["loss", "dlogits"]);
    // -sum_j target_j log p_j, targets 1 - eps + eps / K on the label and eps / K elsewhere.
    let mut expected = 0.0;
    for (row, &label) in logits.chunks(k).zip(&labels) {
        let lse = row.iter().map(|v| f64::from(*v).exp()).sum::<f64>().ln();
        for (j, v) in row.iter().enumerate() {
            let target = f64::from(eps) / k as f64
                + if j == label as usize {
                    1.0 - f64::from(eps)
                } else {
                    0.0
                };
            expected -= target * (f64::from(*v) - lse) / n as f64;
        }
    }
    assert!(
        (f64::from(out[0][0]) - expected).abs() < 1e-5,
        "{} vs {expected}",
        out[0][0]
    );
    let numeric = slopes(&inputs, "logits", 1e-2, |shifted| {
        f64::from(run(&mut session, shifted, &["loss"])[0][0])
    });
    assert_close("dlogits", &out[1], &numeric, 2e-4, 1e-2);
    // Smoothing changes the loss: the plain loss is another value on the same logits.
    let plain: f64 = logits
        .chunks(k)
        .zip(&labels)
        .map(|(row, &l)| {
            let lse = row.iter().map(|v| f64::from(*v).exp()).sum::<f64>().ln();
            (lse - f64::from(row[l as usize])) / n as f64
        })
        .sum();
    assert!((plain - expected).abs() > 1e-3, "{plain} vs {expected}");
    assert_eq!(grad::smoothed_targets(0.0, k), (0.0, 1.0));
    // The validation loss early stopping watches is this same loss, and the plain one at 0.
    let rows: Vec<usize> = (0..n).collect();
    let validation =
        |e| tlearn::finetune::runner::loss_and_accuracy(&logits, &rows, &labels, k, e).0;
    assert!(
        (validation(eps) - expected).abs() < 1e-6,
        "{} vs {expected}",
        validation(eps)
    );
    assert!(
        (validation(0.0) - plain).abs() < 1e-9,
        "{} vs {plain}",
        validation(0.0)
    );
}

/// A split's summary holding only what an ensemble reads: validation and test probabilities.
fn scored_summary(val: &[[f32; 2]], test: &[[f32; 2]]) -> tlearn::finetune::run::Summary {
    let images = |n: usize, part: &str| -> Vec<(String, usize)> {
        (0..n).map(|i| (format!("{part}/{i}.jpg"), i % 2)).collect()
    };
    let rows = |p: &[[f32; 2]]| p.iter().map(|r| r.to_vec()).collect();
    tlearn::finetune::run::Summary {
        split: 0,
        ending: tlearn::finetune::train::Ending::Completed,
        epochs: 1,
        best_epoch: 1,
        val_accuracy: 0.0,
        test_loss: 0.0,
        test_accuracy: 0.0,
        seconds_per_epoch: 0.0,
        test_seconds: 0.0,
        rows: [0, val.len(), test.len()],
        model: None,
        test_probabilities: rows(test),
        test_images: images(test.len(), "test"),
        val_probabilities: rows(val),
        val_images: images(val.len(), "val"),
        history: Vec::new(),
    }
}

#[test]
fn the_ensemble_weight_is_chosen_on_validation_images_only() {
    use tlearn::finetune::ensemble::{ensemble_split, LinearScores, Scores, WEIGHTS};
    // Labels alternate 0, 1. On validation each model is right on 3 of 4 images (not the same
    // ones); blends weighted 0.4 to 0.8 get all 4, 0.8 with the lowest log loss.
    let val_ft = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.55, 0.45]];
    let val_lin = [[0.3, 0.7], [0.4, 0.6], [0.7, 0.3], [0.05, 0.95]];
    let test_ft = [[0.9, 0.1], [0.1, 0.9], [0.9, 0.1], [0.1, 0.9]];
    let test_lin = [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.2, 0.8]];
    let linear = |val: &[[f32; 2]], test: &[[f32; 2]]| {
        let s = scored_summary(val, test);
        LinearScores {
            c: 1.0,
            val: Scores {
                images: s.val_images,
                p: s.val_probabilities,
            },
            test: Scores {
                images: s.test_images,
                p: s.test_probabilities,
            },
        }
    };
    let e = ensemble_split(
        &scored_summary(&val_ft, &test_ft),
        &linear(&val_lin, &test_lin),
    )
    .unwrap();
    assert_eq!(e.val_accuracy, [0.75, 0.75, 1.0]);
    // The same rule by hand: best validation accuracy, then lowest validation log loss.
    let score = |w: f64| {
        let (mut hits, mut loss) = (0, 0.0);
        for (i, (a, b)) in val_ft.iter().zip(&val_lin).enumerate() {
            let p: Vec<f64> = (0..2)
                .map(|k| w * f64::from(a[k]) + (1.0 - w) * f64::from(b[k]))
                .collect();
            hits += usize::from((p[1] > p[0]) == (i % 2 == 1));
            loss -= p[i % 2].ln();
        }
        (hits, loss)
    };
    let by_hand = WEIGHTS
        .iter()
        .copied()
        .max_by(|a, b| {
            let (sa, sb) = (score(*a), score(*b));
            sa.0.cmp(&sb.0).then(sb.1.total_cmp(&sa.1))
        })
        .unwrap();
    assert!(
        (e.weight.weight - by_hand).abs() < 1e-9,
        "{} vs {by_hand}",
        e.weight.weight
    );
    assert!((e.weight.weight - 0.8).abs() < 1e-9, "{}", e.weight.weight);
    // Test images that favour another weight do not move it; only the test scores change.
    let flipped: Vec<[f32; 2]> = test_ft.iter().map(|r| [r[1], r[0]]).collect();
    let other = ensemble_split(
        &scored_summary(&val_ft, &flipped),
        &linear(&val_lin, &test_lin),
    )
    .unwrap();
    assert_eq!(other.weight, e.weight);
    assert_ne!(other.test_accuracy, e.test_accuracy);
    // Scores of other images are refused.
    let mut stray = linear(&val_lin, &test_lin);
    stray.test.images[0].0 = "elsewhere.jpg".into();
    let err = ensemble_split(&scored_summary(&val_ft, &test_ft), &stray).unwrap_err();
    assert!(err.to_string().contains("one model only"), "{err}");
}
