//! Enrolment: the credential saved by an earlier run, or a registration with the join
//! token (saved when asked, since a fleet instance's join token is single-use).

use std::time::Duration;

use anyhow::Context;
use sweep_client::{read_token, with_retry, Bearer};
use sweep_proto as pb;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::AgentSettings;

/// What `--credential-file` holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct Credential {
    worker_id: String,
    worker_token: String,
    heartbeat_ms: u32,
}

/// This worker's bearer credential and heartbeat period.
pub(super) async fn enrol(
    s: &AgentSettings,
    channel: Channel,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Bearer, Duration)> {
    if let Some(path) = s.credential_file.as_deref().filter(|p| p.exists()) {
        let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        let c: Credential =
            serde_json::from_str(&text).with_context(|| format!("{}: not a credential", path.display()))?;
        tracing::info!(worker_id = %c.worker_id, file = %path.display(), "using the saved worker credential");
        return Ok((Bearer::new(&c.worker_token)?, Duration::from_millis(c.heartbeat_ms as u64)));
    }
    let join = read_token("SWEEP_JOIN_TOKEN", s.join_token_file.as_deref(), "join token")?;
    let reg = register(s, channel, &join, shutdown).await?;
    let bearer = Bearer::new(&reg.worker_token)?;
    let heartbeat = Duration::from_millis(reg.heartbeat_ms as u64);
    if let Some(path) = s.credential_file.as_deref() {
        let c = Credential { worker_id: reg.worker_id, worker_token: reg.worker_token, heartbeat_ms: reg.heartbeat_ms };
        sweep_client::files::write_atomic(path, serde_json::to_string(&c)?.as_bytes(), 0o600)
            .with_context(|| format!("write {}", path.display()))?;
    }
    Ok((bearer, heartbeat))
}

/// Enrols with the join token; returns the registration (this worker's own credential).
async fn register(
    s: &AgentSettings,
    channel: Channel,
    join: &str,
    shutdown: &CancellationToken,
) -> anyhow::Result<pb::RegisterResponse> {
    let host = hostname::get().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
    let gpus: Vec<String> = if tch::Cuda::is_available() {
        (0..tch::Cuda::device_count()).map(|i| format!("cuda:{i}")).collect()
    } else {
        vec![]
    };
    let req = pb::RegisterRequest {
        name: s.name.clone().unwrap_or_else(|| format!("{host}-{}", std::process::id())),
        host,
        gpus,
        slots: s.slots,
        version: env!("CARGO_PKG_VERSION").into(),
    };
    let joiner = pb::agent_service_client::AgentServiceClient::with_interceptor(channel.clone(), Bearer::new(join)?);
    let reg = with_retry("register", shutdown, || {
        let (mut c, req) = (joiner.clone(), req.clone());
        async move { c.register(req).await }
    })
    .await
    .context("register with the coordinator")?
    .into_inner();
    tracing::info!(worker_id = %reg.worker_id, name = %req.name, slots = s.slots, "registered");
    Ok(reg)
}
