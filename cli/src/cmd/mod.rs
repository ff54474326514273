//! One module per `sweep` command: its arguments and what it does.

pub mod best;
pub mod budget;
pub mod cancel;
pub mod confirm;
pub mod fleet;
pub mod local;
pub mod model;
pub mod report;
pub mod retry;
pub mod status;
pub mod submit;
pub mod trials;
pub mod ui;
pub mod validate;
pub mod watch;
pub mod workers;

use clap::Subcommand;

use crate::client::Conn;
use crate::output::Format;

#[derive(Subcommand)]
pub enum Cmd {
    /// Submit a sweep file; prints the sweep id. Resubmitting adds only new cells.
    Submit(submit::Args),
    /// Check a sweep file offline and show its trials with their resolved configs.
    Validate(validate::Args),
    /// One sweep's progress, or every sweep.
    Status(status::Args),
    /// A sweep's trials (in grid order, or ranked with --sort).
    Trials(trials::Args),
    /// The best trial and a sweep file that re-runs its config.
    Best(best::Args),
    /// Follow a sweep's progress until it ends.
    Watch(watch::Args),
    /// Cancel a sweep: queued trials are dropped, running ones stop at their next heartbeat.
    Cancel(cancel::Args),
    /// Put failed and/or dead trials back in the queue with a fresh budget.
    Retry(retry::Args),
    /// Set a sweep's budget in USD; a raise resumes a sweep whose budget was spent.
    Budget(budget::Args),
    /// Registered workers: alive, gone (silent for three lease lengths) or revoked.
    Workers,
    /// The dashboard's address (a sweep's page with ID), served by the coordinator.
    Ui(ui::Args),
    /// Write a self-contained HTML report: leaderboard, curves, grid heatmap, label groups.
    Report(report::Args),
    /// Re-run the top configurations of a sweep on fresh seeds, as a linked sweep.
    Confirm(confirm::Args),
    /// Trained models: `sweep model get TRIAL_ID|best --sweep ID --out DIR`.
    Model {
        #[command(subcommand)]
        cmd: model::Cmd,
    },
    /// GPU workers on rented instances: launch, list, inspect, retire (admin token).
    Fleet {
        #[command(subcommand)]
        cmd: fleet::Cmd,
    },
    /// Run a sweep on this machine: a private Postgres, a coordinator and N workers,
    /// live progress, then the leaderboard. Everything stops at the end or on Ctrl-C.
    Local(local::Args),
}

pub async fn run(cmd: Cmd, conn: &Conn, fmt: Format) -> anyhow::Result<()> {
    match cmd {
        Cmd::Submit(a) => submit::run(a, conn, fmt).await,
        Cmd::Validate(a) => validate::run(a, fmt),
        Cmd::Status(a) => status::run(a, conn, fmt).await,
        Cmd::Trials(a) => trials::run(a, conn, fmt).await,
        Cmd::Best(a) => best::run(a, conn, fmt).await,
        Cmd::Watch(a) => watch::run(a, conn).await,
        Cmd::Cancel(a) => cancel::run(a, conn, fmt).await,
        Cmd::Retry(a) => retry::run(a, conn, fmt).await,
        Cmd::Budget(a) => budget::run(a, conn, fmt).await,
        Cmd::Workers => workers::run(conn, fmt).await,
        Cmd::Report(a) => report::run(a, conn).await,
        Cmd::Ui(a) => ui::run(a, conn, fmt).await,
        Cmd::Local(a) => local::run(a).await,
        Cmd::Fleet { cmd } => fleet::run(cmd, conn, fmt).await,
        Cmd::Model { cmd } => model::run(cmd, conn, fmt).await,
        Cmd::Confirm(a) => confirm::run(a, conn, fmt).await,
    }
}

/// Reads a sweep file and checks it the way the coordinator will (parse, then expand),
/// so a bad file never reaches the coordinator.
pub fn read_sweep_file(
    file: &std::path::Path,
    limits: sweep_file::Limits,
) -> anyhow::Result<(String, sweep_file::SweepSpec, Vec<sweep_file::Trial>)> {
    use anyhow::Context;
    let yaml = std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?;
    let (spec, trials) = sweep_file::parse_and_expand(&yaml, &file.display().to_string(), limits)?;
    Ok((yaml, spec, trials))
}
