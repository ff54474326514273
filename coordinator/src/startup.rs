//! Builds the coordinator (the same app in `main` and in tests) and runs it until the
//! shutdown token fires.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sweep_proto as pb;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::maintenance::{Leadership, LeaseReaper, Liveness};
use crate::service::{agent::AgentApi, blob::BlobApi, client::ClientApi, AppState};
use crate::settings::Settings;

pub struct Coordinator {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    listener: TcpListener,
}

impl Coordinator {
    /// Connects to Postgres, runs migrations and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        if !settings.listen.ip().is_loopback() && settings.tls_cert.is_none() && !settings.insecure_plaintext {
            anyhow::bail!(
                "refusing to listen on {} without TLS: tokens would cross the network in plaintext. \
                 Pass --tls-cert and --tls-key (`sweep-coordinator tls init` makes a private CA and a server \
                 certificate), or --insecure-plaintext inside a network you trust",
                settings.listen
            );
        }
        let db = crate::db::connect(&settings.database_url, settings.db_connections).await?;
        let listener = TcpListener::bind(settings.listen).await.with_context(|| format!("bind {}", settings.listen))?;
        let addr = listener.local_addr()?;
        if let Some(path) = &settings.port_file {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, addr.to_string()).with_context(|| format!("write {}", tmp.display()))?;
            std::fs::rename(&tmp, path).with_context(|| format!("write {}", path.display()))?;
        }
        let state = AppState::new(db, settings)?;
        let _ = state.fleets.bound.set(addr);
        Ok(Coordinator { addr, state, listener })
    }

    /// Serves until `shutdown` is cancelled, then drains in-flight calls.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let settings = &self.state.settings;
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<pb::client_service_server::ClientServiceServer<ClientApi>>().await;
        health.set_serving::<pb::agent_service_server::AgentServiceServer<AgentApi>>().await;
        health.set_serving::<pb::blob_service_server::BlobServiceServer<BlobApi>>().await;
        // Reflection v1 and v1alpha (what grpcio-reflection and older grpcurl speak), each
        // listing every service served here, the health service and both reflections included.
        let descriptors = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
        };
        let (reflection, reflection_v1alpha) = (descriptors().build_v1()?, descriptors().build_v1alpha()?);
        let max = settings.max_message_bytes;
        let client = pb::client_service_server::ClientServiceServer::new(ClientApi { state: self.state.clone() })
            .max_decoding_message_size(max)
            .max_encoding_message_size(max);
        let agent = pb::agent_service_server::AgentServiceServer::new(AgentApi { state: self.state.clone() })
            .max_decoding_message_size(max)
            .max_encoding_message_size(max);
        let blob = pb::blob_service_server::BlobServiceServer::new(BlobApi { state: self.state.clone() })
            .max_decoding_message_size(max)
            .max_encoding_message_size(max);
        let limits = settings.connection_limits();
        let mut builder = Server::builder()
            // A peer that stops answering pings is closed (the idle limit covers silence).
            .http2_keepalive_interval(Some(Duration::from_secs(60)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)))
            // HTTP/1.1 too, for the bootstrap's `curl` of the worker binary (gRPC stays HTTP/2).
            .accept_http1(true)
            .max_concurrent_streams(Some(settings.max_concurrent_streams))
            .layer(crate::metrics::RpcLatency);
        if let (Some(cert), Some(key)) = (&settings.tls_cert, &settings.tls_key) {
            let read = |p: &std::path::Path| std::fs::read(p).with_context(|| format!("read {}", p.display()));
            let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(read(cert)?, read(key)?));
            if let Some(ca) = &settings.tls_client_ca {
                tls = tls.client_ca_root(Certificate::from_pem(read(ca)?));
            }
            builder = builder.tls_config(tls).context("tls config")?;
        }
        let maintenance = self.maintenance(&shutdown)?;
        tracing::info!(addr = %self.addr, tls = settings.tls_cert.is_some(), blobs = %self.state.blobs.location,
            "coordinator listening");
        builder
            // The worker artifact and the dashboard, over HTTP/1.1 on this port.
            .add_routes(tonic::service::Routes::from(
                crate::fleet::artifacts::routes(self.state.clone()).merge(crate::web::routes(self.state.clone())),
            ))
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_v1alpha)
            .add_service(client)
            .add_service(agent)
            .add_service(blob)
            .serve_with_incoming_shutdown(crate::conn::incoming(self.listener, limits), shutdown.cancelled_owned())
            .await
            .context("serve")?;
        maintenance.join_all().await;
        tracing::info!("coordinator stopped");
        Ok(())
    }

    /// The background work: reaper, liveness, checkpoint sweeper and fleet reconciler on
    /// one coordinator at a time; change notices and the metrics sampler on each.
    fn maintenance(&self, shutdown: &CancellationToken) -> anyhow::Result<tokio::task::JoinSet<()>> {
        let settings = &self.state.settings;
        let leader = Some(Arc::new(Leadership::new(&settings.database_url)?));
        let mut maintenance = tokio::task::JoinSet::new();
        maintenance.spawn(crate::maintenance::run(LeaseReaper(self.state.clone()), leader.clone(), shutdown.clone()));
        maintenance.spawn(crate::maintenance::run(Liveness(self.state.clone()), leader.clone(), shutdown.clone()));
        maintenance.spawn(crate::maintenance::run(
            crate::maintenance::CheckpointSweeper(self.state.clone()),
            leader.clone(),
            shutdown.clone(),
        ));
        let staging = crate::maintenance::StagingSweeper(self.state.clone());
        maintenance.spawn(crate::maintenance::run(staging, None, shutdown.clone()));
        if let Some(changes) = self.state.take_announcements() {
            maintenance.spawn(crate::notify::announce(self.state.clone(), changes, shutdown.clone()));
        }
        maintenance.spawn(crate::notify::listen(self.state.clone(), shutdown.clone()));
        let reconciler = crate::fleet::reconcile::Reconciler(self.state.clone());
        maintenance.spawn(crate::maintenance::run(reconciler, leader, shutdown.clone()));
        if let Some(addr) = settings.metrics_listen {
            sweep_client::telemetry::serve_metrics(addr)?;
            let sampler = crate::metrics::Sampler { state: self.state.clone(), every: Duration::from_secs(2) };
            maintenance.spawn(crate::maintenance::run(sampler, None, shutdown.clone()));
        }
        Ok(maintenance)
    }
}
