//! `sweep budget SWEEP_ID USD` and `sweep fleet budget FLEET_ID USD`: set (raise, lower) a
//! budget. A raise above what is spent resumes the work the spent budget held back.

use serde_json::json;
use sweep_proto as pb;

use crate::client::{status_error, Conn};
use crate::output::{self, Format};

#[derive(clap::Args)]
pub struct Args {
    sweep_id: String,
    /// What the sweep's trials may cost in all, in USD (above 0).
    #[arg(value_parser = usd, allow_negative_numbers = true)]
    max_cost_usd: f64,
}

/// A budget argument: dollars above 0.
pub fn usd(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim_start_matches('$').parse().map_err(|_| format!("`{s}` is not a number of dollars"))?;
    // The sweep file's rule, so the three ways to give a budget refuse the same values.
    match (sweep_file::Budget { max_cost_usd: v }).problem() {
        None => Ok(v),
        Some(problem) => Err(problem),
    }
}

pub async fn run(a: Args, conn: &Conn, fmt: Format) -> anyhow::Result<()> {
    let req = pb::SetBudgetRequest { sweep_id: a.sweep_id, fleet_id: String::new(), max_cost_usd: a.max_cost_usd };
    set(req, conn, fmt).await
}

/// Sends the new budget; says what is spent and whether work goes on.
pub async fn set(req: pb::SetBudgetRequest, conn: &Conn, fmt: Format) -> anyhow::Result<()> {
    let (what, id) =
        if req.fleet_id.is_empty() { ("sweep", req.sweep_id.clone()) } else { ("fleet", req.fleet_id.clone()) };
    let max = req.max_cost_usd;
    let mut c = conn.connect().await?;
    let r = c.set_budget(req).await.map_err(|s| status_error("budget", s))?.into_inner();
    match fmt {
        Format::Json => output::print_json(&json!({
            what: id, "max_cost_usd": max, "cost_usd": r.cost_usd, "budget_exhausted": r.budget_exhausted,
        })),
        Format::Table if r.budget_exhausted => println!(
            "{what} {id}: budget {max:.2} USD, {:.2} USD spent: still exhausted (the running work would pass it)",
            r.cost_usd
        ),
        Format::Table => println!("{what} {id}: budget {max:.2} USD, {:.2} USD spent: work goes on", r.cost_usd),
    }
    Ok(())
}
