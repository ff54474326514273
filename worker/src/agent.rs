//! The worker agent: registers with a join token, leases as many trials as it has free
//! slots, trains each on its own OS thread, heartbeats, streams per-epoch metrics and
//! reports the result. It stops a trial on cancel or a lost lease, and on SIGTERM takes
//! no new work, lets running trials finish within a grace period, and hands back the
//! rest.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use sweep_proto as pb;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status};

use crate::data::DatasetCache;
use crate::train::{self, TrainError};

#[derive(Debug, Clone, clap::Args)]
pub struct AgentSettings {
    /// Coordinator URL (https:// for TLS).
    #[arg(long, env = "SWEEP_COORDINATOR", default_value = "http://127.0.0.1:50051")]
    pub coordinator: String,
    /// File holding the join token (or set SWEEP_JOIN_TOKEN). Never a flag: `ps` shows flags.
    #[arg(long, env = "SWEEP_JOIN_TOKEN_FILE")]
    pub join_token_file: Option<PathBuf>,
    /// CA certificate (PEM) to verify the coordinator's TLS certificate.
    #[arg(long, env = "SWEEP_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS.
    #[arg(long, env = "SWEEP_TLS_CLIENT_CERT", requires = "tls_client_key")]
    pub tls_client_cert: Option<PathBuf>,
    #[arg(long, env = "SWEEP_TLS_CLIENT_KEY", requires = "tls_client_cert")]
    pub tls_client_key: Option<PathBuf>,
    /// Trials run at once.
    #[arg(long, default_value_t = 1)]
    pub slots: u32,
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
    /// Exit once the queue has been empty this long (0: never). For local runs and tests.
    #[arg(long, default_value_t = 0)]
    pub exit_when_idle_secs: u64,
}

fn join_token(s: &AgentSettings) -> anyhow::Result<String> {
    if let Ok(t) = std::env::var("SWEEP_JOIN_TOKEN") {
        return Ok(t.trim().to_string());
    }
    let path = s.join_token_file.as_ref().context("no join token: set SWEEP_JOIN_TOKEN or --join-token-file")?;
    Ok(std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?.trim().to_string())
}

#[derive(Clone)]
struct Bearer(MetadataValue<Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

type Client = pb::agent_service_client::AgentServiceClient<InterceptedService<Channel, Bearer>>;

fn client(channel: Channel, token: &str) -> anyhow::Result<Client> {
    let value: MetadataValue<Ascii> = format!("Bearer {token}").parse().context("token is not ASCII")?;
    Ok(pb::agent_service_client::AgentServiceClient::with_interceptor(channel, Bearer(value)))
}

async fn channel(s: &AgentSettings) -> anyhow::Result<Channel> {
    let mut ep = Endpoint::from_shared(s.coordinator.clone())
        .with_context(|| format!("--coordinator `{}` is not a URL", s.coordinator))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    if s.ca_file.is_some() || s.tls_client_cert.is_some() {
        let read = |p: &PathBuf| std::fs::read(p).with_context(|| format!("read {}", p.display()));
        let mut tls = ClientTlsConfig::new().with_native_roots();
        if let Some(ca) = &s.ca_file {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        if let (Some(cert), Some(key)) = (&s.tls_client_cert, &s.tls_client_key) {
            tls = tls.identity(tonic::transport::Identity::from_pem(read(cert)?, read(key)?));
        }
        ep = ep.tls_config(tls)?;
    }
    // Lazy: the first call connects, and a lost connection is re-established per call.
    Ok(ep.connect_lazy())
}

/// Retries `f` while the coordinator is unreachable, with capped exponential backoff.
async fn with_retry<T, F, Fut>(what: &str, stop: &CancellationToken, mut f: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    let mut delay = Duration::from_millis(100);
    loop {
        match f().await {
            Err(s)
                if matches!(s.code(), Code::Unavailable | Code::Unknown | Code::DeadlineExceeded | Code::Internal) =>
            {
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

struct Running {
    cancel: Arc<AtomicBool>,
    /// Why it was stopped: set before `cancel` so the trial task knows what to report.
    stopped_by: Arc<Mutex<Option<Stop>>>,
}

impl Running {
    /// Asks the trial's training thread to stop, recording why first so the trial task
    /// knows what to report.
    fn stop(&self, why: Stop) {
        stop_trial(&self.stopped_by, &self.cancel, why);
    }
}

fn stop_trial(stopped_by: &Mutex<Option<Stop>>, cancel: &AtomicBool, why: Stop) {
    *stopped_by.lock().expect("lock") = Some(why);
    cancel.store(true, Ordering::Relaxed);
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Stop {
    Cancelled,
    LeaseLost,
    Draining,
}

type Key = (String, u32);

/// Runs the agent until `shutdown` fires (then drains) or it has been idle long enough.
pub async fn run(s: AgentSettings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let device = train::device(&s.device)?;
    if let Some(n) = s.threads {
        anyhow::ensure!(n > 0, "--threads must be at least 1");
        tch::set_num_threads(n);
    }
    let join = join_token(&s)?;
    let channel = channel(&s).await?;
    let gpus: Vec<String> = if tch::Cuda::is_available() {
        (0..tch::Cuda::device_count()).map(|i| format!("cuda:{i}")).collect()
    } else {
        vec![]
    };
    let name = s.name.clone().unwrap_or_else(|| {
        format!(
            "{}-{}",
            hostname::get().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default(),
            std::process::id()
        )
    });
    let never = CancellationToken::new();
    let mut joiner = client(channel.clone(), &join)?;
    let reg = with_retry("register", &shutdown, || {
        let req = pb::RegisterRequest {
            name: name.clone(),
            host: hostname::get().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default(),
            gpus: gpus.clone(),
            slots: s.slots,
            version: env!("CARGO_PKG_VERSION").into(),
        };
        let mut c = joiner.clone();
        async move { c.register(req).await }
    })
    .await
    .context("register with the coordinator")?
    .into_inner();
    drop(joiner.clone());
    joiner = client(channel.clone(), &reg.worker_token)?;
    let api = joiner;
    tracing::info!(worker_id = %reg.worker_id, %name, slots = s.slots, ?device, "registered");

    let running: Arc<Mutex<HashMap<Key, Running>>> = Arc::default();
    let cache = DatasetCache::default();
    let heartbeat = tokio::spawn(heartbeat_loop(
        api.clone(),
        running.clone(),
        Duration::from_millis(reg.heartbeat_ms as u64),
        never.clone(),
    ));
    let mut tasks = JoinSet::new();
    let mut idle_since = tokio::time::Instant::now();
    loop {
        while let Some(done) = tasks.try_join_next() {
            if let Err(e) = done {
                tracing::error!(error = %e, "trial task panicked");
            }
        }
        if shutdown.is_cancelled() {
            break;
        }
        let free = s.slots as usize - running.lock().expect("lock").len();
        if free == 0 {
            tokio::select! {
                _ = tasks.join_next() => {}
                _ = shutdown.cancelled() => {}
            }
            continue;
        }
        let lease = tokio::select! {
            r = with_retry("lease", &shutdown, || {
                let mut c = api.clone();
                async move { c.lease(pb::LeaseRequest { max_trials: free as u32, wait_ms: 2_000 }).await }
            }) => r,
            _ = shutdown.cancelled() => break,
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
        if leased.is_empty() {
            if s.exit_when_idle_secs > 0
                && running.lock().expect("lock").is_empty()
                && idle_since.elapsed() >= Duration::from_secs(s.exit_when_idle_secs)
            {
                tracing::info!("queue empty, exiting (--exit-when-idle-secs)");
                break;
            }
            continue;
        }
        for t in leased {
            let key = (t.trial_id.clone(), t.attempt);
            let r = Running { cancel: Arc::default(), stopped_by: Arc::default() };
            let (cancel, stopped_by) = (r.cancel.clone(), r.stopped_by.clone());
            running.lock().expect("lock").insert(key.clone(), r);
            let (api, running, cache) = (api.clone(), running.clone(), cache.clone());
            let never = never.clone();
            tasks.spawn(async move {
                run_trial(api, t, device, cache, cancel, stopped_by, never).await;
                running.lock().expect("lock").remove(&key);
            });
        }
        idle_since = tokio::time::Instant::now();
    }

    // Draining: no new work; running trials get the grace period, then are handed back.
    let n = running.lock().expect("lock").len();
    if n > 0 {
        tracing::info!(running = n, grace_secs = s.grace_secs, "draining");
        let all_done = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(s.grace_secs), all_done).await.is_err() {
            for r in running.lock().expect("lock").values() {
                r.stop(Stop::Draining);
            }
            while tasks.join_next().await.is_some() {}
        }
    }
    never.cancel();
    let _ = heartbeat.await;
    tracing::info!("worker stopped");
    Ok(())
}

async fn heartbeat_loop(
    api: Client,
    running: Arc<Mutex<HashMap<Key, Running>>>,
    every: Duration,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
        let trials: Vec<pb::TrialRef> = running
            .lock()
            .expect("lock")
            .keys()
            .map(|(id, attempt)| pb::TrialRef { trial_id: id.clone(), attempt: *attempt })
            .collect();
        let mut c = api.clone();
        // An empty heartbeat still tells the coordinator this worker is alive.
        match c.heartbeat(pb::HeartbeatRequest { trials }).await {
            Ok(r) => {
                for d in r.into_inner().directives {
                    let stop = match pb::Action::try_from(d.action) {
                        Ok(pb::Action::Cancel) => Stop::Cancelled,
                        Ok(pb::Action::LeaseLost) => Stop::LeaseLost,
                        _ => continue,
                    };
                    let Some(t) = d.trial else { continue };
                    if let Some(r) = running.lock().expect("lock").get(&(t.trial_id.clone(), t.attempt)) {
                        tracing::warn!(trial_id = %t.trial_id, attempt = t.attempt, reason = ?stop, "stopping trial");
                        r.stop(stop);
                    }
                }
            }
            Err(e) if e.code() == Code::Unauthenticated => {
                // Revoked: the coordinator already took our leases back.
                tracing::error!(message = e.message(), "credential refused, stopping every trial");
                for r in running.lock().expect("lock").values() {
                    r.stop(Stop::LeaseLost);
                }
            }
            Err(e) => tracing::warn!(code = ?e.code(), message = e.message(), "heartbeat failed"),
        }
    }
}

/// Trains one leased trial and reports how it ended.
async fn run_trial(
    api: Client,
    t: pb::LeasedTrial,
    device: tch::Device,
    cache: DatasetCache,
    cancel: Arc<AtomicBool>,
    stopped_by: Arc<Mutex<Option<Stop>>>,
    never: CancellationToken,
) {
    let trial = pb::TrialRef { trial_id: t.trial_id.clone(), attempt: t.attempt };
    let span = tracing::info_span!("trial", trial_id = %t.trial_id, attempt = t.attempt);
    let _e = span.enter();
    tracing::info!(params = %t.params_json, "trial started");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let cancel2 = cancel.clone();
    let config_json = t.config_json.clone();
    let work = tokio::task::spawn_blocking(move || -> Result<train::TrialResult, TrainError> {
        let cfg: sweep_spec::TrialConfig =
            serde_json::from_str(&config_json).map_err(|e| TrainError::User(format!("trial config: {e}")))?;
        if let Some((field, problem)) = cfg.check().into_iter().next() {
            return Err(TrainError::User(format!("{field}: {problem}")));
        }
        let ds = cache.get(&cfg.dataset).map_err(|e| TrainError::User(e.to_string()))?;
        let mut progress = |r: &train::EpochReport| {
            let _ = tx.send(r.clone());
        };
        train::train_one(&ds, &cfg, device, &mut progress, &cancel2)
    });
    // Forward per-epoch metrics while training runs.
    let forward = async {
        while let Some(r) = rx.recv().await {
            let req = pb::ProgressRequest {
                trial: Some(trial.clone()),
                epoch: r.epoch,
                metrics: r.metrics.into_iter().collect(),
            };
            let mut c = api.clone();
            match with_retry("progress", &never, || {
                let mut c = c.clone();
                let req = req.clone();
                async move { c.report_progress(req).await }
            })
            .await
            {
                Ok(_) => {}
                Err(e) if e.code() == Code::FailedPrecondition || e.code() == Code::PermissionDenied => {
                    tracing::warn!(message = e.message(), "lease lost, stopping");
                    stop_trial(&stopped_by, &cancel, Stop::LeaseLost);
                }
                Err(e) => {
                    tracing::warn!(code = ?e.code(), message = e.message(), "progress not recorded")
                }
            }
            let _ = &mut c;
        }
    };
    let (outcome, ()) = tokio::join!(work, forward);
    let outcome = outcome.unwrap_or_else(|e| Err(TrainError::Transient(format!("training thread panicked: {e}"))));
    let result = match outcome {
        Ok(res) => {
            let req = pb::CompleteRequest {
                trial: Some(trial.clone()),
                metrics: res.metrics.clone().into_iter().collect(),
                result_json: serde_json::to_string(&res).unwrap_or_default(),
            };
            tracing::info!(best_epoch = res.best_epoch, seconds = res.seconds, "trial finished");
            with_retry("complete", &never, || {
                let mut c = api.clone();
                let req = req.clone();
                async move { c.complete(req).await }
            })
            .await
        }
        Err(TrainError::Cancelled) => {
            let why = *stopped_by.lock().expect("lock");
            match why {
                Some(Stop::Draining) => {
                    tracing::info!("handing trial back");
                    with_retry("release", &never, || {
                        let mut c = api.clone();
                        let req = trial.clone();
                        async move { c.release(req).await }
                    })
                    .await
                }
                _ => {
                    tracing::info!(reason = ?why, "trial stopped");
                    return;
                }
            }
        }
        Err(e) => {
            let kind = match e {
                TrainError::User(_) => pb::FailureKind::User,
                _ => pb::FailureKind::Transient,
            };
            tracing::warn!(error = %e, ?kind, "trial failed");
            let req = pb::FailRequest { trial: Some(trial.clone()), error: e.to_string(), kind: kind as i32 };
            with_retry("fail", &never, || {
                let mut c = api.clone();
                let req = req.clone();
                async move { c.fail(req).await }
            })
            .await
        }
    };
    if let Err(e) = result {
        tracing::warn!(code = ?e.code(), message = e.message(), "result not recorded (the lease was lost; another attempt owns the trial)");
    }
}
