//! Who is calling. Every request carries `authorization: Bearer <token>`: an API
//! token (admin or client) for the client service, a join token to register, and a
//! worker credential for every other agent call. Nothing is served without one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tonic::Request;
use uuid::Uuid;

use crate::db::tokens::{self, Role};
use crate::db::workers;
use crate::error::{CoordinatorError, Result};

fn bearer<T>(req: &Request<T>) -> Result<&str> {
    let value = req
        .metadata()
        .get("authorization")
        .ok_or_else(|| CoordinatorError::Unauthenticated("missing authorization: Bearer <token>".into()))?;
    let value =
        value.to_str().map_err(|_| CoordinatorError::Unauthenticated("authorization header is not ASCII".into()))?;
    value
        .strip_prefix("Bearer ")
        .filter(|t| !t.is_empty() && t.len() <= 256)
        .ok_or_else(|| CoordinatorError::Unauthenticated("authorization must be `Bearer <token>`".into()))
}

/// Who makes a client call: which API token, and its role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub token: Uuid,
    pub role: Role,
}

impl Caller {
    /// Whether this caller may change (cancel, retry, re-budget, resubmit) a sweep whose
    /// owner is `owner`: its submitter or an admin. A sweep stored before sweeps had
    /// owners (`None`) is an admin's to change.
    pub fn may_change(&self, owner: Option<Uuid>) -> bool {
        self.role == Role::Admin || owner == Some(self.token)
    }

    /// [`Caller::may_change`] as an answer: PERMISSION_DENIED naming the sweep.
    pub fn check_owner(&self, sweep: &str, owner: Option<Uuid>) -> Result<()> {
        if self.may_change(owner) {
            return Ok(());
        }
        Err(CoordinatorError::PermissionDenied(format!(
            "sweep {sweep} was submitted with another token: only that token or an admin may change it \
             (any client token may read it)"
        )))
    }
}

/// A caller the dashboard has already authenticated (by its Bearer header or its login
/// session), put in the extensions of the requests it makes in process. Extensions
/// never come from the network: a peer cannot set one.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated(pub Caller);

/// A client (CLI) call: an admin or client API token.
pub async fn client<T>(db: &PgPool, req: &Request<T>) -> Result<Caller> {
    if let Some(Authenticated(caller)) = req.extensions().get::<Authenticated>() {
        return Ok(*caller);
    }
    match tokens::lookup(db, bearer(req)?).await? {
        Some((token, role @ (Role::Admin | Role::Client))) => Ok(Caller { token, role }),
        Some((_, Role::Join)) => {
            Err(CoordinatorError::PermissionDenied("a join token can only register workers".into()))
        }
        None => Err(CoordinatorError::Unauthenticated("unknown or revoked token".into())),
    }
}

/// A call only an admin may make (fleets: they spend money).
pub async fn admin<T>(db: &PgPool, req: &Request<T>) -> Result<()> {
    match client(db, req).await?.role {
        Role::Admin => Ok(()),
        _ => Err(CoordinatorError::PermissionDenied("fleets need an admin token".into())),
    }
}

/// Who may register a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joiner {
    /// A standing join token (or an admin token), made with `sweep-coordinator token create`.
    Standing,
    /// A fleet instance's single-use join token (by hash): spent by the registration,
    /// in the registration's transaction.
    Instance(String),
}

/// Prefix of the join tokens minted per fleet instance.
pub const INSTANCE_JOIN_PREFIX: &str = "swp_ijoin_";

/// A worker registering: a join token (or an admin token), or an instance's one-time token.
pub async fn join<T>(db: &PgPool, req: &Request<T>) -> Result<Joiner> {
    let token = bearer(req)?;
    if token.starts_with(INSTANCE_JOIN_PREFIX) {
        return Ok(Joiner::Instance(tokens::hash(token)));
    }
    match tokens::lookup(db, token).await? {
        Some((_, Role::Join | Role::Admin)) => Ok(Joiner::Standing),
        Some((_, Role::Client)) => Err(CoordinatorError::PermissionDenied("register needs a join token".into())),
        None => Err(CoordinatorError::Unauthenticated("unknown or revoked join token".into())),
    }
}

/// Verified worker credentials by token hash: a busy worker costs no extra query per
/// call. An entry is trusted for `ttl` (2 s, or a third of the lease when that is
/// shorter); the lookup after it also records the worker as seen, which keeps a
/// calling worker alive. Revocation still bites at once where it matters: a revoked
/// worker's leases are returned immediately, its fenced writes match nothing, and a
/// claim checks the worker's state in the same statement.
pub struct WorkerCache {
    ttl: Duration,
    verified: Mutex<HashMap<String, (Uuid, Instant)>>,
}

impl WorkerCache {
    pub fn new(lease: Duration) -> WorkerCache {
        WorkerCache { ttl: Duration::from_secs(2).min(lease / 3), verified: Mutex::default() }
    }
}

/// A registered, unrevoked worker.
pub async fn worker<T>(db: &PgPool, cache: &WorkerCache, req: &Request<T>) -> Result<Uuid> {
    let token = bearer(req)?;
    let key = tokens::hash(token);
    if let Some((id, at)) = cache.verified.lock().expect("auth cache").get(&key) {
        if at.elapsed() < cache.ttl {
            return Ok(*id);
        }
    }
    let id = workers::authenticate(db, token)
        .await?
        .ok_or_else(|| CoordinatorError::Unauthenticated("unknown or revoked worker credential".into()))?;
    let mut map = cache.verified.lock().expect("auth cache");
    if map.len() > 100_000 {
        map.clear();
    }
    map.insert(key, (id, Instant::now()));
    Ok(id)
}
