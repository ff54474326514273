//! Generated gRPC types for Sweep. Prost types stay at the edge: the coordinator,
//! worker and CLI convert them into their own domain types once.

#![allow(clippy::all)]

/// The generated code (its dispatch functions are as long as the API is wide).
#[allow(clippy::too_many_lines)]
pub mod v1 {
    tonic::include_proto!("sweep.v1");
}

/// Encoded `FileDescriptorSet` for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("sweep_descriptor");

mod states;

pub use v1::*;
