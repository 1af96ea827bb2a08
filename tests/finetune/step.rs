//! A whole training step of a tiny conv tail + head against finite differences.

use super::fd::{assert_close, open_model, run, slopes, uniform, Input};
use tlearn::backbone::Compute;
use tlearn::finetune::bench::{time_stage2, FORMULATIONS};
use tlearn::finetune::checkpoint::Tensors;
use tlearn::finetune::grad::ConvGrad;
use tlearn::finetune::train::initial_params;
use tlearn::finetune::{
    train_graph, train_graph_as, Arch, ConvLayer, Group, HeadPool, ParamSpec, ParamStore,
    StepConfig, StoreError,
};

/// Two convolutions (the first pooled), then the head: every backward builder in one graph.
pub fn tiny_arch() -> Arch {
    let conv = |name: &str, out, pool| ConvLayer {
        name: name.into(),
        out,
        pool,
    };
    Arch {
        input: vec![2, 4, 4],
        convs: vec![conv("c1", 3, true), conv("c2", 2, false)],
        pool: HeadPool::Flatten,
        hidden: 5,
        classes: 3,
        head_scale: 0.5,
    }
}

struct Step {
    inputs: Vec<(String, Input)>,
}

impl Step {
    fn new(arch: &Arch, momenta_scale: f32, lrs: (f32, f32)) -> Step {
        let n = 3;
        let mut inputs = vec![
            (
                "x".to_string(),
                Input::F32(vec![n, 2, 4, 4], uniform(20, n * 32, 1.0)),
            ),
            ("labels".to_string(), Input::I64(vec![n], vec![2, 0, 1])),
            (
                "dropout_mask".to_string(),
                Input::F32(
                    vec![n, 5],
                    vec![
                        2.0, 0.0, 2.0, 2.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 0.0, 2.0, 2.0,
                    ],
                ),
            ),
            ("lr_pretrained".to_string(), Input::F32(vec![], vec![lrs.0])),
            ("lr_new".to_string(), Input::F32(vec![], vec![lrs.1])),
        ];
        for (i, p) in arch.params().iter().enumerate() {
            let fan_in: usize = p
                .dims
                .iter()
                .skip(if p.dims.len() == 4 { 1 } else { 0 })
                .product();
            let scale = if p.dims.len() == 1 {
                0.1
            } else {
                (3.0 / fan_in as f32).sqrt() * 1.5
            };
            let n = p.len();
            inputs.push((
                p.name.clone(),
                Input::F32(p.dims.clone(), uniform(30 + i as u64, n, scale)),
            ));
            let v = uniform(60 + i as u64, n, momenta_scale);
            inputs.push((p.momentum(), Input::F32(p.dims.clone(), v)));
        }
        Step { inputs }
    }

    fn refs(&self) -> Vec<(&str, Input)> {
        self.inputs
            .iter()
            .map(|(n, v)| (n.as_str(), v.clone()))
            .collect()
    }

    fn f32(&self, name: &str) -> &[f32] {
        match &self.inputs.iter().find(|(n, _)| n == name).unwrap().1 {
            Input::F32(_, v) => v,
            Input::I64(..) => panic!("{name} is i64"),
        }
    }
}

#[test]
fn training_step_gradients_match_finite_differences() {
    check_step_gradients(tiny_arch());
}

#[test]
fn training_step_with_an_average_pooled_head_matches_finite_differences() {
    check_step_gradients(Arch {
        pool: HeadPool::Avg,
        ..tiny_arch()
    });
}

/// lr 1, momenta 0, no decay: `p - p.new` is exactly the gradient.
const PLAIN: StepConfig = StepConfig {
    momentum: 0.9,
    weight_decay: 0.0,
};

fn check_step_gradients(arch: Arch) {
    check_graph_gradients(&arch, &train_graph(&arch, PLAIN).unwrap());
}

/// Every parameter's `p - p.new` of the training step `graph` of `arch` (written with
/// [`PLAIN`]) against finite differences of its loss.
fn check_graph_gradients(arch: &Arch, graph: &tlearn::onnx::Model) {
    let mut session = open_model(graph);
    let step = Step::new(arch, 0.0, (1.0, 1.0));
    let inputs = step.refs();
    for p in arch.params() {
        let new = format!("{}.new", p.name);
        let out = run(&mut session, &inputs, &[&new]);
        let analytic: Vec<f32> = step
            .f32(&p.name)
            .iter()
            .zip(&out[0])
            .map(|(a, b)| a - b)
            .collect();
        let numeric = slopes(&inputs, &p.name, 1e-3, |shifted| {
            f64::from(run(&mut session, shifted, &["loss"])[0][0])
        });
        assert_close(&p.name, &analytic, &numeric, 3e-4, 2e-2);
    }
}

#[test]
fn training_step_applies_momentum_decay_and_two_learning_rates() {
    let arch = tiny_arch();
    let plain = StepConfig {
        momentum: 0.9,
        weight_decay: 0.0,
    };
    let config = StepConfig {
        momentum: 0.8,
        weight_decay: 0.05,
    };
    let mut reference = open_model(&train_graph(&arch, plain).unwrap());
    let mut session = open_model(&train_graph(&arch, config).unwrap());
    let (lr_pre, lr_new) = (0.03, 0.2);
    let base = Step::new(&arch, 0.0, (1.0, 1.0));
    let step = Step::new(&arch, 0.5, (lr_pre, lr_new));
    for p in arch.params() {
        let (new, vnew) = (format!("{}.new", p.name), format!("{}.new", p.momentum()));
        let g: Vec<f32> = {
            let out = run(&mut reference, &base.refs(), &[&new]);
            base.f32(&p.name)
                .iter()
                .zip(&out[0])
                .map(|(a, b)| a - b)
                .collect()
        };
        let out = run(&mut session, &step.refs(), &[&new, &vnew]);
        let lr = if p.group == Group::Pretrained {
            lr_pre
        } else {
            lr_new
        };
        let decay = if p.decay { 0.05 } else { 0.0 };
        let (w, v) = (step.f32(&p.name), step.f32(&p.momentum()));
        for i in 0..w.len() {
            let v1 = 0.8 * v[i] + g[i] + decay * w[i];
            assert!(
                (out[1][i] - v1).abs() < 1e-5,
                "{} momentum[{i}]: {} vs {v1}",
                p.name,
                out[1][i]
            );
            let w1 = w[i] - lr * v1;
            assert!(
                (out[0][i] - w1).abs() < 1e-5,
                "{}[{i}]: {} vs {w1}",
                p.name,
                out[0][i]
            );
        }
    }
}

#[test]
fn io_bound_steps_equal_plain_runs_that_feed_outputs_back() {
    let arch = tiny_arch();
    let config = StepConfig {
        momentum: 0.9,
        weight_decay: 0.01,
    };
    let (lrs, n) = ((0.05, 0.1), 3);
    let start = Step::new(&arch, 0.0, lrs);
    let specs = arch.params();
    let store = |name: &dyn Fn(&ParamSpec) -> String| {
        ParamStore::from_specs(&specs, |p| {
            Ok::<_, StoreError>(start.f32(&name(p)).to_vec())
        })
        .unwrap()
    };
    let state = tlearn::finetune::checkpoint::Tensors {
        params: store(&|p| p.name.clone()),
        momenta: store(&|p| p.momentum()),
    };
    let mut runner =
        tlearn::finetune::runner::Runner::new(&arch, config, &state, lrs, Compute::cpu(1)).unwrap();
    let mut plain = open_model(&train_graph(&arch, config).unwrap());
    let mut inputs = start.inputs.clone();
    // Three steps: the ping-pong of value sets comes back to the first set once.
    for k in 0..3u64 {
        let x = uniform(100 + k, n * 32, 1.0);
        let labels = vec![k as i64 % 3, 1, 2];
        let mask: Vec<f32> = uniform(200 + k, n * 5, 1.0)
            .iter()
            .map(|u| if *u < 0.0 { 0.0 } else { 2.0 })
            .collect();
        let (loss, _) = runner
            .step(x.clone(), &[2, 4, 4], labels.clone(), mask.clone())
            .unwrap();
        inputs[0].1 = Input::F32(vec![n, 2, 4, 4], x);
        inputs[1].1 = Input::I64(vec![n], labels);
        inputs[2].1 = Input::F32(vec![n, 5], mask);
        let names: Vec<String> = specs
            .iter()
            .flat_map(|p| [format!("{}.new", p.name), format!("{}.new", p.momentum())])
            .collect();
        let mut wanted: Vec<&str> = vec!["loss"];
        wanted.extend(names.iter().map(String::as_str));
        let refs: Vec<(&str, Input)> = inputs
            .iter()
            .map(|(a, b)| (a.as_str(), b.clone()))
            .collect();
        let out = run(&mut plain, &refs, &wanted);
        assert_eq!(loss, out[0][0], "step {k}");
        for (i, p) in specs.iter().enumerate() {
            let at = |name: &str| inputs.iter().position(|(n, _)| n == name).unwrap();
            let (pi, vi) = (at(&p.name), at(&p.momentum()));
            inputs[pi].1 = Input::F32(p.dims.clone(), out[1 + 2 * i].clone());
            inputs[vi].1 = Input::F32(p.dims.clone(), out[2 + 2 * i].clone());
        }
    }
    let bound = runner.state().unwrap();
    for p in &specs {
        let Input::F32(_, expected) = &inputs.iter().find(|(n, _)| *n == p.name).unwrap().1 else {
            unreachable!()
        };
        assert_eq!(bound.params.values(p).unwrap(), expected, "{}", p.name);
    }
}

#[test]
fn every_formulation_of_the_conv_gradients_gives_the_same_step() {
    let arch = tiny_arch();
    let config = StepConfig {
        momentum: 0.9,
        weight_decay: 0.01,
    };
    let step = Step::new(&arch, 0.3, (0.05, 0.1));
    let names: Vec<String> = arch
        .params()
        .iter()
        .map(|p| format!("{}.new", p.name))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut outputs = Vec::new();
    for how in [ConvGrad::Volume, ConvGrad::Im2col, ConvGrad::Transposed] {
        let mut session = open_model(&train_graph_as(&arch, config, how).unwrap());
        outputs.push(run(&mut session, &step.refs(), &names));
    }
    for other in &outputs[1..] {
        for (name, (a, b)) in names.iter().zip(outputs[0].iter().zip(other)) {
            for (x, y) in a.iter().zip(b) {
                assert!(
                    (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
                    "{name}: {x} vs {y}"
                );
            }
        }
    }
}

#[test]
fn the_stage_2_timing_profiles_each_formulation_beside_the_forward_pass() {
    let arch = tiny_arch();
    let state = Tensors::fresh(initial_params(&arch, 3, &ParamStore::new()).unwrap());
    let times = time_stage2(&arch, &state, arch.classes, (4, 2), Compute::cpu(1)).unwrap();
    assert!(times.forward > 0.0);
    assert_eq!(times.steps.len(), FORMULATIONS.len());
    let ops = |k: usize| -> Vec<&str> { times.steps[k].1.iter().map(|o| o.op.as_str()).collect() };
    for (k, how) in FORMULATIONS.iter().enumerate() {
        assert!(times.steps[k].0 > 0.0, "{how:?}");
        // What tells the formulations apart: ConvTranspose, or the im2col slices' Concat.
        let has = |op: &str| ops(k).contains(&op);
        let expected = [
            ("ConvTranspose", *how == ConvGrad::Transposed),
            ("Concat", *how == ConvGrad::Im2col),
        ];
        for (op, present) in expected {
            assert_eq!(has(op), present, "{how:?} {op}: {:?}", ops(k));
        }
    }
}

#[test]
fn a_label_smoothed_training_step_matches_finite_differences_of_its_loss() {
    let arch = tiny_arch();
    let graph = tlearn::finetune::train_graph_smoothed(&arch, PLAIN, ConvGrad::default(), 0.1);
    check_graph_gradients(&arch, &graph.unwrap());
    let e = tlearn::finetune::train_graph_smoothed(&arch, PLAIN, ConvGrad::default(), 1.0);
    assert!(e.unwrap_err().to_string().contains("[0, 1)"));
}

#[test]
fn an_unfreeze_all_step_from_the_input_matches_finite_differences() {
    // VGG16's 13 convolutions in its 5 blocks, 2 channels each, on 3 x 32 x 32 images.
    let convs: Vec<ConvLayer> = tlearn::finetune::network::vgg16_convs()
        .into_iter()
        .map(|c| ConvLayer { out: 2, ..c })
        .collect();
    let tail = tlearn::finetune::network::tail_in(
        &convs,
        tlearn::finetune::network::INPUT_LAYER,
        3 * 32 * 32,
        tlearn::finetune::Unfreeze::All,
    )
    .unwrap();
    assert_eq!(
        (tail.trainable.len(), tail.input.clone()),
        (13, vec![3, 32, 32])
    );
    let arch = Arch {
        input: tail.input.clone(),
        convs: tail.trainable,
        pool: HeadPool::Flatten,
        hidden: 5,
        classes: 3,
        head_scale: 1.0,
    };
    // One image: a ReLU or a max-pooling window whose choice a finite-difference step flips
    // (1024 windows in block 1 alone) spoils a slope, so few positions and a small step.
    let n = 1;
    let mut inputs = vec![
        (
            "x".to_string(),
            Input::F32(vec![n, 3, 32, 32], uniform(21, n * 3072, 1.0)),
        ),
        ("labels".to_string(), Input::I64(vec![n], vec![2])),
        (
            "dropout_mask".to_string(),
            Input::F32(vec![n, 5], vec![2.0, 0.0, 2.0, 2.0, 2.0]),
        ),
        ("lr_pretrained".to_string(), Input::F32(vec![], vec![1.0])),
        ("lr_new".to_string(), Input::F32(vec![], vec![1.0])),
    ];
    for (i, p) in arch.params().iter().enumerate() {
        let fan_in: usize = p.dims.iter().skip(usize::from(p.dims.len() == 4)).product();
        // Biases > 0 and He-like weights keep most ReLUs of 13 layers alive.
        let values = match p.dims.len() {
            1 => uniform(130 + i as u64, p.len(), 0.1)
                .iter()
                .map(|v| v + 0.2)
                .collect(),
            _ => uniform(130 + i as u64, p.len(), (6.0 / fan_in as f32).sqrt()),
        };
        inputs.push((p.name.clone(), Input::F32(p.dims.clone(), values)));
        inputs.push((p.momentum(), Input::F32(p.dims.clone(), vec![0.0; p.len()])));
    }
    let plain = StepConfig {
        momentum: 0.9,
        weight_decay: 0.0,
    };
    let mut session = open_model(&train_graph(&arch, plain).unwrap());
    let refs: Vec<(&str, Input)> = inputs
        .iter()
        .map(|(n, v)| (n.as_str(), v.clone()))
        .collect();
    // The first convolution (its gradient goes back through all 13), one in the middle, the
    // last, and the head.
    for name in [
        "block1_conv1.w",
        "block1_conv1.b",
        "block3_conv2.w",
        "block5_conv3.w",
        "fc1.w",
    ] {
        let new = format!("{name}.new");
        let out = run(&mut session, &refs, &[&new]);
        let Some((_, Input::F32(_, before))) = inputs.iter().find(|(n, _)| n == name) else {
            unreachable!()
        };
        let analytic: Vec<f32> = before.iter().zip(&out[0]).map(|(a, b)| a - b).collect();
        let numeric = slopes(&refs, name, 2e-4, |shifted| {
            f64::from(run(&mut session, shifted, &["loss"])[0][0])
        });
        // The loss is f32: a step of 2e-4 leaves rounding of up to ~3e-4 in a slope.
        assert_close(name, &analytic, &numeric, 6e-4, 2e-2);
    }
}
