//! `GET /v1/artifacts/sweep-worker` on the gRPC port: the coordinator's worker build,
//! for the bootstrap to download. It is no secret (the bootstrap pins its SHA-256, so a
//! tampered copy is refused); it is served on the same port so an instance needs to
//! reach one port only, under the same TLS.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::state::AppState;

pub const WORKER_PATH: &str = "/v1/artifacts/sweep-worker";

async fn worker(State(state): State<Arc<AppState>>) -> Response {
    match state.fleets.worker_binary().await {
        Ok(w) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (header::ETAG, format!("\"{}\"", w.sha256)),
            ],
            w.bytes.clone(),
        )
            .into_response(),
        Err(e) => (StatusCode::NOT_FOUND, e).into_response(),
    }
}

pub fn routes(state: Arc<AppState>) -> axum::Router {
    axum::Router::new().route(WORKER_PATH, get(worker)).with_state(state)
}
