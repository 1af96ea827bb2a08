//! Decoding image files into 8-bit RGB, refusing bad files with specific errors.

use std::io::{Cursor, ErrorKind, Read};
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

/// Bytes a file may hold beyond its pixels: headers, colour profiles, EXIF thumbnails, the
/// video of a "motion photo".
const FILE_SLACK_BYTES: u64 = 64 << 20;

impl DecodeLimits {
    /// The largest file an accepted image can come from: its pixels uncompressed at 8 bytes
    /// (16-bit RGBA) plus 64 MiB for headers, profiles and thumbnails; larger files are
    /// refused before being read.
    pub fn max_file_bytes(&self) -> u64 {
        self.max_pixels
            .saturating_mul(8)
            .saturating_add(FILE_SLACK_BYTES)
    }
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
    decode_rgb(path, &read_image_file(path, limits)?, limits)
}

/// Reads an image file whole, after checking its size against [`DecodeLimits::max_file_bytes`]:
/// a huge file (a 3 GB `x.jpg`) is refused before a byte of it is read, and a file that grows
/// while being read is cut off at the bound.
pub fn read_image_file(path: &Path, limits: &DecodeLimits) -> Result<Vec<u8>, PreprocessError> {
    let io = |source| PreprocessError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = crate::input::open_regular(path).map_err(io)?;
    let max = limits.max_file_bytes();
    let too_large = |size: u64| {
        PreprocessError::TooLarge {
        path: path.to_path_buf(),
        detail: format!(
            "the file holds {size} bytes, more than the {max} bytes any image within the limit of {:.1} megapixels needs",
            limits.max_pixels as f64 / 1e6
        ),
    }
    };
    let size = file.metadata().map_err(io)?.len();
    if size > max {
        return Err(too_large(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(max + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > max {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Decodes the bytes of an image file (read by [`read_image_file`]) as [`load_rgb`] does;
/// `path` only names the file in errors.
pub fn decode_rgb(
    path: &Path,
    bytes: &[u8],
    limits: &DecodeLimits,
) -> Result<RgbImage, PreprocessError> {
    let err_path = || path.to_path_buf();
    if bytes.is_empty() {
        return Err(PreprocessError::Empty { path: err_path() });
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|source| PreprocessError::Io {
            path: err_path(),
            source,
        })?;
    let Some(format) = reader.format() else {
        return Err(PreprocessError::NotAnImage { path: err_path() });
    };
    reader.limits(decoder_limits(limits));

    let mut decoder = reader
        .into_decoder()
        .map_err(|e| map_image_error(path, e))?;
    check_size(path, decoder.dimensions(), limits)?;
    let jpeg_end = if format == ImageFormat::Jpeg {
        let Some(end) = jpeg_end(bytes) else {
            return Err(PreprocessError::Corrupt {
                path: err_path(),
                detail: "JPEG data ends before the end-of-image marker".into(),
            });
        };
        Some(end)
    } else {
        None
    };
    // A damaged EXIF block is no reason to lose an otherwise good image.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = if let Some(end) = jpeg_end {
        drop(decoder);
        decode_jpeg_strict(path, bytes, end)?
    } else {
        DynamicImage::from_decoder(decoder).map_err(|e| map_image_error(path, e))?
    };
    img.apply_orientation(orientation);
    Ok(to_rgb8_over_white(img))
}

/// The decoder's own limits: the largest side, and memory for the largest accepted image.
fn decoder_limits(limits: &DecodeLimits) -> Limits {
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
    image_limits
}

/// Refuses an image with more pixels than the limit or a side below the smallest.
fn check_size(
    path: &Path,
    (width, height): (u32, u32),
    limits: &DecodeLimits,
) -> Result<(), PreprocessError> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(PreprocessError::TooLarge {
            path: path.to_path_buf(),
            detail: format!(
                "{width}x{height} is {:.1} megapixels, more than the limit of {:.1}",
                pixels as f64 / 1e6,
                limits.max_pixels as f64 / 1e6
            ),
        });
    }
    if width < limits.min_side || height < limits.min_side {
        return Err(PreprocessError::TooSmall {
            path: path.to_path_buf(),
            width,
            height,
            min_side: limits.min_side,
        });
    }
    Ok(())
}

/// Bytes put before a progressive JPEG's end marker to tell whether its last scan is complete.
const PROBE_BYTES: [u8; 256] = [0xAA; 256];

/// Decodes a JPEG to RGB with the decoder `image` uses (zune-jpeg), in strict mode: `image`
/// runs it leniently, and a JPEG cut short and then given an end marker decodes "fine" with
/// its missing part made up. Even strict, zune-jpeg decodes on from zeros when it meets the
/// end marker early; only running out of data is an error. So:
/// - a baseline JPEG is decoded without its end marker: one whose entropy-coded data stops
///   before the last row of blocks then fails;
/// - a progressive JPEG (which needs the markers between its scans) is decoded a second time
///   with bytes put before its end marker: a complete last scan never reads them, a cut one
///   does, and its pixels change.
fn decode_jpeg_strict(
    path: &Path,
    bytes: &[u8],
    end: JpegEnd,
) -> Result<DynamicImage, PreprocessError> {
    let corrupt = |detail: String| PreprocessError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    let data = if end.progressive {
        &bytes[..end.eoi + 2]
    } else {
        &bytes[..end.eoi]
    };
    let (pixels, (width, height)) = zune_rgb(data, true).map_err(corrupt)?;
    if end.progressive {
        let mut probed = bytes[..end.eoi].to_vec();
        probed.extend_from_slice(&PROBE_BYTES);
        probed.extend_from_slice(&[0xFF, 0xD9]);
        if !zune_rgb(&probed, false).is_ok_and(|(probed, _)| probed == pixels) {
            return Err(corrupt(
                "the last scan of this progressive JPEG stops before its end".into(),
            ));
        }
    }
    let rgb = RgbImage::from_raw(width as u32, height as u32, pixels)
        .ok_or_else(|| corrupt("the decoder returned fewer pixels than the header says".into()))?;
    Ok(DynamicImage::ImageRgb8(rgb))
}

/// zune-jpeg's RGB pixels and size of a JPEG (size limits were checked on the header already).
fn zune_rgb(data: &[u8], strict: bool) -> Result<(Vec<u8>, (usize, usize)), String> {
    use zune_core::{bytestream::ZCursor, colorspace::ColorSpace, options::DecoderOptions};
    let options = DecoderOptions::default()
        .set_strict_mode(strict)
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX)
        .jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(data), options);
    let pixels = decoder.decode().map_err(|e| e.to_string())?;
    let size = decoder.dimensions().ok_or("no frame header")?;
    Ok((pixels, size))
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
#[cfg(test)]
pub(super) fn jpeg_is_complete(data: &[u8]) -> bool {
    jpeg_end(data).is_some()
}

/// Where a JPEG's image data ends, and how it is coded.
#[derive(Debug, Clone, Copy)]
struct JpegEnd {
    /// Offset of the EOI marker.
    eoi: usize,
    /// Whether a progressive frame header (SOF2, 6, 10 or 14) was seen.
    progressive: bool,
}

/// Walks the JPEG's marker structure to its EOI marker; `None` when it never gets there.
///
/// Walks the segments (skipping APPn bodies, so an embedded EXIF thumbnail's EOI does not
/// count) and the entropy-coded data after each SOS; data after the EOI (e.g. the video of
/// a "motion photo") is fine.
fn jpeg_end(data: &[u8]) -> Option<JpegEnd> {
    let mut i = 2; // after SOI
    let mut progressive = false;
    while i + 1 < data.len() {
        if data[i] != 0xFF {
            return None;
        }
        let marker = data[i + 1];
        progressive |= matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE);
        match marker {
            0xD9 => {
                return Some(JpegEnd {
                    eoi: i,
                    progressive,
                })
            }
            // Fill bytes, TEM and RSTn carry no length.
            0xFF => i += 1,
            0x01 | 0xD0..=0xD7 => i += 2,
            _ => {
                let len = data.get(i + 2..i + 4)?;
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                i += 2 + len;
                if marker == 0xDA {
                    // Entropy-coded data ends at the first marker that is not a stuffed
                    // 0xFF00 or an RSTn.
                    loop {
                        let off = data.get(i..)?.iter().position(|&b| b == 0xFF)?;
                        i += off;
                        match data.get(i + 1) {
                            None => return None,
                            Some(0x00 | 0xD0..=0xD7 | 0xFF) => i += 1,
                            Some(_) => break,
                        }
                    }
                }
            }
        }
    }
    None
}
