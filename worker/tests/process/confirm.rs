//! `sweep confirm`: the top configurations of a finished sweep re-run on fresh seeds as
//! a linked sweep, ranked again by `sweep best`.

use std::collections::HashSet;
use std::time::Duration;

use sweep_testkit::procs::{Cluster, LEASE_MS};

const GRID: &str = "name: to-confirm\nreplicas: 2\nseed: 4\n\
    dataset: {kind: synthetic, labels: 20, features: 16, train_samples: 600, test_samples: 200, max_positives: 150}\n\
    model: {hidden: [16]}\ntrain: {epochs: 2, seed: 10}\n\
    parameters:\n  loss.focal_gamma: {values: [0, 1, 2]}\n";

fn json(out: std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn confirm_reruns_the_top_configurations_on_fresh_seeds() {
    let Some(c) = Cluster::new().await else { return };
    let _coord = c.coordinator_with(LEASE_MS, 500, &[]);
    let file = c.dir.path().join("grid.yaml");
    std::fs::write(&file, GRID).unwrap();
    let source =
        json(c.cli(&["submit", file.to_str().unwrap(), "-o", "json"]))["sweep_id"].as_str().unwrap().to_string();
    let _w = c.worker("w", &c.addr(), &[]);
    c.settled(Duration::from_secs(120)).await;
    let ranked = json(c.cli(&["best", &source, "-o", "json"]));
    let top2: Vec<serde_json::Value> =
        ranked["configurations"].as_array().unwrap().iter().take(2).map(|c| c["params"].clone()).collect();

    let confirm = json(c.cli(&["confirm", &source, "--top", "2", "--replicas", "3", "-o", "json"]));
    assert_eq!(confirm["confirms"], source.as_str());
    assert_eq!(confirm["trials"], 6, "2 configurations x 3 replicas");
    assert_eq!(confirm["configurations"].as_array().unwrap(), &top2, "the top two, in rank order");
    let fresh = confirm["seeds_from"].as_u64().unwrap();
    assert_eq!(fresh, 12, "above every seed the source used (train 10, 11)");
    let id = confirm["sweep_id"].as_str().unwrap().to_string();
    c.settled(Duration::from_secs(120)).await;

    let trials = json(c.cli(&["trials", &id, "-o", "json"]));
    let trials = trials["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 6);
    let mut seeds = HashSet::new();
    for t in trials {
        assert_eq!(t["state"], "succeeded", "{t}");
        let p = &t["params"];
        let seed = p["train.seed"].as_u64().unwrap();
        assert!((fresh..fresh + 3).contains(&seed), "{p}");
        seeds.insert(seed);
        let mut config = p.clone();
        let o = config.as_object_mut().unwrap();
        o.remove("train.seed");
        o.remove("dataset.split_seed");
        assert!(top2.contains(&config), "{config} is one of the top two");
    }
    assert_eq!(seeds.len(), 3);
    let best = json(c.cli(&["best", &id, "-o", "json"]));
    assert_eq!(best["n"], 3, "{best}");
    let status = json(c.cli(&["status", &id, "-o", "json"]));
    assert!(status.to_string().contains("to-confirm-confirm-"), "{status}");

    // The source's `sweep best` now says how its winner held up: the score it was
    // selected on against its mean on the fresh seeds, computed here from the trials.
    let again = json(c.cli(&["best", &source, "-o", "json"]));
    let held = &again["confirmation"];
    assert_eq!(held["sweep_id"], id.as_str(), "{again}");
    assert_eq!(held["selected"].as_f64().unwrap(), ranked["mean"].as_f64().unwrap());
    let winner = &top2[0];
    let fresh: Vec<f64> = trials
        .iter()
        .filter(|t| {
            let mut p = t["params"].clone();
            let o = p.as_object_mut().unwrap();
            o.remove("train.seed");
            o.remove("dataset.split_seed");
            &p == winner
        })
        .map(|t| t["metrics"]["val.f1_micro"].as_f64().unwrap())
        .collect();
    let mean = fresh.iter().sum::<f64>() / fresh.len() as f64;
    assert_eq!((held["fresh_n"].as_u64().unwrap(), fresh.len()), (3, 3));
    assert!((held["fresh_mean"].as_f64().unwrap() - mean).abs() < 1e-12, "{held} against {mean}");
    let gap = held["gap"].as_f64().unwrap();
    assert!((gap - (ranked["mean"].as_f64().unwrap() - mean)).abs() < 1e-12, "{held}");
    let table = c.cli(&["best", &source]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("winner's curse: the search selected it at val.f1_micro = "), "{text}");
}
