//! The trainer's tests: readers, featurizers, losses against PyTorch, training alone,
//! fused and resumed, determinism. One test binary (each links libtorch), a module per
//! subject.

mod checkpoint;
mod data;
mod determinism;
mod encoder;
mod featurize;
mod fused;
mod hostile;
mod losses;
#[path = "../common/parquet_rows.rs"]
mod parquet_rows;
mod refit;
mod split;
mod text;
mod train;
