//! `EstimateSweep`: what a sweep file would cost, before anything is stored or launched.
//! Trials to run are the file's cells the sweep (by name) does not have yet, plus its
//! queued and running ones; a trial's time is given, or measured as the mean lease time
//! of the sweep's succeeded attempts; the price is given, or the on-demand table's for
//! the instance type. Boot and idle time are not in it (they are the fleet's).

use std::collections::{BTreeSet, HashSet};

use sweep_proto as pb;

use super::AppState;
use crate::error::{CoordinatorError, Result};
use crate::fleet::{prices, FleetSpec, ProviderKind};
use crate::states::TrialState;

fn invalid(msg: impl Into<String>) -> CoordinatorError {
    CoordinatorError::InvalidArgument(msg.into())
}

/// What the store already knows of a sweep of this name: its cells' hashes with whether
/// each has ended, and its succeeded attempts' mean minutes and count.
async fn known(state: &AppState, name: &str) -> Result<(Vec<(String, bool)>, Option<(f64, i64)>)> {
    let cells: Vec<(String, TrialState)> = sqlx::query_as(
        "SELECT t.params_hash, t.state FROM trials t JOIN sweeps s ON s.id = t.sweep_id WHERE s.name = $1",
    )
    .bind(name)
    .fetch_all(&state.db)
    .await?;
    let measured: (Option<f64>, i64) = sqlx::query_as(
        "SELECT avg(extract(epoch FROM a.ended_at - a.started_at))::float8 / 60, count(*)
         FROM trial_attempts a JOIN trials t ON t.id = a.trial_id JOIN sweeps s ON s.id = t.sweep_id
         WHERE s.name = $1 AND a.outcome = 'succeeded' AND a.ended_at IS NOT NULL",
    )
    .bind(name)
    .fetch_one(&state.db)
    .await?;
    let cells = cells.into_iter().map(|(h, s)| (h, s.is_terminal())).collect();
    Ok((cells, measured.0.map(|m| (m, measured.1))))
}

pub async fn estimate(state: &AppState, r: pb::EstimateSweepRequest) -> Result<pb::Estimate> {
    if r.spec_yaml.len() > super::client::MAX_SPEC_BYTES {
        return Err(CoordinatorError::ResourceExhausted("spec_yaml: too large".into()));
    }
    for (field, v) in [("trial_minutes", r.trial_minutes), ("price_per_hour", r.price_per_hour)] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(invalid(format!("{field}: {v} is out of range (0 or more)")));
        }
    }
    let limits = sweep_file::Limits { max_trials: state.settings.max_trials };
    let (yaml, name) = (r.spec_yaml.clone(), r.source_name.clone());
    let (spec, trials) = tokio::task::spawn_blocking(move || sweep_file::parse_and_expand(&yaml, &name, limits))
        .await
        .map_err(|e| anyhow::anyhow!("expansion task: {e}"))?
        .map_err(|e| invalid(e.to_string()))?;
    let (cells, measured) = known(state, spec.name()).await?;
    let ended: HashSet<&str> = cells.iter().filter(|c| c.1).map(|(h, _)| h.as_str()).collect();
    let to_run: Vec<&sweep_file::Trial> = trials.iter().filter(|t| !ended.contains(t.hash.as_str())).collect();
    let open_elsewhere = cells.iter().filter(|(h, done)| !done && !trials.iter().any(|t| &t.hash == h)).count();
    let n = (to_run.len() + open_elsewhere) as u64;
    let (minutes, minutes_source) = match (r.trial_minutes, measured) {
        (m, _) if m > 0.0 => (m, "given (--trial-minutes)".to_string()),
        (_, Some((m, k))) => (m, format!("measured: the mean of {k} succeeded trial(s) of sweep `{}`", spec.name())),
        _ => {
            return Err(CoordinatorError::FailedPrecondition(format!(
                "no trial of sweep `{}` has finished yet to measure: give --trial-minutes",
                spec.name()
            )))
        }
    };
    let price = if r.price_per_hour > 0.0 || !r.instance_type.is_empty() {
        let fleet =
            FleetSpec { provider: ProviderKind::Ec2, instance_type: r.instance_type.clone(), ..Default::default() };
        prices::price(&fleet, r.price_per_hour, None).map_err(invalid)?
    } else {
        return Err(invalid("give --instance-type (priced from the on-demand table) or --price-per-hour"));
    };
    let (instances, slots) = (r.instances.max(1), r.slots.max(1));
    let hours_each = minutes / 60.0 / f64::from(slots);
    let instance_hours = n as f64 * hours_each;
    let max = spec.budget().map_or(0.0, |b| b.max_cost_usd);
    let per_trial = hours_each * price.usd_per_hour;
    let in_budget = if max > 0.0 && per_trial > 0.0 { ((max / per_trial).floor() as u64).min(n) } else { n };
    let groups: BTreeSet<String> =
        to_run.iter().map(|t| sweep_file::FuseKey::of(&t.config).as_str().to_string()).collect();
    Ok(pb::Estimate {
        trials: n,
        trials_done: (trials.len() - to_run.len()) as u64,
        trial_minutes: minutes,
        trial_minutes_source: minutes_source,
        instance_hours,
        wall_hours: instance_hours / f64::from(instances),
        price_per_hour: price.usd_per_hour,
        price_source: price.source,
        cost_usd: instance_hours * price.usd_per_hour,
        fuse_groups: groups.len() as u64,
        max_cost_usd: max,
        trials_in_budget: in_budget,
    })
}
