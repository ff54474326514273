//! The losses, computed in fp32 and averaged over every (row, label) element:
//!
//! - `bce`: BCE-with-logits with per-label positive weights from a class-weight scheme,
//!   and focal modulation with torchvision's `sigmoid_focal_loss` semantics.
//! - `asl`: the asymmetric loss of Ridnik et al. (ICCV 2021) as the authors'
//!   `AsymmetricLoss` computes it: a probability margin `clip` on negatives, `eps`
//!   inside the logarithms, and the focusing weight `(1 - p_t)^gamma` with no gradient
//!   (their `disable_torch_grad_focal_loss=True`, which their training script uses).
//!   Their reduction is the sum over the batch; ours is the mean, like every loss here,
//!   which scales the loss by a constant: AdamW's step is unchanged by that (up to its
//!   eps), `grad_clip` applies to the mean, and `train.loss` stays comparable across
//!   kinds. A class-weight scheme multiplies the positive term, as `pos_weight` does in BCE.
//! - `db`: the distribution-balanced loss of Wu et al. (ECCV 2020) as the authors'
//!   `ResampleLoss` with re-balanced weighting, negative-tolerant regularisation and
//!   the focal term, in the text port's form (Roche/BalancedLossNLP: the class-prior
//!   bias not divided by lambda, their fix of the original; focal alpha_t). The
//!   class-prior bias is added to the logits inside the loss, as there; predictions use
//!   the model's own logits. Labels with no (or only) positives in training would make
//!   the authors' prior and inverse frequency infinite: their count is clamped to [1, n-1].

use sweep_file::{LossConfig, LossKind, WeightScheme};
use tch::{Device, Kind, Reduction, Tensor};

/// Per-label positive weights from a scheme, clipped at `cap` (and at least 1e-6).
/// `positives[j]` of `n` training rows are positive for label j.
pub fn pos_weights(cfg: &LossConfig, positives: &[u32], n: usize) -> Option<Vec<f32>> {
    let cw = &cfg.class_weight;
    let cap = cw.cap;
    let raw: Vec<f64> = match cw.scheme {
        WeightScheme::None => return None,
        WeightScheme::NegPos => positives.iter().map(|&p| ratio(p, n)).collect(),
        WeightScheme::NegPosSqrt => positives.iter().map(|&p| ratio(p, n).sqrt()).collect(),
        WeightScheme::EffectiveNumber => {
            // Class-balanced loss (Cui et al. 2019): (1 - beta) / (1 - beta^n_j),
            // normalised so the weights average 1 over labels.
            let w: Vec<f64> = positives
                .iter()
                .map(|&p| if p == 0 { f64::INFINITY } else { (1.0 - cw.beta) / (1.0 - cw.beta.powi(p as i32)) })
                .collect();
            let finite: Vec<f64> = w.iter().copied().filter(|x| x.is_finite()).collect();
            let mean = if finite.is_empty() { 1.0 } else { finite.iter().sum::<f64>() / finite.len() as f64 };
            w.into_iter().map(|x| x / mean).collect()
        }
    };
    Some(raw.into_iter().map(|w| w.min(cap).max(1e-6) as f32).collect())
}

fn ratio(pos: u32, n: usize) -> f64 {
    if pos == 0 {
        f64::INFINITY
    } else {
        (n as f64 - pos as f64) / pos as f64
    }
}

/// The loss of one trial, or of K trials trained as one stacked model. Every per-trial
/// setting is a `[K, 1, 1]` (or `[K, 1, L]`) tensor, so model k's elements are computed
/// exactly as its trial alone would compute them. Trials whose configs take different
/// branches (loss kind, class weights or not, focal or not) are computed in groups, each
/// group on its own slice of the stack.
pub struct Loss {
    k: i64,
    groups: Vec<Group>,
}

struct Group {
    /// Which models of the stack, when the group is not all of them.
    members: Option<Tensor>,
    built: Built,
}

/// Which branches of its formula a config takes; models with the same shape share a group.
/// The focal exponent (its bits) is part of the shape: `x ** gamma` with a scalar gamma is
/// what PyTorch computes (a scalar 2 or 3 takes exact multiplications), so a group raises to
/// one scalar power.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Bce { weighted: bool, focal: Option<u64>, alpha: bool },
    Asl { weighted: bool, clip: bool, focusing: bool },
    Db { gamma: u64 },
}

impl Shape {
    fn of(cfg: &LossConfig) -> Shape {
        let weighted = cfg.class_weight.scheme != WeightScheme::None;
        match cfg.kind {
            LossKind::Bce => Shape::Bce {
                weighted,
                focal: (cfg.focal_gamma > 0.0).then(|| cfg.focal_gamma.to_bits()),
                alpha: cfg.focal_alpha >= 0.0,
            },
            LossKind::Asl => Shape::Asl {
                weighted,
                clip: cfg.asl.clip > 0.0,
                focusing: cfg.asl.gamma_pos > 0.0 || cfg.asl.gamma_neg > 0.0,
            },
            LossKind::Db => Shape::Db { gamma: cfg.db.gamma.to_bits() },
        }
    }
}

enum Built {
    Bce { pos_weight: Option<Tensor>, gamma: Option<f64>, alpha: Option<Tensor> },
    Asl { pos_weight: Option<Tensor>, clip: Option<Tensor>, eps: Tensor, gamma: Option<(Tensor, Tensor)> },
    Db { freq_inv: Tensor, prior_bias: Tensor, p: DbParams },
}

/// The DB loss's settings, one `[K, 1, 1]` tensor each.
struct DbParams {
    alpha: Tensor,
    beta: Tensor,
    mu: Tensor,
    lambda: Tensor,
    gamma: f64,
    focal_alpha: Tensor,
}

/// One value per model as a `[K, 1, 1]` fp32 tensor.
fn per_model(values: impl Iterator<Item = f64>, device: Device) -> Tensor {
    let v: Vec<f32> = values.map(|x| x as f32).collect();
    let k = v.len() as i64;
    Tensor::from_slice(&v).view([k, 1, 1]).to_device(device)
}

/// One row per model as a `[K, 1, L]` fp32 tensor.
fn per_model_rows(rows: &[Vec<f32>], device: Device) -> Tensor {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_slice(&flat).view([rows.len() as i64, 1, -1]).to_device(device)
}

impl Built {
    fn new(cfgs: &[&LossConfig], shape: Shape, positives: &[u32], n: usize, device: Device) -> Built {
        let pm = |f: &dyn Fn(&LossConfig) -> f64| per_model(cfgs.iter().map(|c| f(c)), device);
        let pos_weight = |weighted: bool| {
            weighted.then(|| {
                let rows: Vec<Vec<f32>> =
                    cfgs.iter().map(|c| pos_weights(c, positives, n).expect("a weighted scheme")).collect();
                per_model_rows(&rows, device)
            })
        };
        match shape {
            Shape::Bce { weighted, focal, alpha } => Built::Bce {
                pos_weight: pos_weight(weighted),
                gamma: focal.map(f64::from_bits),
                alpha: alpha.then(|| pm(&|c| c.focal_alpha)),
            },
            Shape::Asl { weighted, clip, focusing } => Built::Asl {
                pos_weight: pos_weight(weighted),
                clip: clip.then(|| pm(&|c| c.asl.clip)),
                eps: pm(&|c| c.asl.eps),
                gamma: focusing.then(|| (pm(&|c| c.asl.gamma_pos), pm(&|c| c.asl.gamma_neg))),
            },
            Shape::Db { gamma } => {
                let count = |p: u32| (p as f64).clamp(1.0, (n as f64 - 1.0).max(1.0));
                let freq_inv: Vec<f32> = positives.iter().map(|&p| (1.0 / count(p)) as f32).collect();
                let prior: Vec<Vec<f32>> = cfgs
                    .iter()
                    .map(|c| {
                        positives.iter().map(|&p| (-(n as f64 / count(p) - 1.0).ln() * c.db.kappa) as f32).collect()
                    })
                    .collect();
                Built::Db {
                    freq_inv: Tensor::from_slice(&freq_inv).to_device(device),
                    prior_bias: per_model_rows(&prior, device),
                    p: DbParams {
                        alpha: pm(&|c| c.db.alpha),
                        beta: pm(&|c| c.db.beta),
                        mu: pm(&|c| c.db.mu),
                        lambda: pm(&|c| c.db.lambda),
                        gamma: f64::from_bits(gamma),
                        focal_alpha: pm(&|c| c.db.focal_alpha),
                    },
                }
            }
        }
    }

    fn elementwise(&self, logits: &Tensor, targets: &Tensor) -> Tensor {
        match self {
            Built::Bce { pos_weight, gamma, alpha } => {
                bce(logits, targets, pos_weight.as_ref(), *gamma, alpha.as_ref())
            }
            Built::Asl { pos_weight, clip, eps, gamma } => {
                asl(logits, targets, pos_weight.as_ref(), clip.as_ref(), eps, gamma.as_ref())
            }
            Built::Db { freq_inv, prior_bias, p } => db(logits, targets, freq_inv, prior_bias, p),
        }
    }
}

impl Loss {
    /// One trial's loss. `positives[j]` of `n` training rows are positive for label j.
    pub fn new(cfg: &LossConfig, positives: &[u32], n: usize, device: Device) -> Loss {
        Loss::stacked(&[cfg], positives, n, device)
    }

    /// The losses of K trials on one dataset, model k with `cfgs[k]`.
    pub fn stacked(cfgs: &[&LossConfig], positives: &[u32], n: usize, device: Device) -> Loss {
        let mut shapes: Vec<(Shape, Vec<usize>)> = Vec::new();
        for (i, c) in cfgs.iter().enumerate() {
            let s = Shape::of(c);
            match shapes.iter_mut().find(|(t, _)| *t == s) {
                Some((_, members)) => members.push(i),
                None => shapes.push((s, vec![i])),
            }
        }
        let whole = shapes.len() == 1;
        let groups = shapes
            .into_iter()
            .map(|(shape, members)| {
                let own: Vec<&LossConfig> = members.iter().map(|&i| cfgs[i]).collect();
                let idx: Vec<i64> = members.iter().map(|&i| i as i64).collect();
                Group {
                    members: (!whole).then(|| Tensor::from_slice(&idx).to_device(device)),
                    built: Built::new(&own, shape, positives, n, device),
                }
            })
            .collect();
        Loss { k: cfgs.len() as i64, groups }
    }

    /// Mean loss over every element (of a one-model loss).
    pub fn mean(&self, logits: &Tensor, targets: &Tensor) -> Tensor {
        self.elementwise(logits, targets).mean(Kind::Float)
    }

    /// Unreduced loss of a one-model loss, one value per (row, label): `logits` is
    /// `[rows, labels]`.
    pub fn elementwise(&self, logits: &Tensor, targets: &Tensor) -> Tensor {
        assert!(self.k == 1, "elementwise is for one model; a stack has {}", self.k);
        let out = self.groups[0].built.elementwise(&logits.to_kind(Kind::Float).unsqueeze(0), targets);
        out.squeeze_dim(0)
    }

    /// Each model's mean loss, `[K]`: `logits` is `[K, rows, labels]`, `targets` the same
    /// or `[rows, labels]` shared by all.
    pub fn per_model_mean(&self, logits: &Tensor, targets: &Tensor) -> Tensor {
        let logits = logits.to_kind(Kind::Float);
        let dims = [1i64, 2].as_slice();
        if let [g] = self.groups.as_slice() {
            return g.built.elementwise(&logits, targets).mean_dim(dims, false, Kind::Float);
        }
        let mut out = Tensor::zeros([self.k], (Kind::Float, logits.device()));
        for g in &self.groups {
            let idx = g.members.as_ref().expect("a group of a mixed stack names its members");
            let t = if targets.dim() == 3 { targets.index_select(0, idx) } else { targets.shallow_clone() };
            let means = g.built.elementwise(&logits.index_select(0, idx), &t).mean_dim(dims, false, Kind::Float);
            out = out.index_copy(0, idx, &means);
        }
        out
    }
}

/// `ce * (1 - p_t)^gamma`, times `alpha_t` when the config sets alpha.
fn bce(
    logits: &Tensor,
    targets: &Tensor,
    pos_weight: Option<&Tensor>,
    gamma: Option<f64>,
    alpha: Option<&Tensor>,
) -> Tensor {
    let targets = targets.expand_as(logits);
    let mut out = logits.binary_cross_entropy_with_logits::<&Tensor>(&targets, None, pos_weight, Reduction::None);
    if let Some(gamma) = gamma {
        let p = logits.sigmoid();
        let p_t: Tensor = &p * &targets + (1.0 - &p) * (1.0 - &targets);
        let q: Tensor = 1.0 - p_t;
        out *= q.pow_tensor_scalar(gamma);
    }
    if let Some(alpha) = alpha {
        out *= &targets * alpha + (1.0 - &targets) * (1.0 - alpha);
    }
    out
}

fn asl(
    logits: &Tensor,
    targets: &Tensor,
    pos_weight: Option<&Tensor>,
    clip: Option<&Tensor>,
    eps: &Tensor,
    gamma: Option<&(Tensor, Tensor)>,
) -> Tensor {
    let p = logits.sigmoid();
    let mut p_neg: Tensor = 1.0 - &p;
    if let Some(clip) = clip {
        p_neg = (p_neg + clip).clamp_max(1.0);
    }
    let mut log_pos = targets * p.clamp_min_tensor(eps).log();
    if let Some(w) = pos_weight {
        log_pos *= w;
    }
    let log_lik: Tensor = log_pos + (1.0 - targets) * p_neg.clamp_min_tensor(eps).log();
    if let Some((gamma_pos, gamma_neg)) = gamma {
        // The focusing weight carries no gradient, as in the authors' training.
        let (p, p_neg) = (p.detach(), p_neg.detach());
        let p_t = &p * targets + &p_neg * (1.0 - targets);
        let gamma = targets * gamma_pos + (1.0 - targets) * gamma_neg;
        let q: Tensor = 1.0 - p_t;
        let focused: Tensor = log_lik * q.pow(&gamma);
        -focused
    } else {
        -log_lik
    }
}

fn db(logits: &Tensor, targets: &Tensor, freq_inv: &Tensor, prior_bias: &Tensor, c: &DbParams) -> Tensor {
    let targets = targets.expand_as(logits);
    // Re-balanced weighting: r_ij = (1/n_j) / sum_k y_ik/n_k, smoothed. A row with no
    // positive label has r = inf, so weight alpha + 1, as in the authors' code.
    let repeat_rate = (&targets * freq_inv).sum_dim_intlist([-1i64].as_slice(), true, Kind::Float);
    let r = freq_inv / repeat_rate;
    let weight = ((r - &c.mu) * &c.beta).sigmoid() + &c.alpha;
    // Negative-tolerant regularisation: the class prior shifts the logits, negatives'
    // logits are scaled by lambda and their weights divided by it.
    let is_pos = targets.ge(0.5);
    let z = logits + prior_bias;
    let z = z.where_self(&is_pos, &(&z * &c.lambda));
    let weight = weight.where_self(&is_pos, &(&weight / &c.lambda));
    let plain = z.binary_cross_entropy_with_logits::<&Tensor>(&targets, None, None, Reduction::None);
    let weighted = z.binary_cross_entropy_with_logits(&targets, Some(&weight), None::<&Tensor>, Reduction::None);
    let p_t = (-plain).exp();
    let alpha_t = &targets * &c.focal_alpha + (1.0 - &targets) * (1.0 - &c.focal_alpha);
    let q: Tensor = 1.0 - p_t;
    alpha_t * q.pow_tensor_scalar(c.gamma) * weighted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x() -> Tensor {
        Tensor::from_slice(&[2.0f32, -1.0, 0.5, -0.3, 1.2, -2.5]).view([2, 3])
    }
    fn y() -> Tensor {
        Tensor::from_slice(&[1.0f32, 0.0, 1.0, 0.0, 1.0, 0.0]).view([2, 3])
    }
    fn bce_loss(pos_weight: Option<&Tensor>, gamma: f64, alpha: f64) -> Loss {
        let scalar = |v: f64| Tensor::from_slice(&[v as f32]).view([1, 1, 1]);
        let built = Built::Bce {
            pos_weight: pos_weight.map(|w| w.view([1, 1, -1])),
            gamma: (gamma > 0.0).then_some(gamma),
            alpha: (alpha >= 0.0).then(|| scalar(alpha)),
        };
        Loss { k: 1, groups: vec![Group { members: None, built }] }
    }
    fn close(t: Tensor, want: f64) {
        let got = f64::try_from(t).unwrap();
        assert!((got - want).abs() < 1e-6, "{got} != {want}");
    }

    #[test]
    fn reference_values() {
        close(bce_loss(None, 0.0, -1.0).mean(&x(), &y()), 0.301799);
        let pw = Tensor::from_slice(&[3.0f32, 1.0, 7.0]);
        close(bce_loss(Some(&pw), 0.0, -1.0).mean(&x(), &y()), 0.818185);
        close(bce_loss(None, 2.0, 0.25).mean(&x(), &y()), 0.018917);
        close(bce_loss(None, 3.0, -1.0).elementwise(&x(), &y()).sum(Kind::Float), 0.077843);
    }

    /// Against an independent f64 formula on random inputs.
    #[test]
    fn random_inputs_match_f64_reference() {
        let mut rng = crate::data::SplitMix64(11);
        let mut u = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        for case in 0..20 {
            let (n, l) = (7, 5);
            let xs: Vec<f64> = (0..n * l).map(|_| (u() - 0.5) * 12.0).collect();
            let ys: Vec<f64> = (0..n * l).map(|_| if u() < 0.3 { 1.0 } else { 0.0 }).collect();
            let pw: Vec<f64> = (0..l).map(|_| 0.5 + 8.0 * u()).collect();
            let gamma = [0.0, 1.0, 2.0, 3.0][case % 4];
            let alpha = if case % 3 == 0 { -1.0 } else { u() };
            let mut want = 0.0;
            for i in 0..n * l {
                let (x, y, w) = (xs[i], ys[i], pw[i % l]);
                let p = 1.0 / (1.0 + (-x).exp());
                let ce = -(w * y * p.ln() + (1.0 - y) * (1.0 - p).ln());
                let p_t = p * y + (1.0 - p) * (1.0 - y);
                let mut v = ce * (1.0 - p_t).powf(gamma);
                if alpha >= 0.0 {
                    v *= alpha * y + (1.0 - alpha) * (1.0 - y);
                }
                want += v;
            }
            want /= (n * l) as f64;
            let xt = Tensor::from_slice(&xs.iter().map(|v| *v as f32).collect::<Vec<_>>()).view([n as i64, l as i64]);
            let yt = Tensor::from_slice(&ys.iter().map(|v| *v as f32).collect::<Vec<_>>()).view([n as i64, l as i64]);
            let pt = Tensor::from_slice(&pw.iter().map(|v| *v as f32).collect::<Vec<_>>());
            let got = f64::try_from(bce_loss(Some(&pt), gamma, alpha).mean(&xt, &yt)).unwrap();
            assert!((got - want).abs() <= 1e-5 * want.abs().max(1.0), "case {case}: {got} vs {want}");
        }
    }
}
