//! Replica statistics, as scipy computes them (checked against its values in the tests):
//! `scipy.stats.t.interval(0.95, n-1, mean, sem)`, `scipy.stats.ttest_rel` (two-sided) and
//! Holm's step-down adjustment; for cross-validated runs, Nadeau and Bengio's corrected
//! resampled t (2003): runs on folds of one training set share most of their training
//! rows, so their variance is scaled by 1/n + n_test/n_train instead of 1/n.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// A configuration's objective over its replicas.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n - 1); 0 for one replica.
    pub sd: f64,
    /// Half-width of the 95% Student-t interval of the mean; None for one replica.
    pub ci95: Option<f64>,
}

/// Mean, spread and 95% confidence interval of `xs` (at least one value).
pub fn summarize(xs: &[f64]) -> Summary {
    summarize_resampled(xs, 0.0)
}

/// As [`summarize`], for runs whose training sets overlap: `test_train` is the ratio of
/// validation to training rows of one run (k folds: 1/(k-1)); 0 is [`summarize`].
pub fn summarize_resampled(xs: &[f64], test_train: f64) -> Summary {
    let n = xs.len();
    assert!(n > 0, "summarize needs at least one value");
    let mean = xs.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return Summary { n, mean, sd: 0.0, ci95: None };
    }
    let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
    let se = sd * (1.0 / n as f64 + test_train).sqrt();
    Summary { n, mean, sd, ci95: Some(t_quantile(0.975, n - 1) * se) }
}

fn t_quantile(p: f64, dof: usize) -> f64 {
    StudentsT::new(0.0, 1.0, dof as f64).expect("dof > 0").inverse_cdf(p)
}

/// A two-sided paired t-test of `a` against `b` (same replicas, same order).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Paired {
    pub n: usize,
    /// Mean of a - b.
    pub mean_diff: f64,
    pub t: f64,
    pub p_value: f64,
}

/// None with fewer than two pairs. Identical differences give t = ±inf and p = 0 (or,
/// when they are all zero, no evidence: t = 0, p = 1).
pub fn paired_t(a: &[f64], b: &[f64]) -> Option<Paired> {
    paired_t_resampled(a, b, 0.0)
}

/// The corrected resampled paired t-test (Nadeau and Bengio 2003) for runs whose
/// training sets overlap; `test_train` as in [`summarize_resampled`] (0: [`paired_t`]).
pub fn paired_t_resampled(a: &[f64], b: &[f64], test_train: f64) -> Option<Paired> {
    assert_eq!(a.len(), b.len(), "paired samples must have the same length");
    let n = a.len();
    if n < 2 {
        return None;
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let s = summarize(&d);
    let se = s.sd * (1.0 / n as f64 + test_train).sqrt();
    let (t, p_value) = if se == 0.0 {
        if s.mean == 0.0 {
            (0.0, 1.0)
        } else {
            (f64::INFINITY.copysign(s.mean), 0.0)
        }
    } else {
        let t = s.mean / se;
        let dist = StudentsT::new(0.0, 1.0, (n - 1) as f64).expect("dof > 0");
        (t, (2.0 * (1.0 - dist.cdf(t.abs()))).min(1.0))
    };
    Some(Paired { n, mean_diff: s.mean, t, p_value })
}

/// Holm's step-down adjustment of p-values (family-wise error), in the input order.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}
