//! `sweep best ID`: the best trial and a sweep file that re-runs its config.

use sweep_proto as pb;

use crate::client::{status_error, Conn};
use crate::output::{self, Format};

#[derive(clap::Args)]
pub struct Args {
    sweep_id: String,
}

pub async fn run(a: Args, conn: &Conn, fmt: Format) -> anyhow::Result<()> {
    let mut c = conn.connect().await?;
    let sweep = c
        .get_sweep(pb::GetSweepRequest { sweep_id: a.sweep_id.clone() })
        .await
        .map_err(|s| status_error("best", s))?
        .into_inner();
    let t = c
        .best_trial(pb::BestTrialRequest { sweep_id: a.sweep_id })
        .await
        .map_err(|s| status_error("best", s))?
        .into_inner();
    match fmt {
        Format::Json => output::print_json(&output::best_json(&t)),
        Format::Table => output::print_best(&sweep, &t)?,
    }
    Ok(())
}
