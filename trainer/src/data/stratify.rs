//! Iterative stratification for multi-label data (Sechidis, Tsoumakas and Vlahavas,
//! "On the stratification of multi-label data", ECML PKDD 2011, algorithm 1).
//!
//! A random split of a long-tailed training set often leaves a rare label with no
//! validation positives at all, so its threshold and its F1 are noise. Iterative
//! stratification deals out the rarest label first: each of its rows goes to the
//! subset that still wants the most of that label (ties: the subset that wants the most
//! rows, then a seeded coin), and every label the row has counts against that subset's
//! wants. Labels are taken in order of fewest rows still unassigned, so the rare ones
//! are placed before common labels' rows fill the subsets. Rows with no label go last,
//! to the subset that wants the most rows.
//!
//! Everything random (row order, label ties, subset ties) comes from [`SplitMix64`] and
//! the seed, so a split is a pure function of (labels, fractions, seed).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::SplitMix64;

/// The subset (index into `fractions`) of each of the `n` rows of the row-major 0/1
/// label matrix `y` (`n x l`). `fractions` sum to 1.
pub fn iterative(y: &[u8], n: usize, l: usize, fractions: &[f64], seed: u64) -> Vec<usize> {
    const UNSET: usize = usize::MAX;
    let k = fractions.len();
    let mut rng = SplitMix64(seed);
    let order = rng.permutation(n);
    let label_tie: Vec<u64> = (0..l).map(|_| rng.next_u64()).collect();

    // Rows of each label, in the seeded row order.
    let mut rows_of: Vec<Vec<usize>> = vec![Vec::new(); l];
    for &r in &order {
        for (j, _) in y[r * l..(r + 1) * l].iter().enumerate().filter(|(_, &v)| v != 0) {
            rows_of[j].push(r);
        }
    }
    let mut left: Vec<usize> = rows_of.iter().map(Vec::len).collect();
    // Wants: rows per subset, and rows of each label per subset.
    let mut want_rows: Vec<f64> = fractions.iter().map(|f| f * n as f64).collect();
    let mut want: Vec<Vec<f64>> = fractions.iter().map(|f| left.iter().map(|&c| f * c as f64).collect()).collect();

    // The label with the fewest unassigned rows first; entries go stale as counts fall
    // and are skipped when popped.
    let mut heap: BinaryHeap<Reverse<(usize, u64, usize)>> =
        (0..l).filter(|&j| left[j] > 0).map(|j| Reverse((left[j], label_tie[j], j))).collect();
    let mut subset = vec![UNSET; n];
    let all: Vec<usize> = (0..k).collect();
    while let Some(Reverse((count, _, label))) = heap.pop() {
        if count != left[label] || count == 0 {
            continue;
        }
        for &r in &rows_of[label] {
            if subset[r] != UNSET {
                continue;
            }
            let by_label = best_of(&|s| want[s][label], &all);
            let by_rows = best_of(&|s| want_rows[s], &by_label);
            let s = pick(&by_rows, &mut rng);
            subset[r] = s;
            want_rows[s] -= 1.0;
            for (j, _) in y[r * l..(r + 1) * l].iter().enumerate().filter(|(_, &v)| v != 0) {
                want[s][j] -= 1.0;
                left[j] -= 1;
                if j != label && left[j] > 0 {
                    heap.push(Reverse((left[j], label_tie[j], j)));
                }
            }
        }
    }
    for &r in &order {
        if subset[r] != UNSET {
            continue;
        }
        let s = pick(&best_of(&|s| want_rows[s], &all), &mut rng);
        subset[r] = s;
        want_rows[s] -= 1.0;
    }
    subset
}

/// One of `candidates`, by the seeded coin.
fn pick(candidates: &[usize], rng: &mut SplitMix64) -> usize {
    candidates[(rng.next_u64() % candidates.len() as u64) as usize]
}

/// Those of `among` with the highest `score`.
fn best_of(score: &dyn Fn(usize) -> f64, among: &[usize]) -> Vec<usize> {
    let top = among.iter().map(|&s| score(s)).fold(f64::NEG_INFINITY, f64::max);
    among.iter().copied().filter(|&s| score(s) == top).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A long-tailed label matrix: label j is on for row r with probability 1/(j+2).
    fn labels(n: usize, l: usize, seed: u64) -> Vec<u8> {
        let mut rng = SplitMix64(seed);
        (0..n * l).map(|i| u8::from(rng.next_u64().is_multiple_of((i % l) as u64 + 2))).collect()
    }

    #[test]
    fn every_row_is_placed_and_the_sizes_follow_the_fractions() {
        let (n, l) = (1000, 20);
        let y = labels(n, l, 3);
        let s = iterative(&y, n, l, &[0.8, 0.2], 7);
        let val = s.iter().filter(|&&s| s == 1).count();
        assert!(s.iter().all(|&s| s < 2));
        assert!((val as i64 - 200).abs() <= 3, "{val} validation rows, want about 200");
        assert_eq!(s, iterative(&y, n, l, &[0.8, 0.2], 7), "a pure function of its inputs");
        assert_ne!(s, iterative(&y, n, l, &[0.8, 0.2], 8), "the seed matters");
    }

    #[test]
    fn each_label_is_split_in_proportion() {
        let (n, l) = (1000, 20);
        let y = labels(n, l, 5);
        let s = iterative(&y, n, l, &[0.75, 0.25], 1);
        for j in 0..l {
            let total = (0..n).filter(|&r| y[r * l + j] == 1).count() as f64;
            let val = (0..n).filter(|&r| y[r * l + j] == 1 && s[r] == 1).count() as f64;
            assert!((val - total / 4.0).abs() <= 2.0, "label {j}: {val} of {total} in validation");
        }
    }

    #[test]
    fn a_label_with_two_rows_gets_one_in_each_half() {
        // Rows 0 and 1 carry the rare label 1; everything has label 0.
        let (n, l) = (10, 2);
        let mut y = vec![0u8; n * l];
        (0..n).for_each(|r| y[r * l] = 1);
        y[1] = 1;
        y[l + 1] = 1;
        for seed in 0..20 {
            let s = iterative(&y, n, l, &[0.5, 0.5], seed);
            assert_ne!(s[0], s[1], "seed {seed}");
            assert_eq!(s.iter().filter(|&&s| s == 1).count(), 5, "seed {seed}");
        }
    }
}
