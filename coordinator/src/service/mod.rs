//! gRPC services. Generated prost types stop here: requests are checked and turned
//! into domain values once, replies built from store rows once.

pub mod agent;
pub mod client;
mod convert;

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{broadcast, Notify};
use uuid::Uuid;

use crate::error::{CoordinatorError, Result};
use crate::settings::Settings;

/// Shared by both services, the reaper and the watch streams.
pub struct AppState {
    pub db: PgPool,
    pub settings: Settings,
    /// Woken when trials become claimable (submit, requeue); long-polling leases wait on it.
    pub work: Notify,
    /// Which sweep changed; the watch streams follow it.
    pub changes: broadcast::Sender<Uuid>,
    pub worker_auth: crate::auth::WorkerCache,
}

impl AppState {
    pub fn new(db: PgPool, settings: Settings) -> Arc<Self> {
        let (changes, _) = broadcast::channel(4096);
        let worker_auth = crate::auth::WorkerCache::new(Duration::from_millis(settings.lease_ms as u64));
        Arc::new(AppState { db, settings, work: Notify::new(), changes, worker_auth })
    }

    pub fn changed(&self, sweep: Uuid) {
        let _ = self.changes.send(sweep);
    }
}

pub(crate) fn parse_id(field: &str, value: &str) -> Result<Uuid> {
    Uuid::parse_str(value)
        .map_err(|_| CoordinatorError::InvalidArgument(format!("{field}: `{value}` is not a valid id")))
}
