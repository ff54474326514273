//! The content-addressed blob store: datasets and model artifacts by SHA-256, in a
//! directory on the coordinator's host (default) or under `s3://bucket/prefix`, both
//! through `object_store`. Uploads arrive in chunks into a staging file (so an
//! interrupted upload resumes where it stopped), are checked against their hash, then
//! move into the store under `sha256/<first two hex>/<hash>`. Nothing is stored under a
//! name that is not its content's hash.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use object_store::path::Path as StorePath;
use object_store::{GetOptions, GetRange, ObjectStore, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{CoordinatorError, Result};

/// Whether `s` is a SHA-256 in lowercase hex.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn invalid(msg: impl Into<String>) -> CoordinatorError {
    CoordinatorError::InvalidArgument(msg.into())
}

fn store_error(e: object_store::Error) -> CoordinatorError {
    CoordinatorError::Unexpected(anyhow::anyhow!("blob store: {e}"))
}

pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// Where unfinished uploads wait (on this host).
    staging: PathBuf,
    pub max_bytes: u64,
    /// Blobs being uploaded now (one upload per blob at a time).
    busy: Mutex<HashSet<String>>,
    /// Where the store is, for logs.
    pub location: String,
}

/// Releases a blob's upload slot.
struct Busy<'a>(&'a Blobs, String);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.lock().expect("busy").remove(&self.1);
    }
}

/// Where a blob lives in the store; refused (never a panic, never a path of some other
/// shape) unless `sha` is a SHA-256 in lowercase hex.
fn key(sha: &str) -> Result<StorePath> {
    if !is_sha256(sha) {
        let shown: String = sha.chars().take(80).collect();
        return Err(invalid(format!("sha256: `{}` is not a SHA-256 in lowercase hex", shown.escape_debug())));
    }
    Ok(StorePath::from(format!("sha256/{}/{sha}", &sha[..2])))
}

impl Blobs {
    /// `location`: a directory, or `s3://bucket[/prefix]` (credentials, region and
    /// endpoint from the usual `AWS_*` environment).
    pub fn open(location: &str, staging: Option<&Path>, max_bytes: u64) -> anyhow::Result<Blobs> {
        use anyhow::Context;
        let store: Arc<dyn ObjectStore> = if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            anyhow::ensure!(!bucket.is_empty(), "--blob-store {location}: no bucket");
            let s3 = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .with_context(|| format!("--blob-store {location}"))?;
            let prefix = prefix.trim_matches('/');
            if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
            }
        } else {
            std::fs::create_dir_all(location).with_context(|| format!("--blob-store {location}"))?;
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(location)?)
        };
        let staging = match staging {
            Some(p) => p.to_path_buf(),
            None if !location.starts_with("s3://") => Path::new(location).join(".staging"),
            None => std::env::temp_dir().join("sweep-blob-staging"),
        };
        std::fs::create_dir_all(&staging).with_context(|| format!("blob staging {}", staging.display()))?;
        Ok(Blobs { store, staging, max_bytes, busy: Mutex::default(), location: location.to_string() })
    }

    /// The stored size of a blob, if it is stored.
    pub async fn stored(&self, sha: &str) -> Result<Option<u64>> {
        match self.store.head(&key(sha)?).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    fn partial(&self, sha: &str) -> PathBuf {
        self.staging.join(format!("{sha}.part"))
    }

    /// Bytes of an unfinished upload held for `sha`.
    pub async fn received(&self, sha: &str) -> u64 {
        tokio::fs::metadata(self.partial(sha)).await.map(|m| m.len()).unwrap_or(0)
    }

    /// Deletes unfinished uploads nobody has added to for `older_than` (a client that gave
    /// up, or a flood of partial uploads); returns how many. One being uploaded now stays.
    pub async fn expire_partials(&self, older_than: std::time::Duration) -> Result<usize> {
        let io = |e: std::io::Error| CoordinatorError::Unexpected(anyhow::anyhow!("staging: {e}"));
        let mut n = 0;
        let mut dir = tokio::fs::read_dir(&self.staging).await.map_err(io)?;
        while let Some(entry) = dir.next_entry().await.map_err(io)? {
            let name = entry.file_name();
            let Some(sha) = name.to_str().and_then(|n| n.strip_suffix(".part")) else { continue };
            if self.busy.lock().expect("busy").contains(sha) {
                continue;
            }
            let idle = entry.metadata().await.and_then(|m| m.modified()).map(|t| t.elapsed().unwrap_or_default());
            if idle.is_ok_and(|idle| idle > older_than) && tokio::fs::remove_file(entry.path()).await.is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Checks a blob's name and size before any byte is taken.
    pub fn check(&self, sha: &str, size: u64) -> Result<()> {
        if !is_sha256(sha) {
            return Err(invalid(format!("sha256: `{sha}` is not a SHA-256 in lowercase hex")));
        }
        if size > self.max_bytes {
            return Err(CoordinatorError::ResourceExhausted(format!(
                "blob of {size} bytes is larger than this coordinator's --max-blob-bytes {}: refused, nothing stored",
                self.max_bytes
            )));
        }
        Ok(())
    }

    /// Takes an upload: `chunks` in order from the staging file's current length;
    /// once `size` bytes are in, checks the hash and stores the blob.
    pub async fn put<S>(&self, sha: &str, size: u64, first_offset: u64, first: Vec<u8>, mut rest: S) -> Result<()>
    where
        S: Stream<Item = Result<(u64, Vec<u8>)>> + Unpin,
    {
        self.check(sha, size)?;
        if self.stored(sha).await?.is_some() {
            return Ok(());
        }
        if !self.busy.lock().expect("busy").insert(sha.to_string()) {
            return Err(CoordinatorError::FailedPrecondition(format!("blob {sha} is being uploaded by another call")));
        }
        let _busy = Busy(self, sha.to_string());
        let path = self.partial(sha);
        let io = |e: std::io::Error| CoordinatorError::Unexpected(anyhow::anyhow!("staging {}: {e}", path.display()));
        let mut file = tokio::fs::OpenOptions::new().create(true).append(true).open(&path).await.map_err(io)?;
        let mut have = file.metadata().await.map_err(io)?.len();
        let mut next = Some((first_offset, first));
        while let Some((offset, data)) = next.take() {
            if offset != have {
                return Err(CoordinatorError::FailedPrecondition(format!(
                    "blob {sha}: chunk at offset {offset}, but {have} bytes are held: resume at {have}"
                )));
            }
            if have + data.len() as u64 > size {
                drop(file);
                let _ = tokio::fs::remove_file(&path).await;
                return Err(invalid(format!("blob {sha}: more than the {size} bytes announced")));
            }
            file.write_all(&data).await.map_err(io)?;
            have += data.len() as u64;
            next = match rest.next().await {
                Some(chunk) => Some(chunk?),
                None => None,
            };
        }
        file.flush().await.map_err(io)?;
        file.sync_all().await.map_err(io)?;
        drop(file);
        if have < size {
            return Err(CoordinatorError::FailedPrecondition(format!(
                "blob {sha}: upload stopped at {have} of {size} bytes: resume at {have}"
            )));
        }
        let (actual, _) = sweep_client::blobs::hash_file(&path).await.map_err(io)?;
        if actual != sha {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(invalid(format!("blob {sha}: the bytes sent hash to {actual}: nothing stored")));
        }
        self.store_file(sha, &path).await?;
        let _ = tokio::fs::remove_file(&path).await;
        tracing::info!(%sha, bytes = size, "blob stored");
        Ok(())
    }

    async fn store_file(&self, sha: &str, path: &Path) -> Result<()> {
        let io = |e: std::io::Error| CoordinatorError::Unexpected(anyhow::anyhow!("staging {}: {e}", path.display()));
        let upload = self.store.put_multipart(&key(sha)?).await.map_err(store_error)?;
        let mut writer = WriteMultipart::new(upload);
        let mut file = tokio::fs::File::open(path).await.map_err(io)?;
        let mut buf = vec![0u8; 8 << 20];
        loop {
            let n = file.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                break;
            }
            writer.wait_for_capacity(4).await.map_err(store_error)?;
            writer.write(&buf[..n]);
        }
        writer.finish().await.map_err(store_error)?;
        Ok(())
    }

    /// Deletes a blob that nothing refers to any more (a replaced checkpoint, a model no
    /// trial keeps): not while it is being uploaded, and not while a sweep's data, a
    /// checkpoint, a kept model or an open trial's config names it. True when deleted.
    /// (What names a blob is written by other calls; one that names it between the check
    /// and the delete, e.g. a submit right after the same bytes were uploaded, is the
    /// window left: see docs/guarantees.md.)
    pub async fn delete_unreferenced(&self, db: &sqlx::PgPool, sha: &str) -> Result<bool> {
        key(sha)?;
        if self.busy.lock().expect("busy").contains(sha) || crate::db::blobs::referenced(db, sha).await? {
            tracing::info!(blob = %sha, "blob kept: something still refers to it");
            return Ok(false);
        }
        self.delete(sha).await?;
        Ok(true)
    }

    /// Deletes a blob whatever refers to it (only through [`Blobs::delete_unreferenced`]).
    async fn delete(&self, sha: &str) -> Result<()> {
        match self.store.delete(&key(sha)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error(e)),
        }
    }

    /// A stored blob from `offset`, as a stream of byte chunks.
    pub async fn get(&self, sha: &str, offset: u64) -> Result<impl Stream<Item = Result<bytes::Bytes>> + use<>> {
        let key = key(sha)?;
        let opts = GetOptions { range: (offset > 0).then_some(GetRange::Offset(offset)), ..Default::default() };
        let got = match self.store.get_opts(&key, opts).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Err(CoordinatorError::NotFound(format!("blob {sha}"))),
            Err(e) => return Err(store_error(e)),
        };
        Ok(got.into_stream().map(|r| r.map_err(store_error)))
    }
}
