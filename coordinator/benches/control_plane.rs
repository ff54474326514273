//! Control-plane benchmark: submit a 10,000-trial grid, drain it with 50 concurrent
//! agents whose trials do nothing (a stand-in trainer, named as such: this measures
//! the coordinator, not training), and print submit time, trials/s and lease latency.
//!
//!     bench/control-plane.sh            (starts a private Postgres, then runs this)

use std::sync::Arc;
use std::time::{Duration, Instant};

use sweep_coordinator::db::tokens::{self, Role};
use sweep_coordinator::{Coordinator, Settings};
use sweep_proto as pb;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

fn req<T>(token: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert("authorization", MetadataValue::try_from(format!("Bearer {token}")).unwrap());
    r
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let trials: usize = std::env::var("BENCH_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let agents: usize = std::env::var("BENCH_AGENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let Some(url) = sweep_coordinator::testing::fresh_database().await else {
        anyhow::bail!("set SWEEP_TEST_DATABASE_URL (bench/control-plane.sh does)");
    };
    let settings = Settings {
        listen: "127.0.0.1:0".parse()?,
        database_url: url,
        port_file: None,
        lease_ms: 30_000,
        heartbeat_ms: None,
        reap_ms: 1_000,
        backoff_ms: 1_000,
        max_trials: 100_000,
        max_message_bytes: 4 << 20,
        max_concurrent_streams: 256,
        db_connections: 32,
        tls_cert: None,
        tls_key: None,
        tls_client_ca: None,
    };
    let app = Coordinator::build(settings).await?;
    let (addr, db) = (app.addr, app.state.db.clone());
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run(shutdown.clone()));
    let (_, admin) = tokens::create(&db, Role::Admin, "bench").await?;
    let (_, join) = tokens::create(&db, Role::Join, "bench").await?;
    let channel = Channel::from_shared(format!("http://{addr}"))?.connect().await?;

    let a = (trials as f64).sqrt().ceil() as usize;
    let b = trials.div_ceil(a);
    let yaml = format!(
        "name: bench\nparameters:\n  train.seed: {{values: {:?}}}\n  dataset.split_seed: {{values: {:?}}}\n",
        (0..a).collect::<Vec<_>>(),
        (0..b).collect::<Vec<_>>()
    );
    let t0 = Instant::now();
    let sub = pb::client_service_client::ClientServiceClient::new(channel.clone())
        .submit_sweep(req(&admin, pb::SubmitSweepRequest { spec_yaml: yaml, source_name: "bench.yaml".into() }))
        .await?
        .into_inner();
    let submit = t0.elapsed();
    let total = sub.trials_total as usize;

    let mut workers = Vec::new();
    for i in 0..agents {
        let r = pb::agent_service_client::AgentServiceClient::new(channel.clone())
            .register(req(
                &join,
                pb::RegisterRequest {
                    name: format!("a{i}"),
                    host: "bench".into(),
                    gpus: vec![],
                    slots: 1,
                    version: "b".into(),
                },
            ))
            .await?
            .into_inner();
        workers.push(r.worker_token);
    }
    let latencies = Arc::new(std::sync::Mutex::new(Vec::with_capacity(total + agents)));
    let t1 = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for w in workers {
        // Each agent has its own connection, as separate worker processes would.
        let ch = Channel::from_shared(format!("http://{addr}"))?.connect().await?;
        let lat = latencies.clone();
        set.spawn(async move {
            let mut c = pb::agent_service_client::AgentServiceClient::new(ch);
            let mut done = 0usize;
            loop {
                let s = Instant::now();
                let got =
                    c.lease(req(&w, pb::LeaseRequest { max_trials: 1, wait_ms: 0 })).await.unwrap().into_inner().trials;
                lat.lock().unwrap().push(s.elapsed());
                let Some(t) = got.into_iter().next() else { return done };
                c.complete(req(
                    &w,
                    pb::CompleteRequest {
                        trial: Some(pb::TrialRef { trial_id: t.trial_id, attempt: t.attempt }),
                        metrics: [("val.f1_micro".to_string(), 0.5)].into(),
                        result_json: String::new(),
                    },
                ))
                .await
                .unwrap();
                done += 1;
            }
        });
    }
    let mut completed = 0;
    while let Some(n) = set.join_next().await {
        completed += n?;
    }
    let drain = t1.elapsed();
    let (succeeded,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM trials WHERE state = 'succeeded'").fetch_one(&db).await?;
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort();
    println!("control plane: {total} trials, {agents} concurrent agents, lease+complete per trial, one 2-core machine");
    println!("| measure | value | goal |");
    println!("|---|---|---|");
    println!("| submit {total}-trial grid | {:.3} s | < 2 s |", submit.as_secs_f64());
    println!("| drain throughput | {:.0} trials/s | > 2000 |", completed as f64 / drain.as_secs_f64());
    println!("| lease latency p50 | {:.2} ms | |", pct(&lat, 0.50).as_secs_f64() * 1e3);
    println!("| lease latency p99 | {:.2} ms | < 50 ms |", pct(&lat, 0.99).as_secs_f64() * 1e3);
    println!(
        "| coordinator overhead per trial | {:.2} ms | (Ray Tune: ~9 ms) |",
        drain.as_secs_f64() * 1e3 / completed as f64
    );
    println!("| trials succeeded / completed by agents | {succeeded} / {completed} | {total} / {total} |");
    anyhow::ensure!(succeeded as usize == total && completed == total, "lost or duplicated trials");
    shutdown.cancel();
    Ok(())
}
