//! `sweep local FILE`: everything on one machine. A private PostgreSQL cluster kept
//! in a data directory (reused across runs), a coordinator on a free port, N worker
//! processes; submits the sweep, shows live progress, prints the leaderboard, and
//! shuts everything down in order (workers, coordinator, Postgres) on completion or
//! Ctrl-C. Children run in their own process groups so a terminal's Ctrl-C reaches
//! only this process, which stops them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use std::os::unix::process::CommandExt;
use sweep_proto as pb;

use tokio_util::sync::CancellationToken;

use crate::client::{status_error, Conn};
use crate::output::{self, rank};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The sweep file (default: the seed grid, examples/seed-grid.yaml, built in).
    pub file: Option<PathBuf>,
    /// Worker processes to start.
    #[arg(long, default_value_t = 2)]
    pub workers: u32,
    /// Where the cluster, tokens and logs live (default: ~/.local/share/sweep/local).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Device for the workers: auto, cpu or cuda.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Also write the HTML report here before shutting down.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// The seed grid, for `sweep local` with no file.
pub const SEED_GRID: &str = include_str!("../../../examples/seed-grid.yaml");

fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return Ok(PathBuf::from(d).join("sweep/local"));
    }
    let home = std::env::var_os("HOME").context("HOME is not set; pass --data-dir")?;
    Ok(PathBuf::from(home).join(".local/share/sweep/local"))
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// Runs a shell command, as the `postgres` user when we are root (initdb refuses root).
fn pg_cmd(script: &str) -> Command {
    if is_root() {
        let mut c = Command::new("su");
        c.args(["postgres", "-s", "/bin/sh", "-c", script]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }
}

fn pg_bin() -> anyhow::Result<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok())
    });
    if let Some(p) = found.pop() {
        return Ok(p);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        if Path::new(dir).join("initdb").exists() {
            return Ok(PathBuf::from(dir));
        }
    }
    bail!("PostgreSQL is not installed (no initdb found): install the `postgresql` package (scripts/setup.sh does)")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl Postgres {
    /// Starts (creating on first use) the cluster for this data directory.
    fn start(data_dir: &Path) -> anyhow::Result<Postgres> {
        let bin = pg_bin()?;
        // Root's home is closed to the `postgres` user: keep the cluster where it can
        // reach it, one per data directory.
        let dir = if is_root() {
            let key = hex_prefix(&Sha256::digest(data_dir.to_string_lossy().as_bytes()));
            let d = PathBuf::from("/var/lib/sweep").join(format!("local-pg-{key}"));
            std::fs::write(data_dir.join("postgres-location"), format!("{}\n", d.display()))?;
            d
        } else {
            data_dir.join("pg")
        };
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        if is_root() {
            let ok = Command::new("chown").args(["-R", "postgres"]).arg(&dir).status()?.success()
                && Command::new("chmod").arg("700").arg(&dir).status()?.success();
            anyhow::ensure!(ok, "cannot hand {} to the postgres user", dir.display());
        }
        let q = |p: &Path| format!("'{}'", p.display());
        if !dir.join("PG_VERSION").exists() {
            eprintln!("sweep local: creating a PostgreSQL cluster in {}", dir.display());
            let out = pg_cmd(&format!("{} -D {} -A trust -U postgres", q(&bin.join("initdb")), q(&dir))).output()?;
            anyhow::ensure!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let port = free_port()?;
        let running = pg_cmd(&format!("{} -D {} status", q(&bin.join("pg_ctl")), q(&dir))).output()?.status.success();
        if running {
            // Left running by a run that was killed: use it as it is.
            let pid = std::fs::read_to_string(dir.join("postmaster.pid"))?;
            let port = pid.lines().nth(3).and_then(|l| l.trim().parse().ok()).context("read postmaster.pid")?;
            return Ok(Postgres { bin, dir, port });
        }
        let out = pg_cmd(&format!(
            "{} -D {} -w -t 60 -l {} -o \"-k {} -p {port} -c listen_addresses=127.0.0.1\" start",
            q(&bin.join("pg_ctl")),
            q(&dir),
            q(&dir.join("log")),
            q(&dir)
        ))
        .output()?;
        anyhow::ensure!(
            out.status.success(),
            "PostgreSQL did not start (see {}): {}",
            dir.join("log").display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(Postgres { bin, dir, port })
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A fast shutdown: committed data is safe, open connections are closed.
    fn stop(&self) {
        let q = |p: &Path| format!("'{}'", p.display());
        let _ = pg_cmd(&format!("{} -D {} -m fast -w stop", q(&self.bin.join("pg_ctl")), q(&self.dir)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// Child processes, stopped in reverse order of start: SIGTERM, then SIGKILL after a grace.
struct Children(Vec<(String, Child)>);

impl Children {
    fn spawn(&mut self, name: &str, cmd: &mut Command, log: &Path) -> anyhow::Result<()> {
        let log = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("start {name}"))?;
        self.0.push((name.to_string(), child));
        Ok(())
    }

    fn stop_all(&mut self, grace: Duration) {
        while let Some((_, mut child)) = self.0.pop() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let start = Instant::now();
            while start.elapsed() < grace {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.stop_all(Duration::from_secs(5));
    }
}

fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let p = exe.with_file_name(name);
    anyhow::ensure!(
        p.exists(),
        "{} not found beside {} (build the workspace: cargo build --release)",
        name,
        exe.display()
    );
    Ok(p)
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    // From the first moment: Ctrl-C stops what has been started, in order.
    let interrupted = sweep_client::signal::shutdown_token();
    let (yaml, source) = match &args.file {
        Some(f) => {
            (std::fs::read_to_string(f).with_context(|| format!("read {}", f.display()))?, f.display().to_string())
        }
        None => (SEED_GRID.to_string(), "seed-grid.yaml (built in)".to_string()),
    };
    sweep_file::parse_and_expand(&yaml, &source, sweep_file::Limits::default())?;
    let data = match &args.data_dir {
        Some(d) => d.clone(),
        None => default_data_dir()?,
    };
    std::fs::create_dir_all(&data).with_context(|| format!("create {}", data.display()))?;
    let data = data.canonicalize()?;
    let bins = Bins { coordinator: sibling("sweep-coordinator")?, worker: sibling("sweep-worker")? };

    let pg = Postgres::start(&data)?;
    let result = with_postgres(&args, &data, &pg, &bins, yaml, source, &interrupted).await;
    pg.stop();
    eprintln!("sweep local: stopped; data kept in {}", data.display());
    result
}

/// The binaries `sweep local` starts, found beside `sweep`.
struct Bins {
    coordinator: PathBuf,
    worker: PathBuf,
}

/// Runs a command to completion; its stderr is the error.
fn run_ok(c: &mut Command) -> anyhow::Result<()> {
    let out = c.output()?;
    anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr).trim());
    Ok(())
}

/// Migrates the database and makes the admin and join tokens on first use.
fn prepare(bins: &Bins, url: &str, data: &Path) -> anyhow::Result<()> {
    run_ok(Command::new(&bins.coordinator).args(["migrate", "--database-url", url]))?;
    for (role, path) in [("admin", data.join("token")), ("join", data.join("join-token"))] {
        if !path.exists() {
            run_ok(
                Command::new(&bins.coordinator)
                    .args(["token", "create", "--role", role, "--name", "sweep-local", "--database-url", url, "--out"])
                    .arg(path),
            )?;
        }
    }
    Ok(())
}

/// Starts the coordinator on a free port and returns its URL once it listens.
async fn start_coordinator(children: &mut Children, bins: &Bins, url: &str, data: &Path) -> anyhow::Result<String> {
    let addr_file = data.join("coordinator.addr");
    let _ = std::fs::remove_file(&addr_file);
    let log = data.join("coordinator.log");
    let mut cmd = Command::new(&bins.coordinator);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--database-url", url, "--blob-store"]).arg(data.join("blobs"));
    cmd.arg("--port-file").arg(&addr_file);
    children.spawn("coordinator", &mut cmd, &log)?;
    let start = Instant::now();
    loop {
        if let Ok(a) = std::fs::read_to_string(&addr_file) {
            return Ok(format!("http://{}", a.trim()));
        }
        if let Some((_, c)) = children.0.first_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                bail!("the coordinator exited ({status}); see {}", log.display());
            }
        }
        anyhow::ensure!(start.elapsed() < Duration::from_secs(60), "the coordinator did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts `n` workers that split this machine's cores, so their libtorch thread pools do not fight.
fn start_workers(children: &mut Children, bins: &Bins, args: &Args, addr: &str, data: &Path) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
    let threads = (cores / args.workers.max(1)).max(1).to_string();
    for i in 1..=args.workers {
        children.spawn(
            &format!("worker {i}"),
            Command::new(&bins.worker)
                .args(["run", "--coordinator", addr, "--device", &args.device, "--grace-secs", "0"])
                .args(["--name", &format!("local-{i}"), "--threads", &threads])
                .env("SWEEP_JOIN_TOKEN_FILE", data.join("join-token")),
            &data.join(format!("worker-{i}.log")),
        )?;
    }
    Ok(())
}

async fn with_postgres(
    args: &Args,
    data: &Path,
    pg: &Postgres,
    bins: &Bins,
    yaml: String,
    source: String,
    interrupted: &CancellationToken,
) -> anyhow::Result<()> {
    let url = pg.url();
    prepare(bins, &url, data)?;
    let mut children = Children(Vec::new());
    let addr = start_coordinator(&mut children, bins, &url, data).await?;
    start_workers(&mut children, bins, args, &addr, data)?;
    eprintln!("sweep local: coordinator {addr}, {} worker(s), data in {}", args.workers, data.display());
    let conn = Conn::local(addr.clone(), data.join("token"));
    // The data files go in as blobs, found as `sweep submit` finds them (beside the sweep
    // file, then here, then under $SWEEP_DATA_DIR), so workers read what a remote one would.
    let (_, trials) = sweep_file::parse_and_expand(&yaml, &source, sweep_file::Limits::default())?;
    let sweep_path = args.file.clone().unwrap_or_default();
    let data_blobs = super::submit::upload_data(&trials, &sweep_path, &sweep_file::data_dir(), &conn).await?;
    let mut client = conn.connect().await?;
    let sub = client
        .submit_sweep(pb::SubmitSweepRequest {
            spec_yaml: yaml,
            source_name: source,
            data_blobs: data_blobs.into_iter().collect(),
        })
        .await
        .map_err(|s| status_error("submit", s))?
        .into_inner();
    eprintln!("sweep local: sweep {} ({} trials, {} new)", sub.sweep_id, sub.trials_total, sub.trials_added);
    eprintln!(
        "sweep local: live at {addr}/sweeps/{} (sign in with the token in {})",
        sub.sweep_id,
        data.join("token").display()
    );
    let watched = tokio::select! {
        r = crate::watch::watch(&mut client, &sub.sweep_id) => r.map(Some),
        _ = interrupted.cancelled() => Ok(None),
    };
    if watched?.is_none() {
        eprintln!("sweep local: interrupted; stopping workers (running trials go back to the queue)");
        return Ok(()); // `children` stops workers, then the coordinator, on drop
    }
    print_summary(&mut client, &sub.sweep_id).await?;
    if let Some(path) = &args.report {
        let html = crate::report::build(&mut client, &sub.sweep_id).await?;
        std::fs::write(path, html).with_context(|| format!("write {}", path.display()))?;
        eprintln!("sweep local: report written to {}", path.display());
    }
    children.stop_all(Duration::from_secs(10));
    Ok(())
}

/// Prints the leaderboard, the best config and every sweep this data directory holds.
pub async fn print_summary(client: &mut crate::client::Client, sweep_id: &str) -> anyhow::Result<()> {
    let (sweep, trials) = crate::client::sweep_and_trials(client, sweep_id, "status").await?;
    println!("\nleaderboard of {} ({}):", sweep.name, output::counts_line(&sweep));
    let rules = crate::objectives::Rules::of(&sweep);
    output::print_trials(&sweep, &rank(&trials, &sweep.metric_name, sweep.metric_goal()), &rules);
    if trials.iter().any(|t| t.state() == pb::TrialState::Succeeded) {
        super::best::show(client, &sweep, &trials, &rules, output::Format::Table).await?;
    }
    let all = client.list_sweeps(pb::ListSweepsRequest {}).await.map_err(|s| status_error("status", s))?.into_inner();
    println!("\nsweeps in this data directory:");
    let mut t = output::table(&["sweep", "name", "state", "progress"]);
    for s in &all.sweeps {
        t.add_row(vec![s.sweep_id.clone(), s.name.clone(), s.state().name().to_string(), output::counts_line(s)]);
    }
    println!("{t}");
    Ok(())
}
