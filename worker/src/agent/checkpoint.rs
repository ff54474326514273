//! Checkpoints to and from the blob store: fetched (through the cache) for a re-leased
//! attempt to resume from, uploaded and recorded as a trial's latest as they are taken.

use sweep_proto as pb;
use tonic::Code;

use super::member::Slot;
use super::running::Stop;
use super::Agent;

impl Agent {
    /// The bytes of checkpoint `sha` (through the blob cache), or None to start over.
    pub(super) async fn checkpoint_bytes(&self, trial: &pb::TrialRef, sha: &str) -> Option<Vec<u8>> {
        let read = async {
            let path = self.blobs.path(sha).await?;
            tokio::fs::read(&path)
                .await
                .map_err(|e| sweep_trainer::train::TrainError::Transient(format!("read {}: {e}", path.display())))
        };
        match read.await {
            Ok(bytes) => {
                tracing::info!(trial_id = %trial.trial_id, checkpoint = %sha, "resuming from the checkpoint");
                Some(bytes)
            }
            Err(e) => {
                tracing::warn!(trial_id = %trial.trial_id, error = %e, "checkpoint not fetched: starting over");
                None
            }
        }
    }

    /// Puts a checkpoint in the blob store and records it as the trial's latest.
    pub(super) async fn save_checkpoint(&self, slot: &Slot, epoch: u32, bytes: Vec<u8>) {
        let trial = &slot.trial;
        let sha = match self.blobs.upload_bytes(&bytes).await {
            Ok(sha) => sha,
            Err(e) => {
                return tracing::warn!(trial_id = %trial.trial_id, error = %format!("{e:#}"), "checkpoint not uploaded")
            }
        };
        let req = pb::CheckpointRequest { trial: Some(trial.clone()), sha256: sha, epoch };
        match self.call("checkpoint", req, |mut c, r| async move { c.save_checkpoint(r).await }).await {
            Ok(_) => tracing::info!(trial_id = %trial.trial_id, epoch, bytes = bytes.len(), "checkpoint saved"),
            Err(e) if matches!(e.code(), Code::FailedPrecondition | Code::PermissionDenied) => {
                tracing::warn!(trial_id = %trial.trial_id, message = e.message(), "lease lost, stopping");
                slot.running.stop(Stop::LeaseLost);
            }
            Err(e) => tracing::warn!(code = ?e.code(), message = e.message(), "checkpoint not recorded"),
        }
    }
}
