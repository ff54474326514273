//! Parity with PyTorch on real data: the worker and `bench/torch_train.py` (plain
//! PyTorch, F1 from scikit-learn, losses from `bench/losses.py`) train the same bibtex
//! trial with each loss kind (focal, ASL, DB); test micro- and macro-F1 agree within
//! 0.01. The full 3-seed comparison with timings is `bench/compare.sh --losses ...`.

use std::path::Path;
use std::process::Command;

#[test]
fn worker_matches_pytorch_on_bibtex_with_every_loss_kind() {
    let (Some(_), Some(python)) = (sweep_testkit::mulan_dir("bibtex"), sweep_testkit::torch_python()) else {
        return;
    };
    let mut focal = bibtex_trial();
    (focal.loss.class_weight.cap, focal.loss.focal_gamma) = (7.0, 2.0);
    let mut asl = bibtex_trial();
    (asl.loss.kind, asl.loss.class_weight.scheme) = (sweep_file::LossKind::Asl, sweep_file::WeightScheme::None);
    let mut db = bibtex_trial();
    (db.loss.kind, db.loss.class_weight.scheme) = (sweep_file::LossKind::Db, sweep_file::WeightScheme::None);
    for c in [focal, asl, db] {
        same_f1(&python, &c);
    }
}

/// A short bibtex trial, fully resolved (as `sweep validate -o json` prints one).
fn bibtex_trial() -> sweep_file::TrialConfig {
    let mut c = sweep_file::TrialConfig { dataset: sweep_file::DatasetConfig::mulan("bibtex"), ..Default::default() };
    c.model.hidden = vec![256];
    c.train.epochs = 3;
    c.train.patience = 0;
    c.train.seed = 1;
    c
}

/// Trains `c` in the worker and in PyTorch and compares test F1.
fn same_f1(python: &str, c: &sweep_file::TrialConfig) {
    let kind = c.loss.kind.as_str();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("trial.json");
    std::fs::write(&cfg, serde_json::to_string(c).unwrap()).unwrap();
    let (w, t) = (dir.path().join("w.json"), dir.path().join("t.json"));
    let worker = Command::new(env!("CARGO_BIN_EXE_sweep-worker"))
        .args(["train", "--device", "cpu", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&w)
        .output()
        .unwrap();
    assert!(worker.status.success(), "{}", String::from_utf8_lossy(&worker.stderr));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/torch_train.py");
    let torch = Command::new(python).arg(script).arg("--config").arg(&cfg).arg("--out").arg(&t).output().unwrap();
    assert!(torch.status.success(), "{}", String::from_utf8_lossy(&torch.stderr));
    let read = |p: &Path| -> serde_json::Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
    let (wm, tm) = (read(&w)["metrics"].clone(), read(&t)["metrics"].clone());
    // (metric, floor that shows the model learned something in 3 epochs, whatever the loss)
    for (k, floor) in [("test.f1_micro", 0.1), ("test.f1_macro", 0.01)] {
        let (a, b) = (wm[k].as_f64().unwrap(), tm[k].as_f64().unwrap());
        assert!((a - b).abs() <= 0.01, "{kind} {k}: worker {a:.4} vs pytorch {b:.4}");
        assert!(a > floor, "{kind} {k} = {a}: the model should have learned something");
    }
}
