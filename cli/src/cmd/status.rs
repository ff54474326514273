//! `sweep status [ID]`.

use sweep_proto as pb;

use crate::client::{status_error, Conn};
use crate::output::{self, Format};

#[derive(clap::Args)]
pub struct Args {
    sweep_id: Option<String>,
}

pub async fn run(a: Args, conn: &Conn, fmt: Format) -> anyhow::Result<()> {
    let mut c = conn.connect().await?;
    let sweeps = match a.sweep_id {
        Some(sweep_id) => {
            vec![c
                .get_sweep(pb::GetSweepRequest { sweep_id })
                .await
                .map_err(|s| status_error("status", s))?
                .into_inner()]
        }
        None => {
            c.list_sweeps(pb::ListSweepsRequest {}).await.map_err(|s| status_error("status", s))?.into_inner().sweeps
        }
    };
    match fmt {
        Format::Json => output::print_json(&output::sweeps_json(&sweeps)),
        Format::Table => output::print_sweeps(&sweeps),
    }
    Ok(())
}
