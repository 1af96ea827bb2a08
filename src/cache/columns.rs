//! Which columns of a feature row hold which representation (a layer and its pooling), and
//! the identity of a subset of them: one cache can hold several candidate representations side
//! by side (`ExtractConfig::reprs`), and a classifier can be trained on any of them
//! (`CacheData::using`).

use serde::{Deserialize, Serialize};

use super::Identity;
use crate::backbone::{Pooling, Repr};
use crate::options::Opt;

/// A representation stored in a cache, with its number of columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReprColumns {
    /// The model output.
    pub layer: String,
    /// Its pooling.
    pub pooling: Pooling,
    /// Number of columns.
    pub dims: usize,
}

impl ReprColumns {
    /// The representation, without its width.
    pub fn repr(&self) -> Repr {
        Repr {
            layer: self.layer.clone(),
            pooling: self.pooling,
        }
    }
}

/// Where one representation lies in a feature row (the `columns` attribute of a cache).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnBlock {
    /// `layer:pooling`.
    pub repr: String,
    /// The model output.
    pub layer: String,
    /// Its pooling.
    pub pooling: Pooling,
    /// First column.
    pub start: usize,
    /// One past the last column.
    pub end: usize,
}

/// Why a selection of representations cannot be made from a cache.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SelectError {
    /// The cache does not hold a requested representation.
    #[error("the features hold no {wanted}; they hold {available}")]
    Missing {
        /// The representation asked for.
        wanted: String,
        /// What the cache holds.
        available: String,
    },
    /// The cache concatenates several layers with one pooling: their widths are unknown.
    #[error("the features concatenate {0} with one pooling (made with {opt_layer}/{opt_pool}), so the columns of each layer are not recorded: extract with {opt_repr} to select representations", opt_layer = Opt::Layer, opt_pool = Opt::Pool, opt_repr = Opt::Repr)]
    Unmapped(String),
    /// Nothing, or a representation twice, was asked for.
    #[error("{opt_use} needs distinct representations, at least one", opt_use = Opt::Use)]
    Empty,
}

impl Identity {
    /// The representations of a row, in column order.
    pub fn representations(&self) -> Vec<Repr> {
        if self.reprs.is_empty() {
            Repr::each_layer(&self.layers, self.pooling)
        } else {
            self.reprs.iter().map(ReprColumns::repr).collect()
        }
    }

    /// Where each representation lies; `None` for a cache of several layers with one pooling,
    /// whose per-layer widths were not recorded.
    pub fn columns(&self) -> Option<Vec<ColumnBlock>> {
        let widths: Vec<(Repr, usize)> = if !self.reprs.is_empty() {
            self.reprs.iter().map(|r| (r.repr(), r.dims)).collect()
        } else if self.layers.len() == 1 {
            vec![(self.representations().remove(0), self.dims)]
        } else {
            return None;
        };
        let mut start = 0;
        Some(
            widths
                .into_iter()
                .map(|(repr, dims)| {
                    start += dims;
                    ColumnBlock {
                        repr: repr.to_string(),
                        layer: repr.layer,
                        pooling: repr.pooling,
                        start: start - dims,
                        end: start,
                    }
                })
                .collect(),
        )
    }

    /// A short name of the features: `block5_pool:flatten`, `block4_pool+block5_pool:avg`, or
    /// the representations joined by `+`.
    pub fn features_label(&self) -> String {
        let reprs = self.representations();
        if reprs.iter().all(|r| r.pooling == self.pooling) {
            format!("{}:{}", Repr::layers(&reprs).join("+"), self.pooling.name())
        } else {
            reprs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("+")
        }
    }

    /// The identity of the columns holding `wanted` (in that order) and those columns' indices.
    /// Asking for every representation in cache order returns this identity unchanged.
    pub fn select(&self, wanted: &[Repr]) -> Result<(Identity, Vec<usize>), SelectError> {
        let distinct = wanted
            .iter()
            .enumerate()
            .all(|(i, r)| !wanted[..i].contains(r));
        if wanted.is_empty() || !distinct {
            return Err(SelectError::Empty);
        }
        if wanted == self.representations().as_slice() {
            return Ok((self.clone(), (0..self.dims).collect()));
        }
        let blocks = self
            .columns()
            .ok_or_else(|| SelectError::Unmapped(self.layers.join("+")))?;
        let mut columns = Vec::new();
        let mut reprs = Vec::new();
        for repr in wanted {
            let name = repr.to_string();
            let block =
                blocks
                    .iter()
                    .find(|b| b.repr == name)
                    .ok_or_else(|| SelectError::Missing {
                        wanted: name.clone(),
                        available: blocks
                            .iter()
                            .map(|b| b.repr.clone())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })?;
            columns.extend(block.start..block.end);
            reprs.push(ReprColumns {
                layer: repr.layer.clone(),
                pooling: repr.pooling,
                dims: block.end - block.start,
            });
        }
        let identity = Identity {
            layers: Repr::layers(wanted),
            pooling: wanted[0].pooling,
            dims: columns.len(),
            reprs,
            ..self.clone()
        };
        Ok((identity, columns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::Preprocessing;

    fn identity(reprs: Vec<ReprColumns>) -> Identity {
        Identity {
            model_name: "m".into(),
            model_sha256: "0".into(),
            precision: Default::default(),
            layers: Repr::layers(&reprs.iter().map(ReprColumns::repr).collect::<Vec<_>>()),
            pooling: reprs[0].pooling,
            preprocessing: Preprocessing::caffe(32),
            augment: "none".into(),
            copies: 0,
            seed: 1,
            split: Default::default(),
            splits: 1,
            dims: reprs.iter().map(|r| r.dims).sum(),
            shard: None,
            reprs,
            unlabeled: false,
        }
    }

    fn cols(layer: &str, pooling: Pooling, dims: usize) -> ReprColumns {
        ReprColumns {
            layer: layer.into(),
            pooling,
            dims,
        }
    }

    #[test]
    fn select_takes_the_columns_of_each_representation_in_the_order_asked() {
        let id = identity(vec![
            cols("a", Pooling::Avg, 2),
            cols("a", Pooling::Max, 2),
            cols("b", Pooling::Avg, 3),
        ]);
        let wanted: Vec<Repr> = vec!["b:avg".parse().unwrap(), "a:avg".parse().unwrap()];
        let (sub, columns) = id.select(&wanted).unwrap();
        assert_eq!(columns, vec![4, 5, 6, 0, 1]);
        assert_eq!(sub.dims, 5);
        assert_eq!(sub.layers, vec!["b".to_string(), "a".to_string()]);
        assert_eq!(sub.representations(), wanted);
        assert_eq!(sub.features_label(), "b+a:avg");
        assert_eq!(id.select(&id.representations()).unwrap().0, id);
        assert!(matches!(
            id.select(&["b:max".parse().unwrap()]),
            Err(SelectError::Missing { .. })
        ));
        assert_eq!(
            id.select(&[wanted[0].clone(), wanted[0].clone()]),
            Err(SelectError::Empty)
        );
    }

    #[test]
    fn caches_made_with_layer_and_pool_keep_their_identity_and_map_one_layer() {
        let mut id = identity(vec![cols("a", Pooling::Flatten, 8)]);
        id.reprs.clear();
        let json = serde_json::to_string(&id).unwrap();
        assert!(!json.contains("reprs"), "{json}");
        let blocks = id.columns().unwrap();
        assert_eq!((blocks[0].start, blocks[0].end), (0, 8));
        assert_eq!(blocks[0].repr, "a:flatten");
        id.layers.push("b".into());
        assert!(id.columns().is_none());
        assert!(matches!(
            id.select(&["a:flatten".parse().unwrap()]),
            Err(SelectError::Unmapped(_))
        ));
    }

    #[test]
    fn repr_parses_and_prints() {
        let r: Repr = "block4_pool:max".parse().unwrap();
        assert_eq!(r.to_string(), "block4_pool:max");
        assert!("block4_pool".parse::<Repr>().is_err());
        assert!("block4_pool:sum".parse::<Repr>().is_err());
        assert!(":avg".parse::<Repr>().is_err());
    }
}
