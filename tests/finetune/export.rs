//! The exported inference model: backbone with the trained convolutions, head and softmax.

use tlearn::finetune::network::{inference_model, pretrained};
use tlearn::finetune::{eval_graph, Arch, ConvLayer, HeadPool, ParamStore, StoreError};
use tlearn::onnx::{attr_ints, DataType, Dim, GraphBuilder, Model};

use super::fd::{open_model, run, uniform, Input};

/// Conv output of Keras layer `block5_conv3` as tf2onnx names it.
const CONV_OUT: &str = "functional_1/block5_conv3_1/BiasAdd:0";

/// A one-conv "VGG": input [N, 2, 8, 8] -> block5_conv3 (3 channels) -> ReLU -> MaxPool -> block5_pool.
fn tiny_backbone() -> Model {
    let mut b = GraphBuilder::new("tiny_backbone");
    b.input(
        "input",
        DataType::Float,
        &[Dim::sym("batch"), 2.into(), 8.into(), 8.into()],
    );
    b.initializer_f32("w5", &uniform(40, 3 * 2 * 9, 0.5), &[3, 2, 3, 3]);
    b.initializer_f32("b5", &uniform(41, 3, 0.1), &[3]);
    b.node(
        "Conv",
        &["input", "w5", "b5"],
        &[CONV_OUT],
        vec![
            attr_ints("kernel_shape", &[3, 3]),
            attr_ints("pads", &[1, 1, 1, 1]),
        ],
    );
    b.node("Relu", &[CONV_OUT], &["relu5"], vec![]);
    b.node(
        "MaxPool",
        &["relu5"],
        &["block5_pool"],
        vec![
            attr_ints("kernel_shape", &[2, 2]),
            attr_ints("strides", &[2, 2]),
        ],
    );
    b.output_unshaped("block5_pool", DataType::Float);
    b.build(13).unwrap()
}

fn arch(convs: Vec<ConvLayer>, input: Vec<usize>) -> Arch {
    Arch {
        input,
        convs,
        pool: HeadPool::Flatten,
        hidden: 4,
        classes: 3,
        head_scale: 0.7,
    }
}

fn random_params(arch: &Arch) -> ParamStore {
    let mut seed = 50;
    ParamStore::from_specs(&arch.params(), |p| {
        seed += 1;
        Ok::<_, StoreError>(uniform(seed, p.len(), 0.5))
    })
    .unwrap()
}

/// Runs the eval graph of `arch` with `params` on `x` ([2, ...input]).
fn eval(arch: &Arch, params: &ParamStore, x: Vec<f32>) -> Vec<f32> {
    let mut inputs = vec![(
        "x".to_string(),
        Input::F32([vec![2], arch.input.clone()].concat(), x),
    )];
    for p in arch.params() {
        let v = params.values(&p).unwrap().to_vec();
        inputs.push((p.name.clone(), Input::F32(p.dims.clone(), v)));
    }
    let inputs: Vec<(&str, Input)> = inputs
        .iter()
        .map(|(n, v)| (n.as_str(), v.clone()))
        .collect();
    run(
        &mut open_model(&eval_graph(arch).unwrap()),
        &inputs,
        &["probabilities"],
    )
    .remove(0)
}

fn image_input(x: &[f32]) -> [(&'static str, Input); 1] {
    [("input", Input::F32(vec![2, 2, 8, 8], x.to_vec()))]
}

#[test]
fn pretrained_weights_come_from_the_backbone() {
    let backbone = tiny_backbone();
    let conv = ConvLayer {
        name: "block5_conv3".into(),
        out: 3,
        pool: true,
    };
    let weights = pretrained(&backbone, &arch(vec![conv], vec![2, 8, 8]).convs).unwrap();
    let w = weights.get("block5_conv3.w").unwrap();
    assert_eq!(w.values, backbone.initializer_f32("w5").unwrap());
    assert_eq!(w.dims, [3, 2, 3, 3]);
    let b = weights.get("block5_conv3.b").unwrap();
    assert_eq!(b.values, backbone.initializer_f32("b5").unwrap());
    let missing = ConvLayer {
        name: "block5_conv1".into(),
        out: 3,
        pool: false,
    };
    assert!(pretrained(&backbone, &arch(vec![missing], vec![2, 8, 8]).convs).is_err());
}

#[test]
fn exported_head_only_model_matches_backbone_then_eval_graph() {
    let backbone = tiny_backbone();
    let head = arch(Vec::new(), vec![3 * 4 * 4]);
    let params = random_params(&head);
    let x = uniform(70, 2 * 2 * 8 * 8, 1.0);
    let pool = run(
        &mut open_model(&backbone),
        &image_input(&x),
        &["block5_pool"],
    )
    .remove(0);
    let expected = eval(&head, &params, pool);
    let exported = inference_model(&backbone, &head, &params).unwrap();
    let got = run(
        &mut open_model(&exported),
        &image_input(&x),
        &["probabilities"],
    )
    .remove(0);
    assert_eq!(got.len(), 6);
    for (g, e) in got.iter().zip(&expected) {
        assert!((g - e).abs() < 1e-5, "{got:?} vs {expected:?}");
    }
}

#[test]
fn exported_model_carries_the_trained_convolution() {
    let backbone = tiny_backbone();
    let conv = ConvLayer {
        name: "block5_conv3".into(),
        out: 3,
        pool: true,
    };
    let tail = arch(vec![conv], vec![2, 8, 8]);
    let params = random_params(&tail);
    let w = &params.get("block5_conv3.w").unwrap().values;
    assert_ne!(w, &backbone.initializer_f32("w5").unwrap());
    let x = uniform(71, 2 * 2 * 8 * 8, 1.0);
    // The tiny backbone's input is what the tail reads (block4_pool in VGG16).
    let expected = eval(&tail, &params, x.clone());
    let exported = inference_model(&backbone, &tail, &params).unwrap();
    let got = run(
        &mut open_model(&exported),
        &image_input(&x),
        &["probabilities"],
    )
    .remove(0);
    for (g, e) in got.iter().zip(&expected) {
        assert!((g - e).abs() < 1e-5, "{got:?} vs {expected:?}");
    }
    assert_eq!(exported.output_names(), vec!["probabilities"]);
}

#[test]
fn written_graphs_pass_the_onnx_checker() {
    let _serial = super::common::fixtures::serial();
    let dir = tempfile::tempdir().unwrap();
    let step = tlearn::finetune::StepConfig {
        momentum: 0.9,
        weight_decay: 5e-4,
    };
    let mut files = Vec::new();
    for pool in [HeadPool::Flatten, HeadPool::Avg] {
        let arch = Arch {
            pool,
            ..super::step::tiny_arch()
        };
        for (kind, model) in [
            ("train", tlearn::finetune::train_graph(&arch, step).unwrap()),
            ("eval", eval_graph(&arch).unwrap()),
        ] {
            let path = dir.path().join(format!("{kind}-{pool:?}.onnx"));
            model.save(&path).unwrap();
            files.push(path);
        }
    }
    let script = "import onnx, sys\nfor p in sys.argv[1:]:\n    onnx.checker.check_model(onnx.load(p), full_check=True)\nprint('checked', len(sys.argv) - 1)";
    let out = super::common::fixtures::command(super::common::fixtures::python())
        .arg("-c")
        .arg(script)
        .args(&files)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "onnx.checker: {stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "checked 4");
}
