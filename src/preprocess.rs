//! Turning a decoded image into the tensor a backbone expects: resize, channel order,
//! normalisation, plus [`load_rgb`], the one way images are decoded, and [`decode_ahead`], the
//! one way batches of images stream to a backbone (decoded while it runs the previous batch).

mod ahead;
mod decode;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::path::PathBuf;

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use serde::{Deserialize, Serialize};

pub use ahead::{decode_ahead, Prepared, PREFETCH_BATCHES};
pub use decode::{decode_rgb, load_rgb, read_image_file, DecodeLimits};

/// Errors of this module: an invalid [`Preprocessing`] or an image [`load_rgb`] refuses.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// The preprocessing descriptor has an unusable value.
    #[error("invalid preprocessing: {0}")]
    InvalidPreprocessing(String),
    /// The file could not be opened or read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file has zero bytes.
    #[error("{}: file is empty", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The content matches no known image format.
    #[error("{}: not an image (content is not JPEG, PNG, GIF, BMP, TIFF or WebP)", path.display())]
    NotAnImage {
        /// The file.
        path: PathBuf,
    },
    /// A known format, but a variant of it the decoder does not support.
    #[error("{}: unsupported image: {detail}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The decoder's explanation.
        detail: String,
    },
    /// The data ends early or does not decode.
    #[error("{}: truncated or corrupt image: {detail}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The image exceeds [`DecodeLimits`]; refused before its pixels are allocated.
    #[error("{}: image too large: {detail}", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Which limit, and by how much.
        detail: String,
    },
    /// A side is below [`DecodeLimits::min_side`].
    #[error("{}: image is {width}x{height}, smaller than the minimum {min_side}x{min_side}", path.display())]
    TooSmall {
        /// The file.
        path: PathBuf,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// The limit.
        min_side: u32,
    },
}

/// What [`load_rgb`] returns on failure (the module's single error type).
pub type DecodeError = PreprocessError;

/// How an image of any aspect ratio becomes `size` x `size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResizeMode {
    /// Scale so the shorter side equals `size`, then take the centre square.
    #[default]
    ShorterSideCrop,
    /// Scale each axis independently to `size`, distorting the aspect ratio.
    Stretch,
}

/// Channel order of the model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColorOrder {
    /// Red, green, blue (torchvision, ONNX model zoo).
    Rgb,
    /// Blue, green, red (Keras "caffe" mode, OpenCV).
    Bgr,
}

/// What a backbone wants as input: a square of `size`, channel order and normalisation.
///
/// Each value is `((pixel_0_255 * scale) - mean[c]) / std[c]`, with `mean` and `std` in the
/// model's channel order (`color_order`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    /// Side of the square model input, in pixels.
    pub size: u32,
    /// How the image is brought to `size` x `size`.
    #[serde(default)]
    pub resize: ResizeMode,
    /// Channel order of the model input.
    pub color_order: ColorOrder,
    /// Factor applied to the 0-255 pixel value before the mean is subtracted.
    pub scale: f32,
    /// Per-channel mean, in model channel order, subtracted after `scale`.
    pub mean: [f32; 3],
    /// Per-channel divisor, in model channel order, applied last.
    pub std: [f32; 3],
}

impl Preprocessing {
    /// Keras `preprocess_input(mode="caffe")` (Keras VGG16/VGG19/ResNet50): BGR, 0-255, mean subtracted.
    pub fn caffe(size: u32) -> Self {
        Self {
            size,
            resize: ResizeMode::ShorterSideCrop,
            color_order: ColorOrder::Bgr,
            scale: 1.0,
            mean: [103.939, 116.779, 123.68],
            std: [1.0, 1.0, 1.0],
        }
    }

    /// torchvision / ONNX model zoo ImageNet normalisation: RGB, 0-1, ImageNet mean and std.
    pub fn imagenet(size: u32) -> Self {
        Self {
            size,
            resize: ResizeMode::ShorterSideCrop,
            color_order: ColorOrder::Rgb,
            scale: 1.0 / 255.0,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }

    /// Checks `size > 0`, finite values and non-zero `scale` and `std`.
    pub fn validate(&self) -> Result<(), PreprocessError> {
        let bad = |msg: String| Err(PreprocessError::InvalidPreprocessing(msg));
        if self.size == 0 {
            return bad("size must be > 0".into());
        }
        // A bound keeps 3*size*size far from overflow and catches typos such as 22400.
        if self.size > 8192 {
            return bad(format!("size {} is larger than 8192", self.size));
        }
        if !self.scale.is_finite() || self.scale == 0.0 {
            return bad(format!(
                "scale must be finite and non-zero, got {}",
                self.scale
            ));
        }
        if let Some(m) = self.mean.iter().find(|m| !m.is_finite()) {
            return bad(format!("mean must be finite, got {m}"));
        }
        if let Some(s) = self.std.iter().find(|s| !s.is_finite() || **s == 0.0) {
            return bad(format!("std must be finite and non-zero, got {s}"));
        }
        Ok(())
    }

    /// Number of floats [`Preprocessing::write_chw`] writes: `3 * size * size`.
    pub fn chw_len(&self) -> usize {
        3 * self.size as usize * self.size as usize
    }

    /// Resizes `img` to `size` x `size` with antialiased bilinear (PIL's `BILINEAR`).
    ///
    /// `Stretch` is PIL's `img.resize((size, size), BILINEAR)`.
    ///
    /// `ShorterSideCrop`, for a `w` x `h` image with `m = min(w, h)`, is exactly PIL's
    /// `img.resize((W, H), BILINEAR).crop((left, top, left + size, top + size))` with
    /// - `W = (2*w*size + m) // (2*m)` and `H = (2*h*size + m) // (2*m)`, i.e. `w*size/m`
    ///   rounded half *up* (Python's `round()` rounds half to even: do not use it), so the
    ///   shorter side is exactly `size`;
    /// - `left = (W - size) // 2`, `top = (H - size) // 2` (floor).
    ///
    /// It is computed as one resampling of the matching source box
    /// `(left*w/W, top*h/H, size*w/W, size*h/H)` (PIL: `img.resize((size, size), BILINEAR,
    /// box=...)`), which places the kernels exactly where the full resize would, without
    /// resampling the discarded margins.
    pub fn resize(&self, img: &RgbImage) -> RgbImage {
        let size = self.size;
        let mut dst = RgbImage::new(size, size);
        let (w, h) = img.dimensions();
        if w == 0 || h == 0 || size == 0 {
            return dst;
        }
        let alg = ResizeAlg::Convolution(FilterType::Bilinear);
        let mut options = ResizeOptions::new().resize_alg(alg);
        if self.resize == ResizeMode::ShorterSideCrop {
            let (left, top, width, height) = shorter_side_crop_box(w, h, size);
            options = options.crop(left, top, width, height);
        }
        RESIZER.with_borrow_mut(|resizer| {
            resizer
                .resize(img, &mut dst, &options)
                .expect("same pixel type and a crop box inside the image")
        });
        dst
    }

    /// Writes the view of `img` that `params` make (augmented, then resized) as
    /// [`Preprocessing::write_chw`] does: the one path from an image and its copy's parameters
    /// to a row's tensor, for extraction and test-time augmentation at prediction.
    pub fn write_view_chw(
        &self,
        img: &RgbImage,
        params: &crate::augment::AugmentParams,
        out: &mut [f32],
    ) {
        if params.is_identity() {
            self.write_chw(&self.resize(img), out);
        } else {
            self.write_chw(&self.resize(&params.apply(img)), out);
        }
    }

    /// Writes `img` (which must be `size` x `size`) as `3*size*size` normalised floats in
    /// CHW planes, channels in `color_order`.
    ///
    /// # Panics
    /// If `img` is not `size` x `size` or `out.len() != 3*size*size`.
    pub fn write_chw(&self, img: &RgbImage, out: &mut [f32]) {
        let size = self.size;
        assert_eq!(
            img.dimensions(),
            (size, size),
            "write_chw: image must be {size}x{size}"
        );
        let plane = size as usize * size as usize;
        assert_eq!(
            out.len(),
            3 * plane,
            "write_chw: output must hold 3*{size}*{size} floats"
        );
        // A 256-entry table per output channel computes the documented formula exactly
        // (same float operations as a reference) and turns the hot loop into lookups.
        let src_channel = match self.color_order {
            ColorOrder::Rgb => [0, 1, 2],
            ColorOrder::Bgr => [2, 1, 0],
        };
        let mut lut = [[0f32; 256]; 3];
        for (c, table) in lut.iter_mut().enumerate() {
            for (v, entry) in table.iter_mut().enumerate() {
                *entry = ((v as f32 * self.scale) - self.mean[c]) / self.std[c];
            }
        }
        let (p0, rest) = out.split_at_mut(plane);
        let (p1, p2) = rest.split_at_mut(plane);
        let [s0, s1, s2] = src_channel;
        for (i, px) in img.as_raw().chunks_exact(3).enumerate() {
            p0[i] = lut[0][px[s0] as usize];
            p1[i] = lut[1][px[s1] as usize];
            p2[i] = lut[2][px[s2] as usize];
        }
    }
}

thread_local! {
    // A resizer keeps scratch buffers; one per thread avoids reallocating them per image.
    static RESIZER: RefCell<Resizer> = RefCell::new(Resizer::new());
}

/// Source box `(left, top, width, height)` that `ShorterSideCrop` resamples; see `resize`.
fn shorter_side_crop_box(w: u32, h: u32, size: u32) -> (f64, f64, f64, f64) {
    let m = u64::from(w.min(h));
    let s = u64::from(size);
    let scaled = |side: u32| ((2 * u64::from(side) * s + m) / (2 * m)).max(s);
    let (big_w, big_h) = (scaled(w), scaled(h));
    let left = (big_w - s) / 2;
    let top = (big_h - s) / 2;
    let fx = f64::from(w) / big_w as f64;
    let fy = f64::from(h) / big_h as f64;
    let (x0, y0) = (left as f64 * fx, top as f64 * fy);
    // Rounding of the products must never push the box past the image edge.
    let width = (s as f64 * fx).min(f64::from(w) - x0);
    let height = (s as f64 * fy).min(f64::from(h) - y0);
    (x0, y0, width, height)
}
