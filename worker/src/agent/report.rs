//! Reporting: each epoch's metrics as it ends (the answer may stop the trial at an ASHA
//! rung, or say its lease is lost), and how a trial ended: completed (with its model in
//! the blob store first), pruned, handed back, preempted or failed.

use std::sync::atomic::Ordering;

use sweep_proto as pb;
use sweep_trainer::train::{EpochReport, TrainError, TrialResult};
use tonic::Code;

use super::member::Slot;
use super::running::Stop;
use super::Agent;

/// Seconds per epoch (training and validation), and training samples per second of the
/// latest epoch of any trial.
const EPOCH_SECONDS: &str = "sweep_worker_epoch_duration_seconds";
const SAMPLES_PER_SECOND: &str = "sweep_worker_samples_per_second";

fn record_epoch(r: &EpochReport) {
    if let Some(s) = r.metrics.get("epoch_seconds") {
        metrics::histogram!(EPOCH_SECONDS).record(*s);
    }
    if let Some(s) = r.metrics.get("samples_per_s") {
        metrics::gauge!(SAMPLES_PER_SECOND).set(*s);
    }
}

impl Agent {
    /// Sends one epoch's report; the answer may stop the trial (ASHA) or say its lease is lost.
    pub(super) async fn forward_progress(&self, slot: &Slot, r: EpochReport) {
        record_epoch(&r);
        let trial = &slot.trial;
        let req = pb::ProgressRequest {
            trial: Some(trial.clone()),
            epoch: r.epoch,
            metrics: r.metrics.into_iter().collect(),
        };
        match self.call("progress", req, |mut c, r| async move { c.report_progress(r).await }).await {
            Ok(answer) if answer.stop => {
                tracing::info!(trial_id = %trial.trial_id, "the coordinator stops this trial at a rung (ASHA): finishing pruned");
                slot.running.control.finish.store(true, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(e) if matches!(e.code(), Code::FailedPrecondition | Code::PermissionDenied) => {
                tracing::warn!(trial_id = %trial.trial_id, message = e.message(), "lease lost, stopping");
                slot.running.stop(Stop::LeaseLost);
            }
            Err(e) => tracing::warn!(code = ?e.code(), message = e.message(), "progress not recorded"),
        }
    }

    /// Reports how a trial ended (completed, pruned, handed back, failed); a completion
    /// with `lease_next` also leases the next trial.
    pub(super) async fn report(
        &self,
        slot: &Slot,
        outcome: Result<TrialResult, TrainError>,
        lease_next: bool,
    ) -> Option<pb::LeasedTrial> {
        let trial = slot.trial.clone();
        let stopped_by = slot.running.stopped_by();
        let reported = match outcome {
            Ok(res) => return self.complete(trial, res, lease_next).await,
            Err(TrainError::Cancelled) if stopped_by == Some(Stop::Preempted) => {
                tracing::info!(trial_id = %trial.trial_id, "handing trial back as preempted");
                self.call("preempt", trial, |mut c, r| async move { c.preempt(r).await }).await.map(drop)
            }
            Err(TrainError::Cancelled) if stopped_by == Some(Stop::Draining) => {
                tracing::info!(trial_id = %trial.trial_id, "handing trial back");
                self.call("release", trial, |mut c, r| async move { c.release(r).await }).await.map(drop)
            }
            Err(TrainError::Cancelled) => {
                tracing::info!(trial_id = %trial.trial_id, reason = ?stopped_by, "trial stopped");
                return None;
            }
            Err(e) => {
                let kind =
                    if matches!(e, TrainError::User(_)) { pb::FailureKind::User } else { pb::FailureKind::Transient };
                tracing::warn!(trial_id = %trial.trial_id, error = %e, ?kind, "trial failed");
                let req = pb::FailRequest { trial: Some(trial), error: e.to_string(), kind: kind as i32 };
                self.call("fail", req, |mut c, r| async move { c.fail(r).await }).await.map(drop)
            }
        };
        if let Err(e) = reported {
            not_recorded(&e);
        }
        None
    }

    /// Completes a trial that finished (pruned when the coordinator stopped it at a rung
    /// before its last epoch), its model uploaded first.
    async fn complete(&self, trial: pb::TrialRef, res: TrialResult, lease_next: bool) -> Option<pb::LeasedTrial> {
        tracing::info!(trial_id = %trial.trial_id, best_epoch = res.best_epoch, seconds = res.seconds, "trial finished");
        // Stopped at the coordinator's word (ASHA) before its last epoch; a trial the
        // word reached only after its last epoch simply succeeded.
        let pruned = res.stopped_early;
        // The model goes to the blob store first; a failed upload costs the model, not the result.
        let model_sha256 = match (&res.model, pruned) {
            (Some(model), false) => match self.blobs.upload_model(model).await {
                Ok(sha) => sha,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "model not uploaded; the result is reported without it");
                    String::new()
                }
            },
            _ => String::new(),
        };
        let req = pb::CompleteRequest {
            trial: Some(trial),
            metrics: res.metrics.clone().into_iter().collect(),
            result_json: serde_json::to_string(&res).unwrap_or_default(),
            lease_next: u32::from(lease_next),
            pruned,
            model_sha256,
        };
        match self.call("complete", req, |mut c, r| async move { c.complete(r).await }).await {
            Ok(done) => done.next.into_iter().next(),
            Err(e) => {
                not_recorded(&e);
                None
            }
        }
    }
}

fn not_recorded(e: &tonic::Status) {
    tracing::warn!(code = ?e.code(), message = e.message(), "result not recorded (the lease was lost; another attempt owns the trial)");
}
