//! `sweep retry ID --failed [--dead]`: requeue exactly the trials the flags name.

use serde_json::json;
use sweep_proto as pb;

use crate::client::{status_error, Conn};
use crate::output::{self, Format};

#[derive(clap::Args)]
#[group(id = "which", required = true, multiple = true, args = ["failed", "dead"])]
pub struct Args {
    sweep_id: String,
    /// Requeue trials that failed (a user error, or transient errors past max_attempts).
    #[arg(long)]
    failed: bool,
    /// Requeue trials that died (their leases expired max_attempts times).
    #[arg(long)]
    dead: bool,
}

pub async fn run(a: Args, conn: &Conn, fmt: Format) -> anyhow::Result<()> {
    let mut c = conn.connect().await?;
    let req = pb::RetryFailedRequest { sweep_id: a.sweep_id, failed: a.failed, dead: a.dead };
    let r = c.retry_failed(req).await.map_err(|s| status_error("retry", s))?.into_inner();
    match fmt {
        Format::Json => output::print_json(&json!({"requeued": r.requeued})),
        Format::Table => println!("requeued {} trial(s)", r.requeued),
    }
    Ok(())
}
