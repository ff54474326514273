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

/// The trials table (people).
pub fn print_trials(sweep: &pb::Sweep, ordered: &[&pb::Trial]) {
    let mut t = table(&[
        "trial",
        "state",
        "att",
        "params",
        &sweep.metric_name,
        "test.f1_micro",
        "test.f1_macro",
        "worker / error",
    ]);
    for tr in ordered {
        t.add_row(vec![
            tr.trial_id[..8].to_string(),
            tr.state.clone(),
            tr.attempt.to_string(),
            params_inline(&params(tr)),
            fmt_metric(tr.metrics.get(&sweep.metric_name)),
            fmt_metric(tr.metrics.get("test.f1_micro")),
            fmt_metric(tr.metrics.get("test.f1_macro")),
            if tr.error.is_empty() { tr.worker.clone() } else { tr.error.chars().take(60).collect() },
        ]);
    }
    println!("{t}");
}

/// The best trial, its metrics, and a sweep file that re-runs its config.
pub fn print_best(sweep: &pb::Sweep, t: &pb::Trial) -> anyhow::Result<()> {
    let config: Value = serde_json::from_str(&t.config_json).unwrap_or_default();
    println!(
        "best of {}: trial {}  {} = {}  [{}]",
        sweep.name,
        t.trial_id,
        sweep.metric_name,
        fmt_metric(t.metrics.get(&sweep.metric_name)),
        params_inline(&params(t))
    );
    let mut tb = table(&["metric", "val", "test"]);
    for m in [
        "f1_micro",
        "f1_macro",
        "f1_micro_tuned",
        "f1_macro_tuned",
        "f1_macro_head",
        "f1_macro_medium",
        "f1_macro_tail",
    ] {
        tb.add_row(vec![
            m.to_string(),
            fmt_metric(t.metrics.get(&format!("val.{m}"))),
            fmt_metric(t.metrics.get(&format!("test.{m}"))),
        ]);
    }
    println!("{tb}");
    println!("# a sweep file that re-runs this configuration:");
    print!("{}", rerun_yaml(&sweep.name, &config)?);
    Ok(())
}

/// A sweep file whose single trial is `config`.
pub fn rerun_yaml(name: &str, config: &Value) -> anyhow::Result<String> {
    let mut doc = serde_json::Map::new();
    doc.insert("name".into(), json!(format!("{name}-best")));
    doc.insert("method".into(), json!("grid"));
    for k in ["metric", "dataset", "model", "train", "loss"] {
        if let Some(v) = config.get(k) {
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                o.retain(|_, x| !x.is_null());
            }
            doc.insert(k.into(), v);
        }
    }
    Ok(serde_norway::to_string(&Value::Object(doc))?)
}
