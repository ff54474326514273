//! `/api/v1/`: the CLI's `-o json` shapes (`sweeps`, `sweeps/{id}`, `sweeps/{id}/trials`,
//! `workers`, `fleets`), and what the pages draw from (configurations with their
//! statistics, parameter importance, curves, a trial's detail, its model).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use sweep_proto as pb;
use sweep_proto::client_service_server::ClientService;
use sweep_view::json as shapes;
use sweep_view::objectives::Rules;
use uuid::Uuid;

use super::{request, ApiError, Token};
use crate::service::client::ClientApi;
use crate::state::AppState;

type Answer = Result<Json<Value>, ApiError>;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/sweeps", get(sweeps))
        .route("/api/v1/overview", get(overview))
        .route("/api/v1/sweeps/{id}", get(sweep))
        .route("/api/v1/sweeps/{id}/trials", get(trials))
        .route("/api/v1/sweeps/{id}/configurations", get(configurations))
        .route("/api/v1/sweeps/{id}/importance", get(importance))
        .route("/api/v1/sweeps/{id}/curves", get(curves))
        .route("/api/v1/sweeps/{id}/events", get(super::events::events))
        .route("/api/v1/trials/{id}", get(trial))
        .route("/api/v1/trials/{id}/model", get(model))
        .route("/api/v1/workers", get(workers))
        .route("/api/v1/fleets", get(fleets))
}

pub(super) fn client(state: &Arc<AppState>) -> ClientApi {
    ClientApi { state: state.clone() }
}

fn id(field: &str, value: &str) -> Result<Uuid, ApiError> {
    Ok(crate::service::parse_id(field, value)?)
}

/// `sweep status -o json`.
async fn sweeps(State(state): State<Arc<AppState>>, Token(t): Token) -> Answer {
    let r = client(&state).list_sweeps(request(pb::ListSweepsRequest {}, &t)).await;
    let sweeps = r?.into_inner().sweeps;
    Ok(Json(shapes::sweeps_json(&sweeps)))
}

/// The sweeps page: each sweep's status JSON with its best objective (meeting its
/// constraints, as `sweep best`) and the workers holding its leases.
async fn overview(State(state): State<Arc<AppState>>, Token(t): Token) -> Answer {
    let api = client(&state);
    let r = api.list_sweeps(request(pb::ListSweepsRequest {}, &t)).await;
    let sweeps = r?.into_inner().sweeps;
    let busy = crate::db::dashboard::busy_workers(&state.db).await?;
    let mut out = vec![];
    for s in &sweeps {
        let mut v = shapes::sweep_json(s);
        let best = api
            .best_trial(request(pb::BestTrialRequest { sweep_id: s.sweep_id.clone(), trial_id: String::new() }, &t))
            .await;
        v["best_objective"] = json!(best.ok().map(|b| b.into_inner().objective));
        let workers = Uuid::parse_str(&s.sweep_id).ok().and_then(|id| busy.get(&id).copied()).unwrap_or(0);
        v["workers"] = json!(workers);
        out.push(v);
    }
    Ok(Json(json!({"sweeps": out})))
}

pub(super) async fn get_sweep(
    state: &Arc<AppState>,
    token: &crate::auth::Caller,
    sweep_id: String,
) -> Result<pb::Sweep, ApiError> {
    let r = client(state).get_sweep(request(pb::GetSweepRequest { sweep_id }, token)).await;
    Ok(r?.into_inner())
}

async fn sweep_and_trials(
    state: &Arc<AppState>,
    token: &crate::auth::Caller,
    sweep_id: String,
) -> Result<(pb::Sweep, Vec<pb::Trial>), ApiError> {
    let sweep = get_sweep(state, token, sweep_id.clone()).await?;
    let r = client(state).list_trials(request(pb::ListTrialsRequest { sweep_id }, token)).await;
    Ok((sweep, r?.into_inner().trials))
}

/// `sweep status ID -o json`.
async fn sweep(State(state): State<Arc<AppState>>, Token(t): Token, Path(sweep_id): Path<String>) -> Answer {
    Ok(Json(shapes::sweeps_json(&[get_sweep(&state, &t, sweep_id).await?])))
}

/// `sweep trials ID -o json`.
async fn trials(State(state): State<Arc<AppState>>, Token(t): Token, Path(sweep_id): Path<String>) -> Answer {
    let (sweep, trials) = sweep_and_trials(&state, &t, sweep_id).await?;
    let rules = Rules::of(&sweep);
    Ok(Json(shapes::trials_json_ruled(&trials.iter().collect::<Vec<_>>(), &rules)))
}

/// Configurations (replicas grouped) with mean, ci95, n, sd and the paired test against
/// the winner (the `configurations` of `sweep trials ID --by-config -o json`), the
/// verdict, test macro-F1 by label group for the top five, and the Pareto front when the
/// sweep has several objectives.
async fn configurations(State(state): State<Arc<AppState>>, Token(t): Token, Path(sweep_id): Path<String>) -> Answer {
    let (sweep, trials) = sweep_and_trials(&state, &t, sweep_id).await?;
    let v = tokio::task::spawn_blocking(move || {
        use sweep_view::{objectives, replicas};
        let rules = Rules::of(&sweep);
        let configs = replicas::configurations(&sweep, &trials, &rules);
        let p = replicas::versus_winner(&configs);
        let mut v = replicas::verdict_json(&configs, &p);
        v["metric"] = json!({"name": sweep.metric_name, "goal": sweep.metric_goal().name()});
        v["groups"] = replicas::groups_json(&configs, 5);
        if rules.objectives.len() > 1 {
            v["pareto"] = objectives::front_json(&rules, &configs, &objectives::front(&rules, &configs));
        }
        // The best objective against what the sweep had spent: [[usd, best], ...].
        v["best_by_cost"] = json!(objectives::best_by_cost(&rules, &trials));
        v["cost_usd"] = json!(sweep.cost_usd);
        v
    })
    .await
    .map_err(|e| tonic::Status::internal(e.to_string()))?;
    Ok(Json(v))
}

/// Permutation importance of a random forest over the succeeded trials (see
/// `sweep_view::importance`).
async fn importance(State(state): State<Arc<AppState>>, Token(t): Token, Path(sweep_id): Path<String>) -> Answer {
    let (sweep, trials) = sweep_and_trials(&state, &t, sweep_id).await?;
    let v = tokio::task::spawn_blocking(move || {
        let rules = Rules::of(&sweep);
        let ok = |t: &&pb::Trial| t.state() == pb::TrialState::Succeeded && rules.feasible(t);
        let params: Vec<(Value, f64)> = trials
            .iter()
            .filter(ok)
            .filter_map(|t| Some((shapes::params(t), *t.metrics.get(&sweep.metric_name)?)))
            .collect();
        let rows: Vec<(&Value, f64)> = params.iter().map(|(p, y)| (p, *y)).collect();
        let mut v = sweep_view::importance::importance_json(&sweep_view::importance::importance(&rows, 0));
        v["objective"] = json!(sweep.metric_name);
        v["trials"] = json!(rows.len());
        v
    })
    .await
    .map_err(|e| tonic::Status::internal(e.to_string()))?;
    Ok(Json(v))
}

#[derive(serde::Deserialize)]
struct CurvesQuery {
    /// Comma-separated trial ids (all of the sweep's when absent).
    trials: Option<String>,
}

/// Per-epoch values of the sweep's objective, per trial (its latest attempt).
async fn curves(
    State(state): State<Arc<AppState>>,
    Token(t): Token,
    Path(sweep_id): Path<String>,
    Query(q): Query<CurvesQuery>,
) -> Answer {
    let sweep = get_sweep(&state, &t, sweep_id).await?;
    let only: Option<Vec<Uuid>> = match q.trials.as_deref().filter(|s| !s.is_empty()) {
        Some(list) => Some(list.split(',').map(|s| id("trials", s)).collect::<Result<_, _>>()?),
        None => None,
    };
    let sweep_uuid = id("sweep_id", &sweep.sweep_id)?;
    let rows = crate::db::dashboard::curves(&state.db, sweep_uuid, &sweep.metric_name, only.as_deref()).await?;
    let mut curves = serde_json::Map::new();
    for (trial, epoch, value) in rows {
        let points = curves.entry(trial.to_string()).or_insert_with(|| json!([]));
        points.as_array_mut().expect("an array").push(json!([epoch, value]));
    }
    Ok(Json(json!({"metric": sweep.metric_name, "curves": curves})))
}

/// A trial: its JSON (as `sweep trials`), its config and the sweep file that re-runs it,
/// its attempts, checkpoint and per-epoch metrics of every attempt.
async fn trial(State(state): State<Arc<AppState>>, Token(t): Token, Path(trial_id): Path<String>) -> Answer {
    let uuid = id("trial_id", &trial_id)?;
    let sweep_id = crate::db::trials::sweep_of(&state.db, uuid).await?;
    let sweep_id = sweep_id.ok_or_else(|| tonic::Status::not_found(format!("trial {trial_id} not found")))?;
    let sweep = get_sweep(&state, &t, sweep_id.to_string()).await?;
    // Through the client service, as `sweep best` asks for a trial: priced, with what the
    // sweep had spent when it finished.
    let asked = pb::BestTrialRequest { sweep_id: sweep.sweep_id.clone(), trial_id: trial_id.clone() };
    let trial = client(&state).best_trial(request(asked, &t)).await?.into_inner();
    let attempts = crate::db::dashboard::attempts(&state.db, uuid).await?;
    let (checkpoint_epoch, checkpoint_blob) = crate::db::dashboard::checkpoint(&state.db, uuid).await?;
    let history = client(&state).trial_history(request(pb::TrialHistoryRequest { trial_id }, &t)).await;
    let history = history?.into_inner().epochs;
    let mut v = shapes::best_json(&trial);
    let rules = Rules::of(&sweep);
    if trial.state() == pb::TrialState::Succeeded && !rules.constraints.is_empty() {
        v["feasible"] = json!(rules.feasible(&trial));
    }
    v["sweep"] = json!({"sweep_id": sweep.sweep_id, "name": sweep.name, "metric": sweep.metric_name});
    v["rerun_yaml"] = json!(shapes::rerun_yaml(&sweep.name, &v["config"]).ok());
    v["attempts"] = json!(attempts);
    v["checkpoint"] = json!({"epoch": checkpoint_epoch, "kept": checkpoint_blob.is_some()});
    v["history"] = history
        .iter()
        .map(|e| {
            let m: std::collections::BTreeMap<&String, &f64> = e.metrics.iter().collect();
            json!({"attempt": e.attempt, "epoch": e.epoch, "metrics": m})
        })
        .collect();
    Ok(Json(v))
}

/// The trial's model archive (`model.json` + `model.safetensors` in a tar, as `sweep model
/// get` downloads it).
async fn model(
    State(state): State<Arc<AppState>>,
    Token(_): Token,
    Path(trial_id): Path<String>,
) -> Result<Response, ApiError> {
    let uuid = id("trial_id", &trial_id)?;
    let row = crate::db::dashboard::trial(&state.db, uuid).await?;
    let blob = row.and_then(|r| r.model_blob).ok_or_else(|| {
        tonic::Status::not_found(format!(
            "trial {trial_id} has no model (only succeeded trials, and a sweep keeps its best few)"
        ))
    })?;
    let stream = state.blobs.get(&blob, 0).await?;
    let name = format!("attachment; filename=\"model-{}.tar\"", &trial_id[..8.min(trial_id.len())]);
    let headers = [(header::CONTENT_TYPE, "application/x-tar".to_string()), (header::CONTENT_DISPOSITION, name)];
    Ok((headers, axum::body::Body::from_stream(stream)).into_response())
}

/// `sweep workers -o json`.
async fn workers(State(state): State<Arc<AppState>>, Token(t): Token) -> Answer {
    let r = client(&state).list_workers(request(pb::ListWorkersRequest {}, &t)).await;
    Ok(Json(shapes::workers_json(&r?.into_inner().workers)))
}

/// `sweep fleet ls -o json` (an admin token: fleets spend money).
async fn fleets(State(state): State<Arc<AppState>>, Token(t): Token) -> Answer {
    let r = client(&state).list_fleets(request(pb::ListFleetsRequest {}, &t)).await;
    let fleets = r?.into_inner().fleets;
    Ok(Json(json!(fleets.iter().map(shapes::fleet_json).collect::<Vec<_>>())))
}
