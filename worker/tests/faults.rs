//! Fault injection with real processes: a coordinator, workers and the CLI as separate
//! processes, a real Postgres, and a TCP proxy in the test to cut a worker's link. Each
//! case ends with the invariant checker. Cases run one at a time (a shared lock) so that
//! lease timing does not depend on how many other cases load the two cores.

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::net::{TcpListener, TcpStream};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const LEASE_MS: u32 = 3_000;

fn bin(name: &str) -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_sweep-worker")).with_file_name(name)
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Proc(Child);

impl Proc {
    fn signal(&self, sig: &str) {
        let _ = Command::new("kill").args([sig, &self.0.id().to_string()]).status();
    }
    fn wait_exit(&mut self, within: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < within {
            if self.0.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Cluster {
    db_url: String,
    db: PgPool,
    dir: tempfile::TempDir,
    port: u16,
    token: PathBuf,
    join: PathBuf,
}

impl Cluster {
    async fn new() -> Option<Cluster> {
        let db_url = sweep_coordinator::testing::fresh_database().await?;
        Some(Self::on(db_url).await)
    }

    async fn on(db_url: String) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let (token, join) = (dir.path().join("token"), dir.path().join("join"));
        let coord = bin("sweep-coordinator");
        let migrated = Command::new(&coord).args(["migrate", "--database-url", &db_url]).stderr(Stdio::null()).status();
        assert!(migrated.unwrap().success());
        for (role, out) in [("admin", &token), ("join", &join)] {
            let ok = Command::new(&coord)
                .args(["token", "create", "--role", role, "--database-url", &db_url, "--out"])
                .arg(out)
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let db = PgPool::connect(&db_url).await.unwrap();
        Cluster { db_url, db, dir, port: free_port(), token, join }
    }

    fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn coordinator(&self) -> Proc {
        let port_file = self.dir.path().join(format!("addr-{}", rand_suffix()));
        let child = Command::new(bin("sweep-coordinator"))
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port), "--database-url", &self.db_url])
            .args([
                "--lease-ms",
                &LEASE_MS.to_string(),
                "--heartbeat-ms",
                "500",
                "--reap-ms",
                "200",
                "--backoff-ms",
                "100",
            ])
            .arg("--port-file")
            .arg(&port_file)
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while !port_file.exists() {
            assert!(start.elapsed() < Duration::from_secs(30), "coordinator did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Proc(child)
    }

    fn worker(&self, name: &str, coordinator: &str, extra: &[&str]) -> Proc {
        Proc(
            Command::new(bin("sweep-worker"))
                .args(["run", "--device", "cpu", "--name", name, "--coordinator", coordinator])
                .args(extra)
                .env("SWEEP_JOIN_TOKEN_FILE", &self.join)
                .env("RUST_LOG", "warn")
                .env("OMP_NUM_THREADS", "1")
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin("sweep"))
            .args(args)
            .args(["--coordinator", &self.addr()])
            .env("SWEEP_TOKEN_FILE", &self.token)
            .output()
            .unwrap()
    }

    /// Submits a grid of `trials` tiny synthetic trials of `epochs` epochs each.
    fn submit(&self, trials: usize, epochs: u32, dataset: &str) -> String {
        let seeds: Vec<usize> = (0..trials).collect();
        let yaml = format!(
            "name: faults\nmax_attempts: 3\n\
             dataset: {dataset}\n\
             model: {{hidden: [512], dropout: 0.0}}\n\
             train: {{epochs: {epochs}, patience: 0, batch_size: 256}}\n\
             parameters:\n  train.seed: {{values: {seeds:?}}}\n"
        );
        let path = self.dir.path().join("sweep.yaml");
        std::fs::write(&path, yaml).unwrap();
        let out = self.cli(&["submit", path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    async fn wait_for(&self, what: &str, within: Duration, sql: &str) {
        let start = Instant::now();
        loop {
            let (ok,): (bool,) = sqlx::query_as(sql).fetch_one(&self.db).await.unwrap();
            if ok {
                return;
            }
            assert!(start.elapsed() < within, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn settled(&self, within: Duration) {
        self.wait_for(
            "every trial to settle",
            within,
            "SELECT count(*) = 0 FROM trials WHERE state NOT IN ('succeeded','failed','cancelled','dead')",
        )
        .await;
    }

    async fn check_invariants(&self) {
        let v = sweep_coordinator::invariants::check(&self.db, true).await.unwrap();
        assert!(v.is_empty(), "invariant violations: {v:#?}");
    }

    async fn trial(&self) -> (String, i32, i32, i32, Option<uuid::Uuid>) {
        sqlx::query_as("SELECT state, attempt, lost_count, error_count, finished_by FROM trials ORDER BY seq LIMIT 1")
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    async fn worker_id(&self, name: &str) -> uuid::Uuid {
        let (id,): (uuid::Uuid,) =
            sqlx::query_as("SELECT id FROM workers WHERE name = $1").bind(name).fetch_one(&self.db).await.unwrap();
        id
    }
}

fn rand_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

/// Small enough to load in a moment, big enough that an epoch takes a noticeable
/// fraction of a second on two cores, so trials last several lease lengths.
const TINY: &str =
    "{kind: synthetic, labels: 200, features: 256, train_samples: 20000, test_samples: 500, max_positives: 2000}";

/// A TCP proxy that can cut the link: while cut, open connections are dropped and new
/// ones are closed at once.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
}

impl Proxy {
    async fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let flag = cut.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut down, _)) = listener.accept().await else { return };
                if flag.load(Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                let flag = flag.clone();
                tokio::spawn(async move {
                    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)).await else { return };
                    let watch = async {
                        while !flag.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut down, &mut up) => {}
                        _ = watch => {}
                    }
                });
            }
        });
        Proxy { port, cut }
    }
    fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
    }
}

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
