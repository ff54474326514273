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
    let sql = claim_sql(fuse, sweeps.is_some());
    let q = sqlx::query_as(&sql).bind(worker).bind(n as i64).bind(lease_ms as f64);
    let q = match sweeps {
        Some(s) => q.bind(s),
        None => q,
    };
    Ok(q.fetch_all(db).await?)
}

/// The claim statement: $1 the worker, $2 how many, $3 the lease in ms, and $4 the sweeps
/// it may serve when `only_sweeps`. Public for the test that holds its plan to a walk of
/// the queue's index (`api::the_claim_walks_the_queue_index_and_never_scans_the_queue`).
pub fn claim_sql(fuse: bool, only_sweeps: bool) -> String {
    // Separate statements rather than `$4 IS NULL OR ...`: the common case (a worker that
    // serves every sweep) keeps the plain queue scan. Wrapped in `coalesce` so that it stays
    // a filter on that walk: as a bare `= ANY`, the planner may prefer the sweep's rows
    // from another index, then sort them all (every queued trial of the sweep, each claim).
    let only = if only_sweeps { "AND coalesce(q.sweep_id = ANY ($4), false)" } else { "" };
    let (queued, revoked, quarantined) =
        (TrialState::Queued.sql(), WorkerState::Revoked.sql(), WorkerState::Quarantined.sql());
    // The sweep's budget is a scalar subquery on purpose: written as `NOT EXISTS`, the
    // planner turns it into an anti-join that scans and sorts every queued trial on every
    // claim (15 ms at 10,000 queued: the control plane fell to a quarter, issue 38),
    // where a filter keeps the walk of the queue index that stops at the first claimable
    // row. The worker's and its fleet's checks do not depend on the row: computed once.
    let claimable = format!(
        "q.state = {queued} AND q.not_before <= now()
         AND EXISTS (SELECT 1 FROM workers w WHERE w.id = $1 AND w.state NOT IN ({revoked}, {quarantined}))
         AND (SELECT s.budget_exhausted_at IS NULL FROM sweeps s WHERE s.id = q.sweep_id)
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
    format!(
        "UPDATE trials t
         SET state = {}, attempt = t.attempt + 1, lease_owner = $1,
             lease_expires_at = now() + make_interval(secs => $3::double precision / 1000),
             updated_at = now(), leased_at = now(), error = NULL, hand_back = false
         WHERE t.id IN ({chosen})
         RETURNING t.id, t.attempt, t.sweep_id, t.config, t.params, t.checkpoint_blob, t.checkpoint_epoch",
        TrialState::Leased.sql()
    )
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

/// A lease's new expiry after a worker's call: one lease from now, or unchanged once a
/// hand-back is asked of it (`hand_back`): such a lease ends on time whatever the worker
/// does. For the `trials` row named `row`; the lease length in ms is bound as `$param`.
fn extended(row: &str, param: u8) -> String {
    format!(
        "CASE WHEN {row}.hand_back THEN {row}.lease_expires_at \
         ELSE now() + make_interval(secs => ${param}::double precision / 1000) END"
    )
}

/// Extends the leases the worker still holds (not those asked back); says for each
/// trial whether to go on.
pub async fn heartbeat(
    conn: &mut PgConnection,
    worker: Uuid,
    trials: &[(Uuid, i32)],
    lease_ms: u32,
) -> Result<Vec<Directive>> {
    let ids: Vec<Uuid> = trials.iter().map(|t| t.0).collect();
    let attempts: Vec<i32> = trials.iter().map(|t| t.1).collect();
    let sql = format!(
        "UPDATE trials t SET lease_expires_at = {}
         FROM UNNEST($1::uuid[], $2::int[]) AS r(id, attempt)
         WHERE t.id = r.id AND t.attempt = r.attempt AND t.lease_owner = $3
           AND t.state = {} AND t.lease_expires_at > now()
         RETURNING t.id, t.hand_back",
        extended("t", 4),
        TrialState::Leased.sql()
    );
    let held: BTreeMap<Uuid, bool> = sqlx::query_as(&sql)
        .bind(&ids)
        .bind(&attempts)
        .bind(worker)
        .bind(lease_ms as f64)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect();
    // Only a trial no longer held needs its state read (cancelled, or lost).
    let gone: Vec<Uuid> = ids.iter().filter(|id| !held.contains_key(id)).copied().collect();
    let states: BTreeMap<Uuid, (TrialState, i32)> = if gone.is_empty() {
        BTreeMap::new()
    } else {
        sqlx::query_as::<_, (Uuid, TrialState, i32)>("SELECT id, state, attempt FROM trials WHERE id = ANY($1)")
            .bind(&gone)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .map(|(id, s, a)| (id, (s, a)))
            .collect()
    };
    Ok(trials
        .iter()
        .map(|(id, attempt)| match held.get(id) {
            Some(true) => Directive::HandBack,
            Some(false) => Directive::Continue,
            None if states.get(id).is_some_and(|(s, a)| *s == TrialState::Cancelled && a == attempt) => {
                Directive::Cancel
            }
            None => Directive::LeaseLost,
        })
        .collect())
}

/// The leases a spent budget covers: the trial's sweep's, or the fleet's of the worker
/// holding it (on the `trials` row named `t`).
const UNDER_SPENT_BUDGET: &str =
    "(EXISTS (SELECT 1 FROM sweeps s WHERE s.id = t.sweep_id AND s.budget_exhausted_at IS NOT NULL)
      OR EXISTS (SELECT 1 FROM instances i JOIN fleets f ON f.id = i.fleet_id
                 WHERE i.worker_id = t.lease_owner AND f.budget_exhausted_at IS NOT NULL))";

/// Asks back the leases a spent budget covers: they are extended no more. Run by every
/// reconcile pass (and when a budget is set), so a lease claimed while the budget ran
/// out is caught by the next. Returns the sweeps of the trials newly asked.
pub async fn ask_back(db: impl PgExecutor<'_>) -> Result<Vec<Uuid>> {
    let sql = format!(
        "UPDATE trials t SET hand_back = true
         WHERE t.state = {} AND NOT t.hand_back AND {UNDER_SPENT_BUDGET}
         RETURNING t.sweep_id",
        TrialState::Leased.sql()
    );
    let rows: Vec<(Uuid,)> = sqlx::query_as(&sql).fetch_all(db).await?;
    let mut sweeps: Vec<Uuid> = rows.into_iter().map(|r| r.0).collect();
    sweeps.sort();
    sweeps.dedup();
    Ok(sweeps)
}

/// Withdraws the hand-back asked of leases no spent budget covers any more (a budget was
/// raised); they are extended again.
pub async fn withdraw_ask(db: impl PgExecutor<'_>) -> Result<u64> {
    let sql = format!(
        "UPDATE trials t SET hand_back = false WHERE t.state = {} AND t.hand_back AND NOT {UNDER_SPENT_BUDGET}",
        TrialState::Leased.sql()
    );
    Ok(sqlx::query(&sql).execute(db).await?.rows_affected())
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
             UPDATE trials SET epoch = $4, latest = $5, updated_at = now(), lease_expires_at = {extend}
             WHERE {fence} RETURNING id),
         ins AS (
             INSERT INTO trial_epochs (trial_id, attempt, epoch, metrics)
             SELECT id, $2, $4, $5 FROM t ON CONFLICT DO NOTHING)
         SELECT count(*) FROM t",
        extend = extended("trials", 6),
        fence = Fence::holds("trials")
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
    // A success also ends the worker's run of infrastructure failures (the quarantine
    // counts them in a row), in the same statement: no second round trip per trial.
    let sql = format!(
        "WITH done AS (
             UPDATE trials t SET state = CASE WHEN $6 THEN {pruned_} ELSE {succeeded} END, metrics = $4, result = $5,
                    model_blob = $7,
                    objective = ($4 ->> s.metric_name)::double precision,
                    lease_owner = NULL, lease_expires_at = NULL, finished_by = $3,
                    finished_at = now(), updated_at = now(), checkpoint_blob = NULL
             FROM sweeps s, trials before
             WHERE s.id = t.sweep_id AND before.id = t.id AND {fence}
             RETURNING s.id AS sweep_id, s.method, before.checkpoint_blob AS checkpoint),
         healthy AS (
             UPDATE workers SET infra_failures_in_a_row = 0
             WHERE id = $3 AND infra_failures_in_a_row <> 0 AND EXISTS (SELECT 1 FROM done))
         SELECT * FROM done",
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
/// `max_attempts` leases (at most 1,000 per call). A lease that ran out after a hand-back
/// was asked of it (a spent budget) is no lost lease: its trial is queued again, uncounted.
pub async fn reap(db: impl PgExecutor<'_>) -> Result<Vec<Reaped>> {
    let sql = format!(
        "UPDATE trials SET
             lost_count = lost_count + CASE WHEN hand_back THEN 0 ELSE 1 END,
             state = CASE WHEN NOT hand_back AND lost_count + 1 >= max_attempts THEN {dead} ELSE {queued} END,
             finished_at = CASE WHEN NOT hand_back AND lost_count + 1 >= max_attempts THEN now() END,
             error = CASE WHEN hand_back
                          THEN 'taken back when the lease of attempt ' || attempt || ' ran out (its budget is spent)'
                          ELSE 'lease expired on attempt ' || attempt || ' (worker lost)' END,
             lease_owner = NULL, lease_expires_at = NULL, not_before = now(), updated_at = now(), hand_back = false
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
