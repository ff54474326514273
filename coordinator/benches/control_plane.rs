//! Control-plane benchmark: submit a 10,000-trial grid, drain it with 50 concurrent
//! agents whose trials do nothing (a stand-in trainer, named as such: this measures
//! the coordinator, not training), and print submit time, trials/s and lease latency.
//!
//!     bench/control-plane.sh            (starts a private Postgres, then runs this)

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sweep_proto as pb;
use sweep_testkit::app::{spawn_with, with_token, TestApp};
use tonic::transport::Channel;

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Submits a square-ish grid of about `trials` cells; returns (cells, seconds it took).
async fn submit_grid(app: &TestApp, trials: usize) -> anyhow::Result<(usize, Duration)> {
    let a = (trials as f64).sqrt().ceil() as usize;
    let b = trials.div_ceil(a);
    let yaml = format!(
        "name: bench\nparameters:\n  train.seed: {{values: {:?}}}\n  dataset.split_seed: {{values: {:?}}}\n",
        (0..a).collect::<Vec<_>>(),
        (0..b).collect::<Vec<_>>()
    );
    let t0 = Instant::now();
    let req = pb::SubmitSweepRequest { spec_yaml: yaml, source_name: "bench.yaml".into() };
    let sub = app.client().submit_sweep(with_token(&app.admin, req)).await?.into_inner();
    Ok((sub.trials_total as usize, t0.elapsed()))
}

/// One agent on its own connection (as a worker process would have): lease one trial,
/// complete it at once, until the queue is empty. Returns how many it completed.
async fn agent(ch: Channel, token: String, latencies: Arc<Mutex<Vec<Duration>>>) -> usize {
    let mut c = pb::agent_service_client::AgentServiceClient::new(ch);
    let mut done = 0usize;
    loop {
        let s = Instant::now();
        let req = with_token(&token, pb::LeaseRequest { max_trials: 1, wait_ms: 0 });
        let got = c.lease(req).await.expect("lease").into_inner().trials;
        latencies.lock().expect("lock").push(s.elapsed());
        let Some(t) = got.into_iter().next() else { return done };
        let complete = pb::CompleteRequest {
            trial: Some(pb::TrialRef { trial_id: t.trial_id, attempt: t.attempt }),
            metrics: [("val.f1_micro".to_string(), 0.5)].into(),
            result_json: String::new(),
        };
        c.complete(with_token(&token, complete)).await.expect("complete");
        done += 1;
    }
}

/// Drains the queue with `agents` agents; returns (completed, seconds, sorted lease latencies).
async fn drain(app: &TestApp, agents: usize) -> anyhow::Result<(usize, Duration, Vec<Duration>)> {
    let mut tokens = Vec::new();
    for i in 0..agents {
        tokens.push(app.worker(&format!("a{i}")).await);
    }
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let t1 = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for token in tokens {
        let ch = Channel::from_shared(format!("http://{}", app.addr))?.connect().await?;
        set.spawn(agent(ch, token, latencies.clone()));
    }
    let mut completed = 0;
    while let Some(n) = set.join_next().await {
        completed += n?;
    }
    let mut lat = latencies.lock().expect("lock").clone();
    lat.sort();
    Ok((completed, t1.elapsed(), lat))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (trials, agents) = (env_or("BENCH_TRIALS", 10_000), env_or("BENCH_AGENTS", 50));
    let tweak = |s: &mut sweep_coordinator::Settings| {
        (s.lease_ms, s.heartbeat_ms, s.reap_ms, s.backoff_ms) = (30_000, None, 1_000, 1_000);
        (s.max_message_bytes, s.db_connections) = (4 << 20, 32);
    };
    let Some(app) = spawn_with(tweak).await else {
        anyhow::bail!("set SWEEP_TEST_DATABASE_URL (bench/control-plane.sh does)");
    };
    let (total, submit) = submit_grid(&app, trials).await?;
    let (completed, drain, lat) = drain(&app, agents).await?;
    let (succeeded,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM trials WHERE state = 'succeeded'").fetch_one(&app.db).await?;
    println!("control plane: {total} trials, {agents} concurrent agents, lease+complete per trial, one 2-core machine");
    println!("| measure | value | goal |");
    println!("|---|---|---|");
    println!("| submit {total}-trial grid | {:.3} s | < 2 s |", submit.as_secs_f64());
    println!("| drain throughput | {:.0} trials/s | > 2000 |", completed as f64 / drain.as_secs_f64());
    println!("| lease latency p50 | {:.2} ms | |", pct(&lat, 0.50).as_secs_f64() * 1e3);
    println!("| lease latency p99 | {:.2} ms | < 50 ms |", pct(&lat, 0.99).as_secs_f64() * 1e3);
    let per_trial = drain.as_secs_f64() * 1e3 / completed as f64;
    println!("| coordinator overhead per trial | {per_trial:.2} ms | (Ray Tune: ~9 ms) |");
    println!("| trials succeeded / completed by agents | {succeeded} / {completed} | {total} / {total} |");
    anyhow::ensure!(succeeded as usize == total && completed == total, "lost or duplicated trials");
    app.shutdown.cancel();
    Ok(())
}
