//! Determinism on CPU and the flat metric names. Alone in its test binary because
//! libtorch's random generator is process-global: concurrent trainings in one process
//! interleave their draws.

use sweep_spec::TrialConfig;
use sweep_trainer::{data, train};

fn small() -> TrialConfig {
    let mut c = sweep_testkit::small_config();
    c.train.epochs = 10;
    c.train.lr = 3e-3;
    c
}

#[test]
fn cpu_training_is_deterministic_and_reports_every_metric() {
    let mut cfg = small();
    cfg.train.patience = 0;
    let ds = data::load(&cfg.dataset).unwrap();
    let control = train::Control::default();
    let mut epochs = Vec::new();
    let a = train::train_one(&ds, &cfg, tch::Device::Cpu, &mut |r| epochs.push(r.epoch), &control).unwrap();
    let b = train::train_one(&ds, &cfg, tch::Device::Cpu, &mut |_| {}, &control).unwrap();
    assert_eq!(epochs, (1..=10).collect::<Vec<u32>>());
    for k in [
        "val.f1_micro",
        "test.f1_micro",
        "test.f1_macro",
        "test.f1_micro_tuned",
        "test.f1_macro_tuned",
        "test.f1_weighted",
        "test.f1_samples",
        "test.f1_macro_tail",
    ] {
        assert!(a.metrics.contains_key(k), "{k} missing");
        assert_eq!(a.metrics[k], b.metrics[k], "{k} differs between identical runs");
    }
    assert!(a.metrics["test.f1_micro"] > 0.2, "it learned something: {:?}", a.metrics);
    // Tuned micro-F1 is never worse than untuned on validation.
    assert!(a.metrics["val.f1_micro_tuned"] >= a.metrics["val.f1_micro"]);
}
