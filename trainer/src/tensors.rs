//! Named tensors to and from safetensors bytes (libtorch reads and writes them by path,
//! so through a scratch file of this thread's).

use tch::{Device, Tensor};

/// Named tensors as safetensors bytes (sorted by name; host copies).
pub fn safetensors_bytes(mut named: Vec<(String, Tensor)>) -> anyhow::Result<Vec<u8>> {
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let cpu: Vec<(String, Tensor)> = named.into_iter().map(|(n, t)| (n, t.to_device(Device::Cpu))).collect();
    let tmp = scratch_path("out");
    Tensor::write_safetensors(&cpu, &tmp)?;
    let bytes = std::fs::read(&tmp);
    let _ = std::fs::remove_file(&tmp);
    Ok(bytes?)
}

/// Named tensors from safetensors bytes.
pub fn safetensors_from_bytes(bytes: &[u8]) -> anyhow::Result<Vec<(String, Tensor)>> {
    let tmp = scratch_path("in");
    std::fs::write(&tmp, bytes)?;
    let named = Tensor::read_safetensors(&tmp);
    let _ = std::fs::remove_file(&tmp);
    Ok(named?)
}

/// A temporary file of this thread's.
fn scratch_path(what: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "sweep-{what}-{}-{:?}.safetensors",
        std::process::id(),
        std::thread::current().id()
    ))
}
