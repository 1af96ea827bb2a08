//! [`GraphBuilder`]: writes new graphs node by node, plus attribute helpers.

use std::collections::HashSet;

use super::proto::attribute_proto::AttributeType;
use super::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
};
use super::tensor::{element_count, tensor_f32, tensor_i64, value_info, DataType, Dim};
use super::{Model, OnnxError};

/// IR version of built models: 8 is read by every ONNX Runtime release since 1.10.
pub const DEFAULT_IR_VERSION: i64 = 8;

/// Builds a graph in topological order and wraps it in a [`Model`].
#[derive(Debug, Clone)]
pub struct GraphBuilder {
    graph: GraphProto,
    extra_opsets: Vec<OperatorSetIdProto>,
    ir_version: i64,
}

impl GraphBuilder {
    /// An empty graph called `name`.
    pub fn new(name: &str) -> Self {
        Self {
            graph: GraphProto {
                name: Some(name.to_string()),
                ..Default::default()
            },
            extra_opsets: Vec::new(),
            ir_version: DEFAULT_IR_VERSION,
        }
    }

    /// Declares a graph input.
    pub fn input(&mut self, name: &str, elem: DataType, dims: &[Dim]) -> &mut Self {
        self.graph.input.push(value_info(name, elem, Some(dims)));
        self
    }

    /// Declares a graph output; the tensor must be produced by the time [`Self::build`] runs.
    pub fn output(&mut self, name: &str, elem: DataType, dims: &[Dim]) -> &mut Self {
        self.graph.output.push(value_info(name, elem, Some(dims)));
        self
    }

    /// Declares a graph output whose shape (and rank) is left to the runtime.
    pub fn output_unshaped(&mut self, name: &str, elem: DataType) -> &mut Self {
        self.graph.output.push(value_info(name, elem, None));
        self
    }

    /// Records the shape of an intermediate tensor (optional, helps runtimes plan memory).
    pub fn value_info(&mut self, name: &str, elem: DataType, dims: &[Dim]) -> &mut Self {
        self.graph
            .value_info
            .push(value_info(name, elem, Some(dims)));
        self
    }

    /// Adds a constant tensor of any type.
    pub fn initializer(&mut self, tensor: TensorProto) -> &mut Self {
        self.graph.initializer.push(tensor);
        self
    }

    /// Adds an f32 constant; `data` is row-major and must hold the product of `dims` values.
    pub fn initializer_f32(&mut self, name: &str, data: &[f32], dims: &[i64]) -> &mut Self {
        self.initializer(tensor_f32(name, data, dims))
    }

    /// Adds an i64 constant (shapes, axes, indices).
    pub fn initializer_i64(&mut self, name: &str, data: &[i64], dims: &[i64]) -> &mut Self {
        self.initializer(tensor_i64(name, data, dims))
    }

    /// Appends a node; returns it so a caller can set its name, domain or doc string.
    ///
    /// Nodes must come in topological order; an empty input name means "optional input absent".
    pub fn node(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        outputs: &[&str],
        attributes: Vec<AttributeProto>,
    ) -> &mut NodeProto {
        let index = self.graph.node.len();
        self.graph.node.push(NodeProto {
            name: Some(format!("{op_type}_{index}")),
            op_type: Some(op_type.to_string()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            attribute: attributes,
            ..Default::default()
        });
        self.graph.node.last_mut().expect("just pushed")
    }

    /// Renames the tensor `from`, which a node of the graph writes, to `to` wherever it is
    /// written or read. `false` (nothing renamed) when no node writes `from`.
    pub fn rename(&mut self, from: &str, to: &str) -> bool {
        let nodes = &mut self.graph.node;
        if !nodes.iter().any(|n| n.output.iter().any(|o| o == from)) {
            return false;
        }
        for name in nodes
            .iter_mut()
            .flat_map(|n| n.input.iter_mut().chain(n.output.iter_mut()))
        {
            if name == from {
                *name = to.to_string();
            }
        }
        true
    }

    /// Imports an extra operator domain (e.g. `com.microsoft`) next to the default one.
    pub fn opset_import(&mut self, domain: &str, version: i64) -> &mut Self {
        self.extra_opsets.push(OperatorSetIdProto {
            domain: Some(domain.to_string()),
            version: Some(version),
        });
        self
    }

    /// Overrides the IR version (default [`DEFAULT_IR_VERSION`]).
    pub fn ir_version(&mut self, version: i64) -> &mut Self {
        self.ir_version = version;
        self
    }

    /// Checks the graph and wraps it in a model importing `opset` of the default domain.
    pub fn build(self, opset: i64) -> Result<Model, OnnxError> {
        validate(&self.graph)?;
        let mut opset_import = vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(opset),
        }];
        opset_import.extend(self.extra_opsets);
        Model::from_proto(ModelProto {
            ir_version: Some(self.ir_version),
            opset_import,
            producer_name: Some("tlearn".to_string()),
            producer_version: Some(env!("CARGO_PKG_VERSION").to_string()),
            graph: Some(self.graph),
            ..Default::default()
        })
    }
}

/// Catches, at build time, the mistakes a runtime would only report as a load failure.
fn validate(g: &GraphProto) -> Result<(), OnnxError> {
    let bad = |msg: String| Err(OnnxError::InvalidGraph(msg));
    let mut defined: HashSet<&str> = HashSet::new();
    for t in &g.initializer {
        if !defined.insert(t.name()) {
            return bad(format!("initializer '{}' is defined twice", t.name()));
        }
        check_tensor_size(t)?;
    }
    // An initializer may also be listed as an input (a default the caller can override).
    let inits = defined.clone();
    for v in &g.input {
        if !defined.insert(v.name()) && !inits.contains(v.name()) {
            return bad(format!("input '{}' is declared twice", v.name()));
        }
    }
    for n in &g.node {
        for i in n.input.iter().filter(|i| !i.is_empty()) {
            if !defined.contains(i.as_str()) {
                return bad(format!(
                    "node '{}' ({}) reads '{i}', which no input, initializer or earlier node defines",
                    n.name(),
                    n.op_type()
                ));
            }
        }
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            if !defined.insert(o) {
                return bad(format!(
                    "node '{}' ({}) writes '{o}', which is already defined",
                    n.name(),
                    n.op_type()
                ));
            }
        }
    }
    if let Some(o) = g.output.iter().find(|o| !defined.contains(o.name())) {
        return bad(format!("output '{}' is not produced by anything", o.name()));
    }
    Ok(())
}

fn check_tensor_size(t: &TensorProto) -> Result<(), OnnxError> {
    let elem_bytes = match DataType::try_from(t.data_type()) {
        Ok(DataType::Float | DataType::Int32 | DataType::Uint32) => 4,
        Ok(DataType::Double | DataType::Int64 | DataType::Uint64) => 8,
        Ok(DataType::Float16 | DataType::Bfloat16 | DataType::Int16 | DataType::Uint16) => 2,
        Ok(DataType::Int8 | DataType::Uint8 | DataType::Bool) => 1,
        _ => return Ok(()),
    };
    let Some(raw) = t.raw_data.as_ref() else {
        return Ok(());
    };
    let need = element_count(&t.dims).and_then(|c| c.checked_mul(elem_bytes));
    if need != Some(raw.len()) {
        return Err(OnnxError::InvalidGraph(format!(
            "initializer '{}' has {} bytes of data but dims {:?} need {}",
            t.name(),
            raw.len(),
            t.dims,
            need.map_or("an impossible size".to_string(), |n| n.to_string())
        )));
    }
    Ok(())
}

fn attr(name: &str, kind: AttributeType) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(kind as i32),
        ..Default::default()
    }
}

/// An integer attribute.
pub fn attr_int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        i: Some(value),
        ..attr(name, AttributeType::Int)
    }
}

/// An integer-list attribute.
pub fn attr_ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        ints: values.to_vec(),
        ..attr(name, AttributeType::Ints)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relu_builder() -> GraphBuilder {
        let mut b = GraphBuilder::new("g");
        b.input("x", DataType::Float, &[Dim::sym("n"), 2.into()]);
        b.node("Relu", &["x"], &["y"], vec![]);
        b.output("y", DataType::Float, &[Dim::sym("n"), 2.into()]);
        b
    }

    #[test]
    fn builds_a_valid_model() {
        let m = relu_builder().build(13).unwrap();
        assert_eq!(m.opset_version(""), Some(13));
        assert_eq!(m.proto().ir_version, Some(DEFAULT_IR_VERSION));
        assert_eq!(m.graph().node[0].name(), "Relu_0");
    }

    #[test]
    fn rejects_dangling_inputs_and_outputs() {
        let mut b = relu_builder();
        b.node("Relu", &["nowhere"], &["z"], vec![]);
        let e = b.build(13).unwrap_err().to_string();
        assert!(e.contains("'nowhere'"), "{e}");
        let mut b = relu_builder();
        b.output_unshaped("missing", DataType::Float);
        assert!(b.build(13).unwrap_err().to_string().contains("'missing'"));
    }

    #[test]
    fn rejects_duplicate_producers_and_bad_sizes() {
        let mut b = relu_builder();
        b.node("Relu", &["x"], &["y"], vec![]);
        assert!(b
            .build(13)
            .unwrap_err()
            .to_string()
            .contains("already defined"));
        let mut b = relu_builder();
        b.initializer_f32("w", &[1.0; 5], &[2, 3]);
        let e = b.build(13).unwrap_err().to_string();
        assert!(e.contains("20 bytes") && e.contains("24"), "{e}");
    }
}
