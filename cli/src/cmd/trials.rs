//! `sweep trials ID [--sort METRIC]`.

use crate::client::{sweep_and_trials, Conn};
use crate::output::{self, rank, Format};

#[derive(clap::Args)]
pub struct Args {
    sweep_id: String,
    /// Rank by this metric (e.g. test.f1_micro); `metric` means the sweep's objective.
    #[arg(long)]
    sort: Option<String>,
}

pub async fn run(a: Args, conn: &Conn, fmt: Format) -> anyhow::Result<()> {
    let mut c = conn.connect().await?;
    let (sweep, trials) = sweep_and_trials(&mut c, &a.sweep_id, "trials").await?;
    let ordered = match a.sort.as_deref() {
        None => trials.iter().collect(),
        Some("metric") => rank(&trials, &sweep.metric_name, &sweep.metric_goal),
        Some(m) => {
            // Losses go down; every other metric (F1) goes up, unless it is the objective.
            let goal = if m.ends_with("loss") {
                "minimize"
            } else if m == sweep.metric_name {
                sweep.metric_goal.as_str()
            } else {
                "maximize"
            };
            rank(&trials, m, goal)
        }
    };
    match fmt {
        Format::Json => output::print_json(&output::trials_json(&ordered)),
        Format::Table => output::print_trials(&sweep, &ordered),
    }
    Ok(())
}
