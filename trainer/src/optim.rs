//! AdamW for a stack of K models, each with its own learning rate and weight decay, as
//! `torch.optim.AdamW` computes it one tensor at a time (the single-tensor path PyTorch
//! takes on CPU): decoupled decay `p *= 1 - lr*wd`, `m.lerp_(g, 1 - beta1)`,
//! `v = v*beta2 + (1 - beta2)*g*g`, bias corrections in float64 on the host, then
//! `p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)`. The per-model factors are `[K, 1, 1]`
//! tensors holding the fp32 values PyTorch's Python scalars become (computed in float64
//! on the device, so no host-to-device copy per step). A model that has stopped (early
//! stopping, cancel) keeps its weights: its decay factor is 1 and its step size 0.
//!
//! Its state (moments and step) is plain tensors, so a checkpoint can carry it.

use tch::{Kind, Tensor};

pub const BETA1: f64 = 0.9;
pub const BETA2: f64 = 0.999;
pub const EPS: f64 = 1e-8;

pub struct AdamW {
    k: i64,
    /// Learning rates and weight decays, float64 on the device (`[K]`).
    lr: Tensor,
    weight_decay: Tensor,
    /// Which models still train, as float64 1/0 (`[K]`), and the fp32 decay factors
    /// `1 - lr*wd` (1 for a stopped model), `[K, 1, 1]`.
    active: Vec<bool>,
    active_f64: Tensor,
    decay: Tensor,
    step: u64,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// One buffer per parameter for the update's intermediate values, so a step
    /// allocates nothing (fresh multi-megabyte blocks cost page faults on every step).
    scratch: Vec<Tensor>,
}

impl AdamW {
    /// `params` are `[K, ...]` rank-3 tensors (a [`crate::model::Stack`]'s).
    pub fn new(params: &[&Tensor], lr: &[f64], weight_decay: &[f64]) -> AdamW {
        let zeros = || params.iter().map(|p| p.zeros_like()).collect::<Vec<_>>();
        let device = params[0].device();
        let on_device = |v: &[f64]| Tensor::from_slice(v).to_device(device);
        let mut opt = AdamW {
            k: lr.len() as i64,
            lr: on_device(lr),
            weight_decay: on_device(weight_decay),
            active: vec![true; lr.len()],
            active_f64: on_device(&vec![1.0; lr.len()]),
            decay: Tensor::zeros([1], (Kind::Float, device)),
            step: 0,
            m: zeros(),
            v: zeros(),
            scratch: zeros(),
        };
        opt.decay = opt.decay_factors();
        opt
    }

    fn decay_factors(&self) -> Tensor {
        let lr_wd: Tensor = &self.lr * &self.weight_decay * &self.active_f64;
        let decay: Tensor = 1.0 - lr_wd;
        decay.to_kind(Kind::Float).view([self.k, 1, 1])
    }

    /// Stops (or restarts) models: a stopped model's weights no longer change.
    pub fn set_active(&mut self, active: &[bool]) {
        if active != self.active.as_slice() {
            self.active = active.to_vec();
            let a: Vec<f64> = active.iter().map(|&a| if a { 1.0 } else { 0.0 }).collect();
            self.active_f64 = Tensor::from_slice(&a).to_device(self.lr.device());
            self.decay = self.decay_factors();
        }
    }

    /// Model k's moments (copies), per parameter tensor: what a checkpoint keeps.
    pub fn moments(&self, k: i64) -> Vec<(Tensor, Tensor)> {
        self.m.iter().zip(&self.v).map(|(m, v)| (m.get(k).copy(), v.get(k).copy())).collect()
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Restores model k's moments and the step count from a checkpoint.
    pub fn restore(&mut self, k: i64, steps: u64, moments: &[(Tensor, Tensor)]) {
        self.step = steps;
        tch::no_grad(|| {
            for ((m, v), (sm, sv)) in self.m.iter().zip(&self.v).zip(moments) {
                m.get(k).copy_(sm);
                v.get(k).copy_(sv);
            }
        });
    }

    /// One step on `params`, whose gradients are set.
    pub fn step(&mut self, params: &[&Tensor]) {
        self.step += 1;
        let bc1 = 1.0 - BETA1.powf(self.step as f64);
        let bc2_sqrt = (1.0 - BETA2.powf(self.step as f64)).sqrt();
        // lr/bc1 in float64 (as PyTorch's Python float), then the fp32 the kernel uses.
        let step_size: Tensor = (&self.lr * &self.active_f64 / bc1).to_kind(Kind::Float).view([self.k, 1, 1]);
        tch::no_grad(|| {
            if self.lr.device() == tch::Device::Cpu && self.k > 1 {
                // On a CPU, model by model: each model's weights and moments stay in cache
                // through the nine passes (the whole stack's would not); same arithmetic.
                let decay = Vec::<f32>::try_from(&self.decay.view([-1])).expect("decay to host");
                let step = Vec::<f32>::try_from(&step_size.view([-1])).expect("step size to host");
                for (((p, m), v), tmp) in params.iter().zip(&self.m).zip(&self.v).zip(&self.scratch) {
                    let g = p.grad();
                    for k in 0..self.k {
                        let (d, s) = (decay[k as usize] as f64, step[k as usize] as f64);
                        let state = State { m: &mut m.get(k), v: &mut v.get(k), tmp: &mut tmp.get(k) };
                        update(&p.get(k), &g.get(k), state, &d.into(), &s.into(), bc2_sqrt);
                    }
                }
            } else {
                for (((p, m), v), tmp) in params.iter().zip(&mut self.m).zip(&mut self.v).zip(&mut self.scratch) {
                    let state = State { m, v, tmp };
                    update(p, &p.grad(), state, &(&self.decay).into(), &(&step_size).into(), bc2_sqrt);
                }
            }
        });
    }
}

/// A per-model factor: a `[K, 1, 1]` tensor for a stack, or one model's scalar.
enum Factor<'a> {
    Each(&'a Tensor),
    One(f64),
}

impl<'a> From<&'a Tensor> for Factor<'a> {
    fn from(t: &'a Tensor) -> Factor<'a> {
        Factor::Each(t)
    }
}

impl From<f64> for Factor<'_> {
    fn from(x: f64) -> Self {
        Factor::One(x)
    }
}

/// One parameter's optimiser state (or one model's slice of it) and its scratch buffer.
struct State<'a> {
    m: &'a mut Tensor,
    v: &'a mut Tensor,
    tmp: &'a mut Tensor,
}

/// One AdamW update of `p` (weights of one model or a stack) in place, each
/// intermediate written into the scratch buffer (the values and their order are those of
/// fresh tensors: `g * (1 - beta2)`, `sqrt(v) / bc2 + eps`, `m / denom`, `* step`).
fn update(p: &Tensor, g: &Tensor, s: State, decay: &Factor, step: &Factor, bc2_sqrt: f64) {
    let mut p = p.shallow_clone();
    let _ = match decay {
        Factor::Each(t) => p.g_mul_(t),
        Factor::One(x) => p.g_mul_scalar_(*x),
    };
    let _ = s.m.lerp_(g, 1.0 - BETA1);
    let _ = g.mul_scalar_out(s.tmp, 1.0 - BETA2);
    let _ = s.v.g_mul_scalar_(BETA2).addcmul_(s.tmp, g);
    let _ = s.v.sqrt_out(s.tmp);
    let _ = s.tmp.g_div_scalar_(bc2_sqrt).g_add_scalar_(EPS);
    let _ = s.m.div_out(s.tmp, s.tmp);
    let _ = match step {
        Factor::Each(t) => s.tmp.g_mul_(t),
        Factor::One(x) => s.tmp.g_mul_scalar_(*x),
    };
    let _ = p.g_sub_(s.tmp);
}

/// Clips each model's gradient to a total 2-norm of `max_norm[k]` (0: no clipping), as
/// `torch.nn.utils.clip_grad_norm_` does for one model: total = norm of the per-tensor
/// norms, scaled by min(1, max / (total + 1e-6)).
pub fn clip_grad_norm(params: &[&Tensor], max_norm: &[f64]) {
    if max_norm.iter().all(|&m| m <= 0.0) {
        return;
    }
    tch::no_grad(|| {
        let k = max_norm.len() as i64;
        let norms: Vec<Tensor> = params
            .iter()
            .map(|p| p.grad().reshape([k, -1]).norm_scalaropt_dim(2.0, [1i64].as_slice(), false))
            .collect();
        let total = Tensor::stack(&norms, 1).norm_scalaropt_dim(2.0, [1i64].as_slice(), false);
        let limit: Vec<f32> = max_norm.iter().map(|&m| if m > 0.0 { m as f32 } else { f32::INFINITY }).collect();
        let limit = Tensor::from_slice(&limit).to_device(total.device());
        let coef = (limit / (total + 1e-6)).clamp_max(1.0);
        for p in params {
            let mut shape = vec![k];
            shape.extend(std::iter::repeat_n(1, p.dim() - 1));
            let mut g = p.grad();
            let _ = g.g_mul_(&coef.view(shape.as_slice()).to_kind(Kind::Float));
        }
    });
}

/// Zeroes every gradient (before a backward pass).
pub fn zero_grad(params: &[&Tensor]) {
    for p in params {
        let mut g = p.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
}
