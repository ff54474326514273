//! TPE, the tree-structured Parzen estimator (Bergstra, Bardenet, Bengio, Kégl 2011),
//! in its univariate form (each parameter modelled on its own, as in hyperopt and
//! Optuna's default sampler): split the finished trials into the best `n_good` (Optuna's
//! rule: 10 % of them, at most 25) and the rest, fit a Parzen estimator (a mixture of
//! truncated Gaussians around the observed values plus a wide prior) to each part, draw
//! candidates from the good one, and keep the candidate that maximises l(x) / g(x).
//! Pure and deterministic for a given history and random generator.

use rand::Rng;

/// One parameter's domain.
#[derive(Debug, Clone, PartialEq)]
pub enum Dim {
    /// A real range; `log`: searched on a log scale (both bounds > 0).
    Float { lo: f64, hi: f64, log: bool },
    /// Integers `lo..=hi`.
    Int { lo: i64, hi: i64 },
    /// One of `n` choices, by index.
    Choice(usize),
}

/// A numeric dimension's searched scale: (to it, back from it, low, high).
type Scale = (fn(f64) -> f64, fn(f64) -> f64, f64, f64);

/// The sampler's settings (Optuna's defaults).
#[derive(Debug, Clone)]
pub struct Tpe {
    /// Candidates drawn from l(x) per parameter.
    pub candidates: usize,
    /// Weight of the prior component in each estimator.
    pub prior_weight: f64,
}

impl Default for Tpe {
    fn default() -> Self {
        Tpe { candidates: 24, prior_weight: 1.0 }
    }
}

/// How many of `n` finished trials count as good.
pub fn n_good(n: usize) -> usize {
    (n as f64 * 0.1).ceil().clamp(1.0, 25.0) as usize
}

/// A mixture of Gaussians truncated to `[lo, hi]`.
struct Parzen {
    mus: Vec<f64>,
    sigmas: Vec<f64>,
    weights: Vec<f64>,
    lo: f64,
    hi: f64,
}

fn phi(z: f64) -> f64 {
    0.5 * (1.0 + statrs::function::erf::erf(z / std::f64::consts::SQRT_2))
}

impl Parzen {
    /// hyperopt's adaptive Parzen estimator: each point's width is the larger gap to its
    /// neighbours (the bounds at the ends), clipped to [range / min(100, n + 1), range];
    /// the prior sits mid-range with the whole range as width.
    fn fit(points: &[f64], lo: f64, hi: f64, prior_weight: f64) -> Parzen {
        let range = hi - lo;
        let mut mus: Vec<f64> = points.to_vec();
        mus.sort_by(|a, b| a.total_cmp(b));
        let n = mus.len();
        let min_sigma = range / (n as f64 + 1.0).min(100.0);
        let mut sigmas = Vec::with_capacity(n + 1);
        for i in 0..n {
            let left = if i == 0 { mus[i] - lo } else { mus[i] - mus[i - 1] };
            let right = if i + 1 == n { hi - mus[i] } else { mus[i + 1] - mus[i] };
            sigmas.push(left.max(right).clamp(min_sigma, range));
        }
        let mut weights = vec![1.0; n];
        mus.push((lo + hi) / 2.0);
        sigmas.push(range);
        weights.push(prior_weight);
        let total: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= total);
        Parzen { mus, sigmas, weights, lo, hi }
    }

    fn log_pdf(&self, x: f64) -> f64 {
        let mut p = 0.0;
        for ((m, s), w) in self.mus.iter().zip(&self.sigmas).zip(&self.weights) {
            let mass = (phi((self.hi - m) / s) - phi((self.lo - m) / s)).max(1e-12);
            let z = (x - m) / s;
            p += w * (-0.5 * z * z).exp() / (s * (2.0 * std::f64::consts::PI).sqrt() * mass);
        }
        p.max(1e-300).ln()
    }

    fn sample(&self, rng: &mut impl Rng) -> f64 {
        let k = pick(&self.weights, rng);
        for _ in 0..100 {
            // Box-Muller: one standard normal from two uniforms.
            let (a, b): (f64, f64) = (rng.gen_range(f64::MIN_POSITIVE..1.0), rng.gen());
            let z = (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos();
            let x = self.mus[k] + self.sigmas[k] * z;
            if (self.lo..=self.hi).contains(&x) {
                return x;
            }
        }
        self.mus[k].clamp(self.lo, self.hi)
    }
}

/// An index drawn with probability proportional to `weights` (which sum to 1).
fn pick(weights: &[f64], rng: &mut impl Rng) -> usize {
    let mut u: f64 = rng.gen();
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            return i;
        }
        u -= w;
    }
    weights.len() - 1
}

/// Categorical weights: observed counts plus the prior, normalised.
fn categorical(values: &[f64], n: usize, prior_weight: f64) -> Vec<f64> {
    let mut w = vec![prior_weight / n as f64; n];
    for v in values {
        if let Some(c) = w.get_mut(*v as usize) {
            *c += 1.0;
        }
    }
    let total: f64 = w.iter().sum();
    w.iter().map(|x| x / total).collect()
}

impl Dim {
    /// A value drawn from the whole domain (the prior).
    pub fn sample_prior(&self, rng: &mut impl Rng) -> f64 {
        match *self {
            Dim::Float { lo, hi, log: true } => rng.gen_range(lo.ln()..=hi.ln()).exp(),
            Dim::Float { lo, hi, log: false } => rng.gen_range(lo..=hi),
            Dim::Int { lo, hi } => rng.gen_range(lo..=hi) as f64,
            Dim::Choice(n) => rng.gen_range(0..n) as f64,
        }
    }

    /// Internal (searched) scale and its bounds.
    fn internal(&self) -> Option<Scale> {
        let id: fn(f64) -> f64 = |x| x;
        match *self {
            Dim::Float { lo, hi, log: true } => Some((f64::ln, f64::exp, lo.ln(), hi.ln())),
            Dim::Float { lo, hi, log: false } => Some((id, id, lo, hi)),
            Dim::Int { lo, hi } => Some((id, id, lo as f64 - 0.5, hi as f64 + 0.5)),
            Dim::Choice(_) => None,
        }
    }

    fn finish(&self, x: f64) -> f64 {
        match *self {
            Dim::Int { lo, hi } => (x.round() as i64).clamp(lo, hi) as f64,
            Dim::Float { lo, hi, .. } => x.clamp(lo, hi),
            Dim::Choice(n) => (x as usize).min(n - 1) as f64,
        }
    }
}

impl Tpe {
    /// The next point to try, given finished trials `(point, objective)` where a larger
    /// objective is better. With fewer than two finished trials it samples the prior.
    pub fn suggest(&self, dims: &[Dim], history: &[(Vec<f64>, f64)], rng: &mut impl Rng) -> Vec<f64> {
        let finite: Vec<&(Vec<f64>, f64)> = history.iter().filter(|(_, y)| y.is_finite()).collect();
        if finite.len() < 2 {
            return dims.iter().map(|d| d.sample_prior(rng)).collect();
        }
        let mut order: Vec<usize> = (0..finite.len()).collect();
        order.sort_by(|&a, &b| finite[b].1.total_cmp(&finite[a].1).then(a.cmp(&b)));
        let cut = n_good(finite.len());
        let (good, bad) = order.split_at(cut);
        dims.iter()
            .enumerate()
            .map(|(d, dim)| {
                let column = |rows: &[usize]| -> Vec<f64> { rows.iter().map(|&i| finite[i].0[d]).collect() };
                let (g, b) = (column(good), column(bad));
                match dim.internal() {
                    Some((to, from, lo, hi)) => {
                        let l = Parzen::fit(&g.iter().map(|&v| to(v)).collect::<Vec<_>>(), lo, hi, self.prior_weight);
                        let gx = Parzen::fit(&b.iter().map(|&v| to(v)).collect::<Vec<_>>(), lo, hi, self.prior_weight);
                        let best = (0..self.candidates.max(1))
                            .map(|_| l.sample(rng))
                            .map(|x| (l.log_pdf(x) - gx.log_pdf(x), x))
                            .max_by(|a, b| a.0.total_cmp(&b.0))
                            .map(|(_, x)| x)
                            .unwrap_or((lo + hi) / 2.0);
                        dim.finish(from(best))
                    }
                    None => {
                        let Dim::Choice(n) = *dim else { unreachable!() };
                        let (wl, wg) = (categorical(&g, n, self.prior_weight), categorical(&b, n, self.prior_weight));
                        let best = (0..self.candidates.max(1))
                            .map(|_| pick(&wl, rng))
                            .max_by(|&a, &b| (wl[a].ln() - wg[a].ln()).total_cmp(&(wl[b].ln() - wg[b].ln())))
                            .unwrap_or(0);
                        best as f64
                    }
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Runs `n` sequential trials of TPE (the first `startup` from the prior) on `f`.
    fn run(dims: &[Dim], f: impl Fn(&[f64]) -> f64, n: usize, startup: usize, seed: u64) -> Vec<(Vec<f64>, f64)> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut h: Vec<(Vec<f64>, f64)> = Vec::new();
        for i in 0..n {
            let x = if i < startup {
                dims.iter().map(|d| d.sample_prior(&mut rng)).collect()
            } else {
                Tpe::default().suggest(dims, &h, &mut rng)
            };
            let y = f(&x);
            h.push((x, y));
        }
        h
    }

    fn best(h: &[(Vec<f64>, f64)]) -> f64 {
        h.iter().map(|p| p.1).fold(f64::MIN, f64::max)
    }

    #[test]
    fn the_same_history_and_seed_give_the_same_suggestion() {
        let dims = [Dim::Float { lo: 1e-4, hi: 1e-1, log: true }, Dim::Int { lo: 1, hi: 10 }, Dim::Choice(3)];
        let h = run(&dims, |x| -(x[0].ln() + 6.0).powi(2) - x[1] + x[2], 15, 10, 1);
        let a = Tpe::default().suggest(&dims, &h, &mut ChaCha8Rng::seed_from_u64(9));
        let b = Tpe::default().suggest(&dims, &h, &mut ChaCha8Rng::seed_from_u64(9));
        assert_eq!(a, b);
        assert!((1e-4..=1e-1).contains(&a[0]) && a[1].fract() == 0.0 && (1.0..=10.0).contains(&a[1]));
        assert!([0.0, 1.0, 2.0].contains(&a[2]));
    }

    #[test]
    fn its_proposals_beat_random_draws() {
        // A peak at lr = 3e-3 (log scale), hidden = 7, choice 2. Over 10 seeds, 40 trials
        // each (10 random, then 30 proposed): the proposals average better than random
        // draws on every seed. (Its best is not better on every seed: the univariate model
        // can favour a choice whose bad trials came from a bad lr.)
        let dims = [Dim::Float { lo: 1e-5, hi: 1e-1, log: true }, Dim::Int { lo: 1, hi: 20 }, Dim::Choice(4)];
        let f = |x: &[f64]| {
            -(x[0].ln() - 3e-3f64.ln()).powi(2) - 0.05 * (x[1] - 7.0).powi(2) + if x[2] == 2.0 { 1.0 } else { 0.0 }
        };
        let mean = |h: &[(Vec<f64>, f64)]| h.iter().map(|p| p.1).sum::<f64>() / h.len() as f64;
        for seed in 0..10 {
            let (tpe, random) = (run(&dims, f, 40, 10, seed), run(&dims, f, 40, 40, seed));
            assert!(mean(&tpe[10..]) > mean(&random[10..]), "seed {seed}");
        }
        // Without the choice, its best beats random search's best on average.
        let smooth = &dims[..2];
        let g = |x: &[f64]| -(x[0].ln() - 3e-3f64.ln()).powi(2) - 0.05 * (x[1] - 7.0).powi(2);
        let avg_best = |startup| (0..10).map(|seed| best(&run(smooth, g, 40, startup, seed))).sum::<f64>() / 10.0;
        let (tpe, random) = (avg_best(10), avg_best(40));
        assert!(tpe > random, "mean best: tpe {tpe} vs random {random}");
    }

    #[test]
    fn good_is_the_top_tenth_at_least_one_at_most_twenty_five() {
        assert_eq!((n_good(1), n_good(10), n_good(11), n_good(400)), (1, 1, 2, 25));
    }
}
