//! The coordinator's maintenance services: each does one pass in `run_once` and says
//! what it did, so tests call a pass instead of waiting for the loop; [`run`] repeats a
//! pass on a period until shutdown. (The fleet reconciler joins them.)

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::db::{trials, workers};
use crate::error::Result;
use crate::service::AppState;
use crate::states::TrialState;

/// One maintenance service.
pub trait Maintenance: Send + Sync + 'static {
    /// What one pass did.
    type Report: std::fmt::Debug + Send;
    const NAME: &'static str;

    /// How long to wait between passes.
    fn period(&self) -> Duration;

    /// One pass; safe to run from several coordinators at once.
    fn run_once(&self) -> impl std::future::Future<Output = Result<Self::Report>> + Send;
}

/// Runs passes of `m` every period until `shutdown`. A failed pass is logged and the
/// next one tried (a database outage passes).
pub async fn run<M: Maintenance>(m: M, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(m.period()) => {}
        }
        match m.run_once().await {
            Ok(report) => tracing::trace!(service = M::NAME, ?report, "maintenance pass"),
            Err(e) => tracing::warn!(service = M::NAME, error = %e, "maintenance pass failed"),
        }
    }
}

/// Returns expired leases to the queue (or marks their trials dead) on the database clock.
pub struct LeaseReaper(pub Arc<AppState>);

/// What one reaper pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reaped {
    /// Trials whose lease expired, queued again.
    pub requeued: usize,
    /// Trials that lost their lease `max_attempts` times.
    pub dead: usize,
}

impl Maintenance for LeaseReaper {
    type Report = Reaped;
    const NAME: &'static str = "lease-reaper";

    fn period(&self) -> Duration {
        Duration::from_millis(self.0.settings.reap_ms.max(10) as u64)
    }

    async fn run_once(&self) -> Result<Reaped> {
        let mut out = Reaped::default();
        for r in trials::reap(&self.0.db).await? {
            tracing::warn!(trial_id = %r.id, new_state = %r.state, "lease expired");
            metrics::counter!(crate::metrics::LEASES_EXPIRED).increment(1);
            match r.state {
                TrialState::Queued => out.requeued += 1,
                state => {
                    crate::metrics::finished(state);
                    out.dead += 1;
                }
            }
            self.0.changed(r.sweep_id);
        }
        if out.requeued > 0 {
            self.0.work.notify_waiters();
        }
        Ok(out)
    }
}

/// Marks workers silent for three lease lengths as gone. A worker's `last_seen_at`
/// advances whenever the coordinator verifies its credential (at least once per
/// credential-cache period while it calls), so a busy worker stays alive.
pub struct Liveness(pub Arc<AppState>);

impl Liveness {
    /// Silence after which a worker counts as gone.
    pub fn gone_after(&self) -> Duration {
        Duration::from_millis(3 * self.0.settings.lease_ms as u64)
    }
}

impl Maintenance for Liveness {
    /// Workers marked gone in this pass.
    type Report = u64;
    const NAME: &'static str = "liveness";

    fn period(&self) -> Duration {
        Duration::from_millis(self.0.settings.reap_ms.max(10) as u64)
    }

    async fn run_once(&self) -> Result<u64> {
        let gone = workers::mark_gone(&self.0.db, self.gone_after().as_millis() as i64).await?;
        if gone > 0 {
            tracing::warn!(workers = gone, "workers silent for three lease lengths marked gone");
        }
        Ok(gone)
    }
}
