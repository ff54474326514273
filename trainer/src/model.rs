//! The MLP, one trial's ([`Mlp`]) or K trials' stacked into one batched model
//! ([`Stack`]: weights `[K, out, in]`, `baddbmm` forward), initialised like PyTorch's
//! `nn.Linear` (weight and bias uniform in ±1/sqrt(fan_in)) from each trial's own seed,
//! so model k of a stack starts exactly where trial k alone would. Dropout draws its
//! masks from [`DropoutRng`], a counter-based generator of the trial's own, not from
//! libtorch's process-global one: a trial's masks do not depend on what else runs in
//! the process, fused or in another slot.

use std::sync::Mutex;

use tch::{Device, Kind, Tensor};

use crate::data::SplitMix64;

/// One model: `(weight [out, in], bias [out])` per layer, hidden layers ReLU.
pub struct Mlp {
    pub(crate) layers: Vec<(Tensor, Tensor)>,
}

/// libtorch's generator is process-global: initialisations take turns, each from its seed.
static INIT: Mutex<()> = Mutex::new(());

/// Layer widths, inputs first.
fn widths(inputs: i64, hidden: &[u32], outputs: i64) -> Vec<i64> {
    let mut sizes = vec![inputs];
    sizes.extend(hidden.iter().map(|&h| h as i64));
    sizes.push(outputs);
    sizes
}

impl Mlp {
    /// Seeds libtorch with `seed` and draws the layers in the order a PyTorch script does
    /// (`torch.manual_seed(seed)`, then `nn.Linear` by `nn.Linear`, weight before bias).
    pub fn init(inputs: i64, hidden: &[u32], outputs: i64, seed: u64, device: Device) -> Mlp {
        let _turn = INIT.lock().unwrap_or_else(|e| e.into_inner());
        tch::manual_seed(seed as i64);
        let layers = widths(inputs, hidden, outputs)
            .windows(2)
            .map(|w| {
                let bound = 1.0 / (w[0] as f64).sqrt();
                let draw = |dims: &[i64]| Tensor::zeros(dims, (Kind::Float, device)).uniform_(-bound, bound);
                let weight = draw(&[w[1], w[0]]);
                (weight, draw(&[w[1]]))
            })
            .collect();
        Mlp { layers }
    }

    /// A copy of the weights.
    pub fn copy(&self) -> Mlp {
        tch::no_grad(|| Mlp { layers: self.layers.iter().map(|(w, b)| (w.copy(), b.copy())).collect() })
    }

    /// From named tensors `fc{i}.weight` / `fc{i}.bias` (a saved model), checking shapes.
    pub fn from_named(
        named: &[(String, Tensor)],
        inputs: i64,
        hidden: &[u32],
        outputs: i64,
        device: Device,
    ) -> anyhow::Result<Mlp> {
        let sizes = widths(inputs, hidden, outputs);
        anyhow::ensure!(
            named.len() == 2 * (sizes.len() - 1),
            "{} tensors, the model has {}",
            named.len(),
            2 * (sizes.len() - 1)
        );
        let get = |name: String, want: &[i64]| -> anyhow::Result<Tensor> {
            let t = named.iter().find(|(n, _)| *n == name).map(|(_, t)| t);
            let t = t.ok_or_else(|| anyhow::anyhow!("no tensor `{name}`"))?;
            anyhow::ensure!(t.size() == want, "`{name}` is {:?}, the model wants {want:?}", t.size());
            Ok(t.to_kind(Kind::Float).to_device(device))
        };
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, w)| Ok((get(format!("fc{i}.weight"), &[w[1], w[0]])?, get(format!("fc{i}.bias"), &[w[1]])?)))
            .collect::<anyhow::Result<_>>()?;
        Ok(Mlp { layers })
    }

    /// The layers as named host tensors, the names a PyTorch `state_dict` would use for
    /// an `fc0`, `fc1`, ... module.
    pub fn named(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, (w, b)) in self.layers.iter().enumerate() {
            out.push((format!("fc{i}.weight"), w.to_device(Device::Cpu)));
            out.push((format!("fc{i}.bias"), b.to_device(Device::Cpu)));
        }
        out
    }

    /// Logits of rows `x` (`[rows, in]`), no dropout: scoring.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let last = self.layers.len() - 1;
        let mut h = x.shallow_clone();
        for (i, (w, b)) in self.layers.iter().enumerate() {
            h = h.linear(w, Some(b));
            if i < last {
                h = h.relu();
            }
        }
        h
    }
}

/// K models of one architecture as one: layer weights `[K, out, in]`, biases `[K, 1, out]`.
pub struct Stack {
    layers: Vec<(Tensor, Tensor)>,
}

impl Stack {
    /// Stacks the models (copies), ready to train.
    pub fn new(models: &[Mlp]) -> Stack {
        let layers = (0..models[0].layers.len())
            .map(|i| {
                let ws: Vec<&Tensor> = models.iter().map(|m| &m.layers[i].0).collect();
                let bs: Vec<Tensor> = models.iter().map(|m| m.layers[i].1.unsqueeze(0)).collect();
                (Tensor::stack(&ws, 0).set_requires_grad(true), Tensor::stack(&bs, 0).set_requires_grad(true))
            })
            .collect();
        Stack { layers }
    }

    /// Every trainable tensor, weight then bias per layer.
    pub fn params(&self) -> Vec<&Tensor> {
        self.layers.iter().flat_map(|(w, b)| [w, b]).collect()
    }

    /// Model k's current weights, copied.
    pub fn model(&self, k: i64) -> Mlp {
        tch::no_grad(|| Mlp {
            layers: self.layers.iter().map(|(w, b)| (w.get(k).copy(), b.get(k).squeeze_dim(0).copy())).collect(),
        })
    }

    /// Overwrites model k's weights (a checkpoint's).
    pub fn load(&self, k: i64, model: &Mlp) {
        tch::no_grad(|| {
            for ((w, b), (mw, mb)) in self.layers.iter().zip(&model.layers) {
                w.get(k).copy_(mw);
                b.get(k).squeeze_dim(0).copy_(mb);
            }
        });
    }

    /// Model k's current weights as views (no copy): score with them, do not keep them.
    pub fn view(&self, k: i64) -> Mlp {
        Mlp { layers: self.layers.iter().map(|(w, b)| (w.get(k).detach(), b.get(k).squeeze_dim(0).detach())).collect() }
    }

    /// Training forward of `x` (`[K, batch, in]`, each model its own rows) with each
    /// model's dropout.
    pub fn forward_train(&self, x: &Tensor, dropout: Option<&DropoutRng>, step: u64) -> Tensor {
        let last = self.layers.len() - 1;
        let mut h = x.shallow_clone();
        for (i, (w, b)) in self.layers.iter().enumerate() {
            h = b.baddbmm(&h, &w.transpose(1, 2), 1.0, 1.0);
            if i < last {
                h = h.relu();
                if let Some(d) = dropout {
                    h = d.apply(&h, step, i as u64);
                }
            }
        }
        h
    }
}

/// Dropout masks from a counter-based generator: the mask of model k at step s, layer i
/// is a pure function of (k's seed, s, i, element), computed on the device with integer
/// tensor ops (a 32-bit integer hash; every product stays below 2^63, so the same on
/// every device and in PyTorch, `bench/torch_train.py`). Kept elements are scaled by
/// 1/(1-p), as `nn.Dropout` does.
pub struct DropoutRng {
    /// Per model, the key of its stream (< 2^32), `[K, 1, 1]` int64.
    keys: Tensor,
    /// Per model, the drop probability and the scale of kept elements, `[K, 1, 1]` fp32.
    p: Tensor,
    scale: Tensor,
}

const LOW32: i64 = 0xFFFF_FFFF;

/// A 32-bit integer hash of each element (values in [0, 2^32)).
pub fn hash32(x: &Tensor) -> Tensor {
    let x = x.bitwise_xor_tensor(&x.bitwise_right_shift_tensor_scalar(15));
    let x = (x * 0x2c1b_3c6di64).bitwise_and(LOW32);
    let x = x.bitwise_xor_tensor(&x.bitwise_right_shift_tensor_scalar(12));
    let x = (x * 0x297a_2d39i64).bitwise_and(LOW32);
    x.bitwise_xor_tensor(&x.bitwise_right_shift_tensor_scalar(15))
}

/// The host-side key of (step, layer), mixed into each model's stream key.
pub fn step_key(step: u64, layer: u64) -> i64 {
    (SplitMix64(step.wrapping_mul(64).wrapping_add(layer)).next_u64() & LOW32 as u64) as i64
}

/// A trial's stream key from its seed.
pub fn seed_key(seed: u64) -> i64 {
    (SplitMix64(seed ^ 0xD809_0F5E_D0B7_11E5).next_u64() & LOW32 as u64) as i64
}

impl DropoutRng {
    /// None when no model drops anything.
    pub fn new(seeds: &[u64], p: &[f64], device: Device) -> Option<DropoutRng> {
        if p.iter().all(|&p| p <= 0.0) {
            return None;
        }
        let k = seeds.len() as i64;
        let keys: Vec<i64> = seeds.iter().map(|&s| seed_key(s)).collect();
        let pf: Vec<f32> = p.iter().map(|&p| p as f32).collect();
        let scale: Vec<f32> = p.iter().map(|&p| (1.0 - p) as f32).collect();
        Some(DropoutRng {
            keys: Tensor::from_slice(&keys).view([k, 1, 1]).to_device(device),
            p: Tensor::from_slice(&pf).view([k, 1, 1]).to_device(device),
            scale: Tensor::from_slice(&scale).view([k, 1, 1]).to_device(device),
        })
    }

    /// `h` (`[K, rows, width]`) with model k's mask for (step, layer) applied.
    pub fn apply(&self, h: &Tensor, step: u64, layer: u64) -> Tensor {
        let size = h.size();
        let device = h.device();
        let key = hash32(&self.keys.bitwise_xor(step_key(step, layer)));
        let idx = Tensor::arange(size[1] * size[2], (Kind::Int64, device)).view([1, size[1], size[2]]);
        let bits = hash32(&(idx + key).bitwise_and(LOW32));
        let u = bits.bitwise_right_shift_tensor_scalar(8).to_kind(Kind::Float) * (1.0 / 16_777_216.0);
        let noise = u.ge_tensor(&self.p).to_kind(Kind::Float) / &self.scale;
        h * noise
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_uniform_enough_and_masks_drop_about_p() {
        let x = Tensor::arange(1 << 16, (Kind::Int64, Device::Cpu));
        let h = hash32(&x);
        let v = Vec::<i64>::try_from(&h).unwrap();
        assert!(v.iter().all(|&b| (0..=LOW32).contains(&b)));
        let mut distinct = v.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), v.len(), "a permutation of 32-bit values has no collisions");
        // Each output bit is set about half the time.
        for bit in 0..32 {
            let ones = v.iter().filter(|&&b| b >> bit & 1 == 1).count() as f64 / v.len() as f64;
            assert!((ones - 0.5).abs() < 0.01, "bit {bit}: {ones}");
        }
        let d = DropoutRng::new(&[1, 2], &[0.2, 0.5], Device::Cpu).unwrap();
        let ones = Tensor::ones([2, 256, 512], (Kind::Float, Device::Cpu));
        let out = d.apply(&ones, 3, 0);
        for (k, p) in [(0, 0.2), (1, 0.5)] {
            let dropped = f64::try_from(out.get(k).eq(0.0).to_kind(Kind::Float).mean(Kind::Float)).unwrap();
            assert!((dropped - p).abs() < 0.01, "model {k}: dropped {dropped}, p {p}");
        }
        // Another step, another mask; the same step, the same mask.
        assert!(!d.apply(&ones, 4, 0).equal(&out));
        assert!(d.apply(&ones, 3, 0).equal(&out));
        // Model 0's mask does not depend on its stack-mates.
        let alone = DropoutRng::new(&[1], &[0.2], Device::Cpu).unwrap();
        assert!(alone.apply(&ones.narrow(0, 0, 1), 3, 0).equal(&out.narrow(0, 0, 1)));
    }
}
