//! The MLP, one trial's ([`Mlp`]) or K trials' stacked into one batched model
//! ([`Stack`]: weights `[K, out, in]`, `baddbmm` forward), initialised like PyTorch's
//! `nn.Linear` (weight and bias uniform in ±1/sqrt(fan_in)) from each trial's own seed,
//! so model k of a stack starts exactly where trial k alone would.
//!
//! Sparse inputs (text, XC) never become dense: the first layer keeps its weight as
//! `[in, out]` (one row per input column; `[K, in, out]` in a stack) and multiplies a
//! batch of sparse rows by it with `embedding_bag` (sum of each row's weighted weight
//! rows, per-sample weights = the row's values): one kernel on CPU and CUDA, alone and in
//! a stack (model k's column ids shifted by k*in into the stacked `[K*in, out]` table).
//! It computes exactly `x @ W.T` of `nn.Linear`; saved models store `fc0.weight` as
//! `[out, in]` either way. Chosen over a sparse-dense matmul, which wants the weight
//! transposed (a copy of the whole layer per batch) and a block-diagonal sparse matrix
//! for a stack. Dropout draws its
//! masks from [`DropoutRng`], a counter-based generator of the trial's own, not from
//! libtorch's process-global one: a trial's masks do not depend on what else runs in
//! the process, fused or in another slot.

use std::sync::Mutex;

use tch::{Device, Kind, Tensor};

use crate::data::SplitMix64;

/// A batch of rows as the first layer takes them.
pub enum Batch {
    /// `[rows, in]` for one model, `[K, rows, in]` for a stack (each model its own rows).
    Dense(Tensor),
    /// Sparse rows as bags: column ids (in a stack shifted by k*in for model k), each
    /// entry's value, and where each of the `rows` rows starts (K*rows for a stack).
    Sparse { indices: Tensor, values: Tensor, offsets: Tensor },
}

impl Batch {
    /// Uploads host bags.
    pub fn sparse(bag: crate::data::Bag, device: Device) -> Batch {
        Batch::Sparse {
            indices: Tensor::from_slice(&bag.indices).to_device(device),
            values: Tensor::from_slice(&bag.values).to_device(device),
            offsets: Tensor::from_slice(&bag.offsets).to_device(device),
        }
    }
}

/// The first layer on a sparse batch: for each bag, the sum of the weight rows its
/// column ids name, each scaled by its value.
fn bag_layer(table: &Tensor, indices: &Tensor, values: &Tensor, offsets: &Tensor) -> Tensor {
    // mode 0: sum; per-sample weights take only this mode.
    let (out, _, _, _) = Tensor::embedding_bag(table, indices, offsets, false, 0, false, Some(values), false);
    out
}

/// One model: `(weight [out, in], bias [out])` per layer, hidden layers ReLU; with
/// sparse input the first weight is `[in, out]`.
pub struct Mlp {
    pub(crate) layers: Vec<(Tensor, Tensor)>,
    /// Whether the first layer takes sparse rows (its weight stored `[in, out]`).
    pub(crate) sparse: bool,
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
    pub fn init(inputs: i64, hidden: &[u32], outputs: i64, seed: u64, device: Device, sparse: bool) -> Mlp {
        let _turn = INIT.lock().unwrap_or_else(|e| e.into_inner());
        tch::manual_seed(seed as i64);
        let layers = widths(inputs, hidden, outputs)
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                let bound = 1.0 / (w[0] as f64).sqrt();
                let draw = |dims: &[i64]| Tensor::zeros(dims, (Kind::Float, device)).uniform_(-bound, bound);
                let weight = draw(&[w[1], w[0]]);
                let weight = if i == 0 && sparse { weight.tr().contiguous() } else { weight };
                (weight, draw(&[w[1]]))
            })
            .collect();
        Mlp { layers, sparse }
    }

    /// Where its weights are.
    pub fn device(&self) -> Device {
        self.layers[0].0.device()
    }

    /// A copy of the weights.
    pub fn copy(&self) -> Mlp {
        let layers = tch::no_grad(|| self.layers.iter().map(|(w, b)| (w.copy(), b.copy())).collect());
        Mlp { layers, sparse: self.sparse }
    }

    /// From named tensors `fc{i}.weight` / `fc{i}.bias` (a saved model), checking shapes.
    pub fn from_named(
        named: &[(String, Tensor)],
        inputs: i64,
        hidden: &[u32],
        outputs: i64,
        device: Device,
        sparse: bool,
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
            .map(|(i, w)| {
                let weight = get(format!("fc{i}.weight"), &[w[1], w[0]])?;
                let weight = if i == 0 && sparse { weight.tr().contiguous() } else { weight };
                Ok((weight, get(format!("fc{i}.bias"), &[w[1]])?))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Mlp { layers, sparse })
    }

    /// The layers as named host tensors, the names and shapes a PyTorch `state_dict` would
    /// have for an `fc0`, `fc1`, ... module of `nn.Linear`s.
    pub fn named(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, (w, b)) in self.layers.iter().enumerate() {
            let w = if i == 0 && self.sparse { w.tr().contiguous() } else { w.shallow_clone() };
            out.push((format!("fc{i}.weight"), w.to_device(Device::Cpu)));
            out.push((format!("fc{i}.bias"), b.to_device(Device::Cpu)));
        }
        out
    }

    /// Logits of a batch of rows (dense `[rows, in]`, or sparse), no dropout: scoring.
    pub fn forward(&self, x: &Batch) -> Tensor {
        let (w0, b0) = &self.layers[0];
        let mut h = match x {
            Batch::Dense(x) => x.linear(w0, Some(b0)),
            Batch::Sparse { indices, values, offsets } => bag_layer(w0, indices, values, offsets) + b0,
        };
        for (w, b) in &self.layers[1..] {
            h = h.relu().linear(w, Some(b));
        }
        h
    }
}

/// K models of one architecture as one: layer weights `[K, out, in]` (the first
/// `[K, in, out]` with sparse input), biases `[K, 1, out]`.
pub struct Stack {
    layers: Vec<(Tensor, Tensor)>,
    sparse: bool,
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
        Stack { layers, sparse: models[0].sparse }
    }

    /// Every trainable tensor, weight then bias per layer.
    pub fn params(&self) -> Vec<&Tensor> {
        self.layers.iter().flat_map(|(w, b)| [w, b]).collect()
    }

    /// Model k's current weights, copied.
    pub fn model(&self, k: i64) -> Mlp {
        let layers = tch::no_grad(|| {
            self.layers.iter().map(|(w, b)| (w.get(k).copy(), b.get(k).squeeze_dim(0).copy())).collect()
        });
        Mlp { layers, sparse: self.sparse }
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
        let layers = self.layers.iter().map(|(w, b)| (w.get(k).detach(), b.get(k).squeeze_dim(0).detach())).collect();
        Mlp { layers, sparse: self.sparse }
    }

    /// Training forward of a batch (dense `[K, batch, in]`, or sparse bags of K*batch
    /// rows with model k's column ids shifted by k*in), each model its own rows, with
    /// each model's dropout.
    pub fn forward_train(&self, x: &Batch, dropout: Option<&DropoutRng>, step: u64) -> Tensor {
        let last = self.layers.len() - 1;
        let mut h = Tensor::new();
        for (i, (w, b)) in self.layers.iter().enumerate() {
            h = match (i, x) {
                (0, Batch::Dense(x)) => b.baddbmm(x, &w.transpose(1, 2), 1.0, 1.0),
                (0, Batch::Sparse { indices, values, offsets }) => {
                    let size = w.size();
                    let table = w.view([size[0] * size[1], size[2]]);
                    bag_layer(&table, indices, values, offsets).view([size[0], -1, size[2]]) + b
                }
                _ => b.baddbmm(&h, &w.transpose(1, 2), 1.0, 1.0),
            };
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
