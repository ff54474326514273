//! TPE proposals (ask/tell): whenever a trial of a `method: tpe` sweep ends, the
//! coordinator tops the sweep up to its startup number of configurations in flight,
//! each proposed by TPE from the finished trials, until `run_cap`. Proposals are
//! reproducible (the generator is seeded by the sweep's seed and the number of trials
//! so far) and never repeat a configuration the sweep already has.

use std::collections::HashSet;

use rand::SeedableRng;
use sweep_search::tpe::{Dim, Tpe};
use sweep_spec::{Distribution, ParamSpec};
use uuid::Uuid;

use crate::db::sweeps;
use crate::error::Result;
use crate::service::AppState;

/// Proposal attempts per configuration before the space counts as exhausted.
const TRIES: u64 = 16;

fn dims(spec: &sweep_spec::SweepSpec) -> Vec<Dim> {
    spec.parameters()
        .values()
        .map(|p| match p {
            ParamSpec::Values(v) => Dim::Choice(v.len()),
            ParamSpec::Range { min, max, distribution: Distribution::Uniform } => {
                Dim::Float { lo: *min, hi: *max, log: false }
            }
            ParamSpec::Range { min, max, distribution: Distribution::LogUniform } => {
                Dim::Float { lo: *min, hi: *max, log: true }
            }
            ParamSpec::Range { min, max, distribution: Distribution::IntUniform } => {
                Dim::Int { lo: min.ceil() as i64, hi: max.floor() as i64 }
            }
        })
        .collect()
}

/// A trial's swept values as a point in the TPE space (None if one does not fit).
fn encode(spec: &sweep_spec::SweepSpec, params: &serde_json::Value) -> Option<Vec<f64>> {
    spec.parameters()
        .iter()
        .map(|(k, p)| {
            let v = params.get(k)?;
            match p {
                ParamSpec::Values(list) => list.iter().position(|x| x == v).map(|i| i as f64),
                ParamSpec::Range { .. } => v.as_f64(),
            }
        })
        .collect()
}

fn decode(spec: &sweep_spec::SweepSpec, x: &[f64]) -> Vec<serde_json::Value> {
    spec.parameters()
        .values()
        .zip(x)
        .map(|(p, &v)| match p {
            ParamSpec::Values(list) => list[(v as usize).min(list.len() - 1)].clone(),
            ParamSpec::Range { distribution: Distribution::IntUniform, .. } => serde_json::json!(v as i64),
            ParamSpec::Range { .. } => serde_json::json!(v),
        })
        .collect()
}

/// After a trial ended: tops its sweep up when the sweep is a TPE one (one indexed
/// lookup otherwise). A failure to propose is logged, never the trial's problem.
pub async fn after_trial_ended(state: &AppState, trial: Uuid) {
    let found: Result<Option<(Uuid, String)>, sqlx::Error> =
        sqlx::query_as("SELECT s.id, s.method FROM trials t JOIN sweeps s ON s.id = t.sweep_id WHERE t.id = $1")
            .bind(trial)
            .fetch_optional(&state.db)
            .await;
    if let Ok(Some((sweep, method))) = found {
        if method == "tpe" {
            top_up_or_warn(state, sweep).await;
        }
    }
}

/// [`top_up`], a failure logged (the next trial to end tries again).
pub async fn top_up_or_warn(state: &AppState, sweep: Uuid) {
    if let Err(e) = top_up(state, sweep).await {
        tracing::warn!(%sweep, error = %e, "TPE proposal failed; the next finished trial tries again");
    }
}

/// Tops a TPE sweep up; returns how many trials it added.
pub async fn top_up(state: &AppState, sweep: Uuid) -> Result<usize> {
    let mut tx = state.db.begin().await?;
    let row: Option<(String, String, String, i32)> = sqlx::query_as(
        "SELECT method, spec_yaml, metric_goal, max_attempts FROM sweeps
         WHERE id = $1 AND state = 'running' FOR UPDATE",
    )
    .bind(sweep)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((method, yaml, goal, max_attempts)) = row else { return Ok(0) };
    if method != "tpe" {
        return Ok(0);
    }
    let limits = sweep_spec::Limits { max_trials: state.settings.max_trials };
    let spec = match sweep_spec::parse(&yaml, "stored sweep", limits) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%sweep, error = %e, "stored TPE sweep no longer parses: no proposals");
            return Ok(0);
        }
    };
    let rows: Vec<(serde_json::Value, String, Option<f64>, String, serde_json::Value, i32)> =
        sqlx::query_as("SELECT params, state, objective, params_hash, config, seq FROM trials WHERE sweep_id = $1")
            .bind(sweep)
            .fetch_all(&mut *tx)
            .await?;
    let cap = spec.planned_trials() as usize;
    let in_flight = (spec.tpe_startup() * u64::from(spec.replicas())) as usize;
    let open = rows.iter().filter(|r| r.1 == "queued" || r.1 == "leased").count();
    let mut total = rows.len();
    let dims = dims(&spec);
    let sign = if goal == "minimize" { -1.0 } else { 1.0 };
    let history: Vec<(Vec<f64>, f64)> = rows
        .iter()
        .filter(|r| r.1 == "succeeded" || r.1 == "pruned")
        .filter_map(|r| Some((encode(&spec, &r.0)?, sign * r.2?)))
        .collect();
    let mut known: HashSet<String> = rows.iter().map(|r| r.3.clone()).collect();
    // Data uploaded with the sweep: proposals read the same blobs.
    let blobs = rows.iter().find_map(|r| {
        let b = r.4.get("dataset")?.get("blobs")?.as_object()?.clone();
        (!b.is_empty()).then_some(b)
    });
    let mut seq = rows.iter().map(|r| r.5).max().unwrap_or(-1) + 1;
    let mut added = 0;
    while total < cap && open + added < in_flight {
        let mut chosen = None;
        for k in 0..TRIES {
            let stream = (total as u64).wrapping_mul(TRIES).wrapping_add(k);
            let mut rng =
                rand_chacha::ChaCha8Rng::seed_from_u64(spec.seed() ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let x = Tpe::default().suggest(&dims, &history, &mut rng);
            let mut trials = match spec.trials_for(decode(&spec, &x)) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(%sweep, error = %e, "TPE proposal is not a valid trial");
                    continue;
                }
            };
            if let Some(b) = &blobs {
                for t in &mut trials {
                    let d = &mut t.config.dataset;
                    d.blobs = b.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect();
                    (d.train, d.test, d.xml) = (None, None, None);
                    t.hash = sweep_spec::config_hash(&t.config);
                }
            }
            if trials.iter().all(|t| !known.contains(&t.hash)) {
                chosen = Some(trials);
                break;
            }
        }
        let Some(trials) = chosen else {
            tracing::info!(%sweep, "TPE found no configuration the sweep has not tried: the space is exhausted");
            break;
        };
        let n = sweeps::add_trials(&mut tx, sweep, max_attempts, seq, &trials).await?;
        known.extend(trials.iter().map(|t| t.hash.clone()));
        seq += trials.len() as i32;
        total += trials.len();
        added += n as usize;
    }
    tx.commit().await?;
    if added > 0 {
        tracing::info!(%sweep, added, history = history.len(), "TPE proposed trials");
        state.work.notify_waiters();
        state.changed(sweep);
    }
    Ok(added)
}
