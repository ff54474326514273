//! Change notices across coordinators: every change a coordinator makes to a sweep wakes
//! its own watch streams at once (a broadcast in memory) and is announced on the Postgres
//! channel `sweep_changed`, so the watch streams and dashboards on the other coordinators
//! sharing the database wake too instead of waiting for their periodic tick.
//!
//! Announcements are coalesced (each sweep at most once per 50 ms) and sent off the
//! request path; a notice carries the sender's id so it does not wake itself twice.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::state::AppState;

pub const CHANNEL: &str = "sweep_changed";

/// Sends the sweeps `changed` reports as notifications, coalesced.
pub async fn announce(state: Arc<AppState>, mut changed: mpsc::UnboundedReceiver<Uuid>, stop: CancellationToken) {
    loop {
        let first = tokio::select! {
            _ = stop.cancelled() => return,
            s = changed.recv() => match s { Some(s) => s, None => return },
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut sweeps = BTreeSet::from([first]);
        while let Ok(s) = changed.try_recv() {
            sweeps.insert(s);
        }
        for s in sweeps {
            let payload = format!("{}:{s}", state.instance);
            if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(payload).execute(&state.db).await
            {
                tracing::debug!(error = %e, "change notice not sent (other coordinators fall back to their tick)");
            }
        }
    }
}

/// Wakes this coordinator's watch streams for changes other coordinators announce.
/// Reconnects after a lost connection; meanwhile the streams' periodic tick covers.
pub async fn listen(state: Arc<AppState>, stop: CancellationToken) {
    while !stop.is_cancelled() {
        let mut listener = match PgListener::connect_with(&state.db).await {
            Ok(mut l) => match l.listen(CHANNEL).await {
                Ok(()) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "listen for change notices");
                    pause(&stop).await;
                    continue;
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "connect for change notices");
                pause(&stop).await;
                continue;
            }
        };
        loop {
            let n = tokio::select! {
                _ = stop.cancelled() => return,
                n = listener.recv() => n,
            };
            let Ok(n) = n else { break };
            let Some((from, sweep)) = n.payload().split_once(':') else { continue };
            if from != state.instance.to_string() {
                if let Ok(sweep) = sweep.parse() {
                    state.wake(sweep);
                }
            }
        }
    }
}

async fn pause(stop: &CancellationToken) {
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
    }
}
