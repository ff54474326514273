//! Tracing and metrics set-up shared by the binaries: readable logs on stderr by
//! default, JSON when `SWEEP_LOG_FORMAT=json`, filtered by `RUST_LOG` (else
//! `default_filter`); a Prometheus endpoint when asked for.

use tracing_subscriber::EnvFilter;

pub fn init(default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var("SWEEP_LOG_FORMAT").is_ok_and(|v| v == "json") {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}

/// Latency buckets (seconds) for every histogram: 1 ms to 30 s.
const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Serves the process's metrics (the `metrics` facade) for Prometheus at
/// `http://ADDR/metrics`. Call once per process, inside a Tokio runtime.
pub fn serve_metrics(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    use anyhow::Context;
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets(BUCKETS)
        .context("metrics buckets")?
        .install()
        .with_context(|| format!("serve metrics on {addr}"))?;
    tracing::info!(%addr, "metrics at /metrics");
    Ok(())
}
