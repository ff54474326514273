//! Sweeps and their expansion into trials.

use std::collections::BTreeMap;

use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::{CoordinatorError, Result};
use crate::states::{SweepState, TrialState};

/// Rows per INSERT round trip when storing a grid.
pub const INSERT_CHUNK: usize = 5_000;

#[derive(Debug, sqlx::FromRow)]
pub struct SweepRow {
    pub id: Uuid,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub method: sweep_file::Method,
    pub metric_name: String,
    #[sqlx(try_from = "String")]
    pub metric_goal: sweep_file::Goal,
    pub spec_yaml: String,
    pub state: SweepState,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Path as written -> SHA-256 of the data files uploaded with it.
    pub data_blobs: sqlx::types::Json<BTreeMap<String, String>>,
    /// What its trials may cost (`budget:`), and when that ran out.
    pub max_cost_usd: Option<f64>,
    pub budget_exhausted_at: Option<chrono::DateTime<chrono::Utc>>,
}

pub struct Submitted {
    pub sweep_id: Uuid,
    pub created: bool,
    pub total: u64,
    pub added: u64,
}

/// Stores a sweep and its trials in the caller's transaction. A sweep is identified by
/// its name and a trial by (sweep, config hash): submitting the same file again, or an
/// extended grid, adds only the cells that are new. A new sweep is owned by `owner` (the
/// submitting token); an existing one changes only if `may_change` allows its owner.
pub async fn submit(
    conn: &mut PgConnection,
    spec: &sweep_file::SweepSpec,
    spec_yaml: &str,
    data_blobs: &BTreeMap<String, String>,
    trials: &[sweep_file::Trial],
    owner: Uuid,
    may_change: impl Fn(&str, Option<Uuid>) -> Result<()>,
) -> Result<Submitted> {
    let data_blobs = serde_json::to_value(data_blobs).expect("json");
    let inserted: Option<(Uuid,)> = sqlx::query_as(
        "INSERT INTO sweeps (id, name, method, metric_name, metric_goal, spec_yaml, max_attempts, early_stop, data_blobs,
                             max_cost_usd, owner_token)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (name) DO NOTHING RETURNING id",
    )
    .bind(Uuid::new_v4())
    .bind(spec.name())
    .bind(spec.method().as_str())
    .bind(&spec.metric().name)
    .bind(spec.metric().goal.as_str())
    .bind(spec_yaml)
    .bind(spec.max_attempts() as i32)
    .bind(spec.early_stop().map(|r| serde_json::to_value(r).expect("json")))
    .bind(&data_blobs)
    .bind(spec.budget().map(|b| b.max_cost_usd))
    .bind(owner)
    .fetch_optional(&mut *conn)
    .await?;
    let (sweep_id, created) = match inserted {
        Some((id,)) => (id, true),
        None => {
            let (id, metric_name, goal, owner): (Uuid, String, String, Option<Uuid>) = sqlx::query_as(
                "SELECT id, metric_name, metric_goal, owner_token FROM sweeps WHERE name = $1 FOR UPDATE",
            )
            .bind(spec.name())
            .fetch_one(&mut *conn)
            .await?;
            may_change(&format!("`{}`", spec.name()), owner)?;
            if metric_name != spec.metric().name || goal != spec.metric().goal.as_str() {
                return Err(CoordinatorError::AlreadyExists(format!(
                    "sweep `{}` exists with objective {goal} {metric_name}; give the new objective a new sweep name",
                    spec.name()
                )));
            }
            // A changed budget (raised, lowered, removed) is checked afresh by the next pass.
            sqlx::query(
                "UPDATE sweeps SET spec_yaml = $2, max_attempts = $3, early_stop = $4, data_blobs = $5,
                        budget_exhausted_at = CASE WHEN max_cost_usd IS DISTINCT FROM $6 THEN NULL
                                                   ELSE budget_exhausted_at END,
                        max_cost_usd = $6
                 WHERE id = $1",
            )
            .bind(id)
            .bind(spec_yaml)
            .bind(spec.max_attempts() as i32)
            .bind(spec.early_stop().map(|r| serde_json::to_value(r).expect("json")))
            .bind(&data_blobs)
            .bind(spec.budget().map(|b| b.max_cost_usd))
            .execute(&mut *conn)
            .await?;
            (id, false)
        }
    };
    let added = add_trials(&mut *conn, sweep_id, spec.max_attempts() as i32, 0, trials).await?;
    let (total,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM trials WHERE sweep_id = $1").bind(sweep_id).fetch_one(&mut *conn).await?;
    Ok(Submitted { sweep_id, created, total: total as u64, added })
}

/// Inserts trials numbered from `first_seq`; a trial whose config the sweep already has
/// is skipped. Returns how many were added.
pub async fn add_trials(
    conn: &mut PgConnection,
    sweep_id: Uuid,
    max_attempts: i32,
    first_seq: i32,
    trials: &[sweep_file::Trial],
) -> Result<u64> {
    let mut added = 0u64;
    for (chunk_no, chunk) in trials.chunks(INSERT_CHUNK).enumerate() {
        let base = first_seq as usize + chunk_no * INSERT_CHUNK;
        let ids: Vec<Uuid> = chunk.iter().map(|_| Uuid::new_v4()).collect();
        let seqs: Vec<i32> = (0..chunk.len()).map(|i| (base + i) as i32).collect();
        let hashes: Vec<&str> = chunk.iter().map(|t| t.hash.as_str()).collect();
        let params: Vec<String> = chunk.iter().map(|t| serde_json::to_string(&t.params).expect("json")).collect();
        let configs: Vec<String> = chunk.iter().map(|t| serde_json::to_string(&t.config).expect("json")).collect();
        let fuse_keys: Vec<String> =
            chunk.iter().map(|t| sweep_file::FuseKey::of(&t.config).as_str().to_string()).collect();
        let r = sqlx::query(
            "INSERT INTO trials (id, sweep_id, seq, params_hash, params, config, max_attempts, fuse_key)
             SELECT u.id, $1, u.seq, u.hash, u.params::jsonb, u.config::jsonb, $2, u.fuse_key
             FROM UNNEST($3::uuid[], $4::int[], $5::text[], $6::text[], $7::text[], $8::text[])
                  AS u(id, seq, hash, params, config, fuse_key)
             ON CONFLICT (sweep_id, params_hash) DO NOTHING",
        )
        .bind(sweep_id)
        .bind(max_attempts)
        .bind(&ids)
        .bind(&seqs)
        .bind(&hashes)
        .bind(&params)
        .bind(&configs)
        .bind(&fuse_keys)
        .execute(&mut *conn)
        .await?;
        added += r.rows_affected();
    }
    Ok(added)
}

/// What proposing trials for a sweep needs, read with the sweep's row locked.
#[derive(Debug, sqlx::FromRow)]
pub struct ProposeRow {
    #[sqlx(try_from = "String")]
    pub method: sweep_file::Method,
    pub spec_yaml: String,
    #[sqlx(try_from = "String", rename = "metric_goal")]
    pub goal: sweep_file::Goal,
    pub max_attempts: i32,
    pub data_blobs: sqlx::types::Json<BTreeMap<String, String>>,
}

/// Locks a running sweep's row for proposing (one proposer at a time per sweep, across
/// coordinators); None when it is not running.
pub async fn lock_for_proposals(conn: &mut PgConnection, id: Uuid) -> Result<Option<ProposeRow>> {
    Ok(sqlx::query_as(
        "SELECT method, spec_yaml, metric_goal, max_attempts, data_blobs FROM sweeps
         WHERE id = $1 AND state = $2 FOR UPDATE",
    )
    .bind(id)
    .bind(SweepState::Running)
    .fetch_optional(&mut *conn)
    .await?)
}

/// The sweep a trial belongs to and its search method.
pub async fn method_of_trial(db: impl PgExecutor<'_>, trial: Uuid) -> Result<Option<(Uuid, sweep_file::Method)>> {
    let row: Option<(Uuid, String)> =
        sqlx::query_as("SELECT s.id, s.method FROM trials t JOIN sweeps s ON s.id = t.sweep_id WHERE t.id = $1")
            .bind(trial)
            .fetch_optional(db)
            .await?;
    Ok(row.and_then(|(id, m)| Some((id, m.parse().ok()?))))
}

const SWEEP_COLUMNS: &str = "id, name, method, metric_name, metric_goal, spec_yaml, state, created_at, data_blobs,
                              max_cost_usd, budget_exhausted_at";

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<SweepRow> {
    sqlx::query_as(&format!("SELECT {SWEEP_COLUMNS} FROM sweeps WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| CoordinatorError::NotFound(format!("sweep {id}")))
}

/// Who owns a sweep (the token that submitted it; None for sweeps stored before owners).
pub async fn owner(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Uuid>> {
    let row: Option<(Option<Uuid>,)> =
        sqlx::query_as("SELECT owner_token FROM sweeps WHERE id = $1").bind(id).fetch_optional(db).await?;
    row.map(|r| r.0).ok_or_else(|| CoordinatorError::NotFound(format!("sweep {id}")))
}

pub async fn list(db: impl PgExecutor<'_>) -> Result<Vec<SweepRow>> {
    Ok(sqlx::query_as(&format!("SELECT {SWEEP_COLUMNS} FROM sweeps ORDER BY created_at")).fetch_all(db).await?)
}

/// Trial counts by state.
pub async fn counts(db: impl PgExecutor<'_>, id: Uuid) -> Result<BTreeMap<TrialState, u64>> {
    let rows: Vec<(TrialState, i64)> =
        sqlx::query_as("SELECT state, count(*) FROM trials WHERE sweep_id = $1 GROUP BY state")
            .bind(id)
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().map(|(s, n)| (s, n as u64)).collect())
}

/// Cancels a sweep: queued and running trials become `cancelled` at once; a worker
/// running one learns it at its next heartbeat. Returns how many were cancelled.
pub async fn cancel(conn: &mut PgConnection, id: Uuid) -> Result<u64> {
    let r = sqlx::query("UPDATE sweeps SET state = $2 WHERE id = $1")
        .bind(id)
        .bind(SweepState::Cancelled)
        .execute(&mut *conn)
        .await?;
    if r.rows_affected() == 0 {
        return Err(CoordinatorError::NotFound(format!("sweep {id}")));
    }
    let sql = format!(
        "UPDATE trials SET state = $2, lease_owner = NULL, lease_expires_at = NULL,
                updated_at = now(), finished_at = now()
         WHERE sweep_id = $1 AND state IN {}",
        crate::states::open_sql()
    );
    let r = sqlx::query(&sql).bind(id).bind(TrialState::Cancelled).execute(&mut *conn).await?;
    Ok(r.rows_affected())
}

/// Puts the sweep's trials in `states` (failed, dead, or both) back in the queue with
/// a fresh budget. Returns how many.
pub async fn retry(conn: &mut PgConnection, id: Uuid, states: &[TrialState]) -> Result<u64> {
    if let Some(s) = states.iter().find(|s| !matches!(s, TrialState::Failed | TrialState::Dead)) {
        return Err(CoordinatorError::InvalidArgument(format!("only failed or dead trials can be retried, not {s}")));
    }
    let r = sqlx::query("UPDATE sweeps SET state = $2 WHERE id = $1")
        .bind(id)
        .bind(SweepState::Running)
        .execute(&mut *conn)
        .await?;
    if r.rows_affected() == 0 {
        return Err(CoordinatorError::NotFound(format!("sweep {id}")));
    }
    let names: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
    let r = sqlx::query(
        "UPDATE trials SET state = $3, lost_count = 0, error_count = 0, not_before = now(),
                updated_at = now(), finished_at = NULL
         WHERE sweep_id = $1 AND state = ANY($2)",
    )
    .bind(id)
    .bind(&names)
    .bind(TrialState::Queued)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected())
}
