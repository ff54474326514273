//! Test support for tests that need a coordinator, written once (the environment's
//! rules, re-exported here, are `sweep-testenv`'s):
//!
//! - [`fresh_database`]: a new database per test on the private cluster that
//!   `scripts/test.sh` starts (`SWEEP_TEST_DATABASE_URL`).
//! - [`app`]: the coordinator in-process on port 0, spoken to over real gRPC.
//! - [`procs`]: the real binaries as processes (coordinator, workers, CLI), a TCP proxy
//!   that can cut a link, small datasets that train in moments.
//! - [`http`] and [`browser`]: the dashboard as scripts and people see it (plain HTTP,
//!   headless Chromium over the DevTools protocol).

pub mod app;
pub mod browser;
pub mod http;
pub mod procs;

pub use sweep_testenv::{data_file, mulan_dir, skip, small_config, tool, torch_python};

use sqlx::Connection;

/// A new empty database on the test cluster; its URL, or `None` (skip) when none is configured.
pub async fn fresh_database() -> Option<String> {
    let Ok(admin) = std::env::var("SWEEP_TEST_DATABASE_URL") else {
        return skip("SWEEP_TEST_DATABASE_URL is not set (scripts/test.sh starts a private cluster)");
    };
    let name = format!("sweep_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to the test cluster");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create test database");
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    Some(format!("{base}/{name}"))
}
