//! Decoding image files into 8-bit RGB, refusing bad files with specific errors.

use std::io::{Cursor, ErrorKind};
use std::path::Path;

use image::error::{ImageError, UnsupportedErrorKind};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use super::PreprocessError;

/// Bounds on the images [`load_rgb`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Maximum width * height.
    pub max_pixels: u64,
    /// Maximum width and maximum height.
    pub max_side: u32,
    /// Minimum width and minimum height.
    pub min_side: u32,
}

impl Default for DecodeLimits {
    /// 100 megapixels, 30000 px per side, at least 2x2.
    fn default() -> Self {
        Self {
            max_pixels: 100_000_000,
            max_side: 30_000,
            min_side: 2,
        }
    }
}

/// Decodes an image file into 8-bit RGB, upright.
///
/// - The format is guessed from the content, never the extension.
/// - EXIF orientation (JPEG, TIFF, WebP) is applied, so width/height are as displayed.
/// - Grayscale is replicated to RGB, 16-bit and float are rounded to 8 bits, CMYK JPEGs are
///   converted by the decoder.
/// - Alpha is composited over white, as viewers show it: the colour under fully transparent
///   pixels is arbitrary (often black) and must not reach the features. Note that PIL's
///   `convert("RGB")` drops alpha instead; a Python reference should use
///   `Image.alpha_composite(Image.new("RGBA", im.size, "white"), im.convert("RGBA"))`.
/// - Animated images yield their first frame.
///
/// Size limits are checked from the header, before the pixel buffer is allocated. A JPEG
/// without an end-of-image marker is refused as truncated, because the decoder would
/// otherwise silently fill the missing part with grey.
pub fn load_rgb(path: &Path, limits: &DecodeLimits) -> Result<RgbImage, PreprocessError> {
    let err_path = || path.to_path_buf();
    let bytes = std::fs::read(path).map_err(|source| PreprocessError::Io {
        path: err_path(),
        source,
    })?;
    if bytes.is_empty() {
        return Err(PreprocessError::Empty { path: err_path() });
    }
    let mut reader = ImageReader::new(Cursor::new(&bytes[..]))
        .with_guessed_format()
        .map_err(|source| PreprocessError::Io {
            path: err_path(),
            source,
        })?;
    let Some(format) = reader.format() else {
        return Err(PreprocessError::NotAnImage { path: err_path() });
    };
    let mut image_limits = Limits::default();
    image_limits.max_image_width = Some(limits.max_side);
    image_limits.max_image_height = Some(limits.max_side);
    // Room for the largest accepted image as 16-bit RGBA plus decoder scratch space.
    image_limits.max_alloc = Some(
        limits
            .max_pixels
            .saturating_mul(8)
            .saturating_add(256 << 20),
    );
    reader.limits(image_limits);

    let mut decoder = reader
        .into_decoder()
        .map_err(|e| map_image_error(path, e))?;
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(PreprocessError::TooLarge {
            path: err_path(),
            detail: format!(
                "{width}x{height} is {:.1} megapixels, more than the limit of {:.1}",
                pixels as f64 / 1e6,
                limits.max_pixels as f64 / 1e6
            ),
        });
    }
    if width < limits.min_side || height < limits.min_side {
        return Err(PreprocessError::TooSmall {
            path: err_path(),
            width,
            height,
            min_side: limits.min_side,
        });
    }
    if format == ImageFormat::Jpeg && !jpeg_is_complete(&bytes) {
        return Err(PreprocessError::Corrupt {
            path: err_path(),
            detail: "JPEG data ends before the end-of-image marker".into(),
        });
    }
    // A damaged EXIF block is no reason to lose an otherwise good image.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| map_image_error(path, e))?;
    img.apply_orientation(orientation);
    Ok(to_rgb8_over_white(img))
}

/// Converts any pixel layout to 8-bit RGB, compositing alpha over white.
fn to_rgb8_over_white(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = Vec::with_capacity(w as usize * h as usize * 3);
    for px in rgba.as_raw().chunks_exact(4) {
        let a = u32::from(px[3]);
        for &c in &px[..3] {
            out.push(((u32::from(c) * a + 255 * (255 - a) + 127) / 255) as u8);
        }
    }
    RgbImage::from_raw(w, h, out).expect("buffer is w*h*3")
}

/// Maps the image crate's errors onto this module's specific variants.
fn map_image_error(path: &Path, e: ImageError) -> PreprocessError {
    let path = path.to_path_buf();
    match e {
        ImageError::Limits(l) => PreprocessError::TooLarge {
            path,
            detail: l.to_string(),
        },
        ImageError::Unsupported(u) => match u.kind() {
            UnsupportedErrorKind::Format(_) => PreprocessError::NotAnImage { path },
            _ => PreprocessError::Unsupported {
                path,
                detail: u.to_string(),
            },
        },
        ImageError::IoError(io) if io.kind() == ErrorKind::UnexpectedEof => {
            PreprocessError::Corrupt {
                path,
                detail: "file ends early".into(),
            }
        }
        ImageError::IoError(source) => PreprocessError::Io { path, source },
        other => PreprocessError::Corrupt {
            path,
            detail: other.to_string(),
        },
    }
}

/// Whether the JPEG's marker structure reaches an EOI marker.
///
/// Walks the segments (skipping APPn bodies, so an embedded EXIF thumbnail's EOI does not
/// count) and the entropy-coded data after each SOS; data after the EOI (e.g. the video of
/// a "motion photo") is fine.
pub(super) fn jpeg_is_complete(data: &[u8]) -> bool {
    let mut i = 2; // after SOI
    while i + 1 < data.len() {
        if data[i] != 0xFF {
            return false;
        }
        let marker = data[i + 1];
        match marker {
            0xD9 => return true,
            // Fill bytes, TEM and RSTn carry no length.
            0xFF => i += 1,
            0x01 | 0xD0..=0xD7 => i += 2,
            _ => {
                let Some(len) = data.get(i + 2..i + 4) else {
                    return false;
                };
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                i += 2 + len;
                if marker == 0xDA {
                    // Entropy-coded data ends at the first marker that is not a stuffed
                    // 0xFF00 or an RSTn.
                    loop {
                        let Some(off) = data
                            .get(i..)
                            .and_then(|d| d.iter().position(|&b| b == 0xFF))
                        else {
                            return false;
                        };
                        i += off;
                        match data.get(i + 1) {
                            None => return false,
                            Some(0x00 | 0xD0..=0xD7 | 0xFF) => i += 1,
                            Some(_) => break,
                        }
                    }
                }
            }
        }
    }
    false
}
