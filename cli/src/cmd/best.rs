//! `sweep best ID`: the best trial, how sure the ranking is (configurations by mean over
//! their replicas, the winner tested against the runner-up), and a sweep file that
//! re-runs the best config. `sweep local` ends with the same.

use sweep_proto as pb;

use crate::client::{status_error, sweep_and_trials, Client, Conn};
use crate::output::{self, Format};
use crate::replicas;

#[derive(clap::Args)]
pub struct Args {
    sweep_id: String,
}

pub async fn run(a: Args, conn: &Conn, fmt: Format) -> anyhow::Result<()> {
    let mut c = conn.connect().await?;
    let (sweep, trials) = sweep_and_trials(&mut c, &a.sweep_id, "best").await?;
    show(&mut c, &sweep, &trials, fmt).await
}

/// The winner of `sweep`: by mean over replicas when configurations have them, with the
/// verdict of the paired tests; then its best replica and a file that re-runs it.
pub async fn show(c: &mut Client, sweep: &pb::Sweep, trials: &[pb::Trial], fmt: Format) -> anyhow::Result<()> {
    let configs = replicas::configurations(sweep, trials);
    let p = replicas::versus_winner(&configs);
    let verdict = replicas::verdict_json(&configs, &p);
    // The winning configuration's best replica; the coordinator's answer (or its error)
    // when nothing has succeeded yet.
    let t = match configs.first() {
        Some(winner) => winner.best_replica(sweep).clone(),
        None => c
            .best_trial(pb::BestTrialRequest { sweep_id: sweep.sweep_id.clone() })
            .await
            .map_err(|s| status_error("best", s))?
            .into_inner(),
    };
    match fmt {
        Format::Json => {
            let mut v = output::best_json(&t);
            if let (Some(v), Some(stats)) = (v.as_object_mut(), verdict.as_object()) {
                v.extend(stats.clone());
            }
            output::print_json(&v)
        }
        Format::Table => {
            output::print_configurations(sweep, &configs, &p, false);
            eprintln!("{}", verdict["verdict"].as_str().unwrap_or_default());
            output::print_best(sweep, configs.first().filter(|w| w.summary.n > 1), &t)?
        }
    }
    Ok(())
}
