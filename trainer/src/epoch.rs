//! One epoch's numbers, as the trainer streams them and a checkpoint keeps them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochReport {
    pub epoch: u32,
    pub metrics: BTreeMap<String, f64>,
}
