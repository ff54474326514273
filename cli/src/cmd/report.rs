//! `sweep report ID --out FILE`.

use std::path::PathBuf;

use anyhow::Context;

use crate::client::Conn;

#[derive(clap::Args)]
pub struct Args {
    sweep_id: String,
    #[arg(long, default_value = "report.html")]
    out: PathBuf,
}

pub async fn run(a: Args, conn: &Conn) -> anyhow::Result<()> {
    let mut c = conn.connect().await?;
    let html = crate::report::build(&mut c, &a.sweep_id).await?;
    std::fs::write(&a.out, html).with_context(|| format!("write {}", a.out.display()))?;
    eprintln!("wrote {}", a.out.display());
    Ok(())
}
