//! Fleets: worker instances the coordinator launches, reconciles and retires.
//!
//! A provider does three things, each keyed by Sweep's own instance id (the launch's
//! idempotency token and the `sweep:instance` tag): launch one instance with a rendered
//! bootstrap, describe a fleet's instances by tag, terminate. `ec2` speaks the EC2 API;
//! `local` runs the very same bootstrap as a process group on this machine. The
//! reconciler ([`reconcile`]) owns everything else: counts, replacement, scale-in,
//! hours, adoption after a restart.

pub mod artifacts;
pub mod bootstrap;
pub mod ec2;
pub mod local;
pub mod prices;
pub mod reconcile;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use uuid::Uuid;

pub use crate::db::fleets::{FleetSpec, ProviderKind};

/// One launch: the instance's id doubles as the idempotency token.
pub struct Launch<'a> {
    pub fleet: Uuid,
    pub instance: Uuid,
    pub spec: &'a FleetSpec,
    /// The rendered bootstrap script (plain text; providers encode it as they need).
    pub user_data: &'a str,
}

/// An instance's state as the provider reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    Pending,
    Running,
    /// Shutting down, stopping or stopped: it will do no more work.
    Ending,
    Terminated,
}

impl Observed {
    pub fn is_live(self) -> bool {
        matches!(self, Observed::Pending | Observed::Running)
    }
}

/// An instance found by the fleet's tag.
#[derive(Debug, Clone)]
pub struct Described {
    pub provider_id: String,
    /// Its `sweep:instance` tag (None when the tag is missing or not an id).
    pub instance: Option<Uuid>,
    pub state: Observed,
}

/// A provider's refusal or failure, as one line that says what and where.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{provider}: {message}")]
pub struct ProviderError {
    pub provider: &'static str,
    pub message: String,
}

impl ProviderError {
    pub fn new(provider: ProviderKind, message: impl std::fmt::Display) -> Self {
        let message = message.to_string().replace(['\n', '\r'], " ");
        ProviderError { provider: provider.as_str(), message }
    }
}

pub type ProviderResult<T> = std::result::Result<T, ProviderError>;

/// Launch, describe by tag, terminate. Every call may be repeated safely.
pub trait Provider: Send + Sync {
    /// Checks a spec against the provider before anything is launched (instance type,
    /// region, image) and fills in what it defaults (the image).
    fn prepare(&self, spec: FleetSpec) -> impl Future<Output = ProviderResult<FleetSpec>> + Send;
    /// Launches one instance; returns its provider id. Launching the same `instance`
    /// again returns the same provider id where the provider keeps idempotency tokens.
    fn launch(&self, l: &Launch<'_>) -> impl Future<Output = ProviderResult<String>> + Send;
    /// Every instance tagged with this fleet, terminated ones included while the
    /// provider still lists them.
    fn describe(&self, spec: &FleetSpec, fleet: Uuid) -> impl Future<Output = ProviderResult<Vec<Described>>> + Send;
    fn terminate(&self, spec: &FleetSpec, ids: &[String]) -> impl Future<Output = ProviderResult<()>> + Send;
}

/// Both providers; calls go to the one the spec names.
pub struct Providers {
    pub ec2: ec2::Ec2,
    pub local: local::Local,
}

impl Provider for Providers {
    async fn prepare(&self, spec: FleetSpec) -> ProviderResult<FleetSpec> {
        match spec.provider {
            ProviderKind::Ec2 => self.ec2.prepare(spec).await,
            ProviderKind::Local => self.local.prepare(spec).await,
        }
    }
    async fn launch(&self, l: &Launch<'_>) -> ProviderResult<String> {
        match l.spec.provider {
            ProviderKind::Ec2 => self.ec2.launch(l).await,
            ProviderKind::Local => self.local.launch(l).await,
        }
    }
    async fn describe(&self, spec: &FleetSpec, fleet: Uuid) -> ProviderResult<Vec<Described>> {
        match spec.provider {
            ProviderKind::Ec2 => self.ec2.describe(spec, fleet).await,
            ProviderKind::Local => self.local.describe(spec, fleet).await,
        }
    }
    async fn terminate(&self, spec: &FleetSpec, ids: &[String]) -> ProviderResult<()> {
        match spec.provider {
            ProviderKind::Ec2 => self.ec2.terminate(spec, ids).await,
            ProviderKind::Local => self.local.terminate(spec, ids).await,
        }
    }
}

/// The tags every Sweep instance carries (the IAM policy in the README keys on `sweep:managed`).
pub const TAG_FLEET: &str = "sweep:fleet";
pub const TAG_INSTANCE: &str = "sweep:instance";
pub const TAG_MANAGED: &str = "sweep:managed";

/// The coordinator's own worker build, served to bootstrapping instances.
pub struct WorkerBinary {
    pub bytes: bytes::Bytes,
    pub sha256: String,
}

/// What launching needs besides the fleet: the providers, the worker binary, how
/// instances reach this coordinator and which CA they trust for it.
pub struct Fleets {
    pub providers: Providers,
    worker_path: PathBuf,
    worker: tokio::sync::OnceCell<Arc<WorkerBinary>>,
    public_url: Option<String>,
    tls: bool,
    /// The address this coordinator listens on (set once bound).
    pub bound: OnceLock<SocketAddr>,
    pub ca_pem: Option<String>,
}

impl Fleets {
    pub fn new(settings: &crate::Settings) -> anyhow::Result<Fleets> {
        use anyhow::Context;
        let worker_path = match &settings.worker_binary {
            Some(p) => p.clone(),
            None => std::env::current_exe()?.with_file_name("sweep-worker"),
        };
        let ca_pem = match &settings.tls_ca {
            Some(p) => Some(std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?),
            None => None,
        };
        let local_root =
            settings.fleet_local_dir.clone().unwrap_or_else(|| std::env::temp_dir().join("sweep-fleet-local"));
        Ok(Fleets {
            providers: Providers { ec2: ec2::Ec2::default(), local: local::Local { root: local_root } },
            worker_path,
            worker: Default::default(),
            public_url: settings.public_url.clone().map(|u| u.trim_end_matches('/').to_string()),
            tls: settings.tls_cert.is_some(),
            bound: OnceLock::new(),
            ca_pem,
        })
    }

    /// The worker binary and its SHA-256 (read once, on first use).
    pub async fn worker_binary(&self) -> Result<Arc<WorkerBinary>, String> {
        self.worker
            .get_or_try_init(|| async {
                let path = self.worker_path.clone();
                let bytes = tokio::fs::read(&path).await.map_err(|e| {
                    format!("worker binary {}: {e} (set --worker-binary to the sweep-worker build to serve)", path.display())
                })?;
                let sha256 = tokio::task::spawn_blocking({
                    let bytes = bytes.clone();
                    move || {
                        use sha2::Digest;
                        hex::encode(sha2::Sha256::digest(&bytes))
                    }
                })
                .await
                .map_err(|e| e.to_string())?;
                tracing::info!(path = %path.display(), bytes = bytes.len(), %sha256, "serving this worker binary to fleets");
                Ok(Arc::new(WorkerBinary { bytes: bytes.into(), sha256 }))
            })
            .await
            .cloned()
    }

    /// The coordinator's URL as instances of `provider` reach it: `--public-url` for
    /// ec2, the listen address for local instances (they run on this machine).
    pub fn public_url(&self, provider: ProviderKind) -> Result<String, String> {
        let scheme = if self.tls { "https" } else { "http" };
        match (provider, self.bound.get()) {
            (ProviderKind::Ec2, _) if self.public_url.is_some() => Ok(self.public_url.clone().unwrap_or_default()),
            (ProviderKind::Local, Some(a)) => {
                let ip = if a.ip().is_unspecified() { "127.0.0.1".to_string() } else { a.ip().to_string() };
                Ok(format!("{scheme}://{ip}:{}", a.port()))
            }
            (ProviderKind::Local, None) => Err("the coordinator is not listening yet".into()),
            (ProviderKind::Ec2, _) => {
                Err("ec2 instances need to know where the coordinator is: start it with --public-url https://HOST:PORT"
                    .into())
            }
        }
    }
}
