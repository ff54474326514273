//! The Sweep file format.
//!
//! A sweep file is YAML close to the W&B sweep format: `name`, `method`, `metric`,
//! fixed sections (`dataset`, `model`, `train`, `loss`) and `parameters:` whose keys
//! are dotted paths into those sections. [`parse`] validates a file and returns a
//! [`SweepSpec`]; [`SweepSpec::expand`] turns it into trials. Nothing here does IO.

mod config;
mod error;
mod locate;
mod spec;

pub use config::*;
pub use error::{SpecError, SpecErrors};
pub use spec::{config_hash, parse, Distribution, Limits, Method, ParamSpec, SweepSpec, Trial, METRICS};
