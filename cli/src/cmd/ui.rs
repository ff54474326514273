//! `sweep ui [ID]`: where the dashboard is (the coordinator serves it on its own port).

use serde_json::json;
use sweep_proto as pb;

use crate::client::{status_error, Conn};
use crate::output::{self, Format};

#[derive(clap::Args)]
pub struct Args {
    /// A sweep: its page's address (checked to exist). Without one, the sweeps page.
    sweep_id: Option<String>,
}

pub async fn run(a: Args, conn: &Conn, fmt: Format) -> anyhow::Result<()> {
    let base = conn.coordinator.trim_end_matches('/');
    let url = match a.sweep_id {
        Some(sweep_id) => {
            let mut c = conn.connect().await?;
            let s = c.get_sweep(pb::GetSweepRequest { sweep_id }).await.map_err(|s| status_error("ui", s))?;
            format!("{base}/sweeps/{}", s.into_inner().sweep_id)
        }
        None => format!("{base}/"),
    };
    match fmt {
        Format::Json => output::print_json(&json!({"url": url})),
        Format::Table => {
            println!("{url}");
            eprintln!("sign in with an API token (admin or client); scripts: /api/v1/ with Authorization: Bearer");
        }
    }
    Ok(())
}
