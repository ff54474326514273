//! Registered workers. A worker's credential is stored hashed, like API tokens.

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::Result;
use crate::states::{TrialState, WorkerState};

#[derive(Debug, Clone)]
pub struct NewWorker {
    pub name: String,
    pub host: String,
    pub gpus: Vec<String>,
    pub slots: u32,
    pub version: String,
}

/// Registers a worker and returns (id, its credential in clear: shown once).
pub async fn register(db: impl PgExecutor<'_>, w: &NewWorker) -> Result<(Uuid, String)> {
    let id = Uuid::new_v4();
    let token = super::tokens::generate("swp_worker");
    sqlx::query(
        "INSERT INTO workers (id, name, host, gpus, slots, version, token_hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(&w.name)
    .bind(&w.host)
    .bind(serde_json::json!(w.gpus))
    .bind(w.slots as i32)
    .bind(&w.version)
    .bind(super::tokens::hash(&token))
    .execute(db)
    .await?;
    Ok((id, token))
}

/// The worker a credential belongs to, if it is not revoked, recorded as seen now in
/// the same statement (a worker marked gone that calls again is alive again). The
/// coordinator asks this at most once per credential-cache period, so `last_seen_at`
/// advances while a worker calls in, at no cost per call.
pub async fn authenticate(db: impl PgExecutor<'_>, token: &str) -> Result<Option<Uuid>> {
    let row: Option<(Uuid,)> = sqlx::query_as(
        "UPDATE workers SET last_seen_at = now(), state = CASE WHEN state = $2 THEN $3 ELSE state END
         WHERE token_hash = $1 AND state <> $4 RETURNING id",
    )
    .bind(super::tokens::hash(token))
    .bind(WorkerState::Gone)
    .bind(WorkerState::Alive)
    .bind(WorkerState::Revoked)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| r.0))
}

/// Whether a worker has been revoked (the slow path behind the credential cache).
pub async fn is_revoked(db: impl PgExecutor<'_>, id: Uuid) -> Result<bool> {
    let row: Option<(WorkerState,)> =
        sqlx::query_as("SELECT state FROM workers WHERE id = $1").bind(id).fetch_optional(db).await?;
    Ok(row.is_none_or(|(s,)| s == WorkerState::Revoked))
}

/// Revokes a worker and ends its leases (requeued without using up an attempt's
/// error budget: the trial did nothing wrong). Returns how many leases it held.
pub async fn revoke(conn: &mut sqlx::PgConnection, id: Uuid) -> Result<Option<u64>> {
    let r = sqlx::query("UPDATE workers SET state = $2 WHERE id = $1")
        .bind(id)
        .bind(WorkerState::Revoked)
        .execute(&mut *conn)
        .await?;
    if r.rows_affected() == 0 {
        return Ok(None);
    }
    let released = sqlx::query(
        "UPDATE trials SET state = $2, lease_owner = NULL, lease_expires_at = NULL, updated_at = now(),
                error = 'worker revoked'
         WHERE lease_owner = $1 AND state = $3",
    )
    .bind(id)
    .bind(TrialState::Queued)
    .bind(TrialState::Leased)
    .execute(&mut *conn)
    .await?;
    Ok(Some(released.rows_affected()))
}

/// Counts an infrastructure failure (a transient trial error) against the worker, and
/// quarantines it at `limit` in a row (0: never). Returns whether it is quarantined now.
pub async fn infra_failure(db: impl PgExecutor<'_>, id: Uuid, limit: u32) -> Result<bool> {
    let row: Option<(WorkerState,)> = sqlx::query_as(
        "UPDATE workers SET infra_failures_in_a_row = infra_failures_in_a_row + 1,
                state = CASE WHEN $2 > 0 AND infra_failures_in_a_row + 1 >= $2 AND state = $3
                             THEN $4 ELSE state END
         WHERE id = $1 RETURNING state",
    )
    .bind(id)
    .bind(limit as i32)
    .bind(WorkerState::Alive)
    .bind(WorkerState::Quarantined)
    .fetch_optional(db)
    .await?;
    Ok(row.is_some_and(|(s,)| s == WorkerState::Quarantined))
}

/// Lets a quarantined worker lease again (an admin's call). Returns false when the
/// worker is not quarantined.
pub async fn clear_quarantine(db: impl PgExecutor<'_>, id: Uuid) -> Result<bool> {
    let r = sqlx::query("UPDATE workers SET state = $2, infra_failures_in_a_row = 0 WHERE id = $1 AND state = $3")
        .bind(id)
        .bind(WorkerState::Alive)
        .bind(WorkerState::Quarantined)
        .execute(db)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Marks alive workers unseen for `gone_after_ms` as gone; returns how many.
pub async fn mark_gone(db: impl PgExecutor<'_>, gone_after_ms: i64) -> Result<u64> {
    let r = sqlx::query(
        "UPDATE workers SET state = $2
         WHERE state = $3 AND last_seen_at < now() - make_interval(secs => $1::double precision / 1000)",
    )
    .bind(gone_after_ms as f64)
    .bind(WorkerState::Gone)
    .bind(WorkerState::Alive)
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

#[derive(Debug, sqlx::FromRow)]
pub struct WorkerRow {
    pub id: Uuid,
    pub name: String,
    pub host: String,
    pub gpus: serde_json::Value,
    pub slots: i32,
    pub version: String,
    pub state: WorkerState,
    pub last_seen_at: chrono::DateTime<chrono::Utc>,
    pub running: i64,
}

pub async fn list(db: impl PgExecutor<'_>) -> Result<Vec<WorkerRow>> {
    Ok(sqlx::query_as(
        "SELECT w.id, w.name, w.host, w.gpus, w.slots, w.version, w.state, w.last_seen_at,
                (SELECT count(*) FROM trials t WHERE t.lease_owner = w.id AND t.state = $1) AS running
         FROM workers w ORDER BY w.registered_at",
    )
    .bind(TrialState::Leased)
    .fetch_all(db)
    .await?)
}
