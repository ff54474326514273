//! What every Sweep process shares at the gRPC edge, written once: connecting to the
//! coordinator (URL, TLS, a bearer token read from the environment or a file, never a
//! flag), retrying while it is unreachable, the tracing set-up and signal handling.
//! The worker and the CLI connect through [`connect`]; the coordinator uses
//! [`telemetry`] and [`signal`].

pub mod archive;
pub mod blobs;
pub mod connect;
pub mod files;
pub mod retry;
pub mod signal;
pub mod telemetry;

pub use connect::{read_token, Authed, Bearer, TlsArgs};
pub use retry::with_retry;
