//! `sweep watch`: follows the coordinator's event stream. On a terminal it redraws an
//! overall bar, one line per running trial and the current top 5 in place; otherwise
//! it prints one plain line per change.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sweep_proto as pb;

use crate::client::{status_error, Client};
use crate::objectives::Rules;
use crate::output::{fmt_metric, params, params_inline, rank};

pub async fn watch(client: &mut Client, sweep_id: &str) -> anyhow::Result<pb::Sweep> {
    let mut stream = client
        .watch_sweep(pb::WatchSweepRequest { sweep_id: sweep_id.to_string(), omit_config: false })
        .await
        .map_err(|s| status_error("watch", s))?
        .into_inner();
    let tty = std::io::stderr().is_terminal();
    let multi =
        MultiProgress::with_draw_target(if tty { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() });
    let bar = multi.add(ProgressBar::new(0));
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} trials  {elapsed} elapsed, eta {eta}  {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    let detail = multi.add(ProgressBar::new_spinner());
    detail.set_style(ProgressStyle::with_template("{msg}").expect("template"));
    let mut trials: BTreeMap<String, pb::Trial> = BTreeMap::new();
    let mut last_state: BTreeMap<String, (pb::TrialState, u32)> = BTreeMap::new();
    let mut last = None;
    // What ranks trials (constraints, objectives): from the sweep's file, read once.
    let mut rules = None;
    let mut told_spent = false;
    while let Some(ev) = stream.message().await.map_err(|s| status_error("watch", s))? {
        let Some(sweep) = ev.sweep else { continue };
        let rules = rules.get_or_insert_with(|| Rules::of(&sweep));
        for t in ev.changed {
            trials.insert(t.trial_id.clone(), t);
        }
        let done = crate::output::done_count(&sweep);
        if tty {
            bar.set_prefix(sweep.name.clone());
            bar.set_length(sweep.total);
            bar.set_position(done);
            bar.set_message(crate::output::counts_line(&sweep));
            detail.set_message(screen(&trials, &sweep, rules));
        } else {
            for t in trials.values() {
                let key = (t.state(), t.epoch);
                if last_state.get(&t.trial_id) != Some(&key) {
                    println!(
                        "{} trial {} {} epoch {} {} {} [{}]",
                        sweep.name,
                        &t.trial_id[..8],
                        t.state().name(),
                        t.epoch,
                        sweep.metric_name,
                        fmt_metric(t.metrics.get(&sweep.metric_name)),
                        params_inline(&params(t))
                    );
                    last_state.insert(t.trial_id.clone(), key);
                }
            }
            println!("{} progress {done}/{} ({})", sweep.name, sweep.total, crate::output::counts_line(&sweep));
        }
        let spent = sweep.state() == pb::SweepState::BudgetExhausted;
        if spent && !told_spent {
            let m = format!(
                "{}: budget spent ({:.2} of {:.2} USD): running trials handed back, queued ones wait; \
                 `sweep budget {} USD` raises it",
                sweep.name, sweep.cost_usd, sweep.max_cost_usd, sweep.sweep_id
            );
            if tty {
                multi.println(m)?;
            } else {
                println!("{m}");
            }
        }
        told_spent = spent;
        let finished = ev.finished;
        last = Some(sweep);
        if finished {
            break;
        }
    }
    bar.finish();
    detail.finish();
    last.ok_or_else(|| anyhow::anyhow!("watch: the stream ended before the first event"))
}

fn screen(trials: &BTreeMap<String, pb::Trial>, sweep: &pb::Sweep, rules: &Rules) -> String {
    let mut lines = Vec::new();
    for t in trials.values().filter(|t| t.state() == pb::TrialState::Leased) {
        let epochs = serde_json::from_str::<serde_json::Value>(&t.config_json)
            .ok()
            .and_then(|c| c["train"]["epochs"].as_u64())
            .unwrap_or(0);
        lines.push(format!(
            "  running {} on {:<16} epoch {}/{}  val F1 {}  {} samples/s  [{}]",
            &t.trial_id[..8],
            t.worker,
            t.epoch,
            epochs,
            fmt_metric(t.metrics.get(&sweep.metric_name)),
            t.metrics.get("samples_per_s").map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into()),
            params_inline(&params(t))
        ));
    }
    let all: Vec<pb::Trial> = trials.values().filter(|t| t.state() == pb::TrialState::Succeeded).cloned().collect();
    // With replicas the ranking is by configuration (mean over its replicas so far).
    let configs = crate::replicas::configurations(sweep, &all, rules);
    if configs.iter().any(|c| c.summary.n >= 2) {
        lines.push(format!("  top configurations by mean {}:", sweep.metric_name));
        for (i, c) in configs.iter().take(5).enumerate() {
            let ci = c.summary.ci95.map(|h| format!(" ± {h:.4}")).unwrap_or_default();
            lines.push(format!(
                "   {}. {:.4}{ci} (n={})  [{}]",
                i + 1,
                c.summary.mean,
                c.summary.n,
                params_inline(&c.params)
            ));
        }
        return lines.join("\n");
    }
    let top = rank(&all, &sweep.metric_name, sweep.metric_goal());
    if !top.is_empty() {
        lines.push(format!("  top by {}:", sweep.metric_name));
        for (i, t) in top.iter().take(5).enumerate() {
            lines.push(format!(
                "   {}. {}  {}  [{}]",
                i + 1,
                fmt_metric(t.metrics.get(&sweep.metric_name)),
                &t.trial_id[..8],
                params_inline(&params(t))
            ));
        }
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(id: &str, gamma: u32, seed: u32, f1: f64) -> pb::Trial {
        pb::Trial {
            trial_id: format!("{id}0000000"),
            state: pb::TrialState::Succeeded.into(),
            params_json: format!("{{\"loss.focal_gamma\": {gamma}, \"train.seed\": {seed}}}"),
            config_json: format!("{{\"train\": {{\"seed\": {seed}}}, \"dataset\": {{\"split_seed\": {seed}}}}}"),
            metrics: [("val.f1_micro".to_string(), f1)].into(),
            ..Default::default()
        }
    }

    #[test]
    fn with_replicas_the_screen_ranks_configurations_by_mean() {
        let sweep = pb::Sweep {
            metric_name: "val.f1_micro".into(),
            metric_goal: pb::Goal::Maximize.into(),
            ..Default::default()
        };
        // gamma 0 has the single best trial (0.9) but the lower mean.
        let ts = [trial("a", 0, 0, 0.9), trial("b", 0, 1, 0.3), trial("c", 2, 0, 0.7), trial("d", 2, 1, 0.7)];
        let map: BTreeMap<String, pb::Trial> = ts.iter().map(|t| (t.trial_id.clone(), t.clone())).collect();
        let s = screen(&map, &sweep, &Rules::of(&sweep));
        assert!(s.contains("top configurations by mean val.f1_micro"), "{s}");
        let first = s.lines().find(|l| l.trim_start().starts_with("1.")).unwrap();
        assert!(first.contains("0.7000") && first.contains("loss.focal_gamma=2") && first.contains("n=2"), "{s}");
    }
}
