//! A model's result from its best epoch: validation and test metrics with thresholds
//! tuned on validation (or, for a refit trial, on its folds' out-of-fold predictions)
//! and applied to test, timings, and the model artifact.

use std::collections::BTreeMap;
use std::time::Instant;

use tch::Device;

use super::stack::Model;
use super::{TrainError, TrialResult};
use crate::data::Dataset;
use crate::metrics::{self, Thresholds};
use crate::score::{labels_tensor, score, Rows};

pub(super) fn objective_of(metrics: &BTreeMap<String, f64>, name: &str) -> Result<f64, TrainError> {
    metrics
        .get(name)
        .copied()
        .ok_or_else(|| TrainError::User(format!("metric `{name}` is not reported for this dataset")))
}

/// A model's validation: the metrics, and the thresholds tuned on it that test gets.
pub(super) struct Validation {
    pub metrics: BTreeMap<String, f64>,
    pub thresholds: Thresholds,
}

/// The best epoch's model scored on validation: its probabilities and mean loss.
pub(super) fn validation_scores(m: &Model, model: &crate::model::Mlp, ds: &Dataset, device: Device) -> (Vec<f32>, f64) {
    let yva = labels_tensor(&ds.val.y, ds.val.n, ds.labels, device);
    score(model, &Rows::of(&ds.val, ds.features, device), ds.val.n, Some((&yva, &m.loss)))
}

pub(super) fn finish(
    m: Model,
    ds: &Dataset,
    device: Device,
    started: Instant,
    stack_size: usize,
) -> Result<TrialResult, TrainError> {
    let l = ds.labels;
    let (_, _, model) = m.best.as_ref().ok_or_else(|| TrainError::User("no epoch ran".into()))?;
    let (val_probs, val_loss) = validation_scores(&m, model, ds, device);
    let thresholds: Thresholds = metrics::tune_checked(&val_probs, &ds.val.y, l);
    let mut metrics = metrics::report("val", &val_probs, &ds.val.y, l, &thresholds, &ds.train_positives);
    metrics.insert("val.loss".into(), val_loss);
    complete(m, ds, device, started, stack_size, Validation { metrics, thresholds })
}

/// The result of a model whose validation is done: test scored with its thresholds,
/// timings, and the model artifact.
pub(super) fn complete(
    m: Model,
    ds: &Dataset,
    device: Device,
    started: Instant,
    stack_size: usize,
    validation: Validation,
) -> Result<TrialResult, TrainError> {
    let (cfg, l) = (m.cfg, ds.labels);
    let (_, best_epoch, model) = m.best.ok_or_else(|| TrainError::User("no epoch ran".into()))?;
    let Validation { mut metrics, thresholds } = validation;
    let yte = labels_tensor(&ds.test.y, ds.test.n, l, device);
    let (test_probs, test_loss) =
        score(&model, &Rows::of(&ds.test, ds.features, device), ds.test.n, Some((&yte, &m.loss)));
    metrics.extend(metrics::report("test", &test_probs, &ds.test.y, l, &thresholds, &ds.train_positives));
    metrics.insert("test.loss".into(), test_loss);
    metrics.insert("threshold_global".into(), thresholds.global as f64);
    let weights = crate::artifact::ModelFiles::weights_of(&model)
        .map_err(|e| TrainError::Transient(format!("model weights: {e}")))?;
    if let Some(h) = m.history.iter().find(|h| h.epoch == best_epoch) {
        metrics.insert("train.loss".into(), h.metrics["train.loss"]);
    }
    metrics.insert("best_epoch".into(), best_epoch as f64);
    // How many trials trained as one stack with this one (1: alone).
    metrics.insert("stack_size".into(), stack_size as f64);
    if !ds.unseen_labels.is_empty() {
        // Labels the test (or validation) rows hold that training never has: not scored.
        metrics.insert("test.unseen_labels".into(), ds.unseen_labels.len() as f64);
    }
    let samples_per_s = (ds.train.n * m.history.len()) as f64 / m.train_seconds.max(1e-9);
    metrics.insert("samples_per_s".into(), samples_per_s);
    let seconds = started.elapsed().as_secs_f64();
    metrics.insert("seconds".into(), seconds);
    let manifest = crate::artifact::Manifest {
        config: cfg.clone(),
        label_names: ds.label_names.clone(),
        features: ds.features,
        standardize: ds.standardized.clone().map(|(mean, std)| crate::artifact::Standardize { mean, std }),
        columns: ds.columns.clone(),
        threshold_global: thresholds.global,
        thresholds: thresholds.per_label.clone(),
        metrics: metrics.clone(),
    };
    Ok(TrialResult {
        metrics,
        history: m.history,
        best_epoch,
        seconds,
        samples_per_s,
        train_rows: ds.train.n,
        threshold_global: thresholds.global,
        device: format!("{device:?}"),
        stopped_early: m.stopped_early,
        unseen_labels: ds.unseen_labels.clone(),
        model: Some(crate::artifact::ModelFiles { weights, manifest }),
    })
}
