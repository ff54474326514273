//! What the coordinator reports to Prometheus (`--metrics-listen`), through the
//! `metrics` facade: counters and histograms where things happen, gauges of the store's
//! state sampled by a maintenance service, and every RPC's latency by a tower layer.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tonic::codegen::http;

use crate::error::Result;
use crate::maintenance::Maintenance;
use crate::state::AppState;
use crate::states::{TrialState, WorkerState};

/// Trials leased to workers.
pub const LEASES_GRANTED: &str = "sweep_leases_granted_total";
/// Leases that expired (worker lost) and were reaped.
pub const LEASES_EXPIRED: &str = "sweep_leases_expired_total";
/// Trials that reached a terminal state, by state: its rate is trials/s.
pub const TRIALS_FINISHED: &str = "sweep_trials_finished_total";
/// Time of the claim statement in a lease call (without the long-poll wait).
pub const CLAIM_SECONDS: &str = "sweep_claim_duration_seconds";
/// Every RPC's latency, by method.
pub const RPC_SECONDS: &str = "sweep_rpc_duration_seconds";
/// 1 on the coordinator that runs maintenance, 0 on the others.
pub const MAINTENANCE_LEADER: &str = "sweep_maintenance_leader";
/// Trials by sweep and state; the queue depth; workers by state (sampled).
pub const TRIALS: &str = "sweep_trials";
pub const QUEUE_DEPTH: &str = "sweep_queue_depth";
pub const WORKERS: &str = "sweep_workers";

/// A trial reached a terminal state.
pub fn finished(state: crate::states::TrialState) {
    metrics::counter!(TRIALS_FINISHED, "state" => state.as_str()).increment(1);
}

/// Samples the store into gauges every `every`.
pub struct Sampler {
    pub state: Arc<AppState>,
    pub every: Duration,
}

impl Maintenance for Sampler {
    /// Rows sampled.
    type Report = usize;
    const NAME: &'static str = "metrics-sampler";

    fn period(&self) -> Duration {
        self.every
    }

    async fn run_once(&self) -> Result<usize> {
        let trials = crate::db::stats::trials_by_sweep(&self.state.db).await?;
        // Every state of every sweep, 0 where it has no trials: a gauge not set again would
        // keep its last value.
        let sweeps: std::collections::BTreeSet<&String> = trials.iter().map(|(s, _, _)| s).collect();
        let count = |sweep: &str, state: TrialState| {
            trials.iter().filter(|(s, st, _)| s == sweep && *st == state).map(|(_, _, n)| *n).sum::<i64>()
        };
        let mut queued = 0;
        for sweep in sweeps {
            for state in TrialState::ALL {
                let n = count(sweep, *state);
                metrics::gauge!(TRIALS, "sweep" => sweep.clone(), "state" => state.as_str()).set(n as f64);
                if *state == TrialState::Queued {
                    queued += n;
                }
            }
        }
        metrics::gauge!(QUEUE_DEPTH).set(queued as f64);
        let workers = crate::db::stats::workers(&self.state.db).await?;
        for s in WorkerState::ALL {
            let n = workers.iter().find(|(w, _)| w == s).map_or(0, |(_, n)| *n);
            metrics::gauge!(WORKERS, "state" => s.as_str()).set(n as f64);
        }
        Ok(trials.len() + workers.len())
    }
}

/// A tower layer that records each call's latency under its gRPC method path.
#[derive(Clone, Default)]
pub struct RpcLatency;

impl<S> tower::Layer<S> for RpcLatency {
    type Service = Timed<S>;
    fn layer(&self, inner: S) -> Timed<S> {
        Timed(inner)
    }
}

#[derive(Clone)]
pub struct Timed<S>(S);

impl<S, B> tower::Service<http::Request<B>> for Timed<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req.uri().path().to_string();
        let started = Instant::now();
        let fut = self.0.call(req);
        Box::pin(async move {
            let out = fut.await;
            metrics::histogram!(RPC_SECONDS, "method" => method).record(started.elapsed().as_secs_f64());
            out
        })
    }
}
