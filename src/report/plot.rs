//! The report's plots, drawn with plotters and the embedded Noto Sans (machines without fonts
//! draw the same pictures): the confusion matrix as a heat map with class names and a colour
//! scale, per-class precision-recall curves, and validation accuracy over the C grid (a
//! fine-tuning run's training curves are drawn by [`crate::chart`], during the training).
//! Their chart style (frame, mesh, lines with a legend) is shared here with auto's candidates
//! plot.

use image::RgbImage;
use plotters::chart::MeshStyle;
use plotters::coord::ranged1d::AsRangedCoord;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::run::SplitFit;
use crate::chart::{register_font, FONT};
use crate::classify::train::Scored;

/// What the cells of a confusion heat map show (their colour is always the row's share).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellText {
    /// Test images.
    Counts,
    /// Percent of the true class's test images.
    Percent,
}

/// Ten distinct colours (matplotlib's tab10), cycled through for series.
pub(crate) const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Longest class name shown on an axis, in characters.
const NAME_CHARS: usize = 24;

/// White to dark blue by `share` in 0..=1.
fn blues(share: f64) -> RGBColor {
    let mix = |from: f64, to: f64| (from + share.clamp(0.0, 1.0) * (to - from)).round() as u8;
    RGBColor(mix(247.0, 8.0), mix(251.0, 48.0), mix(255.0, 107.0))
}

/// A drawing of `width` x `height` made by `draw`, as an image.
pub(crate) fn render(
    width: u32,
    height: u32,
    draw: impl FnOnce(&DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<(), String>,
) -> Result<RgbImage, String> {
    register_font();
    let mut buf = vec![255u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        draw(&root)?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(RgbImage::from_raw(width, height, buf).expect("the buffer has the image's size"))
}

fn short(name: &str) -> String {
    if name.chars().count() <= NAME_CHARS {
        name.to_string()
    } else {
        name.chars().take(NAME_CHARS - 1).collect::<String>() + "…"
    }
}

/// Where the parts of a confusion heat map go, in pixels.
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// Left edge of the matrix.
    left: i32,
    /// Top edge of the matrix.
    top: i32,
    /// Side of a cell.
    cell: i32,
    /// Side of the matrix.
    grid: i32,
    /// Room for the class names.
    label: i32,
}

/// A drawing area of a bitmap.
pub(crate) type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

pub(crate) fn draw_err(e: DrawingAreaErrorKind<impl std::error::Error + Send + Sync>) -> String {
    e.to_string()
}

fn centred() -> Pos {
    Pos::new(HPos::Center, VPos::Center)
}

/// A heat map of `confusion[true][predicted]`: true classes on rows, predicted on columns, each
/// named; the colour is the share of the true class's test images (so rare classes show as
/// clearly as common ones), with its scale on the right; cells show counts or percents.
pub fn confusion_png(
    names: &[String],
    confusion: &[Vec<u32>],
    text: CellText,
) -> Result<RgbImage, String> {
    let k = confusion.len().max(1) as i32;
    let cell = (540 / k).clamp(8, 34);
    let longest = names
        .iter()
        .map(|n| short(n).chars().count())
        .max()
        .unwrap_or(1) as i32;
    let label = (longest * 7 + 10).max(30);
    let at = Layout {
        left: label + 30,
        top: 40,
        cell,
        grid: cell * k,
        label,
    };
    let width = (at.left + at.grid + 110).max(360) as u32;
    let height = (at.top + at.grid + label + 40) as u32;
    render(width, height, |root| {
        let title = match text {
            CellText::Counts => "confusion matrix: test images (colour: share of the true class)",
            CellText::Percent => "confusion matrix: % of the true class's test images",
        };
        let style = (FONT, 15).into_font().color(&BLACK).pos(centred());
        root.draw(&Text::new(title, (width as i32 / 2, 16), style))
            .map_err(draw_err)?;
        draw_cells(root, confusion, text, at)?;
        draw_names(root, names, at)?;
        draw_scale(root, at)
    })
}

/// The coloured cells, each with its count or percent when there is room.
fn draw_cells(
    root: &Area,
    confusion: &[Vec<u32>],
    text: CellText,
    at: Layout,
) -> Result<(), String> {
    let cell = at.cell;
    for (t, row) in confusion.iter().enumerate() {
        let total = row.iter().sum::<u32>().max(1) as f64;
        for (p, &count) in row.iter().enumerate() {
            let share = f64::from(count) / total;
            let (x, y) = (at.left + p as i32 * cell, at.top + t as i32 * cell);
            let square = [(x, y), (x + cell - 1, y + cell - 1)];
            root.draw(&Rectangle::new(square, blues(share).filled()))
                .map_err(draw_err)?;
            if count == 0 || cell < 18 {
                continue;
            }
            let shown = match text {
                CellText::Counts => count.to_string(),
                CellText::Percent => format!("{:.0}", 100.0 * share),
            };
            let ink = if share > 0.5 { WHITE } else { BLACK };
            let style = (FONT, 11).into_font().color(&ink).pos(centred());
            root.draw(&Text::new(shown, (x + cell / 2, y + cell / 2), style))
                .map_err(draw_err)?;
        }
    }
    Ok(())
}

/// Class names along both axes (when cells leave room for them) and the axes' titles.
fn draw_names(root: &Area, names: &[String], at: Layout) -> Result<(), String> {
    let (left, top, grid) = (at.left, at.top, at.grid);
    let rotated = |turn| (FONT, 12).into_font().transform(turn).color(&BLACK);
    if at.cell >= 10 {
        for (i, name) in names.iter().enumerate() {
            let mid = i as i32 * at.cell + at.cell / 2;
            let right = rotated(FontTransform::None).pos(Pos::new(HPos::Right, VPos::Center));
            root.draw(&Text::new(short(name), (left - 6, top + mid), right))
                .map_err(draw_err)?;
            let down = rotated(FontTransform::Rotate90).pos(Pos::new(HPos::Left, VPos::Center));
            root.draw(&Text::new(short(name), (left + mid, top + grid + 6), down))
                .map_err(draw_err)?;
        }
    }
    let below = (left + grid / 2, top + grid + at.label + 22);
    let axis = rotated(FontTransform::None).pos(centred());
    root.draw(&Text::new("predicted class", below, axis))
        .map_err(draw_err)?;
    let up = rotated(FontTransform::Rotate270).pos(centred());
    root.draw(&Text::new("true class", (12, top + grid / 2), up))
        .map_err(draw_err)
}

/// The colour scale right of the matrix: 0 % of the true class at the bottom, 100 % at the top.
fn draw_scale(root: &Area, at: Layout) -> Result<(), String> {
    let (x, top, grid) = (at.left + at.grid + 24, at.top, at.grid);
    for dy in 0..grid {
        let share = 1.0 - f64::from(dy) / f64::from(grid - 1).max(1.0);
        let line = [(x, top + dy), (x + 14, top + dy + 1)];
        root.draw(&Rectangle::new(line, blues(share).filled()))
            .map_err(draw_err)?;
    }
    root.draw(&Rectangle::new(
        [(x, top), (x + 14, top + grid)],
        BLACK.mix(0.5),
    ))
    .map_err(draw_err)?;
    let tick = (FONT, 11)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (share, name) in [(1.0, "100%"), (0.5, "50%"), (0.0, "0%")] {
        let y = top + ((1.0 - share) * f64::from(grid - 1)) as i32;
        root.draw(&Text::new(name, (x + 19, y), tick.clone()))
            .map_err(draw_err)?;
    }
    Ok(())
}

/// Precision and recall of class `c` at every threshold on its score, highest score first:
/// the points of its precision-recall curve (empty when no image is of class `c`).
pub fn pr_curve(predictions: &[&Scored], c: usize) -> Vec<(f64, f64)> {
    let positives = predictions.iter().filter(|p| p.label == c).count();
    if positives == 0 {
        return Vec::new();
    }
    let mut ranked: Vec<(f32, bool)> = predictions
        .iter()
        .map(|p| (p.scores[c], p.label == c))
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tp, mut points) = (0usize, Vec::with_capacity(ranked.len()));
    for (i, (score, positive)) in ranked.iter().enumerate() {
        tp += usize::from(*positive);
        // Images with equal scores pass a threshold together: one point after the last.
        if ranked.get(i + 1).is_some_and(|next| next.0 == *score) {
            continue;
        }
        points.push((tp as f64 / positives as f64, tp as f64 / (i + 1) as f64));
    }
    points
}

/// One precision-recall curve per class, over `predictions` (recall on x, precision on y).
pub fn pr_curves_png(names: &[String], predictions: &[&Scored]) -> Result<RgbImage, String> {
    let legend_rows = names.len() as u32;
    let height = (460).max(120 + 17 * legend_rows);
    render(960, height, |root| {
        let caption = "precision-recall per class (test images of all splits)";
        let mut chart = chart_on(root, caption, 0.0..1.0f64, 0.0..1.02f64)?;
        styled_mesh(chart.configure_mesh(), ("recall", "precision"))
            .draw()
            .map_err(draw_err)?;
        for (c, name) in names.iter().enumerate() {
            let points = pr_curve(predictions, c);
            if points.is_empty() {
                continue;
            }
            // Colours repeat after the palette's ten: the first ten classes' lines are thicker.
            let width = if c < PALETTE.len() { 2 } else { 1 };
            let style = PALETTE[c % PALETTE.len()].stroke_width(width);
            line_with_legend(&mut chart, points, (style, 0), short(name))?;
        }
        draw_legend(&mut chart, 12, SeriesLabelPosition::LowerLeft)
    })
}

/// Validation accuracy of every C tried, one line per split, the chosen C marked; None when no
/// split tried a grid (fine-tuning: its curves show validation accuracy per epoch).
pub fn grid_png(fits: &[&SplitFit]) -> Option<Result<RgbImage, String>> {
    let line = |f: &SplitFit| -> Vec<(f64, f64)> {
        f.grid
            .iter()
            .map(|g| (g.c.log10(), g.val_accuracy))
            .collect()
    };
    let points: Vec<(f64, f64)> = fits.iter().flat_map(|f| line(f)).collect();
    if points.is_empty() {
        return None;
    }
    let (lo, hi) = points.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.0), hi.max(p.0))
    });
    let low = accuracy_floor(points.iter().map(|p| p.1));
    Some(render(960, 400, |root| {
        let caption = "validation accuracy over C (● chosen)";
        let mut chart = chart_on(root, caption, lo - 0.3..hi + 0.3, low..1.0f64)?;
        styled_mesh(chart.configure_mesh(), ("C", "validation accuracy"))
            .x_labels(((hi - lo) as usize + 1).clamp(2, 12))
            .x_label_formatter(&|v| format!("1e{:.0}", v))
            .draw()
            .map_err(draw_err)?;
        for (i, f) in fits.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let label = format!("split {}", f.split);
            line_with_legend(&mut chart, line(f), (color.stroke_width(2), 3), label)?;
            mark_chosen(&mut chart, f, color)?;
        }
        draw_legend(&mut chart, 13, SeriesLabelPosition::LowerRight)
    }))
}

/// A dot on the chosen C of a split's line.
fn mark_chosen(
    chart: &mut Chart<RangedCoordf64, RangedCoordf64>,
    f: &SplitFit,
    color: RGBColor,
) -> Result<(), String> {
    let chosen = f.chosen.parse::<f64>().ok();
    let marks = f
        .grid
        .iter()
        .filter(|g| Some(g.c) == chosen)
        .map(|g| Circle::new((g.c.log10(), g.val_accuracy), 7, color.filled()));
    chart.draw_series(marks).map_err(draw_err)?;
    Ok(())
}

/// A chart of the report's plots (and auto's): drawn on a bitmap, x by y.
pub(crate) type Chart<'a, 'b, X, Y> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<X, Y>>;

/// A chart on `root` over `x` and `y` under `caption`, with the plots' margins and label room.
pub(crate) fn chart_on<'a, 'b, X: AsRangedCoord, Y: AsRangedCoord>(
    root: &Area<'b>,
    caption: &str,
    x: X,
    y: Y,
) -> Result<Chart<'a, 'b, X::CoordDescType, Y::CoordDescType>, String> {
    ChartBuilder::on(root)
        .caption(caption, (FONT, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(x, y)
        .map_err(draw_err)
}

/// The plots' mesh style: axes named `(x, y)` in the embedded font, no light grid lines; the
/// caller adds what its axes need and draws it.
pub(crate) fn styled_mesh<'a, 'b, X: Ranged, Y: Ranged, DB: DrawingBackend>(
    mut mesh: MeshStyle<'a, 'b, X, Y, DB>,
    (x, y): (&str, &str),
) -> MeshStyle<'a, 'b, X, Y, DB> {
    mesh.x_desc(x)
        .y_desc(y)
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 14))
        .light_line_style(WHITE.mix(0.0));
    mesh
}

/// A line through `points` drawn in `style` with dots of `dots` pixels (0: none), named
/// `label` in the legend.
pub(crate) fn line_with_legend<'a, 'b, X, Y>(
    chart: &mut Chart<'a, 'b, X, Y>,
    points: Vec<(X::ValueType, Y::ValueType)>,
    (style, dots): (ShapeStyle, u32),
    label: impl Into<String>,
) -> Result<(), String>
where
    X: Ranged,
    Y: Ranged,
    X::ValueType: Clone + 'static,
    Y::ValueType: Clone + 'static,
    'b: 'a,
{
    chart
        .draw_series(LineSeries::new(points, style).point_size(dots))
        .map_err(draw_err)?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    Ok(())
}

/// The legend in `font`-pixel type at `position`, on a light box.
pub(crate) fn draw_legend<'a, 'b: 'a, X: Ranged, Y: Ranged>(
    chart: &mut Chart<'a, 'b, X, Y>,
    font: u32,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .label_font((FONT, font))
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(draw_err)
}

/// The bottom of an accuracy axis: a tenth at least 0.02 below the lowest of `accuracies`
/// (from 0 to 0.9), so that every point shows above it.
pub(crate) fn accuracy_floor(accuracies: impl Iterator<Item = f64>) -> f64 {
    let low = accuracies.fold(1.0f64, f64::min);
    ((low - 0.02) * 10.0).floor().clamp(0.0, 9.0) / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heat_map_colours_by_row_share_and_has_room_for_names() {
        let names = vec!["Daffodil".to_string(), "Snowdrop".to_string()];
        let img = confusion_png(&names, &[vec![5, 0], vec![1, 4]], CellText::Counts).unwrap();
        assert!(img.width() >= 360 && img.height() > 100);
        // Somewhere the darkest blue (a full row share) and the lightest (an empty cell).
        let has = |c: RGBColor| img.pixels().any(|p| p.0 == [c.0, c.1, c.2]);
        assert!(has(blues(1.0)) && has(blues(0.0)));
        // Text was drawn (the embedded font works): some pure black pixels.
        assert!(img.pixels().any(|p| p.0 == [0, 0, 0]));
    }

    #[test]
    fn pr_curve_of_a_known_ranking() {
        let s = |label, a: f32| Scored {
            path: String::new(),
            label,
            predicted: 0,
            scores: vec![a, 0.0],
        };
        // Class 0 scores 0.9 (a 0), 0.8 (a 1), 0.7 (a 0), 0.7 (a 1): two positives.
        let p = [s(0, 0.9), s(1, 0.8), s(0, 0.7), s(1, 0.7)];
        let refs: Vec<&Scored> = p.iter().collect();
        assert_eq!(pr_curve(&refs, 0), vec![(0.5, 1.0), (0.5, 0.5), (1.0, 0.5)]);
        assert!(pr_curve(&refs[..1], 1).is_empty());
    }
}
