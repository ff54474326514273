//! `sweep workers`.

use sweep_proto as pb;

use crate::client::{status_error, Conn};
use crate::output::{self, Format};

pub async fn run(conn: &Conn, fmt: Format) -> anyhow::Result<()> {
    let mut c = conn.connect().await?;
    let ws =
        c.list_workers(pb::ListWorkersRequest {}).await.map_err(|s| status_error("workers", s))?.into_inner().workers;
    match fmt {
        Format::Json => output::print_json(&output::workers_json(&ws)),
        Format::Table => output::print_workers(&ws),
    }
    Ok(())
}
