//! The worker agent: registers with a join token, leases as many trials as it has free
//! slots, trains each on its own OS thread, heartbeats, streams per-epoch metrics and
//! reports the result. It stops a trial on cancel or a lost lease, and on SIGTERM takes
//! no new work, lets running trials finish within a grace period, and hands back the
//! rest.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use sweep_client::{read_token, with_retry, Authed, Bearer, TlsArgs};
use sweep_proto as pb;
use sweep_trainer::data::DatasetCache;

use crate::blobcache::{default_cache_dir, BlobCache};
use sweep_trainer::checkpoint::Checkpoint;
use sweep_trainer::train::{self, TrainError, TrialResult};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tracing::Instrument;

#[derive(Debug, Clone, clap::Args)]
pub struct AgentSettings {
    /// Coordinator URL (https:// for TLS), or several sharing one database, comma-separated.
    #[arg(long, env = "SWEEP_COORDINATOR", default_value = "http://127.0.0.1:50051")]
    pub coordinator: String,
    /// File holding the join token (or set SWEEP_JOIN_TOKEN). Never a flag: `ps` shows flags.
    #[arg(long, env = "SWEEP_JOIN_TOKEN_FILE")]
    pub join_token_file: Option<PathBuf>,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Trials run at once (with --fuse, stacked groups run at once).
    #[arg(long, default_value_t = 1)]
    pub slots: u32,
    /// Lease up to K trials that share a fuse key (dataset, hidden widths, batch size,
    /// epochs) at once and train them as one stacked model: one batched forward and
    /// backward per step for all K, each trial still with its own seed, data order,
    /// settings, early stopping, metrics and result. `auto`: as many as fit in free GPU
    /// memory (at most 32; 1 on CPU). Trials whose keys differ still run, in other groups.
    #[arg(long, default_value = "1")]
    pub fuse: String,
    /// auto, cpu or cuda.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// libtorch CPU threads (default: libtorch's choice, one per core). Several workers
    /// on one machine should split the cores between them.
    #[arg(long)]
    pub threads: Option<i32>,
    /// Name shown in `sweep workers` (default: host name and pid).
    #[arg(long)]
    pub name: Option<String>,
    /// After SIGTERM, how long running trials may take to finish before they are handed back.
    #[arg(long, default_value_t = 30)]
    pub grace_secs: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics (trials running, epoch time, samples/s).
    #[arg(long, env = "SWEEP_WORKER_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Exit once the queue has been empty this long (0: never). For local runs, tests,
    /// and fleet instances (whose bootstrap powers the instance off after a clean exit).
    #[arg(long, default_value_t = 0)]
    pub exit_when_idle_secs: u64,
    /// Keep this worker's credential here (0600) after registering, and use it instead of
    /// registering again when the worker restarts: a fleet instance's join token is
    /// single-use.
    #[arg(long, env = "SWEEP_WORKER_CREDENTIAL_FILE")]
    pub credential_file: Option<PathBuf>,
    /// Where data files fetched by hash are kept between trials and restarts (default:
    /// ~/.cache/sweep/blobs).
    #[arg(long, env = "SWEEP_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// The cache's size limit; least recently used files go first.
    #[arg(long, env = "SWEEP_CACHE_MAX_BYTES", default_value_t = 50 << 30)]
    pub cache_max_bytes: u64,
    /// Watch the instance metadata service for a spot interruption notice (auto: when
    /// the service answers; on a notice the worker hands its trials back and exits).
    #[arg(long, default_value = "auto", value_parser = ["auto", "off"])]
    pub spot_watch: String,
    /// The instance metadata service (default: AWS_EC2_METADATA_SERVICE_ENDPOINT, else
    /// http://169.254.169.254).
    #[arg(long)]
    pub imds_endpoint: Option<String>,
    /// How often to ask it.
    #[arg(long, default_value_t = 5_000)]
    pub imds_poll_ms: u64,
}

/// What `--credential-file` holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct Credential {
    worker_id: String,
    worker_token: String,
    heartbeat_ms: u32,
}

type Client = pb::agent_service_client::AgentServiceClient<Authed>;

/// A trial is running under (trial id, attempt).
type Key = (String, u32);

/// Why the agent stopped a running trial.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stop {
    /// The user cancelled its sweep: report nothing.
    Cancelled,
    /// Another attempt owns it now: report nothing.
    LeaseLost,
    /// This worker is shutting down: hand it back.
    Draining,
    /// The instance is being reclaimed (spot notice): hand it back as preempted.
    Preempted,
}

/// The handle that stops one running trial.
#[derive(Default)]
struct Running {
    /// Read by the training thread: cancel between batches, finish after the epoch.
    control: Arc<train::Control>,
    /// Why it was stopped: set before `cancel` so the trial task knows what to report.
    stopped_by: Mutex<Option<Stop>>,
}

impl Running {
    /// Stops the trial; the first reason given is the one reported.
    fn stop(&self, why: Stop) {
        self.stopped_by.lock().expect("lock").get_or_insert(why);
        match why {
            // Handed back: checkpoint first, so the next attempt goes on from here.
            Stop::Draining | Stop::Preempted => self.control.suspend.store(true, Ordering::Relaxed),
            Stop::Cancelled | Stop::LeaseLost => self.control.cancel.store(true, Ordering::Relaxed),
        }
    }

    fn stopped_by(&self) -> Option<Stop> {
        *self.stopped_by.lock().expect("lock")
    }
}

/// A registered worker and the trials it runs.
struct Agent {
    /// The coordinator, called with this worker's own credential.
    api: Client,
    /// Data files (and models) by hash, cached on this machine.
    blobs: BlobCache,
    /// Where trials train (CPU or a CUDA device).
    device: tch::Device,
    /// Trials running now, each with the handle that stops it.
    running: Mutex<HashMap<Key, Arc<Running>>>,
    /// Datasets this process has loaded, shared by every trial that names one.
    cache: DatasetCache,
    /// Cancelled once every trial task has ended: until then calls that carry a result
    /// keep retrying through a coordinator outage, so no finished work is dropped.
    reporting: CancellationToken,
    /// Cancelled on SIGTERM: from then on no new work is taken.
    shutdown: CancellationToken,
    /// Trials per stacked group (1: no fusing), and the groups running now.
    fuse: Fuse,
    groups: std::sync::atomic::AtomicUsize,
    settings: AgentSettings,
}

/// How many trials a group may hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fuse {
    Fixed(usize),
    /// As many as free GPU memory holds, up to [`FUSE_AUTO_MAX`].
    Auto,
}

/// The most trials `--fuse auto` leases into one group.
pub const FUSE_AUTO_MAX: usize = 32;

impl Fuse {
    pub fn parse(s: &str, device: tch::Device) -> anyhow::Result<Fuse> {
        match s {
            "auto" if device.is_cuda() => Ok(Fuse::Auto),
            "auto" => Ok(Fuse::Fixed(1)),
            n => match n.parse::<usize>() {
                Ok(k) if (1..=64).contains(&k) => Ok(Fuse::Fixed(k)),
                _ => anyhow::bail!("--fuse: `{n}` is not auto or a number of trials from 1 to 64"),
            },
        }
    }

    fn lease_at_most(self) -> usize {
        match self {
            Fuse::Fixed(k) => k,
            Fuse::Auto => FUSE_AUTO_MAX,
        }
    }
}

/// Bytes one model of a stack needs on the device, roughly: weights, gradients, AdamW's
/// two moments and a best-epoch copy (5 x 4 bytes a parameter), and a batch's activations
/// with their gradients and the dropout and loss temporaries (about 40 bytes per hidden
/// unit and per label, per row).
pub fn model_bytes(features: usize, hidden: &[u32], labels: usize, batch: usize) -> u64 {
    let mut widths = vec![features as u64];
    widths.extend(hidden.iter().map(|&h| h as u64));
    widths.push(labels as u64);
    let params: u64 = widths.windows(2).map(|w| w[0] * w[1] + w[1]).sum();
    let units: u64 = hidden.iter().map(|&h| h as u64).sum::<u64>() + labels as u64;
    params * 4 * 5 + batch as u64 * units * 40
}

/// Runs the agent until `shutdown` fires (then drains) or it has been idle long enough.
pub async fn run(settings: AgentSettings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let device = train::device(&settings.device)?;
    let fuse = Fuse::parse(&settings.fuse, device)?;
    if let Some(n) = settings.threads {
        anyhow::ensure!(n > 0, "--threads must be at least 1");
        tch::set_num_threads(n);
    }
    if let Some(addr) = settings.metrics_listen {
        sweep_client::telemetry::serve_metrics(addr)?;
        if device.is_cuda() {
            tokio::spawn(gpu_memory_loop(shutdown.clone()));
        }
    }
    let channel = sweep_client::connect::channel(&settings.coordinator, &settings.tls)?;
    let (bearer, heartbeat_every) = enrol(&settings, channel.clone(), &shutdown).await?;
    let api = pb::agent_service_client::AgentServiceClient::with_interceptor(channel.clone(), bearer.clone());
    let blobs = BlobCache::new(
        settings.cache_dir.clone().unwrap_or_else(default_cache_dir),
        settings.cache_max_bytes,
        pb::blob_service_client::BlobServiceClient::with_interceptor(channel, bearer),
    )?;
    let agent = Arc::new(Agent {
        api,
        blobs,
        device,
        running: Mutex::default(),
        cache: DatasetCache::default(),
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

/// The credential saved by an earlier run, or a new registration (saved when asked).
async fn enrol(
    s: &AgentSettings,
    channel: Channel,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Bearer, Duration)> {
    if let Some(path) = s.credential_file.as_deref().filter(|p| p.exists()) {
        let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        let c: Credential =
            serde_json::from_str(&text).with_context(|| format!("{}: not a credential", path.display()))?;
        tracing::info!(worker_id = %c.worker_id, file = %path.display(), "using the saved worker credential");
        return Ok((Bearer::new(&c.worker_token)?, Duration::from_millis(c.heartbeat_ms as u64)));
    }
    let join = read_token("SWEEP_JOIN_TOKEN", s.join_token_file.as_deref(), "join token")?;
    let reg = register(s, channel, &join, shutdown).await?;
    let bearer = Bearer::new(&reg.worker_token)?;
    let heartbeat = Duration::from_millis(reg.heartbeat_ms as u64);
    if let Some(path) = s.credential_file.as_deref() {
        let c = Credential { worker_id: reg.worker_id, worker_token: reg.worker_token, heartbeat_ms: reg.heartbeat_ms };
        sweep_client::files::write_atomic(path, serde_json::to_string(&c)?.as_bytes(), 0o600)
            .with_context(|| format!("write {}", path.display()))?;
    }
    Ok((bearer, heartbeat))
}

/// Enrols with the join token; returns the registration (this worker's own credential).
async fn register(
    s: &AgentSettings,
    channel: Channel,
    join: &str,
    shutdown: &CancellationToken,
) -> anyhow::Result<pb::RegisterResponse> {
    let host = hostname::get().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
    let gpus: Vec<String> = if tch::Cuda::is_available() {
        (0..tch::Cuda::device_count()).map(|i| format!("cuda:{i}")).collect()
    } else {
        vec![]
    };
    let req = pb::RegisterRequest {
        name: s.name.clone().unwrap_or_else(|| format!("{host}-{}", std::process::id())),
        host,
        gpus,
        slots: s.slots,
        version: env!("CARGO_PKG_VERSION").into(),
    };
    let joiner = pb::agent_service_client::AgentServiceClient::with_interceptor(channel.clone(), Bearer::new(join)?);
    let reg = with_retry("register", shutdown, || {
        let (mut c, req) = (joiner.clone(), req.clone());
        async move { c.register(req).await }
    })
    .await
    .context("register with the coordinator")?
    .into_inner();
    tracing::info!(worker_id = %reg.worker_id, name = %req.name, slots = s.slots, "registered");
    Ok(reg)
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

    /// Polls the metadata service; on a spot interruption (or rebalance) notice, stops
    /// taking work, hands every running trial back as preempted, and ends the agent.
    async fn spot_watch(self: Arc<Self>) {
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
                    self.stop_all(Stop::Preempted);
                    self.shutdown.cancel();
                    return;
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "instance metadata service did not answer"),
            }
        }
    }

    fn report_running(&self) {
        metrics::gauge!(TRIALS_RUNNING).set(self.running.lock().expect("lock").len() as f64);
    }

    fn stop_all(&self, why: Stop) {
        for r in self.running.lock().expect("lock").values() {
            r.stop(why);
        }
    }

    /// Leases trials into free slots until `shutdown` fires or the queue has stayed
    /// empty for `--exit-when-idle-secs`. A refused credential ends the agent.
    async fn lease_loop(self: &Arc<Self>, tasks: &mut JoinSet<()>, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let idle_limit = Duration::from_secs(self.settings.exit_when_idle_secs);
        let mut idle_since = tokio::time::Instant::now();
        while !shutdown.is_cancelled() {
            while let Some(done) = tasks.try_join_next() {
                if let Err(e) = done {
                    tracing::error!(error = %e, "trial task panicked");
                }
            }
            let fusing = self.fuse != Fuse::Fixed(1);
            let free = if fusing {
                // A slot holds one stacked group.
                self.settings.slots as usize - self.groups.load(Ordering::Relaxed)
            } else {
                self.settings.slots as usize - self.running.lock().expect("lock").len()
            };
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
            let idle_budget = (!idle_limit.is_zero() && self.running.lock().expect("lock").is_empty())
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
            } else if !idle_limit.is_zero()
                && self.running.lock().expect("lock").is_empty()
                && idle_since.elapsed() >= idle_limit
            {
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
        let first = self.register(&t);
        let agent = self.clone();
        tasks.spawn(async move {
            let (mut t, mut slot) = (t, first);
            loop {
                let span = tracing::info_span!("trial", trial_id = %t.trial_id, attempt = t.attempt);
                let next = agent.run_trial(t, &slot.1).instrument(span).await;
                let next_slot = next.as_ref().map(|n| agent.register(n));
                agent.running.lock().expect("lock").remove(&slot.0);
                agent.report_running();
                match (next, next_slot) {
                    (Some(n), Some(s)) => (t, slot) = (n, s),
                    _ => break,
                }
            }
        });
    }

    /// Records a trial as running here (heartbeats extend its lease from now on).
    fn register(&self, t: &pb::LeasedTrial) -> (Key, Arc<Running>) {
        let key = (t.trial_id.clone(), t.attempt);
        let handle = Arc::new(Running::default());
        self.running.lock().expect("lock").insert(key.clone(), handle.clone());
        self.report_running();
        (key, handle)
    }

    /// Lets running trials finish within the grace period, then hands the rest back.
    async fn drain(&self, tasks: &mut JoinSet<()>) {
        let n = self.running.lock().expect("lock").len();
        if n == 0 {
            return;
        }
        let grace = Duration::from_secs(self.settings.grace_secs);
        tracing::info!(running = n, grace_secs = grace.as_secs(), "draining");
        let all_done = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all_done).await.is_err() {
            self.stop_all(Stop::Draining);
            while tasks.join_next().await.is_some() {}
        }
    }

    /// Extends the leases of running trials and applies what the coordinator says
    /// about each (cancelled, lease lost). An empty heartbeat still says "alive".
    async fn heartbeat_loop(self: Arc<Self>, every: Duration) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.reporting.cancelled() => return,
            }
            let trials: Vec<pb::TrialRef> = (self.running.lock().expect("lock").keys())
                .map(|(id, attempt)| pb::TrialRef { trial_id: id.clone(), attempt: *attempt })
                .collect();
            let mut c = self.api.clone();
            match c.heartbeat(pb::HeartbeatRequest { trials }).await {
                Ok(r) => {
                    for d in r.into_inner().directives {
                        let why = match pb::Action::try_from(d.action) {
                            Ok(pb::Action::Cancel) => Stop::Cancelled,
                            Ok(pb::Action::LeaseLost) => Stop::LeaseLost,
                            _ => continue,
                        };
                        let Some(t) = d.trial else { continue };
                        if let Some(r) = self.running.lock().expect("lock").get(&(t.trial_id.clone(), t.attempt)) {
                            tracing::warn!(trial_id = %t.trial_id, attempt = t.attempt, reason = ?why, "stopping trial");
                            r.stop(why);
                        }
                    }
                }
                Err(e) if e.code() == Code::Unauthenticated => {
                    // Revoked: the coordinator already took our leases back.
                    tracing::error!(message = e.message(), "credential refused, stopping every trial");
                    self.stop_all(Stop::LeaseLost);
                }
                Err(e) => tracing::warn!(code = ?e.code(), message = e.message(), "heartbeat failed"),
            }
        }
    }

    /// Trains one leased trial and reports how it ended; a completion also leases the
    /// next trial unless the worker is shutting down.
    async fn run_trial(&self, t: pb::LeasedTrial, handle: &Running) -> Option<pb::LeasedTrial> {
        tracing::info!(params = %t.params_json, "trial started");
        let trial = pb::TrialRef { trial_id: t.trial_id.clone(), attempt: t.attempt };
        let outcome = self.train(&trial, t.config_json, &t.checkpoint_sha256, handle).await;
        self.report(trial, outcome, handle, !self.shutdown.is_cancelled()).await
    }

    /// Starts a leased group (trials of one fuse key) as one stacked training in its own task.
    fn start_group(self: &Arc<Self>, tasks: &mut JoinSet<()>, group: Vec<pb::LeasedTrial>) {
        let slots: Vec<(Key, Arc<Running>)> = group.iter().map(|t| self.register(t)).collect();
        self.groups.fetch_add(1, Ordering::Relaxed);
        let agent = self.clone();
        tasks.spawn(async move {
            let span = tracing::info_span!("group", trials = group.len());
            agent.run_group(group, &slots).instrument(span).await;
            {
                let mut running = agent.running.lock().expect("lock");
                for (key, _) in &slots {
                    running.remove(key);
                }
            }
            agent.groups.fetch_sub(1, Ordering::Relaxed);
            agent.report_running();
        });
    }

    /// Trains a group as one stack (in chunks that fit the device with `--fuse auto`;
    /// trials resuming from a checkpoint alone) and reports each trial's end on its own.
    async fn run_group(&self, group: Vec<pb::LeasedTrial>, slots: &[(Key, Arc<Running>)]) {
        let refs: Vec<pb::TrialRef> =
            group.iter().map(|t| pb::TrialRef { trial_id: t.trial_id.clone(), attempt: t.attempt }).collect();
        // Configs first: one that cannot be read fails alone.
        let mut members = Vec::new();
        for (i, t) in group.into_iter().enumerate() {
            let cfg = match self.blobs.materialize(t.config_json).await {
                Ok(json) => parse_config(&json),
                Err(e) => Err(e),
            };
            match cfg {
                Ok(cfg) => members.push((i, cfg, t.checkpoint_sha256)),
                Err(e) => drop(self.report(refs[i].clone(), Err(e), &slots[i].1, false).await),
            }
        }
        let Some((_, first, _)) = members.first() else { return };
        let ds = match self.dataset(first).await {
            Ok(ds) => ds,
            Err(e) => {
                for (i, _, _) in &members {
                    drop(
                        self.report(refs[*i].clone(), Err(TrainError::User(e.to_string())), &slots[*i].1, false).await,
                    );
                }
                return;
            }
        };
        let per_chunk = self.chunk_size(&ds, first, members.len());
        let (fresh, resuming): (Vec<_>, Vec<_>) = members.into_iter().partition(|(_, _, ck)| ck.is_empty());
        tracing::info!(
            trials = fresh.len() + resuming.len(),
            per_chunk,
            resuming = resuming.len(),
            "training a fused group"
        );
        let mut chunks: Vec<Vec<(usize, sweep_spec::TrialConfig, String)>> =
            fresh.chunks(per_chunk).map(|c| c.to_vec()).collect();
        chunks.extend(resuming.into_iter().map(|m| vec![m]));
        for chunk in chunks {
            let idx: Vec<usize> = chunk.iter().map(|(i, _, _)| *i).collect();
            let trials: Vec<&pb::TrialRef> = idx.iter().map(|&i| &refs[i]).collect();
            let handles: Vec<&Running> = idx.iter().map(|&i| slots[i].1.as_ref()).collect();
            let (cfgs, checkpoints): (Vec<_>, Vec<_>) = chunk.into_iter().map(|(_, c, ck)| (c, ck)).unzip();
            let outcomes = self.train_stack(&trials, &handles, cfgs, ds.clone(), &checkpoints).await;
            for (&i, outcome) in idx.iter().zip(outcomes) {
                drop(self.report(refs[i].clone(), outcome, &slots[i].1, false).await);
            }
        }
    }

    /// The trial's dataset, loaded once per process (off the async threads).
    async fn dataset(&self, cfg: &sweep_spec::TrialConfig) -> Result<Arc<sweep_trainer::data::Dataset>, TrainError> {
        let (cache, dataset) = (self.cache.clone(), cfg.dataset.clone());
        tokio::task::spawn_blocking(move || cache.get(&dataset).map_err(|e| TrainError::User(e.to_string())))
            .await
            .unwrap_or_else(|e| Err(TrainError::Transient(format!("dataset loader panicked: {e}"))))
    }

    /// Trains trials of one dataset as one stack on a blocking thread (the span carried
    /// into it), resuming those with a checkpoint, while forwarding each epoch's metrics
    /// and uploading each checkpoint the trainer hands over.
    async fn train_stack(
        &self,
        trials: &[&pb::TrialRef],
        handles: &[&Running],
        cfgs: Vec<sweep_spec::TrialConfig>,
        ds: Arc<sweep_trainer::data::Dataset>,
        checkpoints: &[String],
    ) -> Vec<Result<TrialResult, TrainError>> {
        let mut resume = Vec::new();
        for (k, sha) in checkpoints.iter().enumerate() {
            resume.push(if sha.is_empty() { None } else { self.checkpoint_bytes(trials[k], sha).await });
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let controls: Vec<Arc<train::Control>> = handles.iter().map(|h| h.control.clone()).collect();
        let (device, span, n) = (self.device, tracing::Span::current(), cfgs.len());
        let work = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let (d, l) = (ds.features as i64, ds.labels as i64);
            let resume: Vec<Option<Checkpoint>> = resume
                .into_iter()
                .zip(&cfgs)
                .map(|(bytes, cfg)| {
                    let bytes = bytes?;
                    Checkpoint::from_bytes(&bytes, d, &cfg.model.hidden, l, device)
                        .inspect_err(
                            |e| tracing::warn!(error = %format!("{e:#}"), "checkpoint unreadable: starting over"),
                        )
                        .ok()
                })
                .collect();
            let refs: Vec<&train::Control> = controls.iter().map(|c| c.as_ref()).collect();
            let progress_tx = tx.clone();
            train::train_fused_with(
                &ds,
                &cfgs,
                device,
                &mut |k, r| drop(progress_tx.send(Msg::Epoch(k, r.clone()))),
                &refs,
                resume,
                &mut |k, ck| match ck.to_bytes() {
                    Ok(bytes) => drop(tx.send(Msg::Checkpoint(k, ck.state.epochs_done, bytes))),
                    Err(e) => tracing::warn!(error = %format!("{e:#}"), "checkpoint not written"),
                },
            )
        });
        let forward = async {
            while let Some(msg) = rx.recv().await {
                match msg {
                    Msg::Epoch(k, r) => self.forward_progress(trials[k], r, handles[k]).await,
                    Msg::Checkpoint(k, epoch, bytes) => self.save_checkpoint(trials[k], epoch, bytes, handles[k]).await,
                }
            }
        };
        let (outcome, ()) = tokio::join!(work, forward);
        outcome.unwrap_or_else(|e| {
            let why = format!("training thread panicked: {e}");
            (0..n).map(|_| Err(TrainError::Transient(why.clone()))).collect()
        })
    }

    /// The bytes of checkpoint `sha` (through the blob cache), or None to start over.
    async fn checkpoint_bytes(&self, trial: &pb::TrialRef, sha: &str) -> Option<Vec<u8>> {
        let read = async {
            let path = self.blobs.path(sha).await?;
            tokio::fs::read(&path).await.map_err(|e| TrainError::Transient(format!("read {}: {e}", path.display())))
        };
        match read.await {
            Ok(bytes) => {
                tracing::info!(trial_id = %trial.trial_id, checkpoint = %sha, "resuming from the checkpoint");
                Some(bytes)
            }
            Err(e) => {
                tracing::warn!(trial_id = %trial.trial_id, error = %e, "checkpoint not fetched: starting over");
                None
            }
        }
    }

    /// Puts a checkpoint in the blob store and records it as the trial's latest.
    async fn save_checkpoint(&self, trial: &pb::TrialRef, epoch: u32, bytes: Vec<u8>, handle: &Running) {
        let sha = match self.blobs.upload_bytes(&bytes).await {
            Ok(sha) => sha,
            Err(e) => {
                return tracing::warn!(trial_id = %trial.trial_id, error = %format!("{e:#}"), "checkpoint not uploaded")
            }
        };
        let req = pb::CheckpointRequest { trial: Some(trial.clone()), sha256: sha, epoch };
        match self.call("checkpoint", req, |mut c, r| async move { c.save_checkpoint(r).await }).await {
            Ok(_) => tracing::info!(trial_id = %trial.trial_id, epoch, bytes = bytes.len(), "checkpoint saved"),
            Err(e) if matches!(e.code(), Code::FailedPrecondition | Code::PermissionDenied) => {
                tracing::warn!(trial_id = %trial.trial_id, message = e.message(), "lease lost, stopping");
                handle.stop(Stop::LeaseLost);
            }
            Err(e) => tracing::warn!(code = ?e.code(), message = e.message(), "checkpoint not recorded"),
        }
    }

    /// Trials per stack: the group's size, or with `--fuse auto` as many as fit in 80%
    /// of the GPU's free memory (NVML), at least one.
    fn chunk_size(&self, ds: &sweep_trainer::data::Dataset, cfg: &sweep_spec::TrialConfig, n: usize) -> usize {
        if self.fuse != Fuse::Auto {
            return n.max(1);
        }
        let per_model = model_bytes(ds.features, &cfg.model.hidden, ds.labels, cfg.train.batch_size as usize);
        match gpu_free_bytes(self.device) {
            Some(free) => ((free as f64 * 0.8 / per_model as f64) as usize).clamp(1, n.max(1)),
            None => n.max(1),
        }
    }

    /// Reports how a trial ended (completed, pruned, handed back, failed); a completion
    /// with `lease_next` also leases the next trial.
    async fn report(
        &self,
        trial: pb::TrialRef,
        outcome: Result<TrialResult, TrainError>,
        handle: &Running,
        lease_next: bool,
    ) -> Option<pb::LeasedTrial> {
        let reported = match outcome {
            Ok(res) => {
                tracing::info!(trial_id = %trial.trial_id, best_epoch = res.best_epoch, seconds = res.seconds, "trial finished");
                // Stopped at the coordinator's word (ASHA) before its last epoch; a trial the
                // word reached only after its last epoch simply succeeded.
                let pruned = res.stopped_early;
                // The model goes to the blob store first; a failed upload costs the model, not the result.
                let model_sha256 = match (&res.model, pruned) {
                    (Some(model), false) => match self.blobs.upload_model(model).await {
                        Ok(sha) => sha,
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), "model not uploaded; the result is reported without it");
                            String::new()
                        }
                    },
                    _ => String::new(),
                };
                let req = pb::CompleteRequest {
                    trial: Some(trial),
                    metrics: res.metrics.clone().into_iter().collect(),
                    result_json: serde_json::to_string(&res).unwrap_or_default(),
                    lease_next: u32::from(lease_next),
                    // Finished early because the coordinator said stop (ASHA).
                    pruned,
                    model_sha256,
                };
                match self.call("complete", req, |mut c, r| async move { c.complete(r).await }).await {
                    Ok(done) => return done.next.into_iter().next(),
                    Err(e) => Err(e),
                }
            }
            Err(TrainError::Cancelled) if handle.stopped_by() == Some(Stop::Preempted) => {
                tracing::info!(trial_id = %trial.trial_id, "handing trial back as preempted");
                self.call("preempt", trial, |mut c, r| async move { c.preempt(r).await }).await.map(drop)
            }
            Err(TrainError::Cancelled) if handle.stopped_by() == Some(Stop::Draining) => {
                tracing::info!(trial_id = %trial.trial_id, "handing trial back");
                self.call("release", trial, |mut c, r| async move { c.release(r).await }).await.map(drop)
            }
            Err(TrainError::Cancelled) => {
                tracing::info!(trial_id = %trial.trial_id, reason = ?handle.stopped_by(), "trial stopped");
                return None;
            }
            Err(e) => {
                let kind =
                    if matches!(e, TrainError::User(_)) { pb::FailureKind::User } else { pb::FailureKind::Transient };
                tracing::warn!(trial_id = %trial.trial_id, error = %e, ?kind, "trial failed");
                let req = pb::FailRequest { trial: Some(trial), error: e.to_string(), kind: kind as i32 };
                self.call("fail", req, |mut c, r| async move { c.fail(r).await }).await.map(drop)
            }
        };
        if let Err(e) = reported {
            tracing::warn!(code = ?e.code(), message = e.message(), "result not recorded (the lease was lost; another attempt owns the trial)");
        }
        None
    }

    /// Trains one trial (resuming from its checkpoint, if it has one).
    async fn train(
        &self,
        trial: &pb::TrialRef,
        config_json: String,
        checkpoint: &str,
        handle: &Running,
    ) -> Result<TrialResult, TrainError> {
        let cfg = parse_config(&self.blobs.materialize(config_json).await?)?;
        let ds = self.dataset(&cfg).await?;
        let mut out = self.train_stack(&[trial], &[handle], vec![cfg], ds, &[checkpoint.to_string()]).await;
        out.pop().expect("one trial, one result")
    }

    /// Sends one epoch's report; the answer may stop the trial (ASHA) or say its lease is lost.
    async fn forward_progress(&self, trial: &pb::TrialRef, r: train::EpochReport, handle: &Running) {
        record_epoch(&r);
        let req = pb::ProgressRequest {
            trial: Some(trial.clone()),
            epoch: r.epoch,
            metrics: r.metrics.into_iter().collect(),
        };
        match self.call("progress", req, |mut c, r| async move { c.report_progress(r).await }).await {
            Ok(answer) if answer.stop => {
                tracing::info!(trial_id = %trial.trial_id, "the coordinator stops this trial at a rung (ASHA): finishing pruned");
                handle.control.finish.store(true, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(e) if matches!(e.code(), Code::FailedPrecondition | Code::PermissionDenied) => {
                tracing::warn!(trial_id = %trial.trial_id, message = e.message(), "lease lost, stopping");
                handle.stop(Stop::LeaseLost);
            }
            Err(e) => tracing::warn!(code = ?e.code(), message = e.message(), "progress not recorded"),
        }
    }
}

/// What the training thread hands the agent, by index in its stack.
enum Msg {
    Epoch(usize, train::EpochReport),
    /// Epochs finished, and the checkpoint's bytes.
    Checkpoint(usize, u32, Vec<u8>),
}

/// Trials this worker is training now.
const TRIALS_RUNNING: &str = "sweep_worker_trials_running";
/// Seconds per epoch (training and validation), and training samples per second of the
/// latest epoch of any trial.
const EPOCH_SECONDS: &str = "sweep_worker_epoch_duration_seconds";
const SAMPLES_PER_SECOND: &str = "sweep_worker_samples_per_second";

/// GPU memory in use, by GPU index, from NVML (the driver's own count, so it includes
/// libtorch's cached blocks and other processes' memory).
const GPU_MEMORY_USED: &str = "sweep_worker_gpu_memory_used_bytes";

/// Free memory on the CUDA device, from NVML; None on CPU or without a driver.
fn gpu_free_bytes(device: tch::Device) -> Option<u64> {
    let tch::Device::Cuda(index) = device else { return None };
    let nvml = nvml_wrapper::Nvml::init().ok()?;
    let dev = nvml.device_by_index(index as u32).ok()?;
    dev.memory_info().ok().map(|m| m.free)
}

/// Samples GPU memory every 5 s while the worker runs; does nothing where NVML cannot be
/// loaded (no NVIDIA driver).
async fn gpu_memory_loop(stop: CancellationToken) {
    let nvml = match tokio::task::spawn_blocking(nvml_wrapper::Nvml::init).await {
        Ok(Ok(nvml)) => std::sync::Arc::new(nvml),
        Ok(Err(e)) => return tracing::info!(error = %e, "NVML not available: no GPU memory metric"),
        Err(_) => return,
    };
    loop {
        let n = nvml.clone();
        let used = tokio::task::spawn_blocking(move || {
            let count = n.device_count().unwrap_or(0);
            (0..count)
                .filter_map(|i| Some((i, n.device_by_index(i).ok()?.memory_info().ok()?.used)))
                .collect::<Vec<_>>()
        });
        for (gpu, bytes) in used.await.unwrap_or_default() {
            metrics::gauge!(GPU_MEMORY_USED, "gpu" => gpu.to_string()).set(bytes as f64);
        }
        tokio::select! { _ = tokio::time::sleep(Duration::from_secs(5)) => {}, _ = stop.cancelled() => return }
    }
}

fn record_epoch(r: &train::EpochReport) {
    if let Some(s) = r.metrics.get("epoch_seconds") {
        metrics::histogram!(EPOCH_SECONDS).record(*s);
    }
    if let Some(s) = r.metrics.get("samples_per_s") {
        metrics::gauge!(SAMPLES_PER_SECOND).set(*s);
    }
}

/// A trial config as the coordinator sends it, checked like a sweep file's.
pub fn parse_config(json: &str) -> Result<sweep_spec::TrialConfig, TrainError> {
    let cfg: sweep_spec::TrialConfig =
        serde_json::from_str(json).map_err(|e| TrainError::User(format!("trial config: {e}")))?;
    match cfg.check().into_iter().next() {
        Some((field, problem)) => Err(TrainError::User(format!("{field}: {problem}"))),
        None => Ok(cfg),
    }
}
