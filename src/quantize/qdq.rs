//! The graph edit: where QuantizeLinear / DequantizeLinear go ([`find_sites`]) and the
//! rewritten model ([`rewrite`]).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::calibrate::ActParams;
use super::QuantizeError;
use crate::onnx::proto::{GraphProto, NodeProto, TensorProto};
use crate::onnx::{attr_int, tensor_f32, tensor_f32_data, tensor_raw, DataType, Model};

/// Ops whose presence means a model is quantised already.
const QUANTIZED_OPS: [&str; 8] = [
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "QLinearConv",
    "QLinearMatMul",
    "ConvInteger",
    "MatMulInteger",
    "QGemm",
];

/// Weight values are clipped to [-127, 127]: symmetric, as ONNX Runtime's quantiser does.
const WEIGHT_MAX: f32 = 127.0;

/// Where the quantised model differs from the fp32 one.
#[derive(Debug, Clone)]
pub(crate) struct Sites {
    /// Indices of the Conv nodes.
    pub(crate) convs: Vec<usize>,
    /// Tensors whose range calibration measures, in graph order.
    pub(crate) calibrated: Vec<String>,
    /// `(tensor, source)`: the tensor takes the scale and zero point of `source` (a MaxPool's
    /// output and its input).
    pub(crate) shared: Vec<(String, String)>,
}

/// Finds the Conv nodes and the tensors around them to quantise; refuses a model that is
/// quantised already, has no Conv, or has Convs whose weights are not constants.
pub(crate) fn find_sites(model: &Model, path: &Path) -> Result<Sites, QuantizeError> {
    let g = model.graph();
    refuse_quantized(g, path)?;
    let convs: Vec<usize> = (0..g.node.len()).filter(|&i| is_conv(&g.node[i])).collect();
    if convs.is_empty() {
        return Err(QuantizeError::NoConv {
            model: path.to_path_buf(),
        });
    }
    // Per-channel DequantizeLinear (the `axis` attribute) exists since opset 13.
    match model.opset_version("") {
        Some(v) if v >= 13 => {}
        v => {
            return Err(unsupported(path, format!(
                "it imports opset {v:?} of the ONNX domain; per-channel quantisation needs 13 or later (re-export the model with opset 13+)"
            )))
        }
    }
    for &i in &convs {
        check_conv_constants(model, &g.node[i], path)?;
    }
    let (calibrated, shared) = activation_sites(g, &convs);
    Ok(Sites {
        convs,
        calibrated,
        shared,
    })
}

/// The model at `path` cannot be quantised, for the reason `why`.
fn unsupported(path: &Path, why: String) -> QuantizeError {
    QuantizeError::Unsupported {
        model: path.to_path_buf(),
        why,
    }
}

/// Refuses a graph with quantised operators or 8-bit integer initializers.
fn refuse_quantized(g: &GraphProto, path: &Path) -> Result<(), QuantizeError> {
    let already = |what: String| QuantizeError::AlreadyQuantized {
        model: path.to_path_buf(),
        what,
    };
    if let Some(n) = g.node.iter().find(|n| QUANTIZED_OPS.contains(&n.op_type())) {
        return Err(already(format!(
            "it has a {} node, '{}'",
            n.op_type(),
            n.name()
        )));
    }
    let integer = [DataType::Int8 as i32, DataType::Uint8 as i32];
    match g
        .initializer
        .iter()
        .find(|t| integer.contains(&t.data_type()))
    {
        Some(t) => Err(already(format!(
            "initializer '{}' holds 8-bit integers",
            t.name()
        ))),
        None => Ok(()),
    }
}

/// Refuses a Conv whose weight or bias is computed, not f32 data, or a weight of under 3 dims.
fn check_conv_constants(model: &Model, n: &NodeProto, path: &Path) -> Result<(), QuantizeError> {
    for (k, what) in [(1, "weight"), (2, "bias")] {
        let Some(name) = n.input.get(k).filter(|s| !s.is_empty()) else {
            continue;
        };
        let Some(t) = model.initializer(name) else {
            return Err(unsupported(
                path,
                format!(
                    "the {what} of Conv '{}' ('{name}') is computed, not a constant",
                    n.name()
                ),
            ));
        };
        tensor_f32_data(t)?;
        if k == 1 && t.dims.len() < 3 {
            return Err(unsupported(
                path,
                format!("the weight of Conv '{}' has dims {:?}", n.name(), t.dims),
            ));
        }
    }
    Ok(())
}

fn is_conv(n: &NodeProto) -> bool {
    n.op_type() == "Conv" && n.domain().is_empty()
}

/// The tensors to quantise: what each Conv reads, and what its activation writes (its Relu's
/// output when a Relu alone reads it); a MaxPool's output shares its input's parameters.
fn activation_sites(g: &GraphProto, convs: &[usize]) -> (Vec<String>, Vec<(String, String)>) {
    let graph_outputs: HashSet<&str> = g.output.iter().map(|o| o.name()).collect();
    let mut calibrated: Vec<String> = Vec::new();
    let mut shared: Vec<(String, String)> = Vec::new();
    let quantized = |t: &str, c: &[String], s: &[(String, String)]| {
        c.iter().any(|x| x == t) || s.iter().any(|(x, _)| x == t)
    };
    for (i, n) in g.node.iter().enumerate() {
        if n.op_type() == "MaxPool" && n.domain().is_empty() && n.output.len() == 1 {
            if quantized(&n.input[0], &calibrated, &shared) {
                shared.push((n.output[0].clone(), n.input[0].clone()));
            }
            continue;
        }
        if !convs.contains(&i) {
            continue;
        }
        let x = &n.input[0];
        if !quantized(x, &calibrated, &shared) {
            calibrated.push(x.clone());
        }
        let y = &n.output[0];
        let readers: Vec<&NodeProto> = g.node.iter().filter(|m| m.input.contains(y)).collect();
        let activated = match readers.as_slice() {
            [relu] if relu.op_type() == "Relu" && !graph_outputs.contains(y.as_str()) => {
                &relu.output[0]
            }
            _ => y,
        };
        if !quantized(activated, &calibrated, &shared) {
            calibrated.push(activated.clone());
        }
    }
    (calibrated, shared)
}

/// The quantised model: QDQ around every site, int8 weights and int32 biases.
pub(crate) fn rewrite(
    model: &Model,
    sites: &Sites,
    calibrated: &HashMap<String, ActParams>,
) -> Result<Model, QuantizeError> {
    let mut out = model.clone();
    let g = out.graph_mut();
    let owner = owners(sites, calibrated);
    let mut names = Names::new(g);
    let inits = activation_params(sites, calibrated, &mut names);
    let old_nodes = std::mem::take(&mut g.node);
    let mut nodes: Vec<NodeProto> = Vec::with_capacity(old_nodes.len() * 2);
    let renamed_inputs = dequantize_inputs(g, &owner, &mut names, &mut nodes);
    let mut constants = Constants::default();
    for (i, mut n) in old_nodes.into_iter().enumerate() {
        for input in &mut n.input {
            if let Some(new) = renamed_inputs.get(input) {
                *input = new.clone();
            }
        }
        if sites.convs.contains(&i) {
            let x = &model.graph().node[i].input[0];
            let x_scale = calibrated[&owner[x]].scale;
            constants.quantize_conv(model, &mut n, x_scale, &mut names, &mut nodes)?;
        }
        let after = quantize_outputs(&mut n, &owner, &mut names);
        nodes.push(n);
        nodes.extend(after);
    }
    g.node = nodes;
    // The fp32 weights and biases nothing reads any more are dropped (the model shrinks ~4x).
    let still_read: HashSet<String> = g.node.iter().flat_map(|n| n.input.clone()).collect();
    let unused = |name: &str| constants.replaced.contains(name) && !still_read.contains(name);
    g.initializer.retain(|t| !unused(t.name()));
    g.input.retain(|v| !unused(v.name()));
    g.initializer.extend(inits);
    g.initializer.extend(constants.inits);
    Ok(out)
}

/// Every quantised tensor with the tensor whose parameters (initializers) it uses.
fn owners(sites: &Sites, calibrated: &HashMap<String, ActParams>) -> HashMap<String, String> {
    let mut owner: HashMap<String, String> =
        calibrated.keys().map(|t| (t.clone(), t.clone())).collect();
    for (t, source) in &sites.shared {
        let root = owner.get(source).cloned().unwrap_or_else(|| source.clone());
        owner.insert(t.clone(), root);
    }
    owner
}

/// The scale and zero point initializers of every calibrated tensor.
fn activation_params(
    sites: &Sites,
    calibrated: &HashMap<String, ActParams>,
    names: &mut Names,
) -> Vec<TensorProto> {
    let mut inits: Vec<TensorProto> = Vec::new();
    // Graph order, not the map's: the same model and ranges give the same bytes.
    for t in &sites.calibrated {
        let p = calibrated[t];
        inits.push(tensor_f32(&names.scale(t), &[p.scale], &[]));
        inits.push(tensor_raw(
            &names.zero_point(t),
            DataType::Uint8,
            &[],
            vec![p.zero_point],
        ));
    }
    inits
}

/// QDQ pairs (into `nodes`) for the quantised graph inputs, which cannot be renamed: their
/// readers read the DequantizeLinear output instead. Returns each input's new name.
fn dequantize_inputs(
    g: &GraphProto,
    owner: &HashMap<String, String>,
    names: &mut Names,
    nodes: &mut Vec<NodeProto>,
) -> HashMap<String, String> {
    let inputs: HashSet<String> = g.input.iter().map(|v| v.name().to_string()).collect();
    let mut renamed_inputs: HashMap<String, String> = HashMap::new();
    let mut fed: Vec<&String> = owner.keys().filter(|t| inputs.contains(*t)).collect();
    fed.sort();
    for t in fed {
        let dq = names.fresh(&format!("{t}_dequantized"));
        nodes.extend(qdq_pair(t, &dq, &owner[t], names));
        renamed_inputs.insert(t.clone(), dq);
    }
    renamed_inputs
}

/// Renames the quantised outputs of `n` and returns the QDQ pairs that follow it: the
/// DequantizeLinear writes the old name, so every reader (and a graph output) gets the
/// quantised value without being edited.
fn quantize_outputs(
    n: &mut NodeProto,
    owner: &HashMap<String, String>,
    names: &mut Names,
) -> Vec<NodeProto> {
    let mut after = Vec::new();
    for o in n.output.iter_mut().filter(|o| owner.contains_key(*o)) {
        let t = o.clone();
        let float = names.fresh(&format!("{t}_float"));
        *o = float.clone();
        after.extend(qdq_pair(&float, &t, &owner[&t], names));
    }
    after
}

/// QuantizeLinear(`from`) then DequantizeLinear into `to`, with the parameters of `owner`.
fn qdq_pair(from: &str, to: &str, owner: &str, names: &mut Names) -> Vec<NodeProto> {
    let (scale, zp) = (names.scale(owner), names.zero_point(owner));
    let q = names.fresh(&format!("{to}_quantized"));
    vec![
        node("QuantizeLinear", &[from, &scale, &zp], &q, names),
        node("DequantizeLinear", &[&q, &scale, &zp], to, names),
    ]
}

fn node(op: &str, inputs: &[&str], output: &str, names: &mut Names) -> NodeProto {
    NodeProto {
        name: Some(names.fresh(&format!("{output}_{op}"))),
        op_type: Some(op.to_string()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        ..Default::default()
    }
}

/// The int8 weights and int32 biases written so far.
#[derive(Default)]
struct Constants {
    /// Initializers of the quantised constants and their scales.
    inits: Vec<TensorProto>,
    /// fp32 weight -> (its DequantizeLinear output, per-channel scales): a weight two Convs
    /// share is quantised once.
    weights: HashMap<String, (String, Vec<f32>)>,
    /// fp32 initializers replaced by quantised ones.
    replaced: HashSet<String>,
}

impl Constants {
    /// Replaces the Conv's weight by int8 values (one symmetric scale per output channel)
    /// and its bias by int32 values at scale `x_scale` x weight scale (what the int8 kernel
    /// accumulates), each behind a DequantizeLinear added to `nodes`.
    fn quantize_conv(
        &mut self,
        model: &Model,
        conv: &mut NodeProto,
        x_scale: f32,
        names: &mut Names,
        nodes: &mut Vec<NodeProto>,
    ) -> Result<(), QuantizeError> {
        let w_name = conv.input[1].clone();
        if !self.weights.contains_key(&w_name) {
            let w = model.initializer(&w_name).expect("checked by find_sites");
            let values = tensor_f32_data(w)?;
            let channels = usize::try_from(w.dims[0]).unwrap_or(1).max(1);
            let per = (values.len() / channels).max(1);
            let scales: Vec<f32> = values.chunks(per).map(weight_scale).collect();
            let q: Vec<u8> = values
                .chunks(per)
                .zip(&scales)
                .flat_map(|(c, s)| c.iter().map(move |v| quantize_weight(*v, *s)))
                .collect();
            let dq = self.per_channel(
                &w_name,
                &w.dims,
                DataType::Int8,
                q,
                &scales,
                1,
                names,
                nodes,
            );
            self.weights.insert(w_name.clone(), (dq, scales));
        }
        let (dq, w_scales) = self.weights[&w_name].clone();
        conv.input[1] = dq;
        let Some(b_name) = conv.input.get(2).filter(|s| !s.is_empty()).cloned() else {
            return Ok(());
        };
        let b = model.initializer(&b_name).expect("checked by find_sites");
        let bias = tensor_f32_data(b)?;
        let scales: Vec<f32> = w_scales.iter().map(|s| s * x_scale).collect();
        let q: Vec<u8> = bias
            .iter()
            .zip(scales.iter().cycle())
            .flat_map(|(v, s)| quantize_bias(*v, *s).to_le_bytes())
            .collect();
        // Each Conv gets its own bias: its scale depends on the Conv's input scale.
        conv.input[2] = self.per_channel(
            &b_name,
            &b.dims,
            DataType::Int32,
            q,
            &scales,
            4,
            names,
            nodes,
        );
        Ok(())
    }

    /// Adds `raw` (elements of `elem`, `bytes` each) as a tensor with per-channel `scales`
    /// (zero points 0) and the DequantizeLinear (axis 0) reading it; the float tensor's name.
    #[allow(clippy::too_many_arguments)]
    fn per_channel(
        &mut self,
        base: &str,
        dims: &[i64],
        elem: DataType,
        raw: Vec<u8>,
        scales: &[f32],
        bytes: usize,
        names: &mut Names,
        nodes: &mut Vec<NodeProto>,
    ) -> String {
        let channels = [scales.len() as i64];
        let (q, s, z) = (
            names.fresh(&format!("{base}_quantized")),
            names.fresh(&format!("{base}_scale")),
            names.fresh(&format!("{base}_zero_point")),
        );
        self.inits.push(tensor_raw(&q, elem, dims, raw));
        self.inits.push(tensor_f32(&s, scales, &channels));
        self.inits.push(tensor_raw(
            &z,
            elem,
            &channels,
            vec![0; scales.len() * bytes],
        ));
        self.replaced.insert(base.to_string());
        let out = names.fresh(&format!("{base}_dequantized"));
        let mut dq = node("DequantizeLinear", &[&q, &s, &z], &out, names);
        dq.attribute.push(attr_int("axis", 0));
        nodes.push(dq);
        out
    }
}

/// The symmetric scale of one output channel's weights: its largest |w| maps to 127.
fn weight_scale(channel: &[f32]) -> f32 {
    let a = channel.iter().fold(0f32, |m, v| m.max(v.abs()));
    // An all-zero channel: any scale represents it exactly.
    if a > 0.0 {
        a / WEIGHT_MAX
    } else {
        1.0
    }
}

/// A weight as int8 (two's complement byte) on the grid of `scale`.
fn quantize_weight(v: f32, scale: f32) -> u8 {
    (v / scale).round_ties_even().clamp(-WEIGHT_MAX, WEIGHT_MAX) as i8 as u8
}

/// A bias as int32 on the grid of `scale` (input scale x weight scale).
fn quantize_bias(v: f32, scale: f32) -> i32 {
    (f64::from(v) / f64::from(scale))
        .round_ties_even()
        .clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
}

/// Tensor and node names not yet used in the graph.
struct Names {
    used: HashSet<String>,
    scales: HashMap<String, (String, String)>,
}

impl Names {
    fn new(g: &GraphProto) -> Names {
        let mut used: HashSet<String> = HashSet::new();
        used.extend(g.input.iter().map(|v| v.name().to_string()));
        used.extend(g.output.iter().map(|v| v.name().to_string()));
        used.extend(g.initializer.iter().map(|t| t.name().to_string()));
        for n in &g.node {
            used.insert(n.name().to_string());
            used.extend(n.input.iter().cloned());
            used.extend(n.output.iter().cloned());
        }
        Names {
            used,
            scales: HashMap::new(),
        }
    }

    /// `wanted`, or `wanted_2`, `wanted_3`, ... when it is taken.
    fn fresh(&mut self, wanted: &str) -> String {
        let mut name = wanted.to_string();
        let mut k = 2;
        while self.used.contains(&name) {
            name = format!("{wanted}_{k}");
            k += 1;
        }
        self.used.insert(name.clone());
        name
    }

    fn pair(&mut self, t: &str) -> (String, String) {
        if let Some(p) = self.scales.get(t) {
            return p.clone();
        }
        let p = (
            self.fresh(&format!("{t}_scale")),
            self.fresh(&format!("{t}_zero_point")),
        );
        self.scales.insert(t.to_string(), p.clone());
        p
    }

    /// Name of the scale initializer of activation `t`.
    fn scale(&mut self, t: &str) -> String {
        self.pair(t).0
    }

    /// Name of the zero-point initializer of activation `t`.
    fn zero_point(&mut self, t: &str) -> String {
        self.pair(t).1
    }
}
