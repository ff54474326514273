//! Budgets, end to end with the local provider at 3,600 USD an hour (a dollar a
//! second): a sweep's budget and a fleet's stop the spend before it passes them (at most
//! one reconcile pass of the rate over), lose nothing (running trials are handed back
//! with a checkpoint and go on from it), and a raise resumes the work.

use super::*;

/// Reconcile passes in these tests: the overshoot bound is one of them at the rate.
const PASS_MS: u32 = 300;

/// A sweep of `trials` trials of a few seconds each on one slot.
fn slow_sweep(name: &str, trials: usize, budget: Option<f64>) -> String {
    sweep_of_epochs(name, trials, budget, 150)
}

/// `trials` trials of `epochs` epochs each (150: about 3.5 s on an idle machine).
fn sweep_of_epochs(name: &str, trials: usize, budget: Option<f64>, epochs: u32) -> String {
    let seeds: Vec<usize> = (0..trials).collect();
    let budget = budget.map(|b| format!("budget: {{max_cost_usd: {b}}}\n")).unwrap_or_default();
    format!(
        "name: {name}\n{budget}\
         dataset: {{kind: synthetic, labels: 30, features: 16, train_samples: 4000, test_samples: 200, max_positives: 200}}\n\
         model: {{hidden: [32]}}\ntrain: {{epochs: {epochs}, patience: 0}}\n\
         parameters:\n  train.seed: {{values: {seeds:?}}}\n"
    )
}

/// (state, cost, budget) of a sweep as `sweep status -o json` shows it.
fn sweep_status(c: &Cluster, sweep: &str) -> (String, f64, f64) {
    let s: serde_json::Value = serde_json::from_str(&ok(c.cli(&["status", sweep, "-o", "json"]))).unwrap();
    let s = &s["sweeps"][0];
    (
        s["state"].as_str().unwrap().to_string(),
        s["cost_usd"].as_f64().unwrap(),
        s["max_cost_usd"].as_f64().unwrap_or(0.0),
    )
}

/// The first line of `sweep watch SWEEP` (no terminal: plain lines) containing `needle`;
/// the watch is stopped then.
fn watch_line(c: &Cluster, sweep: &str, needle: &str) -> String {
    use std::io::BufRead;
    let mut child = std::process::Command::new(bin("sweep"))
        .args(["watch", sweep, "--coordinator", &c.addr()])
        .env("SWEEP_TOKEN_FILE", &c.token)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let needle = needle.to_string();
    std::thread::spawn(move || {
        let found = std::io::BufReader::new(out).lines().map_while(Result::ok).find(|l| l.contains(&needle));
        let _ = tx.send(found);
    });
    let found = rx.recv_timeout(Duration::from_secs(30));
    let _ = child.kill();
    let _ = child.wait();
    found.ok().flatten().expect("sweep watch said it")
}

/// Live instances of a fleet.
async fn live_instances(c: &Cluster, fleet: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM instances WHERE fleet_id = $1::uuid AND state <> 'terminated'")
        .bind(fleet)
        .fetch_one(&c.db)
        .await
        .unwrap()
}

/// Trials handed back (checkpointed) and nothing lost: (handed back, lost, errors).
async fn hand_backs(c: &Cluster, sweep: &str) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM trial_attempts a JOIN trials t ON t.id = a.trial_id
                 WHERE t.sweep_id = $1::uuid AND a.outcome = 'released'),
                coalesce(sum(lost_count), 0)::bigint, coalesce(sum(error_count), 0)::bigint
         FROM trials WHERE sweep_id = $1::uuid",
    )
    .bind(sweep)
    .fetch_one(&c.db)
    .await
    .unwrap()
}

/// After a raise: every trial succeeds, and each one handed back went on from its
/// checkpoint (its next attempt's first epoch is the checkpoint's + 1).
async fn finished_from_checkpoints(c: &Cluster, sweep: &str) {
    c.wait_for(
        "the sweep to finish after the raise",
        Duration::from_secs(180),
        &format!("SELECT bool_and(state = 'succeeded') FROM trials WHERE sweep_id = '{sweep}'::uuid"),
    )
    .await;
    let resumed: Vec<(i32, i32, Option<i32>)> = sqlx::query_as(
        "SELECT a.attempt, (SELECT min(e.epoch) FROM trial_epochs e WHERE e.trial_id = a.trial_id AND e.attempt = a.attempt + 1),
                (SELECT max(e.epoch) FROM trial_epochs e WHERE e.trial_id = a.trial_id AND e.attempt = a.attempt)
         FROM trial_attempts a JOIN trials t ON t.id = a.trial_id
         WHERE t.sweep_id = $1::uuid AND a.outcome = 'released'",
    )
    .bind(sweep)
    .fetch_all(&c.db)
    .await
    .unwrap();
    assert!(!resumed.is_empty(), "a trial was handed back");
    for (attempt, next_first, reached) in resumed {
        let reached = reached.unwrap_or(0);
        assert!(
            next_first > 1 && next_first <= reached + 1,
            "attempt {attempt} reached epoch {reached}, the next began at {next_first}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn budgets_stop_the_spend_within_a_pass_lose_nothing_and_a_raise_resumes() {
    let _serial = SERIAL.lock().await;
    let c = need!(Cluster::new().await);
    let root = tempfile::tempdir().unwrap();
    let root_s = root.path().to_str().unwrap().to_string();
    let env = [("OMP_NUM_THREADS", "1".to_string())];
    let pass = PASS_MS.to_string();
    let _coord =
        c.coordinator_env(c.port, LEASE_MS, 500, &["--fleet-reconcile-ms", &pass, "--fleet-local-dir", &root_s], &env);
    let rate = 3600.0 / 3600.0; // USD per second of one instance (one slot)
    let bound = rate * f64::from(PASS_MS) / 1000.0;

    // A sweep's budget: 5 USD. Its cost is its attempts' time, and a budget runs out when
    // one lease and one pass more (3.3 s) would pass it: 1.7 s into the first trial, so that
    // trial is running and is handed back. Its trials are long (600 epochs, about 14 s on
    // an idle machine) so the hand-back has seconds to arrive even when passes run late on a
    // loaded machine. (At 12 USD the end fell at a random point of the third trial, which
    // could finish first; at 150 epochs, 3.5 s a trial, it failed once under the suite's load.)
    let file = c.dir.path().join("budget.yaml");
    std::fs::write(&file, sweep_of_epochs("sweep-budget", 3, Some(5.0), 600)).unwrap();
    // Submitted with a client token: its budget is then that token's to raise (below).
    let sweep = ok(as_client(&c, &["submit", file.to_str().unwrap()])).trim().to_string();
    let up = ["fleet", "up", "--provider", "local", "--count", "1", "--idle-minutes", "5", "--price-per-hour", "3600"];
    let fleet = ok(c.cli(&[&up[..], &["--sweep", &sweep]].concat())).trim().to_string();
    until("the sweep's budget to run out", Duration::from_secs(120), || async {
        sweep_status(&c, &sweep).0 == "budget_exhausted"
    })
    .await;
    c.wait_for(
        "its running trial to be handed back",
        Duration::from_secs(30),
        &format!("SELECT count(*) = 0 FROM trials WHERE sweep_id = '{sweep}'::uuid AND state = 'leased'"),
    )
    .await;
    until("the fleet to scale to zero", Duration::from_secs(30), || async { live_instances(&c, &fleet).await == 0 })
        .await;
    tokio::time::sleep(Duration::from_millis(3 * u64::from(PASS_MS))).await;
    let (state, spent, budget) = sweep_status(&c, &sweep);
    assert_eq!((state.as_str(), budget), ("budget_exhausted", 5.0));
    assert!(spent <= budget + bound, "the sweep spent {spent} USD of {budget}: more than one pass ({bound} USD) over");
    let (handed, lost, errors) = hand_backs(&c, &sweep).await;
    assert_eq!((lost, errors), (0, 0), "nothing lost, no error");
    assert!(handed >= 1, "the running trial was handed back");
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM trials WHERE sweep_id = $1::uuid AND state = 'queued'")
        .bind(&sweep)
        .fetch_one(&c.db)
        .await
        .unwrap();
    assert!(queued >= 1, "what was not done stays queued");
    let reason: String = sqlx::query_scalar("SELECT end_reason FROM instances WHERE fleet_id = $1::uuid LIMIT 1")
        .bind(&fleet)
        .fetch_one(&c.db)
        .await
        .unwrap();
    assert_eq!(reason, "its sweeps' budgets are spent");
    eprintln!("sweep budget 5 USD: spent {spent:.2} USD, {handed} trial(s) handed back, {queued} queued");
    // `sweep watch` keeps following a sweep whose budget is spent (a raise resumes it) and
    // says so, with the command that raises it.
    let said = watch_line(&c, &sweep, "budget spent");
    assert!(said.contains(&format!("budget spent ({spent:.2} of 5.00 USD)")), "{said}");
    assert!(said.contains(&format!("`sweep budget {sweep} USD` raises it")), "{said}");
    // Bad budgets: one line, nothing changed.
    for (arg, says) in [("-3", "-3 is out of range"), ("0", "0 is out of range"), ("abc", "`abc` is not a number")] {
        let err = fails(c.cli(&["budget", &sweep, arg]));
        assert!(err.contains(says), "{arg}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    // A raise resumes it: the fleet comes back, the handed-back trial goes on from its checkpoint.
    let raised = ok(as_client(&c, &["budget", &sweep, "1000"]));
    assert!(raised.contains("work goes on"), "{raised}");
    finished_from_checkpoints(&c, &sweep).await;
    ok(c.cli(&["fleet", "down", &fleet]));
    estimates(&c, &file).await;

    // A fleet's budget: 15 USD for an instance that would otherwise run a minute of work.
    std::fs::write(&file, slow_sweep("fleet-budget", 12, None)).unwrap();
    let sweep = ok(c.cli(&["submit", file.to_str().unwrap()])).trim().to_string();
    let fleet = ok(c.cli(&[&up[..], &["--sweep", &sweep, "--max-cost", "15"]].concat())).trim().to_string();
    c.wait_for(
        "the fleet's budget to run out and its instance to be terminated",
        Duration::from_secs(120),
        &format!(
            "SELECT f.budget_exhausted_at IS NOT NULL AND NOT EXISTS (
                 SELECT 1 FROM instances i WHERE i.fleet_id = f.id AND i.state <> 'terminated')
             FROM fleets f WHERE f.id = '{fleet}'::uuid"
        ),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(3 * u64::from(PASS_MS))).await;
    let status: serde_json::Value =
        serde_json::from_str(&ok(c.cli(&["fleet", "status", &fleet, "-o", "json"]))).unwrap();
    let cost = status["cost_usd"].as_f64().unwrap();
    assert!(status["budget_exhausted"].is_string(), "{status}");
    assert!(cost <= 15.0 + bound, "the fleet cost {cost} USD of 15: more than one pass ({bound} USD) over");
    let (handed, lost, errors) = hand_backs(&c, &sweep).await;
    assert_eq!((lost, errors), (0, 0), "nothing lost, no error");
    assert_eq!(status["instances"][0]["end_reason"], "the fleet's budget (15 USD) is spent");
    eprintln!("fleet budget 15 USD: cost {cost:.2} USD, {handed} trial(s) handed back");
    assert!(handed >= 1, "the running trial was handed back");
    // A fleet's budget is an admin's; a sweep's, its submitter's (a client token).
    let err = fails(as_client(&c, &["fleet", "budget", &fleet, "1000"]));
    assert!(err.contains("fleets need an admin token"), "{err}");
    let raised = ok(c.cli(&["fleet", "budget", &fleet, "1000"]));
    assert!(raised.contains("work goes on"), "{raised}");
    finished_from_checkpoints(&c, &sweep).await;
    ok(c.cli(&["fleet", "down", &fleet]));
}

/// `sweep submit --estimate` on the finished sweep's file grown by two cells: two trials
/// to run, at the mean time its succeeded attempts took, priced as asked; nothing stored.
async fn estimates(c: &Cluster, file: &std::path::Path) {
    std::fs::write(file, sweep_of_epochs("sweep-budget", 5, Some(12.0), 600)).unwrap();
    let f = file.to_str().unwrap();
    let e: serde_json::Value =
        serde_json::from_str(&ok(c.cli(&["submit", f, "--estimate", "--price-per-hour", "3600", "-o", "json"])))
            .unwrap();
    let mean: f64 = sqlx::query_scalar(
        "SELECT avg(extract(epoch FROM a.ended_at - a.started_at))::float8 / 60 FROM trial_attempts a
         JOIN trials t ON t.id = a.trial_id JOIN sweeps s ON s.id = t.sweep_id
         WHERE s.name = 'sweep-budget' AND a.outcome = 'succeeded'",
    )
    .fetch_one(&c.db)
    .await
    .unwrap();
    assert_eq!((e["trials"].as_u64(), e["trials_done"].as_u64()), (Some(2), Some(3)), "{e}");
    assert!((e["trial_minutes"].as_f64().unwrap() - mean).abs() < 1e-9, "{e} vs {mean}");
    let usd = 2.0 * mean / 60.0 * 3600.0;
    assert!((e["cost_usd"].as_f64().unwrap() - usd).abs() < 1e-6, "{e}");
    assert_eq!(e["max_cost_usd"], 12.0);
    // From the on-demand table, five instances of two slots each.
    let table = ok(c.cli(&[
        "submit",
        f,
        "--estimate",
        "--instance-type",
        "g5.xlarge",
        "--instances",
        "5",
        "--slots",
        "2",
        "--trial-minutes",
        "30",
    ]));
    assert!(table.contains("2 trial(s) to run (3 of the file's cells already done); 30.0 min each (given"), "{table}");
    assert!(table.contains("0.50 instance-hours, 0.10 h of wall time"), "{table}");
    assert!(table.contains("on-demand table"), "{table}");
    // A new sweep has nothing to measure; an unpriced type is refused; nothing is stored.
    std::fs::write(file, slow_sweep("never-run", 3, None)).unwrap();
    let err = fails(c.cli(&["submit", f, "--estimate", "--price-per-hour", "1"]));
    assert!(err.contains("no trial of sweep `never-run` has finished yet to measure: give --trial-minutes"), "{err}");
    let err = fails(c.cli(&["submit", f, "--estimate", "--trial-minutes", "5", "--instance-type", "g9.nope"]));
    assert!(err.contains("g9.nope: no price in the on-demand table"), "{err}");
    let err = fails(c.cli(&["submit", f, "--trial-minutes", "5"]));
    assert!(err.contains("--estimate"), "{err}");
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sweeps WHERE name = 'never-run'").fetch_one(&c.db).await.unwrap();
    assert_eq!(stored, 0, "an estimate stores nothing");
}
