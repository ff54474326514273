//! Sweep worker: the libtorch trainer (data, model, loss, metrics) and the agent that
//! leases trials from the coordinator and runs them.

pub mod agent;
pub mod data;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod train;
