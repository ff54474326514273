//! End to end with separate processes: a coordinator, two workers and the CLI run the
//! seed grid (small sizes) to 9 succeeded trials, and `sweep best` names the trial
//! with the highest objective.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sweep_testkit::procs::{bin, Cluster};

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
    let Some(cluster) = Cluster::new().await else { return };
    let _coordinator = cluster.coordinator();
    let addr = cluster.addr();
    let mut procs: Vec<_> =
        (0..2).map(|i| cluster.worker(&format!("w{i}"), &addr, &["--exit-when-idle-secs", "2"])).collect();
    let sweep = |args: &[&str]| {
        let out = cluster.cli(args);
        assert!(out.status.success(), "sweep {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let (dir, token) = (cluster.dir.path(), &cluster.token);
    let spec = small_seed_grid(dir);
    let submitted: serde_json::Value =
        serde_json::from_str(&sweep(&["submit", spec.to_str().unwrap(), "-o", "json"])).unwrap();
    let id = submitted["sweep_id"].as_str().unwrap().to_string();
    // The same stream through a pseudo-terminal (redrawn in place) and through a pipe
    // (plain lines); both return when the sweep has finished.
    let pty = Command::new("script")
        .args(["-qec", &format!("{} watch {id} --coordinator {addr}", bin("sweep").display()), "/dev/null"])
        .env("SWEEP_TOKEN_FILE", token)
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
    for w in &mut procs {
        assert!(w.wait_exit(Duration::from_secs(30)), "worker did not exit when idle");
    }
}

/// `replicas: 3` on bibtex: every configuration gets three succeeded trials with their
/// own seeds, and `sweep best -o json` ranks configurations by mean with a 95% interval,
/// n, and a paired test of the winner against the runner-up.
#[tokio::test(flavor = "multi_thread")]
async fn replicas_rank_configurations_with_intervals_and_a_paired_test() {
    let (Some(_), Some(c)) = (sweep_testkit::mulan_dir("bibtex"), Cluster::new().await) else { return };
    let _coordinator = c.coordinator();
    let _workers: Vec<_> = (0..2).map(|i| c.worker(&format!("w{i}"), &c.addr(), &["--threads", "1"])).collect();
    let spec = c.dir.path().join("replicas.yaml");
    std::fs::write(
        &spec,
        "name: replicas\nreplicas: 3\ndataset: {kind: mulan, name: bibtex}\nmodel: {hidden: [64], dropout: 0.0}\n\
         train: {epochs: 2, patience: 0}\nparameters:\n  loss.focal_gamma: {values: [0, 3]}\n",
    )
    .unwrap();
    let out = c.cli(&["submit", spec.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    c.settled(Duration::from_secs(240)).await;
    let json = |args: &[&str]| -> serde_json::Value {
        let out = c.cli(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let trials = json(&["trials", &id, "-o", "json"]);
    let trials = trials["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 6);
    assert!(trials.iter().all(|t| t["state"] == "succeeded"), "{trials:?}");
    let mut by_gamma: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for t in trials {
        let gamma = t["params"]["loss.focal_gamma"].to_string();
        by_gamma.entry(gamma).or_default().push(t["metrics"]["val.f1_micro"].as_f64().unwrap());
    }
    assert!(by_gamma.values().all(|v| v.len() == 3), "{by_gamma:?}");
    // The same ranking by configuration in `trials --by-config` and the report.
    let configs = json(&["trials", &id, "--by-config", "-o", "json"]);
    let configs = configs["configurations"].as_array().unwrap();
    assert_eq!(configs.len(), 2, "{configs:?}");
    assert!(configs.iter().all(|c| c["n"] == 3), "{configs:?}");
    assert!(configs[0]["mean"].as_f64() >= configs[1]["mean"].as_f64(), "best mean first");
    let report = c.dir.path().join("replicas.html");
    let out = c.cli(&["report", &id, "--out", report.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("<table id=\"configurations\">"), "the report ranks configurations");
    let best = json(&["best", &id, "-o", "json"]);
    let winner = best["params"]["loss.focal_gamma"].to_string();
    let mean = by_gamma[&winner].iter().sum::<f64>() / 3.0;
    assert!((best["mean"].as_f64().unwrap() - mean).abs() < 1e-12, "{best}");
    assert_eq!(best["n"], 3);
    assert!(best["ci95"].as_f64().is_some_and(|h| h >= 0.0), "{best}");
    assert!(best["p_value"].as_f64().is_some_and(|p| (0.0..=1.0).contains(&p)), "{best}");
    assert!(best["significant"].is_boolean() && best["verdict"].is_string(), "{best}");
    assert_eq!(best["runner_up"]["n"], 3);
    assert!(best["mean"].as_f64() >= best["runner_up"]["mean"].as_f64(), "the winner has the higher mean");
}

/// ASHA on a random search: trials below the top third at a rung end `pruned` with the
/// metrics they reached, and the search spends fewer epochs than the same search without
/// early stopping (with patience 0 that is run_cap x epochs).
#[tokio::test(flavor = "multi_thread")]
async fn asha_prunes_trials_and_spends_fewer_epochs() {
    let Some(c) = Cluster::new().await else { return };
    let _coordinator = c.coordinator();
    let _workers: Vec<_> = (0..2).map(|i| c.worker(&format!("w{i}"), &c.addr(), &["--threads", "1"])).collect();
    let spec = c.dir.path().join("asha.yaml");
    std::fs::write(
        &spec,
        "name: asha\nmethod: random\nrun_cap: 9\nseed: 4\n\
         dataset: {kind: synthetic, labels: 60, features: 32, train_samples: 1500, test_samples: 300, max_positives: 400}\n\
         model: {hidden: [32], dropout: 0.0}\ntrain: {epochs: 9, patience: 0}\n\
         early_stop: {type: asha, min_epochs: 1, reduction_factor: 3}\n\
         parameters:\n  train.lr: {min: 0.00001, max: 0.1, distribution: log_uniform}\n",
    )
    .unwrap();
    let out = c.cli(&["submit", spec.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    c.settled(Duration::from_secs(180)).await;
    c.check_invariants().await;
    let rows: Vec<(String, i32, bool)> = sqlx::query_as(
        "SELECT t.state, (SELECT max(e.epoch) FROM trial_epochs e WHERE e.trial_id = t.id AND e.attempt = t.attempt),
                t.metrics IS NOT NULL
         FROM trials t",
    )
    .fetch_all(&c.db)
    .await
    .unwrap();
    eprintln!("(state, epochs run, has metrics) per trial: {rows:?}");
    assert_eq!(rows.len(), 9);
    let pruned = rows.iter().filter(|(s, _, _)| s == "pruned").count();
    assert!(pruned >= 3, "ASHA at rungs 1 and 3 with eta 3 prunes: {rows:?}");
    assert!(rows.iter().all(|(s, _, m)| (s == "succeeded" || s == "pruned") && *m), "{rows:?}");
    assert!(rows.iter().filter(|(s, _, _)| s == "pruned").all(|(_, e, _)| *e < 9), "{rows:?}");
    let spent: i32 = rows.iter().map(|(_, e, _)| e).sum();
    assert!(spent < 9 * 9, "ASHA spent {spent} epochs, the search without it 81");
    let out = c.cli(&["status", "-o", "json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["sweeps"][0]["counts"]["pruned"], pruned, "{status}");
}
