//! The state machines the store keeps, as enums mapped to Postgres `text` columns
//! (whose CHECK constraints list the same names). SQL names a state through these enums:
//! it binds one, or formats its literal (`{}` of a state is its quoted name, `'queued'`),
//! which keeps a partial index usable where a bound parameter would not. The wire enums
//! are converted from these in the service layer, not here.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};

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

            /// The state as an SQL string literal: `'name'`.
            pub fn sql(self) -> &'static str {
                match self { $($name::$variant => concat!("'", $text, "'")),+ }
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
    /// The states a trial ends in, exactly one per trial: the one definition (the SQL
    /// list and the wire enum's are derived from it or checked against it).
    pub const TERMINAL: [TrialState; 5] =
        [TrialState::Succeeded, TrialState::Failed, TrialState::Cancelled, TrialState::Dead, TrialState::Pruned];

    pub fn is_terminal(self) -> bool {
        Self::TERMINAL.contains(&self)
    }
}

/// [`TrialState::TERMINAL`] as an SQL list, for statements that filter on it.
pub fn terminal_sql() -> &'static str {
    static LIST: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let names: Vec<&str> = TrialState::TERMINAL.iter().map(|s| s.sql()).collect();
        format!("({})", names.join(", "))
    });
    &LIST
}

/// The states a trial is open in (queued or leased), as an SQL list.
pub fn open_sql() -> &'static str {
    static LIST: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("({}, {})", TrialState::Queued.sql(), TrialState::Leased.sql()));
    &LIST
}

text_enum! {
    /// What the user did to a sweep. Whether it has finished follows from its trials.
    SweepState {
        Running = "running",
        Cancelled = "cancelled",
    }
}

text_enum! {
    /// What happens to a fleet: active (reconciled to its count), or ended: down (by
    /// `fleet down`), expired (at `--max-hours`), failed (a launch the provider refused).
    FleetState {
        Active = "active",
        Down = "down",
        Expired = "expired",
        Failed = "failed",
    }
}

text_enum! {
    /// A fleet instance: launching (a row before the provider's call), running, being
    /// terminated, terminated.
    InstanceState {
        Launching = "launching",
        Running = "running",
        Terminating = "terminating",
        Terminated = "terminated",
    }
}

impl InstanceState {
    /// Launching or running: it counts toward the fleet's size.
    pub fn is_live(self) -> bool {
        matches!(self, InstanceState::Launching | InstanceState::Running)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sql_lists_are_the_enums() {
        assert_eq!(terminal_sql(), "('succeeded', 'failed', 'cancelled', 'dead', 'pruned')");
        assert_eq!(open_sql(), "('queued', 'leased')");
        assert!(TrialState::ALL.iter().all(|s| s.is_terminal() == TrialState::TERMINAL.contains(s)));
        assert!(TrialState::ALL.iter().all(|s| s.is_terminal() != open_sql().contains(s.sql())));
        assert_eq!(InstanceState::Running.sql(), "'running'");
    }

    #[test]
    fn names_round_trip() {
        for s in TrialState::ALL {
            assert_eq!(s.as_str().parse::<TrialState>(), Ok(*s));
        }
        for s in InstanceState::ALL {
            assert_eq!(s.as_str().parse::<InstanceState>(), Ok(*s));
        }
        for s in FleetState::ALL {
            assert_eq!(s.as_str().parse::<FleetState>(), Ok(*s));
        }
        assert!("nope".parse::<SweepState>().is_err());
    }
}
