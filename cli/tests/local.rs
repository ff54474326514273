//! `sweep local` end to end (private Postgres, coordinator, workers as processes), the
//! HTML report rendered by headless Chromium, and no processes left behind.

use std::path::{Path, PathBuf};
use std::process::Command;

use sweep_testkit::procs::{bin, processes_mentioning};
use sweep_testkit::skip;

/// Whether the binaries `sweep local` starts were built beside `sweep`.
fn binaries_built() -> bool {
    let missing: Vec<&str> = ["sweep-coordinator", "sweep-worker"].into_iter().filter(|b| !bin(b).exists()).collect();
    missing.is_empty()
        || skip::<()>(format!("{missing:?} not built beside sweep (cargo test --workspace builds them)")).is_some()
}

const GRID: &str = "
dataset: {kind: synthetic, labels: 60, features: 32, train_samples: 1500, test_samples: 300, max_positives: 400}
model: {hidden: [32]}
train: {epochs: 4}
parameters:
  loss.class_weight.cap: {values: [6, 8]}
  loss.focal_gamma: {values: [0, 3]}
";

#[test]
fn sweep_local_runs_reports_and_leaves_nothing_running() {
    if !binaries_built() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let report = dir.path().join("report.html");
    let run_body = |name: &str, head: &str, body: &str, report: Option<&Path>| {
        let spec = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&spec, format!("name: {name}\n{head}{body}")).unwrap();
        let mut cmd = Command::new(bin("sweep"));
        cmd.args(["local", spec.to_str().unwrap(), "--workers", "2", "--device", "cpu", "--data-dir"]).arg(&data);
        if let Some(r) = report {
            cmd.arg("--report").arg(r);
        }
        let out = cmd.output().unwrap();
        let (stdout, stderr) =
            (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
        assert!(out.status.success(), "sweep local failed:\n{stderr}");
        (stdout, stderr)
    };
    let run = |name: &str, head: &str, report: Option<&Path>| run_body(name, head, GRID, report);
    let (first, _) = run("local-one", "", Some(&report));
    assert!(first.contains("leaderboard of local-one (succeeded 4)"), "{first}");
    assert!(first.contains("# a sweep file that re-runs this configuration:"), "{first}");
    let data_s = data.canonicalize().unwrap().to_string_lossy().into_owned();
    let pg_dir = std::fs::read_to_string(data.join("postgres-location"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| format!("{data_s}/pg"));
    assert!(processes_mentioning(&data_s).is_empty(), "left running: {:?}", processes_mentioning(&data_s));
    assert!(processes_mentioning(&pg_dir).is_empty(), "postgres left running: {:?}", processes_mentioning(&pg_dir));

    // A second run on the same data directory shows the first sweep; with replicas, the
    // winner is the best configuration by mean, with its interval.
    let (second, _) = run("local-two", "replicas: 2\n", None);
    assert!(second.contains("local-one") && second.contains("local-two"), "{second}");
    assert!(second.contains("best configuration of local-two: mean val.f1_micro = "), "{second}");
    assert!(second.contains("(95% CI) over 2 replicas") && second.contains("its best replica: trial "), "{second}");
    assert!(processes_mentioning(&data_s).is_empty());
    assert!(processes_mentioning(&pg_dir).is_empty());

    // Two objectives, a constraint, 3-fold stratified cross-validation: the Pareto front
    // comes first, configurations are ranked by their mean over folds.
    let head =
        "metrics:\n  - {name: val.f1_micro}\n  - {name: val.f1_macro_tuned}\nconstraints: ['val.f1_micro >= 0.01']\n";
    let body = GRID.replace("max_positives: 400}", "max_positives: 400, cv: {folds: 3}}");
    let report3 = dir.path().join("report3.html");
    let (third, _) = run_body("local-three", head, &body, Some(&report3));
    assert!(third.contains("leaderboard of local-three (succeeded 12)"), "{third}");
    assert!(third.contains(" over 3 runs (3-fold cross-validation)  ["), "{third}");
    assert!(third.contains("# cross-validated: the file below trains the deliverable"), "{third}");
    assert!(third.contains("Pareto front over val.f1_micro and val.f1_macro_tuned ("), "{third}");
    let html3 = std::fs::read_to_string(&report3).unwrap();
    assert!(html3.contains("<h2>Pareto front</h2>") && html3.contains("id=\"pareto\""), "the report's front");
    assert!(processes_mentioning(&data_s).is_empty());

    // The file `sweep best` printed for the cross-validated winner, run as it is: one
    // refit trial (its folds, thresholds on their out-of-fold predictions, one model).
    let deliverable: Vec<&str> = third
        .split("# a sweep file that re-runs this configuration:\n")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| !l.starts_with("name:"))
        .collect();
    let deliverable = deliverable.join("\n") + "\n";
    assert!(deliverable.contains("refit: true"), "{deliverable}");
    let (fourth, _) = run_body("local-four", "", &deliverable, None);
    assert!(fourth.contains("leaderboard of local-four (succeeded 1)"), "{fourth}");
    assert!(fourth.contains("# a refit trial: val.* are its folds' out-of-fold predictions"), "{fourth}");
    assert!(processes_mentioning(&data_s).is_empty());

    render_in_chromium(&report, 4);
    if pg_dir.starts_with("/var/lib/sweep/") {
        let _ = std::fs::remove_dir_all(&pg_dir);
    }
}

/// Opens the report in headless Chromium: no console errors, one chart per trial, the
/// heatmap present; keeps a PNG screenshot under target/test-artifacts.
fn render_in_chromium(report: &Path, trials: usize) {
    let Some(chromium) = which("chromium").or_else(|| skip("chromium is not installed (scripts/setup.sh installs it)"))
    else {
        return;
    };
    let html = std::fs::read_to_string(report).unwrap();
    for fetch in ["src=", "href=\"http", "@import", "url(http", "<script"] {
        assert!(!html.contains(fetch), "the report must be self-contained, found `{fetch}`");
    }
    let profile = tempfile::tempdir().unwrap();
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let png = artifacts.join("report.png");
    let url = format!("file://{}", report.display());
    let base = |extra: &[&str]| {
        let mut c = Command::new(&chromium);
        c.args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])
            .args(["--disable-component-update", "--disable-sync", "--enable-logging=stderr", "--v=0"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url);
        c
    };
    let dom = base(&["--dump-dom"]).output().unwrap();
    assert!(dom.status.success(), "{}", String::from_utf8_lossy(&dom.stderr));
    let dom_s = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(dom_s.matches("class=\"chart trial-chart\"").count(), trials, "one chart per trial");
    assert!(dom_s.contains("id=\"heatmap\""), "heatmap present");
    assert!(dom_s.contains("id=\"leaderboard\""));
    assert!(dom_s.contains("id=\"val-test\""), "selection score against test, per trial");
    let stderr = String::from_utf8_lossy(&dom.stderr);
    let console_errors: Vec<&str> =
        stderr.lines().filter(|l| l.contains("CONSOLE") && (l.contains("ERROR") || l.contains("Uncaught"))).collect();
    assert!(console_errors.is_empty(), "console errors: {console_errors:?}");
    let shot = base(&[&format!("--screenshot={}", png.display()), "--window-size=1280,2200", "--hide-scrollbars"])
        .output()
        .unwrap();
    assert!(shot.status.success(), "{}", String::from_utf8_lossy(&shot.stderr));
    let meta = std::fs::metadata(&png).expect("screenshot written");
    assert!(meta.len() > 10_000, "screenshot is {} bytes", meta.len());
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var("PATH").unwrap_or_default().split(':').map(|d| Path::new(d).join(name)).find(|p| p.exists())
}

/// Ctrl-C mid-sweep: the CLI stops workers, coordinator and Postgres in order and exits;
/// nothing is left running and nothing is lost (a later run shows the sweep).
#[test]
fn ctrl_c_stops_everything_and_loses_nothing() {
    use std::io::{BufRead, BufReader};
    if !binaries_built() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let spec = dir.path().join("long.yaml");
    // Long enough that Ctrl-C lands while a trial runs; short enough that the next run
    // (which finishes the interrupted trials first, in queue order) stays quick.
    std::fs::write(&spec, format!("name: interrupted\n{}", GRID.replace("epochs: 4", "epochs: 150"))).unwrap();
    let mut child = Command::new(bin("sweep"))
        .args(["local", spec.to_str().unwrap(), "--workers", "1", "--device", "cpu", "--data-dir"])
        .arg(&data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Plain watch lines (stdout is a pipe): wait until a trial has reported an epoch.
    loop {
        let line = lines.next().expect("watch output ended early").unwrap();
        if line.contains(" leased epoch ") && !line.contains(" leased epoch 0 ") {
            break;
        }
    }
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let status = child.wait().unwrap();
    assert!(status.success(), "sweep local exits cleanly on Ctrl-C: {status}");
    let data_s = data.canonicalize().unwrap().to_string_lossy().into_owned();
    let pg_dir = std::fs::read_to_string(data.join("postgres-location"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| format!("{data_s}/pg"));
    assert!(processes_mentioning(&data_s).is_empty(), "left running: {:?}", processes_mentioning(&data_s));
    assert!(processes_mentioning(&pg_dir).is_empty(), "postgres left running");
    // The interrupted sweep is still there, its trials queued again (none lost).
    let again = dir.path().join("tiny.yaml");
    std::fs::write(&again, format!("name: after\n{GRID}")).unwrap();
    let out = Command::new(bin("sweep"))
        .args(["local", again.to_str().unwrap(), "--workers", "1", "--device", "cpu", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("interrupted"), "{stdout}");
    if pg_dir.starts_with("/var/lib/sweep/") {
        let _ = std::fs::remove_dir_all(&pg_dir);
    }
}
