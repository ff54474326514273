//! The agent's settings (`sweep-worker run` flags) and how many trials a fused group
//! may hold.

use std::path::PathBuf;

use sweep_client::TlsArgs;

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
    /// Lease up to K trials that share a fuse key (dataset, hidden widths, batch size)
    /// at once and train them as one stacked model: one batched forward and backward per
    /// step for all K, each trial still with its own seed, data order, settings, early
    /// stopping, metrics and result. `auto`: as many as fit in free GPU memory (at most
    /// 32; 1 on CPU). Trials whose keys differ still run, in other groups.
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
    /// The only directory this worker reads data files named by path from (a sweep
    /// submitted with --no-upload, on shared storage); uploaded files come by hash and
    /// `s3://` objects from their store, and any other path is refused before it is
    /// opened (default: $SWEEP_DATA_DIR, else ../shared/datasets).
    #[arg(long = "data", env = "SWEEP_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where data files fetched by hash (and featurized text) are kept between trials and
    /// restarts (default: ~/.cache/sweep/blobs).
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

    pub(super) fn lease_at_most(self) -> usize {
        match self {
            Fuse::Fixed(k) => k,
            Fuse::Auto => FUSE_AUTO_MAX,
        }
    }
}
