//! A validated sweep file ([`SweepSpec`]) and the trials it expands to ([`Trial`]).
//! [`crate::parse`] makes one; [`SweepSpec::expand`] turns it into trials.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{Metric, TrialConfig};
use crate::objective::Constraint;

/// Limits the coordinator (or `sweep validate`) enforces on a sweep.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest number of trials one sweep may expand to.
    pub max_trials: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_trials: 100_000 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    #[default]
    Grid,
    Random,
    /// TPE: the first trials are random draws, the coordinator proposes the rest as
    /// results arrive.
    Tpe,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Grid => "grid",
            Method::Random => "random",
            Method::Tpe => "tpe",
        }
    }
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "grid" => Ok(Method::Grid),
            "random" => Ok(Method::Random),
            "tpe" => Ok(Method::Tpe),
            other => Err(format!("unknown method `{other}` (expected grid, random or tpe)")),
        }
    }
}

impl TryFrom<String> for Method {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    Uniform,
    LogUniform,
    IntUniform,
}

/// How one parameter varies.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamSpec {
    Values(Vec<serde_json::Value>),
    Range { min: f64, max: f64, distribution: Distribution },
}

/// A validated sweep file. Only [`crate::parse`] makes one, so every value in it has
/// passed validation; the fields are read through the methods below.
#[derive(Debug, Clone)]
pub struct SweepSpec {
    pub(crate) name: String,
    pub(crate) method: Method,
    pub(crate) metric: Metric,
    /// Every objective (the first is `metric`); more than one: ranked as a Pareto front.
    pub(crate) objectives: Vec<Metric>,
    /// What a trial must meet to count.
    pub(crate) constraints: Vec<Constraint>,
    pub(crate) seed: u64,
    pub(crate) max_attempts: u32,
    pub(crate) run_cap: Option<u64>,
    /// Runs of each configuration, with their own train and split seeds.
    pub(crate) replicas: u32,
    /// Early stopping decided by the coordinator (max_epochs resolved).
    pub(crate) early_stop: Option<crate::config::EarlyStop>,
    /// What its trials may cost (`budget:`).
    pub(crate) budget: Option<crate::budget::Budget>,
    /// The fixed sections with every default filled in.
    pub(crate) base: TrialConfig,
    /// Dotted path -> how it varies, sorted by path.
    pub(crate) parameters: BTreeMap<String, ParamSpec>,
    pub(crate) configurations: Vec<BTreeMap<String, serde_json::Value>>,
    /// Whether the file chose `loss.class_weight.scheme` (else it defaults by loss kind).
    pub(crate) scheme_given: bool,
}

impl SweepSpec {
    /// The sweep's name: its identity in the store.
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn method(&self) -> Method {
        self.method
    }
    /// The objective.
    pub fn metric(&self) -> &Metric {
        &self.metric
    }
    /// Every objective, the primary first: one unless the file names `metrics:`.
    pub fn objectives(&self) -> &[Metric] {
        &self.objectives
    }
    /// What a trial must meet to count (`constraints:`).
    pub fn constraints(&self) -> &[Constraint] {
        &self.constraints
    }
    /// Whether a trial whose final metrics `value_of` looks up meets every constraint.
    pub fn feasible(&self, value_of: impl Fn(&str) -> Option<f64>) -> bool {
        crate::objective::feasible(&self.constraints, value_of)
    }
    /// Seed of random search.
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// Attempts a trial gets before it ends failed or dead.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }
    /// Trials a random search draws.
    pub fn run_cap(&self) -> Option<u64> {
        self.run_cap
    }
    /// Runs of each configuration (1: no replicas).
    pub fn replicas(&self) -> u32 {
        self.replicas
    }
    /// Early stopping across trials (ASHA), if any.
    pub fn early_stop(&self) -> Option<crate::config::EarlyStop> {
        self.early_stop
    }
    /// What its trials may cost, if the file sets a budget.
    pub fn budget(&self) -> Option<crate::budget::Budget> {
        self.budget
    }
    /// The fixed sections with every default filled in.
    pub fn base(&self) -> &TrialConfig {
        &self.base
    }
    /// Dotted path -> how it varies, sorted by path.
    /// Explicit configurations (`sweep confirm`'s sweeps), empty when `parameters` sweep.
    pub fn configurations(&self) -> &[BTreeMap<String, serde_json::Value>] {
        &self.configurations
    }

    pub fn parameters(&self) -> &BTreeMap<String, ParamSpec> {
        &self.parameters
    }
}

/// One cell of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trial {
    /// Dotted path -> value, only the swept parameters.
    pub params: BTreeMap<String, serde_json::Value>,
    /// The fully resolved config a worker receives.
    pub config: TrialConfig,
    /// Hex SHA-256 of the canonical JSON of `config`: the trial's identity in its sweep.
    pub hash: String,
}

/// Names the trainer reports, per split. The objective must be one of the `val.` ones
/// (or `train.loss`): test metrics are reported, never optimised.
pub const METRICS: &[&str] = &[
    "loss",
    "f1_micro",
    "f1_macro",
    "f1_weighted",
    "f1_samples",
    "f1_micro_tuned",
    "f1_macro_tuned",
    "f1_macro_head",
    "f1_macro_medium",
    "f1_macro_tail",
    // The label groups' macro-F1 with per-label tuned thresholds.
    "f1_macro_head_tuned",
    "f1_macro_medium_tuned",
    "f1_macro_tail_tuned",
];
