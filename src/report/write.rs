//! Writing a run's report directory: report.json, report.md, confusion.png, gallery/ and the
//! self-contained report.html.

use std::path::{Path, PathBuf};

use super::content::{self, Pictures};
use super::doc::{self, Image};
use super::plot::{confusion_png, grid_png, pr_curves_png, CellText};
use super::run::{RunReport, SplitFit, GALLERY_MAX};
use super::{html, ReportError};
use crate::classify::train::Scored;
use crate::output;
use crate::preprocess::{load_rgb, DecodeLimits};

/// Side of a gallery thumbnail in pixels.
const THUMB: u32 = 128;

/// Writes the report of `report` into `dir`. An older report there is replaced only once the
/// new one is complete, and only if the folder holds nothing but report files tlearn wrote
/// ([`is_report_file`], listed in its record); a folder with anything else is refused and left
/// as it is.
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
    output::replace_dir(dir, is_report_file, REPORT_KIND, |staged| {
        fill_run_dir(report, staged)?;
        more(staged)
    })
}

/// What a run's report files are, in the folder's record of tlearn's outputs.
pub const REPORT_KIND: &str = "run report";

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
    std::fs::create_dir_all(dir.join("gallery")).map_err(io(dir))?;
    let json = serde_json::to_string_pretty(report).expect("report serialises");
    write(&dir.join("report.json"), (json + "\n").as_bytes())?;
    let pictures = pictures(report)?;
    let images = [&pictures.confusion, &pictures.confusion_normalised]
        .into_iter()
        .chain(&pictures.pr_curves)
        .chain(&pictures.c_grid)
        .chain(&pictures.curves)
        .chain(pictures.thumbs.iter().flatten());
    for image in images {
        write(&dir.join(&image.file), &image.bytes)?;
    }
    let blocks = content::run_blocks(report, &pictures);
    write(&dir.join("report.md"), doc::markdown(&blocks).as_bytes())?;
    let title = format!("{} — tlearn report", report.run);
    let page = html::page(&title, &doc::html(&blocks));
    write(&dir.join("report.html"), page.as_bytes())
}

/// Turns an IO error on `path` into a report error.
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError {
    let path = path.to_path_buf();
    move |source| ReportError::Io { path, source }
}

/// Writes a file of a staged report folder (renamed into place whole by [`write_run`]).
fn write(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    std::fs::write(path, bytes).map_err(io(path))
}

/// A PNG of an image.
pub(crate) fn png_bytes(img: &image::RgbImage) -> Result<Vec<u8>, ReportError> {
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )?;
    Ok(bytes)
}

/// A plot as a PNG image of the report folder.
fn plot(
    alt: &str,
    file: &str,
    drawn: Result<image::RgbImage, String>,
) -> Result<Image, ReportError> {
    Ok(Image {
        alt: alt.into(),
        file: file.into(),
        bytes: png_bytes(&drawn.map_err(ReportError::Image)?)?,
    })
}

/// The report's pictures: plots, training curves (copied from the run) and thumbnails.
fn pictures(report: &RunReport) -> Result<Pictures, ReportError> {
    let names = &report.class_names;
    let confusion = plot(
        "confusion matrix",
        "confusion.png",
        confusion_png(names, &report.confusion, CellText::Counts),
    )?;
    let confusion_normalised = plot(
        "confusion matrix, normalised by true class",
        "confusion-normalised.png",
        confusion_png(names, &report.confusion, CellText::Percent),
    )?;
    let predictions: Vec<&Scored> = report.splits.iter().flat_map(|s| &s.predictions).collect();
    let pr_curves = (!predictions.is_empty())
        .then(|| {
            plot(
                "precision-recall curves per class",
                "pr-curves.png",
                pr_curves_png(names, &predictions),
            )
        })
        .transpose()?;
    let fits: Vec<&SplitFit> = report.splits.iter().map(|s| &s.fit).collect();
    let c_grid = grid_png(&fits)
        .map(|drawn| plot("validation accuracy over C", "c-grid.png", drawn))
        .transpose()?;
    let curves = report
        .curves
        .iter()
        .enumerate()
        .map(|(i, source)| {
            Ok(Image {
                alt: format!("training curves {i}"),
                file: curve_file(i),
                bytes: crate::input::read_regular(Path::new(source))
                    .map_err(io(Path::new(source)))?,
            })
        })
        .collect::<Result<_, ReportError>>()?;
    Ok(Pictures {
        confusion,
        confusion_normalised,
        pr_curves,
        c_grid,
        curves,
        thumbs: thumbnails(report),
    })
}

/// Thumbnails of the gallery's images (None where the image cannot be read or the data root
/// is unknown: the gallery then shows the path only).
fn thumbnails(report: &RunReport) -> Vec<Option<Image>> {
    let root = report.data_root.as_ref().map(PathBuf::from);
    report
        .wrong_images()
        .iter()
        .take(GALLERY_MAX)
        .enumerate()
        .map(|(i, wrong)| {
            let path = root
                .as_ref()?
                .join(crate::dataset::stored_to_path(&wrong.worst.path));
            let img = load_rgb(&path, &DecodeLimits::default()).ok()?;
            let thumb =
                image::imageops::thumbnail(&img, THUMB, THUMB * img.height() / img.width().max(1));
            let mut jpeg = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 80)
                .encode_image(&thumb)
                .ok()?;
            Some(Image {
                alt: String::new(),
                file: format!("gallery/{i:03}.jpg"),
                bytes: jpeg,
            })
        })
        .collect()
}

/// File name, in the report folder, of the `i`-th training-curve image.
pub(crate) fn curve_file(i: usize) -> String {
    format!("curves-{i}.png")
}
