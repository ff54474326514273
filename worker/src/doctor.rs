//! `sweep-worker doctor`: what this machine gives the trainer, checked on the device it
//! would use, as one JSON object: the device and its memory, the K `--fuse auto` would
//! stack for a model, whether the dropout masks drawn on the device equal the CPU's
//! bit for bit (they must: fused, resumed and CPU runs rely on it), and the sparse first
//! layer against a dense `x @ W.T` on the device, with whether its backward repeats
//! exactly (on CUDA `embedding_bag`'s backward adds with atomics, so it need not).

use serde_json::{json, Value};
use sweep_trainer::data::{Bag, Csr};
use sweep_trainer::model::{Batch, DropoutRng, Mlp, Stack};
use tch::{Device, Kind, Tensor};

/// The model `--fuse auto` is sized for: inputs, hidden widths, labels, batch rows.
pub struct ModelShape {
    pub features: usize,
    pub hidden: Vec<u32>,
    pub labels: usize,
    pub batch: usize,
}

fn dropout_matches_cpu(device: Device) -> bool {
    let seeds = [3u64, 11, 12345];
    let ones = |d: Device| Tensor::ones([3, 256, 1024], (Kind::Float, d));
    let on = |d: Device| DropoutRng::new(&seeds, &[0.1, 0.3, 0.5], d).expect("dropout").apply(&ones(d), 7, 1);
    on(device).to_device(Device::Cpu).equal(&on(Device::Cpu))
}

/// A random sparse batch (`rows` x `cols`, about `per_row` entries a row).
fn random_rows(rows: usize, cols: usize, per_row: usize, seed: u64) -> Csr {
    let mut rng = sweep_trainer::data::SplitMix64(seed);
    let mut csr = Csr::empty(cols);
    for _ in 0..rows {
        let mut entries: Vec<(usize, f64)> = (0..per_row)
            .map(|_| ((rng.next_u64() % cols as u64) as usize, (rng.next_u64() % 1000) as f64 / 1000.0))
            .collect();
        entries.sort_by_key(|e| e.0);
        entries.dedup_by_key(|e| e.0);
        csr.push_row(entries);
    }
    csr
}

/// The sparse layer against dense rows on `device`: the largest |difference| of the
/// outputs, and whether two backward passes give the same gradient.
fn sparse_layer(device: Device) -> (f64, bool) {
    let (rows, cols, out) = (256usize, 20_000usize, 64i64);
    let csr = random_rows(rows, cols, 40, 7);
    let mut bag = Bag::default();
    csr.gather(0..rows, 0, &mut bag);
    let mut dense = vec![0f32; rows * cols];
    for r in 0..rows {
        let (c, v) = csr.row(r);
        c.iter().zip(v).for_each(|(&j, &x)| dense[r * cols + j as usize] = x);
    }
    let dense = Tensor::from_slice(&dense).view([rows as i64, cols as i64]).to_device(device);
    let sparse_model = Mlp::init(cols as i64, &[], out, 1, device, true);
    let dense_model = Mlp::init(cols as i64, &[], out, 1, device, false);
    let a = tch::no_grad(|| sparse_model.forward(&Batch::sparse(clone_bag(&bag), device)));
    let b = tch::no_grad(|| dense_model.forward(&Batch::Dense(dense)));
    let diff = f64::try_from((a - b).abs().max()).unwrap_or(f64::NAN);
    let stack = Stack::new(std::slice::from_ref(&sparse_model));
    let grad = || {
        let params = stack.params();
        sweep_trainer::optim::zero_grad(&params);
        stack.forward_train(&Batch::sparse(clone_bag(&bag), device), None, 0).square().sum(Kind::Float).backward();
        params[0].grad().copy()
    };
    let (g1, g2) = (grad(), grad());
    (diff, g1.equal(&g2))
}

fn clone_bag(b: &Bag) -> Bag {
    Bag { indices: b.indices.clone(), values: b.values.clone(), offsets: b.offsets.clone() }
}

/// The checks, as one JSON object.
pub fn report(device: Device, shape: &ModelShape) -> Value {
    let per_model = crate::agent::model_bytes(shape.features, &shape.hidden, shape.labels, shape.batch);
    let free = crate::agent::gpu_free_bytes(device);
    let (layer_diff, backward_repeats) = sparse_layer(device);
    json!({
        "device": format!("{device:?}"),
        "cuda_devices": tch::Cuda::device_count(),
        "cudnn": tch::Cuda::cudnn_is_available(),
        "gpu_free_bytes": free,
        "fuse_auto": {
            "model": {"features": shape.features, "hidden": shape.hidden, "labels": shape.labels, "batch": shape.batch},
            "bytes_per_model": per_model,
            "k": free.map(|f| crate::agent::auto_k(f, per_model, crate::agent::FUSE_AUTO_MAX)).unwrap_or(1),
        },
        "dropout_masks_equal_cpu": dropout_matches_cpu(device),
        "sparse_layer_max_abs_diff_vs_dense": layer_diff,
        "sparse_layer_backward_repeats_exactly": backward_repeats,
    })
}
