//! Budgets in dollars: the rule that says one has run out, and setting one.
//!
//! A sweep's budget (`budget: {max_cost_usd}`) caps what its trials cost (`db::costs`);
//! a fleet's (`fleet up --max-cost`) what its instances cost. Every reconcile pass
//! checks them: a budget runs out when what is spent plus what the running work costs
//! until it can be wound down would pass it. A sweep's trials are wound down within one
//! lease of the pass that decides (a worker hands a trial back, checkpointed, at its
//! next heartbeat; one that does not has lost the lease by then), plus one pass; a
//! fleet's instances are terminated at the first pass after that lease and recorded
//! terminated at the pass after it: two passes and a lease. That is the lookahead, so
//! what is spent past the budget is at most one pass of the rate (a pass that runs late).
//!
//! When a sweep's runs out, nothing more of it is leased, heartbeats tell the workers
//! running its trials to hand them back (they checkpoint first), its queued trials stay
//! queued, and fleets serving only it scale to zero. When a fleet's runs out, its
//! workers lease nothing more and hand their trials back, and it scales to zero (busy
//! instances get one lease to hand back). Raising the budget (`sweep budget`, `fleet
//! budget`, or the sweep file submitted again) clears the mark; work resumes.

use sweep_proto as pb;
use uuid::Uuid;

use crate::db::budgets::{self, Budgeted};
use crate::db::{costs, leases};
use crate::error::{CoordinatorError, Result};
use crate::state::AppState;

/// What is spent and at what rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spend {
    pub cost_usd: f64,
    pub usd_per_hour: f64,
}

impl Spend {
    /// Whether this spend, going on for `lookahead_hours`, would pass `max_cost_usd`.
    pub fn runs_out(&self, max_cost_usd: f64, lookahead_hours: f64) -> bool {
        self.cost_usd + self.usd_per_hour * lookahead_hours >= max_cost_usd
    }
}

/// How long running work may go on after a pass decides to stop it (see the module's
/// comment): one lease and one pass for a sweep, two passes for a fleet.
pub fn lookahead_hours(state: &AppState, what: Budgeted) -> f64 {
    let passes = match what {
        Budgeted::Sweep => 1.0,
        Budgeted::Fleet => 2.0,
    };
    (passes * f64::from(state.settings.fleet_reconcile_ms) + f64::from(state.settings.lease_ms)) / 3.6e6
}

/// How long the busy instances of a fleet whose budget ran out are kept for their
/// workers to hand their trials back: one lease.
pub fn hand_back_grace(state: &AppState) -> chrono::Duration {
    chrono::Duration::milliseconds(i64::from(state.settings.lease_ms))
}

/// Marks the running sweeps whose budgets run out; returns them. A sweep whose check
/// fails is logged and the others are still checked (one bad row must not stop them).
pub async fn check_sweeps(state: &AppState) -> Result<Vec<Uuid>> {
    let mut out = Vec::new();
    for (sweep, max) in budgets::sweeps_to_check(&state.db).await? {
        match check_sweep(state, sweep, max).await {
            Ok(true) => out.push(sweep),
            Ok(false) => {}
            Err(e @ CoordinatorError::Unavailable(_)) => return Err(e),
            Err(e) => tracing::error!(%sweep, error = %e, "the sweep's budget could not be checked"),
        }
    }
    Ok(out)
}

/// Checks one sweep's budget; true when it ran out now.
async fn check_sweep(state: &AppState, sweep: Uuid, max: f64) -> Result<bool> {
    let spend = Spend {
        cost_usd: costs::sweep(&state.db, sweep).await?,
        usd_per_hour: budgets::sweep_rate(&state.db, sweep).await?,
    };
    if !spend.runs_out(max, lookahead_hours(state, Budgeted::Sweep)) {
        return Ok(false);
    }
    budgets::exhaust(&state.db, Budgeted::Sweep, sweep).await?;
    tracing::warn!(%sweep, cost_usd = spend.cost_usd, usd_per_hour = spend.usd_per_hour, max_cost_usd = max,
        "the sweep's budget is spent: its running trials are handed back, nothing more is leased");
    state.changed(sweep);
    Ok(true)
}

/// Asks back every lease a spent budget covers (extended no more: it ends within one
/// lease whatever its worker does), and wakes the watchers of their sweeps. Called at
/// the end of every reconcile pass and when a budget is set.
pub async fn enforce(state: &AppState) -> Result<()> {
    for sweep in leases::ask_back(&state.db).await? {
        tracing::warn!(%sweep, "hand-back asked: these leases are extended no more");
        state.changed(sweep);
    }
    Ok(())
}

/// Checks a fleet's budget (in its reconcile pass); true when it ran out now.
pub async fn check_fleet(state: &AppState, fleet: Uuid, max: f64) -> Result<bool> {
    let (cost_usd, usd_per_hour) = budgets::fleet_spend(&state.db, fleet).await?;
    let spend = Spend { cost_usd, usd_per_hour };
    if !spend.runs_out(max, lookahead_hours(state, Budgeted::Fleet)) {
        return Ok(false);
    }
    budgets::exhaust(&state.db, Budgeted::Fleet, fleet).await?;
    tracing::warn!(%fleet, cost_usd, usd_per_hour, max_cost_usd = max,
        "the fleet's budget is spent: its workers hand their trials back and it scales to zero");
    Ok(true)
}

/// A budget given on the command line or in a request: dollars above 0.
/// The rule is the sweep file's (`sweep_file::Budget`).
pub fn check_amount(field: &str, usd: f64) -> Result<f64> {
    match (sweep_file::Budget { max_cost_usd: usd }).problem() {
        None => Ok(usd),
        Some(problem) => Err(CoordinatorError::InvalidArgument(format!("{field}: {problem}"))),
    }
}

/// `SetBudget`: a sweep's (client token) or a fleet's (admin token, checked by the
/// caller) budget, set and checked at once. Returns what is spent and whether the new
/// budget is already spent.
pub async fn set(state: &AppState, what: Budgeted, id: Uuid, max: f64) -> Result<pb::SetBudgetResponse> {
    let max = check_amount("max_cost_usd", max)?;
    budgets::set(&state.db, what, id, max).await?;
    leases::withdraw_ask(&state.db).await?;
    let exhausted = match what {
        Budgeted::Sweep => {
            let now_out = check_sweeps(state).await?.contains(&id);
            if !now_out {
                state.changed(id);
                state.work.notify_waiters();
            }
            now_out
        }
        Budgeted::Fleet => check_fleet(state, id, max).await?,
    };
    enforce(state).await?;
    let cost_usd = match what {
        Budgeted::Sweep => costs::sweep(&state.db, id).await?,
        Budgeted::Fleet => budgets::fleet_spend(&state.db, id).await?.0,
    };
    tracing::info!(kind = what.name(), %id, max_cost_usd = max, cost_usd, exhausted, "budget set");
    Ok(pb::SetBudgetResponse { cost_usd, budget_exhausted: exhausted })
}

#[cfg(test)]
mod tests {
    use super::Spend;

    #[test]
    fn a_budget_runs_out_when_the_spend_and_its_lookahead_reach_it() {
        let s = Spend { cost_usd: 9.0, usd_per_hour: 3600.0 };
        // 9 USD spent, 1 USD a second: with 0.5 s of lookahead 9.5 < 10; with 1 s, 10.
        assert!(!s.runs_out(10.0, 0.5 / 3600.0));
        assert!(s.runs_out(10.0, 1.0 / 3600.0));
        assert!(Spend { cost_usd: 10.0, usd_per_hour: 0.0 }.runs_out(10.0, 0.0));
        assert!(!Spend { cost_usd: 0.0, usd_per_hour: 0.0 }.runs_out(0.01, 1.0));
    }
}
