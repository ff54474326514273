//! A sweep's objectives and constraints as its stored file states them: which
//! succeeded trials count (those meeting every `constraints:` entry), and, with several
//! `metrics:`, the Pareto front of its configurations.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sweep_file::{Constraint, Goal, Metric};
use sweep_proto as pb;

use crate::replicas::Configuration;

/// What a sweep ranks by and what a trial must meet.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The primary first.
    pub objectives: Vec<Metric>,
    pub constraints: Vec<Constraint>,
}

impl Rules {
    /// From the sweep's stored file; a file that no longer parses (an earlier version's)
    /// ranks by the stored objective alone.
    pub fn of(sweep: &pb::Sweep) -> Rules {
        let limits = sweep_file::Limits { max_trials: u64::MAX };
        match sweep_file::parse(&sweep.spec_yaml, &sweep.name, limits) {
            Ok(spec) => Rules { objectives: spec.objectives().to_vec(), constraints: spec.constraints().to_vec() },
            Err(_) => Rules {
                objectives: vec![Metric {
                    name: sweep.metric_name.clone(),
                    goal: if sweep.metric_goal() == pb::Goal::Minimize { Goal::Minimize } else { Goal::Maximize },
                }],
                constraints: vec![],
            },
        }
    }

    /// Whether a trial meets every constraint (always, without constraints).
    pub fn feasible(&self, t: &pb::Trial) -> bool {
        sweep_file::feasible(&self.constraints, |k| t.metrics.get(k).copied())
    }

    /// The constraints as written, for messages.
    pub fn constraints_text(&self) -> String {
        self.constraints.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    }
}

/// The best primary objective found so far against what the sweep had spent when each
/// succeeded, feasible trial finished (`spent_to_reach_usd`): the steps of the search's
/// progress per dollar, in the order of spend. Empty when nothing was paid for.
pub fn best_by_cost(rules: &Rules, trials: &[pb::Trial]) -> Vec<(f64, f64)> {
    let primary = &rules.objectives[0];
    let mut done: Vec<(f64, f64)> = trials
        .iter()
        .filter(|t| t.state() == pb::TrialState::Succeeded && t.spent_to_reach_usd > 0.0 && rules.feasible(t))
        .filter_map(|t| Some((t.spent_to_reach_usd, *t.metrics.get(&primary.name)?)))
        .filter(|(_, v)| v.is_finite())
        .collect();
    done.sort_by(|a, b| a.0.total_cmp(&b.0));
    let better = |v: f64, than: f64| if primary.goal == Goal::Minimize { v < than } else { v > than };
    let mut steps: Vec<(f64, f64)> = Vec::new();
    for (usd, v) in done {
        if steps.last().is_none_or(|&(_, best)| better(v, best)) {
            steps.push((usd, v));
        }
    }
    steps
}

/// A configuration's mean of `metric` over its replicas (NaN when one lacks it).
fn mean(c: &Configuration, metric: &str) -> f64 {
    let sum: f64 = c.trials.iter().map(|t| t.metrics.get(metric).copied().unwrap_or(f64::NAN)).sum();
    sum / c.trials.len() as f64
}

/// A configuration's mean of each objective, in `rules`' order.
pub fn means(rules: &Rules, c: &Configuration) -> Vec<f64> {
    rules.objectives.iter().map(|m| mean(c, &m.name)).collect()
}

/// The configurations on the Pareto front of `rules`' objectives (means over replicas),
/// as indices into `configs`; those lacking an objective's value are left out.
pub fn front(rules: &Rules, configs: &[Configuration]) -> Vec<usize> {
    let (index, values): (Vec<usize>, Vec<Vec<f64>>) = configs
        .iter()
        .enumerate()
        .map(|(i, c)| (i, means(rules, c)))
        .filter(|(_, p)| p.iter().all(|v| v.is_finite()))
        .unzip();
    sweep_file::pareto_front(&values, &rules.objectives).into_iter().map(|k| index[k]).collect()
}

/// The front as JSON: each configuration's parameters, its mean per objective and n.
pub fn front_json(rules: &Rules, configs: &[Configuration], front: &[usize]) -> Value {
    let one = |&i: &usize| {
        let c = &configs[i];
        let means: BTreeMap<&str, f64> =
            rules.objectives.iter().map(|m| m.name.as_str()).zip(means(rules, c)).collect();
        json!({"params": c.params, "means": means, "n": c.summary.n, "trial_ids": c.trials.iter().map(|t| &t.trial_id).collect::<Vec<_>>()})
    };
    json!({
        "objectives": rules.objectives.iter().map(|m| json!({"name": m.name, "goal": m.goal.as_str()})).collect::<Vec<_>>(),
        "front": front.iter().map(one).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replicas::configurations;

    /// A sweep of `n` succeeded trials with pseudo-random metrics, under `head` (the
    /// objectives and constraints part of its file).
    fn sweep(head: &str, n: usize) -> (pb::Sweep, Vec<pb::Trial>) {
        let yaml = format!(
            "name: s\n{head}parameters:\n  train.lr: {{values: [{}]}}\n",
            (1..=n).map(|i| format!("{i}e-4")).collect::<Vec<_>>().join(", ")
        );
        let spec = sweep_file::parse(&yaml, "s.yaml", sweep_file::Limits::default()).unwrap();
        let mut state = 11u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) % 1000) as f64 / 1000.0
        };
        let trials = spec
            .expand()
            .unwrap()
            .into_iter()
            .enumerate()
            .map(|(i, t)| pb::Trial {
                trial_id: format!("{i:08}-trial"),
                state: pb::TrialState::Succeeded as i32,
                params_json: serde_json::to_string(&t.params).unwrap(),
                config_json: serde_json::to_string(&t.config).unwrap(),
                metrics: [("val.f1_micro", next()), ("val.f1_macro_tail", next()), ("val.loss", next())]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
                ..Default::default()
            })
            .collect();
        let s = pb::Sweep {
            name: "s".into(),
            metric_name: spec.metric().name.clone(),
            spec_yaml: yaml,
            ..Default::default()
        };
        (s, trials)
    }

    #[test]
    fn only_trials_meeting_the_constraints_rank_and_the_best_is_the_best_of_them() {
        let (s, trials) = sweep("constraints: ['val.f1_macro_tail >= 0.3', 'val.loss <= 0.8']\n", 200);
        let rules = Rules::of(&s);
        let ok = |t: &pb::Trial| t.metrics["val.f1_macro_tail"] >= 0.3 && t.metrics["val.loss"] <= 0.8;
        let brute = trials
            .iter()
            .filter(|t| ok(t))
            .max_by(|a, b| a.metrics["val.f1_micro"].total_cmp(&b.metrics["val.f1_micro"]));
        let configs = configurations(&s, &trials, &Rules::of(&s));
        assert_eq!(configs.len(), trials.iter().filter(|t| ok(t)).count());
        assert!(configs.iter().all(|c| c.trials.iter().all(|t| rules.feasible(t) && ok(t))));
        assert_eq!(configs[0].trials[0].trial_id, brute.unwrap().trial_id);
        let unconstrained =
            trials.iter().max_by(|a, b| a.metrics["val.f1_micro"].total_cmp(&b.metrics["val.f1_micro"]));
        assert!(
            !ok(unconstrained.unwrap()),
            "the fixture's overall best misses a constraint (so this checks something)"
        );
    }

    #[test]
    fn the_front_is_exactly_the_non_dominated_configurations() {
        let head = "metrics:\n  - {name: val.f1_micro, goal: maximize}\n  - {name: val.loss, goal: minimize}\nconstraints: ['val.f1_macro_tail >= 0.2']\n";
        let (s, trials) = sweep(head, 300);
        let rules = Rules::of(&s);
        let configs = configurations(&s, &trials, &Rules::of(&s));
        let got: Vec<&str> = front(&rules, &configs).iter().map(|&i| configs[i].trials[0].trial_id.as_str()).collect();
        // Every pair, on the feasible trials (each configuration here is one trial).
        let feasible: Vec<&pb::Trial> = trials.iter().filter(|t| t.metrics["val.f1_macro_tail"] >= 0.2).collect();
        let beats = |a: &pb::Trial, b: &pb::Trial| {
            let (am, bm, al, bl) =
                (a.metrics["val.f1_micro"], b.metrics["val.f1_micro"], a.metrics["val.loss"], b.metrics["val.loss"]);
            am >= bm && al <= bl && (am > bm || al < bl)
        };
        let mut want: Vec<&str> =
            feasible.iter().filter(|t| !feasible.iter().any(|o| beats(o, t))).map(|t| t.trial_id.as_str()).collect();
        let mut got_sorted = got.clone();
        got_sorted.sort_unstable();
        want.sort_unstable();
        assert!(want.len() >= 3, "a front worth checking: {want:?}");
        assert_eq!(got_sorted, want);
        // Listed best first on the primary objective.
        let primary: Vec<f64> =
            got.iter().map(|id| trials.iter().find(|t| t.trial_id == *id).unwrap().metrics["val.f1_micro"]).collect();
        assert!(primary.windows(2).all(|w| w[0] >= w[1]), "{primary:?}");
    }

    /// Cross-validated: the folds of a configuration are one configuration, its interval
    /// the corrected resampled one (5 folds: variance factor 1/n + 1/4).
    #[test]
    fn folds_group_into_their_configuration_with_the_corrected_interval() {
        let (s, trials) = sweep("dataset: {cv: {folds: 5}}\n", 2);
        assert_eq!(trials.len(), 10);
        let configs = configurations(&s, &trials, &Rules::of(&s));
        assert_eq!(configs.len(), 2);
        for c in &configs {
            let values: Vec<f64> = c.trials.iter().map(|t| t.metrics["val.f1_micro"]).collect();
            assert_eq!(values.len(), 5, "one run per fold");
            let corrected = sweep_search::stats::summarize_resampled(&values, 0.25);
            assert_eq!(c.summary, corrected);
            assert!(corrected.ci95 > sweep_search::stats::summarize(&values).ci95);
        }
    }

    #[test]
    fn best_by_cost_steps_up_at_each_new_best_in_the_order_of_spend() {
        let (s, mut trials) = sweep("constraints: ['val.loss <= 0.8']\n", 60);
        for (i, t) in trials.iter_mut().enumerate() {
            // Finished out of order of their ids; the first ten before anything was paid for.
            t.spent_to_reach_usd = if i < 10 { 0.0 } else { ((i * 37) % 60) as f64 };
        }
        let rules = Rules::of(&s);
        let steps = best_by_cost(&rules, &trials);
        // Brute force: at each spend, the best feasible objective of every trial finished by then.
        let paid: Vec<&pb::Trial> =
            trials.iter().filter(|t| t.spent_to_reach_usd > 0.0 && t.metrics["val.loss"] <= 0.8).collect();
        let best_by = |usd: f64| {
            paid.iter()
                .filter(|t| t.spent_to_reach_usd <= usd)
                .map(|t| t.metrics["val.f1_micro"])
                .fold(f64::MIN, f64::max)
        };
        assert!(steps.len() >= 3, "{steps:?}");
        assert!(steps.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1), "{steps:?}");
        for &(usd, v) in &steps {
            assert_eq!(v, best_by(usd));
        }
        assert_eq!(steps.last().unwrap().1, best_by(f64::MAX));
        // Nothing paid for: no curve.
        for t in &mut trials {
            t.spent_to_reach_usd = 0.0;
        }
        assert!(best_by_cost(&rules, &trials).is_empty());
    }
}
