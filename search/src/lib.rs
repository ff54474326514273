//! Deciding from results, with no IO: statistics over replicas of a configuration (a mean
//! with its 95% Student-t interval, a paired t-test between two configurations run on the
//! same seeds, Holm's correction when one is compared with several), ASHA's rung
//! decisions, and TPE's proposals.

pub mod asha;
pub mod stats;
pub mod tpe;
