//! The worker's tests through real processes (coordinator, workers, CLI over real gRPC,
//! a private Postgres), one test binary: a module per subject.

mod blobs;
mod confirm;
mod dashboard;
mod e2e;
mod encoder;
mod faults;
mod fused;
mod gpu_script;
mod metrics;
mod models;
mod parity;
mod soak;
mod spot;
