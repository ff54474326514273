//! Budgets in dollars, of sweeps and of fleets: what is spent, at what rate, and the
//! mark that says a budget ran out (`budget_exhausted_at`). The rule that sets the mark
//! is [`crate::budget`]'s; leasing, heartbeats and the reconciler read it.

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::{CoordinatorError, Result};
use crate::states::{InstanceState, SweepState, TrialState};

/// Running sweeps with a budget that has not run out: (sweep, budget in USD).
pub async fn sweeps_to_check(db: impl PgExecutor<'_>) -> Result<Vec<(Uuid, f64)>> {
    Ok(sqlx::query_as(
        "SELECT id, max_cost_usd FROM sweeps
         WHERE state = $1 AND max_cost_usd IS NOT NULL AND budget_exhausted_at IS NULL",
    )
    .bind(SweepState::Running)
    .fetch_all(db)
    .await?)
}

/// What the sweep's running trials cost per hour now: each leased trial on a fleet
/// instance's worker, the fleet's price over the worker's slots (as `costs` charges it).
pub async fn sweep_rate(db: impl PgExecutor<'_>, sweep: Uuid) -> Result<f64> {
    Ok(sqlx::query_scalar(
        "SELECT coalesce(sum(f.price_per_hour / greatest(w.slots, 1)), 0)::float8
         FROM trials t
         JOIN workers w ON w.id = t.lease_owner
         JOIN instances i ON i.worker_id = t.lease_owner
         JOIN fleets f ON f.id = i.fleet_id
         WHERE t.sweep_id = $1 AND t.state = $2",
    )
    .bind(sweep)
    .bind(TrialState::Leased)
    .fetch_one(db)
    .await?)
}

/// A fleet's accrued cost (its price over its instances' hours, launch to termination or
/// now) and what it costs per hour now (its instances not yet terminated).
pub async fn fleet_spend(db: impl PgExecutor<'_>, fleet: Uuid) -> Result<(f64, f64)> {
    sqlx::query_as(
        "SELECT coalesce(sum(fleet_usd(f.id, i.launched_at, coalesce(i.terminated_at, now()))), 0)::float8,
                (count(i.id) FILTER (WHERE i.state <> $2) * f.price_per_hour)::float8
         FROM fleets f LEFT JOIN instances i ON i.fleet_id = f.id
         WHERE f.id = $1 GROUP BY f.id",
    )
    .bind(fleet)
    .bind(InstanceState::Terminated)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| CoordinatorError::NotFound(format!("fleet {fleet}")))
}

/// Marks a sweep's or fleet's budget as run out (the first time counts).
pub async fn exhaust(db: impl PgExecutor<'_>, table: Budgeted, id: Uuid) -> Result<()> {
    sqlx::query(&format!(
        "UPDATE {} SET budget_exhausted_at = coalesce(budget_exhausted_at, now()) WHERE id = $1",
        table.table()
    ))
    .bind(id)
    .execute(db)
    .await?;
    Ok(())
}

/// Sets a budget and clears its mark (the next pass checks it afresh). NotFound when
/// there is no such sweep or fleet.
pub async fn set(db: impl PgExecutor<'_>, table: Budgeted, id: Uuid, max_cost_usd: f64) -> Result<()> {
    let r = sqlx::query(&format!(
        "UPDATE {} SET max_cost_usd = $2, budget_exhausted_at = NULL WHERE id = $1",
        table.table()
    ))
    .bind(id)
    .bind(max_cost_usd)
    .execute(db)
    .await?;
    if r.rows_affected() == 0 {
        return Err(CoordinatorError::NotFound(format!("{} {id}", table.name())));
    }
    Ok(())
}

/// What has a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budgeted {
    Sweep,
    Fleet,
}

impl Budgeted {
    fn table(self) -> &'static str {
        match self {
            Budgeted::Sweep => "sweeps",
            Budgeted::Fleet => "fleets",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Budgeted::Sweep => "sweep",
            Budgeted::Fleet => "fleet",
        }
    }
}

/// Whether the sweeps a fleet serves (every sweep, when it names none) have queued
/// trials that only a spent budget holds back.
pub async fn work_held(db: impl PgExecutor<'_>, sweeps: &[Uuid]) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM trials t JOIN sweeps s ON s.id = t.sweep_id
                        WHERE t.state = $2 AND s.budget_exhausted_at IS NOT NULL
                          AND (cardinality($1::uuid[]) = 0 OR t.sweep_id = ANY($1)))",
    )
    .bind(sweeps)
    .bind(TrialState::Queued)
    .fetch_one(db)
    .await?)
}
