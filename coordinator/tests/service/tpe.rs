//! TPE sweeps through the real API: the coordinator starts with random draws, proposes
//! the rest as results arrive (ask/tell) up to `run_cap`, never repeats a
//! configuration, proposes the same sequence for the same seed and results, and
//! concentrates where the results are good.

use sweep_proto as pb;

const TPE: &str = "
name: tpe
method: tpe
run_cap: 30
seed: 7
metric: {name: val.f1_micro, goal: maximize}
dataset: {kind: synthetic, labels: 20, features: 16, train_samples: 200, test_samples: 50, max_positives: 50}
train: {epochs: 2}
parameters:
  train.lr: {min: 0.00001, max: 0.1, distribution: log_uniform}
  model.dropout: {min: 0.0, max: 0.5}
  loss.focal_gamma: {values: [0, 1, 2, 3]}
";

/// A made-up objective with its peak at lr = 3e-3, dropout = 0.1, gamma = 2.
fn objective(params: &serde_json::Value) -> f64 {
    let lr = params["train.lr"].as_f64().unwrap();
    let dropout = params["model.dropout"].as_f64().unwrap();
    let gamma = params["loss.focal_gamma"].as_f64().unwrap();
    0.9 - 0.02 * (lr.ln() - 3e-3f64.ln()).powi(2) - 0.5 * (dropout - 0.1).powi(2) - 0.05 * (gamma - 2.0).abs()
}

/// Runs the sweep one trial at a time; returns the params in the order they ran.
async fn run_sequentially(app: &sweep_testkit::app::TestApp) -> Vec<serde_json::Value> {
    run_reporting(app, TPE, |p| vec![("val.f1_micro", objective(p))]).await
}

/// Runs `yaml` one trial at a time, each reporting `metrics` of its params.
async fn run_reporting(
    app: &sweep_testkit::app::TestApp,
    yaml: &str,
    metrics: impl Fn(&serde_json::Value) -> Vec<(&'static str, f64)>,
) -> Vec<serde_json::Value> {
    let submitted = app.submit(yaml).await;
    assert_eq!(submitted.trials_total, 10, "TPE starts with 10 random draws");
    let w = app.worker("w").await;
    let mut ran = Vec::new();
    loop {
        let leased = app.lease(&w, 1).await;
        let Some(t) = leased.first() else { break };
        let params: serde_json::Value = serde_json::from_str(&t.params_json).unwrap();
        app.complete_with(&w, t, &metrics(&params)).await.unwrap();
        ran.push(params);
    }
    ran
}

#[tokio::test]
async fn tpe_proposes_up_to_run_cap_without_repeats_reproducibly_and_finds_the_peak() {
    let Some(a) = sweep_testkit::app::spawn().await else { return };
    let ran = run_sequentially(&a).await;
    assert_eq!(ran.len(), 30, "run_cap trials, then no more");
    let (hashes,): (i64,) =
        sqlx::query_as("SELECT count(DISTINCT params_hash) FROM trials").fetch_one(&a.db).await.unwrap();
    assert_eq!(hashes, 30, "no configuration twice");
    for p in &ran {
        let lr = p["train.lr"].as_f64().unwrap();
        assert!((1e-5..=0.1).contains(&lr), "{p}");
        assert!([0, 1, 2, 3].contains(&p["loss.focal_gamma"].as_i64().unwrap()), "{p}");
    }
    // Proposals (after the random start) do better than the random start.
    let best = |ps: &[serde_json::Value]| ps.iter().map(objective).fold(f64::MIN, f64::max);
    let mean = |ps: &[serde_json::Value]| ps.iter().map(objective).sum::<f64>() / ps.len() as f64;
    assert!(mean(&ran[10..]) > mean(&ran[..10]), "proposals {} vs random {}", mean(&ran[10..]), mean(&ran[..10]));
    assert!(best(&ran) > 0.85, "best {}", best(&ran));

    // The same seed and the same results: the same proposals, in the same order.
    let Some(b) = sweep_testkit::app::spawn().await else { return };
    assert_eq!(run_sequentially(&b).await, ran);

    // The sweep reads as finished once run_cap trials have ended.
    let sweeps = a.client().list_sweeps(sweep_testkit::app::with_token(&a.admin, pb::ListSweepsRequest {})).await;
    let s = &sweeps.unwrap().into_inner().sweeps[0];
    assert_eq!((s.state(), s.total), (pb::SweepState::Finished, 30));
}

/// Constrained TPE: where the objective peaks (gamma 2) the trials miss the constraint
/// (`val.f1_macro >= 0.5`), so they rank below every feasible trial and the proposals
/// move away from them; unconstrained, the proposals go to the peak.
#[tokio::test]
async fn constrained_tpe_ranks_infeasible_trials_last_and_proposes_elsewhere() {
    let Some(free) = sweep_testkit::app::spawn().await else { return };
    let unconstrained = run_sequentially(&free).await;
    let Some(app) = sweep_testkit::app::spawn().await else { return };
    let yaml = format!("{TPE}constraints: ['val.f1_macro >= 0.5']\n");
    let ran = run_reporting(&app, &yaml, |p| {
        let feasible = p["loss.focal_gamma"].as_i64() != Some(2);
        vec![("val.f1_micro", objective(p)), ("val.f1_macro", if feasible { 0.6 } else { 0.4 })]
    })
    .await;
    assert_eq!(ran.len(), 30);
    let at_peak = |ps: &[serde_json::Value]| ps.iter().filter(|p| p["loss.focal_gamma"].as_i64() == Some(2)).count();
    let (with, without) = (at_peak(&ran[10..]), at_peak(&unconstrained[10..]));
    eprintln!("proposals at the infeasible peak (gamma 2): {with} of 20 constrained, {without} of 20 unconstrained");
    assert!(with < without, "constrained {with}, unconstrained {without}");
    assert!(with <= 4, "{with} of 20 proposals where every trial has missed the constraint");
}
