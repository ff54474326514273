//! Test support shared by the coordinator's, the worker's, the trainer's and the CLI's
//! tests, written once:
//!
//! - [`skip`]: the one rule for missing prerequisites: a test that lacks its database,
//!   data or tool says so and skips, except under `CI=true`, where it fails.
//! - [`fresh_database`]: a new database per test on the private cluster that
//!   `scripts/test.sh` starts (`SWEEP_TEST_DATABASE_URL`).
//! - [`app`]: the coordinator in-process on port 0, spoken to over real gRPC.
//! - [`procs`]: the real binaries as processes (coordinator, workers, CLI), a TCP proxy
//!   that can cut a link, small datasets that train in moments.

pub mod app;
pub mod procs;

use std::path::PathBuf;

use sqlx::Connection;

/// Skips (returns `None` after saying why) when a prerequisite is missing; under
/// `CI=true` a missing prerequisite fails the test instead.
pub fn skip<T>(what: impl std::fmt::Display) -> Option<T> {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{what} under CI=true: run the tests through scripts/test.sh"
    );
    eprintln!("skipping: {what}");
    None
}

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

/// `$SWEEP_DATA_DIR/mulan/<name>` (default `../shared/datasets`), or `None` (skip) when absent.
pub fn mulan_dir(name: &str) -> Option<PathBuf> {
    let root = sweep_spec::data_dir();
    let dir = root.join("mulan").join(name);
    if dir.exists() {
        Some(dir)
    } else {
        skip(format!("{} not found (set SWEEP_DATA_DIR)", dir.display()))
    }
}

/// The Python with torch and scikit-learn that `scripts/setup.sh` installs, or `None` (skip).
pub fn torch_python() -> Option<String> {
    let python = std::env::var("SWEEP_VENV").map(|v| format!("{v}/bin/python")).unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(&python).args(["-c", "import torch, sklearn"]).status();
    if ok.is_ok_and(|s| s.success()) {
        Some(python)
    } else {
        skip(format!("{python} has no torch + scikit-learn (scripts/setup.sh installs them)"))
    }
}

/// An executable on PATH, or `None` (skip) when it is not installed; `hint` says how to get it.
pub fn tool(name: &str, hint: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file());
    found.or_else(|| skip(format!("{name} is not installed ({hint})")))
}

/// A trial config that trains in well under a second on a CPU.
pub fn small_config() -> sweep_spec::TrialConfig {
    let mut c = sweep_spec::TrialConfig::default();
    c.dataset.labels = 60;
    c.dataset.features = 32;
    c.dataset.train_samples = 1500;
    c.dataset.test_samples = 400;
    c.dataset.max_positives = 400;
    c.model.hidden = vec![64];
    c.train.epochs = 4;
    c
}
