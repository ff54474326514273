//! End to end with separate processes: a coordinator, two workers and the CLI run the
//! seed grid (small sizes) to 9 succeeded trials, and `sweep best` names the trial
//! with the highest objective.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn bin(name: &str) -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_sweep-worker")).with_file_name(name)
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn");
    assert!(out.status.success(), "{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn wait_for_file(path: &Path, within: Duration) -> String {
    let start = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if !s.is_empty() {
                return s;
            }
        }
        assert!(start.elapsed() < within, "{} did not appear", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The seed grid with sizes that train in a second or two on a CPU.
fn small_seed_grid(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/seed-grid.yaml")).unwrap();
    let mut v: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    v["name"] = "seed-grid-e2e".into();
    v["dataset"]["train_samples"] = 2000.into();
    v["dataset"]["test_samples"] = 500.into();
    v["dataset"]["features"] = 64.into();
    v["dataset"]["max_positives"] = 600.into();
    v["model"]["hidden"] = serde_norway::to_value(vec![64]).unwrap();
    v["train"]["epochs"] = 3.into();
    let p = dir.join("seed-grid-small.yaml");
    std::fs::write(&p, serde_norway::to_string(&v).unwrap()).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_run_the_seed_grid_end_to_end() {
    let Some(db) = sweep_coordinator::testing::fresh_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (token, join, port) = (dir.path().join("token"), dir.path().join("join"), dir.path().join("addr"));
    let coord = bin("sweep-coordinator");
    run(Command::new(&coord).args(["migrate", "--database-url", &db]));
    for (role, out) in [("admin", &token), ("join", &join)] {
        run(Command::new(&coord).args(["token", "create", "--role", role, "--database-url", &db, "--out"]).arg(out));
    }
    let mut procs = Procs(vec![]);
    procs.0.push(
        Command::new(&coord)
            .args(["serve", "--listen", "127.0.0.1:0", "--lease-ms", "5000", "--database-url", &db, "--port-file"])
            .arg(&port)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addr = format!("http://{}", wait_for_file(&port, Duration::from_secs(30)));
    for i in 0..2 {
        procs.0.push(
            Command::new(bin("sweep-worker"))
                .args([
                    "run",
                    "--device",
                    "cpu",
                    "--exit-when-idle-secs",
                    "2",
                    "--name",
                    &format!("w{i}"),
                    "--coordinator",
                    &addr,
                ])
                .env("SWEEP_JOIN_TOKEN_FILE", &join)
                .env("RUST_LOG", "warn")
                .spawn()
                .unwrap(),
        );
    }
    let sweep = |args: &[&str]| {
        let out =
            run(Command::new(bin("sweep")).args(args).args(["--coordinator", &addr]).env("SWEEP_TOKEN_FILE", &token));
        String::from_utf8(out.stdout).unwrap()
    };
    let spec = small_seed_grid(dir.path());
    let submitted: serde_json::Value =
        serde_json::from_str(&sweep(&["submit", spec.to_str().unwrap(), "-o", "json"])).unwrap();
    let id = submitted["sweep_id"].as_str().unwrap().to_string();
    // The same stream through a pseudo-terminal (redrawn in place) and through a pipe
    // (plain lines); both return when the sweep has finished.
    let pty = Command::new("script")
        .args(["-qec", &format!("{} watch {id} --coordinator {addr}", bin("sweep").display()), "/dev/null"])
        .env("SWEEP_TOKEN_FILE", &token)
        .env("TERM", "xterm-256color")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let watched = sweep(&["watch", &id]);
    assert!(watched.contains("progress 9/9"), "{watched}");
    assert!(!watched.contains('\u{1b}'), "no escape codes into a pipe");
    let pty = pty.wait_with_output().unwrap();
    let screen = String::from_utf8_lossy(&pty.stdout);
    assert!(pty.status.success(), "{screen}");
    assert!(screen.contains("\u{1b}["), "a terminal gets in-place redraws: {screen:?}");
    assert!(screen.contains("9/9 trials") && screen.contains("top by val.f1_micro"), "{screen:?}");

    let trials: serde_json::Value = serde_json::from_str(&sweep(&["trials", &id, "-o", "json"])).unwrap();
    let trials = trials["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 9);
    let mut best = (String::new(), f64::MIN);
    for t in trials {
        assert_eq!(t["state"], "succeeded", "{t}");
        let m = &t["metrics"];
        for k in ["val.f1_micro", "test.f1_micro", "test.f1_macro", "test.f1_micro_tuned"] {
            assert!(m[k].as_f64().is_some_and(|v| (0.0..=1.0).contains(&v)), "{k} in {m}");
        }
        let obj = m["val.f1_micro"].as_f64().unwrap();
        if obj > best.1 {
            best = (t["trial_id"].as_str().unwrap().to_string(), obj);
        }
    }
    let b: serde_json::Value = serde_json::from_str(&sweep(&["best", &id, "-o", "json"])).unwrap();
    assert_eq!(b["trial_id"].as_str().unwrap(), best.0);
    assert_eq!(b["config"]["dataset"]["labels"], 698);
    // Both workers took part, and both exit on their own once the queue is empty.
    let workers: serde_json::Value = serde_json::from_str(&sweep(&["workers", "-o", "json"])).unwrap();
    assert_eq!(workers["workers"].as_array().unwrap().len(), 2);
    let used: std::collections::HashSet<&str> = trials.iter().filter_map(|t| t["worker"].as_str()).collect();
    assert_eq!(used.len(), 2, "both workers trained trials: {used:?}");
    for w in procs.0.iter_mut().skip(1) {
        let start = Instant::now();
        while w.try_wait().unwrap().is_none() {
            assert!(start.elapsed() < Duration::from_secs(30), "worker did not exit when idle");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
