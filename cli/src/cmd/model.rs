//! `sweep model get TRIAL_ID|best [--sweep ID] --out DIR`: a trained model out of the
//! blob store (`model.json` + `model.safetensors`), ready for `sweep-worker predict`.

use std::path::PathBuf;

use serde_json::json;
use sweep_proto as pb;

use crate::client::{status_error, Conn};
use crate::output::{self, Format};

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Download a trial's model (or the sweep's best one) into a directory.
    Get {
        /// A trial id, or `best` (with --sweep).
        trial: String,
        #[arg(long)]
        sweep: Option<String>,
        #[arg(long)]
        out: PathBuf,
    },
}

pub async fn run(cmd: Cmd, conn: &Conn, fmt: Format) -> anyhow::Result<()> {
    let Cmd::Get { trial, sweep, out } = cmd;
    let mut c = conn.connect().await?;
    let t = find(&mut c, &trial, sweep.as_deref()).await?;
    anyhow::ensure!(
        !t.model_sha256.is_empty(),
        "trial {} has no model: only succeeded trials have one, and a sweep keeps its best few (coordinator --keep-models)",
        t.trial_id
    );
    std::fs::create_dir_all(&out)?;
    let tar_path = out.join(".model.tar");
    let mut blobs = conn.blobs().await?;
    sweep_client::blobs::download(&mut blobs, &t.model_sha256, &tar_path).await?;
    let file = std::fs::File::open(&tar_path)?;
    tar::Archive::new(file).unpack(&out)?;
    std::fs::remove_file(&tar_path)?;
    for f in ["model.json", "model.safetensors"] {
        anyhow::ensure!(out.join(f).exists(), "the model archive has no {f}");
    }
    fetch_encoder(&t.config_json, &out, conn).await?;
    match fmt {
        Format::Json => {
            output::print_json(&json!({"trial_id": t.trial_id, "model_sha256": t.model_sha256, "out": out}))
        }
        Format::Table => eprintln!("model of trial {} written to {}", t.trial_id, out.display()),
    }
    Ok(())
}

/// A model trained on a frozen encoder needs the encoder to score text: its archive
/// (the trial's `encoder` blob, in its config as stored) is fetched and unpacked into
/// `out/encoder`.
async fn fetch_encoder(config_json: &str, out: &std::path::Path, conn: &Conn) -> anyhow::Result<()> {
    let config: serde_json::Value = serde_json::from_str(config_json)?;
    let Some(sha) = config["dataset"]["blobs"]["encoder"].as_str() else { return Ok(()) };
    let tar_path = out.join(".encoder.tar");
    let mut blobs = conn.blobs().await?;
    sweep_client::blobs::download(&mut blobs, sha, &tar_path).await?;
    let dir = out.join("encoder");
    let _ = std::fs::remove_dir_all(&dir);
    sweep_client::archive::unpack_model_dir(&tar_path, &sweep_file::ENCODER_FILES, &dir)?;
    std::fs::remove_file(&tar_path)?;
    Ok(())
}

/// The trial named by id (searched in --sweep, else in every sweep) or `best`.
async fn find(c: &mut crate::client::Client, trial: &str, sweep: Option<&str>) -> anyhow::Result<pb::Trial> {
    if trial == "best" {
        let sweep_id = sweep.ok_or_else(|| anyhow::anyhow!("`best` needs --sweep ID"))?;
        let t = c.best_trial(pb::BestTrialRequest { sweep_id: sweep_id.into(), trial_id: String::new() }).await;
        return Ok(t.map_err(|s| status_error("model get", s))?.into_inner());
    }
    let sweeps: Vec<String> = match sweep {
        Some(s) => vec![s.to_string()],
        None => {
            let all = c.list_sweeps(pb::ListSweepsRequest {}).await.map_err(|s| status_error("model get", s))?;
            all.into_inner().sweeps.into_iter().map(|s| s.sweep_id).collect()
        }
    };
    for s in sweeps {
        let (_, trials) = crate::client::sweep_and_trials(c, &s, "model get").await?;
        if let Some(t) = trials.into_iter().find(|t| t.trial_id == trial) {
            return Ok(t);
        }
    }
    anyhow::bail!("no trial {trial}")
}
