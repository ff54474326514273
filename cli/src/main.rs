use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::json;
use sweep_cli::client::{status_error, Conn};
use sweep_cli::output::{self, params_inline, rank, trial_json, Format};
use sweep_proto as pb;

/// Run hyperparameter sweeps of imbalanced multi-label classifiers.
#[derive(Parser)]
#[command(name = "sweep", version)]
struct Cli {
    #[command(flatten)]
    conn: Conn,
    /// Output: a table for people, or json for scripts.
    #[arg(short = 'o', long, global = true, value_enum, default_value = "table")]
    output: Format,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Submit a sweep file; prints the sweep id. Resubmitting adds only new cells.
    Submit {
        file: PathBuf,
        /// Follow progress until the sweep ends.
        #[arg(long)]
        watch: bool,
    },
    /// Check a sweep file offline and show its trials with their resolved configs.
    Validate {
        file: PathBuf,
        /// Grid size cap (the coordinator's --max-trials).
        #[arg(long, default_value_t = 100_000)]
        max_trials: u64,
    },
    /// One sweep's progress, or every sweep.
    Status { sweep_id: Option<String> },
    /// A sweep's trials (in grid order, or ranked with --sort).
    Trials {
        sweep_id: String,
        /// Rank by this metric (e.g. test.f1_micro); `metric` means the sweep's objective.
        #[arg(long)]
        sort: Option<String>,
    },
    /// The best trial and a sweep file that re-runs its config.
    Best { sweep_id: String },
    /// Follow a sweep's progress until it ends.
    Watch { sweep_id: String },
    /// Cancel a sweep: queued trials are dropped, running ones stop at their next heartbeat.
    Cancel { sweep_id: String },
    /// Put failed and dead trials back in the queue.
    Retry {
        sweep_id: String,
        #[arg(long, required = true)]
        failed: bool,
    },
    /// Registered workers.
    Workers,
    /// Write a self-contained HTML report: leaderboard, curves, grid heatmap, label groups.
    Report {
        sweep_id: String,
        #[arg(long, default_value = "report.html")]
        out: PathBuf,
    },
    /// Run a sweep on this machine: a private Postgres, a coordinator and N workers,
    /// live progress, then the leaderboard. Everything stops at the end or on Ctrl-C.
    Local(sweep_cli::local::LocalArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("json"));
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let fmt = cli.output;
    match cli.cmd {
        Cmd::Validate { file, max_trials } => validate(&file, max_trials, fmt),
        Cmd::Local(args) => sweep_cli::local::run(args).await,
        Cmd::Report { sweep_id, out } => {
            let mut c = cli.conn.connect().await?;
            let html = sweep_cli::report::build(&mut c, &sweep_id).await?;
            std::fs::write(&out, html).with_context(|| format!("write {}", out.display()))?;
            eprintln!("wrote {}", out.display());
            Ok(())
        }
        Cmd::Submit { file, watch } => {
            let yaml = std::fs::read_to_string(&file).with_context(|| format!("read {}", file.display()))?;
            // Check locally first: a bad file never reaches the coordinator.
            let name = file.display().to_string();
            sweep_spec::parse(&yaml, &name, sweep_spec::Limits { max_trials: u64::MAX })
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut c = cli.conn.connect().await?;
            let r = c
                .submit_sweep(pb::SubmitSweepRequest { spec_yaml: yaml, source_name: name })
                .await
                .map_err(|s| status_error("submit", s))?
                .into_inner();
            match fmt {
                Format::Json => print_json(&json!({
                    "sweep_id": r.sweep_id, "created": r.created,
                    "trials_total": r.trials_total, "trials_added": r.trials_added})),
                Format::Table => {
                    println!("{}", r.sweep_id);
                    eprintln!(
                        "{} sweep: {} trials, {} new",
                        if r.created { "created" } else { "existing" },
                        r.trials_total,
                        r.trials_added
                    );
                }
            }
            if watch {
                let s = sweep_cli::watch::watch(&mut c, &r.sweep_id).await?;
                eprintln!("sweep {} {}: {}", s.name, s.state, output::counts_line(&s));
            }
            Ok(())
        }
        Cmd::Watch { sweep_id } => {
            let mut c = cli.conn.connect().await?;
            let s = sweep_cli::watch::watch(&mut c, &sweep_id).await?;
            eprintln!("sweep {} {}: {}", s.name, s.state, output::counts_line(&s));
            Ok(())
        }
        Cmd::Status { sweep_id } => {
            let mut c = cli.conn.connect().await?;
            let sweeps = match sweep_id {
                Some(id) => vec![c
                    .get_sweep(pb::GetSweepRequest { sweep_id: id })
                    .await
                    .map_err(|s| status_error("status", s))?
                    .into_inner()],
                None => {
                    c.list_sweeps(pb::ListSweepsRequest {})
                        .await
                        .map_err(|s| status_error("status", s))?
                        .into_inner()
                        .sweeps
                }
            };
            match fmt {
                Format::Json => {
                    print_json(&json!({"sweeps": sweeps.iter().map(output::sweep_json).collect::<Vec<_>>()}))
                }
                Format::Table => {
                    let mut t = output::table(&["sweep", "name", "state", "objective", "trials", "progress"]);
                    for s in &sweeps {
                        t.add_row(vec![
                            s.sweep_id.clone(),
                            s.name.clone(),
                            s.state.clone(),
                            format!("{} {}", s.metric_goal, s.metric_name),
                            s.total.to_string(),
                            output::counts_line(s),
                        ]);
                    }
                    println!("{t}");
                }
            }
            Ok(())
        }
        Cmd::Trials { sweep_id, sort } => {
            let mut c = cli.conn.connect().await?;
            let (sweep, trials) = sweep_cli::client::sweep_and_trials(&mut c, &sweep_id, "trials").await?;
            let metric = match sort.as_deref() {
                None | Some("metric") => sweep.metric_name.clone(),
                Some(m) => m.to_string(),
            };
            let goal = if metric.ends_with("loss") {
                "minimize"
            } else if metric == sweep.metric_name {
                sweep.metric_goal.as_str()
            } else {
                "maximize"
            };
            let ordered: Vec<&pb::Trial> =
                if sort.is_some() { rank(&trials, &metric, goal) } else { trials.iter().collect() };
            match fmt {
                Format::Json => {
                    print_json(&json!({"trials": ordered.iter().map(|t| trial_json(t)).collect::<Vec<_>>()}))
                }
                Format::Table => output::print_trials(&sweep, &ordered),
            }
            Ok(())
        }
        Cmd::Best { sweep_id } => {
            let mut c = cli.conn.connect().await?;
            let sweep = c
                .get_sweep(pb::GetSweepRequest { sweep_id: sweep_id.clone() })
                .await
                .map_err(|s| status_error("best", s))?
                .into_inner();
            let t = c
                .best_trial(pb::BestTrialRequest { sweep_id })
                .await
                .map_err(|s| status_error("best", s))?
                .into_inner();
            let config: serde_json::Value = serde_json::from_str(&t.config_json).unwrap_or_default();
            match fmt {
                Format::Json => {
                    let mut v = trial_json(&t);
                    v["config"] = config;
                    print_json(&v);
                }
                Format::Table => output::print_best(&sweep, &t)?,
            }
            Ok(())
        }
        Cmd::Cancel { sweep_id } => {
            let mut c = cli.conn.connect().await?;
            let r = c
                .cancel_sweep(pb::CancelSweepRequest { sweep_id })
                .await
                .map_err(|s| status_error("cancel", s))?
                .into_inner();
            match fmt {
                Format::Json => print_json(&json!({"cancelled": r.cancelled})),
                Format::Table => println!("cancelled {} trial(s)", r.cancelled),
            }
            Ok(())
        }
        Cmd::Retry { sweep_id, failed: _ } => {
            let mut c = cli.conn.connect().await?;
            let r = c
                .retry_failed(pb::RetryFailedRequest { sweep_id })
                .await
                .map_err(|s| status_error("retry", s))?
                .into_inner();
            match fmt {
                Format::Json => print_json(&json!({"requeued": r.requeued})),
                Format::Table => println!("requeued {} trial(s)", r.requeued),
            }
            Ok(())
        }
        Cmd::Workers => {
            let mut c = cli.conn.connect().await?;
            let ws = c
                .list_workers(pb::ListWorkersRequest {})
                .await
                .map_err(|s| status_error("workers", s))?
                .into_inner()
                .workers;
            match fmt {
                Format::Json => print_json(&json!({"workers": ws.iter().map(|w| json!({
                    "worker_id": w.worker_id, "name": w.name, "host": w.host, "gpus": w.gpus, "slots": w.slots,
                    "version": w.version, "state": w.state, "running": w.running, "last_seen_unix_ms": w.last_seen_unix_ms,
                })).collect::<Vec<_>>()})),
                Format::Table => {
                    let mut t = output::table(&["worker", "name", "host", "gpus", "slots", "running", "state"]);
                    for w in &ws {
                        t.add_row(vec![
                            w.worker_id[..8].to_string(),
                            w.name.clone(),
                            w.host.clone(),
                            if w.gpus.is_empty() { "cpu".into() } else { w.gpus.join(",") },
                            w.slots.to_string(),
                            w.running.to_string(),
                            w.state.clone(),
                        ]);
                    }
                    println!("{t}");
                }
            }
            Ok(())
        }
    }
}

fn validate(file: &std::path::Path, max_trials: u64, fmt: Format) -> anyhow::Result<()> {
    let yaml = std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?;
    let spec = sweep_spec::parse(&yaml, &file.display().to_string(), sweep_spec::Limits { max_trials })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let trials = spec.expand().map_err(|e| anyhow::anyhow!("{e}"))?;
    match fmt {
        Format::Json => print_json(&json!({
            "name": spec.name,
            "method": spec.method.as_str(),
            "count": trials.len(),
            "trials": trials.iter().map(|t| json!({"params": t.params, "config": t.config, "hash": t.hash})).collect::<Vec<_>>(),
        })),
        Format::Table => {
            let mut t = output::table(&["#", "params", "hash"]);
            for (i, tr) in trials.iter().enumerate() {
                t.add_row(vec![(i + 1).to_string(), params_inline(&json!(tr.params)), tr.hash[..12].to_string()]);
            }
            println!("{t}");
            eprintln!("{}: valid, {} {} trials", file.display(), trials.len(), spec.method.as_str());
        }
    }
    Ok(())
}
