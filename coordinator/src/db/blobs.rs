//! What refers to a blob. A blob is deleted only when nothing does: a sweep's data
//! files, a trial's checkpoint or kept model, or the data bound into an open trial's
//! config (a sweep submitted again with other files keeps its older trials' blobs).

use sqlx::PgExecutor;

use crate::error::Result;
use crate::states::TrialState;

/// Whether anything stored refers to blob `sha`.
pub async fn referenced(db: impl PgExecutor<'_>, sha: &str) -> Result<bool> {
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM trials WHERE checkpoint_blob = $1)
             OR EXISTS (SELECT 1 FROM trials WHERE model_blob = $1)
             OR EXISTS (SELECT 1 FROM sweeps s, jsonb_each_text(s.data_blobs) d WHERE d.value = $1)
             OR EXISTS (SELECT 1 FROM trials WHERE state IN ({}, {}) AND strpos(config::text, $1) > 0)",
        TrialState::Queued.sql(),
        TrialState::Leased.sql()
    );
    Ok(sqlx::query_scalar(&sql).bind(sha).fetch_one(db).await?)
}
