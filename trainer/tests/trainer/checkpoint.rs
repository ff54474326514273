//! Checkpoints: a trial resumed from its checkpoint (at an epoch boundary, or inside an
//! epoch when suspended) ends with exactly the metrics and per-epoch history of the
//! uninterrupted run with the same seed (CPU); the bytes round-trip.

use std::sync::atomic::Ordering;

use sweep_file::TrialConfig;
use sweep_trainer::checkpoint::Checkpoint;
use sweep_trainer::data::{self, Dataset};
use sweep_trainer::train::{self, Control, TrainError, TrialResult};
use tch::Device;

fn config() -> TrialConfig {
    let mut c = sweep_testenv::small_config();
    c.train.epochs = 6;
    c.train.patience = 2;
    c.train.batch_size = 64;
    c.train.grad_clip = 1.0;
    c.loss.focal_gamma = 2.0;
    c
}

fn run(
    ds: &Dataset,
    cfg: &TrialConfig,
    control: &Control,
    resume: Option<Checkpoint>,
) -> (Result<TrialResult, TrainError>, Vec<Vec<u8>>) {
    run_reporting(ds, cfg, control, resume, &mut |_| {})
}

fn run_reporting(
    ds: &Dataset,
    cfg: &TrialConfig,
    control: &Control,
    resume: Option<Checkpoint>,
    epoch_done: &mut dyn FnMut(u32),
) -> (Result<TrialResult, TrainError>, Vec<Vec<u8>>) {
    let mut saved = Vec::new();
    let members = vec![train::Member { config: cfg, control, resume }];
    let mut r = train::train_stack(ds, members, Device::Cpu, &mut |_, r| epoch_done(r.epoch), &mut |_, ck| {
        saved.push(ck.to_bytes().unwrap())
    });
    (r.pop().unwrap(), saved)
}

fn load(bytes: &[u8], ds: &Dataset, cfg: &TrialConfig) -> Checkpoint {
    Checkpoint::from_bytes(bytes, ds.features as i64, &cfg.model.hidden, ds.labels as i64, Device::Cpu, false).unwrap()
}

fn assert_same(got: &TrialResult, want: &TrialResult) {
    let epochs = |r: &TrialResult| {
        r.history.iter().map(|h| (h.epoch, h.metrics["train.loss"], h.metrics["val.loss"])).collect::<Vec<_>>()
    };
    assert_eq!(epochs(got), epochs(want), "per-epoch history");
    assert_eq!(got.best_epoch, want.best_epoch);
    for (k, v) in &want.metrics {
        if k.starts_with("val.") || k.starts_with("test.") || k == "train.loss" {
            assert_eq!(got.metrics[k], *v, "{k}");
        }
    }
}

#[test]
fn a_resumed_trial_ends_exactly_as_the_uninterrupted_one() {
    let mut cfg = config();
    let ds = data::load(&cfg.dataset).unwrap();
    let whole = run(&ds, &cfg, &Control::default(), None).0.unwrap();
    assert!(whole.history.len() >= 4, "long enough to stop in the middle: {} epochs", whole.history.len());

    // Every two epochs: resuming from the first checkpoint (epoch 2) goes on at epoch 3.
    cfg.train.checkpoint_every = 2;
    let (full, saved) = run(&ds, &cfg, &Control::default(), None);
    assert_same(&full.unwrap(), &whole);
    assert!(!saved.is_empty(), "checkpoints were taken");
    let ck = load(&saved[0], &ds, &cfg);
    assert_eq!((ck.state.epochs_done, ck.next_epoch()), (2, 3));
    let (resumed, _) = run(&ds, &cfg, &Control::default(), Some(ck));
    let resumed = resumed.unwrap();
    assert_same(&resumed, &whole);

    // Suspended inside an epoch (from another thread, a moment into epoch 2, wherever
    // that lands): the checkpoint carries the position, and resuming from it still gives
    // the same run.
    cfg.train.checkpoint_every = 0;
    let control = Control::default();
    let first_epoch = std::sync::atomic::AtomicBool::new(false);
    let (outcome, saved) = std::thread::scope(|s| {
        s.spawn(|| {
            while !first_epoch.load(Ordering::Relaxed) {
                std::thread::yield_now();
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
            control.suspend.store(true, Ordering::Relaxed);
        });
        run_reporting(&ds, &cfg, &control, None, &mut |_| first_epoch.store(true, Ordering::Relaxed))
    });
    assert!(matches!(outcome, Err(TrainError::Cancelled)), "a suspended trial stops");
    assert_eq!(saved.len(), 1, "and leaves one checkpoint");
    let ck = load(&saved[0], &ds, &cfg);
    let at = ck.state.position.clone().expect("a suspended trial's checkpoint has a position");
    eprintln!("suspended in epoch {} after {} rows", ck.next_epoch(), at.start);
    let (resumed, _) = run(&ds, &cfg, &Control::default(), Some(ck));
    assert_same(&resumed.unwrap(), &whole);
}

#[test]
fn a_checkpoint_of_another_seed_or_shape_is_refused() {
    let mut cfg = config();
    cfg.train.checkpoint_every = 1;
    cfg.train.epochs = 2;
    let ds = data::load(&cfg.dataset).unwrap();
    let (_, saved) = run(&ds, &cfg, &Control::default(), None);
    let mut other = cfg.clone();
    other.train.seed += 1;
    let e = run(&ds, &other, &Control::default(), Some(load(&saved[0], &ds, &cfg))).0.err().unwrap().to_string();
    assert!(e.contains("seed"), "{e}");
    let wider = Checkpoint::from_bytes(&saved[0], ds.features as i64, &[128], ds.labels as i64, Device::Cpu, false);
    assert!(wider.is_err(), "weights of another shape are refused");
    assert!(Checkpoint::from_bytes(b"garbage", 1, &[1], 1, Device::Cpu, false).is_err());
}
