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
    /// The directory data files named by path must be under (an agent's: a sweep's
    /// paths come from whoever holds a client token); None reads any path (offline runs
    /// of the user's own config).
    confined: Option<PathBuf>,
}

impl BlobCache {
    pub fn new(dir: PathBuf, max_bytes: u64, client: BlobClient) -> anyhow::Result<BlobCache> {
        use anyhow::Context;
        std::fs::create_dir_all(&dir).with_context(|| format!("cache directory {}", dir.display()))?;
        Ok(BlobCache { dir, max_bytes, client, fetching: Default::default(), confined: None })
    }

    /// Reads data files named by path only from under `root` (see [`confine`]).
    pub fn confined_to(mut self, root: PathBuf) -> BlobCache {
        self.confined = Some(root);
        self
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

    /// A model directory uploaded as one archive (`sweep_client::archive`), unpacked once
    /// beside the blobs (`<sha>.d`; the archive may then be trimmed from the cache, the
    /// directory stays for the trials that follow).
    pub async fn model_dir(&self, sha: &str) -> Result<PathBuf, TrainError> {
        let dir = self.dir.join(format!("{sha}.d"));
        if dir.is_dir() {
            touch_dir(&dir);
            return Ok(dir);
        }
        let archive = self.path(sha).await?;
        let out = dir.clone();
        tokio::task::spawn_blocking(move || {
            sweep_client::archive::unpack_model_dir(&archive, &sweep_file::ENCODER_FILES, &out)
        })
        .await
        .map_err(|e| TrainError::Transient(format!("unpack {sha}: {e}")))?
        .map_err(|e| TrainError::User(format!("model.path: {e:#}")))?;
        tracing::info!(%sha, dir = %dir.display(), "model directory unpacked");
        Ok(dir)
    }

    /// Puts local paths in place of a dataset's blobs (fetched into the cache) and of
    /// its `s3://` files (read from the object store): what a worker does before anything
    /// checks or reads the config.
    /// Any other file it names must be under the data directory it is confined to.
    pub async fn materialize(&self, d: &mut sweep_file::DatasetConfig) -> Result<(), TrainError> {
        let local = |p: PathBuf| p.to_string_lossy().into_owned();
        if let Some(root) = &self.confined {
            confine(d, root)?;
        }
        let remote: Vec<(&'static str, String)> =
            sweep_file::data_files(d).into_iter().filter(|(_, p)| sweep_file::is_remote(p)).collect();
        for (role, uri) in remote {
            let path = local(self.s3_path(&uri).await?);
            sweep_file::set_data_file(d, role, path).map_err(TrainError::User)?;
        }
        for (role, sha) in std::mem::take(&mut d.blobs) {
            let path = if role == "encoder" { self.model_dir(&sha).await? } else { self.path(&sha).await? };
            sweep_file::set_data_file(d, &role, local(path)).map_err(TrainError::User)?;
        }
        Ok(())
    }

    /// A local copy of the object `s3://bucket/key` (credentials, region and endpoint from
    /// the usual `AWS_*` environment), fetched once per version of the object: the cached
    /// file is named by the URI, the object's ETag and size, and its size is checked on
    /// every use.
    pub async fn s3_path(&self, uri: &str) -> Result<PathBuf, TrainError> {
        use futures::StreamExt;
        use object_store::ObjectStore;
        use sha2::Digest;
        use tokio::io::AsyncWriteExt;
        let user = |why: String| TrainError::User(format!("{uri}: {why}"));
        let transient = |e: object_store::Error| TrainError::Transient(format!("{uri}: {e}"));
        let (bucket, key) = uri
            .strip_prefix("s3://")
            .and_then(|r| r.split_once('/'))
            .filter(|(b, k)| !b.is_empty() && !k.is_empty())
            .ok_or_else(|| user("not s3://bucket/key".into()))?;
        let store = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| user(e.to_string()))?;
        let object = object_store::path::Path::from(key);
        let meta = store.head(&object).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => user("no such object".into()),
            e => transient(e),
        })?;
        let version = format!("{uri}\n{}\n{}", meta.e_tag.unwrap_or_default(), meta.size);
        let name = format!("s3-{}", hex::encode(sha2::Sha256::digest(version.as_bytes())));
        let path = self.dir.join(name);
        let _one = self.fetching.lock().await;
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == meta.size) {
            touch(&path);
            return Ok(path);
        }
        let tmp = path.with_extension("part");
        let io = |e: std::io::Error| TrainError::Transient(format!("{}: {e}", tmp.display()));
        let mut out = tokio::fs::File::create(&tmp).await.map_err(io)?;
        let mut body = store.get(&object).await.map_err(transient)?.into_stream();
        while let Some(chunk) = body.next().await {
            out.write_all(&chunk.map_err(transient)?).await.map_err(io)?;
        }
        out.flush().await.map_err(io)?;
        drop(out);
        tokio::fs::rename(&tmp, &path).await.map_err(io)?;
        tracing::info!(%uri, bytes = meta.size, "object fetched into the cache");
        self.trim(&path);
        Ok(path)
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

    /// Removes the least recently used files until the cache fits (featurized datasets,
    /// which the trainer writes here, included).
    pub fn trim_to_limit(&self) {
        self.trim(Path::new(""));
    }

    /// Removes the least recently used files until the cache fits (never `keep`).
    fn trim(&self, keep: &Path) {
        trim_dir(&self.dir, self.max_bytes, keep);
    }
}

/// Removes the least recently used files and unpacked model directories of `dir` until
/// they take at most `max_bytes` (never `keep`).
fn trim_dir(dir: &Path, max_bytes: u64, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    // Files, and the model directories unpacked from archives (`<sha>.d`), by size.
    let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            let modified = m.modified().unwrap_or(std::time::UNIX_EPOCH);
            if m.is_dir() && e.file_name().to_string_lossy().ends_with(".d") {
                return Some((modified, dir_bytes(&e.path()), e.path()));
            }
            m.is_file().then(|| (modified, m.len(), e.path()))
        })
        .collect();
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    files.sort();
    for (_, len, path) in files {
        if total <= max_bytes {
            break;
        }
        let remove = |p: &Path| if p.is_dir() { std::fs::remove_dir_all(p) } else { std::fs::remove_file(p) };
        if path != keep && remove(&path).is_ok() {
            tracing::info!(file = %path.display(), "cache over its limit: removed");
            total -= len;
        }
    }
}

/// Uploads in flight get their own temporary names.
static UPLOADS: AtomicU64 = AtomicU64::new(0);

/// Marks an unpacked model directory as used now.
fn touch_dir(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

/// The bytes of the files directly in `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
    entries.filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum()
}

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

/// Puts in place of every file `d` names by path (not bound to a blob, not `s3://`) its
/// canonical path, refusing any that is not a file under `root` once `..` and symbolic
/// links are resolved: nothing is opened before this check, and the error quotes only
/// the path. The trainer then opens exactly the file checked.
pub fn confine(d: &mut sweep_file::DatasetConfig, root: &Path) -> Result<(), TrainError> {
    let bound: Vec<String> = d.blobs.keys().cloned().collect();
    let unbound = sweep_file::DatasetConfig { blobs: Default::default(), ..d.clone() };
    let named: Vec<(&'static str, String)> = sweep_file::data_files(&unbound)
        .into_iter()
        .filter(|(role, p)| !bound.iter().any(|b| b == role) && !sweep_file::is_remote(p))
        .collect();
    if named.is_empty() {
        return Ok(());
    }
    let refuse = |role: &str, p: &str, why: &str| {
        TrainError::User(format!(
            "dataset.{role}: `{p}` {why}: this worker reads files named by path only under its data directory \
             {} (--data or SWEEP_DATA_DIR); submit the sweep without --no-upload to send the file by hash",
            root.display()
        ))
    };
    let root = std::fs::canonicalize(root).map_err(|_| refuse(named[0].0, &named[0].1, "is not readable here"))?;
    for (role, p) in named {
        // As the trainer resolves it: absolute, else under the data directory.
        let path = Path::new(&p);
        let full = if path.is_absolute() { path.to_path_buf() } else { root.join(path) };
        let real = std::fs::canonicalize(&full).map_err(|_| refuse(role, &p, "is not a file under it"))?;
        if !real.starts_with(&root) || !real.is_file() {
            return Err(refuse(role, &p, "is outside it"));
        }
        sweep_file::set_data_file(d, role, real.to_string_lossy().into_owned()).map_err(TrainError::User)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimming_removes_the_least_recently_used_files_and_model_directories_first() {
        let dir = tempfile::tempdir().unwrap();
        let at = |secs: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000 + secs);
        let file = |name: &str, secs: u64| {
            std::fs::write(dir.path().join(name), vec![0u8; 100]).unwrap();
            std::fs::File::options().append(true).open(dir.path().join(name)).unwrap().set_modified(at(secs)).unwrap();
        };
        let model = dir.path().join("ab.d");
        std::fs::create_dir(&model).unwrap();
        std::fs::write(model.join("model.safetensors"), vec![0u8; 250]).unwrap();
        std::fs::File::open(&model).unwrap().set_modified(at(1)).unwrap();
        file("old", 0);
        file("new", 5);
        file("kept", 0);
        // 550 bytes against a limit of 300: `old` (oldest, 100) then the directory (250) go;
        // `kept` is kept although as old.
        trim_dir(dir.path(), 300, &dir.path().join("kept"));
        assert!(!dir.path().join("old").exists() && !model.exists());
        assert!(dir.path().join("new").exists() && dir.path().join("kept").exists());
    }
}
