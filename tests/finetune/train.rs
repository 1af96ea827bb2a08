//! The training loop on tiny generated data: learning, resume, divergence, refusals.

use std::path::Path;

use ndarray::Array2;
use tlearn::backbone::Compute;
use tlearn::finetune::checkpoint;
use tlearn::finetune::data::Data;
use tlearn::finetune::train::{
    fit, initial_params, CheckedParams, Ending, FinetuneParams, StepDone, TrainEvent,
};
use tlearn::finetune::{FinetuneError, ParamStore, StoreError};
use tlearn::progress::Stop;

use super::fd::uniform;
use super::step::tiny_arch;

/// Three classes of 2x4x4 maps: each class lights up its own quadrant, plus noise.
fn tiny_data() -> Data {
    let (per_class, classes, dims) = (24, 3, 32);
    let rows = per_class * classes;
    let noise = uniform(5, rows * dims, 0.6);
    let mut x = Array2::<f32>::zeros((rows, dims));
    let mut labels = Vec::new();
    for r in 0..rows {
        let class = r % classes;
        labels.push(class as i64);
        for (j, v) in x.row_mut(r).iter_mut().enumerate() {
            let (h, w) = ((j % 16) / 4, j % 4);
            let quadrant = (h / 2) * 2 + w / 2;
            *v = noise[r * dims + j] + if quadrant == class { 1.0 } else { 0.0 };
        }
    }
    // Rows 0..48 train, 48..60 validate, 60..72 test; each part has every class.
    Data {
        x,
        shape: vec![2, 4, 4],
        labels,
        train: (0..48).collect(),
        val: (48..60).collect(),
        test: (60..72).collect(),
        class_names: vec!["a".into(), "b".into(), "c".into()],
        paths: (0..rows).map(|r| format!("img_{r}.png")).collect(),
    }
}

fn params(epochs: usize) -> CheckedParams {
    FinetuneParams {
        epochs,
        // Not a divisor of the 48 training or 12 validation rows: last batches are smaller.
        batch: 5,
        lr_new: 0.05,
        lr_pretrained: 0.05,
        patience: 0,
        compute: Compute::cpu(1),
        ..FinetuneParams::default()
    }
    .check()
    .unwrap()
}

fn init() -> ParamStore {
    // The "pretrained" convolutions get fixed random values here.
    let arch = tiny_arch();
    let specs: Vec<_> = arch
        .params()
        .into_iter()
        .filter(|p| !p.name.starts_with("fc"))
        .collect();
    let convs = ParamStore::from_specs(&specs, |p| {
        Ok::<_, StoreError>(uniform(p.name.len() as u64, p.len(), 0.4))
    })
    .unwrap();
    initial_params(&arch, 7, &convs).unwrap()
}

fn run(
    dir: &Path,
    epochs: usize,
    data: &Data,
    stop_after: Option<usize>,
) -> Result<tlearn::finetune::train::Outcome, FinetuneError> {
    let stop = Stop::new();
    fit(
        &params(epochs),
        &tiny_arch(),
        init(),
        data,
        dir,
        (&stop, &mut |event: TrainEvent<'_>| {
            if matches!(event, TrainEvent::Epoch(s) if stop_after == Some(s.epoch)) {
                stop.request();
            }
        }),
    )
}

#[test]
fn loss_falls_on_a_learnable_problem() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data();
    let out = run(dir.path(), 30, &data, None).unwrap();
    assert_eq!(out.ending, Ending::Completed);
    assert_eq!(out.history.len(), 30);
    let (first, last) = (&out.history[0], out.history.last().unwrap());
    assert!(
        last.train_loss < 0.5 * first.train_loss,
        "train loss {} -> {}",
        first.train_loss,
        last.train_loss
    );
    assert!(last.val_loss < first.val_loss);
    let png = image::open(dir.path().join("curves.png")).unwrap();
    assert!(png.width() > 600 && png.height() > 300);
    let logits = tlearn::finetune::train::logits(
        &tiny_arch(),
        &out.best,
        &data,
        &data.test,
        Compute::cpu(1),
    )
    .unwrap();
    let (_, test_acc) =
        tlearn::finetune::runner::loss_and_accuracy(&logits, &data.test, &data.labels, 3, 0.0);
    assert!(test_acc >= 0.9, "test accuracy {test_acc}");
}

#[test]
fn resume_gives_the_same_result_as_an_uninterrupted_run() {
    let data = tiny_data();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let whole = run(a.path(), 4, &data, None).unwrap();
    let first = run(b.path(), 4, &data, Some(2)).unwrap();
    assert_eq!(first.ending, Ending::Interrupted);
    assert_eq!(first.history.len(), 2);
    let resumed = run(b.path(), 4, &data, None).unwrap();
    assert_eq!(resumed.ending, Ending::Completed);
    let losses = |o: &tlearn::finetune::train::Outcome| -> Vec<(f64, f64, f64, f64)> {
        o.history
            .iter()
            .map(|h| (h.train_loss, h.train_accuracy, h.val_loss, h.val_accuracy))
            .collect()
    };
    // The history of the first part comes back from the checkpoint's JSON: equal to ~1 ulp.
    for (r, w) in losses(&resumed).iter().zip(losses(&whole)) {
        let pairs = [(r.0, w.0), (r.1, w.1), (r.2, w.2), (r.3, w.3)];
        assert!(
            pairs
                .iter()
                .all(|(x, y)| (x - y).abs() <= 1e-12 * y.abs().max(1.0)),
            "{r:?} vs {w:?}"
        );
    }
    assert_eq!(resumed.history.len(), whole.history.len());
    assert_eq!(resumed.best_epoch, whole.best_epoch);
    assert_eq!(resumed.best, whole.best);
    // A finished shorter run extended to more epochs is the same run too.
    let c = tempfile::tempdir().unwrap();
    assert_eq!(
        run(c.path(), 2, &data, None).unwrap().ending,
        Ending::Completed
    );
    assert_eq!(run(c.path(), 4, &data, None).unwrap().best, whole.best);
    let specs = tiny_arch().params();
    let last = |dir: &Path| {
        checkpoint::load(&dir.join("checkpoint.onnx"), &specs, true)
            .unwrap()
            .1
    };
    assert_eq!(last(a.path()), last(b.path()));
}

#[test]
fn a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let mut data = tiny_data();
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), 3, &data, Some(1)).unwrap();
    let specs = tiny_arch().params();
    let path = dir.path().join("checkpoint.onnx");
    let before = checkpoint::load(&path, &specs, true).unwrap();
    // The same rows and labels, but one training value is now NaN.
    data.x[[data.train[5], 3]] = f32::NAN;
    let e = run(dir.path(), 3, &data, None).unwrap_err();
    assert!(
        matches!(
            e,
            FinetuneError::Diverged {
                epoch: 2,
                kept: 1,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("NaN") && e.to_string().contains("checkpoint (epoch 1)"),
        "{e}"
    );
    assert_eq!(checkpoint::load(&path, &specs, true).unwrap(), before);
}

#[test]
fn a_run_stopped_inside_an_epoch_drops_it_and_resumes_to_the_uninterrupted_result() {
    let data = tiny_data();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let whole = run(a.path(), 3, &data, None).unwrap();
    let mut seen = Vec::new();
    let stop = Stop::new();
    let first = fit(
        &params(3),
        &tiny_arch(),
        init(),
        &data,
        b.path(),
        (&stop, &mut |event: TrainEvent<'_>| {
            let TrainEvent::Step(done) = event else {
                return;
            };
            seen.push(done);
            if (done.epoch, done.step) == (2, 2) {
                stop.request();
            }
        }),
    )
    .unwrap();
    // Every step of epoch 1 was heard, then two of epoch 2, and nothing of epoch 2 was kept.
    let steps = seen[0].steps;
    assert!(steps >= 3, "{steps} steps per epoch");
    let expected: Vec<StepDone> = (1..=steps)
        .map(|step| StepDone {
            epoch: 1,
            step,
            steps,
        })
        .chain((1..=2).map(|step| StepDone {
            epoch: 2,
            step,
            steps,
        }))
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(first.ending, Ending::Interrupted);
    assert_eq!(first.history.len(), 1);
    let resumed = run(b.path(), 3, &data, None).unwrap();
    assert_eq!(resumed.ending, Ending::Completed);
    assert_eq!(resumed.history.len(), 3);
    assert_eq!(resumed.best, whole.best);
}

#[test]
fn a_checkpoint_of_other_settings_is_refused() {
    let data = tiny_data();
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), 2, &data, Some(1)).unwrap();
    let other = FinetuneParams {
        lr_new: 0.5,
        ..(*params(2)).clone()
    }
    .check()
    .unwrap();
    let quiet = &mut |_: TrainEvent<'_>| {};
    let e = fit(
        &other,
        &tiny_arch(),
        init(),
        &data,
        dir.path(),
        (&Stop::new(), quiet),
    )
    .unwrap_err();
    assert!(matches!(e, FinetuneError::Checkpoint { .. }), "{e}");
    assert!(e.to_string().contains("other settings"), "{e}");
}

#[test]
fn a_checkpoint_whose_tensor_has_another_shape_is_refused_even_with_as_many_values() {
    let data = tiny_data();
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), 2, &data, Some(1)).unwrap();
    let path = dir.path().join("checkpoint.onnx");
    let (meta, state) = checkpoint::load(&path, &tiny_arch().params(), true).unwrap();
    // fc1.w written transposed: as many values as the network's [8, 5], another shape.
    let mut params = ParamStore::new();
    for (name, t) in state.params.iter() {
        let mut dims = t.dims.clone();
        if name == "fc1.w" {
            dims.reverse();
        }
        params.insert(name, dims, t.values.clone()).unwrap();
    }
    let edited = checkpoint::Tensors {
        params,
        momenta: state.momenta,
    };
    checkpoint::save(&path, &meta, &edited).unwrap();
    let e = run(dir.path(), 2, &data, None).unwrap_err();
    assert!(matches!(e, FinetuneError::Checkpoint { .. }), "{e}");
    let e = e.to_string();
    assert!(
        e.contains("'fc1.w' has shape [5, 8], the network needs [8, 5]")
            && e.contains("another network"),
        "{e}"
    );
}

#[test]
fn settings_out_of_range_are_refused() {
    for bad in [
        FinetuneParams {
            epochs: 0,
            ..FinetuneParams::default()
        },
        FinetuneParams {
            lr_new: f32::NAN,
            ..FinetuneParams::default()
        },
        FinetuneParams {
            dropout: 1.0,
            ..FinetuneParams::default()
        },
        FinetuneParams {
            momentum: -0.1,
            ..FinetuneParams::default()
        },
    ] {
        assert!(matches!(bad.check(), Err(FinetuneError::Param(_))));
    }
}

#[test]
fn cuda_that_cannot_start_is_an_error_not_a_silent_cpu_run() {
    // The CPU build of ONNX Runtime that the tests load has no CUDA provider.
    let cuda = Compute {
        ep: tlearn::backbone::ExecutionProvider::Cuda,
        threads: 1,
    };
    let e = tlearn::finetune::runner::Runner::new(
        &tiny_arch(),
        tlearn::finetune::StepConfig {
            momentum: 0.9,
            weight_decay: 0.0,
        },
        &checkpoint::Tensors::fresh(init()),
        (0.1, 0.1),
        cuda,
    )
    .err()
    .expect("no CUDA here");
    assert!(
        matches!(
            e,
            FinetuneError::Backbone(tlearn::backbone::BackboneError::CudaUnavailable(_))
        ),
        "{e}"
    );
}

/// [`params`] with a warm-up epoch, cosine decay and label smoothing.
fn scheduled(epochs: usize) -> CheckedParams {
    FinetuneParams {
        schedule: tlearn::finetune::schedule::Schedule::Cosine,
        warmup_epochs: 1,
        label_smoothing: 0.1,
        ..(*params(epochs)).clone()
    }
    .check()
    .unwrap()
}

#[test]
fn a_scheduled_smoothed_run_resumes_to_the_uninterrupted_result_and_keeps_its_horizon() {
    let data = tiny_data();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let fit_in = |dir: &Path, p: &CheckedParams, stop_after: Option<usize>| {
        let stop = Stop::new();
        fit(
            p,
            &tiny_arch(),
            init(),
            &data,
            dir,
            (&stop, &mut |event: TrainEvent<'_>| {
                if matches!(event, TrainEvent::Epoch(s) if stop_after == Some(s.epoch)) {
                    stop.request();
                }
            }),
        )
    };
    let whole = fit_in(a.path(), &scheduled(4), None).unwrap();
    let first = fit_in(b.path(), &scheduled(4), Some(2)).unwrap();
    assert_eq!(first.ending, Ending::Interrupted);
    let resumed = fit_in(b.path(), &scheduled(4), None).unwrap();
    assert_eq!(resumed.best, whole.best);
    assert_eq!(resumed.best_epoch, whole.best_epoch);
    let specs = tiny_arch().params();
    let last = |dir: &Path| {
        checkpoint::load(&dir.join("checkpoint.onnx"), &specs, true)
            .unwrap()
            .1
    };
    assert_eq!(last(a.path()), last(b.path()));
    // 10 steps per epoch: epoch 1 warms up to 10 / 11, then the cosine falls over 30 steps.
    let scales: Vec<f64> = whole.history.iter().map(|h| h.lr_scale).collect();
    assert!((scales[0] - 10.0 / 11.0).abs() < 1e-6, "{scales:?}");
    let cosine = |t: f64| (1.0 + (std::f64::consts::PI * t).cos()) / 2.0;
    for (e, s) in scales.iter().enumerate().skip(1) {
        assert!(
            (s - cosine((10 * e - 1) as f64 / 30.0)).abs() < 1e-6,
            "{scales:?}"
        );
    }
    // The schedule differs from a constant run's: not the same parameters.
    let c = tempfile::tempdir().unwrap();
    assert_ne!(fit_in(c.path(), &params(4), None).unwrap().best, whole.best);
    // The cosine's rates depend on the epochs: more epochs on resume is another run.
    let e = fit_in(a.path(), &scheduled(6), None).unwrap_err();
    assert!(e.to_string().contains("other settings"), "{e}");
}

#[test]
fn a_warm_up_as_long_as_the_run_and_smoothing_of_one_are_refused() {
    for bad in [
        FinetuneParams {
            epochs: 2,
            warmup_epochs: 2,
            ..FinetuneParams::default()
        },
        FinetuneParams {
            label_smoothing: 1.0,
            ..FinetuneParams::default()
        },
    ] {
        assert!(matches!(bad.check(), Err(FinetuneError::Param(_))));
    }
}
