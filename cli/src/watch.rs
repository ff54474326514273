//! `sweep watch`: follows the coordinator's event stream. On a terminal it redraws an
//! overall bar, one line per running trial and the current top 5 in place; otherwise
//! it prints one plain line per change.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sweep_proto as pb;

use crate::client::{status_error, Client};
use crate::output::{fmt_metric, params, params_inline, rank};

pub async fn watch(client: &mut Client, sweep_id: &str) -> anyhow::Result<pb::Sweep> {
    let mut stream = client
        .watch_sweep(pb::WatchSweepRequest { sweep_id: sweep_id.to_string() })
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
    while let Some(ev) = stream.message().await.map_err(|s| status_error("watch", s))? {
        let Some(sweep) = ev.sweep else { continue };
        for t in ev.changed {
            trials.insert(t.trial_id.clone(), t);
        }
        let done = crate::output::done_count(&sweep);
        if tty {
            bar.set_prefix(sweep.name.clone());
            bar.set_length(sweep.total);
            bar.set_position(done);
            bar.set_message(crate::output::counts_line(&sweep));
            detail.set_message(screen(&trials, &sweep));
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

fn screen(trials: &BTreeMap<String, pb::Trial>, sweep: &pb::Sweep) -> String {
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
    let top = rank(&all, &sweep.metric_name, &sweep.metric_goal);
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
