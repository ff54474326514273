//! Tables for people, stable JSON for scripts.

use std::collections::BTreeMap;

use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde_json::{json, Value};
use sweep_proto as pb;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(header.iter().copied());
    t
}

pub fn params(t: &pb::Trial) -> Value {
    serde_json::from_str(&t.params_json).unwrap_or(Value::Null)
}

/// The stable JSON shape of a trial.
pub fn trial_json(t: &pb::Trial) -> Value {
    let metrics: BTreeMap<&String, &f64> = t.metrics.iter().collect();
    json!({
        "trial_id": t.trial_id,
        "state": t.state,
        "params": params(t),
        "attempt": t.attempt,
        "metrics": metrics,
        "objective": if t.has_objective { json!(t.objective) } else { Value::Null },
        "epoch": t.epoch,
        "worker": t.worker,
        "error": t.error,
        "lost_count": t.lost_count,
        "error_count": t.error_count,
    })
}

pub fn sweep_json(s: &pb::Sweep) -> Value {
    let counts: BTreeMap<&String, &u64> = s.counts.iter().collect();
    json!({
        "sweep_id": s.sweep_id,
        "name": s.name,
        "state": s.state,
        "method": s.method,
        "metric": {"name": s.metric_name, "goal": s.metric_goal},
        "total": s.total,
        "counts": counts,
        "created_unix_ms": s.created_unix_ms,
    })
}

/// `k=v, k=v` for a params object.
pub fn params_inline(v: &Value) -> String {
    match v.as_object() {
        Some(o) => o.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "),
        None => v.to_string(),
    }
}

pub fn fmt_metric(m: Option<&f64>) -> String {
    m.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into())
}

pub fn counts_line(s: &pb::Sweep) -> String {
    let order = ["queued", "leased", "succeeded", "failed", "dead", "cancelled"];
    order.iter().filter_map(|k| s.counts.get(*k).map(|n| format!("{k} {n}"))).collect::<Vec<_>>().join(", ")
}

/// Trials ranked by a metric (NaN/missing last), best first for the goal.
pub fn rank<'a>(trials: &'a [pb::Trial], metric: &str, goal: &str) -> Vec<&'a pb::Trial> {
    let mut v: Vec<&pb::Trial> = trials.iter().collect();
    v.sort_by(|a, b| {
        let (x, y) = (a.metrics.get(metric), b.metrics.get(metric));
        match (x, y) {
            (Some(x), Some(y)) => {
                let o = x.partial_cmp(y).unwrap_or(std::cmp::Ordering::Equal);
                if goal == "minimize" {
                    o
                } else {
                    o.reverse()
                }
            }
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        }
    });
    v
}
