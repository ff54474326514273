//! Store rows -> prost replies, and prost requests -> checked domain values.

use std::collections::BTreeMap;

use sweep_proto as pb;

use crate::db::{sweeps::SweepRow, trials::TrialRow, unix_ms, workers::WorkerRow};
use crate::error::{CoordinatorError, Result};
use crate::states::{FleetState, InstanceState, SweepState, TrialState, WorkerState};

/// The store's states on the wire (names match: the enums' tests check it).
macro_rules! to_wire {
    ($from:ident => $to:ident { $($v:ident),+ $(,)? }) => {
        impl From<$from> for pb::$to {
            fn from(s: $from) -> Self {
                match s { $($from::$v => pb::$to::$v),+ }
            }
        }
    };
}

to_wire!(TrialState => TrialState { Queued, Leased, Succeeded, Failed, Cancelled, Dead, Pruned });
to_wire!(WorkerState => WorkerState { Alive, Gone, Revoked, Quarantined });
to_wire!(FleetState => FleetState { Active, Down, Expired, Failed });
to_wire!(InstanceState => InstanceState { Launching, Running, Terminating, Terminated });

fn method(m: sweep_file::Method) -> pb::SearchMethod {
    match m {
        sweep_file::Method::Grid => pb::SearchMethod::Grid,
        sweep_file::Method::Random => pb::SearchMethod::Random,
        sweep_file::Method::Tpe => pb::SearchMethod::Tpe,
    }
}

fn goal(g: sweep_file::Goal) -> pb::Goal {
    match g {
        sweep_file::Goal::Maximize => pb::Goal::Maximize,
        sweep_file::Goal::Minimize => pb::Goal::Minimize,
    }
}

/// Most metrics one progress or completion report may carry.
pub const MAX_METRICS: usize = 512;
const MAX_METRIC_NAME: usize = 128;

pub fn flat_metrics(v: Option<&serde_json::Value>) -> std::collections::HashMap<String, f64> {
    v.and_then(|v| v.as_object())
        .map(|o| o.iter().filter_map(|(k, v)| v.as_f64().map(|f| (k.clone(), f))).collect())
        .unwrap_or_default()
}

pub fn trial(t: TrialRow) -> pb::Trial {
    pb::Trial {
        trial_id: t.id.to_string(),
        sweep_id: t.sweep_id.to_string(),
        state: pb::TrialState::from(t.state).into(),
        attempt: t.attempt as u32,
        params_json: t.params,
        config_json: t.config,
        metrics: flat_metrics(t.metrics.as_ref().or(t.latest.as_ref())),
        error: t.error.unwrap_or_default(),
        worker: t.worker.unwrap_or_default(),
        epoch: t.epoch as u32,
        objective: t.objective.unwrap_or(0.0),
        has_objective: t.objective.is_some(),
        lost_count: t.lost_count as u32,
        error_count: t.error_count as u32,
        updated_unix_ms: unix_ms(t.updated_at),
        model_sha256: t.model_blob.unwrap_or_default(),
        preempted_count: t.preempted_count as u32,
        // Set by the client service where it prices trials (`costs`).
        cost_usd: 0.0,
        spent_to_reach_usd: 0.0,
    }
}

pub fn sweep(s: SweepRow, counts: BTreeMap<TrialState, u64>) -> pb::Sweep {
    let total = counts.values().sum();
    let open = counts.iter().any(|(state, n)| !state.is_terminal() && *n > 0);
    let state = match s.state {
        SweepState::Cancelled => pb::SweepState::Cancelled,
        SweepState::Running if open && s.budget_exhausted_at.is_some() => pb::SweepState::BudgetExhausted,
        SweepState::Running if open => pb::SweepState::Running,
        SweepState::Running => pb::SweepState::Finished,
    };
    pb::Sweep {
        sweep_id: s.id.to_string(),
        name: s.name,
        method: method(s.method).into(),
        metric_name: s.metric_name,
        metric_goal: goal(s.metric_goal).into(),
        state: state.into(),
        created_unix_ms: unix_ms(s.created_at),
        total,
        counts: counts.into_iter().map(|(state, n)| (state.as_str().to_string(), n)).collect(),
        spec_yaml: s.spec_yaml,
        data_blobs: s.data_blobs.0.into_iter().collect(),
        cost_usd: 0.0, // set by the client service (`costs`)
        max_cost_usd: s.max_cost_usd.unwrap_or(0.0),
    }
}

pub fn worker(w: WorkerRow) -> pb::Worker {
    pb::Worker {
        worker_id: w.id.to_string(),
        name: w.name,
        host: w.host,
        gpus: serde_json::from_value(w.gpus).unwrap_or_default(),
        slots: w.slots as u32,
        version: w.version,
        last_seen_unix_ms: unix_ms(w.last_seen_at),
        state: pb::WorkerState::from(w.state).into(),
        running: w.running as u32,
    }
}

/// A (trial, attempt) reference from a worker.
pub fn trial_ref(r: Option<&pb::TrialRef>) -> Result<(uuid::Uuid, i32)> {
    let r = r.ok_or_else(|| CoordinatorError::InvalidArgument("trial: missing".into()))?;
    let id = super::parse_id("trial.trial_id", &r.trial_id)?;
    let attempt = i32::try_from(r.attempt).ok().filter(|a| *a > 0).ok_or_else(|| {
        CoordinatorError::InvalidArgument(format!("trial.attempt: {} is not a valid attempt", r.attempt))
    })?;
    Ok((id, attempt))
}

/// Metrics from a worker: bounded in count and name length; NaN and infinities are
/// refused (a NaN objective would sort anywhere).
pub fn metrics(m: &std::collections::HashMap<String, f64>) -> Result<BTreeMap<String, f64>> {
    if m.len() > MAX_METRICS {
        return Err(CoordinatorError::ResourceExhausted(format!(
            "metrics: {} entries, at most {MAX_METRICS}",
            m.len()
        )));
    }
    let mut out = BTreeMap::new();
    for (k, v) in m {
        if k.is_empty() || k.len() > MAX_METRIC_NAME {
            return Err(CoordinatorError::InvalidArgument(format!(
                "metrics: name of {} bytes (1 to {MAX_METRIC_NAME})",
                k.len()
            )));
        }
        if !v.is_finite() {
            return Err(CoordinatorError::InvalidArgument(format!("metrics.{k}: {v} is not finite")));
        }
        out.insert(k.clone(), *v);
    }
    Ok(out)
}

#[cfg(test)]
mod wire_tests {
    use super::*;

    /// The wire enums name every state as the store does, and agree on which end a trial.
    #[test]
    fn wire_names_and_terminal_states_match_the_store() {
        for s in TrialState::ALL {
            assert_eq!(pb::TrialState::from(*s).name(), s.as_str());
            assert_eq!(pb::TrialState::from(*s).is_terminal(), s.is_terminal());
        }
        for s in WorkerState::ALL {
            assert_eq!(pb::WorkerState::from(*s).name(), s.as_str());
        }
        for s in FleetState::ALL {
            assert_eq!(pb::FleetState::from(*s).name(), s.as_str());
        }
        for s in InstanceState::ALL {
            assert_eq!(pb::InstanceState::from(*s).name(), s.as_str());
            assert_eq!(pb::InstanceState::from(*s).is_live(), s.is_live());
        }
        for m in [sweep_file::Method::Grid, sweep_file::Method::Random, sweep_file::Method::Tpe] {
            assert_eq!(method(m).name(), m.as_str());
        }
        for g in [sweep_file::Goal::Maximize, sweep_file::Goal::Minimize] {
            assert_eq!(goal(g).name(), g.as_str());
        }
    }
}
