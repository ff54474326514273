//! Trials: reads (lists, the best, histories, rung values), what TPE and ASHA read, and
//! the keeping of models and checkpoints. Writes under a lease are in `leases.rs`.

use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::Result;
use crate::states::TrialState;
use sweep_file::Goal;

/// What TPE learns from a trial: its swept values, where it is, its objective (and its
/// final metrics, for the sweep's constraints).
#[derive(Debug, sqlx::FromRow)]
pub struct ProposalInput {
    pub params: serde_json::Value,
    pub state: TrialState,
    pub objective: Option<f64>,
    pub metrics: Option<serde_json::Value>,
    pub params_hash: String,
    pub seq: i32,
}

/// Every trial of a sweep, as TPE reads them.
pub async fn proposal_inputs(conn: &mut PgConnection, sweep: Uuid) -> Result<Vec<ProposalInput>> {
    Ok(sqlx::query_as("SELECT params, state, objective, metrics, params_hash, seq FROM trials WHERE sweep_id = $1")
        .bind(sweep)
        .fetch_all(&mut *conn)
        .await?)
}

/// Keeps the models of the `keep` best succeeded trials of `trial`'s sweep and unlinks
/// the rest; returns the unlinked blobs no trial refers to any more (to delete).
pub async fn keep_top_models(conn: &mut PgConnection, trial: Uuid, keep: u32) -> Result<Vec<String>> {
    let dropped: Vec<String> = sqlx::query_scalar(
        "WITH ranked AS (
             SELECT t.id, t.model_blob,
                    row_number() OVER (ORDER BY
                        CASE WHEN s.metric_goal = 'minimize' THEN t.objective END ASC NULLS LAST,
                        CASE WHEN s.metric_goal = 'maximize' THEN t.objective END DESC NULLS LAST,
                        t.seq) AS r
             FROM trials t JOIN sweeps s ON s.id = t.sweep_id
             WHERE t.sweep_id = (SELECT sweep_id FROM trials WHERE id = $1) AND t.model_blob IS NOT NULL),
         dropped AS (UPDATE trials t SET model_blob = NULL FROM ranked
                     WHERE ranked.id = t.id AND ranked.r > $2 RETURNING ranked.model_blob)
         SELECT DISTINCT model_blob FROM dropped",
    )
    .bind(trial)
    .bind(keep as i64)
    .fetch_all(&mut *conn)
    .await?;
    let mut orphans = Vec::new();
    for blob in dropped {
        let used: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM trials WHERE model_blob = $1)")
            .bind(&blob)
            .fetch_one(&mut *conn)
            .await?;
        if !used {
            orphans.push(blob);
        }
    }
    Ok(orphans)
}

/// Drops the checkpoints of trials that ended without succeeding (failed, dead,
/// cancelled; a completion drops its own); returns their blobs (to delete).
pub async fn drop_ended_checkpoints(db: impl PgExecutor<'_>) -> Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(&format!(
        "WITH ended AS (
             SELECT id, checkpoint_blob FROM trials
             WHERE checkpoint_blob IS NOT NULL AND state IN {}
             LIMIT 100 FOR UPDATE SKIP LOCKED)
         UPDATE trials t SET checkpoint_blob = NULL FROM ended WHERE t.id = ended.id
         RETURNING ended.checkpoint_blob",
        crate::states::terminal_sql()
    ))
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

#[derive(Debug, sqlx::FromRow)]
pub struct TrialRow {
    pub id: Uuid,
    pub sweep_id: Uuid,
    pub seq: i32,
    pub state: TrialState,
    pub attempt: i32,
    /// JSON text.
    pub params: String,
    /// JSON text.
    pub config: String,
    pub metrics: Option<serde_json::Value>,
    pub latest: Option<serde_json::Value>,
    pub objective: Option<f64>,
    pub error: Option<String>,
    pub worker: Option<String>,
    pub epoch: i32,
    pub lost_count: i32,
    pub error_count: i32,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub model_blob: Option<String>,
    pub preempted_count: i32,
}

// params and config as Postgres renders them: the API hands them on as text, and decoding
// 10,000 configs into JSON trees only to print them again cost more than the query.
pub(crate) const TRIAL_COLUMNS: &str = "t.id, t.sweep_id, t.seq, t.state, t.attempt, t.params::text AS params,
    t.config::text AS config, t.metrics, t.latest,
    t.objective, t.error, w.name AS worker, t.epoch, t.lost_count, t.error_count, t.updated_at, t.model_blob,
    t.preempted_count";
pub(crate) const TRIAL_FROM: &str = "trials t LEFT JOIN workers w ON w.id = COALESCE(t.lease_owner, t.finished_by)";

pub async fn list(db: impl PgExecutor<'_>, sweep: Uuid) -> Result<Vec<TrialRow>> {
    Ok(sqlx::query_as(&format!("SELECT {TRIAL_COLUMNS} FROM {TRIAL_FROM} WHERE t.sweep_id = $1 ORDER BY t.seq"))
        .bind(sweep)
        .fetch_all(db)
        .await?)
}

/// Trials of a sweep changed at or after `since` (for the watch stream); with
/// `config: false`, each with an empty config (its text is never read).
pub async fn changed_since(
    db: impl PgExecutor<'_>,
    sweep: Uuid,
    since: chrono::DateTime<chrono::Utc>,
    config: bool,
) -> Result<Vec<TrialRow>> {
    let columns = if config { TRIAL_COLUMNS.to_string() } else { TRIAL_COLUMNS.replace("t.config::text", "''::text") };
    Ok(sqlx::query_as(&format!(
        "SELECT {columns} FROM {TRIAL_FROM} WHERE t.sweep_id = $1 AND t.updated_at >= $2 ORDER BY t.seq"
    ))
    .bind(sweep)
    .bind(since)
    .fetch_all(db)
    .await?)
}

/// The succeeded trial with the best objective for the sweep's goal, among those that
/// meet `constraints` (every succeeded trial when there are none).
pub async fn best(
    db: impl PgExecutor<'_>,
    sweep: Uuid,
    goal: Goal,
    constraints: &[sweep_file::Constraint],
) -> Result<Option<TrialRow>> {
    let order = match goal {
        Goal::Minimize => "ASC",
        Goal::Maximize => "DESC",
    };
    let limit = if constraints.is_empty() { "LIMIT 1" } else { "" };
    let rows: Vec<TrialRow> = sqlx::query_as(&format!(
        "SELECT {TRIAL_COLUMNS} FROM {TRIAL_FROM}
         WHERE t.sweep_id = $1 AND t.state = $2 AND t.objective IS NOT NULL
         ORDER BY t.objective {order}, t.seq {limit}"
    ))
    .bind(sweep)
    .bind(TrialState::Succeeded)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().find(|r| sweep_file::feasible(constraints, |k| metric_of(&r.metrics, k))))
}

/// One of a trial's final metrics from its `metrics` column (none before it succeeds).
pub fn metric_of(metrics: &Option<serde_json::Value>, name: &str) -> Option<f64> {
    metrics.as_ref()?.get(name)?.as_f64()
}

/// Per-epoch metrics of a trial, every attempt.
pub async fn history(db: impl PgExecutor<'_>, trial: Uuid) -> Result<Vec<(i32, i32, serde_json::Value)>> {
    Ok(sqlx::query_as("SELECT attempt, epoch, metrics FROM trial_epochs WHERE trial_id = $1 ORDER BY attempt, epoch")
        .bind(trial)
        .fetch_all(db)
        .await?)
}

/// Database time, for tests and for the watch stream's cursor.
pub async fn db_now(db: impl PgExecutor<'_>) -> Result<chrono::DateTime<chrono::Utc>> {
    let (t,): (chrono::DateTime<chrono::Utc>,) = sqlx::query_as("SELECT now()").fetch_one(db).await?;
    Ok(t)
}

/// The sweep a trial belongs to.
pub async fn sweep_of(db: impl PgExecutor<'_>, trial: Uuid) -> Result<Option<Uuid>> {
    let row: Option<(Uuid,)> =
        sqlx::query_as("SELECT sweep_id FROM trials WHERE id = $1").bind(trial).fetch_optional(db).await?;
    Ok(row.map(|r| r.0))
}

/// A sweep's early-stopping rule and what it decides on.
pub struct Rule {
    pub rule: sweep_file::EarlyStop,
    pub sweep: Uuid,
    pub metric: String,
    pub goal: Goal,
}

/// The early-stopping rule of a trial's sweep; None when the sweep has none.
pub async fn early_stop(db: impl PgExecutor<'_>, trial: Uuid) -> Result<Option<Rule>> {
    let row: Option<(Option<serde_json::Value>, Uuid, String, String)> = sqlx::query_as(
        "SELECT s.early_stop, s.id, s.metric_name, s.metric_goal FROM trials t JOIN sweeps s ON s.id = t.sweep_id
         WHERE t.id = $1",
    )
    .bind(trial)
    .fetch_optional(db)
    .await?;
    let Some((Some(rule), sweep, metric, goal)) = row else { return Ok(None) };
    let rule: sweep_file::EarlyStop = serde_json::from_value(rule).map_err(anyhow::Error::from)?;
    let goal: Goal = goal.parse().map_err(anyhow::Error::msg)?;
    Ok(Some(Rule { rule, sweep, metric, goal }))
}

/// The objective `metric` at `epoch` of every trial of `sweep` that reached it (current
/// attempts).
pub async fn rung_values(db: impl PgExecutor<'_>, sweep: Uuid, epoch: i32, metric: &str) -> Result<Vec<f64>> {
    let values: Vec<(Option<f64>,)> = sqlx::query_as(
        "SELECT (e.metrics ->> $3)::double precision FROM trial_epochs e
         JOIN trials t ON t.id = e.trial_id AND e.attempt = t.attempt
         WHERE t.sweep_id = $1 AND e.epoch = $2",
    )
    .bind(sweep)
    .bind(epoch)
    .bind(metric)
    .fetch_all(db)
    .await?;
    Ok(values.into_iter().filter_map(|(v,)| v).collect())
}
