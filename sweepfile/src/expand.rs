//! Expansion of a validated sweep into trials (grid order, or seeded random draws),
//! each with the hash that is its identity in the sweep.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

use crate::config::{AslConfig, DbConfig, LossKind, TrialConfig};
use crate::error::{SpecError, SpecErrors};
use crate::parse::set_path;
use crate::spec::{Distribution, Limits, Method, ParamSpec, SweepSpec, Trial};

/// Parses, validates and expands a sweep file: what the coordinator does once per
/// submit and `sweep validate` / `sweep submit` do before sending it.
pub fn parse_and_expand(
    source: &str,
    source_name: &str,
    limits: Limits,
) -> Result<(SweepSpec, Vec<Trial>), SpecErrors> {
    let spec = crate::parse(source, source_name, limits)?;
    let trials = spec.expand().map_err(|e| {
        // Combination errors name the trial; say which file they came from.
        SpecErrors(e.0.into_iter().map(|x| SpecError { source_name: source_name.to_string(), ..x }).collect())
    })?;
    Ok((spec, trials))
}

impl SweepSpec {
    /// Number of cells in the grid (saturating).
    pub fn grid_size(&self) -> u64 {
        self.parameters.values().fold(1u64, |acc, p| match p {
            ParamSpec::Values(v) => acc.saturating_mul(v.len() as u64),
            ParamSpec::Range { .. } => acc,
        })
    }

    /// Number of trials `expand` yields at most.
    pub fn planned_trials(&self) -> u64 {
        let configurations = match self.method {
            Method::Grid if !self.configurations.is_empty() => self.configurations.len() as u64,
            Method::Grid => self.grid_size(),
            Method::Random | Method::Tpe => self.run_cap.unwrap_or(0),
        };
        configurations
            .saturating_mul(u64::from(self.replicas))
            .saturating_mul(u64::from(self.base.dataset.trials_per_run()))
    }

    /// Configurations a TPE sweep starts with (random draws); also how many it keeps in
    /// flight while the coordinator proposes the rest.
    pub fn tpe_startup(&self) -> u64 {
        self.run_cap.unwrap_or(0).min(TPE_STARTUP)
    }

    /// The trials (one per replica) of one configuration: `values` in the order of
    /// [`SweepSpec::parameters`]. What the coordinator calls for each TPE proposal.
    pub fn trials_for(&self, values: Vec<serde_json::Value>) -> Result<Vec<Trial>, String> {
        let base = serde_json::to_value(&self.base).expect("config serialises");
        self.configuration(&base, values).map_err(|e| format!("{}: {}", e.field, e.message))
    }

    fn configuration(&self, base: &serde_json::Value, values: Vec<serde_json::Value>) -> Result<Vec<Trial>, SpecError> {
        self.configuration_of(base, self.parameters.keys().cloned().zip(values).collect())
    }

    /// The trials (one per replica) of the configuration `params` (dotted path -> value).
    fn configuration_of(
        &self,
        base: &serde_json::Value,
        params: BTreeMap<String, serde_json::Value>,
    ) -> Result<Vec<Trial>, SpecError> {
        let mut cfg = base.clone();
        for (k, v) in &params {
            let segments: Vec<&str> = k.split('.').collect();
            set_path(&mut cfg, &segments, v.clone());
        }
        let mut config: TrialConfig = serde_json::from_value(cfg).map_err(|e| combo_error(&params, e.to_string()))?;
        let unresolved = config.resolve(self.scheme_given);
        if let Some((field, problem)) = unresolved.into_iter().chain(config.check()).next() {
            return Err(combo_error(&params, format!("{field}: {problem}")));
        }
        Ok(self
            .replicate(params, config)
            .into_iter()
            .map(|(params, config)| {
                let hash = config_hash(&config);
                Trial { params, config, hash }
            })
            .collect())
    }

    /// The replicas of one configuration: replica r adds r to `train.seed` and to
    /// `dataset.split_seed` (so replica r of every configuration shares its seeds, which
    /// is what pairs them), and records both in the params. With `dataset.cv`, each
    /// replica is one trial per fold (`dataset.fold` in the params): the folds of a split
    /// seed are the same rows for every configuration.
    fn replicate(
        &self,
        params: BTreeMap<String, serde_json::Value>,
        config: TrialConfig,
    ) -> Vec<(BTreeMap<String, serde_json::Value>, TrialConfig)> {
        let replicas: Vec<(BTreeMap<String, serde_json::Value>, TrialConfig)> = if self.replicas <= 1 {
            vec![(params, config)]
        } else {
            (0..u64::from(self.replicas))
                .map(|r| {
                    let (mut params, mut config) = (params.clone(), config.clone());
                    config.train.seed = config.train.seed.wrapping_add(r);
                    config.dataset.split_seed = config.dataset.split_seed.wrapping_add(r);
                    params.insert("train.seed".into(), serde_json::json!(config.train.seed));
                    params.insert("dataset.split_seed".into(), serde_json::json!(config.dataset.split_seed));
                    (params, config)
                })
                .collect()
        };
        let folds = replicas.first().map_or(1, |(_, c)| c.dataset.trials_per_run());
        if folds == 1 {
            return replicas;
        }
        replicas
            .into_iter()
            .flat_map(|(params, config)| {
                (0..folds).map(move |f| {
                    let (mut params, mut config) = (params.clone(), config.clone());
                    config.dataset.fold = f;
                    params.insert("dataset.fold".into(), serde_json::json!(f));
                    (params, config)
                })
            })
            .collect()
    }

    /// All trials of the sweep, deterministic for the file (random draws use `seed`).
    /// Random draws that resolve to the same config are kept once.
    pub fn expand(&self) -> Result<Vec<Trial>, SpecErrors> {
        let base = serde_json::to_value(&self.base).expect("config serialises");
        let mut assignments: Vec<Vec<serde_json::Value>> = Vec::new();
        match self.method {
            Method::Grid if !self.configurations.is_empty() => {}
            Method::Grid => {
                let lists: Vec<&Vec<serde_json::Value>> = self
                    .parameters
                    .values()
                    .map(|p| match p {
                        ParamSpec::Values(v) => v,
                        ParamSpec::Range { .. } => unreachable!("grids are checked to have values"),
                    })
                    .collect();
                let total = self.grid_size() as usize;
                let mut idx = vec![0usize; lists.len()];
                for _ in 0..total {
                    assignments.push(idx.iter().zip(&lists).map(|(&i, l)| l[i].clone()).collect());
                    // Odometer: the last parameter varies fastest.
                    for d in (0..idx.len()).rev() {
                        idx[d] += 1;
                        if idx[d] < lists[d].len() {
                            break;
                        }
                        idx[d] = 0;
                    }
                }
            }
            Method::Random | Method::Tpe => {
                let draws = if self.method == Method::Tpe { self.tpe_startup() } else { self.run_cap.unwrap_or(0) };
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed);
                for _ in 0..draws {
                    assignments.push(self.parameters.values().map(|p| draw(&mut rng, p)).collect());
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        let mut trials = Vec::with_capacity(assignments.len());
        let mut errors = Vec::new();
        let listed = self.configurations.iter().map(|c| self.configuration_of(&base, c.clone()));
        let swept = assignments.into_iter().map(|values| self.configuration(&base, values));
        for configuration in listed.chain(swept) {
            match configuration {
                Ok(replicas) => {
                    for t in replicas {
                        if seen.insert(t.hash.clone()) {
                            trials.push(t);
                        }
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(trials)
        } else {
            errors.truncate(5);
            Err(SpecErrors(errors))
        }
    }
}

fn combo_error(params: &BTreeMap<String, serde_json::Value>, message: String) -> SpecError {
    SpecError {
        source_name: String::new(),
        line: None,
        field: format!("trial {}", serde_json::to_string(params).unwrap_or_default()),
        message,
    }
}

fn draw(rng: &mut impl Rng, p: &ParamSpec) -> serde_json::Value {
    match p {
        ParamSpec::Values(v) => v[rng.gen_range(0..v.len())].clone(),
        ParamSpec::Range { min, max, distribution } => match distribution {
            Distribution::Uniform => serde_json::json!(if min == max { *min } else { rng.gen_range(*min..=*max) }),
            Distribution::LogUniform => {
                let (a, b) = (min.ln(), max.ln());
                serde_json::json!(if a == b { *min } else { rng.gen_range(a..=b).exp() })
            }
            Distribution::IntUniform => {
                serde_json::json!(rng.gen_range(min.ceil() as i64..=max.floor() as i64))
            }
        },
    }
}

/// Random configurations a TPE sweep starts with (Optuna's default for its sampler).
pub const TPE_STARTUP: u64 = 10;

/// The identity of a trial within its sweep: SHA-256 of the canonical JSON (sorted
/// keys, typed values) of its resolved config. Fields added to the config after sweeps
/// were first stored are left out while they hold the value that means "as before"
/// (`loss.kind: bce`, default `loss.asl` and `loss.db`), so resubmitting a sweep stored
/// by an earlier version adds no duplicate cells.
pub fn config_hash(config: &TrialConfig) -> String {
    let mut v = serde_json::to_value(config).expect("config serialises");
    v["dataset"] = config.dataset.identity_json();
    let loss = v.get_mut("loss").and_then(|l| l.as_object_mut()).expect("loss section");
    if config.loss.kind == LossKind::Bce {
        loss.remove("kind");
    }
    if config.loss.asl == AslConfig::default() {
        loss.remove("asl");
    }
    if config.loss.db == DbConfig::default() {
        loss.remove("db");
    }
    // How often a trial checkpoints does not change what it computes (a resumed trial
    // ends exactly as an uninterrupted one): not part of a cell's identity.
    if let Some(train) = v.get_mut("train").and_then(|t| t.as_object_mut()) {
        train.remove("checkpoint_every");
    }
    hex::encode(Sha256::digest(serde_json::to_vec(&v).expect("json")))
}
