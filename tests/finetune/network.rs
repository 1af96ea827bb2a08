//! Which VGG16 convolutions follow a cached layer, which of them train, and bad requests.

use tlearn::finetune::network::{tail, Unfreeze};
use tlearn::finetune::FinetuneError;
use tlearn::options::Opt;

fn names(convs: &[tlearn::finetune::ConvLayer]) -> Vec<&str> {
    convs.iter().map(|c| c.name.as_str()).collect()
}

#[test]
fn unfreezing_the_last_convolution_of_block_5_freezes_the_two_before_it() {
    let t = tail("block4_pool", 512 * 14 * 14, Unfreeze::Last(1)).unwrap();
    assert_eq!(t.input, [512, 14, 14]);
    assert_eq!(names(&t.frozen), ["block5_conv1", "block5_conv2"]);
    assert_eq!(names(&t.trainable), ["block5_conv3"]);
    assert!(t.trainable[0].pool, "block5_pool follows block5_conv3");
    assert_eq!(t.trainable_input(), [512, 14, 14]);
}

#[test]
fn the_head_alone_on_block4_pool_runs_all_of_block_5_frozen() {
    let t = tail("block4_pool", 512 * 14 * 14, Unfreeze::Last(0)).unwrap();
    assert_eq!(t.frozen.len(), 3);
    assert!(t.trainable.is_empty());
    assert_eq!(t.trainable_input(), [512, 7, 7]);
    let t = tail("block5_pool", 512 * 7 * 7, Unfreeze::Last(0)).unwrap();
    assert!(t.frozen.is_empty() && t.trainable.is_empty());
    assert_eq!(t.input, [512, 7, 7]);
}

#[test]
fn all_unfreezes_every_convolution_after_the_cached_layer() {
    let t = tail("block3_pool", 256 * 28 * 28, Unfreeze::All).unwrap();
    assert!(t.frozen.is_empty());
    assert_eq!(
        names(&t.trainable),
        [
            "block4_conv1",
            "block4_conv2",
            "block4_conv3",
            "block5_conv1",
            "block5_conv2",
            "block5_conv3"
        ]
    );
    assert_eq!("all".parse::<Unfreeze>().unwrap(), Unfreeze::All);
    assert_eq!("2".parse::<Unfreeze>().unwrap(), Unfreeze::Last(2));
    assert!("two".parse::<Unfreeze>().unwrap_err().contains("all"));
}

#[test]
fn impossible_requests_say_what_to_do() {
    let e = tail("block5_pool", 25088, Unfreeze::Last(1)).unwrap_err();
    assert!(matches!(e, FinetuneError::Param(_)), "{e}");
    assert!(
        e.to_string().contains(&format!("{} 1", Opt::Unfreeze))
            && e.to_string().contains("earlier layer"),
        "{e}"
    );
    let e = tail("block5_conv3", 25088, Unfreeze::Last(0)).unwrap_err();
    assert!(e.to_string().contains("block4_pool"), "{e}");
    let e = tail("block4_pool", 1000, Unfreeze::Last(0)).unwrap_err();
    assert!(e.to_string().contains("512 square maps"), "{e}");
}
