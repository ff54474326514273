//! Running what was leased: one trial (whose completion may lease the next), or a
//! fused group, trained as stacks that fit the device (trials resuming from a
//! checkpoint alone), each trial reported on its own.

use super::member::{Member, Slot};
use super::{gpu, Agent, Fuse};
use sweep_proto as pb;

impl Agent {
    /// Trains one leased trial and reports how it ended; a completion also leases the
    /// next trial unless the worker is shutting down.
    pub(super) async fn run_one(&self, slot: Slot, t: pb::LeasedTrial) -> Option<pb::LeasedTrial> {
        tracing::info!(params = %t.params_json, "trial started");
        let member = match self.member(slot, t).await {
            Ok(m) => m,
            Err((slot, e)) => return self.report(&slot, Err(e), false).await,
        };
        let outcome = match self.dataset(&member.config).await {
            Ok(ds) => self.train_stack(std::slice::from_ref(&member), ds).await.pop().expect("one trial, one result"),
            Err(e) => Err(e),
        };
        self.report(&member.slot, outcome, !self.shutdown.is_cancelled()).await
    }

    /// Trains a group as stacks (in chunks that fit the device with `--fuse auto`;
    /// trials resuming from a checkpoint alone) and reports each trial's end on its own.
    pub(super) async fn run_group(&self, group: Vec<(Slot, pb::LeasedTrial)>) {
        // Configs first: one that cannot be read fails alone.
        let mut members = Vec::new();
        for (slot, t) in group {
            match self.member(slot, t).await {
                Ok(m) => members.push(m),
                Err((slot, e)) => drop(self.report(&slot, Err(e), false).await),
            }
        }
        let Some(first) = members.first() else { return };
        let ds = match self.dataset(&first.config).await {
            Ok(ds) => ds,
            Err(e) => {
                for m in &members {
                    drop(self.report(&m.slot, Err(e.clone()), false).await);
                }
                return;
            }
        };
        let per_chunk = self.chunk_size(&ds, &first.config, members.len());
        let (fresh, resuming): (Vec<Member>, Vec<Member>) = members.into_iter().partition(|m| m.checkpoint.is_none());
        tracing::info!(
            trials = fresh.len() + resuming.len(),
            per_chunk,
            resuming = resuming.len(),
            "training a fused group"
        );
        let mut chunks: Vec<Vec<Member>> = Vec::new();
        let mut fresh = fresh.into_iter().peekable();
        while fresh.peek().is_some() {
            chunks.push(fresh.by_ref().take(per_chunk).collect());
        }
        chunks.extend(resuming.into_iter().map(|m| vec![m]));
        for chunk in chunks {
            let outcomes = self.train_stack(&chunk, ds.clone()).await;
            for (m, outcome) in chunk.iter().zip(outcomes) {
                drop(self.report(&m.slot, outcome, false).await);
            }
        }
    }

    /// Trials per stack: the group's size, or with `--fuse auto` as many as fit in 80%
    /// of the GPU's free memory (NVML), at least one.
    fn chunk_size(&self, ds: &sweep_trainer::data::Dataset, cfg: &sweep_file::TrialConfig, n: usize) -> usize {
        if self.fuse != Fuse::Auto {
            return n.max(1);
        }
        let per_model = gpu::model_bytes(ds.features, &cfg.model.hidden, ds.labels, cfg.train.batch_size as usize);
        match gpu::free_bytes(self.device) {
            Some(free) => gpu::auto_k(free, per_model, n),
            None => n.max(1),
        }
    }
}
