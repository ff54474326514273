//! `sweep watch ID`.

use crate::client::{Client, Conn};
use crate::output;

#[derive(clap::Args)]
pub struct Args {
    sweep_id: String,
}

pub async fn run(a: Args, conn: &Conn) -> anyhow::Result<()> {
    follow(&mut conn.connect().await?, &a.sweep_id).await
}

/// Follows a sweep until it ends, then says how it ended.
pub async fn follow(c: &mut Client, sweep_id: &str) -> anyhow::Result<()> {
    let s = crate::watch::watch(c, sweep_id).await?;
    eprintln!("sweep {} {}: {}", s.name, s.state().name(), output::counts_line(&s));
    Ok(())
}
