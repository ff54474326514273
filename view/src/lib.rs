//! What people and scripts see of a sweep, computed once for every front end: the JSON
//! shapes of the CLI's `-o json` and the dashboard's `/api/v1/`, configurations with
//! their replicas' statistics, objectives and constraints, and parameter importance.

pub mod importance;
pub mod json;
pub mod objectives;
pub mod replicas;
