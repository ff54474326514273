//! Fault injection with real processes: a coordinator, workers and the CLI as separate
//! processes, a real Postgres, and a TCP proxy in the test to cut a worker's link. Each
//! case ends with the invariant checker. Cases run one at a time (a shared lock) so that
//! lease timing does not depend on how many other cases load the two cores.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use sqlx::PgPool;
use sweep_testkit::procs::{bin, free_port, sample, scrape_until, Cluster, Proxy, LEASE_MS, TINY};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

macro_rules! cluster {
    () => {
        match Cluster::new().await {
            Some(c) => c,
            None => return,
        }
    };
}

const PROGRESSED: &str = "SELECT count(*) > 0 FROM trial_epochs";

#[tokio::test(flavor = "multi_thread")]
async fn worker_sigkill_mid_trial_is_released_after_expiry_and_finished_once() {
    let _serial = SERIAL.lock().await;
    let c = cluster!();
    let _coord = c.coordinator();
    c.submit(1, 30, TINY);
    let a = c.worker("a", &c.addr(), &[]);
    c.wait_for("first epoch", Duration::from_secs(60), PROGRESSED).await;
    a.signal("-KILL");
    let _b = c.worker("b", &c.addr(), &[]);
    c.settled(Duration::from_secs(120)).await;
    let (state, attempt, lost, errors, by) = c.trial().await;
    assert_eq!((state.as_str(), attempt, lost, errors), ("succeeded", 2, 1, 0));
    assert_eq!(by, Some(c.worker_id("b").await));
    c.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_sigterm_without_grace_hands_back_at_once() {
    let _serial = SERIAL.lock().await;
    let c = cluster!();
    let _coord = c.coordinator();
    c.submit(1, 30, TINY);
    let mut a = c.worker("a", &c.addr(), &["--grace-secs", "0"]);
    c.wait_for("first epoch", Duration::from_secs(60), PROGRESSED).await;
    a.signal("-TERM");
    assert!(a.wait_exit(Duration::from_secs(20)), "worker drained and exited");
    let (state, attempt, lost, ..) = c.trial().await;
    assert_eq!((state.as_str(), attempt, lost), ("queued", 1, 0), "handed back, no penalty");
    let _b = c.worker("b", &c.addr(), &[]);
    c.settled(Duration::from_secs(120)).await;
    let (state, attempt, lost, ..) = c.trial().await;
    assert_eq!((state.as_str(), attempt, lost), ("succeeded", 2, 0));
    c.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_sigterm_with_grace_finishes_its_trial() {
    let _serial = SERIAL.lock().await;
    let c = cluster!();
    let _coord = c.coordinator();
    c.submit(1, 20, TINY);
    let mut a = c.worker("a", &c.addr(), &["--grace-secs", "120"]);
    c.wait_for("first epoch", Duration::from_secs(60), PROGRESSED).await;
    a.signal("-TERM");
    assert!(a.wait_exit(Duration::from_secs(120)), "worker finished and exited");
    let (state, attempt, lost, ..) = c.trial().await;
    assert_eq!((state.as_str(), attempt, lost), ("succeeded", 1, 0));
    c.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn partition_longer_than_the_lease_refuses_the_late_result() {
    let _serial = SERIAL.lock().await;
    let c = cluster!();
    let _coord = c.coordinator();
    let proxy = Proxy::start(c.port).await;
    c.submit(1, 40, TINY);
    let _a = c.worker("a", &proxy.addr(), &[]);
    c.wait_for("first epoch", Duration::from_secs(60), PROGRESSED).await;
    proxy.set_cut(true);
    c.wait_for("the reaper to requeue", Duration::from_secs(30), "SELECT lost_count = 1 FROM trials").await;
    let _b = c.worker("b", &c.addr(), &[]);
    c.wait_for("b to lease attempt 2", Duration::from_secs(30), "SELECT attempt = 2 FROM trials").await;
    proxy.set_cut(false); // a's late progress and result now arrive: refused as stale
    c.settled(Duration::from_secs(120)).await;
    let (state, attempt, lost, _, by) = c.trial().await;
    assert_eq!((state.as_str(), attempt, lost), ("succeeded", 2, 1));
    assert_eq!(by, Some(c.worker_id("b").await), "only b's result is recorded");
    let (stale,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM trial_epochs WHERE attempt = 1 AND recorded_at > (SELECT min(recorded_at) FROM trial_epochs WHERE attempt = 2)")
            .fetch_one(&c.db)
            .await
            .unwrap();
    assert_eq!(stale, 0, "no progress of attempt 1 recorded after attempt 2 began");
    c.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn partition_shorter_than_the_lease_changes_nothing() {
    let _serial = SERIAL.lock().await;
    let c = cluster!();
    let _coord = c.coordinator();
    let proxy = Proxy::start(c.port).await;
    c.submit(1, 30, TINY);
    let _a = c.worker("a", &proxy.addr(), &[]);
    c.wait_for("first epoch", Duration::from_secs(60), PROGRESSED).await;
    proxy.set_cut(true);
    tokio::time::sleep(Duration::from_millis(LEASE_MS as u64 / 3)).await;
    proxy.set_cut(false);
    c.settled(Duration::from_secs(120)).await;
    let (state, attempt, lost, ..) = c.trial().await;
    assert_eq!((state.as_str(), attempt, lost), ("succeeded", 1, 0), "no re-lease, no duplicate");
    c.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn long_trial_with_healthy_heartbeats_is_never_rescued() {
    let _serial = SERIAL.lock().await;
    let c = cluster!();
    let _coord = c.coordinator();
    // Several lease lengths of training.
    c.submit(1, 40, TINY);
    let _a = c.worker("a", &c.addr(), &[]);
    c.settled(Duration::from_secs(180)).await;
    let (state, attempt, lost, ..) = c.trial().await;
    assert_eq!((state.as_str(), attempt, lost), ("succeeded", 1, 0));
    let (secs,): (f64,) =
        sqlx::query_as("SELECT (result->>'seconds')::float8 FROM trials").fetch_one(&c.db).await.unwrap();
    eprintln!("trial ran {secs:.1} s against a {} s lease", LEASE_MS / 1000);
    assert!(secs > 2.0 * LEASE_MS as f64 / 1000.0, "the trial must outlast two leases to test anything: {secs:.1} s");
    c.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn coordinator_killed_and_restarted_loses_and_duplicates_nothing() {
    let _serial = SERIAL.lock().await;
    let c = cluster!();
    let coord = c.coordinator();
    c.submit(4, 15, TINY);
    let _a = c.worker("a", &c.addr(), &[]);
    let _b = c.worker("b", &c.addr(), &[]);
    c.wait_for("first epoch", Duration::from_secs(60), PROGRESSED).await;
    coord.signal("-KILL");
    drop(coord);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _coord = c.coordinator(); // same port: workers reconnect with backoff
    c.settled(Duration::from_secs(180)).await;
    let (n, ok): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE state = 'succeeded') FROM trials")
            .fetch_one(&c.db)
            .await
            .unwrap();
    assert_eq!((n, ok), (4, 4));
    c.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_restarted_mid_sweep_recovers() {
    let _serial = SERIAL.lock().await;
    // Its own cluster, since this test stops it.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/pg.sh");
    if std::env::var("SWEEP_TEST_DATABASE_URL").is_err() {
        return;
    }
    let pgdir = tempfile::tempdir().unwrap();
    // The cluster runs as the `postgres` user, who must reach the data directory.
    std::fs::set_permissions(pgdir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let dir = pgdir.path().join("pg");
    let port = free_port().to_string();
    let out = Command::new(script).args(["start", dir.to_str().unwrap(), &port]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let url = String::from_utf8(out.stdout).unwrap().trim().to_string();
    struct Stop(PathBuf, &'static str);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = Command::new(self.1).args(["stop", self.0.to_str().unwrap()]).status();
        }
    }
    let _stop = Stop(dir.clone(), script);
    let c = Cluster::on(url).await;
    let _coord = c.coordinator();
    c.submit(3, 15, TINY);
    let _a = c.worker("a", &c.addr(), &[]);
    c.wait_for("first epoch", Duration::from_secs(60), PROGRESSED).await;
    c.db.close().await;
    assert!(Command::new(script).args(["stop", dir.to_str().unwrap()]).status().unwrap().success());
    let down = c.cli(&["status"]);
    assert!(!down.status.success());
    let msg = String::from_utf8_lossy(&down.stderr);
    assert!(msg.contains("Unavailable"), "{msg}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(Command::new(script)
        .args(["start", dir.to_str().unwrap(), &port])
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success());
    let c = Cluster { db: PgPool::connect(&c.db_url).await.unwrap(), ..c };
    c.settled(Duration::from_secs(180)).await;
    let up = c.cli(&["status"]);
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    c.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trial_with_a_user_error_fails_once_and_never_loops() {
    let _serial = SERIAL.lock().await;
    let c = cluster!();
    let _coord = c.coordinator();
    c.submit(1, 5, "{kind: mulan, name: no-such-dataset}");
    let _a = c.worker("a", &c.addr(), &[]);
    c.settled(Duration::from_secs(60)).await;
    let (state, attempt, lost, errors, _) = c.trial().await;
    assert_eq!((state.as_str(), attempt, lost, errors), ("failed", 1, 0, 1));
    let (err,): (String,) = sqlx::query_as("SELECT error FROM trials").fetch_one(&c.db).await.unwrap();
    assert!(err.contains("no-such-dataset"), "{err}");
    c.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_clock_off_by_five_minutes_changes_nothing() {
    let _serial = SERIAL.lock().await;
    // libfaketime preloaded into the worker itself (not the `faketime` wrapper, whose child
    // would outlive a kill of the wrapper).
    let lib = ["/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(lib) = lib.or_else(|| sweep_testkit::skip("libfaketime is not installed (scripts/setup.sh installs it)"))
    else {
        return;
    };
    let c = cluster!();
    let _coord = c.coordinator();
    c.submit(2, 10, TINY);
    // One worker's wall clock five minutes ahead, one's five minutes behind (libfaketime;
    // the monotonic clock is left alone, as NTP leaves it).
    let skewed = |name: &str, offset: &str| {
        let mut cmd = Command::new(bin("sweep-worker"));
        cmd.env("LD_PRELOAD", lib).env("FAKETIME", offset).env("DONT_FAKE_MONOTONIC", "1");
        c.worker_with(cmd, name, &c.addr(), &[])
    };
    let _a = skewed("ahead", "+5m");
    let _b = skewed("behind", "-5m");
    c.settled(Duration::from_secs(120)).await;
    let rows: Vec<(String, i32, i32)> =
        sqlx::query_as("SELECT state, attempt, lost_count FROM trials ORDER BY seq").fetch_all(&c.db).await.unwrap();
    assert_eq!(rows, vec![("succeeded".to_string(), 1, 0), ("succeeded".to_string(), 1, 0)]);
    let (workers,): (i64,) =
        sqlx::query_as("SELECT count(DISTINCT finished_by) FROM trials").fetch_one(&c.db).await.unwrap();
    eprintln!("trials finished by {workers} skewed worker(s)");
    c.check_invariants().await;
}

/// Liveness: a worker busy with one long trial stays `alive` well past three lease
/// lengths (its heartbeats keep `last_seen` moving through the credential cache), and
/// the same worker killed turns `gone`.
#[tokio::test(flavor = "multi_thread")]
async fn a_busy_worker_stays_alive_and_a_killed_one_turns_gone() {
    let _serial = SERIAL.lock().await;
    let c = cluster!();
    let (lease_ms, heartbeat_ms) = (1_000, 300); // gone after 3 s of silence
    let _coord = c.coordinator_with_lease(lease_ms, heartbeat_ms);
    c.submit(1, 60, TINY);
    let w = c.worker("busy", &c.addr(), &[]);
    c.wait_for("first epoch", Duration::from_secs(60), PROGRESSED).await;
    // Time has to pass for this property: twice the point at which a silent worker is gone.
    tokio::time::sleep(Duration::from_millis(6 * u64::from(lease_ms))).await;
    let out = c.cli(&["workers", "-o", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let worker = &v["workers"][0];
    assert_eq!((worker["name"].as_str(), worker["state"].as_str()), (Some("busy"), Some("alive")), "{v}");
    assert_eq!(worker["running"], 1, "still training, so the check above is not vacuous: {v}");
    let (state, attempt, ..) = c.trial().await;
    assert_eq!((state.as_str(), attempt), ("leased", 1), "the trial was never taken from the busy worker");
    w.signal("-KILL");
    let gone = "SELECT state = 'gone' FROM workers WHERE name = 'busy'";
    c.wait_for("the killed worker to turn gone", Duration::from_secs(30), gone).await;
}

/// Two coordinators on one Postgres, workers given both addresses: exactly one runs
/// maintenance; killing that one mid-sweep loses and duplicates nothing, the survivor
/// takes maintenance over (it reaps the leases the dead one could no longer extend), and
/// `sweep watch` works through it.
#[tokio::test(flavor = "multi_thread")]
async fn two_coordinators_one_killed_mid_sweep_lose_and_duplicate_nothing() {
    let _serial = SERIAL.lock().await;
    let c = cluster!();
    let (port_b, m_a, m_b) = (free_port(), format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let mut a = c.coordinator_with(LEASE_MS, 500, &["--metrics-listen", &m_a]);
    let mut b = c.coordinator_on(port_b, LEASE_MS, 500, &["--metrics-listen", &m_b]);
    let leads =
        |m: &str| sample(&scrape_until(m, "the leader gauge", |x| x.contains("leader")), "sweep_maintenance_leader");
    let start = std::time::Instant::now();
    let (la, lb) = loop {
        let (la, lb) = (leads(&m_a), leads(&m_b));
        if la.unwrap_or(0.0) + lb.unwrap_or(0.0) == 1.0 {
            break (la, lb);
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no single maintenance leader: {la:?} {lb:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let sweep = c.submit(6, 8, TINY);
    let both = format!("{},http://127.0.0.1:{port_b}", c.addr());
    let _w1 = c.worker("w1", &both, &[]);
    let _w2 = c.worker("w2", &both, &[]);
    c.wait_for("first epoch", Duration::from_secs(60), PROGRESSED).await;
    let (survivor_metrics, survivor_addr) = if la == Some(1.0) {
        a.signal("-KILL");
        a.wait_exit(Duration::from_secs(10));
        (m_b, format!("http://127.0.0.1:{port_b}"))
    } else {
        assert_eq!(lb, Some(1.0));
        b.signal("-KILL");
        b.wait_exit(Duration::from_secs(10));
        (m_a, c.addr())
    };
    scrape_until(&survivor_metrics, "the survivor to lead", |x| sample(x, "sweep_maintenance_leader") == Some(1.0));
    c.settled(Duration::from_secs(180)).await;
    let states: Vec<(String,)> = sqlx::query_as("SELECT state FROM trials").fetch_all(&c.db).await.unwrap();
    assert_eq!(states.len(), 6);
    assert!(states.iter().all(|(s,)| s == "succeeded"), "{states:?}");
    c.check_invariants().await;
    let watched = c.cli_at(&survivor_addr, &["watch", &sweep]);
    assert!(watched.status.success(), "{}", String::from_utf8_lossy(&watched.stderr));
    assert!(String::from_utf8_lossy(&watched.stdout).contains("progress 6/6"));
}

/// A worker never holds more leases than it has slots, also while completions lease the
/// next trial in the same call (polled every 20 ms through a sweep of short trials).
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_never_holds_more_leases_than_slots() {
    let _serial = SERIAL.lock().await;
    let c = cluster!();
    let _coord = c.coordinator();
    c.submit(8, 2, TINY);
    let _w = c.worker("two-slots", &c.addr(), &["--slots", "2"]);
    let start = std::time::Instant::now();
    let mut most = 0i64;
    loop {
        let (held, open): (Option<i64>, i64) = sqlx::query_as(
            "SELECT (SELECT max(n) FROM (SELECT count(*) AS n FROM trials WHERE state = 'leased' GROUP BY lease_owner) x),
                    (SELECT count(*) FROM trials WHERE state IN ('queued', 'leased'))",
        )
        .fetch_one(&c.db)
        .await
        .unwrap();
        most = most.max(held.unwrap_or(0));
        if open == 0 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "sweep did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(most <= 2, "a two-slot worker held {most} leases at once");
    assert_eq!(most, 2, "both slots were used, so the check above is not vacuous");
    c.check_invariants().await;
}

/// A worker told to exit when idle still exits when its coordinator is gone: the time
/// spent failing to reach it counts as idle while nothing runs.
#[tokio::test(flavor = "multi_thread")]
async fn idle_worker_exits_when_its_coordinator_is_gone() {
    let _serial = SERIAL.lock().await;
    let c = cluster!();
    let coord = c.coordinator();
    let mut w = c.worker("idle", &c.addr(), &["--exit-when-idle-secs", "5"]);
    c.wait_for("registered", Duration::from_secs(30), "SELECT count(*) > 0 FROM workers").await;
    drop(coord);
    assert!(w.wait_exit(Duration::from_secs(30)), "the worker is still running 30 s after its coordinator died");
}

/// SIGKILL after a checkpoint: the next attempt resumes from it (its first reported epoch
/// is the checkpoint's epoch + 1) and the trial still ends with one result.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_trial_resumes_from_its_last_checkpoint() {
    let _serial = SERIAL.lock().await;
    let c = cluster!();
    let _coord = c.coordinator();
    c.submit_yaml(&format!(
        "name: resume\ndataset: {TINY}\nmodel: {{hidden: [512], dropout: 0.2}}\n\
         train: {{epochs: 12, patience: 0, batch_size: 256, checkpoint_every: 1}}\n"
    ));
    let a = c.worker("a", &c.addr(), &[]);
    c.wait_for(
        "a checkpoint at epoch 2",
        Duration::from_secs(60),
        "SELECT coalesce(max(checkpoint_epoch), 0) >= 2 FROM trials",
    )
    .await;
    a.signal("-KILL");
    let (saved,): (i32,) = sqlx::query_as("SELECT checkpoint_epoch FROM trials").fetch_one(&c.db).await.unwrap();
    let _b = c.worker("b", &c.addr(), &[]);
    c.settled(Duration::from_secs(120)).await;
    let (state, attempt, lost, errors, _) = c.trial().await;
    assert_eq!((state.as_str(), attempt, lost, errors), ("succeeded", 2, 1, 0));
    let (first, last): (i32, i32) = sqlx::query_as("SELECT min(epoch), max(epoch) FROM trial_epochs WHERE attempt = 2")
        .fetch_one(&c.db)
        .await
        .unwrap();
    assert_eq!((first, last), (saved + 1, 12), "attempt 2 went on from the checkpoint of epoch {saved}");
    let (blob,): (Option<String>,) =
        sqlx::query_as("SELECT checkpoint_blob FROM trials").fetch_one(&c.db).await.unwrap();
    assert_eq!(blob, None, "a succeeded trial's checkpoint is dropped");
    c.check_invariants().await;
}

/// A cancelled trial's checkpoint leaves the blob store: nothing will resume it.
#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_trials_checkpoint_is_deleted() {
    let _serial = SERIAL.lock().await;
    let c = cluster!();
    let store = c.dir.path().join("blobs");
    let _coord = c.coordinator_with(LEASE_MS, 500, &["--blob-store", store.to_str().unwrap()]);
    let sweep = c.submit_yaml(&format!(
        "name: cancel-ckpt\ndataset: {TINY}\nmodel: {{hidden: [512]}}\n\
         train: {{epochs: 30, patience: 0, batch_size: 256, checkpoint_every: 1}}\n"
    ));
    let _w = c.worker("a", &c.addr(), &[]);
    c.wait_for("a checkpoint", Duration::from_secs(60), "SELECT coalesce(max(checkpoint_epoch), 0) >= 1 FROM trials")
        .await;
    let (sha,): (String,) = sqlx::query_as("SELECT checkpoint_blob FROM trials").fetch_one(&c.db).await.unwrap();
    let file = store.join("sha256").join(&sha[..2]).join(&sha);
    assert!(file.exists(), "the checkpoint is in the store at {}", file.display());
    let out = c.cli(&["cancel", &sweep]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    c.wait_for(
        "the cancelled trial's checkpoint to go",
        Duration::from_secs(30),
        "SELECT bool_and(state = 'cancelled' AND checkpoint_blob IS NULL) FROM trials",
    )
    .await;
    let gone = std::time::Instant::now();
    while file.exists() && gone.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!file.exists(), "its blob is deleted");
}

/// Issue 32, item 1: a sweep submitted with --no-upload names files on the worker's host
/// by path. The worker reads only under its data directory (--data): an absolute path
/// elsewhere, a relative one climbing out with `..`, and a symbolic link inside pointing
/// out are each refused before anything is opened, as the trial's own (user) failure,
/// and no error quotes the file's contents. A file inside is read as before.
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_reads_files_named_by_path_only_under_its_data_directory() {
    let _serial = SERIAL.lock().await;
    let c = cluster!();
    let _coord = c.coordinator();
    let data = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.tsv");
    std::fs::write(&secret, "text\tlabels\nTOP-SECRET-LINE\ta\n").unwrap();
    std::os::unix::fs::symlink(&secret, data.path().join("link.tsv")).unwrap();
    let good = "text\tlabels\nred apple\ta\ngreen pear\tb\nred cherry\ta\nyellow pear\tb\n".repeat(20);
    std::fs::write(data.path().join("good.tsv"), good).unwrap();
    let climb =
        format!("{}/../{}/secret.tsv", data.path().display(), outside.path().file_name().unwrap().to_str().unwrap());
    let relative = format!("../{}/secret.tsv", outside.path().file_name().unwrap().to_str().unwrap());
    let paths = [secret.display().to_string(), climb, relative, "link.tsv".into(), "good.tsv".into()];
    let mut yaml = String::from("name: confined\nmax_attempts: 1\ndataset: {kind: text, train: good.tsv, test: good.tsv, \
        text: text, labels: labels, features: {kind: tfidf}}\nmodel: {hidden: [8]}\ntrain: {epochs: 1}\nparameters:\n  dataset.train: {values: [");
    yaml.push_str(&paths.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", "));
    yaml.push_str("]}\n");
    c.submit_yaml(&yaml);
    let mut cmd = Command::new(bin("sweep-worker"));
    cmd.env("SWEEP_DATA_DIR", data.path());
    let _a = c.worker_with(cmd, "a", &c.addr(), &["--exit-when-idle-secs", "5"]);
    c.settled(Duration::from_secs(120)).await;
    let rows: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT params->>'dataset.train', state, error FROM trials ORDER BY seq")
            .fetch_all(&c.db)
            .await
            .unwrap();
    assert_eq!(rows.len(), paths.len());
    for (path, state, error) in &rows {
        if path == "good.tsv" {
            assert_eq!(state, "succeeded", "{path}: {error:?}");
            continue;
        }
        let error = error.clone().unwrap_or_default();
        assert_eq!(state, "failed", "{path}: refused as the trial's own failure ({error})");
        assert!(error.contains("data directory") && error.contains(path.as_str()), "{path}: {error}");
        assert!(!error.contains("TOP-SECRET"), "no error quotes the file: {error}");
    }
    let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM trial_attempts").fetch_one(&c.db).await.unwrap();
    assert_eq!(attempts, paths.len() as i64, "refused at once, never retried");
    c.check_invariants().await;
}

/// Issue 32, item 5: hostile files (a 40-byte XC header declaring a trillion labels, a
/// sparse ARFF declaring 300,000 attributes, a TSV whose rows name 20,000 distinct
/// labels) fail their own trials as the data's fault, with their file, and never
/// quarantine the worker that read them (quarantine after 2 here): a good trial still
/// runs on it.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_data_files_fail_their_trials_and_never_quarantine_the_worker() {
    let _serial = SERIAL.lock().await;
    let c = cluster!();
    let _coord = c.coordinator_with(sweep_testkit::procs::LEASE_MS, 500, &["--quarantine-after", "2"]);
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    std::fs::write(d.join("trillion.txt"), "1 10 1000000000000\n0 1:1\n").unwrap();
    let mut arff = String::from("@relation hostile\n");
    for i in 0..300_000 {
        arff.push_str(&format!("@attribute a{i} {{0,1}}\n"));
    }
    arff.push_str("@data\n");
    arff.push_str(&"{0 1}\n".repeat(2000));
    std::fs::write(d.join("wide.arff"), &arff).unwrap();
    std::fs::write(
        d.join("wide.xml"),
        "<labels xmlns=\"http://mulan.sourceforge.net/labels\"><label name=\"a0\"/></labels>",
    )
    .unwrap();
    // 20,000 rows of one distinct label each: 400 MB as a dense 0/1 matrix from 300 kB.
    let many: String = (0..20_000).map(|i| format!("w{i}\tlabel{i}\n")).collect();
    std::fs::write(d.join("labels.tsv"), format!("text\tlabels\n{many}")).unwrap();
    let good = "text\tlabels\nred apple\ta\ngreen pear\tb\nred cherry\ta\nyellow pear\tb\n".repeat(20);
    std::fs::write(d.join("good.tsv"), good).unwrap();
    let base = "max_attempts: 1\nmodel: {hidden: [8]}\ntrain: {epochs: 1}\n";
    c.submit_yaml(&format!("name: h-xc\n{base}dataset: {{kind: xc, train: trillion.txt, test: trillion.txt}}\n"));
    c.submit_yaml(&format!(
        "name: h-arff\n{base}dataset: {{kind: mulan, train: wide.arff, test: wide.arff, xml: wide.xml}}\n"
    ));
    c.submit_yaml(&format!(
        "name: h-tsv\n{base}dataset: {{kind: text, train: labels.tsv, test: labels.tsv, text: text, labels: labels}}\n"
    ));
    c.submit_yaml(&format!(
        "name: h-good\n{base}dataset: {{kind: text, train: good.tsv, test: good.tsv, text: text, labels: labels}}\n"
    ));
    // One worker runs all four: were the hostile three its own faults, it would be
    // quarantined after two and the rest would never settle.
    let mut cmd = Command::new(bin("sweep-worker"));
    cmd.env("SWEEP_DATA_DIR", d);
    let _a = c.worker_with(cmd, "a", &c.addr(), &["--exit-when-idle-secs", "5"]);
    c.settled(Duration::from_secs(120)).await;
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT s.name, t.state, t.error FROM trials t JOIN sweeps s ON s.id = t.sweep_id ORDER BY s.name",
    )
    .fetch_all(&c.db)
    .await
    .unwrap();
    let named: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(named, ["h-arff", "h-good", "h-tsv", "h-xc"]);
    for (name, state, error) in &rows {
        let error = error.clone().unwrap_or_default();
        let (file, says) = match name.as_str() {
            "h-good" => {
                assert_eq!(state, "succeeded", "the worker still runs trials: {error}");
                continue;
            }
            "h-xc" => ("trillion.txt", "refused"),
            "h-arff" => ("wide.arff:", "refused"),
            _ => ("labels.tsv", "rows x labels: 20000 x 20000"),
        };
        assert_eq!(state, "failed", "{name}: the data's fault ({error})");
        assert!(error.contains(file) && error.contains(says), "{name}: {error}");
    }
    let states: Vec<String> = sqlx::query_scalar("SELECT state FROM workers").fetch_all(&c.db).await.unwrap();
    assert!(!states.iter().any(|s| s == "quarantined"), "no worker quarantined: {states:?}");
    c.check_invariants().await;
}
