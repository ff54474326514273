//! Deterministic synthetic long-tail multi-label data with planted signal.
//!
//! Label `k` (by rank) is positive in about `max_positives * (k+1)^-s` training rows,
//! with `s` chosen so the rarest label gets `min_positives`: a Zipf-like tail from
//! 1,000+ down to 5. Each label owns a random prototype direction; a row's features
//! are the sum of its labels' prototypes plus Gaussian noise, so every label is
//! learnable but rare labels have few examples to learn from.

use sweep_file::SyntheticData;

use super::{RawData, SplitMix64};

struct Rng(SplitMix64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Signal strength of each prototype per feature; tuned so a one-hidden-layer MLP
/// lands well below perfect F1 and class weighting matters.
const SIGNAL: f64 = 0.35;

pub fn generate(cfg: &SyntheticData) -> RawData {
    let (l, d) = (cfg.labels as usize, cfg.features as usize);
    let n_train = cfg.train_samples as usize;
    let (max_pos, min_pos) = (cfg.max_positives.min(cfg.train_samples) as f64, cfg.min_positives as f64);
    let s = if l > 1 && max_pos > min_pos { (max_pos / min_pos).ln() / (l as f64).ln() } else { 0.0 };
    let prob: Vec<f64> = (0..l).map(|k| (max_pos * ((k + 1) as f64).powf(-s) / n_train as f64).min(1.0)).collect();
    let mut rng = Rng(SplitMix64(cfg.seed ^ 0x5EED_5EED));
    // Prototypes: sparse-ish, each label loads on a random quarter of the features.
    let mut proto = vec![0f32; l * d];
    for v in proto.iter_mut() {
        if rng.uniform() < 0.25 {
            *v = (rng.normal() * SIGNAL * 2.0) as f32;
        }
    }
    let mut make = |n: usize| {
        let (mut xs, mut ys) = (vec![0f32; n * d], vec![0u8; n * l]);
        for i in 0..n {
            let (x, y) = (&mut xs[i * d..(i + 1) * d], &mut ys[i * l..(i + 1) * l]);
            for (k, p) in prob.iter().enumerate() {
                if rng.uniform() < *p {
                    y[k] = 1;
                    for (xv, pv) in x.iter_mut().zip(&proto[k * d..(k + 1) * d]) {
                        *xv += pv;
                    }
                }
            }
            for xv in x.iter_mut() {
                *xv += rng.normal() as f32;
            }
        }
        super::Split { n, x: super::Features::Dense(xs), y: ys }
    };
    let train = make(n_train);
    let test = make(cfg.test_samples as usize);
    RawData {
        name: format!("synthetic-{l}x{d}-s{}", cfg.seed),
        features: d,
        label_names: (0..l).map(|k| format!("label_{k:04}")).collect(),
        train,
        val: None,
        test,
        dense: true,
        columns: Default::default(),
        unseen_labels: Default::default(),
    }
}
