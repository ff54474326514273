//! The lease loop: fills free slots (a slot holds one trial, or with `--fuse` one
//! stacked group), chains a finished trial into the next one its completion leased, and
//! on shutdown drains: running trials get the grace period, then are handed back.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use sweep_client::with_retry;
use sweep_proto as pb;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tracing::Instrument;

use super::member::Slot;
use super::running::{Key, Stop};
use super::{Agent, Fuse};

impl Agent {
    /// Leases trials into free slots until `shutdown` fires or the queue has stayed
    /// empty for `--exit-when-idle-secs`. A refused credential ends the agent.
    pub(super) async fn lease_loop(
        self: &Arc<Self>,
        tasks: &mut JoinSet<()>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let idle_limit = Duration::from_secs(self.settings.exit_when_idle_secs);
        let mut idle_since = tokio::time::Instant::now();
        while !shutdown.is_cancelled() {
            while let Some(done) = tasks.try_join_next() {
                if let Err(e) = done {
                    tracing::error!(error = %e, "trial task panicked");
                }
            }
            let fusing = self.fuse != Fuse::Fixed(1);
            let busy = if fusing { self.groups.load(Ordering::Relaxed) } else { self.running.len() };
            let free = self.settings.slots as usize - busy;
            if free == 0 {
                tokio::select! { _ = tasks.join_next() => {}, _ = shutdown.cancelled() => {} }
                continue;
            }
            let max_trials = if fusing { self.fuse.lease_at_most() } else { free };
            let req = pb::LeaseRequest { max_trials: max_trials as u32, wait_ms: 2_000, fuse: fusing };
            let lease = with_retry("lease", shutdown, || {
                let mut c = self.api.clone();
                async move { c.lease(req).await }
            });
            // Idle with nothing running, the time spent failing to reach the coordinator
            // counts too: a worker whose coordinator is gone still exits. (The margin is
            // more than the long poll's wait, so an answering coordinator is never cut off.)
            let idle_budget = (!idle_limit.is_zero() && self.running.is_empty())
                .then(|| idle_limit.saturating_sub(idle_since.elapsed()) + Duration::from_secs(5));
            let lease = async {
                match idle_budget {
                    Some(budget) => tokio::time::timeout(budget, lease).await.ok(),
                    None => Some(lease.await),
                }
            };
            let lease = tokio::select! { r = lease => r, _ = shutdown.cancelled() => break };
            let Some(lease) = lease else {
                tracing::warn!("no answer from the coordinator and nothing running for --exit-when-idle-secs: exiting");
                break;
            };
            let leased = match lease {
                Ok(r) => r.into_inner().trials,
                Err(e) if e.code() == Code::Unauthenticated => {
                    anyhow::bail!("the coordinator refused this worker: {}", e.message())
                }
                Err(e) => {
                    tracing::warn!(code = ?e.code(), message = e.message(), "lease failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            if !leased.is_empty() {
                idle_since = tokio::time::Instant::now();
            } else if !idle_limit.is_zero() && self.running.is_empty() && idle_since.elapsed() >= idle_limit {
                tracing::info!("queue empty, exiting (--exit-when-idle-secs)");
                break;
            }
            if fusing && !leased.is_empty() {
                self.start_group(tasks, leased);
            } else {
                for t in leased {
                    self.start(tasks, t);
                }
            }
        }
        Ok(())
    }

    /// Starts a leased trial in its own task. The task goes on with the trials its
    /// completion leases in the same call (one round trip per trial), so the slot stays
    /// busy. Each trial is registered as running before the lease loop can look again (here
    /// for the first; for the next, before the finished one leaves its slot), so the loop
    /// never sees a slot free that is not.
    fn start(self: &Arc<Self>, tasks: &mut JoinSet<()>, t: pb::LeasedTrial) {
        let first = self.slot(&t);
        let agent = self.clone();
        tasks.spawn(async move {
            let (mut t, mut slot) = (t, first);
            loop {
                let span = tracing::info_span!("trial", trial_id = %slot.trial.trial_id, attempt = slot.trial.attempt);
                let key = slot.key.clone();
                let next = agent.run_one(slot, t).instrument(span).await;
                let next_slot = next.as_ref().map(|n| agent.slot(n));
                agent.running.remove(&key);
                match (next, next_slot) {
                    (Some(n), Some(s)) => (t, slot) = (n, s),
                    _ => break,
                }
            }
        });
    }

    /// Starts a leased group (trials of one fuse key) as one stacked training in its own task.
    fn start_group(self: &Arc<Self>, tasks: &mut JoinSet<()>, group: Vec<pb::LeasedTrial>) {
        let slots: Vec<Slot> = group.iter().map(|t| self.slot(t)).collect();
        let keys: Vec<Key> = slots.iter().map(|s| s.key.clone()).collect();
        self.groups.fetch_add(1, Ordering::Relaxed);
        let agent = self.clone();
        tasks.spawn(async move {
            let span = tracing::info_span!("group", trials = group.len());
            agent.run_group(slots.into_iter().zip(group).collect()).instrument(span).await;
            for key in &keys {
                agent.running.remove(key);
            }
            agent.groups.fetch_sub(1, Ordering::Relaxed);
        });
    }

    /// Lets running trials finish within the grace period, then hands the rest back.
    pub(super) async fn drain(&self, tasks: &mut JoinSet<()>) {
        let n = self.running.len();
        if n == 0 {
            return;
        }
        let grace = Duration::from_secs(self.settings.grace_secs);
        tracing::info!(running = n, grace_secs = grace.as_secs(), "draining");
        let all_done = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all_done).await.is_err() {
            self.running.stop_all(Stop::Draining);
            while tasks.join_next().await.is_some() {}
        }
    }
}
