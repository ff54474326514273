//! A refit trial (`cv: {folds: k, refit: true}`): its thresholds are the ones tuned on the
//! out-of-fold predictions of the fold trials of its configuration, trained alone; its
//! model trains on every row of train for the folds' mean best epoch.

use std::sync::Arc;

use sweep_file::{DatasetConfig, TrialConfig};
use sweep_trainer::data::{Dataset, DatasetCache};
use sweep_trainer::train::{self, TrainError};
use sweep_trainer::{artifact, metrics};

fn refit_config() -> TrialConfig {
    let mut c = sweep_testenv::small_config();
    (c.train.epochs, c.train.patience, c.train.lr) = (8, 2, 3e-3);
    (c.dataset.cv_folds, c.dataset.cv_refit) = (3, true);
    c
}

/// The validation probabilities of a fold trial's model (its best epoch), from its artifact.
fn fold_probabilities(result: &train::TrialResult, ds: &Dataset) -> Vec<f32> {
    let dir = tempfile::tempdir().unwrap();
    result.model.as_ref().expect("a model").write_dir(dir.path()).unwrap();
    let loaded = artifact::load(dir.path(), tch::Device::Cpu).unwrap();
    train::probabilities(&loaded.mlp, &ds.val, ds.features)
}

#[test]
fn a_refit_tunes_on_the_folds_out_of_fold_predictions_and_trains_on_all_of_train() {
    let cfg = refit_config();
    let cache = DatasetCache::default();
    let load = |d: &DatasetConfig| -> Result<Arc<Dataset>, TrainError> {
        cache.get(d).map_err(|e| TrainError::User(e.to_string()))
    };
    let mut epochs = Vec::new();
    let control = train::Control::default();
    let refit = train::train_refit(&cfg, &load, tch::Device::Cpu, &mut |r| epochs.push(r.clone()), &control).unwrap();

    // The fold trials of the same configuration, each trained alone.
    let (mut probs, mut y, mut best) = (Vec::new(), Vec::new(), Vec::new());
    for fold in 0..3 {
        let mut c = cfg.clone();
        (c.dataset.cv_refit, c.dataset.fold) = (false, fold);
        let ds = load(&c.dataset).unwrap();
        let r = train::train_one(&ds, &c, tch::Device::Cpu, &mut |_| {}, &train::Control::default()).unwrap();
        assert_eq!(refit.metrics[&format!("cv.fold{fold}.best_epoch")], f64::from(r.best_epoch), "fold {fold}");
        probs.extend(fold_probabilities(&r, &ds));
        y.extend_from_slice(&ds.val.y);
        best.push(r.best_epoch);
    }
    let full = load(&cfg.dataset).unwrap();
    let (n, l) = (full.train.n, full.labels);
    assert_eq!((full.val.n, y.len() / l), (0, n), "the folds' validation rows are all of train, once");
    assert_eq!(refit.train_rows, n, "the model trains on every row of train");

    // Its thresholds are tuned on the out-of-fold predictions, and its val.* are theirs.
    let want = metrics::tune_checked(&probs, &y, l);
    let manifest = &refit.model.as_ref().unwrap().manifest;
    assert_eq!(manifest.threshold_global, want.global);
    assert_eq!(manifest.thresholds, want.per_label);
    let oof = metrics::report("val", &probs, &y, l, &want, &full.train_positives);
    for key in ["val.f1_micro", "val.f1_macro", "val.f1_micro_tuned", "val.f1_macro_tuned"] {
        assert!((refit.metrics[key] - oof[key]).abs() < 1e-9, "{key}: {} against {}", refit.metrics[key], oof[key]);
    }

    // The final model ran the folds' mean best epoch; epochs are numbered on across phases.
    let mean = best.iter().map(|&e| f64::from(e)).sum::<f64>() / 3.0;
    let final_epochs = (mean.round() as usize).max(1);
    assert_eq!(refit.metrics["cv.refit_epochs"], final_epochs as f64);
    let last: Vec<&train::EpochReport> = epochs.iter().filter(|r| r.metrics["cv.fold"] == 3.0).collect();
    assert_eq!(last.len(), final_epochs);
    assert!(last.iter().all(|r| !r.metrics.contains_key("val.f1_micro")), "no validation rows in the final phase");
    assert_eq!(epochs.iter().map(|r| r.epoch).collect::<Vec<_>>(), (1..=epochs.len() as u32).collect::<Vec<_>>());
    assert_eq!(refit.best_epoch as usize, epochs.len(), "the final model is its last epoch");
    assert_eq!(refit.history.len(), epochs.len());

    // More labels reach the per-label tuning's minimum of positives than on one split.
    let single = {
        let mut c = sweep_testenv::small_config();
        c.dataset.split = sweep_file::SplitMethod::Iterative;
        load(&c.dataset).unwrap()
    };
    let tuned = |y: &[u8]| {
        (0..l).filter(|&j| y.chunks(l).filter(|r| r[j] != 0).count() as u64 >= metrics::MIN_LABEL_POSITIVES).count()
    };
    eprintln!("labels with their own threshold: one 10% split {}, out-of-fold {}", tuned(&single.val.y), tuned(&y));
    assert!(tuned(&y) > tuned(&single.val.y));
}

#[test]
fn a_refit_trial_refuses_what_it_cannot_be() {
    let mut cfg = refit_config();
    cfg.dataset.cv_refit = false;
    let load = |d: &DatasetConfig| DatasetCache::default().get(d).map_err(|e| TrainError::User(e.to_string()));
    let control = train::Control::default();
    let e = train::train_refit(&cfg, &load, tch::Device::Cpu, &mut |_| {}, &control).unwrap_err();
    assert!(e.to_string().contains("not a refit trial"), "{e}");
    // Cancelled in a fold: no result.
    let cfg = refit_config();
    let r = train::train_refit(&cfg, &load, tch::Device::Cpu, &mut |_| {}, &train::Control::cancelled());
    assert!(matches!(r, Err(TrainError::Cancelled)));
}
