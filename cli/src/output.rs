//! Tables for people; the JSON shapes scripts see (`-o json`) are [`sweep_view::json`]
//! (the dashboard's API prints the same).

use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde_json::Value;
use sweep_proto as pb;
pub use sweep_view::json::*;

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

pub fn print_sweeps(sweeps: &[pb::Sweep]) {
    let mut t = table(&["sweep", "name", "state", "objective", "trials", "progress", "USD"]);
    for s in sweeps {
        t.add_row(vec![
            s.sweep_id.clone(),
            s.name.clone(),
            s.state().name().to_string(),
            format!("{} {}", s.metric_goal().name(), s.metric_name),
            s.total.to_string(),
            counts_line(s),
            spent(s.cost_usd, s.max_cost_usd),
        ]);
    }
    println!("{t}");
}

/// What is spent, and of what budget when there is one: `1.20 of 5.00`.
fn spent(cost_usd: f64, max_cost_usd: f64) -> String {
    if max_cost_usd > 0.0 {
        format!("{cost_usd:.2} of {max_cost_usd:.2}")
    } else {
        format!("{cost_usd:.2}")
    }
}

pub fn print_estimate(e: &pb::Estimate) {
    println!(
        "{} trial(s) to run{}; {:.1} min each ({})",
        e.trials,
        if e.trials_done > 0 {
            format!(" ({} of the file's cells already done)", e.trials_done)
        } else {
            String::new()
        },
        e.trial_minutes,
        e.trial_minutes_source
    );
    println!(
        "{:.2} instance-hours, {:.2} h of wall time; ${:.2} at ${}/instance-hour ({}); boot and idle time not included",
        e.instance_hours, e.wall_hours, e.cost_usd, e.price_per_hour, e.price_source
    );
    if e.max_cost_usd > 0.0 {
        let fits =
            if e.trials_in_budget >= e.trials { "all of them".to_string() } else { e.trials_in_budget.to_string() };
        println!("budget ${:.2}: pays for {fits}", e.max_cost_usd);
    }
    println!(
        "fusing: the trials form {} stack group(s) (`sweep-worker run --fuse K` trains a group's trials as one model; \
         what that saves depends on the GPU: bench/gpu-all.sh measures it)",
        e.fuse_groups
    );
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
    let cv = &config["dataset"]["cv"];
    let refit = cv["refit"].as_bool() == Some(true);
    match configuration {
        Some(c) => {
            let ci = c.summary.ci95.map(|h| format!(" ± {h:.4} (95% CI)")).unwrap_or_default();
            let folds = if refit { 0 } else { cv["folds"].as_u64().unwrap_or(0) as usize };
            let n = c.summary.n;
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
    if sweep.cost_usd > 0.0 {
        let reach = if t.spent_to_reach_usd > 0.0 {
            format!(", ${:.2} of it by the time this trial finished", t.spent_to_reach_usd)
        } else {
            String::new()
        };
        println!(
            "cost: the sweep has spent ${:.2} on fleet instances{reach}; this trial ${:.2}",
            sweep.cost_usd, t.cost_usd
        );
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
    print_cv_note(refit, cv.get("folds").is_some(), t);
    println!("# a sweep file that re-runs this configuration:");
    print!("{}", rerun_yaml(&sweep.name, &config)?);
    Ok(())
}

/// What a cross-validated trial's model is: a refit's, or one fold's (the file below then
/// trains the deliverable).
fn print_cv_note(refit: bool, folds: bool, t: &pb::Trial) {
    if refit {
        let epochs = t.metrics.get("cv.refit_epochs").map_or(String::from("?"), |e| format!("{e}"));
        println!("# a refit trial: val.* are its folds' out-of-fold predictions, where its thresholds were tuned;");
        println!(
            "# its model trained {epochs} epochs (the folds' mean best) on all of train: `sweep model get` gives it"
        );
    } else if folds {
        println!("# cross-validated: the file below trains the deliverable (refit: true): the folds again, thresholds");
        println!("# tuned on their out-of-fold predictions, then one model on all of train for their mean best epoch;");
        println!("# `sweep model get` of this trial gives its fold's model");
    }
}

fn live(f: &pb::Fleet) -> usize {
    f.instances.iter().filter(|i| i.state().is_live()).count()
}

pub fn print_fleets(fleets: &[pb::Fleet]) {
    let mut t = table(&["fleet", "provider", "type", "spot", "state", "live/desired", "instance-h", "USD", "error"]);
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
            spent(f.cost_usd, f.max_cost_usd),
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

/// `fleet up --dry-run`: what the fleet would cost.
pub fn print_plan(f: &pb::Fleet) {
    let spec = f.spec.clone().unwrap_or_default();
    let per_hour = f64::from(f.desired) * f.price_per_hour;
    println!(
        "dry run, nothing launched: {} x {} ({}{}) at ${}/instance-hour ({})",
        f.desired,
        spec.instance_type,
        spec.provider,
        if spec.spot { ", spot" } else { "" },
        f.price_per_hour,
        f.price_source
    );
    println!(
        "${per_hour:.2} per hour while all run; at most ${:.2} by --max-hours {} (it scales to zero after \
         --idle-minutes {} without work)",
        per_hour * f.max_hours,
        f.max_hours,
        f.idle_minutes
    );
    if f.max_cost_usd > 0.0 && per_hour > 0.0 {
        println!("budget ${:.2}: about {:.2} h at the full count", f.max_cost_usd, f.max_cost_usd / per_hour);
    }
}

pub fn print_fleet(f: &pb::Fleet) {
    let spec = f.spec.clone().unwrap_or_default();
    println!(
        "fleet {}  {} {}{}  {}  {}/{} live  {:.2} instance-hours  ${:.2} at ${}/h ({})",
        f.fleet_id,
        spec.provider,
        spec.instance_type,
        if spec.spot { " spot" } else { "" },
        f.state().name(),
        live(f),
        f.desired,
        f.instance_hours,
        f.cost_usd,
        f.price_per_hour,
        f.price_source
    );
    if f.max_cost_usd > 0.0 {
        let state = if f.budget_exhausted_unix_ms > 0 { "spent: scaled to zero" } else { "not reached" };
        println!("budget: ${:.2} ({state})", f.max_cost_usd);
    }
    if !f.error.is_empty() {
        println!("last error: {}", f.error);
    }
    let mut t = table(&["instance", "provider id", "state", "worker", "trials", "uptime", "USD", "ended because"]);
    for i in &f.instances {
        t.add_row(vec![
            i.instance_id[..8].to_string(),
            i.provider_id.clone(),
            i.state().name().to_string(),
            i.worker_name.clone(),
            i.trial_ids.iter().map(|t| &t[..8]).collect::<Vec<_>>().join(","),
            uptime(i.hours),
            format!("{:.2}", i.cost_usd),
            i.end_reason.clone(),
        ]);
    }
    println!("{t}");
}
