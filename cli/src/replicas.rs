//! Configurations and their replicas: [`sweep_view::replicas`].

pub use sweep_view::replicas::*;
