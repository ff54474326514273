//! Fleet calls of the client service (admin token): create (with a first reconcile
//! pass, so a refusal surfaces here and leaves nothing running), list, get, down.

use sweep_proto as pb;
use uuid::Uuid;

use super::{parse_id, AppState};
use crate::db::fleets::{self, FleetRow, InstanceRow, NewFleet};
use crate::db::sweeps;
use crate::error::{CoordinatorError, Result};
use crate::fleet::reconcile::reconcile_fleet;
use crate::fleet::{prices, FleetSpec, Provider, ProviderKind};
use crate::states::FleetState;

/// Largest fleet one call may ask for.
const MAX_COUNT: u32 = 1_000;

fn invalid(msg: impl Into<String>) -> CoordinatorError {
    CoordinatorError::InvalidArgument(msg.into())
}

fn name_ok(s: &str) -> bool {
    s.len() <= 255 && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c))
}

/// The request's spec, checked field by field.
fn spec(s: pb::FleetSpec) -> Result<FleetSpec> {
    let provider: ProviderKind = s.provider.parse().map_err(invalid)?;
    if provider == ProviderKind::Ec2 && s.instance_type.is_empty() {
        return Err(invalid("instance_type: required for ec2 (e.g. g5.xlarge)"));
    }
    for (field, v) in [
        ("instance_type", &s.instance_type),
        ("region", &s.region),
        ("subnet", &s.subnet),
        ("image", &s.image),
        ("key_name", &s.key_name),
        ("instance_profile", &s.instance_profile),
    ] {
        if !name_ok(v) {
            return Err(invalid(format!("{field}: `{v}` has characters no {field} has")));
        }
    }
    if let Some(g) = s.security_groups.iter().find(|g| g.is_empty() || !name_ok(g)) {
        return Err(invalid(format!("security_groups: `{g}` is not a security group id")));
    }
    Ok(FleetSpec {
        provider,
        instance_type: s.instance_type,
        spot: s.spot,
        region: s.region,
        subnet: s.subnet,
        security_groups: s.security_groups,
        image: s.image,
        key_name: s.key_name,
        instance_profile: s.instance_profile,
    })
}

/// The request's fields, checked: its spec, max count and budget.
fn check(r: &pb::CreateFleetRequest) -> Result<(FleetSpec, u32, Option<f64>)> {
    let spec = spec(r.spec.clone().ok_or_else(|| invalid("spec: missing"))?)?;
    if r.count == 0 || r.count > MAX_COUNT {
        return Err(invalid(format!("count: {} (1 to {MAX_COUNT})", r.count)));
    }
    let max_count = if r.max_count == 0 { r.count } else { r.max_count };
    if r.count > max_count {
        return Err(invalid(format!("count {} is above --max-count {max_count}: refused, nothing launched", r.count)));
    }
    if !(r.max_hours > 0.0 && r.max_hours <= 24.0 * 31.0) {
        return Err(invalid(format!("max_hours: {} (more than 0, at most 744)", r.max_hours)));
    }
    if !(r.idle_minutes > 0.0 && r.idle_minutes <= 24.0 * 60.0) {
        return Err(invalid(format!("idle_minutes: {} (more than 0, at most 1440)", r.idle_minutes)));
    }
    let max_cost_usd =
        (r.max_cost_usd != 0.0).then(|| crate::budget::check_amount("max_cost_usd", r.max_cost_usd)).transpose()?;
    Ok((spec, max_count, max_cost_usd))
}

pub async fn create(state: &AppState, r: pb::CreateFleetRequest) -> Result<pb::CreateFleetResponse> {
    let (spec, max_count, max_cost_usd) = check(&r)?;
    let mut sweep_ids = Vec::new();
    for s in &r.sweep_ids {
        let id = parse_id("sweep_ids", s)?;
        sweeps::get(&state.db, id).await?;
        sweep_ids.push(id);
    }
    let quota = state.settings.fleet_max_instances as i64;
    let already = fleets::desired_total(&state.db).await?;
    if already + r.count as i64 > quota {
        return Err(CoordinatorError::ResourceExhausted(format!(
            "{} more instances would bring the active fleets to {}, above this coordinator's \
             --fleet-max-instances {quota}: refused, nothing launched",
            r.count,
            already + r.count as i64
        )));
    }
    // An unpriced type (or a bad price) is refused before any provider call.
    if !(spec.provider == ProviderKind::Ec2 && spec.spot) {
        prices::price(&spec, r.price_per_hour, None).map_err(invalid)?;
    }
    let fl = &state.fleets;
    fl.public_url(spec.provider).map_err(CoordinatorError::FailedPrecondition)?;
    fl.worker_binary().await.map_err(CoordinatorError::FailedPrecondition)?;
    let spec = fl.providers.prepare(spec).await.map_err(|e| CoordinatorError::FailedPrecondition(e.to_string()))?;
    let price = price_of(state, &spec, r.price_per_hour).await?;
    if r.dry_run {
        let planned = planned(spec, &r, max_count, &sweep_ids, price, max_cost_usd);
        return Ok(pb::CreateFleetResponse { fleet_id: String::new(), fleet: Some(planned) });
    }
    let id = fleets::create(
        &state.db,
        &NewFleet {
            spec: &spec,
            desired: r.count,
            max_count,
            max_hours: r.max_hours,
            idle_minutes: r.idle_minutes,
            sweeps: &sweep_ids,
            price: &price,
            max_cost_usd,
        },
    )
    .await?;
    tracing::info!(fleet = %id, provider = spec.provider.as_str(), instance_type = %spec.instance_type,
        count = r.count, spot = spec.spot, usd_per_hour = price.usd_per_hour, price_source = %price.source,
        "fleet created");
    let first = reconcile_fleet(state, id).await?;
    if let Some(error) = first.error {
        // Nothing half-made stays: the fleet ends and what it launched is terminated.
        fleets::end(&state.db, id, FleetState::Failed, Some(&error)).await?;
        reconcile_fleet(state, id).await?;
        return Err(CoordinatorError::FailedPrecondition(format!(
            "fleet up failed, everything it launched is being terminated: {error}"
        )));
    }
    Ok(pb::CreateFleetResponse { fleet_id: id.to_string(), fleet: Some(get(state, id).await?) })
}

/// What `fleet up` would make, for a dry run: stored nowhere, no instance.
fn planned(
    spec: FleetSpec,
    r: &pb::CreateFleetRequest,
    max_count: u32,
    sweeps: &[Uuid],
    price: prices::Price,
    max_cost_usd: Option<f64>,
) -> pb::Fleet {
    let now = chrono::Utc::now();
    let row = FleetRow {
        id: Uuid::nil(),
        spec: sqlx::types::Json(spec),
        desired: r.count as i32,
        max_count: max_count as i32,
        max_hours: r.max_hours,
        idle_minutes: r.idle_minutes,
        sweeps: sweeps.to_vec(),
        state: FleetState::Active,
        idle_since: None,
        error: None,
        created_at: now,
        ended_at: None,
        price_per_hour: price.usd_per_hour,
        price_source: price.source,
        max_cost_usd,
        budget_exhausted_at: None,
        price_checked_at: None,
        now,
    };
    pb::Fleet { fleet_id: String::new(), ..fleet(row, vec![]) }
}

/// The fleet's price: `given`, else (EC2 spot) the spot price history, else the table.
async fn price_of(state: &AppState, spec: &FleetSpec, given: f64) -> Result<prices::Price> {
    let spot = if spec.provider == ProviderKind::Ec2 && spec.spot && given == 0.0 {
        match state.fleets.providers.ec2.spot_price(spec).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "no spot price history; pricing from the on-demand table");
                None
            }
        }
    } else {
        None
    };
    prices::price(spec, given, spot).map_err(invalid)
}

pub async fn get(state: &AppState, id: Uuid) -> Result<pb::Fleet> {
    let f = fleets::get(&state.db, id).await?;
    let instances = fleets::instances(&state.db, id).await?;
    Ok(fleet(f, instances))
}

pub async fn list(state: &AppState) -> Result<pb::ListFleetsResponse> {
    let mut out = Vec::new();
    for f in fleets::list(&state.db).await? {
        let instances = fleets::instances(&state.db, f.id).await?;
        out.push(fleet(f, instances));
    }
    Ok(pb::ListFleetsResponse { fleets: out })
}

pub async fn down(state: &AppState, id: Uuid) -> Result<pb::Fleet> {
    fleets::get(&state.db, id).await?;
    fleets::end(&state.db, id, FleetState::Down, None).await?;
    tracing::info!(fleet = %id, "fleet down: terminating its instances");
    let pass = reconcile_fleet(state, id).await?;
    if let Some(e) = pass.error {
        return Err(CoordinatorError::FailedPrecondition(format!("fleet down: {e} (the reconciler keeps trying)")));
    }
    get(state, id).await
}

pub fn parse_fleet_id(s: &str) -> Result<Uuid> {
    parse_id("fleet_id", s)
}

fn ms(t: Option<chrono::DateTime<chrono::Utc>>) -> i64 {
    t.map(crate::db::unix_ms).unwrap_or(0)
}

fn fleet(f: FleetRow, instances: Vec<InstanceRow>) -> pb::Fleet {
    let s = f.spec.0;
    pb::Fleet {
        fleet_id: f.id.to_string(),
        spec: Some(pb::FleetSpec {
            provider: s.provider.as_str().into(),
            instance_type: s.instance_type,
            spot: s.spot,
            region: s.region,
            subnet: s.subnet,
            security_groups: s.security_groups,
            image: s.image,
            key_name: s.key_name,
            instance_profile: s.instance_profile,
        }),
        state: pb::FleetState::from(f.state).into(),
        desired: f.desired as u32,
        max_count: f.max_count as u32,
        max_hours: f.max_hours,
        idle_minutes: f.idle_minutes,
        sweep_ids: f.sweeps.iter().map(Uuid::to_string).collect(),
        created_unix_ms: crate::db::unix_ms(f.created_at),
        idle_since_unix_ms: ms(f.idle_since),
        error: f.error.unwrap_or_default(),
        instance_hours: instances.iter().map(InstanceRow::hours).sum(),
        price_per_hour: f.price_per_hour,
        cost_usd: instances.iter().map(|i| i.cost_usd).sum(),
        price_source: f.price_source,
        max_cost_usd: f.max_cost_usd.unwrap_or(0.0),
        budget_exhausted_unix_ms: ms(f.budget_exhausted_at),
        instances: instances
            .into_iter()
            .map(|i| pb::Instance {
                instance_id: i.id.to_string(),
                hours: i.hours(),
                cost_usd: i.cost_usd,
                provider_id: i.provider_id.unwrap_or_default(),
                state: pb::InstanceState::from(i.state).into(),
                worker_id: i.worker_id.map(|w| w.to_string()).unwrap_or_default(),
                worker_name: i.worker_name.unwrap_or_default(),
                trial_ids: i.trials.iter().map(Uuid::to_string).collect(),
                launched_unix_ms: crate::db::unix_ms(i.launched_at),
                terminated_unix_ms: ms(i.terminated_at),
                end_reason: i.end_reason.unwrap_or_default(),
            })
            .collect(),
    }
}
