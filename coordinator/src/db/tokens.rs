//! API tokens (admin, client, join) and their hashes. Tokens are shown once and
//! stored as SHA-256; a lookup goes by hash, and the found hash is compared again in
//! constant time.

use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Client,
    Join,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Client => "client",
            Role::Join => "join",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "client" => Ok(Role::Client),
            "join" => Ok(Role::Join),
            other => Err(format!("unknown role `{other}` (admin, client or join)")),
        }
    }
}

/// A fresh random token with a readable prefix.
pub fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{prefix}_{}", hex::encode(bytes))
}

pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a token and returns (id, the token in clear: shown once).
pub async fn create(db: impl PgExecutor<'_>, role: Role, name: &str) -> Result<(Uuid, String)> {
    let token = generate(&format!("swp_{}", role.as_str()));
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO api_tokens (id, name, role, token_hash) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(name)
        .bind(role.as_str())
        .bind(hash(&token))
        .execute(db)
        .await?;
    Ok((id, token))
}

/// The role of a live token, or None.
pub async fn lookup(db: impl PgExecutor<'_>, token: &str) -> Result<Option<(Uuid, Role)>> {
    let h = hash(token);
    let row: Option<(Uuid, String, String)> =
        sqlx::query_as("SELECT id, role, token_hash FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL")
            .bind(&h)
            .fetch_optional(db)
            .await?;
    Ok(row.and_then(|(id, role, stored)| {
        use subtle::ConstantTimeEq;
        let same: bool = stored.as_bytes().ct_eq(h.as_bytes()).into();
        if !same {
            return None;
        }
        role.parse().ok().map(|r| (id, r))
    }))
}

/// Whether the token with this id is live (not revoked): what a long stream checks again.
pub async fn live(db: impl PgExecutor<'_>, id: Uuid) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM api_tokens WHERE id = $1 AND revoked_at IS NULL)")
        .bind(id)
        .fetch_one(db)
        .await?)
}

/// How long a dashboard login lasts.
pub const SESSION_DAYS: i32 = 7;

/// Starts a dashboard session for token `token` (by id); returns the session id in
/// clear (the cookie), stored as its hash.
pub async fn start_session(db: impl PgExecutor<'_>, token: Uuid) -> Result<String> {
    let session = generate("swp_session");
    sqlx::query(
        "INSERT INTO web_sessions (id_hash, token_id, expires_at) VALUES ($1, $2, now() + make_interval(days => $3))",
    )
    .bind(hash(&session))
    .bind(token)
    .bind(SESSION_DAYS)
    .execute(db)
    .await?;
    Ok(session)
}

/// The (token id, role) behind a live session: not expired, not ended, its token not revoked.
pub async fn session(db: impl PgExecutor<'_>, session: &str) -> Result<Option<(Uuid, Role)>> {
    let row: Option<(Uuid, String)> = sqlx::query_as(
        "SELECT t.id, t.role FROM web_sessions s JOIN api_tokens t ON t.id = s.token_id
         WHERE s.id_hash = $1 AND s.expires_at > now() AND t.revoked_at IS NULL",
    )
    .bind(hash(session))
    .fetch_optional(db)
    .await?;
    Ok(row.and_then(|(id, role)| role.parse().ok().map(|r| (id, r))))
}

/// Ends a session (logout), and any expired ones.
pub async fn end_session(db: impl PgExecutor<'_>, session: &str) -> Result<()> {
    sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1 OR expires_at <= now()")
        .bind(hash(session))
        .execute(db)
        .await?;
    Ok(())
}

/// Revokes a token by id; returns whether one was live. Its dashboard sessions end with it.
pub async fn revoke(db: impl PgExecutor<'_>, id: Uuid) -> Result<bool> {
    let r = sqlx::query(
        "WITH revoked AS (UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING id),
              ended AS (DELETE FROM web_sessions WHERE token_id IN (SELECT id FROM revoked))
         SELECT count(*) FROM revoked",
    )
    .bind(id)
    .fetch_one(db)
    .await?;
    Ok(sqlx::Row::get::<i64, _>(&r, 0) == 1)
}

#[derive(Debug, sqlx::FromRow)]
pub struct TokenRow {
    pub id: Uuid,
    pub name: String,
    pub role: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

pub async fn list(db: impl PgExecutor<'_>) -> Result<Vec<TokenRow>> {
    Ok(sqlx::query_as("SELECT id, name, role, created_at, revoked_at FROM api_tokens ORDER BY created_at")
        .fetch_all(db)
        .await?)
}
