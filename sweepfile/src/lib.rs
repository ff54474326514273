//! The Sweep file format.
//!
//! A sweep file is YAML close to the W&B sweep format: `name`, `method`, `metric`,
//! fixed sections (`dataset`, `model`, `train`, `loss`) and `parameters:` whose keys
//! are dotted paths into those sections. [`parse`] validates a file and returns a
//! [`SweepSpec`]; [`SweepSpec::expand`] turns it into trials ([`parse_and_expand`]
//! does both). Nothing here does IO but reading a model directory's headers
//! ([`check_model_dir`]).

mod budget;
mod config;
mod data;
mod dataset;
mod encoder;
mod error;
mod expand;
mod features;
mod fuse;
mod locate;
mod model_dir;
mod objective;
mod parse;
mod spec;
mod split;
mod yaml;

pub use budget::Budget;
pub use config::*;
pub use data::{bind_data, data_dir, data_files, is_remote, set_data_file, sibling_xml};
pub use encoder::{EncoderFeatures, ModelKind, Pooling, Truncation, ENCODER_FILES};
pub use error::{SpecError, SpecErrors};
pub use expand::{config_hash, parse_and_expand};
pub use fuse::{fuse_mismatch, FuseKey};
pub use model_dir::{
    check_model_dir, safetensors_shapes, tokenizer_ids, weights_prefix, Activation, Arch, EncoderConfig,
};
pub use objective::{dominates, feasible, pareto_front, violation, Bound, Constraint};
pub use parse::parse;
pub use spec::{Distribution, Limits, Method, ParamSpec, SweepSpec, Trial, METRICS};
