//! The `sweep` command: submit a sweep file, watch it, and query status, trials and
//! the best configuration. Tables for people, `-o json` for scripts; errors go to
//! stderr with a non-zero exit code. One module per command under [`cmd`].

pub mod client;
pub mod cmd;
pub mod objectives;
pub mod output;
pub mod replicas;
pub mod report;
pub mod watch;
