//! Named, shape-checked tensors (as candle's `VarMap`): a network's parameters, or their
//! momenta, each found by its name and checked against its shape, never found by position.
//! What each trainable tensor is ([`ParamSpec`]: name, shape, learning-rate group) is defined
//! here, so the graphs, the checkpoints and the training loop all read it from the store.

use serde::{Deserialize, Serialize};

/// Which learning rate a parameter trains with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    /// Pretrained ConvNet weights: a small learning rate.
    Pretrained,
    /// Newly initialised layers (the head).
    New,
}

impl Group {
    /// Name of the graph input holding this group's learning rate.
    pub fn lr_input(self) -> &'static str {
        match self {
            Group::Pretrained => "lr_pretrained",
            Group::New => "lr_new",
        }
    }
}

/// One trainable tensor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// Graph input name, e.g. `block5_conv1.w` or `fc1.b`.
    pub name: String,
    /// Shape.
    pub dims: Vec<usize>,
    /// Learning-rate group.
    pub group: Group,
    /// Whether weight decay applies (weights yes, biases no).
    pub decay: bool,
}

impl ParamSpec {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// Whether the tensor holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Name of its momentum input.
    pub fn momentum(&self) -> String {
        momentum_name(&self.name)
    }
}

/// Name of the momentum of parameter `name` (graph input and checkpoint tensor).
pub fn momentum_name(name: &str) -> String {
    format!("{name}.momentum")
}

/// One tensor: its shape and its values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamTensor {
    /// Shape.
    pub dims: Vec<usize>,
    /// `dims.product()` values.
    pub values: Vec<f32>,
}

/// Why a tensor was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// A tensor the network needs is not there.
    #[error("'{0}' is missing")]
    Missing(String),
    /// A tensor has another shape than the network's.
    #[error("'{name}' has shape {found:?}, the network needs {wanted:?}")]
    Shape {
        /// The tensor.
        name: String,
        /// Its shape.
        found: Vec<usize>,
        /// The network's.
        wanted: Vec<usize>,
    },
    /// A tensor's values do not fill its shape.
    #[error("'{name}' holds {len} values, its shape {dims:?} needs {}", dims.iter().product::<usize>())]
    Length {
        /// The tensor.
        name: String,
        /// Its shape.
        dims: Vec<usize>,
        /// Number of values.
        len: usize,
    },
    /// A name given twice.
    #[error("'{0}' is given twice")]
    Duplicate(String),
}

/// Tensors by name, kept in the order they were added.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParamStore {
    // A network has a handful of tensors: a list keeps the order and is searched fast enough.
    tensors: Vec<(String, ParamTensor)>,
}

impl ParamStore {
    /// An empty store.
    pub fn new() -> ParamStore {
        ParamStore::default()
    }

    /// One tensor per spec, in `specs` order, with the values `values` gives for it.
    pub fn from_specs<E: From<StoreError>>(
        specs: &[ParamSpec],
        mut values: impl FnMut(&ParamSpec) -> Result<Vec<f32>, E>,
    ) -> Result<ParamStore, E> {
        let mut out = ParamStore::new();
        for p in specs {
            out.insert(&p.name, p.dims.clone(), values(p)?)?;
        }
        Ok(out)
    }

    /// Adds `name`; refused when the values do not fill `dims` or the name is taken.
    pub fn insert(
        &mut self,
        name: &str,
        dims: Vec<usize>,
        values: Vec<f32>,
    ) -> Result<(), StoreError> {
        if values.len() != dims.iter().product::<usize>() {
            return Err(StoreError::Length {
                name: name.into(),
                dims,
                len: values.len(),
            });
        }
        if self.get(name).is_some() {
            return Err(StoreError::Duplicate(name.into()));
        }
        self.tensors
            .push((name.into(), ParamTensor { dims, values }));
        Ok(())
    }

    /// The tensor `name`, if there.
    pub fn get(&self, name: &str) -> Option<&ParamTensor> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// The values of `spec`'s tensor, checked to have its shape.
    pub fn values(&self, spec: &ParamSpec) -> Result<&[f32], StoreError> {
        let t = self
            .get(&spec.name)
            .ok_or_else(|| StoreError::Missing(spec.name.clone()))?;
        if t.dims != spec.dims {
            return Err(StoreError::Shape {
                name: spec.name.clone(),
                found: t.dims.clone(),
                wanted: spec.dims.clone(),
            });
        }
        Ok(&t.values)
    }

    /// Refuses the store unless it holds every tensor of `specs`, each with its shape.
    pub fn check(&self, specs: &[ParamSpec]) -> Result<(), StoreError> {
        specs.iter().try_for_each(|p| self.values(p).map(|_| ()))
    }

    /// Every tensor with its name, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ParamTensor)> {
        self.tensors.iter().map(|(n, t)| (n.as_str(), t))
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether the store holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// The same names and shapes, all values zero (e.g. fresh momenta).
    pub fn zeros_like(&self) -> ParamStore {
        let tensors = self.tensors.iter().map(|(n, t)| {
            let zeros = vec![0.0; t.values.len()];
            let dims = t.dims.clone();
            (
                n.clone(),
                ParamTensor {
                    dims,
                    values: zeros,
                },
            )
        });
        ParamStore {
            tensors: tensors.collect(),
        }
    }

    /// Adds every tensor of `other`; refused when a name is in both.
    pub fn extend(&mut self, other: ParamStore) -> Result<(), StoreError> {
        for (name, t) in other.tensors {
            self.insert(&name, t.dims, t.values)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, dims: Vec<usize>) -> ParamSpec {
        ParamSpec {
            name: name.into(),
            dims,
            group: Group::New,
            decay: true,
        }
    }

    #[test]
    fn tensors_are_found_by_name_and_checked_by_shape() {
        let mut s = ParamStore::new();
        s.insert("fc1.w", vec![2, 3], vec![1.0; 6]).unwrap();
        s.insert("fc1.b", vec![3], vec![0.5; 3]).unwrap();
        assert_eq!(s.values(&spec("fc1.b", vec![3])).unwrap(), &[0.5; 3]);
        // Same number of values, other shape: a transposed weight must not pass.
        assert_eq!(
            s.values(&spec("fc1.w", vec![3, 2])).unwrap_err(),
            StoreError::Shape {
                name: "fc1.w".into(),
                found: vec![2, 3],
                wanted: vec![3, 2]
            }
        );
        let err = s.check(&[spec("fc1.b", vec![3]), spec("fc2.w", vec![3, 2])]);
        assert_eq!(err.unwrap_err(), StoreError::Missing("fc2.w".into()));
        assert!(matches!(
            s.insert("fc2.w", vec![3, 2], vec![1.0; 5]),
            Err(StoreError::Length { len: 5, .. })
        ));
        assert_eq!(
            s.insert("fc1.b", vec![3], vec![0.0; 3]),
            Err(StoreError::Duplicate("fc1.b".into()))
        );
        let zeros = s.zeros_like();
        let names: Vec<&str> = zeros.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["fc1.w", "fc1.b"]);
        assert!(zeros
            .iter()
            .all(|(_, t)| t.values.iter().all(|v| *v == 0.0)));
    }
}
