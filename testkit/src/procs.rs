//! Real processes: a coordinator, workers, the CLI, a database per test, and a TCP
//! proxy that can cut a link.

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sweep_coordinator::states::terminal_sql;
use tokio::net::{TcpListener, TcpStream};

pub const LEASE_MS: u32 = 3_000;

/// `SWEEP_TEST_LOGS=1`: workers log at info to the test's stderr (for debugging a test).
fn show_logs() -> bool {
    std::env::var_os("SWEEP_TEST_LOGS").is_some()
}

/// A binary of this workspace, beside the test executable's directory
/// (`target/<profile>/deps/..`); `cargo test --workspace` builds them all.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    dir.join(name)
}

/// Runs a command to completion and fails the test with its stderr if it fails.
pub fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().expect("spawn");
    assert!(out.status.success(), "{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// The contents of a file once it exists and is not empty (a port file, say).
pub fn wait_for_file(path: &Path, within: Duration) -> String {
    let start = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if !s.is_empty() {
                return s;
            }
        }
        assert!(start.elapsed() < within, "{} did not appear", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The body of `GET http://ADDR/PATH` (HTTP/1.0, so the server closes the connection), or
/// None while nothing answers there.
pub fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
}

/// The value of the first Prometheus sample line that starts with `prefix` (name and labels).
pub fn sample(body: &str, prefix: &str) -> Option<f64> {
    body.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

/// Scrapes `http://ADDR/metrics` until `ok` holds for the body (60 s at most).
pub fn scrape_until(addr: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        if let Some(body) = http_get(addr, "/metrics").filter(|b| ok(b)) {
            return body;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "timed out waiting for {what} at {addr}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Command lines of the processes that mention `needle` (to prove nothing was left running).
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        if e.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                out.push(cmd);
            }
        }
    }
    out
}

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub struct Proc(pub Child);

impl Proc {
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill").args([sig, &self.0.id().to_string()]).status();
    }
    pub fn wait_exit(&mut self, within: Duration) -> bool {
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

pub struct Cluster {
    pub db_url: String,
    pub db: PgPool,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub token: PathBuf,
    pub join: PathBuf,
}

impl Cluster {
    pub async fn new() -> Option<Cluster> {
        let db_url = crate::fresh_database().await?;
        Some(Self::on(db_url).await)
    }

    pub async fn on(db_url: String) -> Cluster {
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

    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A coordinator with the suite's lease ([`LEASE_MS`]) and 500 ms heartbeats.
    pub fn coordinator(&self) -> Proc {
        self.coordinator_with_lease(LEASE_MS, 500)
    }

    /// A coordinator with its own lease and heartbeat period (a worker is gone after
    /// three lease lengths of silence).
    pub fn coordinator_with_lease(&self, lease_ms: u32, heartbeat_ms: u32) -> Proc {
        self.coordinator_with(lease_ms, heartbeat_ms, &[])
    }

    /// A coordinator with its own lease, heartbeat period and further flags.
    pub fn coordinator_with(&self, lease_ms: u32, heartbeat_ms: u32, extra: &[&str]) -> Proc {
        self.coordinator_on(self.port, lease_ms, heartbeat_ms, extra)
    }

    /// A coordinator on `port` (a second one on the same database, say).
    pub fn coordinator_on(&self, port: u16, lease_ms: u32, heartbeat_ms: u32, extra: &[&str]) -> Proc {
        self.coordinator_env(port, lease_ms, heartbeat_ms, extra, &[])
    }

    /// A coordinator on `port` with further flags and environment (e.g. the AWS endpoint).
    pub fn coordinator_env(
        &self,
        port: u16,
        lease_ms: u32,
        heartbeat_ms: u32,
        extra: &[&str],
        env: &[(&str, String)],
    ) -> Proc {
        let port_file = self.dir.path().join(format!("addr-{}", rand_suffix()));
        let child = Command::new(bin("sweep-coordinator"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database-url", &self.db_url])
            .args([
                "--lease-ms",
                &lease_ms.to_string(),
                "--heartbeat-ms",
                &heartbeat_ms.to_string(),
                "--reap-ms",
                "200",
                "--backoff-ms",
                "100",
            ])
            .args(extra)
            .arg("--port-file")
            .arg(&port_file)
            .envs(env.iter().map(|(k, v)| (k, v)))
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

    pub fn worker(&self, name: &str, coordinator: &str, extra: &[&str]) -> Proc {
        self.worker_with(Command::new(bin("sweep-worker")), name, coordinator, extra)
    }

    /// A worker started through `cmd` (e.g. a wrapper such as faketime).
    pub fn worker_with(&self, mut cmd: Command, name: &str, coordinator: &str, extra: &[&str]) -> Proc {
        Proc(
            cmd.args(["run", "--device", "cpu", "--name", name, "--coordinator", coordinator])
                .args(extra)
                .env("SWEEP_JOIN_TOKEN_FILE", &self.join)
                .env("RUST_LOG", if show_logs() { "info" } else { "warn" })
                .env("OMP_NUM_THREADS", "1")
                .stderr(if show_logs() { Stdio::inherit() } else { Stdio::null() })
                .spawn()
                .unwrap(),
        )
    }

    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        self.cli_at(&self.addr(), args)
    }

    /// The CLI against the coordinator at `addr`.
    pub fn cli_at(&self, addr: &str, args: &[&str]) -> std::process::Output {
        Command::new(bin("sweep"))
            .args(args)
            .args(["--coordinator", addr])
            .env("SWEEP_TOKEN_FILE", &self.token)
            .output()
            .unwrap()
    }

    /// Submits a grid of `trials` tiny synthetic trials of `epochs` epochs each.
    pub fn submit(&self, trials: usize, epochs: u32, dataset: &str) -> String {
        self.submit_with(trials, epochs, dataset, 3)
    }

    pub fn submit_with(&self, trials: usize, epochs: u32, dataset: &str, max_attempts: u32) -> String {
        let seeds: Vec<usize> = (0..trials).collect();
        let yaml = format!(
            "name: faults\nmax_attempts: {max_attempts}\n\
             dataset: {dataset}\n\
             model: {{hidden: [512], dropout: 0.0}}\n\
             train: {{epochs: {epochs}, patience: 0, batch_size: 256}}\n\
             parameters:\n  train.seed: {{values: {seeds:?}}}\n"
        );
        self.submit_yaml(&yaml)
    }

    /// Submits a sweep file; returns the sweep's id.
    pub fn submit_yaml(&self, yaml: &str) -> String {
        let path = self.dir.path().join("sweep.yaml");
        std::fs::write(&path, yaml).unwrap();
        // Workers read data from their own disk here (as in a cluster with shared storage).
        let out = self.cli(&["submit", path.to_str().unwrap(), "--no-upload"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    pub async fn wait_for(&self, what: &str, within: Duration, sql: &str) {
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

    pub async fn settled(&self, within: Duration) {
        self.wait_for(
            "every trial to settle",
            within,
            &format!("SELECT count(*) = 0 FROM trials WHERE state NOT IN {}", terminal_sql()),
        )
        .await;
    }

    pub async fn check_invariants(&self) {
        let v = sweep_coordinator::db::invariants::check(&self.db, true).await.unwrap();
        assert!(v.is_empty(), "invariant violations: {v:#?}");
    }

    pub async fn trial(&self) -> (String, i32, i32, i32, Option<uuid::Uuid>) {
        sqlx::query_as("SELECT state, attempt, lost_count, error_count, finished_by FROM trials ORDER BY seq LIMIT 1")
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    pub async fn worker_id(&self, name: &str) -> uuid::Uuid {
        let (id,): (uuid::Uuid,) =
            sqlx::query_as("SELECT id FROM workers WHERE name = $1").bind(name).fetch_one(&self.db).await.unwrap();
        id
    }
}

pub fn rand_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

/// Small enough to load in a moment, big enough that an epoch takes a noticeable
/// fraction of a second on two cores, so trials last several lease lengths.
pub const TINY: &str =
    "{kind: synthetic, labels: 200, features: 256, train_samples: 20000, test_samples: 500, max_positives: 2000}";

/// A TCP proxy that can cut the link: while cut, open connections are dropped and new
/// ones are closed at once.
pub struct Proxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
}

impl Proxy {
    pub async fn start(upstream: u16) -> Proxy {
        Self::start_delayed(upstream, Duration::ZERO).await
    }

    /// A proxy that holds every chunk coming back from upstream for `delay`: requests
    /// arrive at once, their answers late (a window in which to kill the caller).
    pub async fn start_delayed(upstream: u16, delay: Duration) -> Proxy {
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
                    if delay.is_zero() {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut down, &mut up) => {}
                            _ = watch => {}
                        }
                    } else {
                        let (mut down_r, mut down_w) = down.split();
                        let (mut up_r, mut up_w) = up.split();
                        let back = async {
                            use tokio::io::{AsyncReadExt, AsyncWriteExt};
                            let mut buf = vec![0u8; 64 * 1024];
                            loop {
                                let n = up_r.read(&mut buf).await?;
                                if n == 0 {
                                    return Ok::<_, std::io::Error>(());
                                }
                                tokio::time::sleep(delay).await;
                                down_w.write_all(&buf[..n]).await?;
                            }
                        };
                        tokio::select! {
                            _ = tokio::io::copy(&mut down_r, &mut up_w) => {}
                            _ = back => {}
                            _ = watch => {}
                        }
                    }
                });
            }
        });
        Proxy { port, cut }
    }
    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
    }
}

/// An EC2 API emulator (moto) on a free port, stopped on drop. Found in any `python3`
/// on PATH that has moto (or `SWEEP_MOTO_PYTHON`); `None` (skip) when there is none.
pub struct Moto {
    pub port: u16,
    _proc: Proc,
}

impl Moto {
    pub fn start() -> Option<Moto> {
        let candidates: Vec<PathBuf> = std::env::var_os("SWEEP_MOTO_PYTHON")
            .map(PathBuf::from)
            .into_iter()
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).map(|d| d.join("python3")))
            .filter(|p| p.is_file())
            .collect();
        let has_moto = |p: &PathBuf| {
            Command::new(p)
                .args(["-c", "import moto.server, flask"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let Some(python) = candidates.into_iter().find(has_moto) else {
            return crate::skip("no python3 on PATH has moto (scripts/setup.sh installs it)");
        };
        let port = free_port();
        let child = Command::new(python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            // Refuse instance types and images EC2 would refuse.
            .env("MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION", "true")
            .env("MOTO_ENABLE_AMI_VALIDATION", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let moto = Moto { port, _proc: Proc(child) };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(30), "moto did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(moto)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment that points the AWS SDK of a coordinator at this emulator
    /// (or at `endpoint`, e.g. a proxy in front of it).
    pub fn env(endpoint: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", endpoint.to_string()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_CONFIG_FILE", "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
        ]
    }
}

/// Every file under `dir`, recursively (none when it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}
