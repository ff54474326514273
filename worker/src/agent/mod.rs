//! The worker agent: registers with a join token, leases as many trials as it has free
//! slots, trains each on its own OS thread, heartbeats, streams per-epoch metrics and
//! reports the result. It stops a trial on cancel or a lost lease, and on SIGTERM takes
//! no new work, lets running trials finish within a grace period, and hands back the
//! rest.
//!
//! The rooms: `settings` (flags), `enrol` (credential), `lease` (the loop that fills
//! slots, and draining), `watch` (heartbeats, spot notices), `running` (what runs now),
//! `member` (a leased trial decoded once), `group` (one trial or a fused group),
//! `stack` (training on its thread),
//! `checkpoint` (checkpoints to and from the blob store), `report` (progress and
//! outcomes), `gpu` (NVML: free memory for `--fuse auto`, the memory metric).

mod checkpoint;
mod enrol;
mod gpu;
mod group;
mod lease;
mod member;
mod report;
mod running;
mod settings;
mod stack;
mod watch;

use std::future::Future;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use sweep_client::{with_retry, Authed};
use sweep_proto as pb;
use sweep_trainer::data::DatasetCache;
use sweep_trainer::train;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::blobcache::{default_cache_dir, BlobCache};
pub use gpu::{auto_k, free_bytes as gpu_free_bytes, model_bytes};
use running::RunningSet;
pub use settings::{AgentSettings, Fuse, FUSE_AUTO_MAX};

type Client = pb::agent_service_client::AgentServiceClient<Authed>;

/// A registered worker and the trials it runs.
struct Agent {
    /// The coordinator, called with this worker's own credential.
    api: Client,
    /// Data files (and models) by hash, cached on this machine.
    blobs: BlobCache,
    /// Where trials train (CPU or a CUDA device).
    device: tch::Device,
    /// Trials running now, each with the handle that stops it.
    running: RunningSet,
    /// Datasets this process has loaded, shared by every trial that names one.
    cache: DatasetCache,
    /// Cancelled once every trial task has ended: until then calls that carry a result
    /// keep retrying through a coordinator outage, so no finished work is dropped.
    reporting: CancellationToken,
    /// Cancelled on SIGTERM: from then on no new work is taken.
    shutdown: CancellationToken,
    /// Trials per stacked group (1: no fusing), and the groups running now.
    fuse: Fuse,
    groups: AtomicUsize,
    settings: AgentSettings,
}

/// Runs the agent until `shutdown` fires (then drains) or it has been idle long enough.
pub async fn run(settings: AgentSettings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let device = train::device(&settings.device)?;
    sweep_trainer::encoder::use_device(device);
    let fuse = Fuse::parse(&settings.fuse, device)?;
    if let Some(n) = settings.threads {
        anyhow::ensure!(n > 0, "--threads must be at least 1");
        tch::set_num_threads(n);
    }
    if let Some(addr) = settings.metrics_listen {
        sweep_client::telemetry::serve_metrics(addr)?;
        if device.is_cuda() {
            tokio::spawn(gpu::memory_loop(shutdown.clone()));
        }
    }
    let channel = sweep_client::connect::channel(&settings.coordinator, &settings.tls)?;
    let (bearer, heartbeat_every) = enrol::enrol(&settings, channel.clone(), &shutdown).await?;
    let api = pb::agent_service_client::AgentServiceClient::with_interceptor(channel.clone(), bearer.clone());
    let cache_dir = settings.cache_dir.clone().unwrap_or_else(default_cache_dir);
    let blobs = BlobCache::new(
        cache_dir.clone(),
        settings.cache_max_bytes,
        pb::blob_service_client::BlobServiceClient::with_interceptor(channel, bearer),
    )?
    .confined_to(settings.data_dir.clone().unwrap_or_else(sweep_file::data_dir));
    let agent = Arc::new(Agent {
        api,
        blobs,
        device,
        running: RunningSet::default(),
        // Featurized text beside the blobs it came from, trimmed by the same size limit.
        cache: DatasetCache::with_dir(cache_dir),
        reporting: CancellationToken::new(),
        shutdown: shutdown.clone(),
        fuse,
        groups: Default::default(),
        settings,
    });
    let heartbeat = tokio::spawn(agent.clone().heartbeat_loop(heartbeat_every));
    if agent.settings.spot_watch != "off" {
        tokio::spawn(agent.clone().spot_watch());
    }
    let mut tasks = JoinSet::new();
    let result = agent.lease_loop(&mut tasks, &shutdown).await;
    agent.drain(&mut tasks).await;
    agent.reporting.cancel();
    let _ = heartbeat.await;
    tracing::info!("worker stopped");
    result
}

impl Agent {
    /// Calls the coordinator with `req`, retrying while it is unreachable until every
    /// trial has reported (see `reporting`).
    async fn call<R, T, F, Fut>(&self, what: &str, req: R, f: F) -> Result<T, Status>
    where
        R: Clone,
        F: Fn(Client, R) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        with_retry(what, &self.reporting, || f(self.api.clone(), req.clone())).await.map(|r| r.into_inner())
    }
}

/// A trial config as `sweep-worker train --config` reads it, checked like a sweep file's.
pub fn parse_config(json: &str) -> Result<sweep_file::TrialConfig, train::TrainError> {
    member::check(member::decode_json(json)?)
}
