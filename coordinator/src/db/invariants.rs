//! The invariant checker the fault-injection suite and the soak end with. Each check
//! is one query; a violation names the trial and what is wrong.

use sqlx::PgExecutor;

use crate::error::Result;
use crate::states::{terminal_sql, TrialState, WorkerState};

/// Checks that hold at any moment: (what is wrong, the query finding the trials).
fn always() -> Vec<(&'static str, String)> {
    let (leased, succeeded, pruned) = (TrialState::Leased.sql(), TrialState::Succeeded.sql(), TrialState::Pruned.sql());
    vec![
        (
            "a lease held by a revoked worker",
            format!(
                "SELECT t.id::text FROM trials t JOIN workers w ON w.id = t.lease_owner
                 WHERE t.state = {leased} AND w.state = {}",
                WorkerState::Revoked.sql()
            ),
        ),
        (
            "a result on a trial that did not succeed (or end pruned)",
            format!("SELECT id::text FROM trials WHERE metrics IS NOT NULL AND state NOT IN ({succeeded}, {pruned})"),
        ),
        (
            "a succeeded or pruned trial without its result or its attempt",
            format!(
                "SELECT id::text FROM trials WHERE state IN ({succeeded}, {pruned})
                 AND (metrics IS NULL OR finished_by IS NULL OR attempt < 1)"
            ),
        ),
        (
            "more failures counted than attempts made",
            "SELECT id::text FROM trials WHERE lost_count + error_count > attempt".into(),
        ),
        (
            "per-epoch metrics from an attempt that never happened",
            "SELECT e.trial_id::text FROM trial_epochs e JOIN trials t ON t.id = e.trial_id
             WHERE e.attempt > t.attempt OR e.attempt < 1"
                .into(),
        ),
        (
            "an attempt recorded for a trial that does not exist",
            "SELECT a.trial_id::text FROM attempt_records a WHERE NOT EXISTS (SELECT 1 FROM trials t WHERE t.id = a.trial_id)"
                .into(),
        ),
        (
            "two trials for one cell",
            "SELECT min(id::text) FROM trials GROUP BY sweep_id, params_hash HAVING count(*) > 1".into(),
        ),
        (
            "a terminal trial still holding a lease",
            format!(
                "SELECT id::text FROM trials WHERE state IN {}
                 AND (lease_owner IS NOT NULL OR lease_expires_at IS NOT NULL OR finished_at IS NULL)",
                terminal_sql()
            ),
        ),
    ]
}

/// Violations of the invariants. With `settled`, every trial must also have reached
/// exactly one terminal state (succeeded, failed, cancelled or dead).
pub async fn check(db: impl PgExecutor<'_> + Copy, settled: bool) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (what, sql) in always() {
        let rows: Vec<(Option<String>,)> = sqlx::query_as(&sql).fetch_all(db).await?;
        out.extend(rows.into_iter().map(|(id,)| format!("{what}: trial {}", id.unwrap_or_default())));
    }
    if settled {
        let sql = format!("SELECT id::text, state FROM trials WHERE state NOT IN {}", terminal_sql());
        let rows: Vec<(String, String)> = sqlx::query_as(&sql).fetch_all(db).await?;
        out.extend(rows.into_iter().map(|(id, s)| format!("not in a terminal state: trial {id} is {s}")));
    }
    Ok(out)
}

/// Trial counts for a report: (state, count).
pub async fn summary(db: impl PgExecutor<'_>) -> Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as("SELECT state, count(*) FROM trials GROUP BY state ORDER BY state").fetch_all(db).await?)
}
