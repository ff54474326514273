//! The test environment's rules, shared by every crate's tests and linking nothing
//! heavy (the trainer's tests use it; `sweep-testkit` adds databases and processes):
//!
//! - [`skip`]: the one rule for missing prerequisites: a test that lacks its database,
//!   data or tool says so and skips, except under `CI=true`, where it fails.
//! - [`mulan_dir`], [`data_file`], [`torch_python`], [`tool`]: where the datasets, the setup's
//!   Python and tools are (or a skip).
//! - [`small_config`]: a trial that trains in moments.

use std::path::PathBuf;

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

/// `$SWEEP_DATA_DIR/mulan/<name>` (default `../shared/datasets`), or `None` (skip) when absent.
pub fn mulan_dir(name: &str) -> Option<PathBuf> {
    let root = sweep_file::data_dir();
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
pub fn small_config() -> sweep_file::TrialConfig {
    let mut c = sweep_file::TrialConfig::default();
    c.dataset.source = sweep_file::DataSource::Synthetic(sweep_file::SyntheticData {
        labels: 60,
        features: 32,
        train_samples: 1500,
        test_samples: 400,
        max_positives: 400,
        ..Default::default()
    });
    c.model.hidden = vec![64];
    c.train.epochs = 4;
    c
}

/// A file under `$SWEEP_DATA_DIR` (default `../shared/datasets`), or `None` (skip) when absent.
pub fn data_file(relative: &str) -> Option<PathBuf> {
    let path = sweep_file::data_dir().join(relative);
    if path.exists() {
        Some(path)
    } else {
        skip(format!("{} not found (set SWEEP_DATA_DIR)", path.display()))
    }
}
