//! The trials running on this worker, each with the handle that stops it.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use sweep_proto as pb;
use sweep_trainer::train;

/// A trial is running under (trial id, attempt).
pub(super) type Key = (String, u32);

/// Why the agent stopped a running trial.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Stop {
    /// The user cancelled its sweep: report nothing.
    Cancelled,
    /// Another attempt owns it now: report nothing.
    LeaseLost,
    /// This worker is shutting down, or a budget is spent: hand it back.
    Draining,
    /// The instance is being reclaimed (spot notice): hand it back as preempted.
    Preempted,
}

/// The handle that stops one running trial.
#[derive(Default)]
pub(super) struct Running {
    /// Read by the training thread: cancel between batches, finish after the epoch.
    pub control: Arc<train::Control>,
    /// Why it was stopped: set before `cancel` so the trial task knows what to report.
    stopped_by: Mutex<Option<Stop>>,
}

impl Running {
    /// Stops the trial; the first reason given is the one reported.
    pub fn stop(&self, why: Stop) {
        self.stopped_by.lock().expect("lock").get_or_insert(why);
        match why {
            // Handed back: checkpoint first, so the next attempt goes on from here.
            Stop::Draining | Stop::Preempted => self.control.suspend.store(true, Ordering::Relaxed),
            Stop::Cancelled | Stop::LeaseLost => self.control.cancel.store(true, Ordering::Relaxed),
        }
    }

    pub fn stopped_by(&self) -> Option<Stop> {
        *self.stopped_by.lock().expect("lock")
    }
}

/// Trials running now; heartbeats extend exactly these leases. Owns its lock: callers
/// never hold it across an await.
#[derive(Default)]
pub(super) struct RunningSet {
    trials: Mutex<HashMap<Key, Arc<Running>>>,
}

/// Trials this worker is training now.
const TRIALS_RUNNING: &str = "sweep_worker_trials_running";

impl RunningSet {
    /// Records a trial as running here; returns its key and handle.
    pub fn add(&self, t: &pb::TrialRef) -> (Key, Arc<Running>) {
        let key = (t.trial_id.clone(), t.attempt);
        let handle = Arc::new(Running::default());
        let n = {
            let mut trials = self.trials.lock().expect("lock");
            trials.insert(key.clone(), handle.clone());
            trials.len()
        };
        metrics::gauge!(TRIALS_RUNNING).set(n as f64);
        (key, handle)
    }

    pub fn remove(&self, key: &Key) {
        let n = {
            let mut trials = self.trials.lock().expect("lock");
            trials.remove(key);
            trials.len()
        };
        metrics::gauge!(TRIALS_RUNNING).set(n as f64);
    }

    pub fn len(&self) -> usize {
        self.trials.lock().expect("lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The (trial, attempt) of every running trial, for a heartbeat.
    pub fn refs(&self) -> Vec<pb::TrialRef> {
        let trials = self.trials.lock().expect("lock");
        trials.keys().map(|(id, attempt)| pb::TrialRef { trial_id: id.clone(), attempt: *attempt }).collect()
    }

    /// Stops one trial, if it still runs here; says whether it did.
    pub fn stop(&self, t: &pb::TrialRef, why: Stop) -> bool {
        let found = self.trials.lock().expect("lock").get(&(t.trial_id.clone(), t.attempt)).cloned();
        found.inspect(|r| r.stop(why)).is_some()
    }

    pub fn stop_all(&self, why: Stop) {
        for r in self.trials.lock().expect("lock").values() {
            r.stop(why);
        }
    }
}
