use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
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
        Cmd::Train { config, device, fused, out, out_dir, model_out } => {
            train_alone(&config, &device, fused, out.as_deref(), out_dir.as_deref(), model_out.as_deref())
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

/// `sweep-worker train`: the trials, their epochs on stderr, their results as JSON.
fn train_alone(
    configs: &[PathBuf],
    device: &str,
    fused: bool,
    out: Option<&Path>,
    out_dir: Option<&Path>,
    model_out: Option<&Path>,
) -> anyhow::Result<()> {
    use anyhow::bail;
    if configs.len() > 1 && out_dir.is_none() {
        bail!("{} configs: name --out-dir DIR for their results", configs.len());
    }
    let mut cfgs = Vec::new();
    for path in configs {
        let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        cfgs.push(agent::parse_config(&text).with_context(|| format!("{}: not a valid trial config", path.display()))?);
    }
    let stems: Vec<String> = configs
        .iter()
        .map(|p| p.file_stem().map_or_else(|| "trial".into(), |s| s.to_string_lossy().into_owned()))
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = stems.iter().find(|s| !seen.insert(s.as_str())) {
        bail!("two configs are named `{dup}`: their results would overwrite each other in --out-dir");
    }
    let device = train::device(device)?;
    let mut datasets: Vec<(sweep_spec::DatasetConfig, data::Dataset)> = Vec::new();
    for cfg in &cfgs {
        if !datasets.iter().any(|(d, _)| *d == cfg.dataset) {
            let ds = data::load(&cfg.dataset)?;
            eprintln!(
                "dataset {}: train {} val {} test {}, {} features, {} labels; device {device:?}",
                ds.name, ds.train.n, ds.val.n, ds.test.n, ds.features, ds.labels
            );
            datasets.push((cfg.dataset.clone(), ds));
        }
    }
    if fused && datasets.len() > 1 {
        bail!("--fused: the configs name {} different datasets; a stack trains on one", datasets.len());
    }
    let dataset_of =
        |cfg: &sweep_spec::TrialConfig| &datasets.iter().find(|(d, _)| *d == cfg.dataset).expect("loaded").1;
    let many = cfgs.len() > 1;
    let mut progress = |i: usize, r: &train::EpochReport| {
        let m = &r.metrics;
        let who = if many { format!("{:<12} ", stems[i]) } else { String::new() };
        eprintln!(
            "{who}epoch {:>3}  train.loss {:.5}  val.f1_micro {:.4}  val.f1_macro {:.4}  {:.0} samples/s",
            r.epoch, m["train.loss"], m["val.f1_micro"], m["val.f1_macro"], m["samples_per_s"]
        );
    };
    let controls: Vec<train::Control> = cfgs.iter().map(|_| train::Control::default()).collect();
    let started = std::time::Instant::now();
    let results: Vec<Result<train::TrialResult, train::TrainError>> = if fused {
        let refs: Vec<&train::Control> = controls.iter().collect();
        train::train_fused(&datasets[0].1, &cfgs, device, &mut progress, &refs)
    } else {
        cfgs.iter()
            .enumerate()
            .map(|(i, cfg)| train::train_one(dataset_of(cfg), cfg, device, &mut |r| progress(i, r), &controls[i]))
            .collect()
    };
    if many {
        eprintln!(
            "{} trials in {:.2} s{}",
            cfgs.len(),
            started.elapsed().as_secs_f64(),
            if fused { ", fused" } else { "" }
        );
    }
    let mut failed = 0;
    for (i, res) in results.into_iter().enumerate() {
        let res = match res {
            Ok(r) => r,
            Err(e) if many => {
                eprintln!("{}: {e}", configs[i].display());
                failed += 1;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let json = serde_json::to_string_pretty(&res)?;
        let (result_path, model_dir) = match out_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
                (Some(dir.join(format!("{}.json", stems[i]))), model_out.map(|m| m.join(&stems[i])))
            }
            None => (out.map(Path::to_path_buf), model_out.map(Path::to_path_buf)),
        };
        if let (Some(dir), Some(model)) = (model_dir, &res.model) {
            model.write_dir(&dir)?;
        }
        match result_path {
            Some(p) => std::fs::write(&p, json).with_context(|| format!("write {}", p.display()))?,
            None => println!("{json}"),
        }
    }
    if failed > 0 {
        bail!("{failed} of {} trials failed", cfgs.len());
    }
    Ok(())
}
