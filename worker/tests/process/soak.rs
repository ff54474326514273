//! Soak: a real sweep while workers and the coordinator are killed and restarted at
//! random, then the invariant checker and a table: faults injected by kind, trials,
//! lost 0, duplicated 0. `SOAK_SECS` bounds the fault phase (default 20, the CI
//! version); `bench/soak.sh` runs a longer one.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sweep_coordinator::states::terminal_sql;
use sweep_testkit::procs::{Cluster, Proc, TINY};

/// A tiny deterministic generator, so a soak can be replayed by its seed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn soak_with_random_kills_loses_and_duplicates_nothing() {
    let Some(c) = Cluster::new().await else { return };
    let secs: u64 = std::env::var("SOAK_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let seed: u64 = std::env::var("SOAK_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(7);
    // Enough work to keep three workers busy through the whole fault phase.
    let trials = (secs as usize * 2).max(12);
    let mut rng = Lcg(seed);
    let mut coord = c.coordinator();
    // A generous attempt budget: the harness, not the trials, is what kills attempts.
    c.submit_with(trials, 6, TINY, 20);
    let mut workers: Vec<Proc> =
        (0..3).map(|i| c.worker(&format!("w{i}-0"), &c.addr(), &["--grace-secs", "2"])).collect();
    let mut faults: BTreeMap<&str, u32> = BTreeMap::new();
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_millis(500 + rng.next(1500))).await;
        n += 1;
        match rng.next(10) {
            0..=4 => {
                let i = rng.next(workers.len() as u64) as usize;
                workers[i].signal("-KILL");
                workers[i] = c.worker(&format!("w{i}-{n}"), &c.addr(), &["--grace-secs", "2"]);
                *faults.entry("worker SIGKILL + restart").or_default() += 1;
            }
            5..=7 => {
                let i = rng.next(workers.len() as u64) as usize;
                workers[i].signal("-TERM");
                workers[i].wait_exit(Duration::from_secs(20));
                workers[i] = c.worker(&format!("w{i}-{n}"), &c.addr(), &["--grace-secs", "2"]);
                *faults.entry("worker SIGTERM + restart").or_default() += 1;
            }
            _ => {
                coord.signal("-KILL");
                drop(coord);
                tokio::time::sleep(Duration::from_millis(300)).await;
                coord = c.coordinator();
                *faults.entry("coordinator SIGKILL + restart").or_default() += 1;
            }
        }
    }
    c.settled(Duration::from_secs(300)).await;
    let violations = sweep_coordinator::db::invariants::check(&c.db, true).await.unwrap();
    let (total, succeeded, dead, attempts, lost_leases): (i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE state = 'succeeded'), count(*) FILTER (WHERE state = 'dead'),
                sum(attempt)::int8, sum(lost_count)::int8 FROM trials",
    )
    .fetch_one(&c.db)
    .await
    .unwrap();
    let (dup,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM (SELECT 1 FROM trials GROUP BY sweep_id, params_hash HAVING count(*) > 1) d",
    )
    .fetch_one(&c.db)
    .await
    .unwrap();
    // Lost: submitted but not in a terminal state (or gone). `dead` is a terminal state
    // (the attempt budget spent on lost leases), reported apart.
    let (terminal,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM trials WHERE state IN {}", terminal_sql()))
        .fetch_one(&c.db)
        .await
        .unwrap();
    let lost = trials as i64 - terminal;
    println!("soak: {secs} s of faults, seed {seed}");
    println!("| fault | count |\n|---|---|");
    for (k, v) in &faults {
        println!("| {k} | {v} |");
    }
    println!("| trials | {total} |\n| succeeded | {succeeded} |\n| dead (attempt budget spent) | {dead} |");
    println!("| attempts made | {attempts} |");
    println!("| leases expired and re-run | {lost_leases} |\n| lost | {lost} |\n| duplicated | {dup} |");
    println!("| invariant violations | {} |", violations.len());
    assert!(violations.is_empty(), "{violations:#?}");
    assert_eq!((total, lost, dup), (trials as i64, 0, 0));
    assert_eq!(succeeded + dead, total, "no trial failed: only the harness killed attempts");
}
