//! Leases: the claim, and every write a worker makes under its lease (heartbeat,
//! progress, completion, failure, hand-back, checkpoint), and the reaper.
//!
//! Every worker write names (trial, attempt) and applies only while that attempt holds
//! an unexpired lease owned by that worker; the database clock decides expiry. The fence
//! is written once ([`Fence::holds`]) and bound once ([`Fence::bind`]); a write that
//! matches no row is turned into its reason by [`refusal`].

use std::collections::BTreeMap;

use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::{CoordinatorError, Result};
use crate::states::{TrialState, WorkerState};

/// A trial handed to a worker.
#[derive(Debug, sqlx::FromRow)]
pub struct Leased {
    pub id: Uuid,
    pub attempt: i32,
    pub sweep_id: Uuid,
    pub config: serde_json::Value,
    pub params: serde_json::Value,
    pub checkpoint_blob: Option<String>,
    pub checkpoint_epoch: Option<i32>,
}

/// Claims up to `n` queued trials for `worker` in one statement. Concurrent claims
/// skip each other's locked rows; no transaction stays open while the trial runs. A
/// revoked or quarantined worker claims nothing, nor does a worker of a fleet whose
/// budget is spent; a sweep whose budget is spent has nothing to claim. (Cancelled
/// sweeps have no queued trials: cancel moves them to `cancelled`.)
/// `sweeps`: the only sweeps the worker may serve (a fleet instance's), or None for all.
/// `fuse`: the trials share the first one's fuse key (one group to train as one stack).
pub async fn claim(
    db: impl PgExecutor<'_>,
    worker: Uuid,
    n: u32,
    lease_ms: u32,
    sweeps: Option<&[Uuid]>,
    fuse: bool,
) -> Result<Vec<Leased>> {
    // Separate statements rather than `$4 IS NULL OR ...`: the common case (a worker that
    // serves every sweep) keeps the plain queue scan.
    let only = if sweeps.is_some() { "AND q.sweep_id = ANY ($4)" } else { "" };
    let (queued, revoked, quarantined) =
        (TrialState::Queued.sql(), WorkerState::Revoked.sql(), WorkerState::Quarantined.sql());
    let claimable = format!(
        "q.state = {queued} AND q.not_before <= now()
         AND EXISTS (SELECT 1 FROM workers w WHERE w.id = $1 AND w.state NOT IN ({revoked}, {quarantined}))
         AND NOT EXISTS (SELECT 1 FROM sweeps s WHERE s.id = q.sweep_id AND s.budget_exhausted_at IS NOT NULL)
         AND NOT EXISTS (SELECT 1 FROM instances i JOIN fleets f ON f.id = i.fleet_id
                         WHERE i.worker_id = $1 AND f.budget_exhausted_at IS NOT NULL)
         {only}"
    );
    let chosen = if fuse {
        // The oldest claimable trial, then the oldest others of its fuse key.
        format!(
            "WITH head AS (
                 SELECT q.id, q.fuse_key FROM trials q WHERE {claimable}
                 ORDER BY q.created_at, q.seq LIMIT 1 FOR UPDATE SKIP LOCKED),
             rest AS (
                 SELECT q.id FROM trials q JOIN head h ON q.fuse_key = h.fuse_key AND q.id <> h.id
                 WHERE {claimable}
                 ORDER BY q.created_at, q.seq LIMIT $2 - 1 FOR UPDATE OF q SKIP LOCKED)
             SELECT id FROM head UNION ALL SELECT id FROM rest"
        )
    } else {
        format!(
            "SELECT q.id FROM trials q WHERE {claimable} ORDER BY q.created_at, q.seq LIMIT $2 FOR UPDATE SKIP LOCKED"
        )
    };
    let sql = format!(
        "UPDATE trials t
         SET state = {}, attempt = t.attempt + 1, lease_owner = $1,
             lease_expires_at = now() + make_interval(secs => $3::double precision / 1000),
             updated_at = now(), error = NULL
         WHERE t.id IN ({chosen})
         RETURNING t.id, t.attempt, t.sweep_id, t.config, t.params, t.checkpoint_blob, t.checkpoint_epoch",
        TrialState::Leased.sql()
    );
    let q = sqlx::query_as(&sql).bind(worker).bind(n as i64).bind(lease_ms as f64);
    let q = match sweeps {
        Some(s) => q.bind(s),
        None => q,
    };
    Ok(q.fetch_all(db).await?)
}

/// Who writes: a worker, for one attempt of one trial. Every fenced statement binds
/// these as $1, $2, $3 and applies only while [`Fence::holds`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence {
    pub trial: Uuid,
    pub attempt: i32,
    pub worker: Uuid,
}

impl Fence {
    /// The condition every worker write applies under, on the `trials` row named `row`
    /// (`trials`, or the alias a statement gives it): this attempt holds an unexpired
    /// lease owned by this worker.
    pub fn holds(row: &str) -> String {
        format!(
            "{row}.id = $1 AND {row}.attempt = $2 AND {row}.lease_owner = $3 AND {row}.state = {} \
             AND {row}.lease_expires_at > now()",
            TrialState::Leased.sql()
        )
    }

    /// A fenced query returning rows, with the fence bound as $1, $2, $3.
    fn bind_as<'q, O>(
        &self,
        q: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
        q.bind(self.trial).bind(self.attempt).bind(self.worker)
    }

    /// A fenced statement with the fence bound as $1, $2, $3.
    fn bind<'q>(
        &self,
        q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        q.bind(self.trial).bind(self.attempt).bind(self.worker)
    }
}

/// Why a fenced write matched no row: a revoked worker is UNAUTHENTICATED, another
/// worker's lease is PERMISSION_DENIED, anything else (reaped, re-leased, cancelled,
/// finished, expired) is a lost lease.
async fn refusal(conn: &mut PgConnection, f: &Fence) -> CoordinatorError {
    let Fence { trial, attempt, worker } = *f;
    match super::workers::is_revoked(&mut *conn, worker).await {
        Ok(true) => return CoordinatorError::Unauthenticated("worker credential revoked".into()),
        Ok(false) => {}
        Err(e) => return e,
    }
    let db = &mut *conn;
    let row: std::result::Result<Option<(TrialState, i32, Option<Uuid>)>, _> =
        sqlx::query_as("SELECT state, attempt, lease_owner FROM trials WHERE id = $1")
            .bind(trial)
            .fetch_optional(db)
            .await;
    match row {
        Err(e) => e.into(),
        Ok(None) => CoordinatorError::NotFound(format!("trial {trial}")),
        Ok(Some((state, cur, owner))) => {
            if state == TrialState::Leased && cur == attempt && owner.is_some_and(|o| o != worker) {
                CoordinatorError::PermissionDenied(format!("trial {trial} is leased by another worker"))
            } else {
                CoordinatorError::LeaseLost(format!(
                    "trial {trial} attempt {attempt} no longer holds the lease (now {state}, attempt {cur})"
                ))
            }
        }
    }
}

/// What a heartbeat tells the worker about one of its trials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    Continue,
    Cancel,
    LeaseLost,
    /// A budget (the trial's sweep's, or the worker's fleet's) is spent: checkpoint and
    /// hand the trial back.
    HandBack,
}

/// Extends the leases the worker still holds; says for each trial whether to go on.
pub async fn heartbeat(
    conn: &mut PgConnection,
    worker: Uuid,
    trials: &[(Uuid, i32)],
    lease_ms: u32,
) -> Result<Vec<Directive>> {
    let ids: Vec<Uuid> = trials.iter().map(|t| t.0).collect();
    let attempts: Vec<i32> = trials.iter().map(|t| t.1).collect();
    let sql = format!(
        "UPDATE trials t SET lease_expires_at = now() + make_interval(secs => $4::double precision / 1000)
         FROM UNNEST($1::uuid[], $2::int[]) AS r(id, attempt)
         WHERE t.id = r.id AND t.attempt = r.attempt AND t.lease_owner = $3
           AND t.state = {} AND t.lease_expires_at > now()
         RETURNING t.id",
        TrialState::Leased.sql()
    );
    let extended: Vec<(Uuid,)> = sqlx::query_as(&sql)
        .bind(&ids)
        .bind(&attempts)
        .bind(worker)
        .bind(lease_ms as f64)
        .fetch_all(&mut *conn)
        .await?;
    let extended: std::collections::HashSet<Uuid> = extended.into_iter().map(|r| r.0).collect();
    let states: Vec<(Uuid, TrialState, i32, bool)> = sqlx::query_as(
        "SELECT t.id, t.state, t.attempt,
                s.budget_exhausted_at IS NOT NULL
                OR EXISTS (SELECT 1 FROM instances i JOIN fleets f ON f.id = i.fleet_id
                           WHERE i.worker_id = $2 AND f.budget_exhausted_at IS NOT NULL)
         FROM trials t JOIN sweeps s ON s.id = t.sweep_id WHERE t.id = ANY($1)",
    )
    .bind(&ids)
    .bind(worker)
    .fetch_all(&mut *conn)
    .await?;
    let spent: std::collections::HashSet<Uuid> = states.iter().filter(|r| r.3).map(|r| r.0).collect();
    let states: BTreeMap<Uuid, (TrialState, i32)> = states.into_iter().map(|(id, s, a, _)| (id, (s, a))).collect();
    Ok(trials
        .iter()
        .map(|(id, attempt)| {
            if extended.contains(id) && spent.contains(id) {
                Directive::HandBack
            } else if extended.contains(id) {
                Directive::Continue
            } else if states.get(id).is_some_and(|(s, a)| *s == TrialState::Cancelled && a == attempt) {
                Directive::Cancel
            } else {
                Directive::LeaseLost
            }
        })
        .collect())
}

/// Records one epoch's metrics (append-only, first write per epoch wins) and extends
/// the lease; refused when the attempt no longer holds it.
pub async fn progress(
    conn: &mut PgConnection,
    f: &Fence,
    epoch: i32,
    metrics: &BTreeMap<String, f64>,
    lease_ms: u32,
) -> Result<()> {
    let metrics = serde_json::to_value(metrics).expect("json");
    let sql = format!(
        "WITH t AS (
             UPDATE trials SET epoch = $4, latest = $5, updated_at = now(),
                    lease_expires_at = now() + make_interval(secs => $6::double precision / 1000)
             WHERE {} RETURNING id),
         ins AS (
             INSERT INTO trial_epochs (trial_id, attempt, epoch, metrics)
             SELECT id, $2, $4, $5 FROM t ON CONFLICT DO NOTHING)
         SELECT count(*) FROM t",
        Fence::holds("trials")
    );
    let q = sqlx::query(&sql);
    let row = f.bind(q).bind(epoch).bind(&metrics).bind(lease_ms as f64).fetch_one(&mut *conn).await?;
    if sqlx::Row::get::<i64, _>(&row, 0) == 1 {
        Ok(())
    } else {
        Err(refusal(conn, f).await)
    }
}

/// Records the result of an attempt that holds the lease (`pruned`: it stopped early at
/// the coordinator's word); `Some` when this call recorded it. Completing the same
/// attempt again is a success that changes nothing (`None`).
pub async fn complete(
    conn: &mut PgConnection,
    f: &Fence,
    metrics: &BTreeMap<String, f64>,
    result: &serde_json::Value,
    pruned: bool,
    model_blob: Option<&str>,
) -> Result<Option<Recorded>> {
    let metrics_json = serde_json::to_value(metrics).expect("json");
    let (pruned_, succeeded) = (TrialState::Pruned.sql(), TrialState::Succeeded.sql());
    let sql = format!(
        "UPDATE trials t SET state = CASE WHEN $6 THEN {pruned_} ELSE {succeeded} END, metrics = $4, result = $5,
                model_blob = $7,
                objective = ($4 ->> s.metric_name)::double precision,
                lease_owner = NULL, lease_expires_at = NULL, finished_by = $3,
                finished_at = now(), updated_at = now(), checkpoint_blob = NULL
         FROM sweeps s, trials before
         WHERE s.id = t.sweep_id AND before.id = t.id AND {fence}
         RETURNING s.id AS sweep_id, s.method, before.checkpoint_blob AS checkpoint",
        fence = Fence::holds("t")
    );
    let q = sqlx::query_as(&sql);
    let q = q.bind(f.trial).bind(f.attempt).bind(f.worker);
    let q = q.bind(&metrics_json).bind(result).bind(pruned).bind(model_blob);
    if let Some(recorded) = q.fetch_optional(&mut *conn).await? {
        return Ok(Some(recorded));
    }
    let same = format!(
        "SELECT 1 FROM trials WHERE id = $1 AND attempt = $2 AND finished_by = $3 AND state IN ({succeeded}, {pruned_})"
    );
    let same = sqlx::query(&same);
    if f.bind(same).fetch_optional(&mut *conn).await?.is_some() {
        return Ok(None); // duplicate report of the same attempt
    }
    Err(refusal(conn, f).await)
}

/// A result recorded by [`complete`]: its sweep, how the sweep searches, and the
/// checkpoint the trial no longer needs (its blob, to delete).
#[derive(Debug, sqlx::FromRow)]
pub struct Recorded {
    pub sweep_id: Uuid,
    #[sqlx(try_from = "String")]
    pub method: sweep_file::Method,
    pub checkpoint: Option<String>,
}

/// How a reported failure is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The trial's own fault (bad config, missing data, NaN loss): failed, not retried.
    User,
    /// May pass: retried with exponential backoff until the error budget is spent.
    Transient,
}

/// Records a failed attempt. Returns the trial's new state (failed, or queued again).
pub async fn fail(
    conn: &mut PgConnection,
    f: &Fence,
    kind: FailureKind,
    error: &str,
    backoff_base_ms: u32,
) -> Result<TrialState> {
    let sql = format!(
        "UPDATE trials SET
             error_count = error_count + 1,
             state = CASE WHEN $4 OR error_count + 1 >= max_attempts THEN {failed} ELSE {queued} END,
             not_before = now() + make_interval(secs => $6::double precision / 1000 * power(2, LEAST(error_count, 10))),
             finished_at = CASE WHEN $4 OR error_count + 1 >= max_attempts THEN now() END,
             error = $5, lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
         WHERE {fence} RETURNING state",
        failed = TrialState::Failed.sql(),
        queued = TrialState::Queued.sql(),
        fence = Fence::holds("trials")
    );
    let q = sqlx::query(&sql);
    let row = f.bind(q).bind(kind == FailureKind::User).bind(error).bind(backoff_base_ms as f64);
    match row.fetch_optional(&mut *conn).await? {
        Some(row) => Ok(sqlx::Row::try_get(&row, 0)?),
        None => Err(refusal(conn, f).await),
    }
}

/// Hands a held trial back untouched (worker draining): queued again at once.
/// Hands a trial back (`preempted`: on a spot interruption notice, counted apart).
pub async fn release(conn: &mut PgConnection, f: &Fence, preempted: bool) -> Result<()> {
    let sql = format!(
        "UPDATE trials SET state = {queued}, lease_owner = NULL, lease_expires_at = NULL,
                not_before = now(), updated_at = now(),
                preempted_count = preempted_count + CASE WHEN $4 THEN 1 ELSE 0 END,
                error = CASE WHEN $4 THEN 'preempted (spot interruption notice)' ELSE 'handed back by worker' END
         WHERE {fence}",
        queued = TrialState::Queued.sql(),
        fence = Fence::holds("trials")
    );
    let q = f.bind(sqlx::query(&sql)).bind(preempted);
    if q.execute(&mut *conn).await?.rows_affected() == 1 {
        Ok(())
    } else {
        Err(refusal(conn, f).await)
    }
}

/// Records the attempt's latest checkpoint; returns the blob it replaces (to delete).
pub async fn save_checkpoint(conn: &mut PgConnection, f: &Fence, sha: &str, epoch: u32) -> Result<Option<String>> {
    // `o` is the row before the update.
    let sql = format!(
        "UPDATE trials t SET checkpoint_blob = $4, checkpoint_epoch = $5, updated_at = now()
         FROM (SELECT id, checkpoint_blob AS old FROM trials WHERE id = $1 FOR UPDATE) o
         WHERE t.id = o.id AND {}
         RETURNING o.old",
        Fence::holds("t")
    );
    let row: Option<(Option<String>,)> =
        f.bind_as(sqlx::query_as(&sql)).bind(sha).bind(epoch as i32).fetch_optional(&mut *conn).await?;
    match row {
        Some((old,)) => Ok(old.filter(|o| o != sha)),
        None => Err(refusal(conn, f).await),
    }
}

/// A trial whose lease expired, and where the reaper put it.
#[derive(Debug, sqlx::FromRow)]
pub struct Reaped {
    pub id: Uuid,
    pub sweep_id: Uuid,
    /// Queued again, or dead after `max_attempts` lost leases.
    pub state: TrialState,
}

/// Returns expired leases to the queue, or marks a trial `dead` once it has lost
/// `max_attempts` leases (at most 1,000 per call).
pub async fn reap(db: impl PgExecutor<'_>) -> Result<Vec<Reaped>> {
    let sql = format!(
        "UPDATE trials SET
             lost_count = lost_count + 1,
             state = CASE WHEN lost_count + 1 >= max_attempts THEN {dead} ELSE {queued} END,
             finished_at = CASE WHEN lost_count + 1 >= max_attempts THEN now() END,
             error = 'lease expired on attempt ' || attempt || ' (worker lost)',
             lease_owner = NULL, lease_expires_at = NULL, not_before = now(), updated_at = now()
         WHERE id IN (
             SELECT id FROM trials WHERE state = {leased} AND lease_expires_at <= now()
             ORDER BY lease_expires_at LIMIT 1000 FOR UPDATE SKIP LOCKED)
         RETURNING id, sweep_id, state",
        dead = TrialState::Dead.sql(),
        queued = TrialState::Queued.sql(),
        leased = TrialState::Leased.sql()
    );
    Ok(sqlx::query_as(&sql).fetch_all(db).await?)
}
