//! Replica statistics against scipy's values (`reference/make_stats.py` prints them).

use sweep_search::stats::{holm, paired_t, paired_t_resampled, summarize, summarize_resampled};

fn close(got: f64, want: f64) {
    assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{got} vs scipy {want}");
}

#[test]
fn mean_spread_and_t_interval_match_scipy() {
    let s = summarize(&[0.61, 0.58, 0.66, 0.62, 0.59]);
    assert_eq!(s.n, 5);
    close(s.mean, 0.612);
    close(s.sd, 0.031144823004794903);
    close(s.ci95.unwrap(), 0.0386714054554822);
    let two = summarize(&[0.30, 0.34]);
    close(two.ci95.unwrap(), 0.2541240947234941);
    let one = summarize(&[0.5]);
    assert_eq!((one.sd, one.ci95), (0.0, None));
}

#[test]
fn paired_t_test_matches_scipy_ttest_rel() {
    let p = paired_t(&[0.4716, 0.4742, 0.4690], &[0.4694, 0.4703, 0.4685]).unwrap();
    close(p.t, 2.241477515677323);
    close(p.p_value, 0.1542630811176667);
    let p = paired_t(&[0.60, 0.62, 0.58, 0.65, 0.61, 0.63], &[0.59, 0.60, 0.59, 0.61, 0.60, 0.60]).unwrap();
    close(p.t, 2.3312620206007844);
    close(p.p_value, 0.06710577143519894);
    assert!(paired_t(&[0.5], &[0.4]).is_none(), "one pair is no test");
    assert_eq!(paired_t(&[0.5, 0.6], &[0.5, 0.6]).unwrap().p_value, 1.0);
    assert_eq!(paired_t(&[0.6, 0.7], &[0.5, 0.6]).unwrap().p_value, 0.0);
}

#[test]
fn holm_adjusts_step_down_and_keeps_order() {
    let adjusted = holm(&[0.01, 0.04, 0.03, 0.005]);
    let want = [0.03, 0.06, 0.06, 0.02];
    for (g, w) in adjusted.iter().zip(want) {
        close(*g, w);
    }
    assert_eq!(holm(&[0.5, 0.9]), vec![1.0, 1.0]);
    assert!(holm(&[]).is_empty());
}

/// Cross-validated runs: the corrected resampled t-test and interval (variance factor
/// 1/n + 1/(k-1) for k folds), against the formula computed with numpy and scipy's t.
#[test]
fn the_corrected_resampled_test_and_interval_match_the_formula() {
    let (a, b) = ([0.60, 0.62, 0.58, 0.65, 0.61, 0.63], [0.59, 0.60, 0.59, 0.61, 0.60, 0.60]);
    let p = paired_t_resampled(&a, &b, 0.25).unwrap();
    close(p.t, 1.474419561548971);
    close(p.p_value, 0.20037609624592767);
    close(summarize_resampled(&a, 0.25).ci95.unwrap(), 0.0403043405152441);
    let a = [0.71, 0.69, 0.74, 0.70, 0.72, 0.68, 0.73, 0.70, 0.71, 0.72];
    let b = [0.70, 0.67, 0.71, 0.70, 0.69, 0.67, 0.70, 0.69, 0.70, 0.70];
    let p = paired_t_resampled(&a, &b, 0.25).unwrap();
    close(p.t, 2.712535727086623);
    close(p.p_value, 0.023898072235390696);
    close(summarize_resampled(&a, 0.25).ci95.unwrap(), 0.024434089985235295);
    // No overlap: the plain test.
    assert_eq!(paired_t_resampled(&a, &b, 0.0), paired_t(&a, &b));
    assert!(paired_t_resampled(&a, &b, 0.25).unwrap().p_value > paired_t(&a, &b).unwrap().p_value);
}
