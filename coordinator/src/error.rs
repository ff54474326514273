//! The coordinator's one error type and its mapping to gRPC status codes.

use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// A worker write whose attempt no longer holds the lease.
    #[error("lease lost: {0}")]
    LeaseLost(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

pub type Result<T, E = CoordinatorError> = std::result::Result<T, E>;

impl From<sqlx::Error> for CoordinatorError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) => match db.constraint() {
                Some("sweeps_name_key") => CoordinatorError::AlreadyExists("a sweep of that name exists".into()),
                Some("api_tokens_hash_key") | Some("workers_token_hash_key") => {
                    CoordinatorError::AlreadyExists("token collision".into())
                }
                _ if db.code().as_deref().is_some_and(|c| c.starts_with("08") || c.starts_with("57P")) => {
                    CoordinatorError::Unavailable(e)
                }
                _ => CoordinatorError::Unexpected(anyhow::Error::new(e)),
            },
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_) => CoordinatorError::Unavailable(e),
            _ => CoordinatorError::Unexpected(anyhow::Error::new(e)),
        }
    }
}

impl From<CoordinatorError> for Status {
    fn from(e: CoordinatorError) -> Self {
        let code = match &e {
            CoordinatorError::InvalidArgument(_) => Code::InvalidArgument,
            CoordinatorError::NotFound(_) => Code::NotFound,
            CoordinatorError::AlreadyExists(_) => Code::AlreadyExists,
            CoordinatorError::FailedPrecondition(_) | CoordinatorError::LeaseLost(_) => Code::FailedPrecondition,
            CoordinatorError::Unauthenticated(_) => Code::Unauthenticated,
            CoordinatorError::PermissionDenied(_) => Code::PermissionDenied,
            CoordinatorError::ResourceExhausted(_) => Code::ResourceExhausted,
            CoordinatorError::Unavailable(_) => Code::Unavailable,
            CoordinatorError::Unexpected(_) => Code::Internal,
        };
        match &e {
            CoordinatorError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                Status::new(code, "database unavailable, retry later")
            }
            CoordinatorError::Unexpected(cause) => {
                tracing::error!(error = ?cause, "internal error");
                Status::new(code, "internal error")
            }
            _ => Status::new(code, e.to_string()),
        }
    }
}
