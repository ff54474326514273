//! The connection to the coordinator (address, API token, TLS) and the one way a
//! failed call becomes a one-line error.

use std::path::PathBuf;

use anyhow::Context;
use sweep_client::{read_token, Authed, Bearer, TlsArgs};
use sweep_proto as pb;

#[derive(Debug, Clone, clap::Args)]
pub struct Conn {
    /// Coordinator URL.
    #[arg(long, global = true, env = "SWEEP_COORDINATOR", default_value = "http://127.0.0.1:50051")]
    pub coordinator: String,
    /// File holding the API token (or set SWEEP_TOKEN); default ~/.config/sweep/token.
    #[arg(long, global = true, env = "SWEEP_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    #[command(flatten)]
    pub tls: TlsArgs,
}

pub type Client = pb::client_service_client::ClientServiceClient<Authed>;

pub fn default_token_file() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/sweep/token"))
}

impl Conn {
    /// A coordinator on this machine with no TLS (`sweep local`).
    pub fn local(coordinator: String, token_file: PathBuf) -> Conn {
        Conn { coordinator, token_file: Some(token_file), tls: TlsArgs::default() }
    }

    async fn channel(&self) -> anyhow::Result<(tonic::transport::Channel, Bearer)> {
        let file = self.token_file.clone().or_else(default_token_file);
        let token = read_token("SWEEP_TOKEN", file.as_deref(), "API token")?;
        let channel = sweep_client::connect::endpoint(&self.coordinator, &self.tls)?
            .connect()
            .await
            .with_context(|| format!("cannot reach the coordinator at {}", self.coordinator))?;
        Ok((channel, Bearer::new(&token)?))
    }

    pub async fn connect(&self) -> anyhow::Result<Client> {
        let (channel, bearer) = self.channel().await?;
        Ok(pb::client_service_client::ClientServiceClient::with_interceptor(channel, bearer)
            .max_decoding_message_size(64 * 1024 * 1024))
    }

    /// The blob service (uploads of data files, downloads of models).
    pub async fn blobs(&self) -> anyhow::Result<sweep_client::blobs::BlobClient> {
        let (channel, bearer) = self.channel().await?;
        Ok(pb::blob_service_client::BlobServiceClient::with_interceptor(channel, bearer))
    }
}

/// One line for a failed call: the server's message without tonic's wrapping.
pub fn status_error(what: &str, s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{what}: {} ({:?})", s.message(), s.code())
}

/// A sweep and its trials in grid order (`what` names the command in errors).
pub async fn sweep_and_trials(
    c: &mut Client,
    sweep_id: &str,
    what: &str,
) -> anyhow::Result<(pb::Sweep, Vec<pb::Trial>)> {
    let sweep = c
        .get_sweep(pb::GetSweepRequest { sweep_id: sweep_id.into() })
        .await
        .map_err(|s| status_error(what, s))?
        .into_inner();
    let trials = c
        .list_trials(pb::ListTrialsRequest { sweep_id: sweep_id.into() })
        .await
        .map_err(|s| status_error(what, s))?
        .into_inner()
        .trials;
    Ok((sweep, trials))
}
