//! Tensor, shape and type helpers shared by the builder and the editors.

use super::proto::tensor_proto::DataLocation;
use super::proto::tensor_shape_proto::{dimension, Dimension};
use super::proto::{type_proto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto};
use super::OnnxError;

/// ONNX element types (`TensorProto.DataType`).
pub use super::proto::tensor_proto::DataType;

/// One dimension of a declared tensor shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(i64),
    /// A named symbolic size; equal names mean equal sizes at run time.
    Sym(String),
    /// A size nothing is known about.
    Unknown,
}

impl Dim {
    /// A symbolic dimension named `name`.
    pub fn sym(name: &str) -> Self {
        Dim::Sym(name.to_string())
    }

    fn to_proto(&self) -> Dimension {
        let value = match self {
            Dim::Fixed(v) => Some(dimension::Value::DimValue(*v)),
            Dim::Sym(s) => Some(dimension::Value::DimParam(s.clone())),
            Dim::Unknown => None,
        };
        Dimension {
            value,
            denotation: None,
        }
    }

    fn from_proto(d: &Dimension) -> Self {
        match &d.value {
            Some(dimension::Value::DimValue(v)) => Dim::Fixed(*v),
            Some(dimension::Value::DimParam(s)) => Dim::Sym(s.clone()),
            None => Dim::Unknown,
        }
    }
}

impl From<i64> for Dim {
    fn from(v: i64) -> Self {
        Dim::Fixed(v)
    }
}

impl From<&str> for Dim {
    fn from(s: &str) -> Self {
        Dim::sym(s)
    }
}

/// A tensor value info; `shape: None` declares the element type but no shape (rank unknown).
pub fn value_info(name: &str, elem: DataType, shape: Option<&[Dim]>) -> ValueInfoProto {
    let shape = shape.map(|dims| TensorShapeProto {
        dim: dims.iter().map(Dim::to_proto).collect(),
    });
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem as i32),
                shape,
            })),
            denotation: None,
        }),
        ..Default::default()
    }
}

fn tensor_type(vi: &ValueInfoProto) -> Option<&type_proto::Tensor> {
    match vi.r#type.as_ref()?.value.as_ref()? {
        type_proto::Value::TensorType(t) => Some(t),
        _ => None,
    }
}

/// Declared dims of a tensor value info, `None` when it declares no shape.
pub fn dims_of(vi: &ValueInfoProto) -> Option<Vec<Dim>> {
    let shape = tensor_type(vi)?.shape.as_ref()?;
    Some(shape.dim.iter().map(Dim::from_proto).collect())
}

/// Declared element type of a tensor value info, `None` when it is not a tensor or untyped.
pub fn elem_type_of(vi: &ValueInfoProto) -> Option<DataType> {
    DataType::try_from(tensor_type(vi)?.elem_type?).ok()
}

/// Replaces the declared dims of a tensor value info, keeping its element type.
pub(crate) fn set_dims(vi: &mut ValueInfoProto, dims: &[Dim]) {
    let elem = elem_type_of(vi).unwrap_or(DataType::Float);
    let name = vi.name.clone().unwrap_or_default();
    vi.r#type = value_info(&name, elem, Some(dims)).r#type;
}

/// An f32 tensor stored as little-endian `raw_data`, the compact form exporters use.
pub fn tensor_f32(name: &str, data: &[f32], dims: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.to_string()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

/// An i64 tensor (shapes, axes, indices) stored as little-endian `raw_data`.
pub fn tensor_i64(name: &str, data: &[i64], dims: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.to_string()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Int64 as i32),
        raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

/// A tensor of any fixed-size element type from its little-endian bytes (`raw_data`), e.g. the
/// int8 weights, uint8 zero points and int32 biases of a quantised model.
pub fn tensor_raw(name: &str, elem: DataType, dims: &[i64], raw: Vec<u8>) -> TensorProto {
    TensorProto {
        name: Some(name.to_string()),
        dims: dims.to_vec(),
        data_type: Some(elem as i32),
        raw_data: Some(raw),
        ..Default::default()
    }
}

/// Number of elements a tensor's dims declare (1 for a scalar).
pub(crate) fn element_count(dims: &[i64]) -> Option<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(usize::try_from(d).ok()?))
}

/// The values of an f32 tensor, from either `raw_data` or `float_data`.
pub fn tensor_f32_data(t: &TensorProto) -> Result<Vec<f32>, OnnxError> {
    let err = |reason: String| OnnxError::Tensor {
        name: t.name().to_string(),
        reason,
    };
    if t.data_type() != DataType::Float as i32 {
        return Err(err(format!(
            "holds {:?}, not FLOAT",
            DataType::try_from(t.data_type()).unwrap_or(DataType::Undefined)
        )));
    }
    if t.data_location == Some(DataLocation::External as i32) {
        return Err(err(
            "data is stored in an external file; load the model with its data inlined".into(),
        ));
    }
    let count = element_count(&t.dims).ok_or_else(|| err(format!("bad dims {:?}", t.dims)))?;
    let values: Vec<f32> = match &t.raw_data {
        Some(raw) if !raw.is_empty() || t.float_data.is_empty() => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        _ => t.float_data.clone(),
    };
    if values.len() != count {
        return Err(err(format!(
            "holds {} values but its dims {:?} need {count}",
            values.len(),
            t.dims
        )));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_tensor_round_trips_through_raw_data() {
        let t = tensor_f32("w", &[1.0, -2.5, 3.25, 0.0, 5.0, 6.0], &[2, 3]);
        assert_eq!(
            tensor_f32_data(&t).unwrap(),
            vec![1.0, -2.5, 3.25, 0.0, 5.0, 6.0]
        );
    }

    #[test]
    fn f32_data_rejects_size_mismatch_and_wrong_type() {
        let t = tensor_f32("w", &[1.0, 2.0], &[3]);
        assert!(tensor_f32_data(&t)
            .unwrap_err()
            .to_string()
            .contains("need 3"));
        let t = tensor_i64("s", &[1, 2], &[2]);
        assert!(tensor_f32_data(&t)
            .unwrap_err()
            .to_string()
            .contains("not FLOAT"));
    }

    #[test]
    fn value_info_dims_round_trip() {
        let dims = vec![Dim::sym("batch"), Dim::Fixed(3), Dim::Unknown];
        let vi = value_info("x", DataType::Float, Some(&dims));
        assert_eq!(dims_of(&vi), Some(dims));
        assert_eq!(elem_type_of(&vi), Some(DataType::Float));
        assert_eq!(dims_of(&value_info("y", DataType::Int64, None)), None);
    }
}
