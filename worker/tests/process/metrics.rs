//! Prometheus metrics with real processes: a coordinator and a worker started with
//! `--metrics-listen`, a small sweep, and scrapes of both endpoints while it runs and
//! after: trial counts that move, latency histograms with observations, worker epochs.

use sweep_testkit::procs::{free_port, sample, scrape_until, Cluster, TINY};

#[tokio::test(flavor = "multi_thread")]
async fn metrics_endpoints_show_trials_moving_and_latencies() {
    let Some(c) = Cluster::new().await else { return };
    let (coord_addr, worker_addr) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let _coord = c.coordinator_with(3_000, 500, &["--metrics-listen", &coord_addr]);
    c.submit(3, 4, TINY);
    let queued = r#"sweep_trials{sweep="faults",state="queued"}"#;
    let succeeded = r#"sweep_trials{sweep="faults",state="succeeded"}"#;
    // Before any worker: three queued. Then the same gauges move to three succeeded.
    let early = scrape_until(&coord_addr, "three queued trials", |b| sample(b, queued) == Some(3.0));
    assert_eq!(sample(&early, "sweep_queue_depth"), Some(3.0), "{early}");
    let _w = c.worker("w", &c.addr(), &["--metrics-listen", &worker_addr]);
    let done = scrape_until(&coord_addr, "three succeeded trials", |b| sample(b, succeeded) == Some(3.0));
    assert_eq!(sample(&done, "sweep_trials_finished_total{state=\"succeeded\"}"), Some(3.0), "{done}");
    assert_eq!(sample(&done, "sweep_leases_granted_total"), Some(3.0), "{done}");
    assert_eq!(sample(&done, queued), Some(0.0), "a state that emptied reads 0: {done}");
    assert_eq!(sample(&done, "sweep_queue_depth"), Some(0.0), "{done}");
    // A latency histogram (buckets, not a summary) with observations: one Lease call, then
    // each completion leases the next trial.
    let calls =
        |m: &str| sample(&done, &format!("sweep_rpc_duration_seconds_count{{method=\"/sweep.v1.AgentService/{m}\"}}"));
    assert!(calls("Lease").is_some_and(|n| n >= 1.0), "{done}");
    assert!(calls("Complete") == Some(3.0), "{done}");
    assert!(done.contains("sweep_rpc_duration_seconds_bucket{method=\"/sweep.v1.AgentService/Complete\",le=\"0.005\"}"));
    assert!(sample(&done, "sweep_workers{state=\"alive\"}") == Some(1.0), "{done}");
    let w = scrape_until(&worker_addr, "worker epochs", |b| {
        sample(b, "sweep_worker_epoch_duration_seconds_count").is_some_and(|n| n >= 12.0)
    });
    assert!(sample(&w, "sweep_worker_samples_per_second").is_some_and(|v| v > 0.0), "{w}");
    assert!(sample(&w, "sweep_worker_trials_running").is_some(), "{w}");
}
