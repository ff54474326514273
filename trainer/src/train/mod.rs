//! The trainer: one trial, or K trials that share a dataset trained as one stacked model
//! ([`train_stack`]: one batched forward and backward per step, each model with its own
//! data order, dropout masks, loss settings, optimiser settings, clipping and early
//! stopping). A trial alone is a stack of one, so fused and unfused runs compute the same
//! numbers. Nothing here draws from libtorch's process-global generator after
//! initialisation (which takes turns under a lock): results do not depend on what else
//! runs in the process.
//!
//! A stack's life, in `stack.rs`: build (models, optimiser, loss, batches), resume (from
//! checkpoints), one epoch (the batches, suspend and cancel between them), end of epoch
//! (each model's validation, report, early stopping, checkpoint), finish (`finish.rs`:
//! each model's result from its best epoch). A refit trial (`refit.rs`) is its folds as
//! stacks of one, then one model on all of train.

mod finish;
mod refit;
mod stack;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

use serde::Serialize;
use sweep_file::TrialConfig;
use tch::Device;

use crate::checkpoint::Checkpoint;
use crate::data::Dataset;
pub use crate::epoch::EpochReport;
pub use crate::score::probabilities;
pub use refit::train_refit;

/// Why a trial did not finish.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TrainError {
    /// The trial's own fault (bad data, NaN loss): not retried.
    #[error("{0}")]
    User(String),
    /// Might pass on another try (out of memory, a libtorch error).
    #[error("{0}")]
    Transient(String),
    #[error("cancelled")]
    Cancelled,
}

/// How the caller steers a running trial from another thread: `cancel` stops it at the
/// next batch with no result; `finish` ends it after the current epoch with the result it
/// reached (the best epoch so far), as early stopping would.
/// `suspend` saves a checkpoint at the next batch and then stops it as `cancel` does.
#[derive(Debug, Default)]
pub struct Control {
    pub cancel: AtomicBool,
    pub finish: AtomicBool,
    pub suspend: AtomicBool,
}

impl Control {
    /// A control whose trial is cancelled from the start (tests).
    pub fn cancelled() -> Control {
        Control { cancel: AtomicBool::new(true), ..Control::default() }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TrialResult {
    /// The flat map: `val.*` and `test.*` at the best epoch, `train.loss`, timings.
    pub metrics: BTreeMap<String, f64>,
    pub history: Vec<EpochReport>,
    pub best_epoch: u32,
    pub seconds: f64,
    pub samples_per_s: f64,
    /// Rows in the training split (rows x epochs run = samples trained on).
    pub train_rows: usize,
    pub threshold_global: f32,
    pub device: String,
    /// Whether it stopped before its last epoch because it was told to finish (ASHA).
    pub stopped_early: bool,
    /// Labels of test or validation rows that training never has (reported, not scored).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub unseen_labels: BTreeMap<String, usize>,
    /// The best epoch's model (weights and what scoring needs), for the artifact.
    #[serde(skip)]
    pub model: Option<crate::artifact::ModelFiles>,
}

/// Picks the device: `auto` is CUDA when libtorch sees a GPU.
pub fn device(name: &str) -> anyhow::Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => {
            anyhow::ensure!(tch::Cuda::is_available(), "--device cuda: libtorch sees no CUDA device");
            Ok(Device::Cuda(0))
        }
        "auto" => Ok(Device::cuda_if_available()),
        other => anyhow::bail!("--device: `{other}` is not auto, cpu or cuda"),
    }
}

/// One trial of a stack: its config, the control that steers it, and the checkpoint it
/// resumes from (the trials of a stack resume from one point, or none).
pub struct Member<'a> {
    pub config: &'a TrialConfig,
    pub control: &'a Control,
    pub resume: Option<Checkpoint>,
}

/// Trains one trial: epochs until `train.epochs` or early stopping on the objective,
/// then the best epoch's weights are evaluated. Deterministic for a given seed on CPU.
pub fn train_one(
    ds: &Dataset,
    cfg: &TrialConfig,
    device: Device,
    progress: &mut dyn FnMut(&EpochReport),
    control: &Control,
) -> Result<TrialResult, TrainError> {
    let mut results = train_fused(ds, std::slice::from_ref(cfg), device, &mut |_, r| progress(r), &[control]);
    results.pop().expect("one config, one result")
}

/// Trains K trials that share `ds` as one stacked model. Results come back in config
/// order; `progress` gets (index, epoch report); `controls[k]` steers trial k alone
/// (cancelling one leaves the others' numbers unchanged).
pub fn train_fused(
    ds: &Dataset,
    cfgs: &[TrialConfig],
    device: Device,
    progress: &mut dyn FnMut(usize, &EpochReport),
    controls: &[&Control],
) -> Vec<Result<TrialResult, TrainError>> {
    assert_eq!(cfgs.len(), controls.len(), "one control per config");
    let members = cfgs.iter().zip(controls).map(|(config, control)| Member { config, control, resume: None }).collect();
    train_stack(ds, members, device, progress, &mut |_, _| {})
}

/// Trains the members as one stack, resuming each from its checkpoint, and hands
/// `checkpoint` (index, checkpoint) every `train.checkpoint_every` epochs and when a
/// trial is suspended. Configs that cannot share a stack (their fuse keys differ) or
/// checkpoints that do not fit are every member's error.
pub fn train_stack(
    ds: &Dataset,
    members: Vec<Member>,
    device: Device,
    progress: &mut dyn FnMut(usize, &EpochReport),
    checkpoint: &mut dyn FnMut(usize, Checkpoint),
) -> Vec<Result<TrialResult, TrainError>> {
    let n = members.len();
    let mut run = match stack::Run::build(ds, members, device) {
        Ok(run) => run,
        Err(why) => return (0..n).map(|_| Err(TrainError::User(why.clone()))).collect(),
    };
    run.train(progress, checkpoint);
    run.finish()
}
