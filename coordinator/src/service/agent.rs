//! The agent service: what `sweep-worker` calls. Every write is fenced on
//! (trial, attempt, this worker).

use std::sync::Arc;
use std::time::Duration;

use sweep_proto as pb;
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::{convert, AppState};
use crate::auth;
use crate::db::{fleets, leases, trials, workers};
use crate::error::{CoordinatorError, Result};
use crate::states::TrialState;

/// Most trials one lease call may ask for.
pub const MAX_LEASE_BATCH: u32 = 64;
/// Longest long-poll.
pub const MAX_WAIT_MS: u32 = 30_000;
/// Largest result document.
pub const MAX_RESULT_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
pub struct AgentApi {
    pub state: Arc<AppState>,
}

impl AgentApi {
    fn lease_ms(&self) -> u32 {
        self.state.settings.lease_ms
    }

    async fn lease(&self, worker: uuid::Uuid, req: pb::LeaseRequest) -> Result<pb::LeaseResponse> {
        let n = req.max_trials.clamp(1, MAX_LEASE_BATCH);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(req.wait_ms.min(MAX_WAIT_MS) as u64);
        let mut revocation_checked = false;
        loop {
            // Register interest before looking, so a submit between the two is not missed.
            let notified = self.state.work.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let started = std::time::Instant::now();
            let sweeps = self.state.worker_sweeps(worker).await?;
            let rows = leases::claim(&self.state.db, worker, n, self.lease_ms(), sweeps.as_deref(), req.fuse).await?;
            metrics::histogram!(crate::metrics::CLAIM_SECONDS).record(started.elapsed().as_secs_f64());
            if !rows.is_empty() {
                metrics::counter!(crate::metrics::LEASES_GRANTED).increment(rows.len() as u64);
                for r in &rows {
                    tracing::debug!(trial_id = %r.id, attempt = r.attempt, %worker, "trial leased");
                    self.state.changed(r.sweep_id);
                }
                let trials = rows.into_iter().map(leased).collect();
                return Ok(pb::LeaseResponse { trials });
            }
            // An empty claim may mean the (cached) credential was revoked: say so once per
            // call rather than on every poll of the long wait.
            if !revocation_checked {
                if workers::is_revoked(&self.state.db, worker).await? {
                    return Err(CoordinatorError::Unauthenticated("worker credential revoked".into()));
                }
                revocation_checked = true;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(pb::LeaseResponse { trials: vec![] });
            }
            // Woken by a submit or requeue here; polled as a fallback (another
            // coordinator, a backoff that ran out).
            let _ = tokio::time::timeout((deadline - now).min(Duration::from_millis(500)), notified).await;
        }
    }
}

/// A claimed trial as the worker receives it.
fn leased(r: leases::Leased) -> pb::LeasedTrial {
    let metric = r.config.get("metric");
    let field = |k: &str| metric.and_then(|m| m.get(k)).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    pb::LeasedTrial {
        trial_id: r.id.to_string(),
        attempt: r.attempt as u32,
        sweep_id: r.sweep_id.to_string(),
        metric_name: field("name"),
        metric_goal: field("goal"),
        config_json: r.config.to_string(),
        params_json: r.params.to_string(),
        checkpoint_sha256: r.checkpoint_blob.unwrap_or_default(),
        checkpoint_epoch: r.checkpoint_epoch.unwrap_or(0).max(0) as u32,
    }
}

fn kind(k: i32) -> Result<leases::FailureKind> {
    match pb::FailureKind::try_from(k) {
        Ok(pb::FailureKind::User) => Ok(leases::FailureKind::User),
        Ok(pb::FailureKind::Transient) => Ok(leases::FailureKind::Transient),
        _ => Err(CoordinatorError::InvalidArgument(format!("kind: {k} is not USER or TRANSIENT"))),
    }
}

#[tonic::async_trait]
impl pb::agent_service_server::AgentService for AgentApi {
    #[instrument(skip_all, fields(name))]
    async fn register(&self, req: Request<pb::RegisterRequest>) -> Result<Response<pb::RegisterResponse>, Status> {
        let joiner = auth::join(&self.state.db, &req).await?;
        let r = req.into_inner();
        tracing::Span::current().record("name", r.name.as_str());
        let text_ok = |s: &str| s.len() <= 256;
        if r.name.is_empty() || !text_ok(&r.name) || !text_ok(&r.host) || !text_ok(&r.version) {
            return Err(CoordinatorError::InvalidArgument("name/host/version: 1 to 256 bytes".into()).into());
        }
        if r.slots == 0 || r.slots > 1024 || r.gpus.len() > 64 {
            return Err(CoordinatorError::InvalidArgument("slots: 1 to 1024; gpus: at most 64".into()).into());
        }
        let w = workers::NewWorker { name: r.name, host: r.host, gpus: r.gpus, slots: r.slots, version: r.version };
        // An instance's token is spent in the same transaction that creates the worker:
        // two registrations with one token make one worker.
        let mut tx = self.state.db.begin().await.map_err(CoordinatorError::from)?;
        let instance = match &joiner {
            auth::Joiner::Standing => None,
            auth::Joiner::Instance(hash) => Some(fleets::spend_join(&mut *tx, hash).await?.ok_or_else(|| {
                CoordinatorError::Unauthenticated("instance join token unknown, already used or expired".into())
            })?),
        };
        let (id, token) = workers::register(&mut *tx, &w).await?;
        if let Some(instance) = instance {
            fleets::bind_worker(&mut *tx, instance, id).await?;
        }
        tx.commit().await.map_err(CoordinatorError::from)?;
        tracing::info!(worker_id = %id, name = %w.name, slots = w.slots, gpus = ?w.gpus, instance = ?instance,
            "worker registered");
        Ok(Response::new(pb::RegisterResponse {
            worker_id: id.to_string(),
            worker_token: token,
            lease_ms: self.lease_ms(),
            heartbeat_ms: self.state.settings.heartbeat_ms(),
        }))
    }

    #[instrument(skip_all, fields(worker_id))]
    async fn lease(&self, req: Request<pb::LeaseRequest>) -> Result<Response<pb::LeaseResponse>, Status> {
        let worker = auth::worker(&self.state.db, &self.state.worker_auth, &req).await?;
        tracing::Span::current().record("worker_id", tracing::field::display(worker));
        Ok(Response::new(self.lease(worker, req.into_inner()).await?))
    }

    #[instrument(skip_all, fields(worker_id))]
    async fn heartbeat(&self, req: Request<pb::HeartbeatRequest>) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let worker = auth::worker(&self.state.db, &self.state.worker_auth, &req).await?;
        let r = req.into_inner();
        if r.trials.len() > 1024 {
            return Err(CoordinatorError::ResourceExhausted("trials: at most 1024 per heartbeat".into()).into());
        }
        let refs = r.trials.iter().map(|t| convert::trial_ref(Some(t))).collect::<Result<Vec<_>>>()?;
        let mut conn = self.state.db.acquire().await.map_err(CoordinatorError::from)?;
        let directives = leases::heartbeat(&mut conn, worker, &refs, self.lease_ms()).await?;
        let directives = r
            .trials
            .into_iter()
            .zip(directives)
            .map(|(t, d)| pb::Directive {
                trial: Some(t),
                action: match d {
                    leases::Directive::Continue => pb::Action::Continue,
                    leases::Directive::Cancel => pb::Action::Cancel,
                    leases::Directive::LeaseLost => pb::Action::LeaseLost,
                    leases::Directive::HandBack => pb::Action::HandBack,
                } as i32,
            })
            .collect();
        Ok(Response::new(pb::HeartbeatResponse { directives }))
    }

    #[instrument(skip_all, fields(trial_id, attempt))]
    async fn report_progress(
        &self,
        req: Request<pb::ProgressRequest>,
    ) -> Result<Response<pb::ProgressResponse>, Status> {
        let worker = auth::worker(&self.state.db, &self.state.worker_auth, &req).await?;
        let r = req.into_inner();
        let fence = fence(worker, r.trial.as_ref())?;
        let metrics = convert::metrics(&r.metrics)?;
        let epoch = i32::try_from(r.epoch)
            .ok()
            .filter(|e| *e <= 100_000)
            .ok_or_else(|| CoordinatorError::InvalidArgument(format!("epoch: {} is out of range", r.epoch)))?;
        let mut conn = self.state.db.acquire().await.map_err(CoordinatorError::from)?;
        leases::progress(&mut conn, &fence, epoch, &metrics, self.lease_ms()).await?;
        drop(conn);
        let stop = self.asha_stops(fence.trial, epoch, &metrics).await?;
        self.notify_trial(fence.trial).await;
        Ok(Response::new(pb::ProgressResponse { stop }))
    }

    #[instrument(skip_all, fields(trial_id, attempt))]
    async fn complete(&self, req: Request<pb::CompleteRequest>) -> Result<Response<pb::CompleteResponse>, Status> {
        let worker = auth::worker(&self.state.db, &self.state.worker_auth, &req).await?;
        let r = req.into_inner();
        let fence = fence(worker, r.trial.as_ref())?;
        let metrics = convert::metrics(&r.metrics)?;
        if r.result_json.len() > MAX_RESULT_BYTES {
            return Err(CoordinatorError::ResourceExhausted(format!(
                "result_json: {} bytes, at most {MAX_RESULT_BYTES}",
                r.result_json.len()
            ))
            .into());
        }
        let result: serde_json::Value = if r.result_json.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&r.result_json)
                .map_err(|e| CoordinatorError::InvalidArgument(format!("result_json: {e}")))?
        };
        // A model is recorded only if its blob is in the store (the worker uploaded it first).
        let model = match r.model_sha256.as_str() {
            "" => None,
            sha if !crate::blobs::is_sha256(sha) => {
                return Err(CoordinatorError::InvalidArgument(format!("model_sha256: `{sha}` is not a SHA-256")).into())
            }
            sha if self.state.blobs.stored(sha).await?.is_none() => {
                return Err(CoordinatorError::FailedPrecondition(format!("model blob {sha} is not in the store")).into())
            }
            sha => Some(sha),
        };
        let mut conn = self.state.db.acquire().await.map_err(CoordinatorError::from)?;
        let recorded = leases::complete(&mut conn, &fence, &metrics, &result, r.pruned, model).await?;
        let mut orphans = if recorded.is_some() && model.is_some() {
            trials::keep_top_models(&mut conn, fence.trial, self.state.settings.keep_models).await?
        } else {
            vec![]
        };
        drop(conn);
        // A finished trial needs its checkpoint no more (`complete` cleared it).
        if let Some(blob) = recorded.as_ref().and_then(|r| r.checkpoint.clone()) {
            orphans.push(blob);
        }
        for blob in orphans {
            if let Err(e) = self.state.blobs.delete_unreferenced(&self.state.db, &blob).await {
                tracing::warn!(%blob, error = %e, "model blob not deleted");
            }
        }
        let mut next = Vec::new();
        if let Some(rec) = recorded {
            if rec.method == sweep_file::Method::Tpe {
                crate::propose::top_up_or_warn(&self.state, rec.sweep_id).await;
            }
            let state = if r.pruned { TrialState::Pruned } else { TrialState::Succeeded };
            tracing::info!(%worker, %state, "trial finished");
            crate::metrics::finished(state);
            let n = r.lease_next.min(MAX_LEASE_BATCH);
            if n > 0 {
                let sweeps = self.state.worker_sweeps(worker).await?;
                next = leases::claim(&self.state.db, worker, n, self.lease_ms(), sweeps.as_deref(), false).await?;
                metrics::counter!(crate::metrics::LEASES_GRANTED).increment(next.len() as u64);
                for t in &next {
                    self.state.changed(t.sweep_id);
                }
            }
        }
        self.notify_trial(fence.trial).await;
        Ok(Response::new(pb::CompleteResponse { next: next.into_iter().map(leased).collect() }))
    }

    #[instrument(skip_all, fields(trial_id, attempt))]
    async fn fail(&self, req: Request<pb::FailRequest>) -> Result<Response<pb::AckResponse>, Status> {
        let worker = auth::worker(&self.state.db, &self.state.worker_auth, &req).await?;
        let r = req.into_inner();
        let fence = fence(worker, r.trial.as_ref())?;
        let kind = kind(r.kind)?;
        let error: String = r.error.chars().take(4096).collect();
        let mut conn = self.state.db.acquire().await.map_err(CoordinatorError::from)?;
        let state = leases::fail(&mut conn, &fence, kind, &error, self.state.settings.backoff_ms).await?;
        drop(conn);
        tracing::warn!(%worker, ?kind, new_state = %state, error = %error, "trial attempt failed");
        // A transient error is the machine's fault as much as the trial's: too many in a
        // row quarantine the worker. (A user error says nothing about the worker.)
        if kind == leases::FailureKind::Transient
            && workers::infra_failure(&self.state.db, worker, self.state.settings.quarantine_after).await?
        {
            tracing::warn!(%worker, "worker quarantined: too many infrastructure failures in a row");
        }
        if state == TrialState::Queued {
            self.state.work.notify_waiters();
        } else {
            crate::metrics::finished(state);
            crate::propose::after_trial_ended(&self.state, fence.trial).await;
        }
        self.notify_trial(fence.trial).await;
        Ok(Response::new(pb::AckResponse {}))
    }

    #[instrument(skip_all, fields(trial_id, attempt))]
    async fn release(&self, req: Request<pb::TrialRef>) -> Result<Response<pb::AckResponse>, Status> {
        self.hand_back(req, false).await
    }

    #[instrument(skip_all, fields(trial_id, attempt))]
    async fn preempt(&self, req: Request<pb::TrialRef>) -> Result<Response<pb::AckResponse>, Status> {
        self.hand_back(req, true).await
    }

    #[instrument(skip_all, fields(trial_id, attempt))]
    async fn save_checkpoint(&self, req: Request<pb::CheckpointRequest>) -> Result<Response<pb::AckResponse>, Status> {
        let worker = auth::worker(&self.state.db, &self.state.worker_auth, &req).await?;
        let r = req.into_inner();
        let fence = fence(worker, r.trial.as_ref())?;
        let sha = r.sha256.as_str();
        if !crate::blobs::is_sha256(sha) {
            return Err(CoordinatorError::InvalidArgument(format!("sha256: `{sha}` is not a SHA-256")).into());
        }
        // Recorded only if its blob is in the store (the worker uploaded it first).
        if self.state.blobs.stored(sha).await?.is_none() {
            return Err(
                CoordinatorError::FailedPrecondition(format!("checkpoint blob {sha} is not in the store")).into()
            );
        }
        let mut conn = self.state.db.acquire().await.map_err(CoordinatorError::from)?;
        let replaced = leases::save_checkpoint(&mut conn, &fence, sha, r.epoch).await?;
        drop(conn);
        tracing::info!(%worker, epoch = r.epoch, "checkpoint recorded");
        if let Some(old) = replaced {
            if let Err(e) = self.state.blobs.delete_unreferenced(&self.state.db, &old).await {
                tracing::warn!(blob = %old, error = %e, "replaced checkpoint not deleted");
            }
        }
        Ok(Response::new(pb::AckResponse {}))
    }
}

impl AgentApi {
    /// A trial handed back untouched (released, or preempted by a spot notice): queued
    /// again at once, no attempt budget spent.
    async fn hand_back(
        &self,
        req: Request<pb::TrialRef>,
        preempted: bool,
    ) -> Result<Response<pb::AckResponse>, Status> {
        let worker = auth::worker(&self.state.db, &self.state.worker_auth, &req).await?;
        let fence = fence(worker, Some(req.get_ref()))?;
        let mut conn = self.state.db.acquire().await.map_err(CoordinatorError::from)?;
        leases::release(&mut conn, &fence, preempted).await?;
        drop(conn);
        tracing::info!(%worker, preempted, "trial handed back");
        self.state.work.notify_waiters();
        self.notify_trial(fence.trial).await;
        Ok(Response::new(pb::AckResponse {}))
    }
}

/// The fence of a worker write, recorded on the handler's span.
fn fence(worker: uuid::Uuid, r: Option<&pb::TrialRef>) -> Result<leases::Fence> {
    let (trial, attempt) = convert::trial_ref(r)?;
    let span = tracing::Span::current();
    span.record("trial_id", tracing::field::display(trial));
    span.record("attempt", attempt);
    Ok(leases::Fence { trial, attempt, worker })
}

impl AgentApi {
    /// Under ASHA, whether a trial that just recorded `epoch` stops there: only at a rung,
    /// against every value recorded at that rung so far (its own included).
    async fn asha_stops(
        &self,
        trial: uuid::Uuid,
        epoch: i32,
        metrics: &std::collections::BTreeMap<String, f64>,
    ) -> Result<bool> {
        let Some(rule) = trials::early_stop(&self.state.db, trial).await? else { return Ok(false) };
        let sweep_file::EarlyStop::Asha { min_epochs, reduction_factor, max_epochs } = rule.rule;
        let at_rung = sweep_search::asha::rungs(min_epochs, reduction_factor, max_epochs).contains(&(epoch as u32));
        let Some(value) = metrics.get(&rule.metric).filter(|_| at_rung) else { return Ok(false) };
        // Off a rung nothing more is read: the rung's values only where there is a decision.
        let values = trials::rung_values(&self.state.db, rule.sweep, epoch, &rule.metric).await?;
        let maximize = rule.goal == sweep_file::Goal::Maximize;
        let decision = sweep_search::asha::decide(*value, &values, reduction_factor, maximize);
        tracing::info!(trial_id = %trial, epoch, value, rivals = values.len(), ?decision, "asha rung");
        Ok(decision == sweep_search::asha::Decision::Stop)
    }

    /// Tells watchers which sweep a trial belongs to changed.
    async fn notify_trial(&self, trial: uuid::Uuid) {
        if self.state.changes.receiver_count() == 0 {
            return;
        }
        if let Ok(Some(s)) = trials::sweep_of(&self.state.db, trial).await {
            self.state.changed(s);
        }
    }
}
