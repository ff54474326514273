//! Returns expired leases to the queue (or marks trials dead) on the database clock.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::db::{trials, workers};
use crate::service::AppState;

pub async fn run(state: Arc<AppState>, shutdown: CancellationToken) {
    let every = Duration::from_millis(state.settings.reap_ms.max(10) as u64);
    let gone_after = 3 * state.settings.lease_ms as i64;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match trials::reap(&state.db).await {
            Ok(reaped) => {
                let mut requeued = false;
                for (trial, sweep, new_state) in &reaped {
                    tracing::warn!(trial_id = %trial, new_state = %new_state, "lease expired");
                    requeued |= new_state == "queued";
                    state.changed(*sweep);
                }
                if requeued {
                    state.work.notify_waiters();
                }
            }
            Err(e) => tracing::warn!(error = %e, "reaper pass failed"),
        }
        if let Err(e) = workers::mark_gone(&state.db, gone_after).await {
            tracing::warn!(error = %e, "marking silent workers failed");
        }
    }
}
