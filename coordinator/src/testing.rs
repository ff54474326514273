//! Test support: a fresh database per test on the private cluster that
//! `scripts/test.sh` starts (`SWEEP_TEST_DATABASE_URL`). Without it a test skips with
//! a message, except under `CI=true`, where a missing database fails.

use sqlx::Connection;

/// A new empty database; returns its URL, or None (skip) when no cluster is configured.
pub async fn fresh_database() -> Option<String> {
    let Ok(admin) = std::env::var("SWEEP_TEST_DATABASE_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "SWEEP_TEST_DATABASE_URL is not set under CI=true: run the tests through scripts/test.sh"
        );
        eprintln!("skipping: SWEEP_TEST_DATABASE_URL is not set (scripts/test.sh starts a private cluster)");
        return None;
    };
    let name = format!("sweep_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to the test cluster");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create test database");
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    Some(format!("{base}/{name}"))
}
