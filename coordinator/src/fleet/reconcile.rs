//! Brings each fleet's actual instances to what it should have, one pass at a time.
//!
//! A pass over one fleet holds that fleet's advisory lock (so `fleet up`, `fleet down`
//! and the periodic reconciler, on this coordinator or another, never launch for the
//! same fleet at once), then:
//! 1. describes the fleet's instances by tag and folds that into the rows: a row
//!    without a provider id whose tagged instance exists is adopted (a crash between
//!    "launched" and "recorded"); one whose instance is gone is marked terminated
//!    ("vanished": spot reclaim, terminated by hand); an instance with a tag but no row
//!    is adopted as a row;
//! 2. ends the fleet at `max_hours`, checks its budget (`crate::budget`), and works out
//!    its target: `desired`, or zero when it is ending, when its budget is spent (its
//!    busy instances kept one lease to hand their trials back), when its sweeps have had
//!    nothing queued or leased for `idle_minutes`, or at once when what they have queued
//!    waits only for a spent budget;
//! 3. launches what is missing (a row first, with a fresh single-use join token, then
//!    the provider call with the row's id as idempotency token), relaunches rows that
//!    never reached the provider, and terminates what is extra, idle instances first,
//!    and instances that never enrolled before their join token expired.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};
use uuid::Uuid;

use super::bootstrap::Bootstrap;
use super::{Described, FleetSpec, Launch, Provider};
use crate::db::fleets::{self, FleetRow, InstanceRow};
use crate::db::tokens;
use crate::error::{CoordinatorError, Result};
use crate::maintenance::Maintenance;
use crate::state::AppState;
use crate::states::{FleetState, InstanceState};

/// Advisory lock class of per-fleet passes ("SWPF").
const FLEET_LOCK_CLASS: i32 = 0x5357_5046;

/// A fleet's advisory lock, on a pooled connection of its own. Released on `release`;
/// dropped without it (an error, a panic), the connection is closed, which ends its
/// session and so the lock: it can never be left behind in the pool.
struct FleetLock {
    conn: Option<PoolConnection<Postgres>>,
    key: i32,
}

impl FleetLock {
    async fn acquire(db: &PgPool, fleet: Uuid) -> Result<FleetLock> {
        let mut conn = db.acquire().await?;
        let b = fleet.as_bytes();
        let key = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        crate::db::locks::lock(&mut conn, FLEET_LOCK_CLASS, key).await?;
        Ok(FleetLock { conn: Some(conn), key })
    }

    async fn release(mut self) {
        if let Some(mut conn) = self.conn.take() {
            if crate::db::locks::unlock(&mut conn, FLEET_LOCK_CLASS, self.key).await.is_err() {
                drop(conn.detach());
            }
        }
    }
}

impl Drop for FleetLock {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(conn.detach());
        }
    }
}

/// What one pass over one fleet did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    pub launched: usize,
    pub adopted: usize,
    pub vanished: usize,
    pub terminated: usize,
    /// The first provider error of the pass (launches stop at it).
    pub error: Option<String>,
}

/// One pass over one fleet (see the module's comment).
pub async fn reconcile_fleet(state: &AppState, fleet: Uuid) -> Result<Pass> {
    let lock = FleetLock::acquire(&state.db, fleet).await?;
    let out = pass(state, fleet).await;
    lock.release().await;
    if let Ok(p) = &out {
        if *p != Pass::default() {
            tracing::info!(%fleet, launched = p.launched, adopted = p.adopted, vanished = p.vanished,
                terminated = p.terminated, error = p.error.as_deref().unwrap_or(""), "fleet reconciled");
        }
    }
    out
}

async fn pass(state: &AppState, fleet: Uuid) -> Result<Pass> {
    let db = &state.db;
    let mut f = fleets::get(db, fleet).await?;
    let spec = f.spec.0.clone();
    let mut out = Pass::default();
    let described = match state.fleets.providers.describe(&spec, fleet).await {
        Ok(d) => d,
        Err(e) => {
            fleets::set_error(db, fleet, Some(&e.to_string())).await?;
            out.error = Some(e.to_string());
            return Ok(out);
        }
    };
    let rows = fleets::instances(db, fleet).await?;
    sync(db, fleet, &rows, &described, &mut out).await?;
    let hours = (f.now - f.created_at).num_milliseconds() as f64 / 3.6e6;
    if f.state == FleetState::Active && hours >= f.max_hours {
        tracing::warn!(%fleet, hours, "fleet reached its max hours: terminating everything");
        fleets::end(db, fleet, FleetState::Expired, None).await?;
        f.state = FleetState::Expired;
    }
    refresh_price(state, &f, &spec).await;
    if f.state == FleetState::Active && f.budget_exhausted_at.is_none() {
        if let Some(max) = f.max_cost_usd {
            if crate::budget::check_fleet(state, fleet, max).await? {
                f.budget_exhausted_at = Some(f.now);
            }
        }
    }
    let busy = rows.iter().filter(|r| r.is_live() && !r.trials.is_empty()).count();
    let (target, why) = target(state, &f, busy).await?;
    let rows = end_extra(state, &f, &spec, &described, target, &why, &mut out).await?;
    if f.state == FleetState::Active && out.error.is_none() {
        launch_to(state, &f, &spec, &rows, target, &mut out).await?;
    }
    Ok(out)
}

/// Terminates what never enrolled in time and what is over the target (keeping the
/// busiest and oldest), repeats the call for everything being terminated that the
/// provider still shows alive, and closes rows that never reached it. Returns the rows
/// as they are after it.
async fn end_extra(
    state: &AppState,
    f: &FleetRow,
    spec: &FleetSpec,
    described: &[Described],
    target: usize,
    why: &str,
    out: &mut Pass,
) -> Result<Vec<InstanceRow>> {
    let db = &state.db;
    let mut rows = fleets::instances(db, f.id).await?;
    let live_ids: HashSet<&str> =
        described.iter().filter(|d| d.state.is_live()).map(|d| d.provider_id.as_str()).collect();
    let mut ending: Vec<(Uuid, String)> = Vec::new();
    let unenrolled =
        |r: &&InstanceRow| r.state == InstanceState::Running && r.worker_id.is_none() && r.join_expires_at < r.now;
    for r in rows.iter().filter(unenrolled) {
        ending.push((r.id, "never enrolled before its join token expired".into()));
    }
    let mut live: Vec<&InstanceRow> =
        rows.iter().filter(|r| r.is_live() && !ending.iter().any(|(id, _)| *id == r.id)).collect();
    if live.len() > target {
        // End rows that never launched first, then idle ones, newest first.
        live.sort_by_key(|r| (r.provider_id.is_some(), !r.trials.is_empty(), std::cmp::Reverse(r.launched_at)));
        ending.extend(live[..live.len() - target].iter().map(|r| (r.id, why.to_string())));
    }
    for (id, reason) in &ending {
        fleets::set_state(db, *id, InstanceState::Terminating, reason).await?;
    }
    if !ending.is_empty() {
        rows = fleets::instances(db, f.id).await?;
    }
    let to_terminate: Vec<String> = rows
        .iter()
        .filter(|r| r.state == InstanceState::Terminating)
        .filter_map(|r| r.provider_id.clone())
        .filter(|p| live_ids.contains(p.as_str()))
        .collect();
    if !to_terminate.is_empty() {
        match state.fleets.providers.terminate(spec, &to_terminate).await {
            Ok(()) => out.terminated += to_terminate.len(),
            Err(e) => out.error = Some(e.to_string()),
        }
    }
    for r in rows.iter().filter(|r| r.state == InstanceState::Terminating && r.provider_id.is_none()) {
        fleets::set_state(db, r.id, InstanceState::Terminated, "never launched").await?;
    }
    Ok(rows)
}

/// Launches up to the target: first rows that never reached the provider, then new ones.
async fn launch_to(
    state: &AppState,
    f: &FleetRow,
    spec: &FleetSpec,
    rows: &[InstanceRow],
    target: usize,
    out: &mut Pass,
) -> Result<()> {
    let db = &state.db;
    let pending: Vec<Uuid> =
        rows.iter().filter(|r| r.state == InstanceState::Launching && r.provider_id.is_none()).map(|r| r.id).collect();
    let live_now = rows.iter().filter(|r| r.is_live()).count();
    let new = target.saturating_sub(live_now);
    let retries = pending.into_iter().map(|id| (id, false));
    let fresh = (0..new).map(|_| (Uuid::new_v4(), true));
    for (id, is_new) in retries.chain(fresh) {
        if let Err(e) = launch(state, f, spec, id, is_new).await {
            fleets::set_error(db, f.id, Some(&e)).await?;
            out.error = Some(e);
            break;
        }
        out.launched += 1;
    }
    if out.error.is_none() && f.error.is_some() {
        fleets::set_error(db, f.id, None).await?;
    }
    Ok(())
}

/// Folds what the provider shows into the rows.
async fn sync(db: &PgPool, fleet: Uuid, rows: &[InstanceRow], described: &[Described], out: &mut Pass) -> Result<()> {
    let by_instance: HashMap<Uuid, &Described> = described.iter().filter_map(|d| d.instance.map(|i| (i, d))).collect();
    let known: HashSet<Uuid> = rows.iter().map(|r| r.id).collect();
    for d in described.iter().filter(|d| d.state.is_live()) {
        match d.instance {
            Some(i) if !known.contains(&i) => {
                tracing::warn!(%fleet, instance = %i, provider_id = %d.provider_id, "adopting an instance with no row");
                fleets::adopt(db, fleet, i, &d.provider_id).await?;
                out.adopted += 1;
            }
            _ => {}
        }
    }
    let mut seen = Vec::new();
    for r in rows.iter().filter(|r| r.state != InstanceState::Terminated) {
        match by_instance.get(&r.id) {
            Some(d) if r.provider_id.is_none() => {
                tracing::info!(%fleet, instance = %r.id, provider_id = %d.provider_id, "adopting a launched instance");
                fleets::set_launched(db, r.id, &d.provider_id).await?;
                out.adopted += 1;
            }
            Some(d) if d.state.is_live() => seen.push(r.id),
            Some(d) if d.state == super::Observed::Terminated => {
                fleets::set_state(db, r.id, InstanceState::Terminated, VANISHED).await?;
                out.vanished += usize::from(r.state == InstanceState::Running);
            }
            Some(_) => {
                fleets::set_state(db, r.id, InstanceState::Terminating, "shutting down outside Sweep").await?;
            }
            None if r.provider_id.is_some() => {
                fleets::set_state(db, r.id, InstanceState::Terminated, VANISHED).await?;
                out.vanished += usize::from(r.state == InstanceState::Running);
            }
            None => {} // never reached the provider: relaunched (or dropped) below
        }
    }
    fleets::seen(db, &seen).await
}

/// Reads an active spot fleet's price again when `--spot-price-refresh-minutes` have
/// passed since it was last read (only a price that came from the spot history: an
/// explicit `--price-per-hour` stays). A failed read keeps the price and is logged.
async fn refresh_price(state: &AppState, f: &FleetRow, spec: &FleetSpec) {
    let from_history = f.price_source.starts_with(super::prices::SPOT_SOURCE);
    if f.state != FleetState::Active || !spec.spot || spec.provider != super::ProviderKind::Ec2 || !from_history {
        return;
    }
    let since = (f.now - f.price_checked_at.unwrap_or(f.created_at)).num_milliseconds() as f64 / 60_000.0;
    if since < state.settings.spot_price_refresh_minutes {
        return;
    }
    let read = match state.fleets.providers.ec2.spot_price(spec).await {
        Ok(Some(found)) => super::prices::price(spec, 0.0, Some(found)),
        Ok(None) => Err("no spot price history for its type".into()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = &read {
        tracing::warn!(fleet = %f.id, error = %e, "spot price not read again; keeping the last one");
    }
    let found = read.as_ref().ok().map(|p| (p.usd_per_hour, p.source.as_str()));
    match fleets::reprice(&state.db, f.id, found).await {
        Ok(true) => tracing::info!(fleet = %f.id, "spot price changed: the new price applies from now"),
        Ok(false) => {}
        Err(e) => tracing::warn!(fleet = %f.id, error = %e, "spot price read but not recorded"),
    }
}

/// Why an instance the provider no longer shows ended.
const VANISHED: &str = "vanished (spot reclaim, or terminated outside Sweep)";

/// How many instances the fleet should have now, and why any beyond that end. `busy`:
/// its live instances whose workers hold trials.
async fn target(state: &AppState, f: &FleetRow, busy: usize) -> Result<(usize, String)> {
    let db = &state.db;
    match f.state {
        FleetState::Active => {}
        FleetState::Down => return Ok((0, "fleet down".into())),
        FleetState::Expired => return Ok((0, format!("fleet reached its max hours ({})", f.max_hours))),
        other => return Ok((0, format!("fleet {other}"))),
    }
    if let Some(at) = f.budget_exhausted_at {
        let why = format!("the fleet's budget ({} USD) is spent", f.max_cost_usd.unwrap_or(0.0));
        let handing_back = f.now - at < crate::budget::hand_back_grace(state);
        return Ok((if handing_back { busy } else { 0 }, why));
    }
    let work = fleets::has_work(db, &f.sweeps).await?;
    if !work && crate::db::budgets::work_held(db, &f.sweeps).await? {
        fleets::mark_idle(db, f.id, true).await?;
        return Ok((0, "its sweeps' budgets are spent".into()));
    }
    let idle = fleets::mark_idle(db, f.id, !work).await?;
    if !work && idle >= f.idle_minutes {
        return Ok((0, format!("idle for {:.1} minutes", f.idle_minutes)));
    }
    Ok((f.desired.max(0) as usize, "scaled in".into()))
}

/// Launches one instance: its row (new, or one that never reached the provider, with a
/// fresh join token), the rendered bootstrap, the provider call, the provider id.
async fn launch(state: &AppState, f: &FleetRow, spec: &FleetSpec, id: Uuid, is_new: bool) -> Result<(), String> {
    let db = &state.db;
    let join = tokens::generate("swp_ijoin");
    let ttl = state.settings.fleet_join_ttl_secs;
    let expires = if is_new {
        fleets::insert_launching(db, f.id, id, &tokens::hash(&join), ttl).await
    } else {
        fleets::renew_join(db, id, &tokens::hash(&join), ttl).await
    }
    .map_err(|e| e.to_string())?;
    let fl = &state.fleets;
    let worker = fl.worker_binary().await?;
    let coordinator = fl.public_url(spec.provider)?;
    let user_data = Bootstrap {
        coordinator: &coordinator,
        worker_sha256: &worker.sha256,
        fleet: f.id,
        instance: id,
        join_token: &join,
        join_expires: expires,
        ca_pem: fl.ca_pem.as_deref(),
        idle_secs: (f.idle_minutes * 60.0).ceil() as u64 + 30,
        max_minutes: (f.max_hours * 60.0).ceil() as u64,
    }
    .render()?;
    let provider_id = fl
        .providers
        .launch(&Launch { fleet: f.id, instance: id, spec, user_data: &user_data })
        .await
        .map_err(|e| e.to_string())?;
    fleets::set_launched(db, id, &provider_id).await.map_err(|e| e.to_string())?;
    tracing::info!(fleet = %f.id, instance = %id, %provider_id, "instance launched");
    Ok(())
}

/// The periodic reconciler: a pass over every fleet that needs one.
pub struct Reconciler(pub Arc<AppState>);

impl Maintenance for Reconciler {
    /// Passes that did something, by fleet.
    type Report = Vec<(Uuid, Pass)>;
    const NAME: &'static str = "fleet-reconciler";

    fn period(&self) -> Duration {
        Duration::from_millis(self.0.settings.fleet_reconcile_ms.max(100) as u64)
    }

    async fn run_once(&self) -> Result<Self::Report> {
        crate::budget::check_sweeps(&self.0).await?;
        let mut report = Vec::new();
        for id in fleets::to_reconcile(&self.0.db).await? {
            match reconcile_fleet(&self.0, id).await {
                Ok(p) if p != Pass::default() => report.push((id, p)),
                Ok(_) => {}
                Err(e @ CoordinatorError::Unavailable(_)) => return Err(e),
                Err(e) => tracing::warn!(fleet = %id, error = %e, "fleet pass failed"),
            }
        }
        crate::budget::enforce(&self.0).await?;
        Ok(report)
    }
}
