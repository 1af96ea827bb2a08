//! Training data read from a real (tiny) feature cache.

use tlearn::finetune::data::Data;
use tlearn::finetune::run::{run, RunConfig};
use tlearn::finetune::train::FinetuneParams;
use tlearn::finetune::{FinetuneError, HeadPool, Unfreeze};

use super::common::fixtures::serial;

/// 3 classes of 8 generated images through the tiny backbone, 2 flipped copies, 2 splits.
fn tiny_cache(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let cache = super::common::fixtures::tiny_cache(dir, |c| {
        c.recipe = "flip".parse().unwrap();
        c.copies = 2;
    });
    (cache, dir.join("tiny.onnx"))
}

#[test]
fn cache_rows_split_into_parts_with_copies_only_in_training() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (cache, _) = tiny_cache(dir.path());
    let c = tlearn::cache::FeatureCache::open(&cache).unwrap();
    let (copies, parts, paths) = (c.copies().unwrap(), c.splits().unwrap(), c.paths().unwrap());
    drop(c);
    for split in 0..2 {
        let data = Data::from_cache(&cache, split, None, None).unwrap();
        assert_eq!(data.classes(), 3);
        assert!(data.train.iter().any(|&r| copies[r] > 0), "copies train");
        for &r in &data.train {
            assert_eq!(parts[[r, split]], 0);
        }
        for (part, rows) in [(1, &data.val), (2, &data.test)] {
            assert!(!rows.is_empty());
            for &r in rows.iter() {
                assert_eq!((parts[[r, split]], copies[r]), (part, 0), "row {r}");
                assert!(
                    !data.train.iter().any(|&t| paths[t] == paths[r]),
                    "{} leaks",
                    paths[r]
                );
            }
        }
        // Every original image is in exactly one part.
        let originals = copies.iter().filter(|c| **c == 0).count();
        let held_out = data.val.len() + data.test.len();
        let trained = data.train.iter().filter(|&&r| copies[r] == 0).count();
        assert_eq!(trained + held_out, originals);
    }
    let e = Data::from_cache(&cache, 2, None, None).unwrap_err();
    assert!(e.to_string().contains("split 2 does not exist"), "{e}");
    let e = Data::from_cache(&cache, 0, None, Some(vec![7, 7])).unwrap_err();
    assert!(matches!(e, FinetuneError::Data(_)), "{e}");
}

#[test]
fn a_run_on_a_layer_it_cannot_train_from_is_refused_with_the_reason() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (cache, model) = tiny_cache(dir.path());
    let cfg = RunConfig {
        features: cache,
        repr: None,
        split: 0,
        backbone: model,
        unfreeze: Unfreeze::Last(0),
        pool: HeadPool::Flatten,
        hidden: 4,
        out: dir.path().join("run"),
        init_from: None,
    };
    let params = FinetuneParams::default().check().unwrap();
    // The tiny cache's block2_pool rows (8 x 8 x 8 values) fit VGG16's 128 channels of 2 x 2,
    // but the frozen block-3 convolutions that would follow are not in the tiny backbone.
    let e = run(&cfg, &params, &mut |_| true).unwrap_err();
    assert!(e.to_string().contains("no convolution block3_conv1"), "{e}");
    assert!(!dir.path().join("run").exists(), "nothing written");
}
