//! Coordinator settings: flags, with environment fallbacks for the ones deploy files set.

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Address to listen on (port 0 picks a free port; the chosen one is logged and,
    /// with --port-file, written to a file).
    #[arg(long, env = "SWEEP_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// PostgreSQL URL; migrations run at start.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// Write the bound address here once listening (for scripts and tests).
    #[arg(long)]
    pub port_file: Option<PathBuf>,
    /// Lease length: a trial whose worker is silent this long goes back to the queue.
    #[arg(long, env = "SWEEP_LEASE_MS", default_value_t = 30_000)]
    pub lease_ms: u32,
    /// How often workers heartbeat (default: a third of the lease).
    #[arg(long, env = "SWEEP_HEARTBEAT_MS")]
    pub heartbeat_ms: Option<u32>,
    /// How often the reaper looks for expired leases.
    #[arg(long, env = "SWEEP_REAP_MS", default_value_t = 1_000)]
    pub reap_ms: u32,
    /// First retry delay after a transient trial error; doubles per error.
    #[arg(long, env = "SWEEP_BACKOFF_MS", default_value_t = 2_000)]
    pub backoff_ms: u32,
    /// Quarantine a worker after this many infrastructure failures (transient trial
    /// errors) in a row: it gets no new leases until `sweep-coordinator clear-quarantine`.
    /// 0 turns quarantine off.
    #[arg(long, env = "SWEEP_QUARANTINE_AFTER", default_value_t = 5)]
    pub quarantine_after: u32,
    /// Largest number of trials one sweep may expand to.
    #[arg(long, env = "SWEEP_MAX_TRIALS", default_value_t = 100_000)]
    pub max_trials: u64,
    /// Largest gRPC message, both ways.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,
    /// Largest number of concurrent HTTP/2 streams per connection.
    #[arg(long, default_value_t = 256)]
    pub max_concurrent_streams: u32,
    /// Connections open at once on the port, in all (kept under the descriptor limit).
    #[arg(long, env = "SWEEP_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Connections open at once from one peer address; more are closed at once.
    #[arg(long, env = "SWEEP_MAX_CONNECTIONS_PER_PEER", default_value_t = 512)]
    pub max_connections_per_peer: usize,
    /// A connection that sends nothing this long after it opens is closed.
    #[arg(long, default_value_t = 10_000)]
    pub handshake_timeout_ms: u64,
    /// A connection silent both ways this long is closed (above the 30 s long-poll).
    #[arg(long, default_value_t = 300_000)]
    pub idle_timeout_ms: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics (off the gRPC port; off by default).
    #[arg(long, env = "SWEEP_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Postgres connections.
    #[arg(long, env = "SWEEP_DB_CONNECTIONS", default_value_t = 16)]
    pub db_connections: u32,
    /// TLS server certificate (PEM); TLS is on when this and --tls-key are given.
    #[arg(long, env = "SWEEP_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, env = "SWEEP_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA for client certificates (mutual TLS).
    #[arg(long, env = "SWEEP_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Listen on a non-loopback address without TLS (tokens then cross the network in
    /// plaintext: only inside a network you trust, or behind a TLS-terminating proxy).
    #[arg(long, env = "SWEEP_INSECURE_PLAINTEXT")]
    pub insecure_plaintext: bool,
    /// The CA certificate (PEM) fleet instances trust for this coordinator; goes into
    /// their bootstrap (`sweep-coordinator tls init` writes one).
    #[arg(long, env = "SWEEP_TLS_CA", requires = "tls_cert")]
    pub tls_ca: Option<PathBuf>,
    /// The URL fleet instances reach this coordinator at (e.g. https://10.0.1.5:50051).
    /// Needed for ec2 fleets; local fleets use the listen address.
    #[arg(long, env = "SWEEP_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The sweep-worker build that fleet instances download (default: the one next to
    /// this coordinator's executable).
    #[arg(long, env = "SWEEP_WORKER_BINARY")]
    pub worker_binary: Option<PathBuf>,
    /// How often the fleet reconciler runs.
    #[arg(long, env = "SWEEP_FLEET_RECONCILE_MS", default_value_t = 5_000)]
    pub fleet_reconcile_ms: u32,
    /// How often a spot fleet's price is read again from EC2's spot price history while
    /// it runs (a changed price applies from then on).
    #[arg(long, env = "SWEEP_SPOT_PRICE_REFRESH_MINUTES", default_value_t = 60.0)]
    pub spot_price_refresh_minutes: f64,
    /// Instances all active fleets may have together; a `fleet up` beyond it is refused
    /// before anything is launched.
    #[arg(long, env = "SWEEP_FLEET_MAX_INSTANCES", default_value_t = 32)]
    pub fleet_max_instances: u32,
    /// How long an instance's single-use join token stays valid (its bootstrap must
    /// enrol by then, or the instance is terminated and replaced).
    #[arg(long, env = "SWEEP_FLEET_JOIN_TTL_SECS", default_value_t = 1_800)]
    pub fleet_join_ttl_secs: u64,
    /// The blob store (datasets, model artifacts): a directory, or s3://bucket/prefix
    /// (AWS_* environment for credentials, region, endpoint). Default:
    /// ~/.local/share/sweep/blobs.
    #[arg(long, env = "SWEEP_BLOB_STORE")]
    pub blob_store: Option<String>,
    /// Where unfinished uploads wait (default: `.staging` in a directory store, else a
    /// temporary directory).
    #[arg(long, env = "SWEEP_BLOB_STAGING")]
    pub blob_staging: Option<PathBuf>,
    /// Largest blob accepted (a data file, a model).
    #[arg(long, env = "SWEEP_MAX_BLOB_BYTES", default_value_t = 4 << 30)]
    pub max_blob_bytes: u64,
    /// Trained models kept per sweep: those of the best trials by the objective; the
    /// others are deleted from the blob store.
    #[arg(long, env = "SWEEP_KEEP_MODELS", default_value_t = 5)]
    pub keep_models: u32,
    /// Where the local provider keeps its instances' directories.
    #[arg(long, env = "SWEEP_FLEET_LOCAL_DIR")]
    pub fleet_local_dir: Option<PathBuf>,
}

impl Settings {
    pub fn blob_store(&self) -> String {
        self.blob_store.clone().unwrap_or_else(|| {
            let base = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
            base.join(".local/share/sweep/blobs").to_string_lossy().into_owned()
        })
    }

    /// The listener's connection limits (see `conn`).
    pub fn connection_limits(&self) -> crate::conn::Limits {
        crate::conn::Limits {
            max_connections: self.max_connections.max(1),
            max_per_peer: self.max_connections_per_peer.max(1),
            handshake: std::time::Duration::from_millis(self.handshake_timeout_ms.max(100)),
            idle: std::time::Duration::from_millis(self.idle_timeout_ms.max(31_000)),
        }
        .fitted()
    }

    pub fn heartbeat_ms(&self) -> u32 {
        self.heartbeat_ms.unwrap_or(self.lease_ms / 3).max(50)
    }
}
