//! The coordinator's tests against a real Postgres and real gRPC (in-process or as
//! processes), and its deployment files checked offline: one test binary, a module per
//! subject.

mod api;
mod blobs;
mod dashboard;
mod deploy;
mod fleet;
mod security;
mod tls;
mod tpe;
