//! `sweep-worker run --fuse 9`: a 3x3 grid (focal gamma x seed) leased as one group and
//! trained as one stacked model gives every trial the metrics a worker without fusing
//! gives it (within 1e-4), each trial reporting its own epochs and result.

use std::collections::BTreeMap;
use std::time::Duration;

use sweep_testkit::procs::{Cluster, LEASE_MS};

const GRID: &str = "name: NAME\nseed: 4\n\
    dataset: {kind: synthetic, labels: 20, features: 16, train_samples: 600, test_samples: 200, max_positives: 150}\n\
    model: {hidden: [32], dropout: 0.2}\ntrain: {epochs: 3, patience: 0}\n\
    parameters:\n  loss.focal_gamma: {values: [0, 1, 3]}\n  train.seed: {values: [1, 2, 3]}\n";

fn json(out: std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Each succeeded trial's metrics, by its parameters.
fn by_params(c: &Cluster, sweep: &str) -> BTreeMap<String, serde_json::Value> {
    let trials = json(c.cli(&["trials", sweep, "-o", "json"]));
    let trials = trials["trials"].as_array().unwrap().clone();
    assert_eq!(trials.len(), 9);
    trials
        .into_iter()
        .map(|t| {
            assert_eq!(t["state"], "succeeded", "{t}");
            (t["params"].to_string(), t["metrics"].clone())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fused_worker_gives_every_trial_the_metrics_it_gets_alone() {
    let Some(c) = Cluster::new().await else { return };
    let _coord = c.coordinator_with(LEASE_MS, 500, &[]);
    let submit = |name: &str| {
        let file = c.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, GRID.replace("NAME", name)).unwrap();
        json(c.cli(&["submit", file.to_str().unwrap(), "-o", "json"]))["sweep_id"].as_str().unwrap().to_string()
    };
    let fused_sweep = submit("fused");
    let fused_worker = c.worker("fused", &c.addr(), &["--fuse", "9"]);
    c.settled(Duration::from_secs(120)).await;
    drop(fused_worker);
    let plain_sweep = submit("plain");
    let _plain_worker = c.worker("plain", &c.addr(), &[]);
    c.settled(Duration::from_secs(120)).await;

    let fused = by_params(&c, &fused_sweep);
    let plain = by_params(&c, &plain_sweep);
    assert_eq!(fused.keys().collect::<Vec<_>>(), plain.keys().collect::<Vec<_>>());
    let mut f1s = Vec::new();
    for (params, f) in &fused {
        let p = &plain[params];
        assert_eq!(f["stack_size"], 9.0, "{params}: trained in one stack of nine");
        assert_eq!(p["stack_size"], 1.0, "{params}: trained alone");
        assert_eq!(f["best_epoch"], p["best_epoch"], "{params}");
        for key in ["val.f1_micro", "val.loss", "test.f1_micro", "test.f1_macro", "test.f1_micro_tuned", "train.loss"] {
            let (a, b) = (f[key].as_f64().unwrap(), p[key].as_f64().unwrap());
            assert!((a - b).abs() <= 1e-4, "{params}: {key} fused {a} vs alone {b}");
        }
        f1s.push(f["test.f1_micro"].as_f64().unwrap());
    }
    f1s.dedup();
    assert!(f1s.len() > 1, "the nine trials differ: {f1s:?}");
}
