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

use sweep_spec::{AslConfig, DbConfig, LossConfig, LossKind, WeightScheme};
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

/// A trial's loss, built once from its config and the training split's label counts.
pub struct Loss {
    kind: Built,
}

enum Built {
    Bce { pos_weight: Option<Tensor>, gamma: f64, alpha: f64 },
    Asl { pos_weight: Option<Tensor>, cfg: AslConfig },
    Db { freq_inv: Tensor, prior_bias: Tensor, cfg: DbConfig },
}

impl Loss {
    /// `positives[j]` of `n` training rows are positive for label j.
    pub fn new(cfg: &LossConfig, positives: &[u32], n: usize, device: Device) -> Loss {
        let pos_weight = || pos_weights(cfg, positives, n).map(|w| Tensor::from_slice(&w).to_device(device));
        let kind = match cfg.kind {
            LossKind::Bce => Built::Bce { pos_weight: pos_weight(), gamma: cfg.focal_gamma, alpha: cfg.focal_alpha },
            LossKind::Asl => Built::Asl { pos_weight: pos_weight(), cfg: cfg.asl.clone() },
            LossKind::Db => {
                let count = |p: u32| (p as f64).clamp(1.0, (n as f64 - 1.0).max(1.0));
                let freq_inv: Vec<f32> = positives.iter().map(|&p| (1.0 / count(p)) as f32).collect();
                let prior: Vec<f32> =
                    positives.iter().map(|&p| (-(n as f64 / count(p) - 1.0).ln() * cfg.db.kappa) as f32).collect();
                Built::Db {
                    freq_inv: Tensor::from_slice(&freq_inv).to_device(device),
                    prior_bias: Tensor::from_slice(&prior).to_device(device),
                    cfg: cfg.db.clone(),
                }
            }
        };
        Loss { kind }
    }

    /// Mean loss over every element.
    pub fn mean(&self, logits: &Tensor, targets: &Tensor) -> Tensor {
        self.elementwise(logits, targets).mean(Kind::Float)
    }

    /// Unreduced loss, one value per (row, label).
    pub fn elementwise(&self, logits: &Tensor, targets: &Tensor) -> Tensor {
        let logits = logits.to_kind(Kind::Float);
        match &self.kind {
            Built::Bce { pos_weight, gamma, alpha } => bce(&logits, targets, pos_weight.as_ref(), *gamma, *alpha),
            Built::Asl { pos_weight, cfg } => asl(&logits, targets, pos_weight.as_ref(), cfg),
            Built::Db { freq_inv, prior_bias, cfg } => db(&logits, targets, freq_inv, prior_bias, cfg),
        }
    }
}

/// `ce * (1 - p_t)^gamma`, times `alpha_t` when alpha >= 0.
fn bce(logits: &Tensor, targets: &Tensor, pos_weight: Option<&Tensor>, gamma: f64, alpha: f64) -> Tensor {
    let mut out = logits.binary_cross_entropy_with_logits::<&Tensor>(targets, None, pos_weight, Reduction::None);
    if gamma > 0.0 {
        let p = logits.sigmoid();
        let p_t: Tensor = &p * targets + (1.0 - &p) * (1.0 - targets);
        let q: Tensor = 1.0 - p_t;
        out *= q.pow_tensor_scalar(gamma);
    }
    if alpha >= 0.0 {
        out *= targets * alpha + (1.0 - targets) * (1.0 - alpha);
    }
    out
}

fn asl(logits: &Tensor, targets: &Tensor, pos_weight: Option<&Tensor>, c: &AslConfig) -> Tensor {
    let p = logits.sigmoid();
    let mut p_neg: Tensor = 1.0 - &p;
    if c.clip > 0.0 {
        p_neg = (p_neg + c.clip).clamp_max(1.0);
    }
    let mut log_pos = targets * p.clamp_min(c.eps).log();
    if let Some(w) = pos_weight {
        log_pos *= w;
    }
    let log_lik: Tensor = log_pos + (1.0 - targets) * p_neg.clamp_min(c.eps).log();
    if c.gamma_pos > 0.0 || c.gamma_neg > 0.0 {
        // The focusing weight carries no gradient, as in the authors' training.
        let (p, p_neg) = (p.detach(), p_neg.detach());
        let p_t = &p * targets + &p_neg * (1.0 - targets);
        let gamma = targets * c.gamma_pos + (1.0 - targets) * c.gamma_neg;
        let q: Tensor = 1.0 - p_t;
        let focused: Tensor = log_lik * q.pow(&gamma);
        -focused
    } else {
        -log_lik
    }
}

fn db(logits: &Tensor, targets: &Tensor, freq_inv: &Tensor, prior_bias: &Tensor, c: &DbConfig) -> Tensor {
    // Re-balanced weighting: r_ij = (1/n_j) / sum_k y_ik/n_k, smoothed. A row with no
    // positive label has r = inf, so weight alpha + 1, as in the authors' code.
    let repeat_rate = (targets * freq_inv).sum_dim_intlist([1i64].as_slice(), true, Kind::Float);
    let r = freq_inv / repeat_rate;
    let weight = ((r - c.mu) * c.beta).sigmoid() + c.alpha;
    // Negative-tolerant regularisation: the class prior shifts the logits, negatives'
    // logits are scaled by lambda and their weights divided by it.
    let is_pos = targets.ge(0.5);
    let z = logits + prior_bias;
    let z = z.where_self(&is_pos, &(&z * c.lambda));
    let weight = weight.where_self(&is_pos, &(&weight / c.lambda));
    let plain = z.binary_cross_entropy_with_logits::<&Tensor>(targets, None, None, Reduction::None);
    let weighted = z.binary_cross_entropy_with_logits(targets, Some(&weight), None::<&Tensor>, Reduction::None);
    let p_t = (-plain).exp();
    let alpha_t = targets * c.focal_alpha + (1.0 - targets) * (1.0 - c.focal_alpha);
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
        Loss { kind: Built::Bce { pos_weight: pos_weight.map(|w| w.shallow_clone()), gamma, alpha } }
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
