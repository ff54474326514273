use anyhow::Context;
use clap::{Parser, Subcommand};
use sweep_client::{signal, telemetry};
use sweep_coordinator::db::{self, tokens};
use sweep_coordinator::{Coordinator, Settings};

/// The Sweep coordinator.
#[derive(Parser)]
#[command(name = "sweep-coordinator", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gRPC server (migrations run first).
    Serve(Box<Settings>),
    /// Apply migrations and exit.
    Migrate(DbArgs),
    /// API tokens: create (printed once), list, revoke. Run on the coordinator host.
    Token {
        #[command(subcommand)]
        cmd: TokenCmd,
    },
    /// Check the store's invariants (exit 1 on any violation). With --settled, every
    /// trial must also be in a terminal state.
    Check {
        #[arg(long)]
        settled: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Let a quarantined worker lease again.
    ClearQuarantine {
        worker_id: uuid::Uuid,
        #[command(flatten)]
        db: DbArgs,
    },
    /// TLS for users who have none: `tls init` makes a private CA and a server certificate.
    Tls {
        #[command(subcommand)]
        cmd: TlsCmd,
    },
    /// Revoke a worker's credential; its leases go back to the queue.
    RevokeWorker {
        worker_id: uuid::Uuid,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(clap::Args)]
struct DbArgs {
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
}

#[derive(Subcommand)]
enum TlsCmd {
    /// Write ca.pem + ca.key (kept if present) and server.pem + server.key into --dir.
    /// Serve with --tls-cert DIR/server.pem --tls-key DIR/server.key --tls-ca DIR/ca.pem;
    /// clients and workers trust DIR/ca.pem (--ca-file).
    Init {
        #[arg(long, default_value = "/etc/sweep/tls")]
        dir: std::path::PathBuf,
        /// A DNS name or IP address clients reach the coordinator at (repeatable).
        #[arg(long = "name", required = true)]
        names: Vec<String>,
        /// Days the server certificate is valid.
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
}

#[derive(Subcommand)]
enum TokenCmd {
    Create {
        /// admin or client for the CLI, join for enrolling workers
        #[arg(long)]
        role: tokens::Role,
        #[arg(long, default_value = "")]
        name: String,
        /// Write the token to this file (mode 0600) instead of stdout.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        #[command(flatten)]
        db: DbArgs,
    },
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    Revoke {
        id: uuid::Uuid,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init("info,sqlx=warn,h2=warn,tower=warn");
    match cli.cmd {
        Cmd::Serve(settings) => {
            if let Some(fds) = sweep_coordinator::conn::raise_descriptor_limit() {
                tracing::info!(fds, "open-file limit");
            }
            let coordinator = Coordinator::build(*settings).await?;
            coordinator.run(signal::shutdown_token()).await
        }
        Cmd::Migrate(a) => {
            db::connect(&a.database_url, 1).await?;
            eprintln!("migrations applied");
            Ok(())
        }
        Cmd::Token { cmd } => token(cmd).await,
        Cmd::Check { settled, db: a } => {
            let pool = db::connect(&a.database_url, 2).await?;
            let violations = sweep_coordinator::db::invariants::check(&pool, settled).await?;
            for (state, n) in sweep_coordinator::db::invariants::summary(&pool).await? {
                eprintln!("{state:>10} {n}");
            }
            for v in &violations {
                println!("violation: {v}");
            }
            anyhow::ensure!(violations.is_empty(), "{} invariant violation(s)", violations.len());
            eprintln!("invariants hold");
            Ok(())
        }
        Cmd::ClearQuarantine { worker_id, db: a } => {
            let pool = db::connect(&a.database_url, 1).await?;
            anyhow::ensure!(
                db::workers::clear_quarantine(&pool, worker_id).await?,
                "worker {worker_id} is not quarantined"
            );
            eprintln!("worker {worker_id} may lease again");
            Ok(())
        }
        Cmd::Tls { cmd: TlsCmd::Init { dir, names, days } } => {
            let w = sweep_coordinator::tls::init(&dir, &names, days)?;
            let ca = if w.reused_ca { "kept the CA in" } else { "made a CA in" };
            eprintln!("{ca} {}; server certificate for {}", dir.display(), names.join(", "));
            eprintln!(
                "serve with: --tls-cert {} --tls-key {} --tls-ca {}",
                w.server_cert.display(),
                w.server_key.display(),
                w.ca_cert.display()
            );
            eprintln!("clients and workers: --ca-file {}", w.ca_cert.display());
            Ok(())
        }
        Cmd::RevokeWorker { worker_id, db: a } => {
            let pool = db::connect(&a.database_url, 1).await?;
            let mut conn = pool.acquire().await?;
            let released =
                db::workers::revoke(&mut conn, worker_id).await?.with_context(|| format!("no worker {worker_id}"))?;
            eprintln!("revoked worker {worker_id}; {released} lease(s) returned to the queue");
            Ok(())
        }
    }
}

/// `sweep-coordinator token create | list | revoke`.
async fn token(cmd: TokenCmd) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::Create { role, name, out, db: a } => {
            let pool = db::connect(&a.database_url, 1).await?;
            let (id, token) = tokens::create(&pool, role, &name).await?;
            match out {
                Some(path) => {
                    write_secret(&path, &token)?;
                    eprintln!("created {} token {id}, written to {}", role.as_str(), path.display());
                }
                None => {
                    eprintln!("created {} token {id} (shown once):", role.as_str());
                    println!("{token}");
                }
            }
            Ok(())
        }
        TokenCmd::List { db: a } => {
            let pool = db::connect(&a.database_url, 1).await?;
            for t in tokens::list(&pool).await? {
                let revoked = t.revoked_at.map(|r| format!("revoked {r}")).unwrap_or_else(|| "live".into());
                println!("{}\t{}\t{}\t{}\t{}", t.id, t.role, t.name, t.created_at, revoked);
            }
            Ok(())
        }
        TokenCmd::Revoke { id, db: a } => {
            let pool = db::connect(&a.database_url, 1).await?;
            anyhow::ensure!(tokens::revoke(&pool, id).await?, "no live token {id}");
            eprintln!("revoked token {id}");
            Ok(())
        }
    }
}

fn write_secret(path: &std::path::Path, secret: &str) -> anyhow::Result<()> {
    sweep_client::files::write_atomic(path, format!("{secret}\n").as_bytes(), 0o600)
        .with_context(|| format!("write {}", path.display()))
}
