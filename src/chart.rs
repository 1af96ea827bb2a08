//! Pictures drawn during the work, not only in reports: a training run's curves (loss and
//! accuracy per epoch), which fine-tuning redraws after every epoch and the report shows, and
//! the embedded Noto Sans every plot of tlearn is written in (machines without fonts draw the
//! same pictures). A leaf: fine-tuning draws here without depending on the report.

use std::sync::Once;

use image::RgbImage;
use plotters::prelude::*;

/// The name the embedded font is registered under.
pub(crate) const FONT: &str = "noto-sans";
const CURVES_WIDTH: u32 = 960;
const CURVES_HEIGHT: u32 = 400;
const TRAIN: RGBColor = RGBColor(31, 119, 180);
const VAL: RGBColor = RGBColor(255, 127, 14);

/// One epoch of a training run, as the training curves draw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochPoint {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Training accuracy over the epoch.
    pub train_accuracy: f64,
    /// Validation loss after the epoch.
    pub val_loss: f64,
    /// Validation accuracy after the epoch.
    pub val_accuracy: f64,
}

/// Picks one value of an epoch (a curve's y).
type Series = fn(&EpochPoint) -> f64;

/// Registers the embedded Noto Sans (once) so plotters can draw text anywhere.
pub(crate) fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, ttf_noto_sans::REGULAR)
            .unwrap_or_else(|_| panic!("the embedded Noto Sans is a valid font"));
    });
}

/// Training curves: two panels, loss then accuracy; loss spans 0..its maximum, accuracy its range (in tenths)..1.
pub fn curves_png(history: &[EpochPoint]) -> Result<RgbImage, String> {
    register_font();
    let mut buf = vec![255u8; (CURVES_WIDTH * CURVES_HEIGHT * 3) as usize];
    {
        let root =
            BitMapBackend::with_buffer(&mut buf, (CURVES_WIDTH, CURVES_HEIGHT)).into_drawing_area();
        let (left, right) = root.split_horizontally(CURVES_WIDTH / 2);
        let max_loss = history
            .iter()
            .flat_map(|h| [h.train_loss, h.val_loss])
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max)
            .max(1e-9);
        let min_accuracy = history
            .iter()
            .flat_map(|h| [h.train_accuracy, h.val_accuracy])
            .fold(1.0f64, f64::min);
        let low = ((min_accuracy - 0.02) * 10.0).floor().clamp(0.0, 9.0) / 10.0;
        curves_panel(
            &left,
            "loss",
            0.0..max_loss * 1.05,
            [|h| h.train_loss, |h| h.val_loss],
            history,
        )?;
        curves_panel(
            &right,
            "accuracy",
            low..1.0,
            [|h| h.train_accuracy, |h| h.val_accuracy],
            history,
        )?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(RgbImage::from_raw(CURVES_WIDTH, CURVES_HEIGHT, buf)
        .expect("the buffer has the image's size"))
}

fn curves_panel(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    what: &str,
    range: std::ops::Range<f64>,
    series: [Series; 2],
    history: &[EpochPoint],
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<_>| e.to_string();
    let last = history.last().map_or(1, |h| h.epoch).max(2) as u32;
    let mut chart = ChartBuilder::on(area)
        .caption(what, (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(1..last, range)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .x_labels(last.min(12) as usize)
        .y_desc(what)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    for (pick, (name, color)) in series
        .iter()
        .zip([("training", TRAIN), ("validation", VAL)])
    {
        let points = history.iter().map(|h| (h.epoch as u32, pick(h)));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)).point_size(2))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 13))
        .position(if what == "loss" {
            SeriesLabelPosition::UpperRight
        } else {
            SeriesLabelPosition::LowerRight
        })
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(err)
}
