//! Every JSON shape scripts see, in one place: the CLI's `-o json` and the dashboard's
//! `/api/v1/` print the same values from the same functions.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sweep_proto as pb;

pub fn params(t: &pb::Trial) -> Value {
    serde_json::from_str(&t.params_json).unwrap_or(Value::Null)
}

/// The stable JSON shape of a trial.
pub fn trial_json(t: &pb::Trial) -> Value {
    let metrics: BTreeMap<&String, &f64> = t.metrics.iter().collect();
    json!({
        "trial_id": t.trial_id,
        "state": t.state().name(),
        "params": params(t),
        "attempt": t.attempt,
        "metrics": metrics,
        "objective": if t.has_objective { json!(t.objective) } else { Value::Null },
        "epoch": t.epoch,
        "worker": t.worker,
        "error": t.error,
        "lost_count": t.lost_count,
        "error_count": t.error_count,
        "preempted_count": t.preempted_count,
        "model_sha256": if t.model_sha256.is_empty() { Value::Null } else { json!(t.model_sha256) },
        "cost_usd": t.cost_usd,
        "spent_to_reach_usd": t.spent_to_reach_usd,
    })
}

pub fn sweep_json(s: &pb::Sweep) -> Value {
    let counts: BTreeMap<&String, &u64> = s.counts.iter().collect();
    json!({
        "sweep_id": s.sweep_id,
        "name": s.name,
        "state": s.state().name(),
        "method": s.method().name(),
        "metric": {"name": s.metric_name, "goal": s.metric_goal().name()},
        "total": s.total,
        "counts": counts,
        "created_unix_ms": s.created_unix_ms,
        "cost_usd": s.cost_usd,
        "max_cost_usd": (s.max_cost_usd > 0.0).then_some(s.max_cost_usd),
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
    let counted =
        pb::TrialState::ALL.iter().filter_map(|st| s.counts.get(st.name()).map(|n| format!("{} {n}", st.name())));
    counted.collect::<Vec<_>>().join(", ")
}

/// Trials of a sweep that have ended (in any terminal state).
pub fn done_count(s: &pb::Sweep) -> u64 {
    pb::TrialState::ALL.iter().filter(|st| st.is_terminal()).filter_map(|st| s.counts.get(st.name())).sum()
}

pub fn submitted_json(r: &pb::SubmitSweepResponse) -> Value {
    json!({"sweep_id": r.sweep_id, "created": r.created, "trials_total": r.trials_total, "trials_added": r.trials_added})
}

pub fn validated_json(spec: &sweep_file::SweepSpec, trials: &[sweep_file::Trial]) -> Value {
    json!({
        "name": spec.name(),
        "method": spec.method().as_str(),
        "count": trials.len(),
        "trials": trials.iter().map(|t| json!({"params": t.params, "config": t.config, "hash": t.hash})).collect::<Vec<_>>(),
    })
}

pub fn sweeps_json(sweeps: &[pb::Sweep]) -> Value {
    json!({"sweeps": sweeps.iter().map(sweep_json).collect::<Vec<_>>()})
}

pub fn trials_json(trials: &[&pb::Trial]) -> Value {
    json!({"trials": trials.iter().map(|t| trial_json(t)).collect::<Vec<_>>()})
}

/// `sweep trials -o json`: with `constraints:`, each succeeded trial says whether it
/// meets them (`feasible`).
pub fn trials_json_ruled(trials: &[&pb::Trial], rules: &crate::objectives::Rules) -> Value {
    let mut v = trials_json(trials);
    if !rules.constraints.is_empty() {
        let rows = v["trials"].as_array_mut().expect("a list");
        for (row, t) in rows.iter_mut().zip(trials) {
            let ok = t.state() == pb::TrialState::Succeeded;
            row["feasible"] = if ok { rules.feasible(t).into() } else { Value::Null };
        }
    }
    v
}

/// The best trial with its resolved config.
pub fn best_json(t: &pb::Trial) -> Value {
    let mut v = trial_json(t);
    v["config"] = serde_json::from_str(&t.config_json).unwrap_or_default();
    v
}

/// `sweep submit --estimate -o json`.
pub fn estimate_json(e: &pb::Estimate) -> Value {
    json!({
        "trials": e.trials,
        "trials_done": e.trials_done,
        "trial_minutes": e.trial_minutes,
        "trial_minutes_source": e.trial_minutes_source,
        "instance_hours": e.instance_hours,
        "wall_hours": e.wall_hours,
        "price_per_hour": e.price_per_hour,
        "price_source": e.price_source,
        "cost_usd": e.cost_usd,
        "fuse_groups": e.fuse_groups,
        "max_cost_usd": (e.max_cost_usd > 0.0).then_some(e.max_cost_usd),
        "trials_in_budget": e.trials_in_budget,
    })
}

pub fn workers_json(ws: &[pb::Worker]) -> Value {
    let one = |w: &pb::Worker| {
        json!({
            "worker_id": w.worker_id, "name": w.name, "host": w.host, "gpus": w.gpus, "slots": w.slots,
            "version": w.version, "state": w.state().name(), "running": w.running,
            "last_seen_unix_ms": w.last_seen_unix_ms,
        })
    };
    json!({"workers": ws.iter().map(one).collect::<Vec<_>>()})
}

/// Trials ranked by a metric (NaN/missing last), best first for the goal.
pub fn rank<'a>(trials: &'a [pb::Trial], metric: &str, goal: pb::Goal) -> Vec<&'a pb::Trial> {
    let mut v: Vec<&pb::Trial> = trials.iter().collect();
    v.sort_by(|a, b| {
        let (x, y) = (a.metrics.get(metric), b.metrics.get(metric));
        match (x, y) {
            (Some(x), Some(y)) => {
                let o = x.partial_cmp(y).unwrap_or(std::cmp::Ordering::Equal);
                if goal == pb::Goal::Minimize {
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

/// A sweep file whose single trial is `config`: each section as the trial resolved it,
/// the dataset with only the fields its kind uses (a config stored by an earlier
/// version, which carried every kind's fields, is read and written back the same way).
/// A cross-validated trial's file trains the deliverable: `cv: {folds: k, refit: true}`,
/// the folds again for their out-of-fold predictions (the thresholds) and best epochs,
/// then one model on all of train.
pub fn rerun_yaml(name: &str, config: &Value) -> anyhow::Result<String> {
    let config = match serde_json::from_value::<sweep_file::TrialConfig>(config.clone()) {
        Ok(mut c) => {
            if c.dataset.cv_folds > 0 {
                (c.dataset.cv_refit, c.dataset.fold) = (true, 0);
            }
            serde_json::to_value(c)?
        }
        Err(_) => config.clone(),
    };
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

fn ms_to_rfc3339(ms: i64) -> Value {
    if ms == 0 {
        return Value::Null;
    }
    chrono::DateTime::from_timestamp_millis(ms).map(|t| json!(t.to_rfc3339())).unwrap_or(Value::Null)
}

/// `sweep fleet status -o json` (and each entry of `fleet ls`).
pub fn fleet_json(f: &pb::Fleet) -> Value {
    let spec = f.spec.clone().unwrap_or_default();
    json!({
        "fleet_id": f.fleet_id,
        "state": f.state().name(),
        "provider": spec.provider,
        "instance_type": spec.instance_type,
        "spot": spec.spot,
        "region": spec.region,
        "image": spec.image,
        "desired": f.desired,
        "max_count": f.max_count,
        "max_hours": f.max_hours,
        "idle_minutes": f.idle_minutes,
        "sweeps": f.sweep_ids,
        "created": ms_to_rfc3339(f.created_unix_ms),
        "idle_since": ms_to_rfc3339(f.idle_since_unix_ms),
        "error": if f.error.is_empty() { Value::Null } else { json!(f.error) },
        "instance_hours": f.instance_hours,
        "price_per_hour": f.price_per_hour,
        "price_source": f.price_source,
        "cost_usd": f.cost_usd,
        "max_cost_usd": (f.max_cost_usd > 0.0).then_some(f.max_cost_usd),
        "budget_exhausted": ms_to_rfc3339(f.budget_exhausted_unix_ms),
        "instances": f.instances.iter().map(|i| json!({
            "instance_id": i.instance_id,
            "provider_id": i.provider_id,
            "state": i.state().name(),
            "worker_id": if i.worker_id.is_empty() { Value::Null } else { json!(i.worker_id) },
            "worker": i.worker_name,
            "trials": i.trial_ids,
            "launched": ms_to_rfc3339(i.launched_unix_ms),
            "terminated": ms_to_rfc3339(i.terminated_unix_ms),
            "end_reason": if i.end_reason.is_empty() { Value::Null } else { json!(i.end_reason) },
            "hours": i.hours,
            "cost_usd": i.cost_usd,
        })).collect::<Vec<_>>(),
    })
}
