//! Parsing and validation of a sweep file: every problem collected with file, line
//! and field ([`Ctx::err`]) before failing. No expansion happens here.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::{EarlyStop, Metric, TrialConfig};
use crate::error::{SpecError, SpecErrors};
use crate::locate::line_of;
use crate::spec::{Distribution, Limits, Method, ParamSpec, SweepSpec};
use crate::yaml::yaml_to_json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    method: Method,
    #[serde(default)]
    metric: Option<Metric>,
    /// Several objectives at once (ranked as a Pareto front); the first is the primary.
    #[serde(default)]
    metrics: Option<Vec<Metric>>,
    /// `val.<metric> >= x` / `<= x`: what a trial must meet to count.
    #[serde(default)]
    constraints: Vec<String>,
    #[serde(default)]
    seed: u64,
    #[serde(default = "default_max_attempts")]
    max_attempts: u32,
    #[serde(default)]
    run_cap: Option<u64>,
    #[serde(default = "one")]
    replicas: u32,
    #[serde(default)]
    early_stop: Option<crate::config::EarlyStop>,
    #[serde(default)]
    budget: Option<crate::budget::Budget>,
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
    /// Explicit configurations (dotted path -> value each) instead of `parameters`:
    /// what `sweep confirm` writes.
    #[serde(default)]
    configurations: Vec<BTreeMap<String, serde_norway::Value>>,
}

fn one() -> u32 {
    1
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
/// field; nothing is returned unless the whole file is valid. Combinations of values
/// are checked when the sweep is expanded ([`SweepSpec::expand`]).
pub fn parse(source: &str, source_name: &str, limits: Limits) -> Result<SweepSpec, SpecErrors> {
    let raw: RawSpec = serde_norway::from_str(source).map_err(|e| yaml_error(source, source_name, e))?;
    let mut cx = Ctx { source, source_name, errors: Vec::new() };
    check_header(&mut cx, &raw);
    let objectives = check_objectives(&mut cx, &raw);
    let constraints = check_constraints(&mut cx, &raw.constraints);
    let scheme_given = scheme_given(source, &raw);
    let mut base = TrialConfig {
        metric: objectives[0].clone(),
        dataset: raw.dataset,
        model: raw.model,
        train: raw.train,
        loss: raw.loss,
    };
    let unresolved = base.resolve(scheme_given);
    for (field, problem) in unresolved.into_iter().chain(base.check()) {
        let path: Vec<&str> = field.split('.').collect();
        cx.err(&path, field.clone(), problem);
    }
    let base_json = serde_json::to_value(&base).expect("config serialises");
    let mut parameters = BTreeMap::new();
    for (path, p) in raw.parameters {
        if let Some(spec) = check_param(&mut cx, &base_json, &path, p, raw.method, scheme_given) {
            parameters.insert(path, spec);
        }
    }
    let configurations =
        check_configurations(&mut cx, raw.configurations, &base_json, &parameters, raw.method, scheme_given);
    let spec = SweepSpec {
        configurations,
        run_cap: check_run_cap(&mut cx, raw.method, raw.run_cap, limits),
        replicas: raw.replicas,
        early_stop: check_early_stop(&mut cx, raw.early_stop, base.train.epochs, base.dataset.cv_refit),
        budget: check_budget(&mut cx, raw.budget),
        name: raw.name,
        method: raw.method,
        metric: objectives[0].clone(),
        objectives,
        constraints,
        seed: raw.seed,
        max_attempts: raw.max_attempts,
        base,
        parameters,
        scheme_given,
    };
    if cx.errors.is_empty() {
        check_grid_size(&mut cx, &spec, limits);
    }
    if cx.errors.is_empty() {
        Ok(spec)
    } else {
        Err(SpecErrors(cx.errors))
    }
}

/// A file that is not a sweep file's shape, with where. The dataset section is read as a
/// whole (its kind decides its fields): an unknown field there points at that field.
fn yaml_error(source: &str, source_name: &str, e: serde_norway::Error) -> SpecErrors {
    let message = e.to_string();
    let dataset_field = message
        .strip_prefix("unknown field `")
        .filter(|_| message.contains(" dataset (it takes "))
        .and_then(|rest| rest.split_once('`'))
        .map(|(f, _)| f.to_string());
    let (line, field) = match dataset_field {
        Some(f) => (line_of(source, &["dataset", &f]), format!("dataset.{f}")),
        None => (e.location().map(|l| l.line()), String::new()),
    };
    let message = message.split(" at line ").next().unwrap_or(&message).to_string();
    SpecErrors(vec![SpecError { source_name: source_name.to_string(), line, field, message }])
}

/// Explicit configurations (what `sweep confirm` writes), each value checked alone as a
/// parameter's would be; a file has them or swept `parameters`, not both.
fn check_configurations(
    cx: &mut Ctx<'_>,
    raw: Vec<BTreeMap<String, serde_norway::Value>>,
    base_json: &serde_json::Value,
    parameters: &BTreeMap<String, ParamSpec>,
    method: Method,
    scheme_given: bool,
) -> Vec<BTreeMap<String, serde_json::Value>> {
    if !raw.is_empty() && (!parameters.is_empty() || method != Method::Grid) {
        let msg = "a sweep lists `configurations` or sweeps `parameters` (grid), not both";
        cx.err(&["configurations"], "configurations", msg);
    }
    let mut configurations = Vec::new();
    for (i, c) in raw.into_iter().enumerate() {
        let mut checked = BTreeMap::new();
        for (path, v) in c {
            let at = format!("configurations[{i}].{path}");
            let value = match yaml_to_json(&v) {
                Ok(v) => v,
                Err(msg) => {
                    cx.err(&["configurations"], at, msg);
                    continue;
                }
            };
            let one = ParamSpec::Values(vec![value.clone()]);
            match check_path(base_json, &path).and_then(|()| check_candidates(base_json, &path, &one, scheme_given)) {
                Ok(()) => drop(checked.insert(path, value)),
                Err((_, msg)) => cx.err(&["configurations"], at, msg),
            }
        }
        configurations.push(checked);
    }
    configurations
}

/// Whether the file chooses `loss.class_weight.scheme` itself (in the loss section, as a
/// parameter, or in a listed configuration); if not, the scheme defaults by loss kind.
fn scheme_given(source: &str, raw: &RawSpec) -> bool {
    const PATH: &str = "loss.class_weight.scheme";
    let in_section = serde_norway::from_str::<serde_norway::Value>(source)
        .ok()
        .and_then(|v| v.get("loss")?.get("class_weight")?.get("scheme").cloned())
        .is_some();
    in_section || raw.parameters.contains_key(PATH) || raw.configurations.iter().any(|c| c.contains_key(PATH))
}

fn check_header(cx: &mut Ctx<'_>, raw: &RawSpec) {
    let _ = &raw.description; // accepted for people, not used
    let name_ok = !raw.name.is_empty()
        && raw.name.len() <= 100
        && raw.name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !name_ok {
        cx.err(&["name"], "name", "must be 1-100 characters of letters, digits, '.', '_' or '-'");
    }
    if raw.max_attempts == 0 || raw.max_attempts > 100 {
        cx.err(&["max_attempts"], "max_attempts", format!("{} is out of range: must be in [1, 100]", raw.max_attempts));
    }
    if raw.replicas == 0 || raw.replicas > 100 {
        cx.err(&["replicas"], "replicas", format!("{} is out of range: must be in [1, 100]", raw.replicas));
    }
    for path in raw.parameters.keys().filter(|p| *p == "dataset.fold" || p.starts_with("dataset.cv")) {
        let msg = format!("`{path}` is not swept: `dataset.cv: {{folds: k}}` makes one trial per fold");
        cx.err(&["parameters", path], format!("parameters.{path}"), msg);
    }
    for seed in ["train.seed", "dataset.split_seed"] {
        if raw.replicas > 1 && raw.parameters.contains_key(seed) {
            let msg = format!("replicas vary {seed} themselves (replica r adds r); remove it from parameters");
            cx.err(&["replicas"], "replicas", msg);
        }
    }
}

fn check_run_cap(cx: &mut Ctx<'_>, method: Method, run_cap: Option<u64>, limits: Limits) -> Option<u64> {
    let max = limits.max_trials;
    match (method, run_cap) {
        (Method::Random | Method::Tpe, None) => {
            let msg = format!("{} search needs `run_cap` (how many trials to run)", method.as_str());
            cx.err(&["method"], "run_cap", msg);
            None
        }
        (Method::Random | Method::Tpe, Some(n)) if n == 0 || n > max => {
            let msg = format!("{n} is out of range: must be in [1, {max}] (the grid size cap)");
            cx.err(&["run_cap"], "run_cap", msg);
            None
        }
        (Method::Grid, Some(_)) => {
            cx.err(&["run_cap"], "run_cap", "only random and tpe search take `run_cap`; a grid runs every cell");
            None
        }
        (_, cap) => cap,
    }
}

/// ASHA's settings, with `max_epochs` defaulting to the base `train.epochs`.
fn check_early_stop(cx: &mut Ctx<'_>, rule: Option<EarlyStop>, epochs: u32, refit: bool) -> Option<EarlyStop> {
    let EarlyStop::Asha { min_epochs, reduction_factor, max_epochs } = rule?;
    let max_epochs = if max_epochs == 0 { epochs } else { max_epochs };
    let at = ["early_stop"];
    if refit {
        cx.err(&at, "early_stop", "a refit trial (`cv: {refit: true}`) trains its folds and then its model: no rungs");
    } else if min_epochs == 0 {
        cx.err(&at, "early_stop.min_epochs", "must be at least 1");
    } else if !(2..=100).contains(&reduction_factor) {
        cx.err(&at, "early_stop.reduction_factor", format!("{reduction_factor} is out of range: must be in [2, 100]"));
    } else if min_epochs >= max_epochs {
        let msg = format!("min_epochs ({min_epochs}) must be below max_epochs ({max_epochs}): no rung to decide at");
        cx.err(&at, "early_stop.min_epochs", msg);
    } else {
        return Some(EarlyStop::Asha { min_epochs, reduction_factor, max_epochs });
    }
    None
}

/// A budget is a positive number of dollars.
fn check_budget(cx: &mut Ctx<'_>, budget: Option<crate::budget::Budget>) -> Option<crate::budget::Budget> {
    match budget?.problem() {
        Some(problem) => {
            cx.err(&["budget", "max_cost_usd"], "budget.max_cost_usd", problem);
            None
        }
        None => budget,
    }
}

/// A grid (with its replicas) over the cap is refused before anything is expanded.
fn check_grid_size(cx: &mut Ctx<'_>, spec: &SweepSpec, limits: Limits) {
    let n = spec.planned_trials();
    if n > limits.max_trials {
        let n = if n == u64::MAX { "more than 2^64".to_string() } else { n.to_string() };
        let (what, at) = match spec.method {
            Method::Grid => ("the grid has", "parameters"),
            Method::Random | Method::Tpe => ("run_cap x replicas is", "run_cap"),
        };
        let msg = format!(
            "{what} {n} trials, over the cap of {} (raise the coordinator's --max-trials or use method: random)",
            limits.max_trials
        );
        cx.err(&[at], at, msg);
    }
}

/// The objectives: `metric:` (one) or `metrics:` (two or three, ranked as a Pareto
/// front; the first is the primary, which early stopping within a trial follows).
fn check_objectives(cx: &mut Ctx<'_>, raw: &RawSpec) -> Vec<Metric> {
    let objectives = match (&raw.metric, &raw.metrics) {
        (Some(_), Some(_)) => {
            cx.err(&["metrics"], "metrics", "give `metric` (one objective) or `metrics` (several), not both");
            return vec![Metric::default()];
        }
        (Some(m), None) => vec![m.clone()],
        (None, None) => vec![Metric::default()],
        (None, Some(ms)) => {
            if !(2..=3).contains(&ms.len()) {
                let msg = format!("{} objectives: `metrics` takes two or three (use `metric` for one)", ms.len());
                cx.err(&["metrics"], "metrics", msg);
            }
            let mut names: Vec<&str> = ms.iter().map(|m| m.name.as_str()).collect();
            names.sort_unstable();
            if names.windows(2).any(|w| w[0] == w[1]) {
                cx.err(&["metrics"], "metrics", "an objective is named twice");
            }
            if raw.method == Method::Tpe {
                cx.err(&["method"], "method", "tpe optimises one objective; search several with grid or random");
            }
            if raw.early_stop.is_some() {
                cx.err(&["early_stop"], "early_stop", "early_stop prunes on one objective; remove it or use `metric`");
            }
            if ms.is_empty() {
                return vec![Metric::default()];
            }
            ms.clone()
        }
    };
    for (i, m) in objectives.iter().enumerate() {
        if let Err(msg) = crate::objective::check_metric_name(&m.name, "the objective") {
            match &raw.metrics {
                Some(_) => cx.err(&["metrics"], format!("metrics[{i}].name"), msg),
                None => cx.err(&["metric", "name"], "metric.name", msg),
            }
        }
    }
    objectives
}

fn check_constraints(cx: &mut Ctx<'_>, raw: &[String]) -> Vec<crate::objective::Constraint> {
    let mut out = Vec::new();
    for (i, c) in raw.iter().enumerate() {
        match c.parse() {
            Ok(c) => out.push(c),
            Err(msg) => cx.err(&["constraints"], format!("constraints[{i}]"), msg),
        }
    }
    out
}

/// A problem with one parameter: the key under it that is at fault (if any) and what.
type Problem = (Option<&'static str>, String);

fn problem<T>(key: Option<&'static str>, msg: impl Into<String>) -> Result<T, Problem> {
    Err((key, msg.into()))
}

/// Validates one `parameters:` entry. Each value is resolved on its own onto the base
/// config so that a type or range error points at this parameter's line.
fn check_param(
    cx: &mut Ctx<'_>,
    base: &serde_json::Value,
    path: &str,
    p: RawParam,
    method: Method,
    scheme_given: bool,
) -> Option<ParamSpec> {
    let checked = check_path(base, path)
        .and_then(|()| param_spec(p, method))
        .and_then(|spec| check_candidates(base, path, &spec, scheme_given).map(|()| spec));
    match checked {
        Ok(spec) => Some(spec),
        Err((key, msg)) => {
            let at: Vec<&str> = ["parameters", path].into_iter().chain(key).collect();
            cx.err(&at, format!("parameters.{path}"), msg);
            None
        }
    }
}

/// Fields written out only when not at their default (so older identities hold), which
/// a sweep may still vary.
const ELIDED_AT_DEFAULT: &[&str] = &["dataset.split"];

fn check_path(base: &serde_json::Value, path: &str) -> Result<(), Problem> {
    let segments: Vec<&str> = path.split('.').collect();
    if ELIDED_AT_DEFAULT.contains(&path) {
        return Ok(());
    }
    match lookup(base, &segments) {
        Some(v) if SECTIONS.contains(&segments[0]) && !v.is_object() => Ok(()),
        Some(v) if v.is_object() => problem(None, format!("`{path}` is a section; name one of its fields")),
        _ => problem(None, format!("unknown parameter path `{path}`; it must name a field of {}", SECTIONS.join(", "))),
    }
}

/// How the parameter varies: `values`, one `value`, or a `min`/`max` range.
fn param_spec(p: RawParam, method: Method) -> Result<ParamSpec, Problem> {
    let has_range = p.min.is_some() || p.max.is_some() || p.distribution.is_some();
    match (p.values, p.value, has_range) {
        (Some(values), None, false) => {
            if values.is_empty() {
                return problem(Some("values"), "`values` is empty");
            }
            let values = values.iter().map(yaml_to_json).collect::<Result<Vec<_>, _>>();
            values.map(ParamSpec::Values).map_err(|m| (Some("values"), m))
        }
        (None, Some(v), false) => yaml_to_json(&v).map(|j| ParamSpec::Values(vec![j])).map_err(|m| (Some("value"), m)),
        (None, None, true) => param_range(p.min, p.max, p.distribution, method),
        (None, None, false) => problem(None, "needs `values: [...]`, `value: x`, or `min`/`max`"),
        _ => problem(None, "give exactly one of `values`, `value`, or `min`/`max`"),
    }
}

fn param_range(
    min: Option<f64>,
    max: Option<f64>,
    distribution: Option<Distribution>,
    method: Method,
) -> Result<ParamSpec, Problem> {
    let (Some(min), Some(max)) = (min, max) else {
        return problem(None, "a range needs both `min` and `max`");
    };
    let distribution = distribution.unwrap_or(Distribution::Uniform);
    if !min.is_finite() || !max.is_finite() {
        problem(None, "`min` and `max` must be finite numbers")
    } else if min > max {
        problem(Some("min"), format!("min ({min}) > max ({max})"))
    } else if distribution == Distribution::LogUniform && min <= 0.0 {
        problem(Some("min"), "log_uniform needs min > 0")
    } else if distribution == Distribution::IntUniform && min.ceil() > max.floor() {
        problem(None, format!("no integer lies in [{min}, {max}]"))
    } else if method == Method::Grid {
        problem(None, "a grid needs `values` (or `value`); `min`/`max` are for method: random")
    } else {
        Ok(ParamSpec::Range { min, max, distribution })
    }
}

/// Resolves each value (a range: both ends) alone onto the base config.
fn check_candidates(base: &serde_json::Value, path: &str, spec: &ParamSpec, scheme_given: bool) -> Result<(), Problem> {
    let candidates: Vec<serde_json::Value> = match spec {
        ParamSpec::Values(v) => v.clone(),
        ParamSpec::Range { min, max, distribution: Distribution::IntUniform } => {
            vec![serde_json::json!(min.ceil() as i64), serde_json::json!(max.floor() as i64)]
        }
        ParamSpec::Range { min, max, .. } => vec![serde_json::json!(min), serde_json::json!(max)],
    };
    let segments: Vec<&str> = path.split('.').collect();
    for v in candidates {
        let mut cfg = base.clone();
        set_path(&mut cfg, &segments, v.clone());
        match serde_json::from_value::<TrialConfig>(cfg) {
            Err(e) => return problem(None, format!("value {v}: {e}")),
            Ok(mut c) => {
                let unresolved = c.resolve(scheme_given);
                if let Some((_, p)) = unresolved.into_iter().chain(c.check()).find(|(f, _)| f == path) {
                    return problem(None, format!("value {v}: {p}"));
                }
            }
        }
    }
    Ok(())
}

fn lookup<'v>(v: &'v serde_json::Value, path: &[&str]) -> Option<&'v serde_json::Value> {
    path.iter().try_fold(v, |cur, k| cur.as_object()?.get(*k))
}

pub(crate) fn set_path(v: &mut serde_json::Value, path: &[&str], value: serde_json::Value) {
    let mut cur = v;
    for k in &path[..path.len() - 1] {
        cur = cur.get_mut(*k).expect("path checked against the base config");
    }
    cur[path[path.len() - 1]] = value;
}
