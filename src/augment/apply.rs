//! Applying [`AugmentParams`] to pixels, and the preview grid.

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::{imageops, Rgb, Rgb32FImage, RgbImage};
use imageproc::geometric_transformations::{warp_into, Border, Interpolation, Projection};
use rayon::prelude::*;

use super::{AugmentParams, Recipe, FILL};

/// Below this source-to-output scale an axis is first downsampled with an antialiasing
/// filter, because bilinear warping skips source pixels and aliases.
const MIN_WARP_SCALE: f64 = 0.75;

/// A 2D affine map as a row-major 3x3 matrix.
type Mat = [[f64; 3]; 3];

fn mul(a: &Mat, b: &Mat) -> Mat {
    std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| a[i][k] * b[k][j]).sum()))
}

fn affine(a: f64, b: f64, c: f64, d: f64, e: f64, f: f64) -> Mat {
    [[a, b, c], [d, e, f], [0.0, 0.0, 1.0]]
}

fn translate(tx: f64, ty: f64) -> Mat {
    affine(1.0, 0.0, tx, 0.0, 1.0, ty)
}

impl AugmentParams {
    /// Returns the augmented image, the same size as `img`.
    ///
    /// Crop, zoom and rotation are composed into one affine map and resampled once with
    /// imageproc's bilinear warp (in f32, so no rounding between steps), about the image
    /// centre; areas from outside the image get [`FILL`]. The flips are then exact pixel
    /// mirrors. Identity parameters return an exact copy.
    pub fn apply(&self, img: &RgbImage) -> RgbImage {
        let (w, h) = img.dimensions();
        let geometric =
            self.angle != 0.0 || self.scale != 1.0 || self.crop != super::CropRect::FULL;
        let mut out = if geometric && w > 0 && h > 0 {
            self.warp(img)
        } else {
            img.clone()
        };
        if self.flip {
            imageops::flip_horizontal_in_place(&mut out);
        }
        if self.vflip {
            imageops::flip_vertical_in_place(&mut out);
        }
        out
    }

    /// Inverse map (output continuous coordinates -> source continuous coordinates).
    fn inverse_map(&self, w: f64, h: f64) -> Mat {
        let (cx, cy) = (w / 2.0, h / 2.0);
        let (sin, cos) = f64::from(self.angle).to_radians().sin_cos();
        // Counter-clockwise on screen (y down) is [cos sin; -sin cos]; this is its inverse.
        let unrotate = mul(
            &mul(&translate(cx, cy), &affine(cos, -sin, 0.0, sin, cos, 0.0)),
            &translate(-cx, -cy),
        );
        let k = 1.0 / f64::from(self.scale);
        let unzoom = mul(
            &mul(&translate(cx, cy), &affine(k, 0.0, 0.0, 0.0, k, 0.0)),
            &translate(-cx, -cy),
        );
        let c = &self.crop;
        let uncrop = affine(
            f64::from(c.w),
            0.0,
            f64::from(c.x) * w,
            0.0,
            f64::from(c.h),
            f64::from(c.y) * h,
        );
        mul(&uncrop, &mul(&unzoom, &unrotate))
    }

    fn warp(&self, img: &RgbImage) -> RgbImage {
        let (w, h) = img.dimensions();
        let (wf, hf) = (f64::from(w), f64::from(h));
        let mut inverse = self.inverse_map(wf, hf);

        // Output pixels per source pixel along each source axis (rotation keeps lengths).
        let scale_x = f64::from(self.scale) / f64::from(self.crop.w);
        let scale_y = f64::from(self.scale) / f64::from(self.crop.h);
        let small = (scale_x < MIN_WARP_SCALE || scale_y < MIN_WARP_SCALE).then(|| {
            let sw = ((wf * scale_x.min(1.0)).round() as u32).max(1);
            let sh = ((hf * scale_y.min(1.0)).round() as u32).max(1);
            let rescale = affine(f64::from(sw) / wf, 0.0, 0.0, 0.0, f64::from(sh) / hf, 0.0);
            inverse = mul(&rescale, &inverse);
            resize_exact(img, sw, sh)
        });
        let source = small.as_ref().unwrap_or(img);

        // imageproc addresses pixel centres by integer coordinates; ours sit at +0.5.
        let inverse = mul(&translate(-0.5, -0.5), &mul(&inverse, &translate(0.5, 0.5)));
        let m: [f32; 9] = std::array::from_fn(|i| inverse[i / 3][i % 3] as f32);
        // Giving imageproc the inverse and flipping it back means the warp uses our f64-built
        // inverse as is, not one re-derived in f32.
        let Some(projection) = Projection::from_matrix(m).map(Projection::invert) else {
            return img.clone();
        };

        let (sw, sh) = source.dimensions();
        let src = Rgb32FImage::from_raw(
            sw,
            sh,
            source.as_raw().iter().map(|&v| f32::from(v)).collect(),
        )
        .expect("buffer is w*h*3");
        let mut out = Rgb32FImage::new(w, h);
        let fill = Rgb(FILL.map(f32::from));
        warp_into(
            &src,
            projection,
            Interpolation::Bilinear,
            Border::Constant(fill),
            &mut out,
        );
        let bytes = out
            .as_raw()
            .iter()
            .map(|&v| (v + 0.5).clamp(0.0, 255.0) as u8)
            .collect();
        RgbImage::from_raw(w, h, bytes).expect("buffer is w*h*3")
    }
}

/// Antialiased bilinear resize to exactly `w` x `h`.
fn resize_exact(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    let mut dst = RgbImage::new(w, h);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    Resizer::new()
        .resize(img, &mut dst, &options)
        .expect("same pixel type, no crop");
    dst
}

/// A contact sheet: the original, then `copies` augmented variants (image key `"preview"`),
/// each fitted into a `tile` x `tile` cell (shrunk to the image's aspect ratio), in a
/// near-square grid with a small white gap.
pub fn preview_grid(
    img: &RgbImage,
    recipe: &Recipe,
    seed: u64,
    copies: u32,
    tile: u32,
) -> RgbImage {
    let tile = tile.max(1);
    let (w, h) = img.dimensions();
    let fit = f64::from(tile) / f64::from(w.max(h).max(1));
    let tw = ((f64::from(w) * fit).round() as u32).clamp(1, tile);
    let th = ((f64::from(h) * fit).round() as u32).clamp(1, tile);
    let n = copies.saturating_add(1);
    let cols = (f64::from(n).sqrt().ceil() as u32).max(1);
    let rows = n.div_ceil(cols);
    let gap = (tile / 32).max(2);
    let white = Rgb([255; 3]);
    let mut grid = RgbImage::from_pixel(cols * (tw + gap) + gap, rows * (th + gap) + gap, white);
    if w == 0 || h == 0 {
        return grid;
    }
    let thumbs: Vec<RgbImage> = (0..n)
        .into_par_iter()
        .map(|copy| resize_exact(&recipe.sample(seed, "preview", copy).apply(img), tw, th))
        .collect();
    for (i, thumb) in (0..n).zip(&thumbs) {
        let x = gap + (i % cols) * (tw + gap);
        let y = gap + (i / cols) * (th + gap);
        imageops::replace(&mut grid, thumb, i64::from(x), i64::from(y));
    }
    grid
}
