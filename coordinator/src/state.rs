//! What the services, maintenance, proposals and fleets share: the pool, the settings,
//! the wake-ups and change notices, caches, the fleet providers and the blob store. It
//! sits below the service layer, so nothing outside it needs the gRPC services.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{broadcast, Notify};
use uuid::Uuid;

use crate::error::Result;
use crate::settings::Settings;

/// Shared by both services, the reaper and the watch streams.
pub struct AppState {
    pub db: PgPool,
    pub settings: Settings,
    /// Woken when trials become claimable (submit, requeue); long-polling leases wait on it.
    pub work: Notify,
    /// Which sweep changed; the watch streams follow it.
    pub changes: broadcast::Sender<Uuid>,
    /// This coordinator, in the change notices it sends other coordinators.
    pub instance: Uuid,
    /// Changes to announce to other coordinators (`notify::announce` sends them).
    announce: tokio::sync::mpsc::UnboundedSender<Uuid>,
    announced: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Uuid>>>,
    pub worker_auth: crate::auth::WorkerCache,
    /// Providers, the worker binary and the coordinator's address, for fleets.
    pub fleets: crate::fleet::Fleets,
    /// Datasets and model artifacts, by SHA-256.
    pub blobs: crate::blobs::Blobs,
    /// The sweeps each worker may serve (fixed at enrolment: a fleet instance's worker
    /// serves its fleet's sweeps), looked up once per worker.
    worker_sweeps: std::sync::Mutex<std::collections::HashMap<Uuid, Option<Arc<[Uuid]>>>>,
    /// Sweep files parsed for proposals, by sweep: (the stored YAML, what it parses to),
    /// so a TPE sweep is not parsed again at every trial end (only when resubmitted).
    parsed: std::sync::Mutex<std::collections::HashMap<Uuid, (String, Arc<sweep_file::SweepSpec>)>>,
}

impl AppState {
    pub fn new(db: PgPool, settings: Settings) -> anyhow::Result<Arc<Self>> {
        let (changes, _) = broadcast::channel(4096);
        let (announce, announced) = tokio::sync::mpsc::unbounded_channel();
        let worker_auth = crate::auth::WorkerCache::new(Duration::from_millis(settings.lease_ms as u64));
        let fleets = crate::fleet::Fleets::new(&settings)?;
        let blobs = crate::blobs::Blobs::open(
            &settings.blob_store(),
            settings.blob_staging.as_deref(),
            settings.max_blob_bytes,
        )?;
        Ok(Arc::new(AppState {
            db,
            settings,
            work: Notify::new(),
            changes,
            instance: Uuid::new_v4(),
            announce,
            announced: std::sync::Mutex::new(Some(announced)),
            worker_auth,
            fleets,
            blobs,
            worker_sweeps: Default::default(),
            parsed: Default::default(),
        }))
    }

    /// The sweeps `worker` may lease from (None: all).
    pub async fn worker_sweeps(&self, worker: Uuid) -> Result<Option<Arc<[Uuid]>>> {
        if let Some(s) = self.worker_sweeps.lock().expect("worker sweeps").get(&worker) {
            return Ok(s.clone());
        }
        let found: Option<Arc<[Uuid]>> = crate::db::fleets::worker_sweeps(&self.db, worker).await?.map(Into::into);
        let mut map = self.worker_sweeps.lock().expect("worker sweeps");
        if map.len() > 100_000 {
            map.clear();
        }
        map.insert(worker, found.clone());
        Ok(found)
    }

    /// The sweep's stored file, parsed (cached until the stored YAML changes).
    pub fn parsed_sweep(&self, sweep: Uuid, yaml: &str) -> std::result::Result<Arc<sweep_file::SweepSpec>, String> {
        if let Some((y, spec)) = self.parsed.lock().expect("parsed sweeps").get(&sweep) {
            if y == yaml {
                return Ok(spec.clone());
            }
        }
        let limits = sweep_file::Limits { max_trials: self.settings.max_trials };
        let spec = Arc::new(sweep_file::parse(yaml, "stored sweep", limits).map_err(|e| e.to_string())?);
        let mut map = self.parsed.lock().expect("parsed sweeps");
        if map.len() > 10_000 {
            map.clear();
        }
        map.insert(sweep, (yaml.to_string(), spec.clone()));
        Ok(spec)
    }

    /// A change this coordinator made: its watch streams wake now, other coordinators'
    /// through Postgres (`notify`).
    pub fn changed(&self, sweep: Uuid) {
        self.wake(sweep);
        let _ = self.announce.send(sweep);
    }

    /// Wakes the watch streams following `sweep`.
    pub fn wake(&self, sweep: Uuid) {
        let _ = self.changes.send(sweep);
    }

    /// The receiving end of the announcements, once (for `notify::announce`).
    pub fn take_announcements(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Uuid>> {
        self.announced.lock().expect("announcements").take()
    }
}
