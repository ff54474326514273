//! Training on a blocking thread: the dataset (loaded once per process), then a stack of
//! members trained together while each epoch's metrics and each checkpoint travel back
//! over a channel to be reported.

use std::sync::Arc;

use sweep_trainer::checkpoint::Checkpoint;
use sweep_trainer::data::{Dataset, DatasetCache};
use sweep_trainer::train::{self, EpochReport, TrainError, TrialResult};

use super::member::Member;
use super::Agent;

/// What the training thread hands the agent, by index in its stack.
enum Msg {
    Epoch(usize, EpochReport),
    /// Epochs finished, and the checkpoint's bytes.
    Checkpoint(usize, u32, Vec<u8>),
}

/// Reads a dataset through the cache. Whatever goes wrong in reading it, a panic in a
/// reader or a library under it included, is the data's fault (the trial's `user`
/// failure), never the worker's: a bad file must not get a healthy worker quarantined.
fn load(cache: &DatasetCache, d: &sweep_file::DatasetConfig) -> Result<Arc<Dataset>, TrainError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cache.get(d))) {
        Ok(loaded) => loaded.map_err(|e| TrainError::User(e.to_string())),
        Err(panic) => {
            let why = sweep_trainer::data::panic_message(panic.as_ref()).unwrap_or("a panic");
            let why: String = why.chars().take(300).collect();
            Err(TrainError::User(format!("reading the dataset failed inside a reader ({why}): the data is malformed")))
        }
    }
}

impl Agent {
    /// The trial's dataset, loaded once per process (off the async threads).
    pub(super) async fn dataset(&self, cfg: &sweep_file::TrialConfig) -> Result<Arc<Dataset>, TrainError> {
        let (cache, dataset) = (self.cache.clone(), cfg.dataset.clone());
        let loaded = tokio::task::spawn_blocking(move || load(&cache, &dataset))
            .await
            .unwrap_or_else(|e| Err(TrainError::User(format!("reading the dataset failed: {e}"))));
        if cfg.dataset.kind() == sweep_file::DatasetKind::Text {
            // It may have written a featurized dataset into the cache directory.
            self.blobs.trim_to_limit();
        }
        loaded
    }

    /// Trains members of one dataset as one stack on a blocking thread (the span carried
    /// into it), resuming those with a checkpoint, while forwarding each epoch's metrics
    /// and uploading each checkpoint the trainer hands over.
    pub(super) async fn train_stack(
        &self,
        members: &[Member],
        ds: Arc<Dataset>,
    ) -> Vec<Result<TrialResult, TrainError>> {
        let mut resume = Vec::new();
        for m in members {
            resume.push(match &m.checkpoint {
                Some(sha) => self.checkpoint_bytes(&m.slot.trial, sha).await,
                None => None,
            });
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let cfgs: Vec<sweep_file::TrialConfig> = members.iter().map(|m| m.config.clone()).collect();
        let controls: Vec<Arc<train::Control>> = members.iter().map(|m| m.slot.running.control.clone()).collect();
        let (device, span, n) = (self.device, tracing::Span::current(), members.len());
        let cache = self.cache.clone();
        let work = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            if let ([cfg], [control]) = (&cfgs[..], &controls[..]) {
                if cfg.dataset.cv_refit {
                    // Its folds and its model, one after another; no checkpoints.
                    let load = |d: &sweep_file::DatasetConfig| load(&cache, d);
                    let progress = &mut |r: &EpochReport| drop(tx.send(Msg::Epoch(0, r.clone())));
                    return vec![train::train_refit(cfg, &load, device, progress, control)];
                }
            }
            let (d, l) = (ds.features as i64, ds.labels as i64);
            let sparse = matches!(ds.train.x, sweep_trainer::data::Features::Sparse(_));
            let resume: Vec<Option<Checkpoint>> = resume
                .into_iter()
                .zip(&cfgs)
                .map(|(bytes, cfg)| {
                    Checkpoint::from_bytes(&bytes?, d, &cfg.model.hidden, l, device, sparse)
                        .inspect_err(
                            |e| tracing::warn!(error = %format!("{e:#}"), "checkpoint unreadable: starting over"),
                        )
                        .ok()
                })
                .collect();
            let members = cfgs
                .iter()
                .zip(&controls)
                .zip(resume)
                .map(|((config, control), resume)| train::Member { config, control, resume })
                .collect();
            let progress_tx = tx.clone();
            train::train_stack(
                &ds,
                members,
                device,
                &mut |k, r| drop(progress_tx.send(Msg::Epoch(k, r.clone()))),
                &mut |k, ck| match ck.to_bytes() {
                    Ok(bytes) => drop(tx.send(Msg::Checkpoint(k, ck.state.epochs_done, bytes))),
                    Err(e) => tracing::warn!(error = %format!("{e:#}"), "checkpoint not written"),
                },
            )
        });
        let forward = async {
            while let Some(msg) = rx.recv().await {
                match msg {
                    Msg::Epoch(k, r) => self.forward_progress(&members[k].slot, r).await,
                    Msg::Checkpoint(k, epoch, bytes) => self.save_checkpoint(&members[k].slot, epoch, bytes).await,
                }
            }
        };
        let (outcome, ()) = tokio::join!(work, forward);
        outcome.unwrap_or_else(|e| {
            let why = format!("training thread panicked: {e}");
            (0..n).map(|_| Err(TrainError::Transient(why.clone()))).collect()
        })
    }
}
