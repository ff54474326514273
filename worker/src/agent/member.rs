//! A leased trial decoded once into a typed value: its config with the data files it
//! reads put in place locally (blobs fetched into the cache, `s3://` objects too) and
//! only then checked, its checkpoint, and the handle that stops it.

use std::sync::Arc;

use sweep_file::TrialConfig;
use sweep_proto as pb;
use sweep_trainer::train::TrainError;

use super::running::{Key, Running};
use super::Agent;

/// A trial leased by this worker and registered as running.
#[derive(Clone)]
pub(super) struct Slot {
    pub key: Key,
    pub trial: pb::TrialRef,
    pub running: Arc<Running>,
}

/// A slot whose config is decoded: ready to train.
pub(super) struct Member {
    pub slot: Slot,
    pub config: TrialConfig,
    /// The checkpoint to resume from, if an earlier attempt left one.
    pub checkpoint: Option<String>,
}

/// The config as sent, read but not yet checked (its data may still be blobs).
pub(super) fn decode_json(json: &str) -> Result<TrialConfig, TrainError> {
    serde_json::from_str(json).map_err(|e| TrainError::User(format!("trial config: {e}")))
}

/// Range checks and the files each dataset kind needs, as for a sweep file.
pub(super) fn check(cfg: TrialConfig) -> Result<TrialConfig, TrainError> {
    match cfg.check().into_iter().next() {
        Some((field, problem)) => Err(TrainError::User(format!("{field}: {problem}"))),
        None => Ok(cfg),
    }
}

impl Agent {
    /// Records a leased trial as running here (heartbeats extend its lease from now on).
    pub(super) fn slot(&self, t: &pb::LeasedTrial) -> Slot {
        let trial = pb::TrialRef { trial_id: t.trial_id.clone(), attempt: t.attempt };
        let (key, running) = self.running.add(&trial);
        Slot { key, trial, running }
    }

    /// Decodes a leased trial: data files fetched and put in place, then checked.
    pub(super) async fn member(&self, slot: Slot, t: pb::LeasedTrial) -> Result<Member, (Slot, TrainError)> {
        let decoded = async {
            let mut config = decode_json(&t.config_json)?;
            self.blobs.materialize(&mut config.dataset).await?;
            check(config)
        };
        match decoded.await {
            Ok(config) => {
                let checkpoint = (!t.checkpoint_sha256.is_empty()).then_some(t.checkpoint_sha256);
                Ok(Member { slot, config, checkpoint })
            }
            Err(e) => Err((slot, e)),
        }
    }
}
