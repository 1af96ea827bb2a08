//! Training curves as a PNG: loss (left) and accuracy (right) per epoch, training in blue and
//! validation in orange. Drawn with the `image` crate: no fonts needed, so no labels; the
//! numbers themselves are in `history.json` and `summary.json`.

use image::{Rgb, RgbImage};

use super::checkpoint::EpochStats;

const PANEL: u32 = 320;
const MARGIN: u32 = 20;
const TRAIN: Rgb<u8> = Rgb([31, 119, 180]);
const VAL: Rgb<u8> = Rgb([255, 127, 14]);
const AXIS: Rgb<u8> = Rgb([90, 90, 90]);
const GRID: Rgb<u8> = Rgb([225, 225, 225]);

/// Picks one value of an epoch (a curve's y).
type Series = fn(&EpochStats) -> f64;

/// Two panels, loss then accuracy; accuracy spans 0..1, loss 0..its maximum.
pub fn curves_png(history: &[EpochStats]) -> RgbImage {
    let mut img = RgbImage::from_pixel(2 * PANEL + 3 * MARGIN, PANEL + 2 * MARGIN, Rgb([255; 3]));
    let max_loss = history
        .iter()
        .flat_map(|h| [h.train_loss, h.val_loss])
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let panels: [(u32, f64, [Series; 2]); 2] = [
        (MARGIN, max_loss, [|h| h.train_loss, |h| h.val_loss]),
        (
            2 * MARGIN + PANEL,
            1.0,
            [|h| h.train_accuracy, |h| h.val_accuracy],
        ),
    ];
    for (x0, top, series) in panels {
        frame(&mut img, x0);
        for (pick, color) in series.iter().zip([TRAIN, VAL]) {
            let points: Vec<(f64, f64)> = history
                .iter()
                .enumerate()
                .map(|(i, h)| (i as f64, (pick(h) / top).clamp(0.0, 1.0)))
                .collect();
            let last = (history.len().max(2) - 1) as f64;
            let to_px = |(i, v): (f64, f64)| {
                (
                    f64::from(x0) + i / last * f64::from(PANEL - 1),
                    f64::from(MARGIN) + (1.0 - v) * f64::from(PANEL - 1),
                )
            };
            for pair in points.windows(2) {
                line(&mut img, to_px(pair[0]), to_px(pair[1]), color);
            }
            if let [only] = points[..] {
                let (x, y) = to_px(only);
                line(&mut img, (x - 2.0, y), (x + 2.0, y), color);
            }
        }
    }
    img
}

/// Axes and horizontal grid lines at tenths.
fn frame(img: &mut RgbImage, x0: u32) {
    for k in 0..=10 {
        let y = MARGIN + k * (PANEL - 1) / 10;
        for x in x0..x0 + PANEL {
            img.put_pixel(x, y, if k == 10 { AXIS } else { GRID });
        }
    }
    for y in MARGIN..MARGIN + PANEL {
        img.put_pixel(x0, y, AXIS);
    }
}

/// A two-pixel-thick line by dense sampling (curves have few, short segments).
fn line(img: &mut RgbImage, a: (f64, f64), b: (f64, f64), color: Rgb<u8>) {
    let steps = ((b.0 - a.0).abs().max((b.1 - a.1).abs()) * 2.0)
        .ceil()
        .max(1.0) as usize;
    for s in 0..=steps {
        let t = s as f64 / steps as f64;
        let (x, y) = (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
        for (dx, dy) in [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)] {
            let (px, py) = ((x + dx) as u32, (y + dy) as u32);
            if px < img.width() && py < img.height() {
                img.put_pixel(px, py, color);
            }
        }
    }
}
