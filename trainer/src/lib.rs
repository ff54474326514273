//! The Sweep trainer: datasets (MULAN ARFF, extreme-classification text, raw text with
//! TF-IDF or hashing features, a synthetic long tail), the MLP (with a sparse first
//! layer), the losses, scikit-learn-exact F1 and threshold tuning, and the training
//! loop, on libtorch. It knows nothing of the network or the database:
//! the worker's agent feeds it trial configs and forwards what it reports.

pub mod artifact;
pub mod checkpoint;
pub mod data;
pub mod encoder;
pub mod epoch;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod score;
pub mod tensors;
pub mod train;
