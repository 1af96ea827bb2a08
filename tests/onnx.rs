//! Integration tests of `tlearn::onnx`: file round trips and cutting feature extractors.

use crate::common;

use common::nhwc_names::{FLAT, HEAD, INPUT, POOL, RELU, TRANSPOSED};
use common::{tiny_nhwc_model, tiny_vgg};
use tlearn::onnx::{dims_of, CutSpec, Dim, Model, OnnxError};

fn spec(outputs: &[(&str, &str)], nchw_input: bool, free_dims: bool) -> CutSpec {
    CutSpec {
        outputs: outputs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        nchw_input,
        free_dims,
    }
}

fn op_types(m: &Model) -> Vec<&str> {
    m.graph().node.iter().map(|n| n.op_type()).collect()
}

fn input_dims(m: &Model) -> Vec<Dim> {
    dims_of(&m.graph().input[0]).expect("input has a declared shape")
}

fn initializer_names(m: &Model) -> Vec<&str> {
    m.graph().initializer.iter().map(|t| t.name()).collect()
}

#[test]
fn save_load_round_trip_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.onnx");
    let model = tiny_vgg();
    model.save(&path).unwrap();
    let on_disk = std::fs::read(&path).unwrap();
    assert_eq!(on_disk, model.to_bytes());
    let loaded = Model::load(&path).unwrap();
    assert_eq!(loaded, model);
    assert_eq!(loaded.to_bytes(), on_disk);
    // Nothing but the model is left behind, and overwriting works.
    loaded.save(&path).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    // The model, and the record that tlearn wrote it.
    assert_eq!(names, vec![tlearn::output::MANIFEST, "tiny.onnx"]);
}

#[test]
fn load_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.onnx");
    let e = Model::load(&missing).unwrap_err();
    assert!(matches!(e, OnnxError::Read { .. }));
    assert!(e.to_string().contains("missing.onnx"), "{e}");

    let garbage = dir.path().join("garbage.onnx");
    std::fs::write(&garbage, b"\xff\xff\xff not a protobuf").unwrap();
    let e = Model::load(&garbage).unwrap_err();
    assert!(matches!(e, OnnxError::Decode { .. }));
    assert!(e.to_string().contains("garbage.onnx"), "{e}");

    let e = Model::from_bytes(&[]).unwrap_err();
    assert!(matches!(e, OnnxError::NoGraph { .. }), "{e}");
}

#[test]
fn save_where_a_file_blocks_the_folder_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "not a folder").unwrap();
    let path = dir.path().join("file/m.onnx");
    let e = tiny_vgg().save(&path).unwrap_err();
    assert!(matches!(e, OnnxError::Write(_)));
    assert!(e.to_string().contains("m.onnx"), "{e}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no partial file left"
    );
}

#[test]
fn initializers_read_and_write_as_f32() {
    let mut m = tiny_vgg();
    let w = m.initializer_f32("block1_B").unwrap();
    assert_eq!(w.len(), 4);
    assert!(w.iter().all(|v| v.abs() <= 0.05));
    m.set_initializer_f32("block1_B", &[1.0, 2.0, 3.0, 4.0])
        .unwrap();
    assert_eq!(
        m.initializer_f32("block1_B").unwrap(),
        vec![1.0, 2.0, 3.0, 4.0]
    );
    assert_eq!(m.initializer("block1_B").unwrap().dims, vec![4]);
    assert!(m.set_initializer_f32("block1_B", &[1.0]).is_err());
    assert!(m.initializer_f32("nope").is_err());
}

#[test]
fn tensor_names_list_node_outputs_in_order() {
    let m = tiny_nhwc_model();
    let names = m.tensor_names();
    assert_eq!(names.first(), Some(&TRANSPOSED));
    assert_eq!(names.last(), Some(&HEAD));
    assert!(names.contains(&POOL));
    assert_eq!(m.input_names(), vec![INPUT]);
    assert_eq!(m.output_names(), vec![HEAD]);
}

#[test]
fn cut_prunes_the_head_and_renames_the_output() {
    let mut m = tiny_nhwc_model();
    m.cut(&spec(&[(POOL, "pool")], false, false)).unwrap();
    assert_eq!(op_types(&m), vec!["Transpose", "Conv", "Relu", "MaxPool"]);
    assert_eq!(m.output_names(), vec!["pool"]);
    assert_eq!(m.graph().node[3].output, vec!["pool"]);
    // No shape was recorded for the pool, so only its rank (derived from the input) is declared.
    assert_eq!(
        dims_of(&m.graph().output[0]).unwrap(),
        vec![Dim::Unknown; 4]
    );
    assert_eq!(
        initializer_names(&m),
        vec!["model/conv/W:0", "model/conv/B:0"]
    );
    assert!(!m.tensor_names().contains(&POOL));
    let kept: Vec<_> = m.graph().value_info.iter().map(|v| v.name()).collect();
    assert_eq!(
        kept,
        vec![RELU],
        "the flatten value info goes with the head"
    );
    // Unchanged input, and the cut model survives a byte round trip.
    assert_eq!(
        input_dims(&m),
        vec![Dim::sym("unk__9"), 8.into(), 8.into(), 3.into()]
    );
    assert_eq!(Model::from_bytes(&m.to_bytes()).unwrap(), m);
}

#[test]
fn cut_keeps_shared_trunk_for_several_outputs() {
    let mut m = tiny_vgg();
    m.cut(&spec(&[("block1_pool", "b1")], false, false))
        .unwrap();
    assert_eq!(op_types(&m), vec!["Conv", "Relu", "MaxPool"]);
    assert_eq!(initializer_names(&m), vec!["block1_W", "block1_B"]);
    assert_eq!(
        dims_of(&m.graph().output[0]).unwrap(),
        vec![Dim::sym("batch"), 4.into(), Dim::sym("h1"), Dim::sym("w1")],
        "known output shapes are kept"
    );

    let mut m = tiny_vgg();
    m.cut(&spec(
        &[("block2_pool", "b2"), ("block1_pool", "b1")],
        false,
        false,
    ))
    .unwrap();
    assert_eq!(m.output_names(), vec!["b2", "b1"]);
    assert_eq!(m.graph().node.len(), 6);
    assert_eq!(
        m.graph().node[3].input[0],
        "b1",
        "consumers follow the rename"
    );
}

#[test]
fn nchw_input_removes_the_transpose_and_declares_nchw() {
    let mut m = tiny_nhwc_model();
    m.cut(&spec(&[(POOL, "pool")], true, false)).unwrap();
    assert_eq!(op_types(&m), vec!["Conv", "Relu", "MaxPool"]);
    assert_eq!(m.graph().node[0].input[0], INPUT);
    assert_eq!(
        input_dims(&m),
        vec![Dim::sym("unk__9"), 3.into(), 8.into(), 8.into()]
    );
    assert!(!m.tensor_names().contains(&TRANSPOSED));
}

#[test]
fn free_dims_makes_batch_and_spatial_dims_symbolic() {
    let mut m = tiny_nhwc_model();
    m.cut(&spec(&[(POOL, "pool")], true, true)).unwrap();
    assert_eq!(
        input_dims(&m),
        vec![
            Dim::sym("batch"),
            3.into(),
            Dim::sym("height"),
            Dim::sym("width")
        ]
    );
    assert!(
        m.graph().value_info.is_empty(),
        "stale fixed intermediate shapes are dropped"
    );

    // Without nchw_input the input is still NHWC, so H and W are axes 1 and 2.
    let mut m = tiny_nhwc_model();
    m.cut(&spec(&[(POOL, "pool")], false, true)).unwrap();
    assert_eq!(
        input_dims(&m),
        vec![
            Dim::sym("batch"),
            Dim::sym("height"),
            Dim::sym("width"),
            3.into()
        ]
    );
}

#[test]
fn free_dims_keeps_known_output_rank() {
    let mut m = tiny_nhwc_model();
    m.cut(&spec(&[(RELU, "relu")], true, true)).unwrap();
    let dims = dims_of(&m.graph().output[0]).unwrap();
    assert_eq!(dims.len(), 4);
    assert_eq!(dims[0], Dim::sym("batch"));
    assert!(dims.iter().all(|d| matches!(d, Dim::Sym(_))), "{dims:?}");
}

#[test]
fn unknown_tensor_lists_candidates_and_leaves_model_unchanged() {
    let mut m = tiny_nhwc_model();
    let before = m.clone();
    let e = m
        .cut(&spec(&[("MaxPool2d", "pool")], false, false))
        .unwrap_err();
    match &e {
        OnnxError::UnknownTensor { candidates, .. } => {
            assert!(candidates.contains(&POOL.to_string()))
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(e.to_string().contains(POOL), "{e}");
    // A layer name typed with a scope that does not exist still finds the tensor.
    let e = m
        .cut(&spec(&[("other/MaxPool2d:0", "pool")], false, false))
        .unwrap_err();
    assert!(e.to_string().contains(POOL), "{e}");
    assert_eq!(m, before);
}

#[test]
fn missing_transpose_pattern_is_refused() {
    let mut m = tiny_vgg();
    let before = m.clone();
    let e = m
        .cut(&spec(&[("block1_pool", "b1")], true, false))
        .unwrap_err();
    assert!(matches!(e, OnnxError::Pattern(_)));
    let msg = e.to_string();
    assert!(
        msg.contains("Conv") && msg.contains("drop nchw_input"),
        "{msg}"
    );
    assert_eq!(m, before, "a refused cut changes nothing");
}

#[test]
fn bad_output_names_are_refused() {
    let mut m = tiny_nhwc_model();
    for outputs in [
        vec![],
        vec![(POOL, "a"), (RELU, "a")],
        vec![(POOL, "a"), (POOL, "b")],
        vec![(POOL, FLAT)],
        vec![(POOL, "")],
    ] {
        let e = m.cut(&spec(&outputs, false, false)).unwrap_err();
        assert!(matches!(e, OnnxError::Cut(_)), "{outputs:?}: {e}");
    }
    let e = m.cut(&spec(&[(TRANSPOSED, "t")], true, false)).unwrap_err();
    assert!(e.to_string().contains("input transpose"), "{e}");
}

/// The real tf2onnx VGG16 round-trips byte for byte, and cutting it the way `make models` does
/// gives exactly the model whose sha256 `models/vgg16.toml` records.
#[test]
fn cut_real_vgg16_matches_the_descriptor() {
    let src = common::fixtures::repo().join(".cache/tumor_vgg16.onnx");
    assert!(
        src.exists(),
        "{} is missing: run `make models`",
        src.display()
    );
    let original = std::fs::read(&src).unwrap();
    let mut m = Model::from_bytes(&original).unwrap();
    assert_eq!(m.to_bytes(), original, "decode + encode is byte-identical");
    let outputs: Vec<(String, String)> = (1..=5)
        .map(|k| {
            (
                format!("functional_1/block{k}_pool_1/MaxPool2d:0"),
                format!("block{k}_pool"),
            )
        })
        .collect();
    m.cut(&CutSpec {
        outputs,
        nchw_input: true,
        free_dims: true,
    })
    .unwrap();
    assert_eq!(
        m.output_names(),
        [
            "block1_pool",
            "block2_pool",
            "block3_pool",
            "block4_pool",
            "block5_pool"
        ]
    );
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("vgg16.onnx");
    m.save(&cut).unwrap();
    let descriptor = tlearn::backbone::Descriptor::for_model(&common::fixtures::vgg16()).unwrap();
    assert_eq!(
        tlearn::backbone::sha256_file(&cut).unwrap(),
        descriptor.sha256,
        "the cut changed: if on purpose, rebuild with `make models` and update models/vgg16.toml"
    );
}
