//! Where a graph's time goes: ONNX Runtime's profiler output summed by operator type.
//!
//! The profiler (`SessionBuilder::with_profiling`) writes Chrome trace events: one `model_run`
//! per run and, per node, a `NAME_kernel_time` event whose `args.op_name` is the operator.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::FinetuneError;

/// Mean seconds per run spent in the nodes of one operator type.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpTime {
    /// Operator type, e.g. `Conv`.
    pub op: String,
    /// Nodes of that type that ran.
    pub nodes: usize,
    /// Mean seconds per run, summed over those nodes.
    pub seconds: f64,
}

#[derive(Deserialize)]
struct Event {
    #[serde(default)]
    cat: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    ts: u64,
    #[serde(default)]
    dur: u64,
    #[serde(default)]
    args: Args,
}

#[derive(Default, Deserialize)]
struct Args {
    #[serde(default)]
    op_name: String,
}

/// The operator types of the profile at `path`, most expensive first, averaged over the runs
/// after the first `skip` (warm-up runs allocate and are slower). Also the number of runs
/// averaged.
pub fn op_times(path: &Path, skip: usize) -> Result<(Vec<OpTime>, usize), FinetuneError> {
    let bad = |reason: String| FinetuneError::Profile {
        path: path.to_path_buf(),
        reason,
    };
    let text = crate::input::read_regular_to_string(path).map_err(|e| bad(e.to_string()))?;
    let events: Vec<Event> = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let mut runs: Vec<(u64, u64)> = events
        .iter()
        .filter(|e| e.cat == "Session" && e.name == "model_run")
        .map(|e| (e.ts, e.ts + e.dur))
        .collect();
    runs.sort_unstable();
    if runs.len() <= skip {
        return Err(bad(format!(
            "holds {} run(s), {skip} of them warm-up",
            runs.len()
        )));
    }
    // Node events of a run lie inside its model_run; the warm-up runs end before `from`.
    let from = if skip == 0 { 0 } else { runs[skip - 1].1 };
    let timed = runs.len() - skip;
    let mut by_op: BTreeMap<&str, (BTreeSet<&str>, u64)> = BTreeMap::new();
    for e in &events {
        let Some(node) = e.name.strip_suffix("_kernel_time") else {
            continue;
        };
        if e.cat != "Node" || e.ts < from {
            continue;
        }
        let entry = by_op.entry(e.args.op_name.as_str()).or_default();
        entry.0.insert(node);
        entry.1 += e.dur;
    }
    let mut out: Vec<OpTime> = by_op
        .into_iter()
        .map(|(op, (nodes, micros))| OpTime {
            op: op.to_string(),
            nodes: nodes.len(),
            seconds: micros as f64 * 1e-6 / timed as f64,
        })
        .collect();
    out.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    Ok((out, timed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_kernel_times_by_operator_after_the_warm_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        let node = |name: &str, op: &str, ts: u64, dur: u64| {
            format!(
                r#"{{"cat":"Node","name":"{name}_kernel_time","ts":{ts},"dur":{dur},"args":{{"op_name":"{op}"}}}}"#
            )
        };
        let run = |ts: u64, dur: u64| {
            format!(r#"{{"cat":"Session","name":"model_run","ts":{ts},"dur":{dur},"args":{{}}}}"#)
        };
        let events = [
            run(0, 100),
            node("a", "Conv", 10, 90),
            run(200, 100),
            node("a", "Conv", 210, 40),
            node("b", "Conv", 250, 20),
            node("c", "Relu", 270, 10),
            r#"{"cat":"Node","name":"a_fence_before","ts":205,"dur":5,"args":{"op_name":"Conv"}}"#
                .to_string(),
            run(400, 100),
            node("a", "Conv", 410, 60),
            node("b", "Conv", 470, 20),
            node("c", "Relu", 490, 10),
        ];
        std::fs::write(&path, format!("[{}]", events.join(",\n"))).unwrap();
        let (ops, runs) = op_times(&path, 1).unwrap();
        assert_eq!(runs, 2);
        let expect = |op: &str, nodes, micros: f64| OpTime {
            op: op.into(),
            nodes,
            seconds: micros * 1e-6,
        };
        assert_eq!(ops, vec![expect("Conv", 2, 70.0), expect("Relu", 1, 10.0)]);
        let err = op_times(&path, 3).unwrap_err().to_string();
        assert!(err.contains("3 run(s), 3 of them warm-up"), "{err}");
    }
}
