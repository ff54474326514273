//! The client service: what the `sweep` CLI calls.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use sweep_proto as pb;
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::{convert, parse_id, AppState};
use crate::auth;
use crate::db::{costs, sweeps, trials, workers};
use crate::error::{CoordinatorError, Result};
use crate::states::TrialState;

/// Largest sweep file accepted.
pub const MAX_SPEC_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
pub struct ClientApi {
    pub state: Arc<AppState>,
}

impl ClientApi {
    async fn sweep_summary(&self, id: uuid::Uuid) -> Result<pb::Sweep> {
        self.summarize(sweeps::get(&self.state.db, id).await?).await
    }

    /// A sweep as the API shows it: its counts by state and its cost.
    async fn summarize(&self, row: sweeps::SweepRow) -> Result<pb::Sweep> {
        let id = row.id;
        let counts = sweeps::counts(&self.state.db, id).await?;
        let cost_usd = costs::sweep(&self.state.db, id).await?;
        Ok(pb::Sweep { cost_usd, ..convert::sweep(row, counts) })
    }

    /// Trials of one sweep as the API shows them, each with its cost and, once finished,
    /// what the sweep had spent by then. `whole`: the rows are every trial of the sweep
    /// (its costs are read in one pass, not by id).
    async fn priced(&self, sweep: uuid::Uuid, rows: Vec<trials::TrialRow>, whole: bool) -> Result<Vec<pb::Trial>> {
        let ids: Vec<uuid::Uuid> = if whole { vec![] } else { rows.iter().map(|r| r.id).collect() };
        let only = (!whole).then_some(&ids[..]);
        let costs = costs::trials(&self.state.db, sweep, only).await?;
        let reached = costs::spent_when_finished(&self.state.db, sweep, only).await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let cost_usd = costs.get(&r.id).copied().unwrap_or(0.0);
                let spent_to_reach_usd = reached.get(&r.id).copied().unwrap_or(0.0);
                pb::Trial { cost_usd, spent_to_reach_usd, ..convert::trial(r) }
            })
            .collect())
    }

    /// Refuses a change to sweep `id` unless `caller` submitted it or is an admin.
    async fn owned(&self, caller: &auth::Caller, id: uuid::Uuid) -> Result<()> {
        caller.check_owner(&id.to_string(), sweeps::owner(&self.state.db, id).await?)
    }

    async fn submit(&self, caller: auth::Caller, req: pb::SubmitSweepRequest) -> Result<pb::SubmitSweepResponse> {
        if req.spec_yaml.len() > MAX_SPEC_BYTES {
            return Err(CoordinatorError::ResourceExhausted(format!(
                "spec_yaml: {} bytes, at most {MAX_SPEC_BYTES}",
                req.spec_yaml.len()
            )));
        }
        let name = if req.source_name.is_empty() { "<submitted>" } else { req.source_name.as_str() };
        let limits = sweep_file::Limits { max_trials: self.state.settings.max_trials };
        // Parsing and expansion are CPU work (up to the grid cap): off the async threads.
        let yaml = req.spec_yaml.clone();
        let name = name.to_string();
        for (path, sha) in &req.data_blobs {
            if !crate::blobs::is_sha256(sha) || self.state.blobs.stored(sha).await?.is_none() {
                return Err(CoordinatorError::FailedPrecondition(format!(
                    "data file `{path}`: blob {sha} is not in the store (upload it first)"
                )));
            }
        }
        let uploaded: std::collections::BTreeMap<String, String> = req.data_blobs.clone().into_iter().collect();
        let binding = uploaded.clone();
        let (spec, trials) = tokio::task::spawn_blocking(move || {
            let (spec, mut trials) = sweep_file::parse_and_expand(&yaml, &name, limits).map_err(|e| e.to_string())?;
            sweep_file::bind_data(&mut trials, &binding).map(|()| (spec, trials))
        })
        .await
        .map_err(|e| anyhow::anyhow!("expansion task: {e}"))?
        .map_err(CoordinatorError::InvalidArgument)?;
        let mut tx = self.state.db.begin().await?;
        let may_change = |sweep: &str, owner| caller.check_owner(sweep, owner);
        let out = sweeps::submit(&mut tx, &spec, &req.spec_yaml, &uploaded, &trials, caller.token, may_change).await?;
        tx.commit().await?;
        tracing::info!(sweep_id = %out.sweep_id, name = %spec.name(), added = out.added, total = out.total, "sweep submitted");
        self.state.work.notify_waiters();
        self.state.changed(out.sweep_id);
        Ok(pb::SubmitSweepResponse {
            sweep_id: out.sweep_id.to_string(),
            created: out.created,
            trials_total: out.total,
            trials_added: out.added,
        })
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::SweepEvent, Status>> + Send>>;

#[tonic::async_trait]
impl pb::client_service_server::ClientService for ClientApi {
    #[instrument(skip_all)]
    async fn submit_sweep(
        &self,
        req: Request<pb::SubmitSweepRequest>,
    ) -> Result<Response<pb::SubmitSweepResponse>, Status> {
        let caller = auth::client(&self.state.db, &req).await?;
        Ok(Response::new(self.submit(caller, req.into_inner()).await?))
    }

    #[instrument(skip_all)]
    async fn get_sweep(&self, req: Request<pb::GetSweepRequest>) -> Result<Response<pb::Sweep>, Status> {
        auth::client(&self.state.db, &req).await?;
        let id = parse_id("sweep_id", &req.get_ref().sweep_id)?;
        Ok(Response::new(self.sweep_summary(id).await?))
    }

    #[instrument(skip_all)]
    async fn list_sweeps(
        &self,
        req: Request<pb::ListSweepsRequest>,
    ) -> Result<Response<pb::ListSweepsResponse>, Status> {
        auth::client(&self.state.db, &req).await?;
        let mut out = Vec::new();
        for row in sweeps::list(&self.state.db).await? {
            out.push(self.summarize(row).await?);
        }
        Ok(Response::new(pb::ListSweepsResponse { sweeps: out }))
    }

    #[instrument(skip_all)]
    async fn list_trials(
        &self,
        req: Request<pb::ListTrialsRequest>,
    ) -> Result<Response<pb::ListTrialsResponse>, Status> {
        auth::client(&self.state.db, &req).await?;
        let id = parse_id("sweep_id", &req.get_ref().sweep_id)?;
        sweeps::get(&self.state.db, id).await?;
        let rows = trials::list(&self.state.db, id).await?;
        Ok(Response::new(pb::ListTrialsResponse { trials: self.priced(id, rows, true).await? }))
    }

    #[instrument(skip_all)]
    async fn best_trial(&self, req: Request<pb::BestTrialRequest>) -> Result<Response<pb::Trial>, Status> {
        auth::client(&self.state.db, &req).await?;
        let id = parse_id("sweep_id", &req.get_ref().sweep_id)?;
        let sweep = sweeps::get(&self.state.db, id).await?;
        let constraints = match self.state.parsed_sweep(id, &sweep.spec_yaml) {
            Ok(spec) => spec.constraints().to_vec(),
            Err(_) => vec![], // a file an earlier version stored: it had no constraints
        };
        let asked = &req.get_ref().trial_id;
        let best = if asked.is_empty() {
            trials::best(&self.state.db, id, sweep.metric_goal, &constraints).await?.ok_or_else(|| {
                let meeting = if constraints.is_empty() { String::new() } else { " meeting its constraints".into() };
                CoordinatorError::NotFound(format!(
                    "a succeeded trial with {}{meeting} in sweep {id}",
                    sweep.metric_name
                ))
            })?
        } else {
            let trial = parse_id("trial_id", asked)?;
            crate::db::dashboard::trial(&self.state.db, trial)
                .await?
                .filter(|t| t.sweep_id == id)
                .ok_or_else(|| CoordinatorError::NotFound(format!("trial {asked} in sweep {id}")))?
        };
        Ok(Response::new(self.priced(id, vec![best], false).await?.remove(0)))
    }

    #[instrument(skip_all)]
    async fn cancel_sweep(
        &self,
        req: Request<pb::CancelSweepRequest>,
    ) -> Result<Response<pb::CancelSweepResponse>, Status> {
        let caller = auth::client(&self.state.db, &req).await?;
        let id = parse_id("sweep_id", &req.get_ref().sweep_id)?;
        self.owned(&caller, id).await?;
        let mut tx = self.state.db.begin().await.map_err(CoordinatorError::from)?;
        let n = sweeps::cancel(&mut tx, id).await?;
        tx.commit().await.map_err(CoordinatorError::from)?;
        tracing::info!(sweep_id = %id, cancelled = n, "sweep cancelled");
        self.state.changed(id);
        Ok(Response::new(pb::CancelSweepResponse { cancelled: n }))
    }

    #[instrument(skip_all)]
    async fn retry_failed(
        &self,
        req: Request<pb::RetryFailedRequest>,
    ) -> Result<Response<pb::RetryFailedResponse>, Status> {
        let caller = auth::client(&self.state.db, &req).await?;
        let r = req.into_inner();
        let id = parse_id("sweep_id", &r.sweep_id)?;
        self.owned(&caller, id).await?;
        let states: Vec<TrialState> = [(r.failed, TrialState::Failed), (r.dead, TrialState::Dead)]
            .into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, s)| s)
            .collect();
        if states.is_empty() {
            return Err(
                CoordinatorError::InvalidArgument("say which trials to retry: failed, dead or both".into()).into()
            );
        }
        let mut tx = self.state.db.begin().await.map_err(CoordinatorError::from)?;
        let n = sweeps::retry(&mut tx, id, &states).await?;
        tx.commit().await.map_err(CoordinatorError::from)?;
        self.state.work.notify_waiters();
        self.state.changed(id);
        Ok(Response::new(pb::RetryFailedResponse { requeued: n }))
    }

    #[instrument(skip_all)]
    async fn list_workers(
        &self,
        req: Request<pb::ListWorkersRequest>,
    ) -> Result<Response<pb::ListWorkersResponse>, Status> {
        auth::client(&self.state.db, &req).await?;
        let rows = workers::list(&self.state.db).await?;
        Ok(Response::new(pb::ListWorkersResponse { workers: rows.into_iter().map(convert::worker).collect() }))
    }

    #[instrument(skip_all)]
    async fn trial_history(
        &self,
        req: Request<pb::TrialHistoryRequest>,
    ) -> Result<Response<pb::TrialHistoryResponse>, Status> {
        auth::client(&self.state.db, &req).await?;
        let id = parse_id("trial_id", &req.get_ref().trial_id)?;
        let rows = trials::history(&self.state.db, id).await?;
        let epochs = rows
            .into_iter()
            .map(|(attempt, epoch, m)| pb::EpochMetrics {
                attempt: attempt as u32,
                epoch: epoch as u32,
                metrics: convert::flat_metrics(Some(&m)),
            })
            .collect();
        Ok(Response::new(pb::TrialHistoryResponse { epochs }))
    }

    #[instrument(skip_all)]
    async fn create_fleet(
        &self,
        req: Request<pb::CreateFleetRequest>,
    ) -> Result<Response<pb::CreateFleetResponse>, Status> {
        auth::admin(&self.state.db, &req).await?;
        Ok(Response::new(super::fleet::create(&self.state, req.into_inner()).await?))
    }

    #[instrument(skip_all)]
    async fn list_fleets(
        &self,
        req: Request<pb::ListFleetsRequest>,
    ) -> Result<Response<pb::ListFleetsResponse>, Status> {
        auth::admin(&self.state.db, &req).await?;
        Ok(Response::new(super::fleet::list(&self.state).await?))
    }

    #[instrument(skip_all)]
    async fn get_fleet(&self, req: Request<pb::GetFleetRequest>) -> Result<Response<pb::Fleet>, Status> {
        auth::admin(&self.state.db, &req).await?;
        let id = super::fleet::parse_fleet_id(&req.get_ref().fleet_id)?;
        Ok(Response::new(super::fleet::get(&self.state, id).await?))
    }

    #[instrument(skip_all)]
    async fn down_fleet(&self, req: Request<pb::DownFleetRequest>) -> Result<Response<pb::Fleet>, Status> {
        auth::admin(&self.state.db, &req).await?;
        let id = super::fleet::parse_fleet_id(&req.get_ref().fleet_id)?;
        Ok(Response::new(super::fleet::down(&self.state, id).await?))
    }

    #[instrument(skip_all)]
    async fn set_budget(&self, req: Request<pb::SetBudgetRequest>) -> Result<Response<pb::SetBudgetResponse>, Status> {
        use crate::db::budgets::Budgeted;
        let r = req.get_ref();
        let (what, id) = match (r.sweep_id.is_empty(), r.fleet_id.is_empty()) {
            (false, true) => {
                let caller = auth::client(&self.state.db, &req).await?;
                let id = parse_id("sweep_id", &r.sweep_id)?;
                self.owned(&caller, id).await?;
                (Budgeted::Sweep, id)
            }
            (true, false) => {
                auth::admin(&self.state.db, &req).await?;
                (Budgeted::Fleet, super::fleet::parse_fleet_id(&r.fleet_id)?)
            }
            _ => {
                auth::client(&self.state.db, &req).await?;
                let msg = "name exactly one of sweep_id and fleet_id";
                return Err(CoordinatorError::InvalidArgument(msg.into()).into());
            }
        };
        Ok(Response::new(crate::budget::set(&self.state, what, id, r.max_cost_usd).await?))
    }

    #[instrument(skip_all)]
    async fn estimate_sweep(&self, req: Request<pb::EstimateSweepRequest>) -> Result<Response<pb::Estimate>, Status> {
        auth::client(&self.state.db, &req).await?;
        Ok(Response::new(super::estimate::estimate(&self.state, req.into_inner()).await?))
    }

    type WatchSweepStream = EventStream;

    #[instrument(skip_all)]
    async fn watch_sweep(&self, req: Request<pb::WatchSweepRequest>) -> Result<Response<EventStream>, Status> {
        let caller = auth::client(&self.state.db, &req).await?;
        let id = parse_id("sweep_id", &req.get_ref().sweep_id)?;
        let with_config = !req.get_ref().omit_config;
        self.sweep_summary(id).await?; // 404 before the stream starts
        let state = self.state.clone();
        let api = self.clone();
        let mut changes = state.changes.subscribe();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            // Cursor on the database clock; a small overlap re-sends rather than misses.
            let mut since = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
            loop {
                let event = async {
                    // The token is checked again before every event (at most 2 s apart):
                    // a revoked one ends the stream.
                    if !crate::db::tokens::live(&state.db, caller.token).await? {
                        return Err(CoordinatorError::Unauthenticated("token revoked: this stream ends".into()));
                    }
                    let now = trials::db_now(&state.db).await?;
                    let first = since == chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
                    let changed = trials::changed_since(&state.db, id, since, with_config).await?;
                    // The first event carries every trial; later ones the few that changed.
                    let changed = api.priced(id, changed, first).await?;
                    since = now - chrono::Duration::milliseconds(50);
                    let sweep = api.sweep_summary(id).await?;
                    // A sweep whose budget is spent is not over: a raise resumes it.
                    let finished = matches!(sweep.state(), pb::SweepState::Finished | pb::SweepState::Cancelled);
                    Ok::<_, CoordinatorError>(pb::SweepEvent { sweep: Some(sweep), changed, finished })
                }
                .await;
                let finished = matches!(&event, Ok(e) if e.finished)
                    || matches!(&event, Err(CoordinatorError::Unauthenticated(_)));
                if tx.send(event.map_err(Status::from)).await.is_err() || finished {
                    return;
                }
                // Wait for a change to this sweep; a periodic tick covers changes made
                // by another coordinator sharing the database.
                let deadline = tokio::time::sleep(Duration::from_secs(2));
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        _ = &mut deadline => break,
                        _ = tx.closed() => return,
                        msg = changes.recv() => match msg {
                            Ok(s) if s == id => break,
                            Ok(_) => continue,
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                            Err(_) => return,
                        },
                    }
                }
                // Coalesce bursts (many trials progressing at once) into one event.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }
}
