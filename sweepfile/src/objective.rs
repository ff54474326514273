//! What a sweep optimises beyond one number: `constraints:` a trial must meet to count
//! (`val.f1_micro >= 0.45`), and several objectives at once (`metrics:`), ranked as a
//! Pareto front. A trial's metrics are its final ones (`val.*` at its best epoch).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::{Goal, Metric};
use crate::spec::METRICS;

/// Which side of its bound a constrained metric must stay on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Bound {
    AtLeast,
    AtMost,
}

/// `metric >= value` or `metric <= value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Constraint {
    pub metric: String,
    pub bound: Bound,
    pub value: f64,
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.bound {
            Bound::AtLeast => ">=",
            Bound::AtMost => "<=",
        };
        write!(f, "{} {op} {}", self.metric, self.value)
    }
}

impl std::str::FromStr for Constraint {
    type Err = String;

    /// `val.<metric> >= number` or `<=` (also `train.loss`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (metric, bound, value) = match (s.split_once(">="), s.split_once("<=")) {
            (Some((m, v)), None) => (m, Bound::AtLeast, v),
            (None, Some((m, v))) => (m, Bound::AtMost, v),
            _ => return Err(format!("`{s}`: write `val.<metric> >= number` or `val.<metric> <= number`")),
        };
        let metric = metric.trim().to_string();
        check_metric_name(&metric, "a constraint")?;
        let value: f64 = value
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| format!("`{s}`: `{}` is not a number", value.trim()))?;
        Ok(Constraint { metric, bound, value })
    }
}

impl Constraint {
    /// How far the metric's value is on the wrong side of the bound (0 when met); a
    /// trial without the metric violates it by infinity.
    pub fn violation(&self, value: Option<f64>) -> f64 {
        match value {
            Some(v) if v.is_finite() => match self.bound {
                Bound::AtLeast => (self.value - v).max(0.0),
                Bound::AtMost => (v - self.value).max(0.0),
            },
            _ => f64::INFINITY,
        }
    }
}

/// The sum of `constraints`' violations by a trial whose metrics `value_of` looks up by
/// name: 0 for a feasible trial. A lookup, so each caller reads its own store (the
/// wire's map, a JSON column) without copying it.
pub fn violation(constraints: &[Constraint], value_of: impl Fn(&str) -> Option<f64>) -> f64 {
    constraints.iter().map(|c| c.violation(value_of(&c.metric))).sum()
}

/// Whether a trial whose metrics `value_of` looks up meets every constraint.
pub fn feasible(constraints: &[Constraint], value_of: impl Fn(&str) -> Option<f64>) -> bool {
    violation(constraints, value_of) == 0.0
}

/// A metric an objective or constraint may name: `val.<m>` or `train.loss`; test
/// metrics are reported, never optimised or selected on.
pub fn check_metric_name(name: &str, what: &str) -> Result<(), String> {
    let ok = match name.split_once('.') {
        Some(("val", m)) => METRICS.contains(&m),
        Some(("train", "loss")) => true,
        _ => false,
    };
    if ok {
        Ok(())
    } else if name.starts_with("test.") {
        Err(format!("`{name}`: {what} must be a validation metric (val.*); test metrics are reported, never optimised"))
    } else {
        Err(format!("unknown metric `{name}`; expected train.loss or val.<m> with <m> one of {}", METRICS.join(", ")))
    }
}

/// Whether point `a` dominates `b` under `goals`: at least as good on every objective
/// and better on one.
pub fn dominates(a: &[f64], b: &[f64], goals: &[Goal]) -> bool {
    let mut better = false;
    for ((&x, &y), g) in a.iter().zip(b).zip(goals) {
        if g.better(y, x) {
            return false;
        }
        better |= g.better(x, y);
    }
    better
}

/// The indices of the non-dominated `points` (each one value per objective in
/// `metrics`' order), in input order. Two objectives: a sort and one pass; more: every
/// pair.
pub fn pareto_front(points: &[Vec<f64>], metrics: &[Metric]) -> Vec<usize> {
    let goals: Vec<Goal> = metrics.iter().map(|m| m.goal).collect();
    if goals.len() != 2 {
        return (0..points.len()).filter(|&i| !points.iter().any(|p| dominates(p, &points[i], &goals))).collect();
    }
    // Best first on the first objective, ties best first on the second; a point is on
    // the front when it is strictly better on the second than everything before it, or
    // equal to the last point kept.
    let key = |v: f64, g: Goal| if g == Goal::Maximize { -v } else { v };
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|&a, &b| {
        let (pa, pb) = (&points[a], &points[b]);
        key(pa[0], goals[0])
            .total_cmp(&key(pb[0], goals[0]))
            .then(key(pa[1], goals[1]).total_cmp(&key(pb[1], goals[1])))
    });
    let mut front: Vec<usize> = Vec::new();
    let mut best_second: Option<f64> = None;
    for i in order {
        let p = &points[i];
        let keep = match (best_second, front.last()) {
            (None, _) => true,
            (Some(_), Some(&last)) if points[last] == *p => true,
            (Some(b), _) => goals[1].better(p[1], b),
        };
        if keep {
            best_second = Some(p[1]);
            front.push(i);
        }
    }
    front.sort_unstable();
    front
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn m(name: &str, goal: Goal) -> Metric {
        Metric { name: name.into(), goal }
    }

    #[test]
    fn constraints_parse_and_say_what_is_wrong() {
        let c: Constraint = "val.f1_micro >= 0.45".parse().unwrap();
        assert_eq!(c, Constraint { metric: "val.f1_micro".into(), bound: Bound::AtLeast, value: 0.45 });
        assert_eq!(c.to_string(), "val.f1_micro >= 0.45");
        let c: Constraint = "train.loss<=2".parse().unwrap();
        assert_eq!(c.bound, Bound::AtMost);
        let e = |s: &str| s.parse::<Constraint>().unwrap_err();
        assert_eq!(
            e("val.f1_micro > 0.4"),
            "`val.f1_micro > 0.4`: write `val.<metric> >= number` or `val.<metric> <= number`"
        );
        assert_eq!(e("val.f1_micro >= high"), "`val.f1_micro >= high`: `high` is not a number");
        assert!(e("test.f1_micro >= 0.4").contains("a constraint must be a validation metric"));
        assert!(e("val.accuracy >= 0.4").starts_with("unknown metric `val.accuracy`"));
    }

    #[test]
    fn violations_add_up_and_a_missing_metric_is_infeasible() {
        let cs: Vec<Constraint> =
            ["val.f1_micro >= 0.45", "val.loss <= 1"].iter().map(|s| s.parse().unwrap()).collect();
        let metrics = |a: f64, b: f64| BTreeMap::from([("val.f1_micro", a), ("val.loss", b)]);
        let (met, missed, lacking) = (metrics(0.45, 1.0), metrics(0.40, 1.5), BTreeMap::from([("val.f1_micro", 0.9)]));
        assert!(feasible(&cs, |k| met.get(k).copied()));
        assert!((violation(&cs, |k| missed.get(k).copied()) - 0.55).abs() < 1e-12);
        assert!(!feasible(&cs, |k| lacking.get(k).copied()));
    }

    /// The two-objective pass gives exactly what every pair says, ties and duplicates
    /// included, for each pair of goals.
    #[test]
    fn the_front_is_exactly_the_non_dominated_points() {
        let mut state = 7u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) % 12) as f64 / 4.0
        };
        for goals in
            [[Goal::Maximize, Goal::Maximize], [Goal::Maximize, Goal::Minimize], [Goal::Minimize, Goal::Minimize]]
        {
            let metrics = [m("val.f1_micro", goals[0]), m("val.f1_macro_tail", goals[1])];
            for n in [0, 1, 2, 5, 40, 300] {
                let points: Vec<Vec<f64>> = (0..n).map(|_| vec![next(), next()]).collect();
                let brute: Vec<usize> =
                    (0..n).filter(|&i| !points.iter().any(|p| dominates(p, &points[i], &goals))).collect();
                assert_eq!(pareto_front(&points, &metrics), brute, "{goals:?}, {n} points");
            }
        }
        let three = [m("a", Goal::Maximize), m("b", Goal::Maximize), m("c", Goal::Minimize)];
        let points = vec![vec![1.0, 1.0, 1.0], vec![1.0, 1.0, 0.5], vec![2.0, 0.0, 0.0]];
        assert_eq!(pareto_front(&points, &three), [1, 2]);
    }
}
