//! Connection to the coordinator: address, credential, TLS.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use sweep_proto as pb;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

#[derive(Debug, Clone, clap::Args)]
pub struct Conn {
    /// Coordinator URL.
    #[arg(long, global = true, env = "SWEEP_COORDINATOR", default_value = "http://127.0.0.1:50051")]
    pub coordinator: String,
    /// File holding the API token (or set SWEEP_TOKEN); default ~/.config/sweep/token.
    #[arg(long, global = true, env = "SWEEP_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// CA certificate (PEM) to verify the coordinator's TLS certificate.
    #[arg(long, global = true, env = "SWEEP_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS.
    #[arg(long, global = true, env = "SWEEP_TLS_CLIENT_CERT")]
    pub tls_client_cert: Option<PathBuf>,
    #[arg(long, global = true, env = "SWEEP_TLS_CLIENT_KEY")]
    pub tls_client_key: Option<PathBuf>,
}

#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

pub type Client = pb::client_service_client::ClientServiceClient<InterceptedService<Channel, Bearer>>;

pub fn default_token_file() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/sweep/token"))
}

impl Conn {
    fn token(&self) -> anyhow::Result<String> {
        if let Ok(t) = std::env::var("SWEEP_TOKEN") {
            return Ok(t.trim().to_string());
        }
        let path = self
            .token_file
            .clone()
            .or_else(default_token_file)
            .context("no API token: set SWEEP_TOKEN or --token-file")?;
        let t = std::fs::read_to_string(&path)
            .with_context(|| format!("no API token: set SWEEP_TOKEN or write one to {}", path.display()))?;
        Ok(t.trim().to_string())
    }

    pub async fn connect(&self) -> anyhow::Result<Client> {
        let token = self.token()?;
        let mut ep = Endpoint::from_shared(self.coordinator.clone())
            .with_context(|| format!("--coordinator `{}` is not a URL", self.coordinator))?
            .connect_timeout(Duration::from_secs(5));
        if self.ca_file.is_some() || self.tls_client_cert.is_some() {
            let read = |p: &PathBuf| std::fs::read(p).with_context(|| format!("read {}", p.display()));
            let mut tls = ClientTlsConfig::new().with_native_roots();
            if let Some(ca) = &self.ca_file {
                tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
            }
            match (&self.tls_client_cert, &self.tls_client_key) {
                (Some(cert), Some(key)) => {
                    tls = tls.identity(tonic::transport::Identity::from_pem(read(cert)?, read(key)?));
                }
                (None, None) => {}
                _ => anyhow::bail!("--tls-client-cert and --tls-client-key go together"),
            }
            ep = ep.tls_config(tls)?;
        }
        let channel =
            ep.connect().await.with_context(|| format!("cannot reach the coordinator at {}", self.coordinator))?;
        let value: MetadataValue<Ascii> = format!("Bearer {token}").parse().context("the API token is not ASCII")?;
        Ok(pb::client_service_client::ClientServiceClient::with_interceptor(channel, Bearer(value))
            .max_decoding_message_size(64 * 1024 * 1024))
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
