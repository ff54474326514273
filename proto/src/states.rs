//! The lowercase names people and scripts see for the state enums (`sweep trials -o
//! json` prints `"succeeded"`, not `TRIAL_STATE_SUCCEEDED`), and which trial states end a trial.

use crate::v1::{SweepState, TrialState, WorkerState};

impl TrialState {
    /// Every state a trial can be in, in the order a trial moves through them.
    pub const ALL: [TrialState; 7] = [
        TrialState::Queued,
        TrialState::Leased,
        TrialState::Succeeded,
        TrialState::Pruned,
        TrialState::Failed,
        TrialState::Dead,
        TrialState::Cancelled,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TrialState::Unspecified => "unspecified",
            TrialState::Queued => "queued",
            TrialState::Leased => "leased",
            TrialState::Succeeded => "succeeded",
            TrialState::Failed => "failed",
            TrialState::Cancelled => "cancelled",
            TrialState::Dead => "dead",
            TrialState::Pruned => "pruned",
        }
    }

    /// Succeeded, pruned, failed, cancelled and dead: a trial ends in exactly one of them.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TrialState::Succeeded | TrialState::Pruned | TrialState::Failed | TrialState::Cancelled | TrialState::Dead
        )
    }
}

impl SweepState {
    pub fn name(self) -> &'static str {
        match self {
            SweepState::Unspecified => "unspecified",
            SweepState::Running => "running",
            SweepState::Finished => "finished",
            SweepState::Cancelled => "cancelled",
        }
    }
}

impl WorkerState {
    pub fn name(self) -> &'static str {
        match self {
            WorkerState::Unspecified => "unspecified",
            WorkerState::Alive => "alive",
            WorkerState::Gone => "gone",
            WorkerState::Revoked => "revoked",
            WorkerState::Quarantined => "quarantined",
        }
    }
}
