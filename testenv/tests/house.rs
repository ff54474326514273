//! The house rules, as checks: what each crate of ours may depend on (read from `cargo
//! metadata`: our crates it names directly, and crates it must never reach, also
//! transitively through normal dependencies), and no source file over 500 lines before its
//! tests. (Functions over 80 lines fail clippy's `too_many_lines` in `scripts/test.sh`.)
//! The table is the README's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// crate -> (our crates it may name, crates it must never reach).
fn rules() -> BTreeMap<&'static str, (&'static [&'static str], &'static [&'static str])> {
    const PURE: &[&str] = &["tokio", "tonic", "sqlx", "tch", "aws-sdk-ec2"];
    BTreeMap::from([
        ("sweep-file", (&[][..], PURE)),
        ("sweep-search", (&[][..], PURE)),
        ("sweep-proto", (&[][..], &["sqlx", "tch"][..])),
        ("sweep-trainer", (&["sweep-file"][..], &["tokio", "tonic", "sqlx", "aws-sdk-ec2"][..])),
        ("sweep-client", (&["sweep-proto"][..], &["sqlx", "tch"][..])),
        (
            "sweep-coordinator",
            (
                &["sweep-proto", "sweep-file", "sweep-search", "sweep-client", "sweep-view"][..],
                &["tch", "sweep-trainer"][..],
            ),
        ),
        (
            "sweep-worker",
            (
                &["sweep-proto", "sweep-file", "sweep-trainer", "sweep-client"][..],
                &["sqlx", "aws-sdk-ec2", "sweep-coordinator"][..],
            ),
        ),
        (
            "sweep-cli",
            (
                &["sweep-proto", "sweep-file", "sweep-search", "sweep-client", "sweep-view"][..],
                &["sqlx", "tch", "sweep-trainer", "sweep-coordinator"][..],
            ),
        ),
        (
            "sweep-view",
            (&["sweep-proto", "sweep-file", "sweep-search"][..], &["sqlx", "tch", "aws-sdk-ec2", "sweep-client"][..]),
        ),
        ("sweep-testenv", (&["sweep-file"][..], &["tokio", "tonic", "sqlx", "tch"][..])),
        ("sweep-testkit", (&["sweep-coordinator", "sweep-proto", "sweep-file", "sweep-testenv"][..], &["tch"][..])),
    ])
}

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The host's target triple (`rustc -vV`): the graph is this platform's, so `--offline`
/// needs only the packages a build here downloaded (not, say, Android-only ones).
fn host() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = std::process::Command::new(rustc).arg("-vV").output().expect("rustc -vV");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().find_map(|l| l.strip_prefix("host: ")).expect("rustc -vV names the host").to_string()
}

/// (package name -> its normal and build dependencies' names) for the workspace's graph.
fn graph() -> (BTreeMap<String, BTreeSet<String>>, BTreeSet<String>) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--filter-platform", &host()])
        .current_dir(root())
        .output()
        .expect("cargo metadata");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let members: BTreeSet<String> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| names[id.as_str().unwrap()].to_string())
        .collect();
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let name = names[node["id"].as_str().unwrap()].to_string();
        let entry = deps.entry(name).or_default();
        for d in node["deps"].as_array().unwrap() {
            let normal = d["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].as_str() != Some("dev"));
            if normal {
                entry.insert(names[d["pkg"].as_str().unwrap()].to_string());
            }
        }
    }
    (deps, members)
}

fn reach(deps: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    let (mut seen, mut todo) = (BTreeSet::new(), vec![from.to_string()]);
    while let Some(p) = todo.pop() {
        for d in deps.get(&p).into_iter().flatten() {
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

/// Each crate's dependencies against the table; every violation named at once.
pub fn layering_violations(deps: &BTreeMap<String, BTreeSet<String>>, members: &BTreeSet<String>) -> Vec<String> {
    let rules = rules();
    let mut bad = Vec::new();
    for member in members {
        let Some((allowed, never)) = rules.get(member.as_str()) else {
            bad.push(format!("{member}: not in the dependency table"));
            continue;
        };
        for d in deps.get(member).into_iter().flatten().filter(|d| members.contains(*d)) {
            if !allowed.contains(&d.as_str()) {
                bad.push(format!("{member} depends on {d}, which it may not"));
            }
        }
        let reached = reach(deps, member);
        for n in *never {
            if reached.contains(*n) {
                bad.push(format!("{member} reaches {n}, which it must never"));
            }
        }
    }
    bad
}

#[test]
fn every_crate_depends_only_on_what_the_table_allows() {
    let (deps, members) = graph();
    assert!(members.len() >= 10, "{members:?}");
    let bad = layering_violations(&deps, &members);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The check itself can fail: a forbidden edge added to the real graph is caught.
#[test]
fn a_forbidden_dependency_is_caught() {
    let (mut deps, members) = graph();
    deps.get_mut("sweep-trainer").unwrap().insert("sqlx".into());
    deps.get_mut("sweep-cli").unwrap().insert("sweep-trainer".into());
    let bad = layering_violations(&deps, &members);
    assert!(bad.contains(&"sweep-trainer reaches sqlx, which it must never".to_string()), "{bad:?}");
    assert!(bad.contains(&"sweep-cli depends on sweep-trainer, which it may not".to_string()), "{bad:?}");
}

/// Source files (not tests, benches or build output) have at most 500 lines before
/// their `#[cfg(test)]` module.
#[test]
fn no_source_file_is_over_500_lines_before_its_tests() {
    let mut long = Vec::new();
    let mut stack = vec![root().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                if !["target", "tests", "benches", ".git", "node_modules"].contains(&name.as_str())
                    && !name.starts_with('.')
                {
                    stack.push(p);
                }
            } else if name.ends_with(".rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                let lines: Vec<&str> = text.lines().collect();
                let cut = lines.iter().position(|l| l.trim() == "#[cfg(test)]").unwrap_or(lines.len());
                if cut > 500 {
                    long.push(format!(
                        "{} has {cut} lines before its tests",
                        p.strip_prefix(root()).unwrap().display()
                    ));
                }
            }
        }
    }
    long.sort();
    assert!(long.is_empty(), "{}", long.join("\n"));
}
