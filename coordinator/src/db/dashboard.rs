//! What the dashboard reads beyond the client service: a trial by id with its attempts
//! and checkpoint, and the validation curves of a sweep's trials in one query.

use sqlx::PgExecutor;
use uuid::Uuid;

use super::trials::{TrialRow, TRIAL_COLUMNS, TRIAL_FROM};
use crate::error::Result;

/// One trial, with the sweep it belongs to.
pub async fn trial(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<TrialRow>> {
    Ok(sqlx::query_as(&format!("SELECT {TRIAL_COLUMNS} FROM {TRIAL_FROM} WHERE t.id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?)
}

/// An attempt of a trial (recorded by the `trials_record_attempt` trigger).
#[derive(Debug, sqlx::FromRow, serde::Serialize)]
pub struct Attempt {
    pub attempt: i32,
    pub worker_id: Option<Uuid>,
    pub worker: Option<String>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub ended_at: Option<chrono::DateTime<chrono::Utc>>,
    pub outcome: Option<String>,
    pub error: Option<String>,
}

pub async fn attempts(db: impl PgExecutor<'_>, trial: Uuid) -> Result<Vec<Attempt>> {
    Ok(sqlx::query_as(
        "SELECT a.attempt, a.worker_id, w.name AS worker, a.started_at, a.ended_at, a.outcome, a.error
         FROM trial_attempts a LEFT JOIN workers w ON w.id = a.worker_id
         WHERE a.trial_id = $1 ORDER BY a.attempt",
    )
    .bind(trial)
    .fetch_all(db)
    .await?)
}

/// The trial's checkpoint: the epochs it holds and whether its blob is still kept.
pub async fn checkpoint(db: impl PgExecutor<'_>, trial: Uuid) -> Result<(Option<i32>, Option<String>)> {
    Ok(sqlx::query_as("SELECT checkpoint_epoch, checkpoint_blob FROM trials WHERE id = $1")
        .bind(trial)
        .fetch_optional(db)
        .await?
        .unwrap_or((None, None)))
}

/// Per-epoch values of `metric` for the sweep's trials (all, or those in `only`), from
/// each trial's latest attempt: (trial, epoch, value), by trial then epoch.
pub async fn curves(
    db: impl PgExecutor<'_>,
    sweep: Uuid,
    metric: &str,
    only: Option<&[Uuid]>,
) -> Result<Vec<(Uuid, i32, Option<f64>)>> {
    Ok(sqlx::query_as(
        "SELECT e.trial_id, e.epoch, (e.metrics ->> $2)::float8
         FROM trial_epochs e JOIN trials t ON t.id = e.trial_id AND e.attempt = t.attempt
         WHERE t.sweep_id = $1 AND ($3::uuid[] IS NULL OR t.id = ANY($3))
         ORDER BY e.trial_id, e.epoch",
    )
    .bind(sweep)
    .bind(metric)
    .bind(only)
    .fetch_all(db)
    .await?)
}

/// Workers holding a lease, by sweep.
pub async fn busy_workers(db: impl PgExecutor<'_>) -> Result<std::collections::HashMap<Uuid, i64>> {
    let rows: Vec<(Uuid, i64)> =
        sqlx::query_as("SELECT sweep_id, count(DISTINCT lease_owner) FROM trials WHERE state = $1 GROUP BY sweep_id")
            .bind(crate::states::TrialState::Leased)
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().collect())
}
