//! Store rows -> prost replies, and prost requests -> checked domain values.

use std::collections::BTreeMap;

use sweep_proto as pb;

use crate::db::{sweeps::SweepRow, trials::TrialRow, unix_ms, workers::WorkerRow};
use crate::error::{CoordinatorError, Result};
use crate::states::{SweepState, TrialState};

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
        params_json: t.params.to_string(),
        config_json: t.config.to_string(),
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
    }
}

pub fn sweep(s: SweepRow, counts: BTreeMap<TrialState, u64>) -> pb::Sweep {
    let total = counts.values().sum();
    let open = counts.iter().any(|(state, n)| !state.is_terminal() && *n > 0);
    let state = match s.state {
        SweepState::Cancelled => pb::SweepState::Cancelled,
        SweepState::Running if open => pb::SweepState::Running,
        SweepState::Running => pb::SweepState::Finished,
    };
    pb::Sweep {
        sweep_id: s.id.to_string(),
        name: s.name,
        method: s.method,
        metric_name: s.metric_name,
        metric_goal: s.metric_goal,
        state: state.into(),
        created_unix_ms: unix_ms(s.created_at),
        total,
        counts: counts.into_iter().map(|(state, n)| (state.as_str().to_string(), n)).collect(),
        spec_yaml: s.spec_yaml,
        data_blobs: s.data_blobs.0.into_iter().collect(),
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
