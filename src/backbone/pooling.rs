//! How a layer's feature map becomes a feature vector, and the `layer:pooling` pairs
//! (representations) that name a column block of a cache.

use ndarray::{ArrayView4, ArrayViewMut2, Axis};
use serde::{Deserialize, Serialize};

/// How a layer's feature map (C x H x W) becomes a vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// All C*H*W values, channel-major (NCHW order; Keras' Flatten is HWC order, a permutation).
    Flatten,
    /// Global average over H x W: C values.
    Avg,
    /// Global maximum over H x W: C values.
    Max,
    /// Average over each quarter of the map (an odd side's middle row or column belongs to
    /// both halves): 4 C values, channel-major, quarters in reading order. Keeps roughly where
    /// in the image a feature fired, at a fraction of the flattened map's width.
    Avg2x2,
    /// Maximum over each quarter of the map, ordered as avg2x2.
    Max2x2,
}

/// The rows (or columns) of quarter `half` (0: top / left, 1: bottom / right) of a side of
/// `len` cells: the first and the last `ceil(len / 2)` cells, sharing the middle one when `len`
/// is odd (the adaptive bins of PyTorch's `AdaptiveMaxPool2d((2, 2))`; VGG16's block5_pool is
/// 7 x 7 at 224 px).
pub fn quarter(len: usize, half: usize) -> std::ops::Range<usize> {
    let width = len.div_ceil(2);
    if half == 0 {
        0..width
    } else {
        len - width..len
    }
}

impl Pooling {
    /// The name used on the command line and in `layer:pooling`.
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Flatten => "flatten",
            Pooling::Avg => "avg",
            Pooling::Max => "max",
            Pooling::Avg2x2 => "avg2x2",
            Pooling::Max2x2 => "max2x2",
        }
    }

    /// Length of the pooled vector for a C x H x W map.
    pub fn dims(self, c: usize, h: usize, w: usize) -> usize {
        match self {
            Pooling::Flatten => c * h * w,
            Pooling::Avg | Pooling::Max => c,
            Pooling::Avg2x2 | Pooling::Max2x2 => 4 * c,
        }
    }

    /// Pools each image of `maps` (N x C x H x W) into the matching row of `out` (N x dims).
    pub fn apply(self, maps: ArrayView4<f32>, mut out: ArrayViewMut2<f32>) {
        for (map, mut row) in maps.outer_iter().zip(out.outer_iter_mut()) {
            if self == Pooling::Flatten {
                row.iter_mut().zip(map.iter()).for_each(|(o, v)| *o = *v);
                continue;
            }
            let regions = self.dims(1, 1, 1);
            for (c, channel) in map.axis_iter(Axis(0)).enumerate() {
                for q in 0..regions {
                    row[c * regions + q] = self.reduce(channel, q);
                }
            }
        }
    }

    /// Region `q` of one channel (H x W) reduced to one value: the whole map for global
    /// pooling, quarter `q` in reading order for the 2 x 2 poolings.
    fn reduce(self, channel: ndarray::ArrayView2<f32>, q: usize) -> f32 {
        let (h, w) = channel.dim();
        let region = match self {
            Pooling::Avg2x2 | Pooling::Max2x2 => {
                channel.slice_move(ndarray::s![quarter(h, q / 2), quarter(w, q % 2)])
            }
            _ => channel,
        };
        match self {
            Pooling::Max | Pooling::Max2x2 => {
                region.iter().copied().fold(f32::NEG_INFINITY, f32::max)
            }
            _ => region.mean().unwrap_or(0.0),
        }
    }
}

/// One candidate representation of an image: a layer's feature map and how it is pooled,
/// written `layer:pooling` (e.g. `block4_pool:avg`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repr {
    /// The model output (e.g. `block5_pool`).
    pub layer: String,
    /// How its map becomes a vector.
    pub pooling: Pooling,
}

impl Repr {
    /// Every layer of `layers` with the same pooling: what `layers` with `pooling` extract.
    pub fn each_layer(layers: &[String], pooling: Pooling) -> Vec<Repr> {
        layers
            .iter()
            .map(|layer| Repr {
                layer: layer.clone(),
                pooling,
            })
            .collect()
    }

    /// The distinct layers of `reprs`, in order of first use: what the backbone must compute.
    pub fn layers(reprs: &[Repr]) -> Vec<String> {
        let mut layers: Vec<String> = Vec::new();
        for r in reprs {
            if !layers.contains(&r.layer) {
                layers.push(r.layer.clone());
            }
        }
        layers
    }
}

impl std::fmt::Display for Repr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.layer, self.pooling.name())
    }
}

impl std::str::FromStr for Repr {
    type Err = String;

    fn from_str(s: &str) -> Result<Repr, String> {
        let (layer, pooling) = s.trim().split_once(':').ok_or_else(|| {
            format!(
                "{s:?} is not LAYER:POOLING (e.g. block4_pool:avg; pooling flatten, avg, max, avg2x2 or max2x2)"
            )
        })?;
        let pooling = match pooling {
            "flatten" => Pooling::Flatten,
            "avg" => Pooling::Avg,
            "max" => Pooling::Max,
            "avg2x2" => Pooling::Avg2x2,
            "max2x2" => Pooling::Max2x2,
            other => {
                return Err(format!(
                    "{s:?}: unknown pooling {other:?}; use flatten, avg, max, avg2x2 or max2x2"
                ))
            }
        };
        if layer.is_empty() {
            return Err(format!("{s:?}: the layer name is empty"));
        }
        Ok(Repr {
            layer: layer.to_string(),
            pooling,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;

    #[test]
    fn pooling_flatten_avg_max() {
        let maps = Array4::from_shape_vec((1, 2, 1, 2), vec![1.0, 3.0, -2.0, 4.0]).unwrap();
        let mut out = ndarray::Array2::zeros((1, 4));
        Pooling::Flatten.apply(maps.view(), out.view_mut());
        assert_eq!(out.row(0).to_vec(), vec![1.0, 3.0, -2.0, 4.0]);
        let mut out = ndarray::Array2::zeros((1, 2));
        Pooling::Avg.apply(maps.view(), out.view_mut());
        assert_eq!(out.row(0).to_vec(), vec![2.0, 1.0]);
        Pooling::Max.apply(maps.view(), out.view_mut());
        assert_eq!(out.row(0).to_vec(), vec![3.0, 4.0]);
        assert_eq!(Pooling::Flatten.dims(512, 7, 7), 25088);
    }

    /// The 2 x 2 poolings against a hand computation on a 3 x 3 map (odd: the middle row and
    /// column belong to both halves) and a 2 x 4 map, two channels, channel-major.
    #[test]
    fn quarters_of_odd_and_even_maps() {
        assert_eq!((quarter(7, 0), quarter(7, 1)), (0..4, 3..7));
        assert_eq!((quarter(14, 0), quarter(14, 1)), (0..7, 7..14));
        assert_eq!((quarter(1, 0), quarter(1, 1)), (0..1, 0..1));
        let odd: Vec<f32> = (0..9)
            .map(|v| v as f32)
            .chain((0..9).map(|v| -v as f32))
            .collect();
        let maps = Array4::from_shape_vec((1, 2, 3, 3), odd).unwrap();
        let mut out = ndarray::Array2::zeros((1, 8));
        Pooling::Max2x2.apply(maps.view(), out.view_mut());
        assert_eq!(out.row(0).to_vec(), [4., 5., 7., 8., 0., -1., -3., -4.]);
        Pooling::Avg2x2.apply(maps.view(), out.view_mut());
        assert_eq!(out.row(0).to_vec(), [2., 3., 5., 6., -2., -3., -5., -6.]);
        let even =
            Array4::from_shape_vec((1, 1, 2, 4), (0..8).map(|v| v as f32).collect()).unwrap();
        let mut out = ndarray::Array2::zeros((1, 4));
        Pooling::Max2x2.apply(even.view(), out.view_mut());
        assert_eq!(out.row(0).to_vec(), [1., 3., 5., 7.]);
        Pooling::Avg2x2.apply(even.view(), out.view_mut());
        assert_eq!(out.row(0).to_vec(), [0.5, 2.5, 4.5, 6.5]);
        assert_eq!(Pooling::Max2x2.dims(512, 7, 7), 2048);
        assert_eq!("b:max2x2".parse::<Repr>().unwrap().pooling, Pooling::Max2x2);
    }
}
