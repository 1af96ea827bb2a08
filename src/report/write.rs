//! Writing a run's report directory: report.json, report.md, confusion.png, gallery/ and the
//! self-contained report.html.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::metrics::per_class;
use super::plot::confusion_png;
use super::run::RunReport;
use super::{html, ReportError};
use crate::output;
use crate::preprocess::{load_rgb, DecodeLimits};

/// Misclassified images shown in the gallery (the rest are listed in report.json).
pub const GALLERY_MAX: usize = 48;

/// Side of a gallery thumbnail in pixels.
const THUMB: u32 = 128;

/// One gallery thumbnail: the JPEG bytes and the file name under gallery/.
pub(crate) struct Thumb {
    pub(crate) file: String,
    pub(crate) jpeg: Vec<u8>,
}

/// Writes the report of `report` into `dir`. An older report there is replaced only once the
/// new one is complete, and only if the folder holds nothing but report files
/// ([`is_report_file`]); a folder with anything else is refused and left as it is.
pub fn write_run(report: &RunReport, dir: &Path) -> Result<(), ReportError> {
    write_run_with(report, dir, |_| Ok(()))
}

/// [`write_run`], with `more` adding files to the new folder before it replaces the old one
/// (as `tlearn auto` adds its decision), so the folder is replaced whole or not at all.
pub fn write_run_with(
    report: &RunReport,
    dir: &Path,
    more: impl FnOnce(&Path) -> Result<(), ReportError>,
) -> Result<(), ReportError> {
    output::replace_dir(dir, is_report_file, |staged| {
        fill_run_dir(report, staged)?;
        more(staged)
    })
}

/// Whether `rel` (relative to a run's report folder) is a file or folder [`write_run`] writes.
pub fn is_report_file(rel: &Path) -> bool {
    let name = rel.file_name().map_or("".into(), |n| n.to_string_lossy());
    let extension = rel.extension().map_or("".into(), |e| e.to_string_lossy());
    match rel.parent().map(|p| p.as_os_str().to_string_lossy()) {
        Some(parent) if parent.is_empty() => {
            name == "gallery"
                || matches!(name.as_ref(), "report.json" | "report.md" | "report.html")
                // `tlearn auto` adds its decision beside the report.
                || matches!(name.as_ref(), "decision.json" | "decision.md" | "decision.html")
                || extension == "png"
        }
        Some(parent) => parent == "gallery" && extension == "jpg",
        None => false,
    }
}

/// Writes every file of the report into the empty folder `dir`.
fn fill_run_dir(report: &RunReport, dir: &Path) -> Result<(), ReportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReportError::Io { path, source }
    };
    std::fs::create_dir_all(dir.join("gallery")).map_err(io(dir))?;
    let json = serde_json::to_string_pretty(report).expect("report serialises");
    std::fs::write(dir.join("report.json"), json + "\n").map_err(io(dir))?;
    let png = confusion_png(&report.confusion);
    let mut png_bytes = Vec::new();
    png.write_to(
        &mut std::io::Cursor::new(&mut png_bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| ReportError::Image(e.to_string()))?;
    std::fs::write(dir.join("confusion.png"), &png_bytes).map_err(io(dir))?;
    let mut curves = Vec::new();
    for (i, source) in report.curves.iter().enumerate() {
        let png = std::fs::read(source).map_err(io(Path::new(source)))?;
        std::fs::write(dir.join(curve_file(i)), &png).map_err(io(dir))?;
        curves.push(png);
    }
    let thumbs = thumbnails(report);
    for t in thumbs.iter().flatten() {
        std::fs::write(dir.join("gallery").join(&t.file), &t.jpeg).map_err(io(dir))?;
    }
    std::fs::write(dir.join("report.md"), markdown(report, &thumbs)).map_err(io(dir))?;
    let page = html::run_page(report, &png_bytes, &curves, &thumbs);
    std::fs::write(dir.join("report.html"), page).map_err(io(dir))
}

/// Thumbnails of the first misclassified images (None where the image cannot be read or the
/// data root is unknown: the gallery then shows the path only).
pub(crate) fn thumbnails(report: &RunReport) -> Vec<Option<Thumb>> {
    let root = report.data_root.as_ref().map(PathBuf::from);
    report
        .misclassified
        .iter()
        .take(GALLERY_MAX)
        .enumerate()
        .map(|(i, miss)| {
            let path = root
                .as_ref()?
                .join(crate::dataset::stored_to_path(&miss.path));
            let img = load_rgb(&path, &DecodeLimits::default()).ok()?;
            let thumb =
                image::imageops::thumbnail(&img, THUMB, THUMB * img.height() / img.width().max(1));
            let mut jpeg = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 80)
                .encode_image(&thumb)
                .ok()?;
            Some(Thumb {
                file: format!("{i:03}.jpg"),
                jpeg,
            })
        })
        .collect()
}

/// Percent with two decimals.
pub(crate) fn pct(v: f64) -> String {
    format!("{:.2}", 100.0 * v)
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
        id.copies
    )
    .to_lowercase()
}

/// The report as Markdown.
pub(crate) fn markdown(r: &RunReport, thumbs: &[Option<Thumb>]) -> String {
    let s = &r.summary;
    let mut md = String::new();
    let _ = writeln!(md, "# {} — {}\n", r.run, r.method.label());
    let _ = writeln!(
        md,
        "**Test accuracy {}% ± {}** (mean ± sample std over {} split(s)); top-5 {}% ± {}; macro F1 {} ± {}.\n",
        pct(s.accuracy.mean),
        pct(s.accuracy.std),
        s.splits,
        pct(s.top5_accuracy.mean),
        pct(s.top5_accuracy.std),
        pct(s.macro_f1.mean),
        pct(s.macro_f1.std)
    );
    let _ = writeln!(md, "- features: {} (`{}`)", features_line(r), r.cache);
    let _ = writeln!(md, "- training: {}", r.method.training_line());
    let _ = writeln!(
        md,
        "- times: fit {:.2} s ± {:.2}, predict {:.3} s ± {:.3} (kept fit, per split)",
        s.fit_seconds.mean, s.fit_seconds.std, s.predict_seconds.mean, s.predict_seconds.std
    );
    if let Some(m) = &r.model {
        let _ = writeln!(
            md,
            "- model: `{}` ({}, {} {})",
            m.path,
            m.trained_on,
            r.method.chosen_title(),
            m.chosen
        );
    }
    let _ = writeln!(md, "\n## Splits\n");
    let _ = writeln!(md, "| split | {} | val acc % | train rows | test images | accuracy % | top-5 % | macro P % | macro R % | macro F1 % | fit s | predict s |", r.method.chosen_title());
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for sp in &r.splits {
        let (f, m) = (&sp.fit, &sp.metrics);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.3} |",
            f.split,
            f.chosen,
            pct(f.val_accuracy),
            f.train_rows,
            sp.test_images,
            pct(m.accuracy),
            pct(m.top5_accuracy),
            pct(m.macro_precision),
            pct(m.macro_recall),
            pct(m.macro_f1),
            f.fit_seconds,
            f.predict_seconds
        );
    }
    for (i, _) in r.curves.iter().enumerate() {
        if i == 0 {
            let _ = writeln!(md, "\n## Training curves\n");
        }
        let _ = writeln!(md, "![training curves {i}]({})", curve_file(i));
    }
    let _ = writeln!(md, "\n## Per class (test images of all splits)\n");
    let _ = writeln!(
        md,
        "| # | class | precision % | recall % | F1 % | test images |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for (i, c) in per_class(&r.class_names, &r.confusion).iter().enumerate() {
        let _ = writeln!(
            md,
            "| {i} | {} | {} | {} | {} | {} |",
            c.name,
            pct(c.precision),
            pct(c.recall),
            pct(c.f1),
            c.support
        );
    }
    let _ = writeln!(
        md,
        "\n## Confusion matrix\n\n![confusion matrix](confusion.png)\n\nRows: true class, columns: predicted class, by the index (#) of the table above; counts summed over splits, shade = share of the row.\n"
    );
    let _ = writeln!(
        md,
        "## Misclassified test images ({} in all)\n",
        r.misclassified.len()
    );
    let _ = writeln!(md, "| image | split | path | true | predicted |");
    let _ = writeln!(md, "|---|---|---|---|---|");
    for (miss, thumb) in r.misclassified.iter().zip(thumbs) {
        let picture = thumb
            .as_ref()
            .map_or(String::new(), |t| format!("![](gallery/{})", t.file));
        let _ = writeln!(
            md,
            "| {picture} | {} | `{}` | {} | {} |",
            miss.split, miss.path, r.class_names[miss.label], r.class_names[miss.predicted]
        );
    }
    if r.misclassified.len() > thumbs.len() {
        let _ = writeln!(
            md,
            "\n({} more in report.json.)",
            r.misclassified.len() - thumbs.len()
        );
    }
    let _ = writeln!(md, "\n## Configuration\n\n```json\n{}\n```", config_json(r));
    md
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

/// File name, in the report folder, of the `i`-th training-curve image.
pub(crate) fn curve_file(i: usize) -> String {
    format!("curves-{i}.png")
}
