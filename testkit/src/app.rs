//! An in-process coordinator on port 0 with a fresh database, spoken to over real gRPC.

use sqlx::PgPool;
use sweep_coordinator::db::tokens::{self, Role};
use sweep_coordinator::maintenance::{LeaseReaper, Maintenance};
use sweep_coordinator::{Coordinator, Settings};
use sweep_proto as pb;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub state: std::sync::Arc<sweep_coordinator::service::AppState>,
    pub url: String,
    pub db: PgPool,
    pub admin: String,
    pub join: String,
    pub shutdown: CancellationToken,
    pub channel: Channel,
}

pub fn settings(database_url: &str) -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: database_url.to_string(),
        port_file: None,
        lease_ms: 2_000,
        heartbeat_ms: Some(300),
        reap_ms: 100,
        backoff_ms: 50,
        quarantine_after: 5,
        max_trials: 100_000,
        max_message_bytes: 1024 * 1024,
        max_concurrent_streams: 256,
        max_connections: 10_000,
        max_connections_per_peer: 512,
        handshake_timeout_ms: 10_000,
        idle_timeout_ms: 300_000,
        metrics_listen: None,
        db_connections: 20,
        tls_cert: None,
        tls_key: None,
        tls_client_ca: None,
        insecure_plaintext: false,
        tls_ca: None,
        public_url: None,
        worker_binary: None,
        fleet_reconcile_ms: 500,
        spot_price_refresh_minutes: 60.0,
        fleet_max_instances: 32,
        fleet_join_ttl_secs: 1_800,
        fleet_local_dir: None,
        blob_store: None,
        blob_staging: None,
        max_blob_bytes: 64 << 20,
        keep_models: 5,
    }
}

pub async fn spawn() -> Option<TestApp> {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(tweak: impl FnOnce(&mut Settings)) -> Option<TestApp> {
    let url = crate::fresh_database().await?;
    let mut s = settings(&url);
    tweak(&mut s);
    let app = Coordinator::build(s).await.expect("build coordinator");
    let (addr, state) = (app.addr, app.state.clone());
    let db = app.state.db.clone();
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run(shutdown.clone()));
    let (_, admin) = tokens::create(&db, Role::Admin, "test").await.unwrap();
    let (_, join) = tokens::create(&db, Role::Join, "test").await.unwrap();
    let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.expect("connect");
    Some(TestApp { addr, state, url, db, admin, join, shutdown, channel })
}

pub fn with_token<T>(token: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert("authorization", MetadataValue::try_from(format!("Bearer {token}")).unwrap());
    r
}

pub const GRID: &str = "
name: g
metric: {name: val.f1_micro, goal: maximize}
max_attempts: 3
parameters:
  loss.class_weight.cap: {values: [6, 7, 8]}
  loss.focal_gamma: {values: [0, 2, 3]}
";

impl TestApp {
    pub fn client(&self) -> pb::client_service_client::ClientServiceClient<Channel> {
        pb::client_service_client::ClientServiceClient::new(self.channel.clone())
    }
    pub fn agent(&self) -> pb::agent_service_client::AgentServiceClient<Channel> {
        pb::agent_service_client::AgentServiceClient::new(self.channel.clone())
    }

    pub async fn submit(&self, yaml: &str) -> pb::SubmitSweepResponse {
        self.client()
            .submit_sweep(with_token(
                &self.admin,
                pb::SubmitSweepRequest {
                    spec_yaml: yaml.into(),
                    source_name: "t.yaml".into(),
                    data_blobs: Default::default(),
                },
            ))
            .await
            .expect("submit")
            .into_inner()
    }

    /// Registers a worker and returns its credential.
    pub async fn worker(&self, name: &str) -> String {
        let r = self
            .agent()
            .register(with_token(
                &self.join,
                pb::RegisterRequest {
                    name: name.into(),
                    host: "test".into(),
                    gpus: vec![],
                    slots: 4,
                    version: "t".into(),
                },
            ))
            .await
            .expect("register")
            .into_inner();
        r.worker_token
    }

    pub async fn lease(&self, worker: &str, n: u32) -> Vec<pb::LeasedTrial> {
        self.agent()
            .lease(with_token(worker, pb::LeaseRequest { max_trials: n, wait_ms: 0, fuse: false }))
            .await
            .expect("lease")
            .into_inner()
            .trials
    }

    pub async fn complete(&self, worker: &str, t: &pb::LeasedTrial, f1: f64) -> Result<(), tonic::Status> {
        self.complete_with(worker, t, &[("val.f1_micro", f1)]).await
    }

    /// Completes a trial reporting these final metrics.
    pub async fn complete_with(
        &self,
        worker: &str,
        t: &pb::LeasedTrial,
        metrics: &[(&str, f64)],
    ) -> Result<(), tonic::Status> {
        self.agent()
            .complete(with_token(
                worker,
                pb::CompleteRequest {
                    trial: Some(pb::TrialRef { trial_id: t.trial_id.clone(), attempt: t.attempt }),
                    metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
                    result_json: "{}".into(),
                    lease_next: 0,
                    pruned: false,
                    model_sha256: String::new(),
                },
            ))
            .await
            .map(|_| ())
    }

    /// Moves every lease of the trial into the past (no sleeping) and runs one reaper pass.
    pub async fn expire(&self, trial_id: &str) {
        let id: uuid::Uuid = trial_id.parse().unwrap();
        sqlx::query(
            "UPDATE trials SET lease_expires_at = now() - interval '1 second' WHERE id = $1 AND state = 'leased'",
        )
        .bind(id)
        .execute(&self.db)
        .await
        .unwrap();
        LeaseReaper(self.state.clone()).run_once().await.expect("reaper pass");
        let (state,): (String,) =
            sqlx::query_as("SELECT state FROM trials WHERE id = $1").bind(id).fetch_one(&self.db).await.unwrap();
        assert_ne!(state, "leased", "the reaper did not return trial {trial_id}");
    }

    pub async fn state_of(&self, trial_id: &str) -> (String, i32, i32, i32) {
        let id: uuid::Uuid = trial_id.parse().unwrap();
        sqlx::query_as("SELECT state, attempt, lost_count, error_count FROM trials WHERE id = $1")
            .bind(id)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }
}
