//! Counts for the metrics sampler.

use sqlx::PgExecutor;

use crate::error::Result;
use crate::states::{TrialState, WorkerState};

/// (sweep name, trial state, trials).
pub async fn trials_by_sweep(db: impl PgExecutor<'_>) -> Result<Vec<(String, TrialState, i64)>> {
    Ok(sqlx::query_as(
        "SELECT s.name, t.state, count(*) FROM trials t JOIN sweeps s ON s.id = t.sweep_id GROUP BY s.name, t.state",
    )
    .fetch_all(db)
    .await?)
}

/// (worker state, workers).
pub async fn workers(db: impl PgExecutor<'_>) -> Result<Vec<(WorkerState, i64)>> {
    Ok(sqlx::query_as("SELECT state, count(*) FROM workers GROUP BY state").fetch_all(db).await?)
}
