//! gRPC services. Generated prost types stop here: requests are checked and turned
//! into domain values once, replies built from store rows once.

pub mod agent;
pub mod blob;
pub mod client;
mod convert;
mod estimate;
pub mod fleet;

use uuid::Uuid;

use crate::error::{CoordinatorError, Result};
pub use crate::state::AppState;

pub(crate) fn parse_id(field: &str, value: &str) -> Result<Uuid> {
    Uuid::parse_str(value)
        .map_err(|_| CoordinatorError::InvalidArgument(format!("{field}: `{value}` is not a valid id")))
}
