//! The lowercase names people and scripts see for the wire enums (`sweep trials -o
//! json` prints `"succeeded"`, not `TRIAL_STATE_SUCCEEDED`), and which trial states end a trial.

use crate::v1::{FleetState, Goal, InstanceState, SearchMethod, SweepState, TrialState, WorkerState};

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
            SweepState::BudgetExhausted => "budget_exhausted",
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

impl SearchMethod {
    pub fn name(self) -> &'static str {
        match self {
            SearchMethod::Unspecified => "unspecified",
            SearchMethod::Grid => "grid",
            SearchMethod::Random => "random",
            SearchMethod::Tpe => "tpe",
        }
    }
}

impl Goal {
    pub fn name(self) -> &'static str {
        match self {
            Goal::Unspecified => "unspecified",
            Goal::Maximize => "maximize",
            Goal::Minimize => "minimize",
        }
    }

    /// True when `a` is a better objective value than `b` (maximize unless told otherwise).
    pub fn better(self, a: f64, b: f64) -> bool {
        if self == Goal::Minimize {
            a < b
        } else {
            a > b
        }
    }
}

impl FleetState {
    pub fn name(self) -> &'static str {
        match self {
            FleetState::Unspecified => "unspecified",
            FleetState::Active => "active",
            FleetState::Down => "down",
            FleetState::Expired => "expired",
            FleetState::Failed => "failed",
        }
    }
}

impl InstanceState {
    pub fn name(self) -> &'static str {
        match self {
            InstanceState::Unspecified => "unspecified",
            InstanceState::Launching => "launching",
            InstanceState::Running => "running",
            InstanceState::Terminating => "terminating",
            InstanceState::Terminated => "terminated",
        }
    }

    /// Launching or running: it counts toward the fleet's size.
    pub fn is_live(self) -> bool {
        matches!(self, InstanceState::Launching | InstanceState::Running)
    }
}
