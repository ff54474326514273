//! Real libtorch training on small data: loss settings matter, cancel works, and a
//! dataset that cannot load is a user error. (Determinism is in its own test binary:
//! libtorch's RNG is process-global, so parallel tests would interleave draws.)

use sweep_file::TrialConfig;
use sweep_trainer::{data, train};

fn small() -> TrialConfig {
    sweep_testenv::small_config()
}

#[test]
fn focal_and_class_weights_change_the_result() {
    let mut cfg = small();
    cfg.train.epochs = 2;
    let ds = data::load(&cfg.dataset).unwrap();
    let control = train::Control::default();
    let base = train::train_one(&ds, &cfg, tch::Device::Cpu, &mut |_| {}, &control).unwrap();
    cfg.loss.focal_gamma = 3.0;
    let focal = train::train_one(&ds, &cfg, tch::Device::Cpu, &mut |_| {}, &control).unwrap();
    assert_ne!(base.metrics["val.loss"], focal.metrics["val.loss"]);
}

#[test]
fn cancel_flag_stops_training() {
    let cfg = small();
    let ds = data::load(&cfg.dataset).unwrap();
    let control = train::Control::cancelled();
    let r = train::train_one(&ds, &cfg, tch::Device::Cpu, &mut |_| {}, &control);
    assert!(matches!(r, Err(train::TrainError::Cancelled)));
}

#[test]
fn missing_dataset_is_a_user_error() {
    let mut cfg = small();
    cfg.dataset = sweep_file::DatasetConfig::mulan("no-such-dataset");
    let e = data::load(&cfg.dataset).unwrap_err().to_string();
    assert!(e.contains("no-such-dataset"), "{e}");
}

/// Each loss kind trains end to end: finite losses, F1 in range, and a different
/// trajectory from plain BCE.
#[test]
fn every_loss_kind_trains() {
    let mut cfg = small();
    cfg.train.epochs = 3;
    cfg.loss.class_weight.scheme = sweep_file::WeightScheme::None;
    let ds = data::load(&cfg.dataset).unwrap();
    let control = train::Control::default();
    let mut val_losses = Vec::new();
    for kind in [sweep_file::LossKind::Bce, sweep_file::LossKind::Asl, sweep_file::LossKind::Db] {
        cfg.loss.kind = kind;
        assert!(cfg.check().is_empty(), "{kind:?}: {:?}", cfg.check());
        let r = train::train_one(&ds, &cfg, tch::Device::Cpu, &mut |_| {}, &control).unwrap();
        let (loss, f1) = (r.metrics["val.loss"], r.metrics["test.f1_micro"]);
        assert!(loss.is_finite() && (0.0..=1.0).contains(&f1), "{kind:?}: loss {loss}, f1 {f1}");
        val_losses.push(loss);
    }
    assert!(val_losses[0] != val_losses[1] && val_losses[0] != val_losses[2], "{val_losses:?}");
}
