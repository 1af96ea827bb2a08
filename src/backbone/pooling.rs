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
}

impl Pooling {
    /// The name used on the command line and in `layer:pooling`.
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Flatten => "flatten",
            Pooling::Avg => "avg",
            Pooling::Max => "max",
        }
    }

    /// Length of the pooled vector for a C x H x W map.
    pub fn dims(self, c: usize, h: usize, w: usize) -> usize {
        match self {
            Pooling::Flatten => c * h * w,
            Pooling::Avg | Pooling::Max => c,
        }
    }

    /// Pools each image of `maps` (N x C x H x W) into the matching row of `out` (N x dims).
    pub fn apply(self, maps: ArrayView4<f32>, mut out: ArrayViewMut2<f32>) {
        for (map, mut row) in maps.outer_iter().zip(out.outer_iter_mut()) {
            match self {
                Pooling::Flatten => row.iter_mut().zip(map.iter()).for_each(|(o, v)| *o = *v),
                Pooling::Avg => {
                    for (o, channel) in row.iter_mut().zip(map.axis_iter(Axis(0))) {
                        *o = channel.mean().unwrap_or(0.0);
                    }
                }
                Pooling::Max => {
                    for (o, channel) in row.iter_mut().zip(map.axis_iter(Axis(0))) {
                        *o = channel.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    }
                }
            }
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
                "{s:?} is not LAYER:POOLING (e.g. block4_pool:avg; pooling flatten, avg or max)"
            )
        })?;
        let pooling = match pooling {
            "flatten" => Pooling::Flatten,
            "avg" => Pooling::Avg,
            "max" => Pooling::Max,
            other => {
                return Err(format!(
                    "{s:?}: unknown pooling {other:?}; use flatten, avg or max"
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
}
