//! Data augmentation: a [`Recipe`] the user asks for, the concrete [`AugmentParams`] of
//! each augmented copy (sampled reproducibly), and applying them to an image.
//!
//! Copy 0 of every image is the original; copies 1.. are augmented. The parameters depend
//! only on (global seed, image key, copy index), so any row of the cache can be regenerated
//! from its stored JSON parameters or re-sampled from those three values.

mod apply;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use apply::preview_grid;

/// Colour of areas that come from outside the image (rotation corners, zoom-out border).
///
/// The mean ImageNet colour (RGB 124, 116, 104) becomes roughly zero after the backbones'
/// mean subtraction, i.e. "no signal", whereas black or edge replication adds strong
/// edges or streaks the network would respond to.
pub const FILL: [u8; 3] = [124, 116, 104];

/// Default `rotate` range: uniform in [-20, 20] degrees.
pub const DEFAULT_ROTATE: f32 = 20.0;
/// Default `scale` range (zoom factor).
pub const DEFAULT_SCALE: [f32; 2] = [0.8, 1.2];
/// Default `crop` minimum area fraction.
pub const DEFAULT_CROP: f32 = 0.6;

const VALID_OPS: &str = "flip, vflip, rotate[=DEG], scale[=MIN-MAX], crop[=MIN], none";

/// Errors of this module: a recipe string that does not parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AugmentError {
    /// An op name that is not known.
    #[error("unknown augmentation op `{0}`; valid ops: {VALID_OPS}")]
    UnknownOp(String),
    /// An op's value does not parse or is out of range.
    #[error("bad value for `{op}`: {reason}; valid ops: {VALID_OPS}")]
    BadValue {
        /// The op.
        op: String,
        /// What is expected.
        reason: String,
    },
    /// The same op twice, or `none` together with other ops.
    #[error("augmentation op `{0}` conflicts with an earlier op; valid ops: {VALID_OPS}")]
    Conflict(String),
}

/// The augmentations the user asked for, e.g. `flip,rotate=15,crop=0.7`.
///
/// Parsed with [`FromStr`]; its [`Display`](fmt::Display) is canonical (fixed op order,
/// explicit values, `none` when empty) and parses back to the same recipe.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Recipe {
    /// Random horizontal flip (probability 1/2).
    pub flip: bool,
    /// Random vertical flip (probability 1/2).
    pub vflip: bool,
    /// Rotation uniform in [-DEG, DEG] degrees.
    pub rotate: Option<f32>,
    /// Zoom factor uniform in [MIN, MAX]: < 1 shrinks and pads with [`FILL`], > 1 zooms into the centre.
    pub scale: Option<[f32; 2]>,
    /// Random crop of area fraction in [MIN, 1], resized back to the full image.
    pub crop: Option<f32>,
}

/// The concrete parameters of one augmented copy; applied in the order crop, scale, rotate, flips.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AugmentParams {
    /// Mirror left-right.
    pub flip: bool,
    /// Mirror top-bottom.
    pub vflip: bool,
    /// Rotation in degrees, positive = counter-clockwise (as PIL's `rotate`).
    pub angle: f32,
    /// Zoom factor about the centre.
    pub scale: f32,
    /// Region of the image, as fractions of width/height, stretched to the full size.
    pub crop: CropRect,
}

/// A rectangle in fractions of the image width (`x`, `w`) and height (`y`, `h`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CropRect {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

impl CropRect {
    /// The whole image.
    pub const FULL: CropRect = CropRect {
        x: 0.0,
        y: 0.0,
        w: 1.0,
        h: 1.0,
    };
}

impl AugmentParams {
    /// No augmentation (the original image).
    pub const IDENTITY: AugmentParams = AugmentParams {
        flip: false,
        vflip: false,
        angle: 0.0,
        scale: 1.0,
        crop: CropRect::FULL,
    };

    /// Whether applying these parameters returns the image unchanged.
    pub fn is_identity(&self) -> bool {
        *self == Self::IDENTITY
    }
}

impl Recipe {
    /// Whether no op is enabled.
    pub fn is_none(&self) -> bool {
        *self == Self::default()
    }

    /// The parameters of augmented copy `copy` of the image `image_key` (its relative path,
    /// with `/` separators); copy 0 is always the identity.
    ///
    /// A ChaCha8 stream seeded with SHA-256 of (seed, key, copy) makes the result stable
    /// across platforms and Rust versions. All random numbers are drawn whatever the recipe
    /// enables, so adding an op does not change the values of the others. The crop's aspect
    /// ratio (in [3/4, 4/3], log-uniform) is relative to the image's own aspect ratio,
    /// since parameters are sampled without knowing the image size.
    pub fn sample(&self, seed: u64, image_key: &str, copy: u32) -> AugmentParams {
        if copy == 0 {
            return AugmentParams::IDENTITY;
        }
        let mut rng = ChaCha8Rng::from_seed(stream_seed(seed, image_key, copy));
        // rand's float distributions may change between versions; this conversion cannot.
        let mut unit = || (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        let [flip_u, vflip_u, angle_u, scale_u, area_u, ratio_u, x_u, y_u] =
            std::array::from_fn(|_| unit());

        let mut params = AugmentParams::IDENTITY;
        params.flip = self.flip && flip_u < 0.5;
        params.vflip = self.vflip && vflip_u < 0.5;
        if let Some(max) = self.rotate {
            params.angle = (f64::from(max) * (2.0 * angle_u - 1.0)) as f32;
        }
        if let Some([lo, hi]) = self.scale {
            params.scale = (f64::from(lo) + f64::from(hi - lo) * scale_u) as f32;
        }
        if let Some(min_area) = self.crop {
            let area = f64::from(min_area) + (1.0 - f64::from(min_area)) * area_u;
            let (lo, hi) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
            let ratio = (lo + (hi - lo) * ratio_u).exp();
            let w = (area * ratio).sqrt().min(1.0);
            let h = (area / ratio).sqrt().min(1.0);
            params.crop = CropRect {
                x: ((1.0 - w) * x_u) as f32,
                y: ((1.0 - h) * y_u) as f32,
                w: w as f32,
                h: h as f32,
            };
        }
        params
    }
}

/// ChaCha8 seed for one (seed, key, copy); the length prefix keeps keys unambiguous.
fn stream_seed(seed: u64, image_key: &str, copy: u32) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"tlearn-augment-v1\0");
    hasher.update(seed.to_le_bytes());
    hasher.update((image_key.len() as u64).to_le_bytes());
    hasher.update(image_key.as_bytes());
    hasher.update(copy.to_le_bytes());
    hasher.finalize().into()
}

impl fmt::Display for Recipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ops = Vec::new();
        if self.flip {
            ops.push("flip".to_string());
        }
        if self.vflip {
            ops.push("vflip".to_string());
        }
        if let Some(deg) = self.rotate {
            ops.push(format!("rotate={deg}"));
        }
        if let Some([lo, hi]) = self.scale {
            ops.push(format!("scale={lo}-{hi}"));
        }
        if let Some(min) = self.crop {
            ops.push(format!("crop={min}"));
        }
        if ops.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&ops.join(","))
        }
    }
}

impl FromStr for Recipe {
    type Err = AugmentError;

    /// Parses comma-separated ops; whitespace and empty items are ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut recipe = Recipe::default();
        let items: Vec<&str> = s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        for item in &items {
            let (name, value) = match item.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (*item, None),
            };
            match name {
                "none" if items.len() > 1 => return Err(AugmentError::Conflict(name.into())),
                "none" => switch(name, value, &mut false)?,
                "flip" => switch(name, value, &mut recipe.flip)?,
                "vflip" => switch(name, value, &mut recipe.vflip)?,
                "rotate" => set_once(&mut recipe.rotate, name, || rotate_degrees(value))?,
                "scale" => set_once(&mut recipe.scale, name, || scale_range(value))?,
                "crop" => set_once(&mut recipe.crop, name, || crop_area(value))?,
                _ => return Err(AugmentError::UnknownOp(item.to_string())),
            }
        }
        Ok(recipe)
    }
}

/// Turns on the op `name`, which takes no value and may be given once.
fn switch(name: &str, value: Option<&str>, set: &mut bool) -> Result<(), AugmentError> {
    match value {
        Some(_) => Err(bad(name, "takes no value")),
        None if *set => Err(AugmentError::Conflict(name.to_string())),
        None => {
            *set = true;
            Ok(())
        }
    }
}

/// Sets the op `name` from `parse`; it may be given once.
fn set_once<T>(
    slot: &mut Option<T>,
    name: &str,
    parse: impl FnOnce() -> Result<T, AugmentError>,
) -> Result<(), AugmentError> {
    if slot.is_some() {
        return Err(AugmentError::Conflict(name.to_string()));
    }
    *slot = Some(parse()?);
    Ok(())
}

/// `rotate[=DEG]`: the largest angle, in [0, 180].
fn rotate_degrees(value: Option<&str>) -> Result<f32, AugmentError> {
    let deg = value.map_or(Ok(DEFAULT_ROTATE), |v| number("rotate", v))?;
    if !(0.0..=180.0).contains(&deg) {
        return Err(bad("rotate", "expected degrees in [0, 180]"));
    }
    Ok(deg)
}

/// `scale[=MIN-MAX]` or `scale=S`: the zoom range, 0 < MIN <= MAX <= 10.
fn scale_range(value: Option<&str>) -> Result<[f32; 2], AugmentError> {
    let range = match value {
        None => DEFAULT_SCALE,
        Some(v) => match v.split_once('-') {
            Some((lo, hi)) => [number("scale", lo)?, number("scale", hi)?],
            None => [number("scale", v)?; 2],
        },
    };
    let [lo, hi] = range;
    if !(lo > 0.0 && lo <= hi && hi <= 10.0) {
        return Err(bad("scale", "expected MIN-MAX with 0 < MIN <= MAX <= 10"));
    }
    Ok(range)
}

/// `crop[=MIN]`: the smallest area fraction kept, in (0, 1].
fn crop_area(value: Option<&str>) -> Result<f32, AugmentError> {
    let min = value.map_or(Ok(DEFAULT_CROP), |v| number("crop", v))?;
    if !(min > 0.0 && min <= 1.0) {
        return Err(bad("crop", "expected a minimum area fraction in (0, 1]"));
    }
    Ok(min)
}

fn bad(op: &str, reason: &str) -> AugmentError {
    AugmentError::BadValue {
        op: op.to_string(),
        reason: reason.to_string(),
    }
}

fn number(op: &str, text: &str) -> Result<f32, AugmentError> {
    match text.trim().parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(bad(op, &format!("`{text}` is not a number"))),
    }
}
