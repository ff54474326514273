//! The Postgres store. SQL sits next to the function that runs it; functions take an
//! executor so the caller owns the transaction. Runtime-checked queries
//! (`sqlx::query_as`) with every query covered by the tests in `coordinator/tests/api.rs`
//! and the process tests in `worker/tests/`.

pub mod blobs;
pub mod budgets;
pub mod costs;
pub mod dashboard;
pub mod fleets;
pub mod invariants;
pub mod leases;
pub mod locks;
pub mod stats;
pub mod sweeps;
pub mod tokens;
pub mod trials;
pub mod workers;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Connects and runs pending migrations.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    use anyhow::Context;
    let opts: PgConnectOptions = url.parse().context("parse database url")?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(opts)
        .await
        .context("connect to postgres")?;
    MIGRATOR.run(&pool).await.context("run migrations")?;
    Ok(pool)
}

/// Milliseconds since the epoch of a timestamp, for the API.
pub fn unix_ms(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_millis()
}
