//! What a run's report shows, section by section, as [`doc`](super::doc) blocks: report.md and
//! report.html are both rendered from these.

use super::doc::{Block, Column, Figure, Gallery, Image, Table};
use super::format::pct;
pub use super::format::per_split;
use super::run::{Method, RunReport};

/// The pictures of a run's report, made before its text.
pub struct Pictures {
    /// The confusion matrix, counts.
    pub confusion: Image,
    /// The confusion matrix, percent of each true class.
    pub confusion_normalised: Image,
    /// Precision-recall curves per class (None for a report without predictions).
    pub pr_curves: Option<Image>,
    /// Validation accuracy over the C grid (None for fine-tuning).
    pub c_grid: Option<Image>,
    /// Training curves (fine-tuning), one per split.
    pub curves: Vec<Image>,
    /// Thumbnails of the gallery's images, in the gallery's order (None: not readable).
    pub thumbs: Vec<Option<Image>>,
}

/// Every section of the report of `r`.
pub fn run_blocks(r: &RunReport, pictures: &Pictures) -> Vec<Block> {
    let mut blocks = vec![
        Block::Link("← all runs".into(), "../index".into()),
        Block::Heading(1, format!("{} — {}", r.run, r.method.label())),
    ];
    blocks.extend(headline(r));
    blocks.push(Block::Warnings(r.warnings.clone()));
    blocks.push(Block::Heading(2, "Splits".into()));
    blocks.push(Block::Table(splits_table(r)));
    if let Some(plot) = &pictures.c_grid {
        blocks.push(Block::Heading(2, "Validation accuracy over C".into()));
        blocks.push(Block::Image(plot.clone()));
    }
    if !pictures.curves.is_empty() {
        blocks.push(Block::Heading(2, "Training curves".into()));
        blocks.push(Block::Para("Loss and accuracy per epoch, training and validation; the kept epoch is the one of lowest validation loss.".into()));
        blocks.extend(pictures.curves.iter().cloned().map(Block::Image));
    }
    blocks.push(Block::Heading(
        2,
        "Per class (test images of all splits)".into(),
    ));
    blocks.push(Block::Table(per_class_table(r)));
    blocks.push(Block::Table(averages_table(r)));
    if let Some(plot) = &pictures.pr_curves {
        blocks.push(Block::Heading(2, "Precision-recall per class".into()));
        blocks.push(Block::Para("Each class's curve sweeps a threshold down its score over the test images of all splits pooled (report.json's `predictions` hold every score).".into()));
        blocks.push(Block::Image(plot.clone()));
    }
    blocks.push(Block::Heading(2, "Confusion matrix".into()));
    blocks.push(Block::Para("Rows: true class, columns: predicted class; test images summed over splits. The colour is the share of the true class's test images, so rare classes show as clearly as common ones.".into()));
    blocks.push(Block::Image(pictures.confusion.clone()));
    blocks.push(Block::Image(pictures.confusion_normalised.clone()));
    blocks.extend(gallery(r, &pictures.thumbs));
    blocks.push(Block::Heading(2, "Configuration".into()));
    blocks.push(Block::Code("json".into(), config_json(r)));
    blocks
}

/// The headline numbers and what the run was.
fn headline(r: &RunReport) -> Vec<Block> {
    let s = &r.summary;
    let mut about = vec![
        format!("features: {} (`{}`)", features_line(r), r.cache),
        format!("training: {}", r.method.training_line()),
        format!(
            "times: fit {:.2} s ± {:.2}, predict {:.3} s ± {:.3} (kept fit, per split)",
            s.fit_seconds.mean, s.fit_seconds.std, s.predict_seconds.mean, s.predict_seconds.std
        ),
    ];
    if let Some(m) = &r.model {
        about.push(format!(
            "model that `predict` uses: `{}` ({}; {} {})",
            m.path,
            m.trained_on,
            r.method.chosen_title(),
            m.chosen
        ));
    }
    vec![
        Block::Para(format!(
            "**Test accuracy {}% ± {}** (mean ± sample std over {} split(s), n = {} test images per split); top-5 {}% ± {}; macro F1 {} ± {}.",
            pct(s.accuracy.mean),
            pct(s.accuracy.std),
            s.splits,
            per_split(&r.test_images()),
            pct(s.top5_accuracy.mean),
            pct(s.top5_accuracy.std),
            pct(s.macro_f1.mean),
            pct(s.macro_f1.std)
        )),
        Block::List(about),
    ]
}

/// One row per split: what validation chose and the test metrics.
fn splits_table(r: &RunReport) -> Table {
    let mut t = Table::new(vec![
        Column::right("split"),
        Column::right(r.method.chosen_title()),
        Column::right("val acc %"),
        Column::right("train rows"),
        Column::right("test images"),
        Column::right("accuracy %"),
        Column::right("top-5 %"),
        Column::right("macro P %"),
        Column::right("macro R %"),
        Column::right("macro F1 %"),
        Column::right("fit s"),
        Column::right("predict s"),
    ]);
    for sp in &r.splits {
        let (f, m) = (&sp.fit, &sp.metrics);
        t.push(vec![
            f.split.to_string().into(),
            f.chosen.clone().into(),
            pct(f.val_accuracy).into(),
            f.train_rows.to_string().into(),
            sp.test_images.to_string().into(),
            pct(m.accuracy).into(),
            pct(m.top5_accuracy).into(),
            pct(m.macro_precision).into(),
            pct(m.macro_recall).into(),
            pct(m.macro_f1).into(),
            format!("{:.2}", f.fit_seconds).into(),
            format!("{:.3}", f.predict_seconds).into(),
        ]);
    }
    t
}

/// Precision, recall, F1 and support of each class over the test images of all splits.
fn per_class_table(r: &RunReport) -> Table {
    let mut t = Table::new(vec![
        Column::right("#"),
        Column::left("class"),
        Column::right("precision %"),
        Column::right("recall %"),
        Column::right("F1 %"),
        Column::right("test images"),
    ])
    .sortable();
    for (i, c) in r.per_class.iter().enumerate() {
        t.push(vec![
            i.to_string().into(),
            c.name.clone().into(),
            pct(c.precision).into(),
            pct(c.recall).into(),
            pct(c.f1).into(),
            c.support.to_string().into(),
        ]);
    }
    t
}

/// The per-class table's macro and weighted averages (a table of their own, so sorting the
/// classes leaves them in place).
fn averages_table(r: &RunReport) -> Table {
    let mut t = Table::new(vec![
        Column::left("average"),
        Column::right("precision %"),
        Column::right("recall %"),
        Column::right("F1 %"),
        Column::right("test images"),
    ]);
    let support: usize = r.per_class.iter().map(|c| c.support).sum();
    let a = &r.averages;
    for (name, avg) in [
        ("macro (classes alike)", a.macro_avg),
        ("weighted (by test images)", a.weighted),
    ] {
        t.push(vec![
            name.into(),
            pct(avg.precision).into(),
            pct(avg.recall).into(),
            pct(avg.f1).into(),
            support.to_string().into(),
        ]);
    }
    t
}

/// The misclassified test images, each once, the most confident mistakes first.
fn gallery(r: &RunReport, thumbs: &[Option<Image>]) -> Vec<Block> {
    let wrong = r.wrong_images();
    let figures = wrong
        .iter()
        .zip(thumbs)
        .map(|(w, thumb)| {
            let miss = w.worst;
            let splits: Vec<String> = w.splits.iter().map(ToString::to_string).collect();
            Figure {
                image: thumb.clone(),
                caption: vec![
                    format!("`{}`", miss.path),
                    r.class_names[miss.label].clone(),
                    format!("{} ({:.3})", r.class_names[miss.predicted], miss.score),
                    format!("{:.3}", miss.true_score),
                    splits.join(", "),
                ],
            }
        })
        .collect();
    let columns = [
        "path",
        "true",
        "predicted (score)",
        "true class's score",
        "wrong in splits",
    ];
    let mut blocks = vec![
        Block::Heading(
            2,
            format!(
                "Misclassified test images ({} images, {} mistakes over the splits)",
                wrong.len(),
                r.misclassified.len()
            ),
        ),
        Block::Para(format!("Most confident mistakes first (by the score of the wrong class: {}); an image wrong in several splits shows its most confident mistake.", score_kind(r))),
        Block::Gallery(Gallery {
            columns: columns.map(String::from).to_vec(),
            figures,
        }),
    ];
    if wrong.len() > thumbs.len() {
        blocks.push(Block::Para(format!(
            "{} more misclassified images are listed in report.json (`misclassified`).",
            wrong.len() - thumbs.len()
        )));
    }
    blocks
}

/// What the scores of the run are.
fn score_kind(r: &RunReport) -> &'static str {
    match &r.method {
        Method::Linear(c) if c.kind.probabilistic() => "the model's probability",
        Method::Linear(_) => "the SVM's margin",
        Method::Finetune(_) => "the network's softmax probability",
    }
}

/// One-line description of the features of a run.
pub(crate) fn features_line(r: &RunReport) -> String {
    let id = &r.identity;
    format!(
        "{} {}, {} dims; augment {} x{}",
        id.model_name,
        id.features_label(),
        id.dims,
        id.augment,
        id.copies_held()
    )
    .to_lowercase()
}

/// Configuration, cache identity and model, as pretty JSON.
pub(crate) fn config_json(r: &RunReport) -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "method": r.method,
        "cache": r.cache,
        "identity": r.identity,
        "data_root": r.data_root,
        "model": r.model,
        "tlearn_version": r.tlearn_version,
    }))
    .expect("serialises")
}
