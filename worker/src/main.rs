use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sweep_worker::{agent, data, train};
use tokio_util::sync::CancellationToken;

/// The Sweep worker.
#[derive(Parser)]
#[command(name = "sweep-worker", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Lease trials from a coordinator and train them.
    Run(agent::AgentSettings),
    /// Train one trial alone, no coordinator (the agent runs the same code).
    Train {
        /// A resolved trial config, as `sweep validate FILE -o json` prints one trial's `config`.
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value = "auto")]
        device: String,
        /// Where to write the result (metrics, history, best epoch, timings).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,h2=warn,tower=warn"));
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var("SWEEP_LOG_FORMAT").is_ok_and(|v| v == "json") {
        b.json().init();
    } else {
        b.init();
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing();
    match cli.cmd {
        Cmd::Run(settings) => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async {
                let shutdown = CancellationToken::new();
                let trigger = shutdown.clone();
                tokio::spawn(async move {
                    use tokio::signal::unix::{signal, SignalKind};
                    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
                    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
                    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
                    tracing::info!("shutdown signal: taking no new work (send again to exit now)");
                    trigger.cancel();
                    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
                    std::process::exit(130);
                });
                agent::run(settings, shutdown).await
            })
        }
        Cmd::Train { config, device, out } => {
            let text = std::fs::read_to_string(&config).with_context(|| format!("read {}", config.display()))?;
            let cfg: sweep_spec::TrialConfig =
                serde_json::from_str(&text).with_context(|| format!("{}: not a trial config", config.display()))?;
            if let Some((field, problem)) = cfg.check().into_iter().next() {
                anyhow::bail!("{}: {field}: {problem}", config.display());
            }
            let device = train::device(&device)?;
            let ds = data::load(&cfg.dataset)?;
            eprintln!(
                "dataset {}: train {} val {} test {}, {} features, {} labels; device {device:?}",
                ds.name, ds.train.n, ds.val.n, ds.test.n, ds.features, ds.labels
            );
            let cancel = AtomicBool::new(false);
            let mut progress = |r: &train::EpochReport| {
                let m = &r.metrics;
                eprintln!(
                    "epoch {:>3}  train.loss {:.5}  val.f1_micro {:.4}  val.f1_macro {:.4}  {:.0} samples/s",
                    r.epoch, m["train.loss"], m["val.f1_micro"], m["val.f1_macro"], m["samples_per_s"]
                );
            };
            let res = train::train_one(&ds, &cfg, device, &mut progress, &cancel)?;
            let json = serde_json::to_string_pretty(&res)?;
            match out {
                Some(p) => std::fs::write(&p, json).with_context(|| format!("write {}", p.display()))?,
                None => println!("{json}"),
            }
            Ok(())
        }
    }
}
