//! Sweep coordinator: stores sweeps and trials in PostgreSQL and hands them to
//! workers over gRPC under leases (see DESIGN.md for the invariants).

pub mod auth;
pub mod blobs;
pub mod budget;
pub mod conn;
pub mod db;
pub mod error;
pub mod fleet;
pub mod maintenance;
pub mod metrics;
pub mod notify;
pub mod propose;
pub mod service;
pub mod settings;
pub mod startup;
pub mod state;
pub mod states;
pub mod tls;
pub mod web;

pub use error::CoordinatorError;
pub use settings::Settings;
pub use startup::Coordinator;
