//! BCE-with-logits with per-label positive weights, and focal modulation with
//! torchvision's `sigmoid_focal_loss` semantics. Computed in fp32.

use sweep_spec::{LossConfig, WeightScheme};
use tch::{Kind, Reduction, Tensor};

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

/// Mean loss over all elements.
pub fn loss(logits: &Tensor, targets: &Tensor, pos_weight: Option<&Tensor>, gamma: f64, alpha: f64) -> Tensor {
    elementwise(logits, targets, pos_weight, gamma, alpha).mean(Kind::Float)
}

/// Unreduced loss: `ce * (1 - p_t)^gamma`, times `alpha_t` when alpha >= 0.
pub fn elementwise(logits: &Tensor, targets: &Tensor, pos_weight: Option<&Tensor>, gamma: f64, alpha: f64) -> Tensor {
    let logits = logits.to_kind(Kind::Float);
    let ce = logits.binary_cross_entropy_with_logits::<&Tensor>(targets, None, pos_weight, Reduction::None);
    let mut out = ce;
    if gamma > 0.0 {
        let p = logits.sigmoid();
        let p_t: Tensor = &p * targets + (1.0 - &p) * (1.0 - targets);
        let one_minus: Tensor = 1.0 - &p_t;
        let modulator = one_minus.pow_tensor_scalar(gamma);
        out *= modulator;
    }
    if alpha >= 0.0 {
        let alpha_t = targets * alpha + (1.0 - targets) * (1.0 - alpha);
        out *= alpha_t;
    }
    out
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
    fn close(t: Tensor, want: f64) {
        let got = f64::try_from(t).unwrap();
        assert!((got - want).abs() < 1e-6, "{got} != {want}");
    }

    #[test]
    fn reference_values() {
        close(loss(&x(), &y(), None, 0.0, -1.0), 0.301799);
        let pw = Tensor::from_slice(&[3.0f32, 1.0, 7.0]);
        close(loss(&x(), &y(), Some(&pw), 0.0, -1.0), 0.818185);
        close(loss(&x(), &y(), None, 2.0, 0.25), 0.018917);
        close(elementwise(&x(), &y(), None, 3.0, -1.0).sum(Kind::Float), 0.077843);
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
            let got = f64::try_from(loss(&xt, &yt, Some(&pt), gamma, alpha)).unwrap();
            assert!((got - want).abs() <= 1e-5 * want.abs().max(1.0), "case {case}: {got} vs {want}");
        }
    }
}
