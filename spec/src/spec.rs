//! Parsing, validation and expansion of a sweep file.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{Metric, TrialConfig};
use crate::error::{SpecError, SpecErrors};
use crate::locate::line_of;

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
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Grid => "grid",
            Method::Random => "random",
        }
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

/// A validated sweep file.
#[derive(Debug, Clone)]
pub struct SweepSpec {
    pub name: String,
    pub method: Method,
    pub metric: Metric,
    pub seed: u64,
    pub max_attempts: u32,
    pub run_cap: Option<u64>,
    /// The fixed sections with every default filled in.
    pub base: TrialConfig,
    /// Dotted path -> how it varies, sorted by path.
    pub parameters: BTreeMap<String, ParamSpec>,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    method: Method,
    #[serde(default)]
    metric: Metric,
    #[serde(default)]
    seed: u64,
    #[serde(default = "default_max_attempts")]
    max_attempts: u32,
    #[serde(default)]
    run_cap: Option<u64>,
    #[serde(default)]
    dataset: crate::config::DatasetConfig,
    #[serde(default)]
    model: crate::config::ModelConfig,
    #[serde(default)]
    train: crate::config::TrainConfig,
    #[serde(default)]
    loss: crate::config::LossConfig,
    #[serde(default)]
    parameters: BTreeMap<String, RawParam>,
}

fn default_max_attempts() -> u32 {
    3
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParam {
    values: Option<Vec<serde_norway::Value>>,
    value: Option<serde_norway::Value>,
    min: Option<f64>,
    max: Option<f64>,
    distribution: Option<Distribution>,
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
];

const SECTIONS: &[&str] = &["dataset", "model", "train", "loss"];

struct Ctx<'a> {
    source: &'a str,
    source_name: &'a str,
    errors: Vec<SpecError>,
}

impl Ctx<'_> {
    fn err(&mut self, path: &[&str], field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(SpecError {
            source_name: self.source_name.to_string(),
            line: line_of(self.source, path),
            field: field.into(),
            message: message.into(),
        });
    }
}

/// Parses and validates a sweep file. Every problem is reported with file, line and
/// field; nothing is returned unless the whole file is valid.
pub fn parse(source: &str, source_name: &str, limits: Limits) -> Result<SweepSpec, SpecErrors> {
    let raw: RawSpec = serde_norway::from_str(source).map_err(|e| {
        SpecErrors(vec![SpecError {
            source_name: source_name.to_string(),
            line: e.location().map(|l| l.line()),
            field: String::new(),
            message: e.to_string(),
        }])
    })?;
    let mut cx = Ctx { source, source_name, errors: Vec::new() };
    let _ = raw.description;

    if raw.name.is_empty()
        || raw.name.len() > 100
        || !raw.name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        cx.err(&["name"], "name", "must be 1-100 characters of letters, digits, '.', '_' or '-'");
    }
    if raw.max_attempts == 0 || raw.max_attempts > 100 {
        cx.err(&["max_attempts"], "max_attempts", format!("{} is out of range: must be in [1, 100]", raw.max_attempts));
    }
    check_metric(&mut cx, &raw.metric);

    let base = TrialConfig {
        metric: raw.metric.clone(),
        dataset: raw.dataset,
        model: raw.model,
        train: raw.train,
        loss: raw.loss,
    };
    for (field, problem) in base.check() {
        let path: Vec<&str> = field.split('.').collect();
        cx.err(&path, field.clone(), problem);
    }
    let base_json = serde_json::to_value(&base).expect("config serialises");

    let mut parameters = BTreeMap::new();
    for (path, p) in raw.parameters {
        if let Some(spec) = check_param(&mut cx, &base_json, &path, p, raw.method) {
            parameters.insert(path, spec);
        }
    }

    let run_cap = match (raw.method, raw.run_cap) {
        (Method::Random, None) => {
            cx.err(&["method"], "run_cap", "random search needs `run_cap` (how many trials to draw)");
            None
        }
        (Method::Random, Some(n)) if n == 0 || n > limits.max_trials => {
            cx.err(
                &["run_cap"],
                "run_cap",
                format!("{n} is out of range: must be in [1, {}] (the grid size cap)", limits.max_trials),
            );
            None
        }
        (Method::Grid, Some(_)) => {
            cx.err(&["run_cap"], "run_cap", "only random search takes `run_cap`; a grid runs every cell");
            None
        }
        (_, cap) => cap,
    };

    let spec = SweepSpec {
        name: raw.name,
        method: raw.method,
        metric: raw.metric,
        seed: raw.seed,
        max_attempts: raw.max_attempts,
        run_cap,
        base,
        parameters,
    };
    if cx.errors.is_empty() && spec.method == Method::Grid {
        let n = spec.grid_size();
        if n > limits.max_trials {
            cx.err(
                &["parameters"],
                "parameters",
                format!(
                    "the grid has {} trials, over the cap of {} (raise the coordinator's --max-trials or use method: random)",
                    if n == u64::MAX { "more than 2^64".to_string() } else { n.to_string() },
                    limits.max_trials
                ),
            );
        }
    }
    if cx.errors.is_empty() {
        // Combinations can break cross-field rules that each value alone passes.
        if let Err(e) = spec.expand() {
            cx.errors.extend(e.0);
        }
    }
    if cx.errors.is_empty() {
        Ok(spec)
    } else {
        Err(SpecErrors(cx.errors))
    }
}

fn check_metric(cx: &mut Ctx<'_>, metric: &Metric) {
    let ok = match metric.name.split_once('.') {
        Some(("val", m)) => METRICS.contains(&m),
        Some(("train", "loss")) => true,
        _ => false,
    };
    if !ok {
        let msg = if metric.name.starts_with("test.") {
            format!(
                "`{}`: the objective must be a validation metric (val.*); test metrics are reported, never optimised",
                metric.name
            )
        } else {
            format!(
                "unknown metric `{}`; expected train.loss or val.<m> with <m> one of {}",
                metric.name,
                METRICS.join(", ")
            )
        };
        cx.err(&["metric", "name"], "metric.name", msg);
    }
}

/// Validates one `parameters:` entry. Each value is resolved on its own onto the base
/// config so that a type or range error points at this parameter's line.
fn check_param(
    cx: &mut Ctx<'_>,
    base: &serde_json::Value,
    path: &str,
    p: RawParam,
    method: Method,
) -> Option<ParamSpec> {
    let field = format!("parameters.{path}");
    let at = ["parameters", path];
    let segments: Vec<&str> = path.split('.').collect();
    if !SECTIONS.contains(&segments[0]) || lookup(base, &segments).is_none() {
        cx.err(&at, field, format!("unknown parameter path `{path}`; it must name a field of {}", SECTIONS.join(", ")));
        return None;
    }
    if lookup(base, &segments).is_some_and(|v| v.is_object()) {
        cx.err(&at, field, format!("`{path}` is a section; name one of its fields"));
        return None;
    }
    let has_range = p.min.is_some() || p.max.is_some() || p.distribution.is_some();
    let spec = match (p.values, p.value, has_range) {
        (Some(values), None, false) => {
            if values.is_empty() {
                cx.err(&[&at[..], &["values"]].concat(), field, "`values` is empty");
                return None;
            }
            let mut out = Vec::with_capacity(values.len());
            for v in values {
                match yaml_to_json(&v) {
                    Ok(j) => out.push(j),
                    Err(m) => {
                        cx.err(&[&at[..], &["values"]].concat(), field, m);
                        return None;
                    }
                }
            }
            ParamSpec::Values(out)
        }
        (None, Some(v), false) => match yaml_to_json(&v) {
            Ok(j) => ParamSpec::Values(vec![j]),
            Err(m) => {
                cx.err(&[&at[..], &["value"]].concat(), field, m);
                return None;
            }
        },
        (None, None, true) => {
            let (Some(min), Some(max)) = (p.min, p.max) else {
                cx.err(&at, field, "a range needs both `min` and `max`");
                return None;
            };
            if !min.is_finite() || !max.is_finite() {
                cx.err(&at, field, "`min` and `max` must be finite numbers");
                return None;
            }
            if min > max {
                cx.err(&[&at[..], &["min"]].concat(), field, format!("min ({min}) > max ({max})"));
                return None;
            }
            let distribution = p.distribution.unwrap_or(Distribution::Uniform);
            if distribution == Distribution::LogUniform && min <= 0.0 {
                cx.err(&[&at[..], &["min"]].concat(), field, "log_uniform needs min > 0");
                return None;
            }
            if distribution == Distribution::IntUniform && min.ceil() > max.floor() {
                cx.err(&at, field, format!("no integer lies in [{min}, {max}]"));
                return None;
            }
            if method == Method::Grid {
                cx.err(&at, field, "a grid needs `values` (or `value`); `min`/`max` are for method: random");
                return None;
            }
            ParamSpec::Range { min, max, distribution }
        }
        (None, None, false) => {
            cx.err(&at, field, "needs `values: [...]`, `value: x`, or `min`/`max`");
            return None;
        }
        _ => {
            cx.err(&at, field, "give exactly one of `values`, `value`, or `min`/`max`");
            return None;
        }
    };
    // Resolve each candidate value alone so errors point here.
    let candidates: Vec<serde_json::Value> = match &spec {
        ParamSpec::Values(v) => v.clone(),
        ParamSpec::Range { min, max, distribution: Distribution::IntUniform } => {
            vec![serde_json::json!(min.ceil() as i64), serde_json::json!(max.floor() as i64)]
        }
        ParamSpec::Range { min, max, .. } => vec![serde_json::json!(min), serde_json::json!(max)],
    };
    for v in candidates {
        let mut cfg = base.clone();
        set_path(&mut cfg, &segments, v.clone());
        match serde_json::from_value::<TrialConfig>(cfg) {
            Err(e) => {
                cx.err(&at, field.clone(), format!("value {v}: {e}"));
                return None;
            }
            Ok(c) => {
                if let Some((_, problem)) = c.check().into_iter().find(|(f, _)| f == path) {
                    cx.err(&at, field.clone(), format!("value {v}: {problem}"));
                    return None;
                }
            }
        }
    }
    Some(spec)
}

fn yaml_to_json(v: &serde_norway::Value) -> Result<serde_json::Value, String> {
    use serde_norway::Value as Y;
    Ok(match v {
        Y::Null => serde_json::Value::Null,
        Y::Bool(b) => serde_json::Value::Bool(*b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                serde_json::json!(i)
            } else if let Some(u) = n.as_u64() {
                serde_json::json!(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if !f.is_finite() {
                    return Err(format!("{f} is not a finite number"));
                }
                serde_json::json!(f)
            }
        }
        Y::String(s) => serde_json::Value::String(s.clone()),
        Y::Sequence(items) => serde_json::Value::Array(items.iter().map(yaml_to_json).collect::<Result<_, _>>()?),
        Y::Mapping(_) | Y::Tagged(_) => return Err("a parameter value must be a scalar or a list".into()),
    })
}

fn lookup<'v>(v: &'v serde_json::Value, path: &[&str]) -> Option<&'v serde_json::Value> {
    path.iter().try_fold(v, |cur, k| cur.as_object()?.get(*k))
}

fn set_path(v: &mut serde_json::Value, path: &[&str], value: serde_json::Value) {
    let mut cur = v;
    for k in &path[..path.len() - 1] {
        cur = cur.get_mut(*k).expect("path checked against the base config");
    }
    cur[path[path.len() - 1]] = value;
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
        match self.method {
            Method::Grid => self.grid_size(),
            Method::Random => self.run_cap.unwrap_or(0),
        }
    }

    /// All trials of the sweep, deterministic for the file (random draws use `seed`).
    /// Random draws that resolve to the same config are kept once.
    pub fn expand(&self) -> Result<Vec<Trial>, SpecErrors> {
        let base = serde_json::to_value(&self.base).expect("config serialises");
        let keys: Vec<&String> = self.parameters.keys().collect();
        let mut assignments: Vec<Vec<serde_json::Value>> = Vec::new();
        match self.method {
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
            Method::Random => {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed);
                for _ in 0..self.run_cap.unwrap_or(0) {
                    assignments.push(self.parameters.values().map(|p| draw(&mut rng, p)).collect());
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        let mut trials = Vec::with_capacity(assignments.len());
        let mut errors = Vec::new();
        for values in assignments {
            let mut cfg = base.clone();
            let mut params = BTreeMap::new();
            for (k, v) in keys.iter().zip(values) {
                let segments: Vec<&str> = k.split('.').collect();
                set_path(&mut cfg, &segments, v.clone());
                params.insert((*k).clone(), v);
            }
            let config: TrialConfig = match serde_json::from_value(cfg) {
                Ok(c) => c,
                Err(e) => {
                    errors.push(combo_error(&params, e.to_string()));
                    continue;
                }
            };
            if let Some((field, problem)) = config.check().into_iter().next() {
                errors.push(combo_error(&params, format!("{field}: {problem}")));
                continue;
            }
            let hash = config_hash(&config);
            if seen.insert(hash.clone()) {
                trials.push(Trial { params, config, hash });
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

/// The identity of a trial within its sweep: SHA-256 of the canonical JSON (sorted
/// keys, typed values) of its resolved config.
pub fn config_hash(config: &TrialConfig) -> String {
    let canonical = serde_json::to_vec(&serde_json::to_value(config).expect("config serialises")).expect("json");
    hex::encode(Sha256::digest(canonical))
}
