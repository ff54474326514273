//! Retrying a call while the coordinator is unreachable.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::{Code, Status};

/// Whether a failed call may pass if sent again: the coordinator or its database was
/// unreachable, not the request refused.
pub fn is_transient(s: &Status) -> bool {
    matches!(s.code(), Code::Unavailable | Code::Unknown | Code::DeadlineExceeded | Code::Internal)
}

/// Calls `f` until it succeeds or fails for a reason other than an unreachable
/// coordinator, backing off from 100 ms to 5 s; gives up with the last error when `stop` fires.
pub async fn with_retry<T, F, Fut>(what: &str, stop: &CancellationToken, mut f: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut delay = Duration::from_millis(100);
    loop {
        match f().await {
            Err(s) if is_transient(&s) => {
                tracing::warn!(call = what, code = ?s.code(), message = s.message(), "coordinator unreachable, retrying");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.cancelled() => return Err(s),
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}
