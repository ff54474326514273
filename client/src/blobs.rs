//! Moving files to and from the coordinator's blob store by SHA-256: chunked, skipped
//! when the store has the blob, resumed from what an interrupted upload left, and
//! checked against the hash on the way down.

use std::path::Path;

use anyhow::Context;
use sha2::{Digest, Sha256};
use sweep_proto as pb;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::Authed;

pub type BlobClient = pb::blob_service_client::BlobServiceClient<Authed>;

/// Chunk size on the wire, both ways: well under the smallest message limit a
/// coordinator may be given (1 MiB).
pub const CHUNK: usize = 512 << 10;

/// SHA-256 (lowercase hex) and size of a file.
pub async fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = tokio::fs::File::open(path).await?;
    let mut h = Sha256::new();
    let (mut buf, mut size) = (vec![0u8; CHUNK], 0u64);
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            return Ok((hex::encode(h.finalize()), size));
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
}

/// Uploads a file unless the store has it; returns its (hash, size).
pub async fn upload(c: &mut BlobClient, path: &Path) -> anyhow::Result<(String, u64)> {
    let (sha, size) = hash_file(path).await.with_context(|| format!("read {}", path.display()))?;
    let stat = c
        .stat_blob(pb::StatBlobRequest { sha256: sha.clone(), size })
        .await
        .map_err(|s| anyhow::anyhow!("{}: {}", path.display(), s.message()))?
        .into_inner();
    if stat.stored {
        return Ok((sha, size));
    }
    let mut file = tokio::fs::File::open(path).await.with_context(|| format!("read {}", path.display()))?;
    file.seek(std::io::SeekFrom::Start(stat.received)).await?;
    let (name, sha2) = (path.display().to_string(), sha.clone());
    let chunks = chunks_from(file, sha2, size, stat.received, name);
    c.put_blob(chunks).await.map_err(|s| anyhow::anyhow!("{}: {}", path.display(), s.message()))?;
    Ok((sha, size))
}

/// The file from `offset` as chunks (the first one even when the file is empty).
fn chunks_from(
    mut file: tokio::fs::File,
    sha256: String,
    size: u64,
    mut offset: u64,
    name: String,
) -> impl futures_core::Stream<Item = pb::BlobChunk> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let mut first = true;
        loop {
            let mut data = vec![0u8; CHUNK];
            let n = match file.read(&mut data).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(file = %name, error = %e, "read failed during upload");
                    return;
                }
            };
            if n == 0 && !first {
                return;
            }
            data.truncate(n);
            let chunk = pb::BlobChunk { sha256: sha256.clone(), size, offset, data };
            offset += n as u64;
            first = false;
            if tx.send(chunk).await.is_err() || n == 0 {
                return;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Downloads a blob to `dest` (through `dest.part`, resumed if one is there), checking
/// its hash; a mismatch removes the download and fails.
pub async fn download(c: &mut BlobClient, sha: &str, dest: &Path) -> anyhow::Result<u64> {
    let part = dest.with_extension("part");
    let have = tokio::fs::metadata(&part).await.map(|m| m.len()).unwrap_or(0);
    let mut out = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&part)
        .await
        .with_context(|| format!("write {}", part.display()))?;
    let mut stream = c
        .get_blob(pb::GetBlobRequest { sha256: sha.into(), offset: have })
        .await
        .map_err(|s| anyhow::anyhow!("blob {sha}: {}", s.message()))?
        .into_inner();
    let mut size = have;
    while let Some(chunk) = stream.message().await.map_err(|s| anyhow::anyhow!("blob {sha}: {}", s.message()))? {
        anyhow::ensure!(chunk.offset == size, "blob {sha}: chunk at {} while {size} bytes are in", chunk.offset);
        out.write_all(&chunk.data).await?;
        size += chunk.data.len() as u64;
    }
    out.flush().await?;
    out.sync_all().await?;
    drop(out);
    let (actual, _) = hash_file(&part).await?;
    if actual != sha {
        let _ = tokio::fs::remove_file(&part).await;
        anyhow::bail!("blob {sha}: the bytes received hash to {actual}");
    }
    tokio::fs::rename(&part, dest).await.with_context(|| format!("write {}", dest.display()))?;
    Ok(size)
}
