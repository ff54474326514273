//! The GPU as NVML sees it: free memory (how many models `--fuse auto` stacks) and the
//! memory-in-use metric.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// GPU memory in use, by GPU index, from NVML (the driver's own count, so it includes
/// libtorch's cached blocks and other processes' memory).
const GPU_MEMORY_USED: &str = "sweep_worker_gpu_memory_used_bytes";

/// Bytes one model of a stack needs on the device, roughly: weights, gradients, AdamW's
/// two moments and a best-epoch copy (5 x 4 bytes a parameter), and a batch's activations
/// with their gradients and the dropout and loss temporaries (about 40 bytes per hidden
/// unit and per label, per row).
pub fn model_bytes(features: usize, hidden: &[u32], labels: usize, batch: usize) -> u64 {
    let mut widths = vec![features as u64];
    widths.extend(hidden.iter().map(|&h| h as u64));
    widths.push(labels as u64);
    let params: u64 = widths.windows(2).map(|w| w[0] * w[1] + w[1]).sum();
    let units: u64 = hidden.iter().map(|&h| h as u64).sum::<u64>() + labels as u64;
    params * 4 * 5 + batch as u64 * units * 40
}

/// How many models of `per_model` bytes `--fuse auto` stacks in `free` bytes: what fits
/// in 80% of it, at least one, at most `most`.
pub fn auto_k(free: u64, per_model: u64, most: usize) -> usize {
    ((free as f64 * 0.8 / per_model.max(1) as f64) as usize).clamp(1, most.max(1))
}

/// Free memory on the CUDA device, from NVML; None on CPU or without a driver.
pub fn free_bytes(device: tch::Device) -> Option<u64> {
    let tch::Device::Cuda(index) = device else { return None };
    let nvml = nvml_wrapper::Nvml::init().ok()?;
    let dev = nvml.device_by_index(index as u32).ok()?;
    dev.memory_info().ok().map(|m| m.free)
}

/// Samples GPU memory every 5 s while the worker runs; does nothing where NVML cannot be
/// loaded (no NVIDIA driver).
pub(super) async fn memory_loop(stop: CancellationToken) {
    let nvml = match tokio::task::spawn_blocking(nvml_wrapper::Nvml::init).await {
        Ok(Ok(nvml)) => std::sync::Arc::new(nvml),
        Ok(Err(e)) => return tracing::info!(error = %e, "NVML not available: no GPU memory metric"),
        Err(_) => return,
    };
    loop {
        let n = nvml.clone();
        let used = tokio::task::spawn_blocking(move || {
            let count = n.device_count().unwrap_or(0);
            (0..count)
                .filter_map(|i| Some((i, n.device_by_index(i).ok()?.memory_info().ok()?.used)))
                .collect::<Vec<_>>()
        });
        for (gpu, bytes) in used.await.unwrap_or_default() {
            metrics::gauge!(GPU_MEMORY_USED, "gpu" => gpu.to_string()).set(bytes as f64);
        }
        tokio::select! { _ = tokio::time::sleep(Duration::from_secs(5)) => {}, _ = stop.cancelled() => return }
    }
}
