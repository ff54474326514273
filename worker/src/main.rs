use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use sweep_trainer::{data, train};
use sweep_worker::agent;

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
    Run(Box<agent::AgentSettings>),
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
        /// Also write the trained model (model.json + model.safetensors) here.
        #[arg(long)]
        model_out: Option<PathBuf>,
    },
    /// Score a data file with a trained model (from `sweep model get`): one JSON line per
    /// row with the labels at or above threshold, their probabilities, and the row's true
    /// labels when the file has them.
    Predict {
        /// The model's directory (model.json + model.safetensors).
        #[arg(long)]
        model: PathBuf,
        /// Rows to score, in the format the model's dataset came in (MULAN ARFF or XC text).
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "auto")]
        device: String,
        /// global: the one tuned threshold (as test.f1_micro_tuned); per-label: one per
        /// label (as test.f1_macro_tuned).
        #[arg(long, default_value = "global", value_parser = ["global", "per-label"])]
        thresholds: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    sweep_client::telemetry::init("info,h2=warn,tower=warn");
    match cli.cmd {
        Cmd::Run(settings) => tokio::runtime::Runtime::new()?.block_on(async {
            let shutdown = sweep_client::signal::shutdown_token();
            agent::run(*settings, shutdown).await
        }),
        Cmd::Train { config, device, out, model_out } => {
            train_alone(&config, &device, out.as_deref(), model_out.as_deref())
        }
        Cmd::Predict { model, input, out, device, thresholds } => {
            use sweep_trainer::artifact::{predict_file, ThresholdChoice};
            let choice = if thresholds == "per-label" { ThresholdChoice::PerLabel } else { ThresholdChoice::Global };
            let rows = predict_file(&model, &input, &out, train::device(&device)?, choice)?;
            eprintln!("{rows} rows scored, written to {}", out.display());
            Ok(())
        }
    }
}

/// `sweep-worker train`: one trial, its epochs on stderr, its result as JSON.
fn train_alone(
    config: &std::path::Path,
    device: &str,
    out: Option<&std::path::Path>,
    model_out: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(config).with_context(|| format!("read {}", config.display()))?;
    let cfg = agent::parse_config(&text).with_context(|| format!("{}: not a valid trial config", config.display()))?;
    let device = train::device(device)?;
    let ds = data::load(&cfg.dataset)?;
    eprintln!(
        "dataset {}: train {} val {} test {}, {} features, {} labels; device {device:?}",
        ds.name, ds.train.n, ds.val.n, ds.test.n, ds.features, ds.labels
    );
    let control = train::Control::default();
    let mut progress = |r: &train::EpochReport| {
        let m = &r.metrics;
        eprintln!(
            "epoch {:>3}  train.loss {:.5}  val.f1_micro {:.4}  val.f1_macro {:.4}  {:.0} samples/s",
            r.epoch, m["train.loss"], m["val.f1_micro"], m["val.f1_macro"], m["samples_per_s"]
        );
    };
    let res = train::train_one(&ds, &cfg, device, &mut progress, &control)?;
    if let (Some(dir), Some(model)) = (model_out, &res.model) {
        model.write_dir(dir)?;
    }
    let json = serde_json::to_string_pretty(&res)?;
    match out {
        Some(p) => std::fs::write(p, json).with_context(|| format!("write {}", p.display()))?,
        None => println!("{json}"),
    }
    Ok(())
}
