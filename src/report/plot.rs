//! The confusion matrix as a PNG heat map.
//!
//! Drawn with the `image` crate and a built-in 3 x 5 digit font rather than plotters: plotters'
//! text needs system fonts (font-kit) or a font file shipped with the program, and a heat map
//! only needs digits (counts and class indices; the class names sit in the md / html legend).

use image::{Rgb, RgbImage};

/// Rows of each digit glyph, three bits per row, top row first.
const DIGITS: [[u8; 5]; 10] = [
    [0b111, 0b101, 0b101, 0b101, 0b111],
    [0b010, 0b110, 0b010, 0b010, 0b111],
    [0b111, 0b001, 0b111, 0b100, 0b111],
    [0b111, 0b001, 0b111, 0b001, 0b111],
    [0b101, 0b101, 0b111, 0b001, 0b001],
    [0b111, 0b100, 0b111, 0b001, 0b111],
    [0b111, 0b100, 0b111, 0b101, 0b111],
    [0b111, 0b001, 0b001, 0b001, 0b001],
    [0b111, 0b101, 0b111, 0b101, 0b111],
    [0b111, 0b101, 0b111, 0b001, 0b111],
];

/// Pixels per font dot.
const DOT: u32 = 2;
/// Side of a matrix cell.
const CELL: u32 = 30;
/// Room for the class indices left of and above the matrix.
const MARGIN: u32 = 34;

/// Draws `number` centred at (`cx`, `cy`).
fn draw_number(img: &mut RgbImage, number: usize, cx: u32, cy: u32, color: Rgb<u8>) {
    let text = number.to_string();
    let width = text.len() as u32 * 4 * DOT - DOT;
    let (x0, y0) = (cx.saturating_sub(width / 2), cy.saturating_sub(5 * DOT / 2));
    for (i, ch) in text.bytes().enumerate() {
        let glyph = DIGITS[(ch - b'0') as usize];
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..3u32 {
                if bits & (0b100 >> col) == 0 {
                    continue;
                }
                for dy in 0..DOT {
                    for dx in 0..DOT {
                        let x = x0 + (i as u32 * 4 + col) * DOT + dx;
                        let y = y0 + row as u32 * DOT + dy;
                        if x < img.width() && y < img.height() {
                            img.put_pixel(x, y, color);
                        }
                    }
                }
            }
        }
    }
}

/// A heat map of `confusion[true][predicted]`: rows are true classes, columns predicted, the
/// shade is the row's fraction (so rare classes show as clearly as common ones), each cell
/// shows its count, and the axes show class indices.
pub fn confusion_png(confusion: &[Vec<u32>]) -> RgbImage {
    let k = confusion.len() as u32;
    let side = MARGIN + k * CELL + 4;
    let mut img = RgbImage::from_pixel(side, side, Rgb([255, 255, 255]));
    let grey = Rgb([90, 90, 90]);
    for c in 0..k {
        let centre = MARGIN + c * CELL + CELL / 2;
        draw_number(&mut img, c as usize, MARGIN / 2, centre, grey);
        draw_number(&mut img, c as usize, centre, MARGIN / 2, grey);
    }
    for (t, row) in confusion.iter().enumerate() {
        let total: u32 = row.iter().sum::<u32>().max(1);
        for (p, &count) in row.iter().enumerate() {
            let share = count as f32 / total as f32;
            // White to dark blue; mistakes (off the diagonal) in red so they stand out.
            let shade = |full: u8| (255.0 - share * (255.0 - full as f32)) as u8;
            let fill = if t == p {
                Rgb([shade(8), shade(48), shade(107)])
            } else {
                Rgb([shade(165), shade(15), shade(21)])
            };
            let (x0, y0) = (MARGIN + p as u32 * CELL, MARGIN + t as u32 * CELL);
            for y in y0..y0 + CELL - 1 {
                for x in x0..x0 + CELL - 1 {
                    img.put_pixel(x, y, fill);
                }
            }
            if count > 0 {
                let ink = if share > 0.5 {
                    Rgb([255, 255, 255])
                } else {
                    Rgb([0, 0, 0])
                };
                draw_number(&mut img, count as usize, x0 + CELL / 2, y0 + CELL / 2, ink);
            }
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagonal_is_dark_and_empty_cells_white() {
        let img = confusion_png(&[vec![5, 0], vec![1, 4]]);
        assert_eq!(img.width(), MARGIN + 2 * CELL + 4);
        // A corner pixel of cell (0,0), away from the digits: full share, dark blue.
        assert_eq!(*img.get_pixel(MARGIN + 1, MARGIN + 1), Rgb([8, 48, 107]));
        // Cell (0,1) has no count: white.
        assert_eq!(
            *img.get_pixel(MARGIN + CELL + 1, MARGIN + 1),
            Rgb([255, 255, 255])
        );
        // Cell (1,0) is a mistake: reddish.
        let miss = img.get_pixel(MARGIN + 1, MARGIN + CELL + 1);
        assert!(miss[0] > miss[2], "{miss:?}");
    }
}
