//! Fleets and their instances. The reconciler is their only writer apart from
//! `create`, `set_down` and the join-token spend at registration.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::{CoordinatorError, Result};
use crate::states::{FleetState, InstanceState, TrialState};
use serde::{Deserialize, Serialize};

/// Where a fleet's instances run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    #[default]
    Ec2,
    Local,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Ec2 => "ec2",
            ProviderKind::Local => "local",
        }
    }
}

impl std::str::FromStr for ProviderKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ec2" | "" => Ok(ProviderKind::Ec2),
            "local" => Ok(ProviderKind::Local),
            other => Err(format!("provider: unknown `{other}` (ec2 or local)")),
        }
    }
}

/// What every instance of a fleet is launched as. Stored with the fleet; the image is
/// resolved once, before the first launch, so a fleet never mixes images.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetSpec {
    pub provider: ProviderKind,
    pub instance_type: String,
    #[serde(default)]
    pub spot: bool,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub subnet: String,
    #[serde(default)]
    pub security_groups: Vec<String>,
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub key_name: String,
    #[serde(default)]
    pub instance_profile: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FleetRow {
    pub id: Uuid,
    pub spec: Json<FleetSpec>,
    pub desired: i32,
    pub max_count: i32,
    pub max_hours: f64,
    pub idle_minutes: f64,
    pub sweeps: Vec<Uuid>,
    pub state: FleetState,
    pub idle_since: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// USD per instance-hour, and where that price came from.
    pub price_per_hour: f64,
    pub price_source: String,
    /// What its instances may cost (`--max-cost`), and when that ran out.
    pub max_cost_usd: Option<f64>,
    pub budget_exhausted_at: Option<DateTime<Utc>>,
    /// When a spot fleet's price was last read again (None: only at creation).
    pub price_checked_at: Option<DateTime<Utc>>,
    /// The database clock when the row was read (hours and idle time go by it).
    pub now: DateTime<Utc>,
}

const FLEET_COLUMNS: &str = "id, spec, desired, max_count, max_hours, idle_minutes, sweeps, state, idle_since, error,
                             created_at, ended_at, price_per_hour, price_source, max_cost_usd, budget_exhausted_at,
                             price_checked_at, now() AS now";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InstanceRow {
    pub id: Uuid,
    pub fleet_id: Uuid,
    pub provider_id: Option<String>,
    pub state: InstanceState,
    pub worker_id: Option<Uuid>,
    pub worker_name: Option<String>,
    pub join_used_at: Option<DateTime<Utc>>,
    pub join_expires_at: DateTime<Utc>,
    pub launched_at: DateTime<Utc>,
    pub terminated_at: Option<DateTime<Utc>>,
    pub end_reason: Option<String>,
    /// Trials its worker holds now.
    pub trials: Vec<Uuid>,
    /// Its fleet's price over its hours so far.
    pub cost_usd: f64,
    pub now: DateTime<Utc>,
}

impl InstanceRow {
    pub fn is_live(&self) -> bool {
        self.state.is_live()
    }

    /// Hours from launch to termination (or now).
    pub fn hours(&self) -> f64 {
        let end = self.terminated_at.unwrap_or(self.now);
        (end - self.launched_at).num_milliseconds().max(0) as f64 / 3.6e6
    }
}

pub struct NewFleet<'a> {
    pub spec: &'a FleetSpec,
    pub desired: u32,
    pub max_count: u32,
    pub max_hours: f64,
    pub idle_minutes: f64,
    pub sweeps: &'a [Uuid],
    pub price: &'a crate::fleet::prices::Price,
    pub max_cost_usd: Option<f64>,
}

pub async fn create(db: impl PgExecutor<'_>, f: &NewFleet<'_>) -> Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO fleets (id, provider, spec, desired, max_count, max_hours, idle_minutes, sweeps,
                             price_per_hour, price_source, max_cost_usd)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(id)
    .bind(f.spec.provider.as_str())
    .bind(Json(f.spec))
    .bind(f.desired as i32)
    .bind(f.max_count as i32)
    .bind(f.max_hours)
    .bind(f.idle_minutes)
    .bind(f.sweeps)
    .bind(f.price.usd_per_hour)
    .bind(&f.price.source)
    .bind(f.max_cost_usd)
    .execute(db)
    .await?;
    Ok(id)
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<FleetRow> {
    sqlx::query_as(&format!("SELECT {FLEET_COLUMNS} FROM fleets WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| CoordinatorError::NotFound(format!("fleet {id}")))
}

pub async fn list(db: impl PgExecutor<'_>) -> Result<Vec<FleetRow>> {
    Ok(sqlx::query_as(&format!("SELECT {FLEET_COLUMNS} FROM fleets ORDER BY created_at")).fetch_all(db).await?)
}

/// Fleets the reconciler looks after: active ones, and ended ones with instances not yet
/// seen terminated.
pub async fn to_reconcile(db: impl PgExecutor<'_>) -> Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT f.id FROM fleets f WHERE f.state = $1
            OR EXISTS (SELECT 1 FROM instances i WHERE i.fleet_id = f.id AND i.state <> $2)
         ORDER BY f.created_at",
    )
    .bind(FleetState::Active)
    .bind(InstanceState::Terminated)
    .fetch_all(db)
    .await?)
}

/// Instances the active fleets may have together (checked against `--fleet-max-instances`).
pub async fn desired_total(db: impl PgExecutor<'_>) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT coalesce(sum(desired), 0)::bigint FROM fleets WHERE state = $1")
        .bind(FleetState::Active)
        .fetch_one(db)
        .await?)
}

pub async fn instances(db: impl PgExecutor<'_>, fleet: Uuid) -> Result<Vec<InstanceRow>> {
    Ok(sqlx::query_as(
        "SELECT i.id, i.fleet_id, i.provider_id, i.state, i.worker_id, w.name AS worker_name, i.join_used_at,
                i.join_expires_at, i.launched_at, i.terminated_at, i.end_reason,
                coalesce((SELECT array_agg(t.id ORDER BY t.id) FROM trials t
                          WHERE i.worker_id IS NOT NULL AND t.lease_owner = i.worker_id AND t.state = $2),
                         '{}') AS trials,
                fleet_usd(i.fleet_id, i.launched_at, coalesce(i.terminated_at, now())) AS cost_usd,
                now() AS now
         FROM instances i LEFT JOIN workers w ON w.id = i.worker_id
         WHERE i.fleet_id = $1 ORDER BY i.launched_at, i.id",
    )
    .bind(fleet)
    .bind(TrialState::Leased)
    .fetch_all(db)
    .await?)
}

/// Records an instance about to be launched (before the provider is called, so a
/// crash between launch and record leaves a row to adopt the instance into).
pub async fn insert_launching(
    db: impl PgExecutor<'_>,
    fleet: Uuid,
    id: Uuid,
    join_hash: &str,
    join_ttl_secs: u64,
) -> Result<DateTime<Utc>> {
    Ok(sqlx::query_scalar(
        "INSERT INTO instances (id, fleet_id, join_hash, join_expires_at)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4::double precision))
         RETURNING join_expires_at",
    )
    .bind(id)
    .bind(fleet)
    .bind(join_hash)
    .bind(join_ttl_secs as f64)
    .fetch_one(db)
    .await?)
}

/// A fresh join token for an instance that was never launched (its row survived a crash).
pub async fn renew_join(
    db: impl PgExecutor<'_>,
    id: Uuid,
    join_hash: &str,
    join_ttl_secs: u64,
) -> Result<DateTime<Utc>> {
    Ok(sqlx::query_scalar(
        "UPDATE instances SET join_hash = $2, join_expires_at = now() + make_interval(secs => $3::double precision)
         WHERE id = $1 AND provider_id IS NULL RETURNING join_expires_at",
    )
    .bind(id)
    .bind(join_hash)
    .bind(join_ttl_secs as f64)
    .fetch_one(db)
    .await?)
}

/// The provider launched (or adopted) it.
pub async fn set_launched(db: impl PgExecutor<'_>, id: Uuid, provider_id: &str) -> Result<()> {
    sqlx::query(
        "UPDATE instances SET provider_id = $2, last_seen_at = now(),
                state = CASE WHEN state = $3 THEN $4 ELSE state END
         WHERE id = $1 AND state <> $5",
    )
    .bind(id)
    .bind(provider_id)
    .bind(InstanceState::Launching)
    .bind(InstanceState::Running)
    .bind(InstanceState::Terminated)
    .execute(db)
    .await?;
    Ok(())
}

/// Seen alive by the provider.
pub async fn seen(db: impl PgExecutor<'_>, ids: &[Uuid]) -> Result<()> {
    sqlx::query("UPDATE instances SET last_seen_at = now() WHERE id = ANY($1)").bind(ids).execute(db).await?;
    Ok(())
}

/// Terminating (asked) or terminated (seen gone); the first reason given sticks.
pub async fn set_state(db: impl PgExecutor<'_>, id: Uuid, state: InstanceState, reason: &str) -> Result<()> {
    sqlx::query(
        "UPDATE instances SET state = $2, end_reason = coalesce(end_reason, $3),
                terminated_at = CASE WHEN $2 = $4 THEN coalesce(terminated_at, now()) END
         WHERE id = $1 AND state <> $4",
    )
    .bind(id)
    .bind(state)
    .bind(reason)
    .bind(InstanceState::Terminated)
    .execute(db)
    .await?;
    Ok(())
}

/// Adopts an instance found by tag that has no row (its row's fleet is this one).
pub async fn adopt(db: impl PgExecutor<'_>, fleet: Uuid, id: Uuid, provider_id: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO instances (id, fleet_id, provider_id, state, join_expires_at, last_seen_at)
         VALUES ($1, $2, $3, $4, now(), now()) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(fleet)
    .bind(provider_id)
    .bind(InstanceState::Running)
    .execute(db)
    .await?;
    Ok(())
}

/// Whether the fleet's sweeps (every sweep, when it lists none) have trials leased, or
/// queued in a sweep whose budget has not run out.
pub async fn has_work(db: impl PgExecutor<'_>, sweeps: &[Uuid]) -> Result<bool> {
    // The states as literals, not parameters: the partial index on open trials stays usable.
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM trials t
                        WHERE t.state IN {} AND (cardinality($1::uuid[]) = 0 OR t.sweep_id = ANY($1))
                          AND (t.state = {} OR NOT EXISTS (
                                SELECT 1 FROM sweeps s WHERE s.id = t.sweep_id AND s.budget_exhausted_at IS NOT NULL)))",
        crate::states::open_sql(),
        TrialState::Leased.sql()
    );
    Ok(sqlx::query_scalar(&sql).bind(sweeps).fetch_one(db).await?)
}

/// Starts (or clears) the fleet's idle clock; returns how long it has been idle, in minutes.
pub async fn mark_idle(db: impl PgExecutor<'_>, fleet: Uuid, idle: bool) -> Result<f64> {
    Ok(sqlx::query_scalar(
        "UPDATE fleets SET idle_since = CASE WHEN $2 THEN coalesce(idle_since, now()) END WHERE id = $1
         RETURNING coalesce(extract(epoch FROM now() - idle_since)::double precision / 60, 0)",
    )
    .bind(fleet)
    .bind(idle)
    .fetch_one(db)
    .await?)
}

/// A spot fleet's price, read again (None: the read failed; the next try waits a full
/// interval too): a changed price starts a new segment of its history (from now) and
/// becomes its current price. Returns whether it changed.
pub async fn reprice(db: &sqlx::PgPool, fleet: Uuid, read: Option<(f64, &str)>) -> Result<bool> {
    let mut tx = db.begin().await?;
    let current: f64 =
        sqlx::query_scalar("UPDATE fleets SET price_checked_at = now() WHERE id = $1 RETURNING price_per_hour")
            .bind(fleet)
            .fetch_one(&mut *tx)
            .await?;
    // A price outside what `prices::price` takes is no reading (the last one stays).
    let sane = |usd: f64| usd.is_finite() && (0.0..=crate::fleet::prices::MAX_USD_PER_HOUR).contains(&usd);
    let Some((usd_per_hour, source)) = read.filter(|r| sane(r.0)) else {
        tx.commit().await?;
        return Ok(false);
    };
    let changed = (current - usd_per_hour).abs() > 1e-12;
    if changed {
        sqlx::query("INSERT INTO fleet_prices (fleet_id, since, usd_per_hour, source) VALUES ($1, now(), $2, $3)")
            .bind(fleet)
            .bind(usd_per_hour)
            .bind(source)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE fleets SET price_per_hour = $2, price_source = $3 WHERE id = $1")
            .bind(fleet)
            .bind(usd_per_hour)
            .bind(source)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(changed)
}

pub async fn set_error(db: impl PgExecutor<'_>, fleet: Uuid, error: Option<&str>) -> Result<()> {
    sqlx::query("UPDATE fleets SET error = $2 WHERE id = $1").bind(fleet).bind(error).execute(db).await?;
    Ok(())
}

/// Ends an active fleet (down, expired, failed): it launches nothing more.
pub async fn end(db: impl PgExecutor<'_>, fleet: Uuid, state: FleetState, error: Option<&str>) -> Result<()> {
    sqlx::query(
        "UPDATE fleets SET state = $2, error = coalesce($3, error), ended_at = now(), idle_since = NULL
         WHERE id = $1 AND state = $4",
    )
    .bind(fleet)
    .bind(state)
    .bind(error)
    .bind(FleetState::Active)
    .execute(db)
    .await?;
    Ok(())
}

/// Spends an instance's join token: the instance and fleet it was minted for, or None
/// when the token is unknown, spent or expired. Run in the registration's transaction.
pub async fn spend_join(db: impl PgExecutor<'_>, join_hash: &str) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar(
        "UPDATE instances SET join_used_at = now()
         WHERE join_hash = $1 AND join_used_at IS NULL AND join_expires_at > now()
           AND state IN ($2, $3)
         RETURNING id",
    )
    .bind(join_hash)
    .bind(InstanceState::Launching)
    .bind(InstanceState::Running)
    .fetch_optional(db)
    .await?)
}

pub async fn bind_worker(db: impl PgExecutor<'_>, instance: Uuid, worker: Uuid) -> Result<()> {
    sqlx::query("UPDATE instances SET worker_id = $2 WHERE id = $1").bind(instance).bind(worker).execute(db).await?;
    Ok(())
}

/// The sweeps a worker may serve: its fleet's, when it enrolled from an instance of a
/// fleet that names some; None otherwise (every sweep).
pub async fn worker_sweeps(db: impl PgExecutor<'_>, worker: Uuid) -> Result<Option<Vec<Uuid>>> {
    Ok(sqlx::query_scalar(
        "SELECT f.sweeps FROM instances i JOIN fleets f ON f.id = i.fleet_id
         WHERE i.worker_id = $1 AND cardinality(f.sweeps) > 0",
    )
    .bind(worker)
    .fetch_optional(db)
    .await?)
}
