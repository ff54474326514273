//! A refit trial (`dataset.cv: {folds: k, refit: true}`): the deliverable of a
//! cross-validated configuration. It trains the k fold models (each exactly the fold
//! trial of the same configuration: same rows, seed and early stopping), tunes the
//! thresholds on the concatenation of their out-of-fold predictions at each fold's best
//! epoch (k times the validation rows one split has, so more tail labels reach the
//! per-label tuning's minimum of positives), then trains one model on every row of train
//! for the folds' mean best epoch (rounded, at least 1) and scores test with those
//! thresholds. The same recipe as scikit-learn's `TunedThresholdClassifierCV` with
//! `refit=True`.
//!
//! Its `val.*` metrics are the out-of-fold predictions' (each row scored by the model that
//! did not train on it); its epochs are reported one after another, numbered on from the
//! previous fold's, each with `cv.fold` (k for the final model). It does not checkpoint:
//! an interrupted refit trial starts again.

use std::sync::Arc;
use std::time::Instant;

use sweep_file::{DatasetConfig, TrialConfig};
use tch::Device;

use super::finish::{self, Validation};
use super::stack::{Model, Run};
use super::{Control, EpochReport, Member, TrainError, TrialResult};
use crate::data::Dataset;
use crate::metrics;

/// The folds' out-of-fold predictions, gathered in fold order.
#[derive(Default)]
struct OutOfFold {
    probs: Vec<f32>,
    y: Vec<u8>,
    /// Rows x mean validation loss, summed (a mean over all rows at the end).
    loss_sum: f64,
    best_epochs: Vec<u32>,
}

/// Trains a refit trial; `datasets` loads a dataset config (the refit's own: all of
/// train, no validation rows; and each fold's), as the worker's cache does.
pub fn train_refit(
    cfg: &TrialConfig,
    datasets: &dyn Fn(&DatasetConfig) -> Result<Arc<Dataset>, TrainError>,
    device: Device,
    progress: &mut dyn FnMut(&EpochReport),
    control: &Control,
) -> Result<TrialResult, TrainError> {
    if !cfg.dataset.cv_refit || cfg.dataset.cv_folds < 2 {
        return Err(TrainError::User("not a refit trial: dataset.cv: {folds: k, refit: true}".into()));
    }
    let started = Instant::now();
    let k = cfg.dataset.cv_folds;
    let (mut history, mut reported) = (Vec::new(), 0u32);
    let mut oof = OutOfFold::default();
    for fold in 0..k {
        let mut fold_cfg = cfg.clone();
        (fold_cfg.dataset.cv_refit, fold_cfg.dataset.fold) = (false, fold);
        let ds = datasets(&fold_cfg.dataset)?;
        let mut relay = |r: &EpochReport| history.push(relabel(r, reported, fold, progress));
        let m = train_alone(&ds, &fold_cfg, device, &mut relay, control)?;
        let (_, best_epoch, model) = m.best.as_ref().ok_or_else(|| TrainError::User("no epoch ran".into()))?;
        let (probs, loss) = finish::validation_scores(&m, model, &ds, device);
        oof.probs.extend(probs);
        oof.y.extend_from_slice(&ds.val.y);
        oof.loss_sum += loss * ds.val.n as f64;
        oof.best_epochs.push(*best_epoch);
        reported += m.history.len() as u32;
    }
    let full = datasets(&cfg.dataset)?;
    let l = full.labels;
    let thresholds = metrics::tune_checked(&oof.probs, &oof.y, l);
    let mut metrics = metrics::report("val", &oof.probs, &oof.y, l, &thresholds, &full.train_positives);
    metrics.insert("val.loss".into(), oof.loss_sum / (oof.y.len() / l).max(1) as f64);
    let epochs = refit_epochs(&oof.best_epochs);
    metrics.insert("cv.refit_epochs".into(), f64::from(epochs));
    for (f, e) in oof.best_epochs.iter().enumerate() {
        metrics.insert(format!("cv.fold{f}.best_epoch"), f64::from(*e));
    }
    let mut final_cfg = cfg.clone();
    (final_cfg.train.epochs, final_cfg.train.patience) = (epochs, 0);
    let mut relay = |r: &EpochReport| history.push(relabel(r, reported, k, progress));
    let m = train_alone(&full, &final_cfg, device, &mut relay, control)?;
    let mut result = finish::complete(m, &full, device, started, 1, Validation { metrics, thresholds })?;
    result.best_epoch += reported;
    result.metrics.insert("best_epoch".into(), f64::from(result.best_epoch));
    result.history = history;
    if let Some(model) = result.model.as_mut() {
        // The manifest holds the config the trial ran (the refit's, not the final phase's).
        model.manifest.config = cfg.clone();
    }
    Ok(result)
}

/// The final model's epochs: the folds' mean best epoch, rounded, at least 1.
fn refit_epochs(best: &[u32]) -> u32 {
    let mean = best.iter().map(|&e| f64::from(e)).sum::<f64>() / best.len().max(1) as f64;
    (mean.round() as u32).max(1)
}

/// A phase's epoch report as the trial's: numbered on from the epochs before it, with
/// its fold (k: the final model); handed on to `progress` and kept for the history.
fn relabel(r: &EpochReport, before: u32, fold: u32, progress: &mut dyn FnMut(&EpochReport)) -> EpochReport {
    let mut r = r.clone();
    r.epoch += before;
    r.metrics.insert("cv.fold".into(), f64::from(fold));
    progress(&r);
    r
}

/// Trains one config as a stack of one to its end.
fn train_alone<'a>(
    ds: &'a Dataset,
    cfg: &'a TrialConfig,
    device: Device,
    progress: &mut dyn FnMut(&EpochReport),
    control: &'a Control,
) -> Result<Model<'a>, TrainError> {
    let member = Member { config: cfg, control, resume: None };
    let mut run = Run::build(ds, vec![member], device).map_err(TrainError::User)?;
    run.train(&mut |_, r| progress(r), &mut |_, _| {});
    let m = run.models.pop().expect("one member, one model");
    match m.ended {
        Some(Err(e)) => Err(e),
        _ => Ok(m),
    }
}
