//! Parity with PyTorch on real data: the worker and `bench/torch_train.py` (plain
//! PyTorch, F1 from scikit-learn) train the same bibtex trial; test micro- and macro-F1
//! agree within 0.01. The full 3-seed comparison with timings is `bench/compare.sh`.

use std::path::Path;
use std::process::Command;

#[test]
fn worker_matches_pytorch_on_bibtex() {
    let (Some(_), Some(python)) = (sweep_testkit::mulan_dir("bibtex"), sweep_testkit::torch_python()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("trial.json");
    // A fully resolved config, as `sweep validate -o json` prints one.
    let mut c = sweep_spec::TrialConfig::default();
    c.dataset.kind = sweep_spec::DatasetKind::Mulan;
    c.dataset.name = Some("bibtex".into());
    c.model.hidden = vec![256];
    c.train.epochs = 3;
    c.train.patience = 0;
    c.train.seed = 1;
    c.loss.class_weight.cap = 7.0;
    c.loss.focal_gamma = 2.0;
    std::fs::write(&cfg, serde_json::to_string(&c).unwrap()).unwrap();
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
    let torch = Command::new(&python).arg(script).arg("--config").arg(&cfg).arg("--out").arg(&t).output().unwrap();
    assert!(torch.status.success(), "{}", String::from_utf8_lossy(&torch.stderr));
    let read = |p: &Path| -> serde_json::Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
    let (wm, tm) = (read(&w)["metrics"].clone(), read(&t)["metrics"].clone());
    // (metric, floor that shows the model learned something in 3 epochs)
    for (k, floor) in [("test.f1_micro", 0.2), ("test.f1_macro", 0.03)] {
        let (a, b) = (wm[k].as_f64().unwrap(), tm[k].as_f64().unwrap());
        assert!((a - b).abs() <= 0.01, "{k}: worker {a:.4} vs pytorch {b:.4}");
        assert!(a > floor, "{k} = {a}: the model should have learned something");
    }
}
