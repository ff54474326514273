//! `sweep submit FILE [--watch]`.

use std::path::PathBuf;

use sweep_proto as pb;

use crate::client::{status_error, Conn};
use crate::output::{self, Format};

#[derive(clap::Args)]
pub struct Args {
    file: PathBuf,
    /// Follow progress until the sweep ends.
    #[arg(long)]
    watch: bool,
}

pub async fn run(a: Args, conn: &Conn, fmt: Format) -> anyhow::Result<()> {
    // Checked here first: a bad file never reaches the coordinator.
    let (yaml, _, _) = super::read_sweep_file(&a.file, sweep_spec::Limits { max_trials: u64::MAX })?;
    let mut c = conn.connect().await?;
    let r = c
        .submit_sweep(pb::SubmitSweepRequest { spec_yaml: yaml, source_name: a.file.display().to_string() })
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
