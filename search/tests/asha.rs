//! ASHA's stopping rule on recorded curves.

use sweep_search::asha::{decide, rungs, Decision};

#[test]
fn rungs_grow_by_the_reduction_factor_below_the_last_epoch() {
    assert_eq!(rungs(1, 3, 27), [1, 3, 9]);
    assert_eq!(rungs(2, 2, 20), [2, 4, 8, 16]);
    assert_eq!(rungs(5, 3, 5), Vec::<u32>::new());
}

/// Nine trials report epoch-1 values in this order (maximize); eta 3. While fewer than
/// three values are in, only the best so far goes on; after that the top third does.
#[test]
fn the_top_third_goes_on_as_values_arrive() {
    let curve = [0.30, 0.20, 0.40, 0.10, 0.50, 0.35, 0.45, 0.05, 0.60];
    let mut seen = Vec::new();
    let mut decisions = Vec::new();
    for v in curve {
        seen.push(v);
        decisions.push(decide(v, &seen, 3, true));
    }
    use Decision::{Continue as C, Stop as S};
    // 0.30 first: best. 0.20 < 0.30. 0.40: 3 values, top 1 = 0.40. 0.10: 4 values, top 1.
    // 0.50: best. 0.35: 6 values, top 2 = {0.50, 0.40}: stop. 0.45: 7 values, top 2 = {0.50, 0.45}.
    // 0.05: stop. 0.60: 9 values, top 3: go on.
    assert_eq!(decisions, [C, S, C, S, C, S, C, S, C]);
    // Minimizing mirrors it.
    assert_eq!(decide(0.1, &[0.1, 0.2, 0.3], 3, false), C);
    assert_eq!(decide(0.2, &[0.1, 0.2, 0.3], 3, false), S);
    assert_eq!(decide(f64::NAN, &[0.1], 3, true), S);
}
