//! The blob service: stat, chunked upload (resumable), download. The CLI calls it with
//! an API token, workers with their credential.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use sweep_proto as pb;
use tonic::{Request, Response, Status, Streaming};
use tracing::instrument;

use super::AppState;
use crate::auth;
use crate::error::{CoordinatorError, Result};

use sweep_client::blobs::CHUNK;

#[derive(Clone)]
pub struct BlobApi {
    pub state: Arc<AppState>,
}

impl BlobApi {
    /// An API token (admin or client) or a worker's credential.
    async fn authorize<T>(&self, req: &Request<T>) -> Result<()> {
        let worker_token = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("Bearer swp_worker_"));
        if worker_token {
            auth::worker(&self.state.db, &self.state.worker_auth, req).await.map(|_| ())
        } else {
            auth::client(&self.state.db, req).await.map(|_| ())
        }
    }
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::BlobChunk, Status>> + Send>>;

#[tonic::async_trait]
impl pb::blob_service_server::BlobService for BlobApi {
    #[instrument(skip_all)]
    async fn stat_blob(&self, req: Request<pb::StatBlobRequest>) -> Result<Response<pb::StatBlobResponse>, Status> {
        self.authorize(&req).await?;
        let r = req.into_inner();
        let blobs = &self.state.blobs;
        blobs.check(&r.sha256, r.size)?;
        let stored = blobs.stored(&r.sha256).await?.is_some();
        let received = if stored { r.size } else { blobs.received(&r.sha256).await };
        Ok(Response::new(pb::StatBlobResponse { stored, received, max_bytes: blobs.max_bytes }))
    }

    #[instrument(skip_all)]
    async fn put_blob(&self, req: Request<Streaming<pb::BlobChunk>>) -> Result<Response<pb::PutBlobResponse>, Status> {
        self.authorize(&req).await?;
        let mut chunks = req.into_inner();
        let first =
            chunks.next().await.ok_or_else(|| CoordinatorError::InvalidArgument("put_blob: no chunk".into()))??;
        let (sha, size) = (first.sha256.clone(), first.size);
        let rest = chunks.map(|c| {
            c.map(|c| (c.offset, c.data))
                .map_err(|s| CoordinatorError::FailedPrecondition(format!("upload interrupted: {}", s.message())))
        });
        self.state.blobs.put(&sha, size, first.offset, first.data, rest).await?;
        Ok(Response::new(pb::PutBlobResponse { sha256: sha, size }))
    }

    type GetBlobStream = ChunkStream;

    #[instrument(skip_all)]
    async fn get_blob(&self, req: Request<pb::GetBlobRequest>) -> Result<Response<ChunkStream>, Status> {
        self.authorize(&req).await?;
        let r = req.into_inner();
        let sha = r.sha256.clone();
        let size =
            self.state.blobs.stored(&sha).await?.ok_or_else(|| CoordinatorError::NotFound(format!("blob {sha}")))?;
        let body = self.state.blobs.get(&sha, r.offset).await?;
        let mut offset = r.offset;
        let stream = body.flat_map(move |piece| {
            let out: Vec<Result<pb::BlobChunk, Status>> = match piece {
                Ok(bytes) => bytes
                    .chunks(CHUNK)
                    .map(|c| {
                        let chunk = pb::BlobChunk { sha256: sha.clone(), size, offset, data: c.to_vec() };
                        offset += c.len() as u64;
                        Ok(chunk)
                    })
                    .collect(),
                Err(e) => vec![Err(e.into())],
            };
            futures::stream::iter(out)
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
