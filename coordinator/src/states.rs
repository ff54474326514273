//! The state machines the store keeps, as enums mapped to Postgres `text` columns
//! (whose CHECK constraints list the same names). SQL that filters on a state binds it,
//! or names the set through the constants below, which a test keeps equal to the enums.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};
use sweep_proto as pb;

/// An enum stored as its lowercase name in a `text` column.
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("`{other}` is not a {}", stringify!($name))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Type<Postgres> for $name {
            fn type_info() -> PgTypeInfo {
                <&str as Type<Postgres>>::type_info()
            }
            fn compatible(ty: &PgTypeInfo) -> bool {
                <&str as Type<Postgres>>::compatible(ty)
            }
        }

        impl Encode<'_, Postgres> for $name {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <&str as Encode<Postgres>>::encode(self.as_str(), buf)
            }
        }

        impl<'r> Decode<'r, Postgres> for $name {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                Ok(<&str as Decode<Postgres>>::decode(value)?.parse()?)
            }
        }
    };
}

text_enum! {
    /// Where a trial is: queued, leased by one attempt, or in one terminal state.
    TrialState {
        Queued = "queued",
        Leased = "leased",
        Succeeded = "succeeded",
        /// A user error, or transient errors past `max_attempts`.
        Failed = "failed",
        Cancelled = "cancelled",
        /// Leases lost (workers died) `max_attempts` times.
        Dead = "dead",
        /// Stopped early at an ASHA rung, with the metrics it reached.
        Pruned = "pruned",
    }
}

impl TrialState {
    /// The states a trial ends in, exactly one per trial.
    pub const TERMINAL: [TrialState; 5] =
        [TrialState::Succeeded, TrialState::Failed, TrialState::Cancelled, TrialState::Dead, TrialState::Pruned];

    pub fn is_terminal(self) -> bool {
        Self::TERMINAL.contains(&self)
    }
}

/// [`TrialState::TERMINAL`] as an SQL list, for statements that filter on it.
pub const TERMINAL_SQL: &str = "('succeeded', 'failed', 'cancelled', 'dead', 'pruned')";

text_enum! {
    /// What the user did to a sweep. Whether it has finished follows from its trials.
    SweepState {
        Running = "running",
        Cancelled = "cancelled",
    }
}

text_enum! {
    /// A registered worker: alive while it calls in, gone after three lease lengths of
    /// silence (back to alive when it calls again), quarantined after too many
    /// infrastructure failures in a row (until an admin clears it), revoked for good.
    WorkerState {
        Alive = "alive",
        Gone = "gone",
        Revoked = "revoked",
        Quarantined = "quarantined",
    }
}

impl From<TrialState> for pb::TrialState {
    fn from(s: TrialState) -> Self {
        match s {
            TrialState::Queued => pb::TrialState::Queued,
            TrialState::Leased => pb::TrialState::Leased,
            TrialState::Succeeded => pb::TrialState::Succeeded,
            TrialState::Failed => pb::TrialState::Failed,
            TrialState::Cancelled => pb::TrialState::Cancelled,
            TrialState::Dead => pb::TrialState::Dead,
            TrialState::Pruned => pb::TrialState::Pruned,
        }
    }
}

impl From<WorkerState> for pb::WorkerState {
    fn from(s: WorkerState) -> Self {
        match s {
            WorkerState::Alive => pb::WorkerState::Alive,
            WorkerState::Gone => pb::WorkerState::Gone,
            WorkerState::Revoked => pb::WorkerState::Revoked,
            WorkerState::Quarantined => pb::WorkerState::Quarantined,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_sql_lists_the_terminal_states() {
        let listed = TrialState::TERMINAL.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ");
        assert_eq!(TERMINAL_SQL, format!("({listed})"));
        assert!(TrialState::ALL.iter().all(|s| s.is_terminal() == TrialState::TERMINAL.contains(s)));
    }

    #[test]
    fn names_round_trip_and_match_the_wire_names() {
        for s in TrialState::ALL {
            assert_eq!(s.as_str().parse::<TrialState>(), Ok(*s));
            assert_eq!(pb::TrialState::from(*s).name(), s.as_str());
        }
        for s in WorkerState::ALL {
            assert_eq!(pb::WorkerState::from(*s).name(), s.as_str());
        }
        assert!("nope".parse::<SweepState>().is_err());
    }
}
