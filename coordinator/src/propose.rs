//! TPE proposals (ask/tell): whenever a trial of a `method: tpe` sweep ends, the
//! coordinator tops the sweep up to its startup number of configurations in flight,
//! each proposed by TPE from the finished trials, until `run_cap`. Proposals are
//! reproducible (the generator is seeded by the sweep's seed and the number of trials
//! so far) and never repeat a configuration the sweep already has.

use std::collections::HashSet;

use rand::SeedableRng;
use sweep_file::{Distribution, Goal, Method, ParamSpec};
use sweep_search::tpe::{Dim, Tpe};
use uuid::Uuid;

use crate::db::{sweeps, trials};
use crate::error::Result;
use crate::state::AppState;
use crate::states::TrialState;

/// Proposal attempts per configuration before the space counts as exhausted.
const TRIES: u64 = 16;

fn dims(spec: &sweep_file::SweepSpec) -> Vec<Dim> {
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
fn encode(spec: &sweep_file::SweepSpec, params: &serde_json::Value) -> Option<Vec<f64>> {
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

fn decode(spec: &sweep_file::SweepSpec, x: &[f64]) -> Vec<serde_json::Value> {
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
    if let Ok(Some((sweep, Method::Tpe))) = sweeps::method_of_trial(&state.db, trial).await {
        top_up_or_warn(state, sweep).await;
    }
}

/// [`top_up`], a failure logged (the next trial to end tries again).
pub async fn top_up_or_warn(state: &AppState, sweep: Uuid) {
    if let Err(e) = top_up(state, sweep).await {
        tracing::warn!(%sweep, error = %e, "TPE proposal failed; the next finished trial tries again");
    }
}

/// Tops a TPE sweep up; returns how many trials it added.
/// What TPE learns from finished trials: (point, objective) with larger better. A trial
/// that misses the sweep's constraints ranks below every one that meets them, the worse
/// the further it misses (as Optuna's constrained TPE orders them), so it is never "good".
fn learned(spec: &sweep_file::SweepSpec, rows: &[trials::ProposalInput], sign: f64) -> Vec<(Vec<f64>, f64)> {
    let finished: Vec<(Vec<f64>, f64, f64)> = rows
        .iter()
        .filter(|r| matches!(r.state, TrialState::Succeeded | TrialState::Pruned))
        .filter_map(|r| {
            let violation = match (r.state, spec.constraints().is_empty()) {
                (TrialState::Succeeded, false) => {
                    sweep_file::violation(spec.constraints(), |k| trials::metric_of(&r.metrics, k))
                }
                _ => 0.0,
            };
            Some((encode(spec, &r.params)?, sign * r.objective?, violation))
        })
        .collect();
    let floor = finished.iter().map(|(_, y, _)| *y).fold(f64::INFINITY, f64::min);
    finished.into_iter().map(|(x, y, v)| if v == 0.0 { (x, y) } else { (x, floor - 1.0 - v.min(1e6)) }).collect()
}

pub async fn top_up(state: &AppState, sweep: Uuid) -> Result<usize> {
    let mut tx = state.db.begin().await?;
    let Some(row) = sweeps::lock_for_proposals(&mut tx, sweep).await? else { return Ok(0) };
    if row.method != Method::Tpe {
        return Ok(0);
    }
    let spec = match state.parsed_sweep(sweep, &row.spec_yaml) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%sweep, error = %e, "stored TPE sweep no longer parses: no proposals");
            return Ok(0);
        }
    };
    let rows = trials::proposal_inputs(&mut tx, sweep).await?;
    let cap = spec.planned_trials() as usize;
    let in_flight = (spec.tpe_startup() * u64::from(spec.replicas())) as usize;
    let open = rows.iter().filter(|r| !r.state.is_terminal()).count();
    let sign = if row.goal == Goal::Minimize { -1.0 } else { 1.0 };
    let history = learned(&spec, &rows, sign);
    let mut proposer = Proposer {
        spec: &spec,
        dims: dims(&spec),
        history: &history,
        known: rows.iter().map(|r| r.params_hash.clone()).collect(),
        data_blobs: &row.data_blobs,
        total: rows.len(),
    };
    let mut seq = rows.iter().map(|r| r.seq).max().unwrap_or(-1) + 1;
    let mut added = 0;
    while proposer.total < cap && open + added < in_flight {
        let Some(trials) = proposer.next(sweep) else {
            tracing::info!(%sweep, "TPE found no configuration the sweep has not tried: the space is exhausted");
            break;
        };
        let n = sweeps::add_trials(&mut tx, sweep, row.max_attempts, seq, &trials).await?;
        seq += trials.len() as i32;
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

/// Draws configurations the sweep does not have yet, bound to the sweep's data.
struct Proposer<'a> {
    spec: &'a sweep_file::SweepSpec,
    dims: Vec<Dim>,
    history: &'a [(Vec<f64>, f64)],
    known: HashSet<String>,
    data_blobs: &'a std::collections::BTreeMap<String, String>,
    total: usize,
}

impl Proposer<'_> {
    /// The replicas of the next new configuration (None once [`TRIES`] draws all repeat
    /// what the sweep has). The generator is seeded by the sweep's seed and its size.
    fn next(&mut self, sweep: Uuid) -> Option<Vec<sweep_file::Trial>> {
        for k in 0..TRIES {
            let stream = (self.total as u64).wrapping_mul(TRIES).wrapping_add(k);
            let mut rng =
                rand_chacha::ChaCha8Rng::seed_from_u64(self.spec.seed() ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let x = Tpe::default().suggest(&self.dims, self.history, &mut rng);
            // Data uploaded with the sweep: proposals read the same blobs.
            let proposed = self.spec.trials_for(decode(self.spec, &x)).and_then(|mut trials| {
                sweep_file::bind_data(&mut trials, self.data_blobs)?;
                Ok(trials)
            });
            let trials = match proposed {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(%sweep, error = %e, "TPE proposal is not a valid trial");
                    continue;
                }
            };
            if trials.iter().all(|t| !self.known.contains(&t.hash)) {
                self.known.extend(trials.iter().map(|t| t.hash.clone()));
                self.total += trials.len();
                return Some(trials);
            }
        }
        None
    }
}
