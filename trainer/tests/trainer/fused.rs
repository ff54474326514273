//! The training array: K trials as one stacked model give each trial the numbers it gets
//! alone (same seeds, CPU): per-epoch training loss within 1e-5 relative, final metrics
//! within 1e-4, with mixed caps, gammas, loss kinds, learning rates, dropout, clipping
//! and seeds; each model stops early on its own; cancelling one leaves the others as
//! they were.

use sweep_file::{LossKind, TrialConfig, WeightScheme};
use sweep_trainer::data::{self, Dataset};
use sweep_trainer::train::{self, Control, TrainError, TrialResult};
use tch::Device;

/// Nine configs that differ in everything a stack lets differ.
fn grid() -> Vec<TrialConfig> {
    let mut base = sweep_testenv::small_config();
    base.train.epochs = 4;
    base.train.batch_size = 128;
    base.model.hidden = vec![48, 32];
    base.train.patience = 0;
    let mut out = Vec::new();
    for i in 0..9u64 {
        let mut c = base.clone();
        c.train.seed = 100 + i;
        c.train.lr = [1e-3, 3e-3, 1e-2][i as usize % 3];
        c.train.weight_decay = [0.0, 0.01, 0.1][i as usize / 3];
        c.model.dropout = [0.0, 0.2, 0.4][(i as usize + 1) % 3];
        c.loss.class_weight.scheme = if i % 4 == 0 { WeightScheme::None } else { WeightScheme::NegPos };
        c.loss.class_weight.cap = [1.0, 5.0, 10.0][i as usize % 3];
        c.loss.focal_gamma = [0.0, 1.0, 2.0, 3.0][i as usize % 4];
        c.train.grad_clip = if i % 2 == 0 { 0.0 } else { 1.0 };
        c.loss.kind = match i {
            7 => LossKind::Asl,
            8 => LossKind::Db,
            _ => LossKind::Bce,
        };
        if c.loss.kind != LossKind::Bce {
            c.loss.focal_gamma = 0.0;
        }
        if c.loss.kind == LossKind::Db {
            c.loss.class_weight.scheme = WeightScheme::None;
        }
        assert!(c.check().is_empty(), "config {i}: {:?}", c.check());
        out.push(c);
    }
    out
}

fn alone(ds: &Dataset, cfg: &TrialConfig) -> TrialResult {
    train::train_one(ds, cfg, Device::Cpu, &mut |_| {}, &Control::default()).unwrap()
}

fn fused(ds: &Dataset, cfgs: &[TrialConfig], controls: &[&Control]) -> Vec<Result<TrialResult, TrainError>> {
    train::train_fused(ds, cfgs, Device::Cpu, &mut |_, _| {}, controls)
}

fn assert_same(what: &str, got: &TrialResult, want: &TrialResult) {
    assert_eq!(got.history.len(), want.history.len(), "{what}: epochs run");
    assert_eq!(got.best_epoch, want.best_epoch, "{what}: best epoch");
    for (g, w) in got.history.iter().zip(&want.history) {
        let (a, b) = (g.metrics["train.loss"], w.metrics["train.loss"]);
        assert!((a - b).abs() <= 1e-5 * b.abs(), "{what}: epoch {} train.loss {a} vs {b} alone", g.epoch);
    }
    for (name, w) in &want.metrics {
        if name.starts_with("val.") || name.starts_with("test.") {
            let g = got.metrics[name];
            assert!((g - w).abs() <= 1e-4, "{what}: {name} {g} vs {w} alone");
        }
    }
}

#[test]
fn a_stack_gives_each_trial_its_numbers_alone() {
    let cfgs = grid();
    let ds = data::load(&cfgs[0].dataset).unwrap();
    let solo: Vec<TrialResult> = cfgs.iter().map(|c| alone(&ds, c)).collect();
    // The configs really differ: not every trial lands on the same loss.
    let first_losses: Vec<f64> = solo.iter().map(|r| r.history[0].metrics["train.loss"]).collect();
    assert!(first_losses.windows(2).any(|w| w[0] != w[1]), "{first_losses:?}");
    let c = Control::default();
    for k in [1usize, 3, 9] {
        let controls = vec![&c; k];
        let results = fused(&ds, &cfgs[..k], &controls);
        for (i, r) in results.iter().enumerate() {
            assert_same(&format!("K={k} model {i}"), r.as_ref().unwrap(), &solo[i]);
        }
    }
}

#[test]
fn each_model_stops_on_its_own_and_a_cancel_stops_one() {
    let mut cfgs = grid()[..4].to_vec();
    // Patience on a loss that cannot keep improving at these learning rates stops models
    // at different epochs; one runs fewer epochs outright.
    for (i, c) in cfgs.iter_mut().enumerate() {
        c.train.epochs = 8;
        c.train.patience = 1;
        c.train.lr = [3e-2, 1e-3, 1e-1, 3e-3][i];
        c.metric.name = "val.loss".into();
        c.metric.goal = sweep_file::Goal::Minimize;
    }
    cfgs[3].train.epochs = 3;
    let ds = data::load(&cfgs[0].dataset).unwrap();
    let solo: Vec<TrialResult> = cfgs.iter().map(|c| alone(&ds, c)).collect();
    let epochs: Vec<usize> = solo.iter().map(|r| r.history.len()).collect();
    let mut distinct = epochs.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() >= 2, "the models stop at different epochs alone: {epochs:?}");
    let go = Control::default();
    let results = fused(&ds, &cfgs, &[&go, &go, &go, &go]);
    for (i, r) in results.iter().enumerate() {
        assert_same(&format!("early stopping, model {i}"), r.as_ref().unwrap(), &solo[i]);
    }
    let stop = Control::cancelled();
    let results = fused(&ds, &cfgs, &[&go, &stop, &go, &go]);
    assert!(matches!(results[1], Err(TrainError::Cancelled)), "model 1 was cancelled");
    for i in [0, 2, 3] {
        assert_same(&format!("beside a cancelled model, model {i}"), results[i].as_ref().unwrap(), &solo[i]);
    }
}

#[test]
fn configs_that_cannot_share_a_stack_are_refused_by_name() {
    let mut cfgs = grid()[..2].to_vec();
    cfgs[1].model.hidden = vec![16];
    let ds = data::load(&cfgs[0].dataset).unwrap();
    let c = Control::default();
    for r in fused(&ds, &cfgs, &[&c, &c]) {
        let e = r.expect_err("refused").to_string();
        assert!(e.contains("hidden") && e.contains("config 1"), "{e}");
    }
}
