//! Configurations and their replicas: trials that differ only in `train.seed`,
//! `dataset.split_seed` and (cross-validated) `dataset.fold` are one configuration.
//! Ranked by the mean objective with a 95% t-interval; the winner is tested against every other configuration with a paired
//! t-test over the replicas they share (same seeds), Holm-corrected. Cross-validated
//! runs get Nadeau and Bengio's corrected resampled interval and test (their training
//! sets overlap).

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sweep_proto as pb;
use sweep_search::stats::{holm, paired_t_resampled, summarize_resampled, Summary};

use crate::json::params;
use crate::objectives::Rules;

/// What replicas and folds vary.
const SEEDS: [&str; 3] = ["train.seed", "dataset.split_seed", "dataset.fold"];

/// A replica's seeds and fold: what pairs two configurations' runs.
type SeedKey = (u64, u64, u64);

/// One configuration's succeeded replicas.
pub struct Configuration<'a> {
    /// The swept parameters without the seeds.
    pub params: Value,
    /// Objective by (train seed, split seed, fold).
    pub by_seed: BTreeMap<SeedKey, f64>,
    pub trials: Vec<&'a pb::Trial>,
    pub summary: Summary,
    /// Position of its first trial in grid order: ties go to the earlier configuration.
    first: usize,
    /// Validation rows per training row of one run when cross-validated (k folds:
    /// 1/(k-1)), else 0: the variance correction of overlapping training sets.
    test_train: f64,
}

impl Configuration<'_> {
    /// The replica with the best objective.
    pub fn best_replica(&self, sweep: &pb::Sweep) -> &pb::Trial {
        let objective = |t: &&pb::Trial| t.metrics[&sweep.metric_name];
        // The first of equals, in grid order.
        let better = |a: f64, b: f64| sweep.metric_goal().better(a, b);
        let mut best = self.trials[0];
        for t in &self.trials[1..] {
            if better(objective(t), objective(&best)) {
                best = t;
            }
        }
        best
    }
}

/// A run's seeds and fold, and its validation rows per training row (k-fold
/// cross-validation: 1/(k-1), else 0), from one read of its config.
fn run_of(t: &pb::Trial) -> (SeedKey, f64) {
    let c: Value = serde_json::from_str(&t.config_json).unwrap_or_default();
    let d = &c["dataset"];
    let key = (
        c["train"]["seed"].as_u64().unwrap_or(0),
        d["split_seed"].as_u64().unwrap_or(0),
        d["fold"].as_u64().unwrap_or(0),
    );
    let refit = d["cv"]["refit"].as_bool() == Some(true);
    let test_train = match d["cv"]["folds"].as_u64() {
        Some(k) if k >= 2 && !refit => 1.0 / (k - 1) as f64,
        _ => 0.0,
    };
    (key, test_train)
}

/// Succeeded trials grouped into configurations, best mean first for the sweep's goal.
/// With `constraints:` (in `rules`), a configuration counts only when every replica
/// meets them.
pub fn configurations<'a>(sweep: &pb::Sweep, trials: &'a [pb::Trial], rules: &Rules) -> Vec<Configuration<'a>> {
    let mut groups: BTreeMap<String, (Value, Vec<&pb::Trial>, usize)> = BTreeMap::new();
    for (i, t) in trials.iter().enumerate().filter(|(_, t)| t.state() == pb::TrialState::Succeeded) {
        if !t.metrics.contains_key(&sweep.metric_name) {
            continue;
        }
        let mut p = params(t);
        if let Some(o) = p.as_object_mut() {
            SEEDS.iter().for_each(|s| drop(o.remove(*s)));
        }
        groups.entry(p.to_string()).or_insert_with(|| (p, Vec::new(), i)).1.push(t);
    }
    let mut out: Vec<Configuration> = groups
        .into_values()
        .filter(|(_, trials, _)| trials.iter().all(|t| rules.feasible(t)))
        .map(|(params, trials, first)| {
            let runs: Vec<(SeedKey, f64)> = trials.iter().map(|t| run_of(t)).collect();
            let values: Vec<f64> = trials.iter().map(|t| t.metrics[&sweep.metric_name]).collect();
            let by_seed: BTreeMap<SeedKey, f64> = runs.iter().map(|r| r.0).zip(values.iter().copied()).collect();
            let test_train = runs[0].1;
            Configuration {
                params,
                by_seed,
                trials,
                summary: summarize_resampled(&values, test_train),
                first,
                test_train,
            }
        })
        .collect();
    let minimize = sweep.metric_goal() == pb::Goal::Minimize;
    out.sort_by(|a, b| {
        let o = a.summary.mean.total_cmp(&b.summary.mean);
        (if minimize { o } else { o.reverse() }).then(a.first.cmp(&b.first))
    });
    out
}

/// The winner against every other configuration: Holm-adjusted p-values of paired
/// t-tests over shared seeds (None where fewer than two seeds are shared).
pub fn versus_winner(configs: &[Configuration]) -> Vec<Option<f64>> {
    let Some((winner, others)) = configs.split_first() else { return vec![] };
    let raw: Vec<Option<f64>> = others
        .iter()
        .map(|o| {
            let shared: Vec<&SeedKey> = winner.by_seed.keys().filter(|k| o.by_seed.contains_key(k)).collect();
            let a: Vec<f64> = shared.iter().map(|k| winner.by_seed[k]).collect();
            let b: Vec<f64> = shared.iter().map(|k| o.by_seed[k]).collect();
            paired_t_resampled(&a, &b, winner.test_train).map(|p| p.p_value)
        })
        .collect();
    let tested: Vec<f64> = raw.iter().flatten().copied().collect();
    let mut adjusted = holm(&tested).into_iter();
    raw.iter().map(|p| p.map(|_| adjusted.next().expect("one adjusted p per test"))).collect()
}

/// The ranking and the verdict as JSON: the winner's mean, ci95, n and spread, the
/// runner-up, the Holm-adjusted p-value against it and whether the win is significant.
/// `p` is [`versus_winner`] of `configs`.
pub fn verdict_json(configs: &[Configuration], p: &[Option<f64>]) -> Value {
    let Some(winner) = configs.first() else { return json!({}) };
    let p_value = p.first().copied().flatten();
    let significant = p_value.is_some_and(|p| p < 0.05);
    let one = |c: &Configuration| json!({"params": c.params, "mean": c.summary.mean, "ci95": c.summary.ci95, "n": c.summary.n, "sd": c.summary.sd});
    json!({
        "mean": winner.summary.mean,
        "ci95": winner.summary.ci95,
        "n": winner.summary.n,
        "sd": winner.summary.sd,
        "runner_up": configs.get(1).map(one),
        "p_value": p_value,
        "significant": significant,
        "verdict": words(configs, p_value),
        "configurations": configs.iter().zip(std::iter::once(None).chain(p.iter().copied())).map(|(c, p)| {
            let mut v = one(c);
            v["p_value_vs_winner"] = json!(p);
            v
        }).collect::<Vec<_>>(),
    })
}

/// Test macro-F1 by label group (head, medium, tail: the trainer's split by training
/// positives) for the top `n` configurations: the mean over replicas, null where a
/// group has no labels or a replica lacks it.
pub fn groups_json(configs: &[Configuration], n: usize) -> Value {
    let one = |c: &Configuration| {
        let mean = |g: &str| {
            let key = format!("test.f1_macro_{g}");
            let v: Option<Vec<f64>> = c.trials.iter().map(|t| t.metrics.get(&key).copied()).collect();
            v.map(|v| v.iter().sum::<f64>() / v.len() as f64)
        };
        json!({"params": c.params, "n": c.summary.n, "head": mean("head"), "medium": mean("medium"), "tail": mean("tail")})
    };
    configs.iter().take(n).map(one).collect()
}

/// The verdict in a sentence.
pub fn words(configs: &[Configuration], p_value: Option<f64>) -> String {
    match (configs.len(), p_value) {
        (0, _) => "no succeeded trial yet".into(),
        (1, _) => "only one configuration has results".into(),
        (_, None) => "not enough replicas to compare the top two (a paired test needs two shared seeds)".into(),
        (_, Some(p)) if p < 0.05 => {
            format!("the best configuration beats the runner-up (paired t-test over replicas, Holm-adjusted p = {p:.3})")
        }
        (_, Some(p)) => format!(
            "the top configurations are not distinguishable: the runner-up could be as good (Holm-adjusted p = {p:.3}); \
             run more replicas or `sweep confirm`"
        ),
    }
}
