//! Sweep worker: the agent that leases trials from the coordinator, trains them with
//! the trainer crate and reports back. `sweep-worker train` runs one trial alone.

pub mod agent;
pub mod blobcache;
pub mod doctor;
pub mod malloc;
pub mod offline;
pub mod spot;
