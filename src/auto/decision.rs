//! The decision section of an auto run: the measured data, the case of the method's table and
//! why, the validation accuracy of every candidate (a plot and a table), the chosen
//! configuration, the commands that reproduce it, and an appendix of test accuracies not used
//! for choosing. Written as decision.md / .html / .json beside the chosen run's report, and
//! appended to that report's report.md and report.html.

use std::path::Path;

use image::RgbImage;
use plotters::prelude::*;

use super::choose::{best_per_set, best_per_variant, Candidate};
use super::measure::{Size, LARGE_PER_CLASS};
use super::{Decision, Similarity};
use crate::numeric::mean;
use crate::options::Opt;
use crate::report::doc::{self, Block, Column, Image, Table};
use crate::report::format::{pct, per_split};
use crate::report::html::page;
use crate::report::plot::{
    accuracy_floor, chart_on, draw_err, draw_legend, line_with_legend, render, styled_mesh, PALETTE,
};
use crate::report::write::{png_bytes, write_run_with};
use crate::report::{ReportError, RunReport};

/// The plot's file name in the report folder.
pub const PLOT: &str = "candidates.png";

const WIDTH: u32 = 960;
const HEIGHT: u32 = 480;

/// Writes the chosen run's report into `dir` with the decision beside it and in it; the folder
/// is replaced whole, once everything is written.
pub fn write(decision: &Decision, report: &RunReport, dir: &Path) -> Result<(), ReportError> {
    write_run_with(report, dir, |staged| add_decision(decision, report, staged))
}

/// Writes the decision's files into the report folder `dir` and appends it to the report.
fn add_decision(decision: &Decision, report: &RunReport, dir: &Path) -> Result<(), ReportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReportError::Io { path, source }
    };
    let plot = plot_png(&decision.search.candidates, several_sizes(decision));
    let png_bytes = png_bytes(&plot.map_err(ReportError::Image)?)?;
    let blocks = content(decision, report, &png_bytes);
    let md = doc::markdown(&blocks);
    let html = doc::html(&blocks);
    let files = [
        (PLOT, png_bytes.clone()),
        (
            "decision.md",
            format!("# {} — decision\n\n{md}", report.run).into_bytes(),
        ),
        (
            "decision.html",
            page(&format!("{} — decision", report.run), &html).into_bytes(),
        ),
        (
            "decision.json",
            (serde_json::to_string_pretty(decision).expect("decision serialises") + "\n")
                .into_bytes(),
        ),
    ];
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).map_err(io(&dir.join(name)))?;
    }
    let report_md = dir.join("report.md");
    let old = std::fs::read_to_string(&report_md).map_err(io(&report_md))?;
    std::fs::write(&report_md, format!("{old}\n{md}")).map_err(io(&report_md))?;
    let report_html = dir.join("report.html");
    let old = std::fs::read_to_string(&report_html).map_err(io(&report_html))?;
    let merged = match old.rfind("</body>") {
        Some(at) => format!("{}{html}{}", &old[..at], &old[at..]),
        None => format!("{old}{html}"),
    };
    std::fs::write(&report_html, merged).map_err(io(&report_html))
}

/// Whether the search compared several image sizes: then tables and plot say each
/// candidate's (one size alone reads as before).
fn several_sizes(d: &Decision) -> bool {
    d.sizes.len() > 1
}

/// `row` with the candidate's image size first when several were compared.
fn sized(several: bool, size: u32, mut row: Vec<String>) -> Vec<String> {
    if several {
        row.insert(0, format!("{size} px"));
    }
    row
}

/// `columns` with the image size first when several were compared.
fn sized_columns(several: bool, mut columns: Vec<Column>) -> Vec<Column> {
    if several {
        columns.insert(0, Column::right("size"));
    }
    columns
}

/// A table of these columns whose cells are text.
fn table(columns: Vec<Column>, rows: Vec<Vec<String>>) -> Block {
    let mut table = Table::new(columns);
    rows.into_iter()
        .for_each(|row| table.push(row.into_iter().map(Into::into).collect()));
    Block::Table(table)
}

/// The section's blocks; `png` is the candidates plot.
fn content(d: &Decision, report: &RunReport, png: &[u8]) -> Vec<Block> {
    let mut out = vec![Block::Heading(2, "Decision (tlearn auto)".into())];
    out.extend(the_data(d));
    if !d.warnings.is_empty() {
        out.push(Block::Heading(3, "Warnings".into()));
        out.push(Block::List(d.warnings.clone()));
    }
    out.extend(table_case(d));
    out.extend(candidates(d, png));
    out.extend(finetuning(d));
    out.extend(chosen(d, report));
    out.push(Block::Heading(3, "Reproduce by hand".into()));
    out.push(Block::Code("sh".into(), d.commands.join("\n\n")));
    out.extend(appendix(d));
    out.push(Block::Heading(3, "Time".into()));
    out.push(table(
        vec![Column::left("phase"), Column::right("seconds")],
        d.phases
            .iter()
            .map(|p| vec![p.phase.clone(), format!("{:.1}", p.seconds)])
            .collect(),
    ));
    out
}

/// The measured data: images, classes, sizes, skipped files and splits.
fn the_data(d: &Decision) -> Vec<Block> {
    let s = &d.stats;
    let splits: Vec<String> = s
        .splits
        .iter()
        .map(|c| format!("{} / {} / {}", c.train, c.val, c.test))
        .collect();
    let items = vec![
        format!("{} images in {} classes", s.images, s.classes),
        format!(
            "images per class: smallest {} ({}), median {}, largest {}",
            s.per_class_spread.min,
            s.smallest_class,
            s.per_class_spread.median,
            s.per_class_spread.max
        ),
        format!(
            "image sizes (width x height): smallest {} x {}, median {} x {}, largest {} x {}",
            s.width.min, s.height.min, s.width.median, s.height.median, s.width.max, s.height.max
        ),
        format!("skipped files: {}", skipped_files(d)),
        format!(
            "{} seeded splits; train / validation / test images per split: {}",
            s.splits.len(),
            splits.join(", ")
        ),
    ];
    vec![Block::Heading(3, "The data".into()), Block::List(items)]
}

/// The files the extraction skipped, with their reasons, or "none".
fn skipped_files(d: &Decision) -> String {
    if d.skipped.is_empty() {
        return "none".to_string();
    }
    let list: Vec<String> = d
        .skipped
        .iter()
        .map(|(p, r)| format!("{p} ({r})"))
        .collect();
    format!("{}: {}", d.skipped.len(), list.join("; "))
}

/// The method's table with this data's cell marked, and why: size, similarity, action.
fn table_case(d: &Decision) -> Vec<Block> {
    let small = d.stats.size == Size::Small;
    let similar = d.similarity == Similarity::Similar;
    vec![
        Block::Heading(3, "The method's table".into()),
        method_table(small, similar),
        Block::Para(size_reason(d, small)),
        Block::Para(similarity_reason(d, similar)),
        Block::Para(action(small, similar)),
    ]
}

/// The method's four cases, the one that applies in bold with an arrow.
fn method_table(small: bool, similar: bool) -> Block {
    let cell = |applies: bool, text: &str| {
        if applies {
            format!("**→ {text}**")
        } else {
            text.to_string()
        }
    };
    table(
        vec![
            Column::left(""),
            Column::left("similar to ImageNet"),
            Column::left("different from ImageNet"),
        ],
        vec![
            vec![
                "small data".into(),
                cell(
                    small && similar,
                    "feature extractor (linear classifier on the last layers)",
                ),
                cell(
                    small && !similar,
                    "linear classifier on earlier layers' features",
                ),
            ],
            vec![
                "large data".into(),
                cell(!small && similar, "fine-tune the last block(s)"),
                cell(
                    !small && !similar,
                    "fine-tune everything from the pretrained weights",
                ),
            ],
        ],
    )
}

fn size_reason(d: &Decision, small: bool) -> String {
    format!(
        "Size: **{}**. The median class has {} images; from {LARGE_PER_CLASS} images per class on, tlearn counts data as large: below that, fine-tuning even the last VGG16 block (7 M weights) has too few images to beat a linear classifier on frozen features (on the flowers, 80 per class, fine-tuned block 5 measured 95.88 ± 1.02 %, the same mean as the linear SVM on max-pooled block4 + block5 refit on training + validation, 95.88 ± 1.35 %).",
        if small { "small" } else { "large" },
        d.stats.per_class_spread.median
    )
}

fn similarity_reason(d: &Decision, similar: bool) -> String {
    let deepest = d.layers.last().cloned().unwrap_or_default();
    if similar {
        format!(
            "Similarity: **similar**. The winner reads the deepest candidate layer, {deepest}: the best candidate with it scores {} % on validation, the best without it {} %. ImageNet's most specific features help, so in the method's sense the data is similar to ImageNet.",
            pct(d.best_with_deepest),
            pct(d.best_without_deepest)
        )
    } else {
        format!(
            "Similarity: **different**. Earlier layers win: the best candidate without {deepest} scores {} % on validation, the best with it {} %. The most ImageNet-specific features do not help, so in the method's sense the data is different from ImageNet.",
            pct(d.best_without_deepest),
            pct(d.best_with_deepest)
        )
    }
}

fn action(small: bool, similar: bool) -> String {
    match (small, similar) {
        (true, true) => "Case: small and similar → a feature extractor: the linear classifier chosen below, on features that include the last layer.".to_string(),
        (true, false) => "Case: small and different → features of earlier layers: the linear classifier chosen below.".to_string(),
        (false, _) => format!(
            "Case: large and {} → the table says fine-tune ({}): tlearn runs the method's two stages (below) and keeps them if they beat the linear classifier on validation.{}",
            if similar { "similar" } else { "different" },
            if similar { "the last block(s)" } else { "every convolution, starting from the pretrained weights" },
            if similar {
                ""
            } else {
                " Stage 2 trains the last block from its pretrained weights, not every convolution: the maps of earlier layers do not fit in memory for large data (VGG16's block3_pool is 800 KB per image)."
            }
        ),
    }
}

/// The search: what was scored and how, a plot and a table of each (feature set, classifier,
/// variant) at its best C.
fn candidates(d: &Decision, png: &[u8]) -> Vec<Block> {
    let sets = best_per_variant(&d.search.candidates);
    let val = per_split(&d.chosen.val_images);
    vec![
        Block::Heading(3, "Candidates".into()),
        Block::Para(search_summary(d, &sets, &val)),
        Block::Image(Image {
            alt: "validation accuracy per candidate".into(),
            file: PLOT.into(),
            bytes: png.to_vec(),
        }),
        table(
            sized_columns(
                several_sizes(d),
                vec![
                    Column::left("features"),
                    Column::left("classifier"),
                    Column::left("variant"),
                    Column::right("dims"),
                    Column::right("best C"),
                    Column::right(format!("validation accuracy % (mean, n = {val} per split)")),
                    Column::right("per split"),
                ],
            ),
            best_rows(&sets, several_sizes(d)),
        ),
    ]
}

/// How many candidates were scored, on what, and how the best is chosen; `sets` are the best
/// of each (feature set, classifier, variant), `val` the validation images per split.
fn search_summary(d: &Decision, sets: &[&Candidate], val: &str) -> String {
    let c = &d.search.candidates;
    let stage1: Vec<&&Candidate> = sets.iter().filter(|s| s.stage == 1).collect();
    // Stage 1's variant: the one with the copies when some sets (the quarters) went without.
    let first = stage1
        .iter()
        .map(|s| s.variant)
        .find(|v| v.train_copies)
        .or(stage1.first().map(|s| s.variant));
    let mut kinds: Vec<String> = Vec::new();
    for s in &stage1 {
        if !kinds.contains(&s.kind.to_string()) {
            kinds.push(s.kind.to_string());
        }
    }
    let grid = c.iter().filter(|c| c.stage == 1).count() / stage1.len().max(1);
    let originals = stage1.iter().any(|s| Some(s.variant) != first);
    let mut text = format!(
        "{} candidates. Stage 1: {} feature sets{} (every representation stored by one extraction: {}; adjacent layers concatenated) x {} ({}) x {} values of C, {}{}. Each is scored by its validation accuracy averaged over the {} seeded splits (n = {val} validation images per split); test images are never looked at to choose. Ties go to the cheaper model: fewer dimensions, then the SVM, then `tlearn train`'s defaults (training copies on, no TTA), then the smaller C.",
        c.len(),
        stage1.len() / kinds.len().max(1),
        if several_sizes(d) {
            format!(" over {} image sizes", d.sizes.len())
        } else {
            String::new()
        },
        d.extracted.join(", "),
        kinds.len(),
        kinds.join(", "),
        grid,
        first.map_or(String::new(), |v| v.label()),
        if originals {
            " (the quarters' sets on the original images only: a fraction of the rows, and the copies' crops move what a quarter records; stage 2 tries their copies)"
        } else {
            ""
        },
        d.chosen.val_per_split.len()
    );
    if several_sizes(d) {
        let each: Vec<String> = d.sizes.iter().map(ToString::to_string).collect();
        text.push_str(&format!(
            " Image size is a candidate too: stage 1 ran at {} px, each size on its own cache of the same images and splits (the flattened layer at {} px only: its columns grow with the square of the side); ties go to the smaller image first, its backbone pass being the larger cost.",
            each.join(", "),
            d.sizes[0]
        ));
    }
    let variants: Vec<String> = variants_tried(sets);
    if !variants.is_empty() {
        text.push_str(&format!(
            " Stage 2: the variants {} of the best (feature set, classifier) pairs of stage 1, each lever changed alone, then the levers that helped alone together (rows below with another variant).",
            variants.join(", ")
        ));
    }
    text
}

/// The variants stage 2 tried, by label.
fn variants_tried(sets: &[&Candidate]) -> Vec<String> {
    let mut labels: Vec<String> = Vec::new();
    for s in sets.iter().filter(|s| s.stage == 2) {
        let label = s.variant.label();
        if !labels.contains(&label) {
            labels.push(label);
        }
    }
    labels
}

/// One row per (size, feature set, classifier, variant) at its best C, the most accurate
/// first; the size in the first column when `several` were compared.
fn best_rows(sets: &[&Candidate], several: bool) -> Vec<Vec<String>> {
    let mut sorted = sets.to_vec();
    sorted.sort_by(|a, b| b.val_accuracy.total_cmp(&a.val_accuracy));
    sorted
        .iter()
        .map(|s| {
            let row = vec![
                s.reprs.join(" + "),
                s.kind.to_string(),
                s.variant.label(),
                s.dims.to_string(),
                format!("{:e}", s.c),
                pct(s.val_accuracy),
                s.val_per_split
                    .iter()
                    .map(|v| pct(*v))
                    .collect::<Vec<_>>()
                    .join(" / "),
            ];
            sized(several, s.size, row)
        })
        .collect()
}

fn finetuning(d: &Decision) -> Vec<Block> {
    let mut out = vec![
        Block::Heading(3, "Fine-tuning".into()),
        Block::Para(format!(
            "The method's fine-tuning stages: {}.",
            d.finetune_reason
        )),
    ];
    if d.finetune.is_empty() {
        return out;
    }
    let rows = d
        .finetune
        .iter()
        .map(|s| {
            let kept = if d.finetune_won.as_ref() == Some(&s.run) {
                "**kept**"
            } else {
                "not kept"
            };
            vec![
                format!("`{}`", s.run),
                s.trained.clone(),
                pct(s.val_accuracy),
                kept.to_string(),
            ]
        })
        .chain(std::iter::once(vec![
            "linear (chosen above)".into(),
            format!("{} on {}", d.chosen.kind, d.chosen.reprs.join(" + ")),
            pct(d.chosen.val_accuracy),
            if d.finetune_won.is_none() {
                "**kept**"
            } else {
                "not kept"
            }
            .into(),
        ]))
        .collect();
    out.push(table(
        vec![
            Column::left("run"),
            Column::left("trained"),
            Column::right("validation %"),
            Column::left(""),
        ],
        rows,
    ));
    out
}

fn chosen(d: &Decision, report: &RunReport) -> Vec<Block> {
    let c = &d.chosen;
    let s = &report.summary;
    let tests: Vec<usize> = report.splits.iter().map(|s| s.test_images).collect();
    if let Some(stage) = d
        .finetune
        .iter()
        .find(|s| Some(&s.run) == d.finetune_won.as_ref())
    {
        let model = stage
            .model
            .as_ref()
            .map_or(String::new(), |m| m.display().to_string());
        return vec![
            Block::Heading(3, "Chosen".into()),
            Block::Para(format!(
                "**fine-tuning stage `{}`: {}**: validation accuracy {} % (mean of {} splits); test accuracy {} % ± {} (n = {} test images per split). Model: `{model}`; usable with `tlearn predict {opt} {model}`.",
                stage.run,
                stage.trained,
                pct(stage.val_accuracy),
                stage.val_per_split.len(),
                pct(s.accuracy.mean),
                pct(s.accuracy.std),
                per_split(&tests),
                opt = Opt::Model,
            )),
        ];
    }
    let at = if several_sizes(d) {
        format!(" at {} px", c.size)
    } else {
        String::new()
    };
    vec![
        Block::Heading(3, "Chosen".into()),
        Block::Para(format!(
            "**{} on {}{at} ({} dims, {}), C = {:e}**: validation accuracy {} % (mean of {} splits, n = {} validation images per split); test accuracy {} % ± {} (n = {} test images per split). Model: `{}`, {}; usable with `tlearn predict {} {}`.",
            c.kind,
            c.reprs.join(" + "),
            c.dims,
            c.variant.label(),
            c.c,
            pct(c.val_accuracy),
            c.val_per_split.len(),
            per_split(&c.val_images),
            pct(s.accuracy.mean),
            pct(s.accuracy.std),
            per_split(&tests),
            report.model.as_ref().map_or("", |m| m.path.as_str()),
            report.model.as_ref().map_or("", |m| m.trained_on.as_str()),
            Opt::Model,
            report.model.as_ref().map_or("", |m| m.path.as_str()),
        )),
    ]
}

fn appendix(d: &Decision) -> Vec<Block> {
    let several = several_sizes(d);
    let mut rows: Vec<_> = d.search.test_only.iter().collect();
    rows.sort_by(|a, b| mean(&b.test_accuracy).total_cmp(&mean(&a.test_accuracy)));
    vec![
        Block::Heading(3, "Appendix: test accuracy of every candidate — not used for choosing".into()),
        Block::Para(format!("Each feature set and classifier with C chosen on validation in each split and fitted on the training images only, as `tlearn train` does (the chosen run above is refit on training + validation images, unless `{}`); fine-tuning stages, if they ran, at their kept epoch. Shown for the reader only: the choice above never read these numbers.", Opt::NoRefitWithValidation)),
        table(
            sized_columns(several, vec![
                Column::left("features"),
                Column::left("classifier"),
                Column::left("variant"),
                Column::right("dims"),
                Column::right("test accuracy % (mean)"),
                Column::right("per split"),
                Column::right("test images per split"),
            ]),
            rows.iter()
                .map(|t| {
                    sized(several, t.size, vec![
                        t.features.replace('+', " + "),
                        t.kind.to_string(),
                        t.variant.label(),
                        t.dims.to_string(),
                        pct(mean(&t.test_accuracy)),
                        t.test_accuracy.iter().map(|v| pct(*v)).collect::<Vec<_>>().join(" / "),
                        per_split(&t.test_images),
                    ])
                })
                .chain(d.finetune.iter().map(|s| {
                    let row = vec![
                        format!("fine-tuning `{}`", s.run),
                        s.trained.clone(),
                        "".into(),
                        "".into(),
                        pct(mean(&s.test_accuracy)),
                        s.test_accuracy.iter().map(|v| pct(*v)).collect::<Vec<_>>().join(" / "),
                        "".into(),
                    ];
                    sized(several, d.sizes[0], row)
                }))
                .collect(),
        ),
    ]
}

/// Short x-axis name of a layer set: `block3+block4` for `block3_pool+block4_pool`.
fn short(layers: &str) -> String {
    layers.replace("_pool", "")
}

/// The series a candidate belongs to: its pooling and classifier, and its image size when
/// `several` were compared.
fn series_of(c: &Candidate, several: bool) -> String {
    if several {
        format!("{} {} {} px", c.pooling, c.kind, c.size)
    } else {
        format!("{} {}", c.pooling, c.kind)
    }
}

/// The plot's x values (layer sets, in search order) and series ([`series_of`]).
fn axes<'a>(best: &[&'a Candidate], several: bool) -> (Vec<&'a str>, Vec<String>) {
    let mut xs: Vec<&str> = Vec::new();
    let mut series: Vec<String> = Vec::new();
    for c in best {
        if !xs.contains(&c.layers.as_str()) {
            xs.push(&c.layers);
        }
        let name = series_of(c, several);
        if !series.contains(&name) {
            series.push(name);
        }
    }
    (xs, series)
}

/// Validation accuracy of the best C of every (size, feature set, classifier): layers on x,
/// pooling and classifier (and size, when `several`) as series.
fn plot_png(candidates: &[Candidate], several: bool) -> Result<RgbImage, String> {
    let best: Vec<&Candidate> = best_per_set(candidates);
    let (xs, series) = axes(&best, several);
    let low = accuracy_floor(best.iter().map(|c| c.val_accuracy));
    let labels: Vec<String> = xs.iter().map(|x| short(x)).collect();
    render(WIDTH, HEIGHT, |root| {
        let n = xs.len().max(1) as i32;
        let caption = "validation accuracy per candidate (best C, mean over splits)";
        let mut chart = chart_on(root, caption, (0..n - 1).into_segmented(), low..1.0)?;
        styled_mesh(chart.configure_mesh(), ("layers", "validation accuracy"))
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(draw_err)?;
        for (i, name) in series.iter().enumerate() {
            let style = PALETTE[i % PALETTE.len()].stroke_width(2);
            let points = series_points(&best, &xs, |c| series_of(c, several) == *name);
            line_with_legend(&mut chart, points, (style, 4), name.as_str())?;
        }
        draw_legend(&mut chart, 13, SeriesLabelPosition::LowerRight)
    })
}

/// The points of the candidates `in_series` picks: each at its layers' place on x.
fn series_points(
    best: &[&Candidate],
    xs: &[&str],
    in_series: impl Fn(&Candidate) -> bool,
) -> Vec<(SegmentValue<i32>, f64)> {
    best.iter()
        .filter(|c| in_series(c))
        .map(|c| {
            let x = xs.iter().position(|x| *x == c.layers).unwrap_or(0) as i32;
            (SegmentValue::CenterOf(x), c.val_accuracy)
        })
        .collect()
}
