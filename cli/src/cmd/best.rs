//! `sweep best ID`: the best trial, how sure the ranking is (configurations by mean over
//! their replicas, the winner tested against the runner-up), and a sweep file that
//! re-runs the best config. `sweep local` ends with the same.

use serde_json::{json, Value};
use sweep_proto as pb;

use crate::client::{status_error, sweep_and_trials, Client, Conn};
use crate::objectives::{self, Rules};
use crate::output::{self, Format};
use crate::replicas::{self, Configuration};

#[derive(clap::Args)]
pub struct Args {
    sweep_id: String,
}

pub async fn run(a: Args, conn: &Conn, fmt: Format) -> anyhow::Result<()> {
    let mut c = conn.connect().await?;
    let (sweep, trials) = sweep_and_trials(&mut c, &a.sweep_id, "best").await?;
    show(&mut c, &sweep, &trials, &Rules::of(&sweep), fmt).await
}

/// The winner of `sweep`: by mean over replicas when configurations have them, with the
/// verdict of the paired tests; then its best replica and a file that re-runs it. With
/// constraints, only configurations meeting them rank; with several objectives, the
/// Pareto front comes first (the winner is then the best on the primary objective);
/// when a `sweep confirm` of it exists, how the winner held up on fresh seeds.
pub async fn show(
    c: &mut Client,
    sweep: &pb::Sweep,
    trials: &[pb::Trial],
    rules: &Rules,
    fmt: Format,
) -> anyhow::Result<()> {
    let configs = replicas::configurations(sweep, trials, rules);
    let succeeded = trials.iter().filter(|t| t.state() == pb::TrialState::Succeeded);
    let infeasible = succeeded.filter(|t| !rules.feasible(t)).count();
    let front = (rules.objectives.len() > 1).then(|| objectives::front(rules, &configs));
    if configs.is_empty() && infeasible > 0 {
        let msg = format!(
            "no succeeded trial of {} meets its constraints ({}): {infeasible} miss them",
            sweep.name,
            rules.constraints_text()
        );
        match fmt {
            Format::Json => output::print_json(&json!({"best": null, "infeasible_trials": infeasible, "message": msg})),
            Format::Table => println!("{msg}"),
        }
        return Ok(());
    }
    let held_up = match configs.first() {
        Some(w) => confirmation(c, sweep, w).await?,
        None => None,
    };
    let p = replicas::versus_winner(&configs);
    let verdict = replicas::verdict_json(&configs, &p);
    // The winning configuration's best replica; the coordinator's answer (or its error)
    // when nothing has succeeded yet.
    // Asked of the coordinator either way: it adds what the sweep had spent by then.
    let trial_id = configs.first().map(|w| w.best_replica(sweep).trial_id.clone()).unwrap_or_default();
    let t = c
        .best_trial(pb::BestTrialRequest { sweep_id: sweep.sweep_id.clone(), trial_id })
        .await
        .map_err(|s| status_error("best", s))?
        .into_inner();
    match fmt {
        Format::Json => {
            let mut v = output::best_json(&t);
            if let (Some(v), Some(stats)) = (v.as_object_mut(), verdict.as_object()) {
                v.extend(stats.clone());
            }
            if !rules.constraints.is_empty() {
                v["constraints"] = json!(rules.constraints.iter().map(ToString::to_string).collect::<Vec<_>>());
                v["infeasible_trials"] = json!(infeasible);
            }
            if let Some(front) = &front {
                v["pareto"] = objectives::front_json(rules, &configs, front);
            }
            if let Some(h) = &held_up {
                v["confirmation"] = h.json();
            }
            output::print_json(&v)
        }
        Format::Table => {
            if infeasible > 0 {
                eprintln!(
                    "{infeasible} succeeded trial(s) miss the constraints ({}): not ranked",
                    rules.constraints_text()
                );
            }
            if let Some(front) = &front {
                objectives::print_front(rules, &configs, front);
            }
            output::print_configurations(sweep, &configs, &p, false);
            eprintln!("{}", verdict["verdict"].as_str().unwrap_or_default());
            // Before the winner: the re-run file ends the output, to be copied whole.
            if let Some(h) = &held_up {
                println!("{}", h.words(&sweep.metric_name));
            }
            output::print_best(sweep, configs.first().filter(|w| w.summary.n > 1), &t)?;
        }
    }
    Ok(())
}

/// How the winner of a search held up when `sweep confirm` re-ran it on fresh seeds.
pub struct HeldUp {
    confirm_sweep: String,
    /// The score the search selected it on (its mean over replicas, or its one trial's).
    selected: f64,
    fresh: sweep_search::stats::Summary,
}

impl HeldUp {
    fn json(&self) -> Value {
        json!({
            "sweep_id": self.confirm_sweep,
            "selected": self.selected,
            "fresh_mean": self.fresh.mean,
            "fresh_ci95": self.fresh.ci95,
            "fresh_n": self.fresh.n,
            "gap": self.selected - self.fresh.mean,
        })
    }

    fn words(&self, metric: &str) -> String {
        let ci = self.fresh.ci95.map(|h| format!(" ± {h:.4}")).unwrap_or_default();
        format!(
            "winner's curse: the search selected it at {metric} = {:.4}; on {} fresh seeds (confirm sweep {}) it scores {:.4}{ci}: gap {:+.4} (selected minus fresh)",
            self.selected,
            self.fresh.n,
            self.confirm_sweep,
            self.fresh.mean,
            self.selected - self.fresh.mean,
        )
    }
}

/// The winner's scores in the newest `sweep confirm` of `sweep`, if one has results for it.
async fn confirmation(c: &mut Client, sweep: &pb::Sweep, winner: &Configuration<'_>) -> anyhow::Result<Option<HeldUp>> {
    let name = super::confirm::confirm_name(sweep);
    let all = c.list_sweeps(pb::ListSweepsRequest {}).await.map_err(|s| status_error("best", s))?.into_inner();
    let Some(confirm) = all.sweeps.iter().filter(|s| s.name == name).max_by_key(|s| s.created_unix_ms) else {
        return Ok(None);
    };
    let (confirm, trials) = sweep_and_trials(c, &confirm.sweep_id, "best").await?;
    let configs = replicas::configurations(&confirm, &trials, &Rules::of(&confirm));
    Ok(configs.iter().find(|k| k.params == winner.params).map(|k| HeldUp {
        confirm_sweep: confirm.sweep_id.clone(),
        selected: winner.summary.mean,
        fresh: k.summary,
    }))
}
