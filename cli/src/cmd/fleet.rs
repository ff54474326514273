//! `sweep fleet up | ls | status | down`: GPU instances the coordinator launches,
//! enrols as workers and retires (admin token).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use serde_json::json;
use sweep_proto as pb;

use crate::client::{status_error, Conn};
use crate::output::{self, Format};

/// Launching more than this many instances asks for `--yes`.
const ASK_ABOVE: u32 = 4;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Launch a fleet; prints its id. It scales to zero when its sweeps have nothing to
    /// do for --idle-minutes, and ends at --max-hours.
    Up(Box<UpArgs>),
    /// Every fleet, with its instance counts.
    Ls,
    /// A fleet's instances: state, worker, trials, uptime, instance-hours.
    Status { fleet_id: String },
    /// Set a fleet's budget in USD; a raise relaunches a fleet whose budget was spent.
    Budget {
        fleet_id: String,
        #[arg(value_parser = super::budget::usd, allow_negative_numbers = true)]
        max_cost_usd: f64,
    },
    /// Terminate every instance of a fleet, wait until they are gone, say what ended.
    Down {
        fleet_id: String,
        /// How long to wait for the provider to report every instance terminated.
        #[arg(long, default_value_t = 300)]
        wait_secs: u64,
    },
}

#[derive(clap::Args)]
pub struct UpArgs {
    /// e.g. g5.xlarge (ec2); anything for the local provider.
    #[arg(long, default_value = "")]
    instance_type: String,
    #[arg(long, default_value_t = 1)]
    count: u32,
    /// Refuse a fleet larger than this (default: --count).
    #[arg(long)]
    max_count: Option<u32>,
    /// Spot instances (one-time requests, terminated on reclaim and replaced).
    #[arg(long)]
    spot: bool,
    /// Serve only this sweep (repeatable; default: every sweep).
    #[arg(long = "sweep")]
    sweeps: Vec<String>,
    #[arg(long, default_value_t = 8.0)]
    max_hours: f64,
    #[arg(long, default_value_t = 15.0)]
    idle_minutes: f64,
    /// ec2, or local (instances as processes on the coordinator's machine).
    #[arg(long, default_value = "ec2")]
    provider: String,
    #[arg(long, default_value = "")]
    region: String,
    #[arg(long, default_value = "")]
    subnet: String,
    /// Security group id (repeatable).
    #[arg(long = "security-group")]
    security_groups: Vec<String>,
    /// AMI (default: the newest AWS Deep Learning Base GPU AMI in the region).
    #[arg(long, default_value = "")]
    image: String,
    #[arg(long, default_value = "")]
    key_name: String,
    /// Instance profile name or ARN.
    #[arg(long, default_value = "")]
    instance_profile: String,
    /// USD per instance-hour, for the fleet's cost (default: EC2's spot price history
    /// for --spot, else the coordinator's dated on-demand table; local: free).
    #[arg(long, default_value_t = 0.0)]
    price_per_hour: f64,
    /// What the fleet's instances may cost in all, in USD: before it would pass, the
    /// workers hand their trials back (checkpointed) and the fleet scales to zero.
    #[arg(long, value_parser = super::budget::usd, allow_negative_numbers = true)]
    max_cost: Option<f64>,
    /// Launch more than 4 instances without asking.
    #[arg(long)]
    yes: bool,
    /// Check and price the fleet, say what it would cost per hour and at most; launch nothing.
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(cmd: Cmd, conn: &Conn, fmt: Format) -> anyhow::Result<()> {
    match cmd {
        Cmd::Up(a) => up(*a, conn, fmt).await,
        Cmd::Ls => {
            let mut c = conn.connect().await?;
            let r = c.list_fleets(pb::ListFleetsRequest {}).await.map_err(|s| status_error("fleet ls", s))?;
            let fleets = r.into_inner().fleets;
            match fmt {
                Format::Json => output::print_json(&json!(fleets.iter().map(output::fleet_json).collect::<Vec<_>>())),
                Format::Table => output::print_fleets(&fleets),
            }
            Ok(())
        }
        Cmd::Status { fleet_id } => {
            let mut c = conn.connect().await?;
            let f = c
                .get_fleet(pb::GetFleetRequest { fleet_id })
                .await
                .map_err(|s| status_error("fleet status", s))?
                .into_inner();
            match fmt {
                Format::Json => output::print_json(&output::fleet_json(&f)),
                Format::Table => output::print_fleet(&f),
            }
            Ok(())
        }
        Cmd::Down { fleet_id, wait_secs } => down(&fleet_id, wait_secs, conn, fmt).await,
        Cmd::Budget { fleet_id, max_cost_usd } => {
            let req = pb::SetBudgetRequest { sweep_id: String::new(), fleet_id, max_cost_usd };
            super::budget::set(req, conn, fmt).await
        }
    }
}

/// Asks on a terminal; refuses without one.
fn confirm(a: &UpArgs) -> anyhow::Result<()> {
    if a.yes || a.count <= ASK_ABOVE {
        return Ok(());
    }
    let what = format!("{} {} instance(s){}", a.count, a.instance_type, if a.spot { " (spot)" } else { "" });
    anyhow::ensure!(std::io::stdin().is_terminal(), "launching {what}: pass --yes to confirm");
    eprint!("launch {what}? [y/N] ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    anyhow::ensure!(matches!(line.trim(), "y" | "Y" | "yes"), "not launched");
    Ok(())
}

async fn up(a: UpArgs, conn: &Conn, fmt: Format) -> anyhow::Result<()> {
    if !a.dry_run {
        confirm(&a)?;
    }
    let dry_run = a.dry_run;
    let mut c = conn.connect().await?;
    let req = pb::CreateFleetRequest {
        spec: Some(pb::FleetSpec {
            provider: a.provider,
            instance_type: a.instance_type,
            spot: a.spot,
            region: a.region,
            subnet: a.subnet,
            security_groups: a.security_groups,
            image: a.image,
            key_name: a.key_name,
            instance_profile: a.instance_profile,
        }),
        count: a.count,
        max_count: a.max_count.unwrap_or(0),
        max_hours: a.max_hours,
        idle_minutes: a.idle_minutes,
        sweep_ids: a.sweeps,
        price_per_hour: a.price_per_hour,
        max_cost_usd: a.max_cost.unwrap_or(0.0),
        dry_run,
    };
    let r = c.create_fleet(req).await.map_err(|s| status_error("fleet up", s))?.into_inner();
    if dry_run {
        let f = r.fleet.unwrap_or_default();
        match fmt {
            Format::Json => output::print_json(&output::fleet_json(&f)),
            Format::Table => output::print_plan(&f),
        }
        return Ok(());
    }
    match fmt {
        Format::Json => output::print_json(&json!({"fleet_id": r.fleet_id})),
        Format::Table => {
            if let Some(f) = &r.fleet {
                eprintln!(
                    "fleet {}: {} x {} launching ({}), idle after {} min, ends after {} h; ${}/instance-hour ({})",
                    r.fleet_id,
                    f.desired,
                    f.spec.as_ref().map(|s| s.instance_type.as_str()).unwrap_or(""),
                    f.spec.as_ref().map(|s| s.provider.as_str()).unwrap_or(""),
                    f.idle_minutes,
                    f.max_hours,
                    f.price_per_hour,
                    f.price_source
                );
            }
            println!("{}", r.fleet_id);
        }
    }
    Ok(())
}

async fn down(fleet_id: &str, wait_secs: u64, conn: &Conn, fmt: Format) -> anyhow::Result<()> {
    let mut c = conn.connect().await?;
    let mut f = c
        .down_fleet(pb::DownFleetRequest { fleet_id: fleet_id.into() })
        .await
        .map_err(|s| status_error("fleet down", s))?
        .into_inner();
    let start = Instant::now();
    while f.instances.iter().any(|i| i.state() != pb::InstanceState::Terminated) {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(wait_secs),
            "fleet {fleet_id}: {} instance(s) not yet terminated after {wait_secs} s (the coordinator keeps trying; \
             see `sweep fleet status {fleet_id}`)",
            f.instances.iter().filter(|i| i.state() != pb::InstanceState::Terminated).count()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        f = c
            .get_fleet(pb::GetFleetRequest { fleet_id: fleet_id.into() })
            .await
            .map_err(|s| status_error("fleet status", s))?
            .into_inner();
    }
    match fmt {
        Format::Json => output::print_json(&output::fleet_json(&f)),
        Format::Table => {
            output::print_fleet(&f);
            eprintln!("fleet {fleet_id} is down: {} instance(s) terminated", f.instances.len());
        }
    }
    Ok(())
}
