//! What the agent watches while trials run: heartbeats (which extend the running
//! trials' leases and bring back cancel and lease-lost directives) and the instance
//! metadata service's spot interruption notice.

use std::sync::Arc;
use std::time::Duration;

use sweep_proto as pb;
use tonic::Code;

use super::running::Stop;
use super::Agent;

impl Agent {
    /// Extends the leases of running trials and applies what the coordinator says
    /// about each (cancelled, lease lost, hand back). An empty heartbeat still says "alive".
    pub(super) async fn heartbeat_loop(self: Arc<Self>, every: Duration) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.reporting.cancelled() => return,
            }
            let mut c = self.api.clone();
            match c.heartbeat(pb::HeartbeatRequest { trials: self.running.refs() }).await {
                Ok(r) => {
                    for d in r.into_inner().directives {
                        let why = match pb::Action::try_from(d.action) {
                            Ok(pb::Action::Cancel) => Stop::Cancelled,
                            Ok(pb::Action::LeaseLost) => Stop::LeaseLost,
                            // A budget is spent: checkpoint and hand it back, as when draining.
                            Ok(pb::Action::HandBack) => Stop::Draining,
                            _ => continue,
                        };
                        let Some(t) = d.trial else { continue };
                        if self.running.stop(&t, why) {
                            tracing::warn!(trial_id = %t.trial_id, attempt = t.attempt, reason = ?why, "stopping trial");
                        }
                    }
                }
                Err(e) if e.code() == Code::Unauthenticated => {
                    // Revoked: the coordinator already took our leases back.
                    tracing::error!(message = e.message(), "credential refused, stopping every trial");
                    self.running.stop_all(Stop::LeaseLost);
                }
                Err(e) => tracing::warn!(code = ?e.code(), message = e.message(), "heartbeat failed"),
            }
        }
    }

    /// Polls the metadata service; on a spot interruption (or rebalance) notice, stops
    /// taking work, hands every running trial back as preempted, and ends the agent.
    pub(super) async fn spot_watch(self: Arc<Self>) {
        let imds = match crate::spot::Imds::new(crate::spot::endpoint(self.settings.imds_endpoint.as_deref())) {
            Ok(i) => i,
            Err(e) => return tracing::warn!(error = %e, "no spot watch"),
        };
        if !imds.reachable().await {
            return tracing::debug!("no instance metadata service: no spot watch");
        }
        tracing::info!("watching for spot interruption notices");
        let every = Duration::from_millis(self.settings.imds_poll_ms.max(50));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.shutdown.cancelled() => return,
            }
            match imds.notice().await {
                Ok(Some(notice)) => {
                    tracing::warn!(%notice, "spot interruption notice: handing every trial back and exiting");
                    self.running.stop_all(Stop::Preempted);
                    self.shutdown.cancel();
                    return;
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "instance metadata service did not answer"),
            }
        }
    }
}
