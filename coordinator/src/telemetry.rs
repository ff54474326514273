//! Tracing set-up shared by the binaries: readable logs by default, JSON when
//! `SWEEP_LOG_FORMAT=json`, filtered by `RUST_LOG`.

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

/// Resolves when SIGINT or SIGTERM arrives; a second signal exits at once.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutdown signal received, draining (send again to exit now)");
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("second signal, exiting now");
        std::process::exit(130);
    });
}
