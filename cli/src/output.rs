//! Tables for people, and every JSON shape scripts see (`-o json`), in one place.

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

pub fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("json"));
}

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

/// The best trial with its resolved config.
pub fn best_json(t: &pb::Trial) -> Value {
    let mut v = trial_json(t);
    v["config"] = serde_json::from_str(&t.config_json).unwrap_or_default();
    v
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

pub fn print_sweeps(sweeps: &[pb::Sweep]) {
    let mut t = table(&["sweep", "name", "state", "objective", "trials", "progress"]);
    for s in sweeps {
        t.add_row(vec![
            s.sweep_id.clone(),
            s.name.clone(),
            s.state().name().to_string(),
            format!("{} {}", s.metric_goal().name(), s.metric_name),
            s.total.to_string(),
            counts_line(s),
        ]);
    }
    println!("{t}");
}

pub fn print_workers(ws: &[pb::Worker]) {
    let mut t = table(&["worker", "name", "host", "gpus", "slots", "running", "state"]);
    for w in ws {
        t.add_row(vec![
            w.worker_id[..8].to_string(),
            w.name.clone(),
            w.host.clone(),
            if w.gpus.is_empty() { "cpu".into() } else { w.gpus.join(",") },
            w.slots.to_string(),
            w.running.to_string(),
            w.state().name().to_string(),
        ]);
    }
    println!("{t}");
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

/// The trials table (people); a succeeded trial that misses the sweep's constraints
/// shows as `succeeded (infeasible)`.
pub fn print_trials(sweep: &pb::Sweep, ordered: &[&pb::Trial], rules: &crate::objectives::Rules) {
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
            match tr.state() {
                pb::TrialState::Succeeded if !rules.feasible(tr) => "succeeded (infeasible)".to_string(),
                state => state.name().to_string(),
            },
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

/// Configurations ranked by mean objective over their replicas, with the 95% interval,
/// the spread and the Holm-adjusted p-value against the winner.
/// The configurations table; unless `always`, only when some configuration has replicas
/// (without them the trial table says it all).
pub fn print_configurations(
    sweep: &pb::Sweep,
    configs: &[crate::replicas::Configuration],
    p: &[Option<f64>],
    always: bool,
) {
    if !always && configs.iter().all(|c| c.summary.n < 2) {
        return;
    }
    let mut t = table(&["#", "configuration", &format!("mean {}", sweep.metric_name), "95% CI", "sd", "n", "p vs #1"]);
    for (i, c) in configs.iter().enumerate() {
        let ci = c.summary.ci95.map(|h| format!("± {h:.4}")).unwrap_or_else(|| "-".into());
        let p = if i == 0 { "-".into() } else { p[i - 1].map(|p| format!("{p:.3}")).unwrap_or_else(|| "-".into()) };
        t.add_row(vec![
            (i + 1).to_string(),
            params_inline(&c.params),
            format!("{:.4}", c.summary.mean),
            ci,
            format!("{:.4}", c.summary.sd),
            c.summary.n.to_string(),
            p,
        ]);
    }
    println!("{t}");
}

/// The best trial (with replicas: the best configuration by mean and its interval, then
/// its best replica), its metrics, and a sweep file that re-runs its config.
pub fn print_best(
    sweep: &pb::Sweep,
    configuration: Option<&crate::replicas::Configuration>,
    t: &pb::Trial,
) -> anyhow::Result<()> {
    let config: Value = serde_json::from_str(&t.config_json).unwrap_or_default();
    let objective = fmt_metric(t.metrics.get(&sweep.metric_name));
    match configuration {
        Some(c) => {
            let ci = c.summary.ci95.map(|h| format!(" ± {h:.4} (95% CI)")).unwrap_or_default();
            let (n, folds) = (c.summary.n, config["dataset"]["cv"]["folds"].as_u64().unwrap_or(0) as usize);
            let runs = match folds {
                0 => format!("{n} replicas"),
                k if n > k => format!("{n} runs ({k}-fold cross-validation x {} replicas)", n / k),
                k => format!("{n} runs ({k}-fold cross-validation)"),
            };
            println!(
                "best configuration of {}: mean {} = {:.4}{ci} over {runs}  [{}]",
                sweep.name,
                sweep.metric_name,
                c.summary.mean,
                params_inline(&c.params)
            );
            let run = if folds > 0 { "run" } else { "replica" };
            println!("its best {run}: trial {}  {} = {objective}", t.trial_id, sweep.metric_name);
        }
        None => println!(
            "best of {}: trial {}  {} = {objective}  [{}]",
            sweep.name,
            t.trial_id,
            sweep.metric_name,
            params_inline(&params(t))
        ),
    }
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
    if config["dataset"].get("cv").is_some() {
        println!("# cross-validated: the file below trains the deliverable, one model on all of train");
        println!("# (less val_fraction for early stopping and thresholds); `sweep model get` gives a fold's model");
    }
    println!("# a sweep file that re-runs this configuration:");
    print!("{}", rerun_yaml(&sweep.name, &config)?);
    Ok(())
}

/// A sweep file whose single trial is `config`: each section as the trial resolved it,
/// the dataset with only the fields its kind uses (a config stored by an earlier
/// version, which carried every kind's fields, is read and written back the same way).
/// A cross-validated trial's file drops the folds: it trains the deliverable, one model
/// on all of train (less `val_fraction` for early stopping and thresholds).
pub fn rerun_yaml(name: &str, config: &Value) -> anyhow::Result<String> {
    let config = match serde_json::from_value::<sweep_file::TrialConfig>(config.clone()) {
        Ok(mut c) => {
            (c.dataset.cv_folds, c.dataset.fold) = (0, 0);
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
        })).collect::<Vec<_>>(),
    })
}

fn live(f: &pb::Fleet) -> usize {
    f.instances.iter().filter(|i| i.state().is_live()).count()
}

pub fn print_fleets(fleets: &[pb::Fleet]) {
    let mut t = table(&["fleet", "provider", "type", "spot", "state", "live/desired", "instance-h", "error"]);
    for f in fleets {
        let spec = f.spec.clone().unwrap_or_default();
        t.add_row(vec![
            f.fleet_id[..8].to_string(),
            spec.provider,
            spec.instance_type,
            if spec.spot { "spot".into() } else { "on-demand".into() },
            f.state().name().to_string(),
            format!("{}/{}", live(f), f.desired),
            format!("{:.2}", f.instance_hours),
            f.error.clone(),
        ]);
    }
    println!("{t}");
}

/// Hours as `1h05m` (or `42s` under a minute).
fn uptime(hours: f64) -> String {
    let secs = (hours * 3600.0).round() as u64;
    if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}h{:02}m", secs / 3600, secs / 60 % 60)
    }
}

pub fn print_fleet(f: &pb::Fleet) {
    let spec = f.spec.clone().unwrap_or_default();
    println!(
        "fleet {}  {} {}{}  {}  {}/{} live  {:.2} instance-hours",
        f.fleet_id,
        spec.provider,
        spec.instance_type,
        if spec.spot { " spot" } else { "" },
        f.state().name(),
        live(f),
        f.desired,
        f.instance_hours
    );
    if !f.error.is_empty() {
        println!("last error: {}", f.error);
    }
    let mut t = table(&["instance", "provider id", "state", "worker", "trials", "uptime", "ended because"]);
    for i in &f.instances {
        t.add_row(vec![
            i.instance_id[..8].to_string(),
            i.provider_id.clone(),
            i.state().name().to_string(),
            i.worker_name.clone(),
            i.trial_ids.iter().map(|t| &t[..8]).collect::<Vec<_>>().join(","),
            uptime(i.hours),
            i.end_reason.clone(),
        ]);
    }
    println!("{t}");
}
