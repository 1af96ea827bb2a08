//! tlearn: transfer learning on small image data sets.
//!
//! The modules follow the pipeline, data flowing one way:
//! [`dataset`] -> [`augment`] -> [`preprocess`] -> [`backbone`] (ONNX Runtime) -> [`cache`]
//! (HDF5), with [`extract`] driving the whole run; then [`classify`] or [`finetune`] ->
//! [`report`], and [`predict`] for new images. [`onnx`] reads, edits and writes ONNX models.
//! docs/ARCHITECTURE.md draws the picture and says where a new backbone, classifier or report
//! section goes.
//!
//! # Example
//!
//! The features of a folder of images (one sub-folder per class), a linear SVM trained on them
//! with C chosen on validation images, and the class of a new image. The backbone is a tiny
//! generated ONNX model here (one max pooling; VGG16 in real use, from `make models`), run by
//! ONNX Runtime (its library found through `ORT_DYLIB_PATH`).
//!
//! ```
//! use std::ops::ControlFlow;
//! use tlearn::progress::Stop;
//! use tlearn::{
//!     CacheData, ExecutionProvider, ExtractConfig, Kind, Pooling, PredictOptions, Predictor,
//!     TrainConfig,
//! };
//! # use tlearn::onnx::{attr_ints, DataType, Dim, GraphBuilder};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # // Two classes of 40 x 40 images, reddish and bluish, 8 of each.
//! # let colour = |class: u8, i: u8| match class {
//! #     0 => image::Rgb([200 + 5 * i, 20 + 3 * i, 30]),
//! #     _ => image::Rgb([30, 20 + 3 * i, 200 + 5 * i]),
//! # };
//! # let images = dir.path().join("images");
//! # for (class, name) in ["red", "blue"].iter().enumerate() {
//! #     std::fs::create_dir_all(images.join(name))?;
//! #     for i in 0..8u8 {
//! #         let img = image::RgbImage::from_pixel(40, 40, colour(class as u8, i));
//! #         img.save(images.join(name).join(format!("{i}.png")))?;
//! #     }
//! # }
//! # // The backbone: input [batch, 3, h, w] -> 2 x 2 max pooling -> `pool`, and its descriptor.
//! # let backbone = dir.path().join("tiny.onnx");
//! # let mut graph = GraphBuilder::new("tiny");
//! # let dims = |c: &str| [Dim::sym("batch"), 3.into(), Dim::sym(c), Dim::sym(c)];
//! # graph.input("input", DataType::Float, &dims("h"));
//! # let pool = vec![attr_ints("kernel_shape", &[2, 2]), attr_ints("strides", &[2, 2])];
//! # graph.node("MaxPool", &["input"], &["pool"], pool);
//! # graph.output("pool", DataType::Float, &dims("p"));
//! # graph.build(13)?.save(&backbone)?;
//! # let descriptor = format!(
//! #     "name = \"tiny\"\nsha256 = \"{}\"\ninput = \"input\"\nlayers = [\"pool\"]\n\n[preprocessing]\n{}",
//! #     tlearn::backbone::sha256_file(&backbone)?,
//! #     toml::to_string(&tlearn::preprocess::Preprocessing::caffe(32))?
//! # );
//! # std::fs::write(dir.path().join("tiny.toml"), descriptor)?;
//! # let cache = dir.path().join("features.h5");
//! # let new_image = dir.path().join("new.png");
//! # image::RgbImage::from_pixel(40, 40, image::Rgb([220, 30, 40])).save(&new_image)?;
//! // 1. Features: every image through the backbone, average-pooled, into an HDF5 cache, with
//! //    one seeded split of each class into training, validation and test images.
//! let features = ExtractConfig {
//!     data: images,
//!     unlabeled: false,
//!     backbone: backbone.clone(),
//!     layers: vec!["pool".into()],
//!     pooling: Pooling::Avg,
//!     reprs: Vec::new(),
//!     recipe: Default::default(),
//!     copies: 0,
//!     augment_all: false,
//!     split: Default::default(),
//!     splits: 1,
//!     seed: 7,
//!     batch: 4,
//!     ep: ExecutionProvider::Cpu,
//!     threads: 1,
//!     strict: false,
//!     limits: Default::default(),
//!     per_class: None,
//!     size: None,
//!     cache: cache.clone(),
//!     progress: None,
//! };
//! tlearn::extract::run(&features, &Stop::new())?;
//!
//! // 2. Train: a linear SVM, C chosen on the validation images, scored on the test images.
//! let data = CacheData::load(&cache)?;
//! let svm = TrainConfig::new(Kind::Svm);
//! let (outcome, model) = tlearn::classify::train::run(&data, &svm, &mut |_: String| {})?;
//! let test = &outcome.splits[0].test;
//! assert!(test.iter().all(|t| t.predicted == t.label), "the colours separate");
//!
//! // 3. Predict: a new image through the same backbone, pooling and preprocessing.
//! let cpu = ExecutionProvider::Cpu;
//! let mut predictor = Predictor::linear(model, Some(backbone.as_path()), cpu, 1)?;
//! let mut best = String::new();
//! let inputs = std::iter::once(Ok(new_image));
//! predictor.predict(inputs, &PredictOptions::default(), &mut |p| {
//!     best = p.top.expect("the image decodes")[0].class.clone();
//!     ControlFlow::Continue(())
//! })?;
//! assert_eq!(best, "red");
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod augment;
pub mod auto;
pub mod backbone;
pub mod bench;
pub mod cache;
pub mod chart;
pub mod classify;
pub mod dataset;
pub mod export;
pub mod extract;
pub mod finetune;
pub mod input;
pub mod numeric;
pub mod onnx;
pub mod options;
pub mod output;
pub mod predict;
pub mod preprocess;
pub mod progress;
pub mod quantize;
pub mod report;
pub mod runs;
pub mod shard;

// The types a user of the library meets first, one per stage.
pub use backbone::{Backbone, Descriptor, ExecutionProvider, Pooling};
pub use cache::FeatureCache;
pub use classify::data::CacheData;
pub use classify::persist::TrainedModel;
pub use classify::train::TrainConfig;
pub use classify::Kind;
pub use dataset::DataSet;
pub use extract::ExtractConfig;
pub use predict::{PredictOptions, Predictor};
pub use report::RunReport;
