//! Postgres advisory locks, held by a session: maintenance leadership (one key) and one
//! reconcile pass per fleet (a class and a key). The callers own the connections, so a
//! connection that dies takes its locks with it.

use sqlx::PgConnection;

use crate::error::Result;

/// Whether the session answers (a held lock is still held).
pub async fn ping(conn: &mut PgConnection) -> bool {
    sqlx::query("SELECT 1").execute(conn).await.is_ok()
}

/// Takes the lock `key` if no other session holds it.
pub async fn try_lock(conn: &mut PgConnection, key: i64) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(key).fetch_one(conn).await?)
}

/// Waits for and takes the lock (`class`, `key`).
pub async fn lock(conn: &mut PgConnection, class: i32, key: i32) -> Result<()> {
    sqlx::query("SELECT pg_advisory_lock($1, $2)").bind(class).bind(key).execute(conn).await?;
    Ok(())
}

/// Releases the lock (`class`, `key`).
pub async fn unlock(conn: &mut PgConnection, class: i32, key: i32) -> Result<()> {
    sqlx::query("SELECT pg_advisory_unlock($1, $2)").bind(class).bind(key).execute(conn).await?;
    Ok(())
}
