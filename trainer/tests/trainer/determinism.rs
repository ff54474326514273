//! Determinism on CPU and the flat metric names, also while other trainings run in the
//! same process (the worker's `--slots`): a trial draws nothing from libtorch's global
//! generator after its initialisation, which takes turns.

use sweep_file::TrialConfig;
use sweep_trainer::{data, train};

fn small() -> TrialConfig {
    let mut c = sweep_testenv::small_config();
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
    // Two more of the same trial, concurrently, beside a trial with another seed.
    let mut other = cfg.clone();
    other.train.seed += 1;
    let (b, c, d) = std::thread::scope(|s| {
        let run = |cfg: &TrialConfig| {
            let ds = &ds;
            let cfg = cfg.clone();
            s.spawn(move || train::train_one(ds, &cfg, tch::Device::Cpu, &mut |_| {}, &train::Control::default()))
        };
        let (b, c, d) = (run(&cfg), run(&other), run(&cfg));
        (b.join().unwrap().unwrap(), c.join().unwrap().unwrap(), d.join().unwrap().unwrap())
    });
    assert_ne!(c.metrics["val.loss"], a.metrics["val.loss"], "another seed, another run");
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
        assert_eq!(a.metrics[k], d.metrics[k], "{k} differs between identical runs");
    }
    assert!(a.metrics["test.f1_micro"] > 0.2, "it learned something: {:?}", a.metrics);
    // Tuned micro-F1 is never worse than untuned on validation.
    assert!(a.metrics["val.f1_micro_tuned"] >= a.metrics["val.f1_micro"]);
}
