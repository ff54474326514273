//! What trials and sweeps cost. An instance's cost is its fleet's price times its hours
//! (`service::fleet`). A trial's share: each of its attempts on a fleet instance's
//! worker costs the attempt's lease time (claim to end, from `trial_attempts`) times the
//! fleet's price, over the worker's slots (a worker running 4 trials at once charges
//! each a quarter). What no attempt used (boot, idle, the scale-in wait) stays the
//! fleet's. Work on workers outside fleets costs nothing here. A sweep's cost is the
//! sum of its trials'.

use std::collections::HashMap;

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::Result;

/// Per attempt: its trial, its sweep, its cost in USD until `$2` (NULL: now; a moment
/// in the past: attempts then running count up to it, later ones not at all; LEAST
/// ignores a NULL).
const ATTEMPT_COSTS: &str = "
    SELECT a.trial_id, t.sweep_id,
           greatest(extract(epoch FROM least(coalesce(a.ended_at, now()), $2) - a.started_at), 0)
             / 3600.0 * f.price_per_hour / greatest(w.slots, 1) AS usd
    FROM trial_attempts a
    JOIN trials t ON t.id = a.trial_id
    JOIN workers w ON w.id = a.worker_id
    JOIN instances i ON i.worker_id = a.worker_id
    JOIN fleets f ON f.id = i.fleet_id";

/// Each trial of the sweep (all, or those in `only`) that has cost something, in USD so far.
pub async fn trials(db: impl PgExecutor<'_>, sweep: Uuid, only: Option<&[Uuid]>) -> Result<HashMap<Uuid, f64>> {
    let rows: Vec<(Uuid, f64)> = sqlx::query_as(&format!(
        "SELECT trial_id, sum(usd)::float8
         FROM ({ATTEMPT_COSTS} WHERE t.sweep_id = $1 AND ($3::uuid[] IS NULL OR t.id = ANY($3))) c
         GROUP BY trial_id"
    ))
    .bind(sweep)
    .bind(None::<chrono::DateTime<chrono::Utc>>)
    .bind(only)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().collect())
}

/// The sweep's cost in USD up to `until` (None: so far).
pub async fn sweep(db: impl PgExecutor<'_>, sweep: Uuid, until: Option<chrono::DateTime<chrono::Utc>>) -> Result<f64> {
    let usd: Option<f64> =
        sqlx::query_scalar(&format!("SELECT sum(usd)::float8 FROM ({ATTEMPT_COSTS} WHERE t.sweep_id = $1) c"))
            .bind(sweep)
            .bind(until)
            .fetch_one(db)
            .await?;
    Ok(usd.unwrap_or(0.0))
}

/// When a trial finished (None: not yet).
pub async fn finished_at(db: impl PgExecutor<'_>, trial: Uuid) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    Ok(sqlx::query_scalar("SELECT finished_at FROM trials WHERE id = $1")
        .bind(trial)
        .fetch_optional(db)
        .await?
        .flatten())
}
