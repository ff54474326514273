//! A channel to the coordinator: the URL, optional TLS (a CA to trust, a client
//! certificate for mutual TLS) and the `authorization: Bearer <token>` every call carries.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// TLS settings of a client, as flags with environment fallbacks.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// CA certificate (PEM) to verify the coordinator's TLS certificate.
    #[arg(long, global = true, env = "SWEEP_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; goes with --tls-client-key.
    #[arg(long, global = true, env = "SWEEP_TLS_CLIENT_CERT")]
    pub tls_client_cert: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS; goes with --tls-client-cert.
    #[arg(long, global = true, env = "SWEEP_TLS_CLIENT_KEY")]
    pub tls_client_key: Option<PathBuf>,
}

fn read(p: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("read {}", p.display()))
}

/// An endpoint for `url` with TLS when a CA or a client certificate is given.
pub fn endpoint(url: &str, tls: &TlsArgs) -> anyhow::Result<Endpoint> {
    let mut ep = Endpoint::from_shared(url.to_string())
        .with_context(|| format!("--coordinator `{url}` is not a URL"))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    if tls.ca_file.is_some() || tls.tls_client_cert.is_some() || tls.tls_client_key.is_some() {
        let mut cfg = ClientTlsConfig::new().with_native_roots();
        if let Some(ca) = &tls.ca_file {
            cfg = cfg.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        match (&tls.tls_client_cert, &tls.tls_client_key) {
            (Some(cert), Some(key)) => cfg = cfg.identity(Identity::from_pem(read(cert)?, read(key)?)),
            (None, None) => {}
            _ => anyhow::bail!("--tls-client-cert and --tls-client-key go together"),
        }
        ep = ep.tls_config(cfg)?;
    }
    Ok(ep)
}

/// A channel to one coordinator, or to several that share one database (comma-separated
/// URLs): calls are spread over the ones that answer, so losing one coordinator loses no
/// work (tonic's balanced channel; a call that fails on a dying one is retried by the caller).
/// Connects lazily: the first call connects, and a lost connection is re-established.
pub fn channel(urls: &str, tls: &TlsArgs) -> anyhow::Result<Channel> {
    let endpoints = urls.split(',').map(str::trim).filter(|u| !u.is_empty()).map(|u| endpoint(u, tls));
    let mut endpoints = endpoints.collect::<anyhow::Result<Vec<_>>>()?;
    match endpoints.len() {
        0 => anyhow::bail!("--coordinator: no URL given"),
        1 => Ok(endpoints.remove(0).connect_lazy()),
        _ => Ok(Channel::balance_list(endpoints.into_iter())),
    }
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Bearer {
    pub fn new(token: &str) -> anyhow::Result<Bearer> {
        Ok(Bearer(format!("Bearer {token}").parse().context("the token is not ASCII")?))
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

/// A channel whose every call carries a bearer token: what generated clients wrap.
pub type Authed = InterceptedService<Channel, Bearer>;

/// A token from the environment variable `env` or, failing that, from `file`; `what`
/// names it in the error ("API token", "join token"). Never from a flag: `ps` shows flags.
pub fn read_token(env: &str, file: Option<&Path>, what: &str) -> anyhow::Result<String> {
    if let Ok(t) = std::env::var(env) {
        return Ok(t.trim().to_string());
    }
    let path = file.with_context(|| format!("no {what}: set {env} or give a token file"))?;
    let t = std::fs::read_to_string(path)
        .with_context(|| format!("no {what}: set {env} or write one to {}", path.display()))?;
    Ok(t.trim().to_string())
}
