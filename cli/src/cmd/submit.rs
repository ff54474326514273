//! `sweep submit FILE [--watch]`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sweep_proto as pb;

use crate::client::{status_error, Conn};
use crate::output::{self, Format};

#[derive(clap::Args)]
pub struct Args {
    file: PathBuf,
    /// Follow progress until the sweep ends.
    #[arg(long)]
    watch: bool,
    /// Where relative data paths (and MULAN names) resolve when they are neither beside
    /// the sweep file nor under the current directory (default: $SWEEP_DATA_DIR, else
    /// ../shared/datasets).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Do not upload data files: every worker reads them from its own disk.
    #[arg(long)]
    no_upload: bool,
    /// Print what it would cost (trials, hours, dollars) and submit nothing.
    #[arg(long)]
    estimate: bool,
    #[command(flatten)]
    how: EstimateArgs,
}

/// What `--estimate` prices the sweep on.
#[derive(clap::Args)]
pub struct EstimateArgs {
    /// Minutes one trial takes (default: measured on the sweep's own finished trials).
    #[arg(long, requires = "estimate")]
    trial_minutes: Option<f64>,
    /// Priced from the coordinator's on-demand table, e.g. g5.xlarge.
    #[arg(long, requires = "estimate")]
    instance_type: Option<String>,
    /// USD per instance-hour (instead of the table).
    #[arg(long, requires = "estimate")]
    price_per_hour: Option<f64>,
    /// Instances running at once.
    #[arg(long, default_value_t = 1, requires = "estimate")]
    instances: u32,
    /// Trials per instance at once (the worker's --slots).
    #[arg(long, default_value_t = 1, requires = "estimate")]
    slots: u32,
}

/// Where a data path as written is on this machine: absolute, or relative to the sweep
/// file's directory, the current directory, or the data directory (the first that has it).
fn locate(path: &str, sweep_dir: &Path, data_dir: &Path) -> Option<PathBuf> {
    let p = PathBuf::from(path);
    if p.is_absolute() {
        return p.exists().then_some(p);
    }
    [sweep_dir.join(&p), p.clone(), data_dir.join(&p)].into_iter().find(|c| c.exists())
}

/// Uploads every data file the trials read (once each, skipped when the store has it);
/// returns path as written -> SHA-256.
pub(super) async fn upload_data(
    trials: &[sweep_file::Trial],
    sweep_file: &Path,
    data_dir: &Path,
    conn: &Conn,
) -> anyhow::Result<BTreeMap<String, String>> {
    let sweep_dir = sweep_file.parent().unwrap_or(Path::new("."));
    // `s3://` paths stay as they are: workers read them from the object store.
    let paths: BTreeSet<String> = trials
        .iter()
        .flat_map(|t| sweep_file::data_files(&t.config.dataset))
        .map(|(_, p)| p)
        .filter(|p| !sweep_file::is_remote(p))
        .collect();
    let mut out = BTreeMap::new();
    if paths.is_empty() {
        return Ok(out);
    }
    check_encoders(trials, sweep_file, sweep_dir, data_dir)?;
    let mut blobs = conn.blobs().await?;
    for p in paths {
        let Some(local) = locate(&p, sweep_dir, data_dir) else {
            anyhow::bail!(
                "{}: data file `{p}` is not beside the sweep file, under the current directory, nor under {}: \
                 pass --data DIR, or --no-upload if every worker has it",
                sweep_file.display(),
                data_dir.display()
            );
        };
        let (sha, size) = if local.is_dir() {
            // A model directory: its files as one archive.
            let packed = tempfile::NamedTempFile::new()?;
            sweep_client::archive::pack_model_dir(&local, &sweep_file::ENCODER_FILES, packed.path())?;
            sweep_client::blobs::upload(&mut blobs, packed.path()).await?
        } else {
            sweep_client::blobs::upload(&mut blobs, &local).await?
        };
        eprintln!("data {p}: {size} bytes, sha256 {}", &sha[..12]);
        out.insert(p, sha);
    }
    Ok(out)
}

/// Every frozen encoder's model directory held against its config and the trial's
/// `max_length` before anything is uploaded: a directory that cannot work is one line
/// here, not a failed trial on a worker.
fn check_encoders(
    trials: &[sweep_file::Trial],
    sweep_file: &Path,
    sweep_dir: &Path,
    data_dir: &Path,
) -> anyhow::Result<()> {
    let encoders: BTreeSet<(String, u32)> = trials
        .iter()
        .filter_map(|t| match &t.config.dataset.source {
            sweep_file::DataSource::Text(d) => d.encoder.as_ref(),
            _ => None,
        })
        .filter_map(|e| Some((e.path.clone()?, e.max_length)))
        .filter(|(p, _)| !sweep_file::is_remote(p))
        .collect();
    for (path, max_length) in encoders {
        if let Some(dir) = locate(&path, sweep_dir, data_dir) {
            sweep_file::check_model_dir(&dir, max_length)
                .map_err(|e| anyhow::anyhow!("{}: model.path `{path}`: {e}", sweep_file.display()))?;
        }
    }
    Ok(())
}

/// `--estimate`: the coordinator prices the file; nothing is uploaded or stored.
async fn estimate(a: Args, yaml: String, conn: &Conn, fmt: Format) -> anyhow::Result<()> {
    let mut c = conn.connect().await?;
    let e = c
        .estimate_sweep(pb::EstimateSweepRequest {
            spec_yaml: yaml,
            source_name: a.file.display().to_string(),
            trial_minutes: a.how.trial_minutes.unwrap_or(0.0),
            instance_type: a.how.instance_type.unwrap_or_default(),
            price_per_hour: a.how.price_per_hour.unwrap_or(0.0),
            instances: a.how.instances,
            slots: a.how.slots,
        })
        .await
        .map_err(|s| status_error("estimate", s))?
        .into_inner();
    match fmt {
        Format::Json => output::print_json(&output::estimate_json(&e)),
        Format::Table => output::print_estimate(&e),
    }
    Ok(())
}

pub async fn run(a: Args, conn: &Conn, fmt: Format) -> anyhow::Result<()> {
    // Checked here first: a bad file never reaches the coordinator.
    let (yaml, _, trials) = super::read_sweep_file(&a.file, sweep_file::Limits { max_trials: u64::MAX })?;
    if a.estimate {
        return estimate(a, yaml, conn, fmt).await;
    }
    let data_blobs = if a.no_upload {
        Default::default()
    } else {
        let dir = a.data.clone().unwrap_or_else(sweep_file::data_dir);
        upload_data(&trials, &a.file, &dir, conn).await?
    };
    let mut c = conn.connect().await?;
    let r = c
        .submit_sweep(pb::SubmitSweepRequest {
            spec_yaml: yaml,
            source_name: a.file.display().to_string(),
            data_blobs: data_blobs.into_iter().collect(),
        })
        .await
        .map_err(|s| status_error("submit", s))?
        .into_inner();
    match fmt {
        Format::Json => output::print_json(&output::submitted_json(&r)),
        Format::Table => {
            println!("{}", r.sweep_id);
            let verb = if r.created { "created" } else { "existing" };
            eprintln!("{verb} sweep: {} trials, {} new", r.trials_total, r.trials_added);
        }
    }
    if a.watch {
        super::watch::follow(&mut c, &r.sweep_id).await?;
    }
    Ok(())
}
