//! F1 exactly as scikit-learn's `f1_score` defines it for multi-label indicator
//! matrices, per-label F1, label-frequency groups, and decision thresholds tuned on
//! the validation split.
//!
//! scikit-learn (>= 1.3) computes F1 = 2tp / (2tp + fp + fn) and, where that is 0/0,
//! returns `zero_division` (0, 1, or NaN, which drops the label from the average).

use std::collections::BTreeMap;

/// What an undefined F1 (no true and no predicted positives) counts as.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ZeroDivision {
    Zero,
    One,
    /// scikit-learn's `zero_division=np.nan`: left out of averages.
    Exclude,
}

impl ZeroDivision {
    fn value(self) -> f64 {
        match self {
            ZeroDivision::Zero => 0.0,
            ZeroDivision::One => 1.0,
            ZeroDivision::Exclude => f64::NAN,
        }
    }
}

fn f1(tp: u64, fp: u64, fn_: u64, zd: ZeroDivision) -> f64 {
    let den = 2 * tp + fp + fn_;
    if den == 0 {
        zd.value()
    } else {
        2.0 * tp as f64 / den as f64
    }
}

/// Per-label confusion counts.
#[derive(Debug, Clone)]
pub struct Counts {
    pub tp: Vec<u64>,
    pub fp: Vec<u64>,
    pub fn_: Vec<u64>,
}

/// Counts for `n x l` 0/1 matrices (row-major).
pub fn counts(y_true: &[u8], y_pred: &[u8], l: usize) -> Counts {
    assert_eq!(y_true.len(), y_pred.len());
    let mut c = Counts { tp: vec![0; l], fp: vec![0; l], fn_: vec![0; l] };
    for (t_row, p_row) in y_true.chunks(l).zip(y_pred.chunks(l)) {
        for j in 0..l {
            match (t_row[j] != 0, p_row[j] != 0) {
                (true, true) => c.tp[j] += 1,
                (false, true) => c.fp[j] += 1,
                (true, false) => c.fn_[j] += 1,
                (false, false) => {}
            }
        }
    }
    c
}

pub fn per_label(c: &Counts, zd: ZeroDivision) -> Vec<f64> {
    (0..c.tp.len()).map(|j| f1(c.tp[j], c.fp[j], c.fn_[j], zd)).collect()
}

pub fn micro(c: &Counts, zd: ZeroDivision) -> f64 {
    f1(c.tp.iter().sum(), c.fp.iter().sum(), c.fn_.iter().sum(), zd)
}

fn nan_mean(v: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut n) = (0.0, 0usize);
    for x in v.filter(|x| !x.is_nan()) {
        s += x;
        n += 1;
    }
    if n == 0 {
        f64::NAN
    } else {
        s / n as f64
    }
}

pub fn macro_(c: &Counts, zd: ZeroDivision) -> f64 {
    nan_mean(per_label(c, zd).into_iter())
}

/// Mean of per-label F1 weighted by support (true positives count).
pub fn weighted(c: &Counts, zd: ZeroDivision) -> f64 {
    let f = per_label(c, zd);
    let (mut s, mut w) = (0.0, 0.0);
    for (j, fj) in f.iter().enumerate() {
        let support = (c.tp[j] + c.fn_[j]) as f64;
        if !fj.is_nan() {
            s += fj * support;
            w += support;
        }
    }
    if w == 0.0 {
        zd.value()
    } else {
        s / w
    }
}

/// Mean over samples of each sample's F1 across labels.
pub fn samples(y_true: &[u8], y_pred: &[u8], l: usize, zd: ZeroDivision) -> f64 {
    nan_mean(y_true.chunks(l).zip(y_pred.chunks(l)).map(|(t, p)| {
        let (mut tp, mut fp, mut fn_) = (0, 0, 0);
        for (a, b) in t.iter().zip(p) {
            match (*a != 0, *b != 0) {
                (true, true) => tp += 1,
                (false, true) => fp += 1,
                (true, false) => fn_ += 1,
                _ => {}
            }
        }
        f1(tp, fp, fn_, zd)
    }))
}

/// 0/1 predictions: probability >= the label's threshold.
pub fn predict(probs: &[f32], thresholds: &[f32]) -> Vec<u8> {
    let l = thresholds.len();
    probs.chunks(l).flat_map(|row| row.iter().zip(thresholds).map(|(p, t)| u8::from(p >= t))).collect()
}

/// Label groups by training frequency. Head: >= 100 training positives; medium:
/// 20-99; tail: < 20.
pub const HEAD_MIN: u32 = 100;
pub const MEDIUM_MIN: u32 = 20;

pub fn group_of(train_positives: u32) -> &'static str {
    if train_positives >= HEAD_MIN {
        "head"
    } else if train_positives >= MEDIUM_MIN {
        "medium"
    } else {
        "tail"
    }
}

/// Threshold tuning: grid 0.01..0.99; per-label thresholds are shrunk toward the
/// global one by n/(n + SHRINK) (n = the label's validation positives) and stay global
/// for labels with fewer than MIN_LABEL_POSITIVES validation positives, because naive
/// per-label tuning on a small validation split overfits.
pub const SHRINK: f64 = 10.0;
pub const MIN_LABEL_POSITIVES: u64 = 5;
const BINS: usize = 100;

#[derive(Debug, Clone)]
pub struct Thresholds {
    pub global: f32,
    pub per_label: Vec<f32>,
}

pub fn tune(probs: &[f32], y: &[u8], l: usize) -> Thresholds {
    // pos[j][b] / neg[j][b]: rows of label j whose probability falls in bin b.
    let mut pos = vec![[0u32; BINS]; l];
    let mut neg = vec![[0u32; BINS]; l];
    for (p_row, y_row) in probs.chunks(l).zip(y.chunks(l)) {
        for j in 0..l {
            let b = ((p_row[j] * BINS as f32) as usize).min(BINS - 1);
            if y_row[j] != 0 {
                pos[j][b] += 1;
            } else {
                neg[j][b] += 1;
            }
        }
    }
    // Suffix sums: predicted positive at threshold k/BINS means bin >= k.
    let suffix = |h: &[u32; BINS]| {
        let mut s = [0u64; BINS + 1];
        for b in (0..BINS).rev() {
            s[b] = s[b + 1] + h[b] as u64;
        }
        s
    };
    let pos_ge: Vec<[u64; BINS + 1]> = pos.iter().map(suffix).collect();
    let neg_ge: Vec<[u64; BINS + 1]> = neg.iter().map(suffix).collect();
    let total_pos: Vec<u64> = pos_ge.iter().map(|s| s[0]).collect();
    let best_k = |score: &dyn Fn(usize) -> f64| {
        let mut best = (BINS / 2, score(BINS / 2));
        for k in 1..BINS {
            let s = score(k);
            // Strictly better, or as good and closer to 0.5.
            if s > best.1 + 1e-12 || ((s - best.1).abs() <= 1e-12 && k.abs_diff(BINS / 2) < best.0.abs_diff(BINS / 2)) {
                best = (k, s);
            }
        }
        best.0
    };
    let all_pos: u64 = total_pos.iter().sum();
    let micro_at = |k: usize| {
        let tp: u64 = pos_ge.iter().map(|s| s[k]).sum();
        let fp: u64 = neg_ge.iter().map(|s| s[k]).sum();
        f1(tp, fp, all_pos - tp, ZeroDivision::Zero)
    };
    let kg = best_k(&micro_at);
    let global = kg as f64 / BINS as f64;
    let per_label = (0..l)
        .map(|j| {
            let n = total_pos[j];
            if n < MIN_LABEL_POSITIVES {
                return global as f32;
            }
            let kj = best_k(&|k| f1(pos_ge[j][k], neg_ge[j][k], n - pos_ge[j][k], ZeroDivision::Zero));
            let w = n as f64 / (n as f64 + SHRINK);
            (w * kj as f64 / BINS as f64 + (1.0 - w) * global) as f32
        })
        .collect();
    Thresholds { global: global as f32, per_label }
}

/// Tunes on validation and keeps a tuned threshold set only where it is at least as
/// good on validation as 0.5.
pub fn tune_checked(val_probs: &[f32], val_y: &[u8], l: usize) -> Thresholds {
    let mut t = tune(val_probs, val_y, l);
    let half = vec![0.5f32; l];
    let at = |th: &[f32]| counts(val_y, &predict(val_probs, th), l);
    let c_half = at(&half);
    if micro(&at(&vec![t.global; l]), ZeroDivision::Zero) < micro(&c_half, ZeroDivision::Zero) {
        t.global = 0.5;
    }
    if macro_(&at(&t.per_label), ZeroDivision::Zero) < macro_(&c_half, ZeroDivision::Zero) {
        t.per_label = half;
    }
    t
}

/// The flat metric map for one split (`{prefix}.f1_micro`, ...). Group metrics are
/// left out when a group has no labels.
pub fn report(
    prefix: &str,
    probs: &[f32],
    y: &[u8],
    l: usize,
    thresholds: &Thresholds,
    train_positives: &[u32],
) -> BTreeMap<String, f64> {
    let zd = ZeroDivision::Zero;
    let mut m = BTreeMap::new();
    let pred = predict(probs, &vec![0.5; l]);
    let c = counts(y, &pred, l);
    m.insert(format!("{prefix}.f1_micro"), micro(&c, zd));
    m.insert(format!("{prefix}.f1_macro"), macro_(&c, zd));
    m.insert(format!("{prefix}.f1_weighted"), weighted(&c, zd));
    m.insert(format!("{prefix}.f1_samples"), samples(y, &pred, l, zd));
    let c_global = counts(y, &predict(probs, &vec![thresholds.global; l]), l);
    m.insert(format!("{prefix}.f1_micro_tuned"), micro(&c_global, zd));
    let c_label = counts(y, &predict(probs, &thresholds.per_label), l);
    m.insert(format!("{prefix}.f1_macro_tuned"), macro_(&c_label, zd));
    for (suffix, counts) in [("", &c), ("_tuned", &c_label)] {
        let f = per_label(counts, zd);
        for group in ["head", "medium", "tail"] {
            let v = nan_mean(f.iter().zip(train_positives).filter(|(_, &n)| group_of(n) == group).map(|(x, _)| *x));
            if !v.is_nan() {
                m.insert(format!("{prefix}.f1_macro_{group}{suffix}"), v);
            }
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: [u8; 12] = [1, 0, 1, 0, 0, 1, 0, 0, 1, 1, 0, 0];
    const P: [u8; 12] = [1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0];

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 5e-7, "{a} != {b}");
    }

    #[test]
    fn sklearn_reference_values() {
        let c = counts(&T, &P, 4);
        close(micro(&c, ZeroDivision::Zero), 0.666667);
        close(macro_(&c, ZeroDivision::Zero), 0.416667);
        close(macro_(&c, ZeroDivision::Exclude), 0.555556);
        close(macro_(&c, ZeroDivision::One), 0.666667);
        close(weighted(&c, ZeroDivision::Zero), 0.666667);
        close(samples(&T, &P, 4, ZeroDivision::Zero), 0.666667);
    }

    #[test]
    fn undefined_everywhere_is_zero_division() {
        let z = [0u8; 6];
        let c = counts(&z, &z, 3);
        assert_eq!(micro(&c, ZeroDivision::Zero), 0.0);
        assert_eq!(micro(&c, ZeroDivision::One), 1.0);
        assert!(macro_(&c, ZeroDivision::Exclude).is_nan());
        assert_eq!(samples(&z, &z, 3, ZeroDivision::One), 1.0);
    }

    #[test]
    fn tuned_thresholds_never_worse_on_validation() {
        let mut rng = crate::data::SplitMix64(7);
        let (n, l) = (300, 20);
        let mut probs = vec![0f32; n * l];
        let mut y = vec![0u8; n * l];
        for i in 0..n * l {
            let u = (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
            y[i] = u8::from(u < 0.1);
            let noise = (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
            probs[i] = (0.15 * noise + if y[i] == 1 { 0.2 } else { 0.0 }).min(1.0);
        }
        let t = tune_checked(&probs, &y, l);
        let at = |th: &[f32]| counts(&y, &predict(&probs, th), l);
        let half = vec![0.5; l];
        assert!(micro(&at(&vec![t.global; l]), ZeroDivision::Zero) >= micro(&at(&half), ZeroDivision::Zero));
        assert!(macro_(&at(&t.per_label), ZeroDivision::Zero) >= macro_(&at(&half), ZeroDivision::Zero));
        // These scores all sit below 0.5: tuning must find a lower threshold that helps.
        assert!(t.global < 0.5, "global threshold {}", t.global);
        assert!(micro(&at(&vec![t.global; l]), ZeroDivision::Zero) > 0.5);
    }
}
