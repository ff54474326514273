//! The worker's cache of blobs (data files), by SHA-256: fetched from the coordinator
//! on first use, checked against the hash on every use (a corrupted file is fetched
//! again), kept across trials and restarts, trimmed least-recently-used first to a size
//! limit.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sweep_client::blobs::{download, hash_file, BlobClient};
use sweep_trainer::train::TrainError;

pub fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    base.join(".cache/sweep/blobs")
}

pub struct BlobCache {
    dir: PathBuf,
    max_bytes: u64,
    client: BlobClient,
    /// One fetch at a time (two trials needing one file fetch it once).
    fetching: tokio::sync::Mutex<()>,
}

impl BlobCache {
    pub fn new(dir: PathBuf, max_bytes: u64, client: BlobClient) -> anyhow::Result<BlobCache> {
        use anyhow::Context;
        std::fs::create_dir_all(&dir).with_context(|| format!("cache directory {}", dir.display()))?;
        Ok(BlobCache { dir, max_bytes, client, fetching: Default::default() })
    }

    /// A verified local copy of blob `sha`.
    pub async fn path(&self, sha: &str) -> Result<PathBuf, TrainError> {
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TrainError::User(format!("dataset.blobs: `{sha}` is not a SHA-256")));
        }
        let _one = self.fetching.lock().await;
        let path = self.dir.join(sha);
        if path.exists() {
            match hash_file(&path).await {
                Ok((actual, _)) if actual == sha => {
                    touch(&path);
                    return Ok(path);
                }
                Ok((actual, _)) => {
                    tracing::warn!(%sha, %actual, "cached blob is corrupted: fetching it again");
                    let _ = tokio::fs::remove_file(&path).await;
                }
                Err(e) => tracing::warn!(%sha, error = %e, "cached blob unreadable: fetching it again"),
            }
        }
        let bytes = download(&mut self.client.clone(), sha, &path)
            .await
            .map_err(|e| TrainError::Transient(format!("fetch {sha}: {e:#}")))?;
        tracing::info!(%sha, bytes, "blob fetched into the cache");
        self.trim(&path);
        Ok(path)
    }

    /// The trial config with its blobs replaced by local paths.
    pub async fn materialize(&self, config_json: String) -> Result<String, TrainError> {
        let mut cfg = crate::agent::parse_config(&config_json)?;
        if cfg.dataset.blobs.is_empty() {
            return Ok(config_json);
        }
        let blobs = std::mem::take(&mut cfg.dataset.blobs);
        for (role, sha) in &blobs {
            let p = Some(self.path(sha).await?.to_string_lossy().into_owned());
            match role.as_str() {
                "train" => cfg.dataset.train = p,
                "test" => cfg.dataset.test = p,
                "xml" => cfg.dataset.xml = p,
                other => return Err(TrainError::User(format!("dataset.blobs: unknown role `{other}`"))),
            }
        }
        Ok(serde_json::to_string(&cfg).expect("config serialises"))
    }

    /// Packs a model (a tar of `model.json` and `model.safetensors`) and uploads it;
    /// returns its SHA-256.
    pub async fn upload_model(&self, model: &sweep_trainer::artifact::ModelFiles) -> anyhow::Result<String> {
        let n = UPLOADS.fetch_add(1, Ordering::Relaxed);
        let tmp = self.dir.join(format!("model-{}-{n}.tar.tmp", std::process::id()));
        let packed = tmp.clone();
        let model = model.clone();
        tokio::task::spawn_blocking(move || pack_model(&model, &packed)).await??;
        let out = sweep_client::blobs::upload(&mut self.client.clone(), &tmp).await;
        let _ = tokio::fs::remove_file(&tmp).await;
        Ok(out?.0)
    }

    /// Uploads bytes (a checkpoint); returns their SHA-256.
    pub async fn upload_bytes(&self, bytes: &[u8]) -> anyhow::Result<String> {
        let tmp =
            self.dir.join(format!("upload-{}-{}.tmp", std::process::id(), UPLOADS.fetch_add(1, Ordering::Relaxed)));
        tokio::fs::write(&tmp, bytes).await?;
        let out = sweep_client::blobs::upload(&mut self.client.clone(), &tmp).await;
        let _ = tokio::fs::remove_file(&tmp).await;
        Ok(out?.0)
    }

    /// Removes the least recently used files until the cache fits (never `keep`).
    fn trim(&self, keep: &Path) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                m.is_file().then(|| (m.modified().unwrap_or(std::time::UNIX_EPOCH), m.len(), e.path()))
            })
            .collect();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        files.sort();
        for (_, len, path) in files {
            if total <= self.max_bytes {
                break;
            }
            if path != keep && std::fs::remove_file(&path).is_ok() {
                tracing::info!(file = %path.display(), "cache over its limit: removed");
                total -= len;
            }
        }
    }
}

/// Uploads in flight get their own temporary names.
static UPLOADS: AtomicU64 = AtomicU64::new(0);

/// Marks a cached file as used now (its modification time orders the LRU).
fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

/// A model as one tar file: `model.json` and `model.safetensors`.
pub fn pack_model(model: &sweep_trainer::artifact::ModelFiles, path: &Path) -> anyhow::Result<()> {
    use sweep_trainer::artifact::{MANIFEST, WEIGHTS};
    let mut tar = tar::Builder::new(std::fs::File::create(path)?);
    let manifest = serde_json::to_vec_pretty(&model.manifest)?;
    for (name, bytes) in [(MANIFEST, manifest.as_slice()), (WEIGHTS, model.weights.as_slice())] {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, name, bytes)?;
    }
    tar.into_inner()?.sync_all()?;
    Ok(())
}
