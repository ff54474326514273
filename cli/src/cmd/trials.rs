//! `sweep trials ID [--sort METRIC] [--by-config]`.

use sweep_proto as pb;

use crate::client::{sweep_and_trials, Conn};
use crate::output::{self, rank, Format};

#[derive(clap::Args)]
pub struct Args {
    sweep_id: String,
    /// Rank by this metric (e.g. test.f1_micro); `metric` means the sweep's objective.
    #[arg(long)]
    sort: Option<String>,
    /// Configurations instead of trials: replicas grouped, ranked by their mean objective
    /// with a 95% interval, the spread, n and the paired test against the best.
    #[arg(long, conflicts_with = "sort")]
    by_config: bool,
}

pub async fn run(a: Args, conn: &Conn, fmt: Format) -> anyhow::Result<()> {
    let mut c = conn.connect().await?;
    let (sweep, trials) = sweep_and_trials(&mut c, &a.sweep_id, "trials").await?;
    let rules = crate::objectives::Rules::of(&sweep);
    if a.by_config {
        let configs = crate::replicas::configurations(&sweep, &trials, &rules);
        let p = crate::replicas::versus_winner(&configs);
        match fmt {
            Format::Json => {
                let v = crate::replicas::verdict_json(&configs, &p);
                output::print_json(
                    &serde_json::json!({"configurations": v.get("configurations").cloned().unwrap_or_default()}),
                )
            }
            Format::Table => output::print_configurations(&sweep, &configs, &p, true),
        }
        return Ok(());
    }
    let ordered = match a.sort.as_deref() {
        None => trials.iter().collect(),
        Some("metric") => rank(&trials, &sweep.metric_name, sweep.metric_goal()),
        Some(m) => {
            // Losses go down; every other metric (F1) goes up, unless it is the objective.
            let goal = if m.ends_with("loss") {
                pb::Goal::Minimize
            } else if m == sweep.metric_name {
                sweep.metric_goal()
            } else {
                pb::Goal::Maximize
            };
            rank(&trials, m, goal)
        }
    };
    match fmt {
        Format::Json => output::print_json(&output::trials_json_ruled(&ordered, &rules)),
        Format::Table => output::print_trials(&sweep, &ordered, &rules),
    }
    Ok(())
}
