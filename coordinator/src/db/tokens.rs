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

/// Revokes a token by id; returns whether one was live.
pub async fn revoke(db: impl PgExecutor<'_>, id: Uuid) -> Result<bool> {
    let r = sqlx::query("UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
        .bind(id)
        .execute(db)
        .await?;
    Ok(r.rows_affected() == 1)
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
