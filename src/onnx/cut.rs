//! [`Model::cut`]: turns a classifier into a feature extractor.

use std::collections::{HashMap, HashSet};

use super::proto::{GraphProto, NodeProto, ValueInfoProto};
use super::rank::infer_ranks;
use super::tensor::{dims_of, elem_type_of, set_dims, value_info, DataType, Dim};
use super::{Model, OnnxError};

/// What [`Model::cut`] should do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CutSpec {
    /// `(existing tensor, new output name)` pairs; these become the only graph outputs.
    pub outputs: Vec<(String, String)>,
    /// Remove the NHWC->NCHW `Transpose` behind the input and declare the input NCHW.
    pub nchw_input: bool,
    /// Make the input's batch, height and width dims symbolic (`batch`, `height`, `width`).
    pub free_dims: bool,
}

/// The permutation tf2onnx puts behind an NHWC image input.
const NHWC_TO_NCHW: [i64; 4] = [0, 3, 1, 2];

impl Model {
    /// Applies `spec`; on error the model is left unchanged.
    pub fn cut(&mut self, spec: &CutSpec) -> Result<(), OnnxError> {
        self.check_cut_spec(spec)?;
        // Edits go to a copy so a refusal half-way (e.g. no transpose) changes nothing.
        let mut g = self.graph().clone();
        let ranks = infer_ranks(&g);
        let mut outputs = Vec::with_capacity(spec.outputs.len());
        for (old, new) in &spec.outputs {
            outputs.push(output_info(&g, &ranks, old, new, spec.free_dims));
            rename_tensor(&mut g, old, new);
        }
        g.output = outputs;
        prune(&mut g);
        if spec.nchw_input {
            remove_input_transposes(&mut g)?;
        }
        if spec.free_dims {
            free_input_dims(&mut g);
        }
        *self.graph_mut() = g;
        Ok(())
    }

    fn check_cut_spec(&self, spec: &CutSpec) -> Result<(), OnnxError> {
        let refuse = |msg: String| Err(OnnxError::Cut(msg));
        if spec.outputs.is_empty() {
            return refuse("no outputs requested; name at least one tensor to cut at".into());
        }
        let produced: HashSet<&str> = self.tensor_names().into_iter().collect();
        let g = self.graph();
        let existing: HashSet<&str> = produced
            .iter()
            .copied()
            .chain(g.input.iter().map(|v| v.name()))
            .chain(g.initializer.iter().map(|t| t.name()))
            .collect();
        let (mut olds, mut news) = (HashSet::new(), HashSet::new());
        for (old, new) in &spec.outputs {
            if !produced.contains(old.as_str()) {
                return Err(OnnxError::UnknownTensor {
                    name: old.clone(),
                    candidates: self.similar_tensors(old),
                });
            }
            if new.is_empty() {
                return refuse(format!("the new name for '{old}' is empty"));
            }
            if !olds.insert(old) {
                return refuse(format!("tensor '{old}' is listed twice"));
            }
            if !news.insert(new) {
                return refuse(format!("output name '{new}' is used twice"));
            }
            if new != old && existing.contains(new.as_str()) {
                return refuse(format!(
                    "output name '{new}' (for '{old}') already names another tensor; pick another"
                ));
            }
        }
        Ok(())
    }
}

/// The output declaration for `old` renamed `new`, keeping what the model knew of its type.
///
/// Without a recorded shape only the rank is declared (the ONNX checker wants one); with
/// `free_dims` the dims are symbolic and dim 0 is `batch`, as in every backbone layer output.
fn output_info(
    g: &GraphProto,
    ranks: &HashMap<String, usize>,
    old: &str,
    new: &str,
    free_dims: bool,
) -> ValueInfoProto {
    let known = g
        .value_info
        .iter()
        .chain(&g.output)
        .find(|v| v.name() == old);
    let elem = known.and_then(elem_type_of).unwrap_or(DataType::Float);
    let recorded = known.and_then(dims_of).filter(|_| !free_dims);
    let dims = recorded.or_else(|| {
        let rank = ranks.get(old).copied()?;
        Some(
            (0..rank)
                .map(|i| match (free_dims, i) {
                    (false, _) => Dim::Unknown,
                    (true, 0) => Dim::sym("batch"),
                    (true, _) => Dim::Sym(format!("{new}_d{i}")),
                })
                .collect(),
        )
    });
    // Rank unknown too: declare the type alone, which runtimes accept.
    value_info(new, elem, dims.as_deref())
}

/// Renames a tensor wherever it is produced, consumed or declared.
fn rename_tensor(g: &mut GraphProto, old: &str, new: &str) {
    for n in &mut g.node {
        for s in n.input.iter_mut().chain(n.output.iter_mut()) {
            if s == old {
                *s = new.to_string();
            }
        }
        // Subgraphs (If, Loop, Scan) may read outer tensors by name.
        for a in &mut n.attribute {
            for sg in a.g.iter_mut().chain(a.graphs.iter_mut()) {
                rename_tensor(sg, old, new);
            }
        }
    }
    for v in g
        .input
        .iter_mut()
        .chain(&mut g.output)
        .chain(&mut g.value_info)
    {
        if v.name() == old {
            v.name = Some(new.to_string());
        }
    }
    for a in &mut g.quantization_annotation {
        if a.tensor_name() == old {
            a.tensor_name = Some(new.to_string());
        }
    }
}

/// Every name read by the node's subgraphs: an over-approximation of their outer-scope reads.
fn subgraph_reads(n: &NodeProto, into: &mut HashSet<String>) {
    for a in &n.attribute {
        for sg in a.g.iter().chain(&a.graphs) {
            for sn in &sg.node {
                into.extend(sn.input.iter().filter(|i| !i.is_empty()).cloned());
                subgraph_reads(sn, into);
            }
        }
    }
}

/// Drops every node, initializer, input and value info the graph outputs do not depend on.
fn prune(g: &mut GraphProto) {
    let mut needed: HashSet<String> = g.output.iter().map(|v| v.name().to_string()).collect();
    let mut keep = vec![false; g.node.len()];
    // Nodes are topologically sorted, so one backward sweep finds all dependencies.
    for (i, n) in g.node.iter().enumerate().rev() {
        if n.output.iter().any(|o| needed.contains(o)) {
            keep[i] = true;
            needed.extend(n.input.iter().filter(|s| !s.is_empty()).cloned());
            subgraph_reads(n, &mut needed);
        }
    }
    let mut keep = keep.into_iter();
    g.node.retain(|_| keep.next().unwrap_or(false));
    g.initializer.retain(|t| needed.contains(t.name()));
    g.sparse_initializer
        .retain(|t| t.values.as_ref().is_some_and(|v| needed.contains(v.name())));
    g.input.retain(|v| needed.contains(v.name()));
    g.value_info.retain(|v| needed.contains(v.name()));
    g.quantization_annotation
        .retain(|a| needed.contains(a.tensor_name()));
}

/// Graph inputs that callers feed, as indices into `g.input`.
fn fed_inputs(g: &GraphProto) -> Vec<usize> {
    let inits: HashSet<&str> = g.initializer.iter().map(|t| t.name()).collect();
    (0..g.input.len())
        .filter(|&i| !inits.contains(g.input[i].name()))
        .collect()
}

fn consumers<'a>(g: &'a GraphProto, tensor: &str) -> Vec<(usize, &'a NodeProto)> {
    g.node
        .iter()
        .enumerate()
        .filter(|(_, n)| n.input.iter().any(|i| i == tensor))
        .collect()
}

fn is_nhwc_transpose(n: &NodeProto) -> bool {
    n.op_type() == "Transpose"
        && n.domain().is_empty()
        && n.attribute
            .iter()
            .any(|a| a.name() == "perm" && a.ints == NHWC_TO_NCHW)
}

/// The transpose node index when `input` feeds nothing but an NHWC->NCHW `Transpose`.
fn input_transpose(g: &GraphProto, input: &str) -> Option<usize> {
    match consumers(g, input).as_slice() {
        [(i, n)] if is_nhwc_transpose(n) => Some(*i),
        _ => None,
    }
}

fn remove_input_transposes(g: &mut GraphProto) -> Result<(), OnnxError> {
    let images: Vec<usize> = fed_inputs(g)
        .into_iter()
        .filter(|&i| dims_of(&g.input[i]).is_none_or(|d| d.len() == 4))
        .collect();
    if images.is_empty() {
        return Err(OnnxError::Pattern(
            "nchw_input: the model has no rank-4 image input; drop nchw_input".into(),
        ));
    }
    for i in images {
        let name = g.input[i].name().to_string();
        let Some(t) = input_transpose(g, &name) else {
            let found: Vec<String> = consumers(g, &name)
                .iter()
                .map(|(_, n)| format!("{} '{}'", n.op_type(), n.name()))
                .collect();
            return Err(OnnxError::Pattern(format!(
                "nchw_input: input '{name}' should feed only a Transpose with perm {NHWC_TO_NCHW:?} \
                 (the NHWC->NCHW pattern tf2onnx emits), but it feeds [{}]; \
                 if the model already takes NCHW input, drop nchw_input",
                found.join(", ")
            )));
        };
        let transposed = g.node[t].output[0].clone();
        if g.output.iter().any(|o| o.name() == transposed) {
            return Err(OnnxError::Cut(format!(
                "'{transposed}' is the input transpose itself; with nchw_input it is the input, cut further down"
            )));
        }
        g.node.remove(t);
        g.value_info.retain(|v| v.name() != transposed);
        rename_tensor(g, &transposed, &name);
        if let Some(d) = dims_of(&g.input[i]) {
            let nchw: Vec<Dim> = NHWC_TO_NCHW
                .iter()
                .map(|&a| d[a as usize].clone())
                .collect();
            set_dims(&mut g.input[i], &nchw);
        }
    }
    Ok(())
}

fn free_input_dims(g: &mut GraphProto) {
    for i in fed_inputs(g) {
        let Some(mut dims) = dims_of(&g.input[i]) else {
            continue;
        };
        // Still behind an NHWC transpose means NHWC; otherwise image inputs are NCHW.
        let spatial = if input_transpose(g, g.input[i].name()).is_some() {
            [1, 2]
        } else {
            [2, 3]
        };
        if let Some(d) = dims.first_mut() {
            *d = Dim::sym("batch");
        }
        if dims.len() == 4 {
            dims[spatial[0]] = Dim::sym("height");
            dims[spatial[1]] = Dim::sym("width");
        }
        set_dims(&mut g.input[i], &dims);
    }
    // Intermediate shapes were recorded for the old fixed sizes and would now contradict them.
    g.value_info.clear();
}
