//! The coordinator's maintenance services: each does one pass in `run_once` and says
//! what it did, so tests call a pass instead of waiting for the loop; [`run`] repeats a
//! pass on a period until shutdown, on one coordinator at a time ([`Leadership`]) when
//! several share the database. (The fleet reconciler joins them.)

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;

use crate::db::{leases, trials, workers};
use crate::error::Result;
use crate::state::AppState;
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

/// Runs passes of `m` every period until `shutdown`, while this coordinator leads
/// (every pass, when `leader` is None). A failed pass is logged and the next one tried
/// (a database outage passes).
pub async fn run<M: Maintenance>(m: M, leader: Option<Arc<Leadership>>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(m.period()) => {}
        }
        if let Some(leader) = &leader {
            if !leader.check().await {
                continue;
            }
        }
        match m.run_once().await {
            Ok(report) => tracing::trace!(service = M::NAME, ?report, "maintenance pass"),
            Err(e) => tracing::warn!(service = M::NAME, error = %e, "maintenance pass failed"),
        }
    }
}

/// Which coordinator runs maintenance: the one holding a Postgres advisory lock on a
/// connection of its own (not a pooled one, so the lock can never be left behind in the
/// pool). When that coordinator dies its session ends, the database releases the lock,
/// and another coordinator takes over at its next check.
pub struct Leadership {
    options: PgConnectOptions,
    held: tokio::sync::Mutex<Option<PgConnection>>,
}

/// The advisory lock key of maintenance ("SWEEP" + 1).
const MAINTENANCE_LOCK: i64 = 0x5357_4545_5001;

impl Leadership {
    pub fn new(database_url: &str) -> anyhow::Result<Leadership> {
        Ok(Leadership { options: database_url.parse()?, held: Default::default() })
    }

    /// Whether this coordinator leads now: keeps the lock while its connection answers,
    /// else tries to take it.
    pub async fn check(&self) -> bool {
        let mut held = self.held.lock().await;
        if let Some(conn) = held.as_mut() {
            if crate::db::locks::ping(conn).await {
                return true;
            }
            tracing::warn!("maintenance lock connection lost; no longer the maintenance leader");
            *held = None; // dropping the connection ends the session and its lock
        }
        let leads = match PgConnection::connect_with(&self.options).await {
            Ok(mut conn) => {
                if crate::db::locks::try_lock(&mut conn, MAINTENANCE_LOCK).await.is_ok_and(|g| g) {
                    tracing::info!("this coordinator runs maintenance now");
                    *held = Some(conn);
                }
                held.is_some()
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach the database for the maintenance lock");
                false
            }
        };
        metrics::gauge!(crate::metrics::MAINTENANCE_LEADER).set(if leads { 1.0 } else { 0.0 });
        leads
    }
}

/// How often the lease reaper and the liveness check run (`--reap-ms`, at least 10 ms).
fn reap_period(state: &AppState) -> Duration {
    Duration::from_millis(state.settings.reap_ms.max(10) as u64)
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
        reap_period(&self.0)
    }

    async fn run_once(&self) -> Result<Reaped> {
        let mut out = Reaped::default();
        for r in leases::reap(&self.0.db).await? {
            tracing::warn!(trial_id = %r.id, new_state = %r.state, "lease expired");
            metrics::counter!(crate::metrics::LEASES_EXPIRED).increment(1);
            match r.state {
                TrialState::Queued => out.requeued += 1,
                state => {
                    crate::metrics::finished(state);
                    out.dead += 1;
                    crate::propose::top_up_or_warn(&self.0, r.sweep_id).await;
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

/// Deletes the checkpoints of trials that ended without succeeding (failed, dead,
/// cancelled): nothing will resume them.
pub struct CheckpointSweeper(pub Arc<AppState>);

impl Maintenance for CheckpointSweeper {
    /// Checkpoint blobs deleted in this pass.
    type Report = usize;
    const NAME: &'static str = "checkpoint-sweeper";

    fn period(&self) -> Duration {
        reap_period(&self.0) * 5
    }

    async fn run_once(&self) -> Result<usize> {
        let blobs = trials::drop_ended_checkpoints(&self.0.db).await?;
        for blob in &blobs {
            if let Err(e) = self.0.blobs.delete_unreferenced(&self.0.db, blob).await {
                tracing::warn!(%blob, error = %e, "checkpoint of an ended trial not deleted");
            }
        }
        if !blobs.is_empty() {
            tracing::info!(checkpoints = blobs.len(), "checkpoints of ended trials deleted");
        }
        Ok(blobs.len())
    }
}

/// Deletes unfinished uploads left untouched for a day (each coordinator its own staging
/// directory: it runs on every coordinator, not only the leader).
pub struct StagingSweeper(pub Arc<AppState>);

/// How long an unfinished upload is kept without a byte added.
pub const STAGED_UPLOAD_TTL: Duration = Duration::from_secs(24 * 3600);

impl Maintenance for StagingSweeper {
    /// Unfinished uploads deleted in this pass.
    type Report = usize;
    const NAME: &'static str = "staging-sweeper";

    fn period(&self) -> Duration {
        Duration::from_secs(600)
    }

    async fn run_once(&self) -> Result<usize> {
        let n = self.0.blobs.expire_partials(STAGED_UPLOAD_TTL).await?;
        if n > 0 {
            tracing::info!(uploads = n, "unfinished uploads untouched for a day deleted");
        }
        Ok(n)
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
        reap_period(&self.0)
    }

    async fn run_once(&self) -> Result<u64> {
        let gone = workers::mark_gone(&self.0.db, self.gone_after().as_millis() as i64).await?;
        if gone > 0 {
            tracing::warn!(workers = gone, "workers silent for three lease lengths marked gone");
        }
        Ok(gone)
    }
}
