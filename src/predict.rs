//! Prediction on new images: the backbone, layers, pooling and preprocessing that made the
//! model's training features, then the model (a linear classifier); or a whole fine-tuned
//! network that ends in class probabilities. Glue between `backbone` and `classify`, which
//! know nothing of each other.
//!
//! Images stream through: a thread decodes the next batches (on rayon's threads) while the
//! backbone runs the current one, and each result is handed to the caller as soon as its batch
//! is done, so memory does not grow with the number of images.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::augment::Recipe;
use crate::backbone::{Backbone, BackboneError, Descriptor, ExecutionProvider};
use crate::cache::IdentityCheck;
use crate::classify::data::to_linfa;
use crate::classify::{ClassifyError, Kind, TrainedModel};
use crate::dataset::ImageWalk;
use crate::options::Opt;
use crate::preprocess::{decode_ahead, load_rgb, DecodeLimits, Prepared, Preprocessing};

/// Images per backbone run unless told otherwise (as `tlearn features`).
pub const DEFAULT_BATCH: usize = 16;

/// The backbone an old model (one that records none) is looked for at.
pub const FALLBACK_BACKBONE: &str = "models/vgg16.onnx";

/// Errors of prediction (an unreadable image is not one: it is a [`Prediction`] of its own).
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// The backbone could not be opened or run.
    #[error(transparent)]
    Backbone(#[from] BackboneError),
    /// The model cannot be loaded or does not match the backbone.
    #[error(transparent)]
    Classify(#[from] ClassifyError),
    /// The backbone the model records is not there any more.
    #[error("the model's backbone {} is missing (sha256 {sha256}): pass {opt_backbone} PATH to that backbone (its descriptor .toml beside it)", path.display(), opt_backbone = Opt::Backbone)]
    BackboneMissing {
        /// The recorded path.
        path: PathBuf,
        /// The sha256 the model's features came from.
        sha256: String,
    },
    /// The backbone file's bytes are not those its descriptor (and so the model) records.
    #[error("backbone {} has changed since the model was trained: its sha256 is {actual}, the model's features came from {expected}. Pass {opt_backbone} PATH to the backbone with sha256 {expected}, or train the model again on features of this one", path.display(), opt_backbone = Opt::Backbone)]
    BackboneChanged {
        /// The backbone file.
        path: PathBuf,
        /// The sha256 the model's features came from.
        expected: String,
        /// The file's sha256 now.
        actual: String,
    },
    /// An empty batch, or no predictions listed per image.
    #[error("{option} 0: give at least 1")]
    Zero {
        /// The option.
        option: Opt,
    },
}

/// One class of an image's ranking with its values: the SVM margin, and the probability where
/// the model gives one (logistic, fine-tuned, or an SVM with its calibration temperature).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScore {
    /// Class name.
    pub class: String,
    /// SVM decision value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub margin: Option<f32>,
    /// Probability.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probability: Option<f32>,
}

/// Which values every [`ClassScore`] of a predictor has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Values {
    /// SVM margins.
    pub margin: bool,
    /// Probabilities.
    pub probability: bool,
}

/// The prediction for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The image.
    pub image: PathBuf,
    /// The best classes, best first; or why the image could not be read.
    pub top: Result<Vec<ClassScore>, String>,
}

/// An image to predict; or a path that could not be listed, with why.
pub type Input = Result<PathBuf, (PathBuf, String)>;

/// How to run a prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictOptions {
    /// Classes kept per image.
    pub top: usize,
    /// Images per backbone run.
    pub batch: usize,
    /// Decoding limits for untrusted images.
    pub limits: DecodeLimits,
}

impl Default for PredictOptions {
    /// The top 5 classes, batches of [`DEFAULT_BATCH`], the default decoding limits.
    fn default() -> Self {
        PredictOptions {
            top: 5,
            batch: DEFAULT_BATCH,
            limits: DecodeLimits::default(),
        }
    }
}

/// The images that paths stand for: a folder for its images (recursively, in name order, see
/// [`ImageWalk`]), anything else for itself (an unreadable one fails when it is predicted).
pub fn expand<I>(paths: I) -> impl Iterator<Item = Input> + Send
where
    I: IntoIterator<Item = PathBuf>,
    I::IntoIter: Send,
{
    paths.into_iter().flat_map(|path| {
        let images: Box<dyn Iterator<Item = Input> + Send> = if path.is_dir() {
            let walk = ImageWalk::new(&path);
            Box::new(walk.map(move |r| r.map_err(|e| (path.clone(), e.to_string()))))
        } else {
            Box::new(std::iter::once(Ok(path)))
        };
        images
    })
}

/// What turns a batch of prepared images into class scores.
pub enum Predictor {
    /// A linear classifier on the features of its backbone.
    Linear {
        /// The classifier (boxed: it is large beside the other variant).
        model: Box<TrainedModel>,
        /// The backbone its features came from.
        net: Backbone,
    },
    /// A network from image to class probabilities (an exported fine-tuned model).
    Network {
        /// The network.
        net: Backbone,
        /// Class names, index = output column.
        class_names: Vec<String>,
    },
}

impl Predictor {
    /// A linear model with the backbone it needs: `backbone` when given, else the one the
    /// model records (see [`backbone_for`] and [`open_backbone`]).
    pub fn linear(
        model: TrainedModel,
        backbone: Option<&Path>,
        ep: ExecutionProvider,
        threads: usize,
    ) -> Result<Predictor, PredictError> {
        let path = backbone_for(&model, backbone)?;
        let net = open_backbone(&model, &path, ep, threads)?;
        Ok(Predictor::Linear {
            model: Box::new(model),
            net,
        })
    }

    /// The model at `path` (a model file, or a run folder holding one; see
    /// [`ModelFile::find`]): a linear one with its backbone (`backbone`, else the one it
    /// records), or a network.
    pub fn open(
        path: &Path,
        backbone: Option<&Path>,
        ep: ExecutionProvider,
        threads: usize,
    ) -> Result<Predictor, PredictError> {
        match ModelFile::find(path) {
            ModelFile::Network(file) => Predictor::network(&file, ep, threads),
            ModelFile::Linear(file) => {
                let model = TrainedModel::load(&file)?;
                Predictor::linear(model, backbone, ep, threads)
            }
        }
    }

    /// A network whose descriptor names its class names and its one output layer.
    pub fn network(
        model: &Path,
        ep: ExecutionProvider,
        threads: usize,
    ) -> Result<Predictor, PredictError> {
        let d = Descriptor::for_model(model)?;
        let (Some(class_names), Some(layer)) = (d.classes.clone(), d.layers.first()) else {
            return Err(ClassifyError::Incompatible(format!(
                "the descriptor of {} names no classes and output layer: it is a backbone, not a classifier; give a trained model (model.json or an exported model.onnx)",
                model.display()
            ))
            .into());
        };
        let net = Backbone::open(model, std::slice::from_ref(layer), ep, threads)?;
        Ok(Predictor::Network { net, class_names })
    }

    /// Which values each ranked class carries.
    pub fn values(&self) -> Values {
        match self {
            Predictor::Linear { model, .. } => Values {
                margin: model.classifier.kind == Kind::Svm,
                probability: model.classifier.kind != Kind::Svm || model.calibration.is_some(),
            },
            Predictor::Network { .. } => Values {
                margin: false,
                probability: true,
            },
        }
    }

    fn net(&mut self) -> &mut Backbone {
        match self {
            Predictor::Linear { net, .. } | Predictor::Network { net, .. } => net,
        }
    }

    /// Class names, index = class.
    pub fn class_names(&self) -> &[String] {
        match self {
            Predictor::Linear { model, .. } => &model.class_names,
            Predictor::Network { class_names, .. } => class_names,
        }
    }

    /// The views of each image to score: the image alone, or with test-time augmentation (a
    /// linear model trained with it) also the augmented copies its cache held: the same
    /// recipe and seed, and as many copies as it used, each image keyed by its path as given.
    fn views(&self) -> Result<Views, PredictError> {
        match self {
            Predictor::Linear { model, .. } if model.tta => {
                let id = &model.identity;
                let recipe = id.augment.parse::<Recipe>().map_err(|e| {
                    ClassifyError::Incompatible(format!(
                        "the model's augmentation recipe {:?} cannot be read ({e}): train it again",
                        id.augment
                    ))
                })?;
                Ok(Views {
                    recipe,
                    seed: id.seed,
                    copies: model.copies_used.map_or(id.copies, |k| k.min(id.copies)),
                })
            }
            _ => Ok(Views::one()),
        }
    }

    /// Scores (`n` x classes, row-major) of `n` prepared images: SVM margins, else
    /// probabilities.
    fn scores(&mut self, tensor: &[f32], n: usize) -> Result<Vec<f32>, PredictError> {
        Ok(match self {
            Predictor::Linear { model, net } => {
                let reprs = model.identity.representations();
                let features = net.representations(tensor, n, &reprs)?;
                let scores = model.scores(to_linfa(features));
                scores.iter().copied().collect()
            }
            Predictor::Network { net, .. } => net.rows(tensor, n)?.iter().copied().collect(),
        })
    }

    /// The `top` best classes of one row of scores, best first (ranked by the score: the SVM's
    /// margin, as its evaluation does; equal scores keep class order, as argmax does).
    fn rank(&self, row: &[f32], top: usize) -> Vec<ClassScore> {
        let (margins, probabilities) = match self {
            Predictor::Linear { model, .. } if model.classifier.kind == Kind::Svm => {
                (Some(row), model.probabilities(row))
            }
            _ => (None, Some(row.to_vec())),
        };
        let mut order: Vec<usize> = (0..row.len()).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        order
            .into_iter()
            .take(top)
            .map(|c| ClassScore {
                class: self.class_names()[c].clone(),
                margin: margins.map(|m| m[c]),
                probability: probabilities.as_ref().map(|p| p[c]),
            })
            .collect()
    }

    /// Predicts every input, handing each result to `on_result` as soon as its batch is done,
    /// in input order; `on_result` returns [`ControlFlow::Break`] to stop early. An image that
    /// cannot be read is a result with its reason, not an error: the others go on.
    pub fn predict<I>(
        &mut self,
        inputs: I,
        options: &PredictOptions,
        on_result: &mut dyn FnMut(Prediction) -> ControlFlow<()>,
    ) -> Result<(), PredictError>
    where
        I: Iterator<Item = Input> + Send,
    {
        if options.batch == 0 {
            return Err(PredictError::Zero { option: Opt::Batch });
        }
        if options.top == 0 {
            return Err(PredictError::Zero { option: Opt::Top });
        }
        let prep = self.net().descriptor.preprocessing.clone();
        let views = self.views()?;
        let mut inputs = inputs;
        let batches = std::iter::from_fn(move || {
            let chunk: Vec<Input> = inputs.by_ref().take(options.batch).collect();
            (!chunk.is_empty()).then_some(chunk)
        });
        decode_ahead(
            batches,
            |chunk| prepare(chunk, &prep, &views, &options.limits),
            |batch| {
                let scores = if batch.views > 0 {
                    self.scores(&batch.tensor, batch.views)?
                } else {
                    Vec::new()
                };
                let mut rows = scores.chunks(self.class_names().len());
                for (image, decoded) in batch.units {
                    let top = decoded.map(|_| {
                        let row = views.mean(&mut rows);
                        self.rank(&row, options.top)
                    });
                    if on_result(Prediction { image, top }).is_break() {
                        return Ok(ControlFlow::Break(()));
                    }
                }
                Ok(ControlFlow::Continue(()))
            },
        )
    }
}

/// The views of an image that are scored and averaged (see [`Predictor::views`]): the image
/// itself, then `copies` augmented copies as the extraction makes them.
struct Views {
    recipe: Recipe,
    seed: u64,
    copies: u32,
}

impl Views {
    /// The image alone.
    fn one() -> Views {
        Views {
            recipe: Recipe::default(),
            seed: 0,
            copies: 0,
        }
    }

    /// The CHW tensors of every view of `img`, back to back; `key` seeds its copies (as the
    /// extraction's relative path does).
    fn tensors(&self, img: &image::RgbImage, key: &str, prep: &Preprocessing) -> Vec<f32> {
        let mut chw = vec![0f32; prep.chw_len() * (1 + self.copies as usize)];
        // Copy 0 samples the identity: the image itself.
        for (copy, out) in (0..=self.copies).zip(chw.chunks_mut(prep.chw_len())) {
            prep.write_view_chw(img, &self.recipe.sample(self.seed, key, copy), out);
        }
        chw
    }

    /// The mean of the next rows of scores, one per view of one image (as the evaluation's
    /// test-time augmentation averages them).
    fn mean<'a>(&self, rows: &mut impl Iterator<Item = &'a [f32]>) -> Vec<f32> {
        let n = 1 + self.copies as usize;
        let mut sum: Vec<f32> = rows.next().expect("one row per view").to_vec();
        for _ in 1..n {
            let row = rows.next().expect("one row per view");
            sum.iter_mut().zip(row).for_each(|(s, v)| *s += v);
        }
        if n > 1 {
            sum.iter_mut().for_each(|s| *s /= n as f32);
        }
        sum
    }
}

/// Decodes and preprocesses a batch (every view of each image) on rayon's threads: each unit
/// is an input image, its views in the tensor or why it cannot be read.
fn prepare(
    chunk: Vec<Input>,
    prep: &Preprocessing,
    views: &Views,
    limits: &DecodeLimits,
) -> Prepared<PathBuf> {
    Prepared::build(chunk, prep.chw_len(), |input| match input {
        Ok(path) => {
            let key = path.to_string_lossy().replace('\\', "/");
            let tensor = load_rgb(&path, limits)
                .map(|img| views.tensors(&img, &key, prep))
                .map_err(|e| e.to_string());
            (path, tensor)
        }
        Err((path, reason)) => (path, Err(reason)),
    })
}

/// A trained model's file, by what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelFile {
    /// A linear classifier (`model.json`), run on its backbone's features.
    Linear(PathBuf),
    /// A network from pixels to probabilities (a fine-tuned or exported `model.onnx`).
    Network(PathBuf),
}

impl ModelFile {
    /// The model in a run folder: its linear model.json, else its fine-tuned model.onnx; a
    /// file stands for itself (a network when it ends in `.onnx`).
    pub fn find(path: &Path) -> ModelFile {
        let file = if path.is_dir() {
            let json = path.join("model.json");
            if json.exists() {
                json
            } else {
                path.join("model.onnx")
            }
        } else {
            path.to_path_buf()
        };
        if file.extension().is_some_and(|e| e == "onnx") {
            ModelFile::Network(file)
        } else {
            ModelFile::Linear(file)
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        match self {
            ModelFile::Linear(p) | ModelFile::Network(p) => p,
        }
    }
}

/// The backbone a linear model is used with: `given` (the caller's) when there is one, else
/// the absolute path the model records, else (a model saved before paths were recorded)
/// [`FALLBACK_BACKBONE`]. A recorded backbone that is gone is an error naming it.
pub fn backbone_for(model: &TrainedModel, given: Option<&Path>) -> Result<PathBuf, PredictError> {
    match (given, &model.backbone) {
        (Some(path), _) => Ok(path.to_path_buf()),
        (None, Some(recorded)) if !recorded.exists() => Err(PredictError::BackboneMissing {
            path: recorded.clone(),
            sha256: model.identity.model_sha256.clone(),
        }),
        (None, Some(recorded)) => Ok(recorded.clone()),
        (None, None) => Ok(PathBuf::from(FALLBACK_BACKBONE)),
    }
}

/// Opens the backbone the model needs; refuses one whose model, preprocessing or feature
/// length differ from those of the model's training features, or whose file changed.
pub fn open_backbone(
    model: &TrainedModel,
    backbone: &Path,
    ep: ExecutionProvider,
    threads: usize,
) -> Result<Backbone, PredictError> {
    // Compare identities before opening: a model of other features may name layers this
    // backbone does not have, and "other features" is the error that says what to do.
    let d = Descriptor::for_model(backbone)?;
    let id = &model.identity;
    // The size is the model's own: the features may have been made at another size than the
    // descriptor's (`ExtractConfig::size`), and the convolutions take any.
    let size = id.preprocessing.size;
    let preprocessing = Preprocessing {
        size,
        ..d.preprocessing
    };
    IdentityCheck::new(format!("backbone {}", backbone.display()), "model")
        .field("model_sha256", &d.sha256, &id.model_sha256)
        .field("preprocessing", &preprocessing, &id.preprocessing)
        .result()
        .map_err(ClassifyError::Incompatible)?;
    let mut net = Backbone::open(backbone, &id.layers, ep, threads).map_err(|e| match e {
        BackboneError::Checksum { path, actual, .. } => PredictError::BackboneChanged {
            path,
            expected: id.model_sha256.clone(),
            actual,
        },
        other => other.into(),
    })?;
    net.set_size(size);
    let dims: usize = net.repr_dims(&id.representations())?.iter().sum();
    IdentityCheck::new(format!("backbone {}", backbone.display()), "model")
        .field("dims", &dims, &id.dims)
        .result()
        .map_err(ClassifyError::Incompatible)?;
    Ok(net)
}
