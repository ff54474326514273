//! `sweep cancel ID`.

use serde_json::json;
use sweep_proto as pb;

use crate::client::{status_error, Conn};
use crate::output::{self, Format};

#[derive(clap::Args)]
pub struct Args {
    sweep_id: String,
}

pub async fn run(a: Args, conn: &Conn, fmt: Format) -> anyhow::Result<()> {
    let mut c = conn.connect().await?;
    let r = c
        .cancel_sweep(pb::CancelSweepRequest { sweep_id: a.sweep_id })
        .await
        .map_err(|s| status_error("cancel", s))?
        .into_inner();
    match fmt {
        Format::Json => output::print_json(&json!({"cancelled": r.cancelled})),
        Format::Table => println!("cancelled {} trial(s)", r.cancelled),
    }
    Ok(())
}
