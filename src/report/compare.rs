//! One comparison of every run: reads `<reports>/*/report.json`, writes `index.md`,
//! `index.html` and `comparison.json` beside them.

use std::path::Path;

use serde::Serialize;

use super::doc::{self, Block, Cell, Column, Table};
use super::format::{pct, per_split};
use super::run::{Method, RunReport, OLDEST_READ_VERSION, REPORT_VERSION};
use super::{html, ReportError};
use crate::options::Opt;
use crate::output;

/// One line of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Run name (its folder).
    pub run: String,
    /// Classifier kind.
    pub classifier: String,
    /// Backbone layers.
    pub layers: String,
    /// Pooling.
    pub pooling: String,
    /// Feature length.
    pub dims: usize,
    /// Augmented copies used in training (copies per image of the cache, or 0).
    pub train_copies: u32,
    /// Test-time augmentation.
    pub tta: bool,
    /// Splits run.
    pub splits: usize,
    /// Test images of each split.
    pub test_images: Vec<usize>,
    /// Mean test accuracy.
    pub accuracy: f64,
    /// Its sample standard deviation.
    pub accuracy_std: f64,
    /// Mean top-5 accuracy.
    pub top5_accuracy: f64,
    /// Mean macro F1.
    pub macro_f1: f64,
    /// What validation chose in each split (C, or the kept epoch).
    pub chosen: Vec<String>,
    /// Mean seconds of the chosen fit.
    pub fit_seconds: f64,
}

impl Row {
    /// Column titles, in the order of [`Row::cells`].
    pub const HEADERS: [&'static str; 13] = [
        "run",
        "classifier",
        "layers",
        "pooling",
        "dims",
        "train copies",
        "TTA",
        "splits",
        "test images",
        "test accuracy %",
        "top-5 %",
        "macro F1 %",
        "chosen (C or epoch) / fit s",
    ];

    /// Whether each column of [`Row::HEADERS`] holds numbers (right-aligned, sorted by value).
    const NUMERIC: [bool; 13] = [
        false, false, false, false, true, true, false, true, true, true, true, true, false,
    ];

    fn of(r: &RunReport) -> Row {
        let s = &r.summary;
        let cached = r.identity.layers.join("+");
        // What the classifier reads: the cached features, or the fine-tuned network's block5_pool.
        let (layers, pooling, dims) = match &r.method {
            Method::Linear(_) => (
                cached,
                format!("{:?}", r.identity.pooling).to_lowercase(),
                r.identity.dims,
            ),
            Method::Finetune(f) => (
                if cached == "block5_pool" {
                    cached
                } else {
                    format!("block5_pool (cached {cached})")
                },
                format!("{:?}", f.pool).to_lowercase(),
                f.head_input,
            ),
        };
        Row {
            run: r.run.clone(),
            classifier: r.method.label(),
            layers,
            pooling,
            dims,
            train_copies: if r.method.train_copies() {
                r.identity.copies_held()
            } else {
                0
            },
            tta: r.method.tta(),
            splits: s.splits,
            test_images: r.test_images(),
            accuracy: s.accuracy.mean,
            accuracy_std: s.accuracy.std,
            top5_accuracy: s.top5_accuracy.mean,
            macro_f1: s.macro_f1.mean,
            chosen: r.splits.iter().map(|sp| sp.fit.chosen.clone()).collect(),
            fit_seconds: s.fit_seconds.mean,
        }
    }

    /// The row as text cells.
    pub fn cells(&self) -> Vec<String> {
        vec![
            self.run.clone(),
            self.classifier.clone(),
            self.layers.clone(),
            self.pooling.clone(),
            self.dims.to_string(),
            self.train_copies.to_string(),
            if self.tta { "yes" } else { "no" }.into(),
            self.splits.to_string(),
            per_split(&self.test_images),
            format!("{} ± {}", pct(self.accuracy), pct(self.accuracy_std)),
            pct(self.top5_accuracy),
            pct(self.macro_f1),
            format!("{} / {:.1}", self.chosen.join(","), self.fit_seconds),
        ]
    }
}

/// Reads every run report under `reports` (skipping, with a warning, those it cannot read) and
/// writes the comparison there; returns the rows, best accuracy first.
pub fn compare(reports: &Path, warn: &mut dyn FnMut(String)) -> Result<Vec<Row>, ReportError> {
    let io = |source| ReportError::Io {
        path: reports.to_path_buf(),
        source,
    };
    let mut rows = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(reports)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        // Folders starting with '.' are tlearn's own work in progress (see `output`).
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .filter(|p| p.join("report.json").is_file())
        .collect();
    entries.sort();
    for dir in entries {
        let file = dir.join("report.json");
        let parsed = std::fs::read_to_string(&file)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<RunReport>(&t).map_err(|e| e.to_string()));
        match parsed {
            Ok(r) if (OLDEST_READ_VERSION..=REPORT_VERSION).contains(&r.version) => {
                for w in &r.warnings {
                    warn(format!("{}: {w}", r.run));
                }
                rows.push(Row::of(&r));
            }
            Ok(r) => warn(format!(
                "{}: report version {}, skipped; run its training again",
                file.display(),
                r.version
            )),
            Err(e) => warn(format!("{}: {e}; skipped", file.display())),
        }
    }
    if rows.is_empty() {
        return Err(ReportError::NoRuns(reports.to_path_buf()));
    }
    rows.sort_by(|a, b| b.accuracy.total_cmp(&a.accuracy).then(a.run.cmp(&b.run)));
    let blocks = index_blocks(&rows);
    let target = |name: &str| {
        output::Target::new(&reports.join(name))
            .kind(COMPARISON_KIND)
            .option(Opt::Reports)
    };
    for name in ["index.md", "index.html", "comparison.json"] {
        target(name).check()?;
    }
    let write = |name: &str, text: String| target(name).write(text.as_bytes());
    write("index.md", doc::markdown(&blocks))?;
    let page = html::page("tlearn: comparison of runs", &doc::html(&blocks));
    write("index.html", page)?;
    write(
        "comparison.json",
        serde_json::to_string_pretty(&rows).expect("rows serialise") + "\n",
    )?;
    Ok(rows)
}

/// What the comparison files are, in the record of tlearn's outputs in the reports folder.
pub const COMPARISON_KIND: &str = "comparison of runs";

/// The comparison page: one sortable table, each run linking to its report.
fn index_blocks(rows: &[Row]) -> Vec<Block> {
    let columns = Row::HEADERS
        .iter()
        .zip(Row::NUMERIC)
        .map(|(title, numeric)| {
            if numeric {
                Column::right(*title)
            } else {
                Column::left(*title)
            }
        })
        .collect();
    let mut table = Table::new(columns).sortable();
    for row in rows {
        let mut cells: Vec<Cell> = row.cells().into_iter().map(Cell::Text).collect();
        cells[0] = Cell::Page {
            text: row.run.clone(),
            page: format!("{}/report", row.run),
        };
        table.push(cells);
    }
    vec![
        Block::Heading(1, "tlearn: comparison of runs".into()),
        Block::Para(
            "Test accuracy: mean ± sample std over the splits of each run, whose test images are counted per split; best first (in index.html a click on a column's title sorts by it).".into(),
        ),
        Block::Table(table),
    ]
}
