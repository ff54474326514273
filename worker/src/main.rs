use clap::{Parser, Subcommand};
use std::path::PathBuf;
use sweep_worker::{agent, offline};

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
    /// Train trials alone, no coordinator (the agent runs the same code): one config, or
    /// several one after another, or several as one stacked model (`--fused`).
    Train {
        /// A resolved trial config, as `sweep validate FILE -o json` prints one trial's
        /// `config`. Repeat for several.
        #[arg(long, required = true)]
        config: Vec<PathBuf>,
        #[arg(long, default_value = "auto")]
        device: String,
        /// Train the configs as one stacked model (they must share the dataset, hidden
        /// widths and batch size); each gets the result it would get alone.
        #[arg(long)]
        fused: bool,
        /// Where to write the result (metrics, history, best epoch, timings); one config only.
        #[arg(long, conflicts_with = "out_dir")]
        out: Option<PathBuf>,
        /// Write each config's result to DIR/<config file stem>.json.
        #[arg(long)]
        out_dir: Option<PathBuf>,
        /// Also write the trained model (model.json + model.safetensors) to this
        /// directory; with --out-dir, each config's to a subdirectory named by its stem.
        #[arg(long)]
        model_out: Option<PathBuf>,
        /// Keep featurized text datasets here and reuse them (as a worker's cache does).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Check what this machine gives the trainer, on the device it would use: memory and
    /// the K `--fuse auto` would stack, dropout masks on the device against the CPU's, the
    /// sparse first layer against dense rows (one JSON object).
    Doctor {
        #[arg(long, default_value = "auto")]
        device: String,
        /// The model `--fuse auto` is sized for: inputs, hidden widths, labels, batch rows.
        #[arg(long, default_value = "500")]
        features: usize,
        #[arg(long, default_value = "512", value_delimiter = ',')]
        hidden: Vec<u32>,
        #[arg(long, default_value = "983")]
        labels: usize,
        #[arg(long, default_value = "256")]
        batch: usize,
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
    if matches!(cli.cmd, Cmd::Run(_) | Cmd::Train { .. }) {
        sweep_worker::malloc::tune();
    }
    sweep_client::telemetry::init("info,h2=warn,tower=warn");
    match cli.cmd {
        Cmd::Run(settings) => tokio::runtime::Runtime::new()?.block_on(async {
            let shutdown = sweep_client::signal::shutdown_token();
            agent::run(*settings, shutdown).await
        }),
        Cmd::Train { config, device, fused, out, out_dir, model_out, cache_dir } => {
            offline::train(offline::TrainArgs {
                configs: &config,
                device: &device,
                fused,
                out: out.as_deref(),
                out_dir: out_dir.as_deref(),
                model_out: model_out.as_deref(),
                cache_dir: cache_dir.as_deref(),
            })
        }
        Cmd::Doctor { device, features, hidden, labels, batch } => {
            let shape = sweep_worker::doctor::ModelShape { features, hidden, labels, batch };
            println!("{}", sweep_worker::doctor::report(sweep_trainer::train::device(&device)?, &shape));
            Ok(())
        }
        Cmd::Predict { model, input, out, device, thresholds } => {
            offline::predict(&model, &input, &out, &device, &thresholds)
        }
    }
}
