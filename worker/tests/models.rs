//! The winning model out: a sweep on bibtex keeps the models of its best trials in the
//! blob store, `sweep model get best` downloads one, `sweep-worker predict` scores
//! bibtex's test split with it, and scikit-learn's F1 of those predictions equals the
//! F1 the trial reported.

use std::process::Command;
use std::time::Duration;

use sweep_testkit::procs::{bin, Cluster, LEASE_MS};

/// F1 from predict's JSON lines, by scikit-learn: `micro` or `macro`.
const SKLEARN_F1: &str = r#"
import json, sys
from sklearn.metrics import f1_score
from sklearn.preprocessing import MultiLabelBinarizer
labels = json.load(open(sys.argv[1]))["label_names"]
rows = [json.loads(l) for l in open(sys.argv[2])]
mlb = MultiLabelBinarizer(classes=labels)
y_true = mlb.fit_transform([r["true"] for r in rows])
y_pred = mlb.transform([r["labels"] for r in rows])
print(repr(f1_score(y_true, y_pred, average=sys.argv[3], zero_division=0)))
"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_best_model_comes_out_and_predicts_what_its_trial_reported() {
    let Some(c) = Cluster::new().await else { return };
    let Some(bibtex) = sweep_testkit::mulan_dir("bibtex") else { return };
    let Some(python) = sweep_testkit::torch_python() else { return };
    let store = c.dir.path().join("blobs");
    let _coord = c.coordinator_with(LEASE_MS, 500, &["--blob-store", store.to_str().unwrap(), "--keep-models", "2"]);
    let yaml = "name: models\ndataset: {kind: mulan, name: bibtex}\nmodel: {hidden: [64], dropout: 0.1}\n\
                train: {epochs: 2, batch_size: 256}\nparameters:\n  loss.focal_gamma: {values: [0, 1, 2]}\n";
    let file = c.dir.path().join("models.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = c.cli(&["submit", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sweep = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let _w = c.worker("m", &c.addr(), &[]);
    c.settled(Duration::from_secs(300)).await;

    // Three succeeded; the two best keep their models, the third's was deleted.
    let kept: Vec<(String, f64)> =
        sqlx::query_as("SELECT model_blob, objective FROM trials WHERE model_blob IS NOT NULL ORDER BY objective DESC")
            .fetch_all(&c.db)
            .await
            .unwrap();
    assert_eq!(kept.len(), 2, "--keep-models 2");
    let worst: f64 = sqlx::query_scalar("SELECT min(objective) FROM trials").fetch_one(&c.db).await.unwrap();
    assert!(kept.iter().all(|(_, o)| *o >= worst));
    let models_in_store =
        sweep_testkit::procs::files_under(&store).iter().filter(|p| !p.to_string_lossy().contains(".staging")).count();
    assert_eq!(models_in_store, 3 + 2, "three data files and two models stored");

    let dir = c.dir.path().join("best-model");
    let got = c.cli(&["model", "get", "best", "--sweep", &sweep, "--out", dir.to_str().unwrap(), "-o", "json"]);
    assert!(got.status.success(), "{}", String::from_utf8_lossy(&got.stderr));
    let got: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(got["model_sha256"].as_str().unwrap(), kept[0].0, "best is the top objective's model");
    let reported: serde_json::Value = sqlx::query_scalar("SELECT metrics FROM trials WHERE model_blob = $1")
        .bind(&kept[0].0)
        .fetch_one(&c.db)
        .await
        .unwrap();

    for (thresholds, average, metric) in
        [("global", "micro", "test.f1_micro_tuned"), ("per-label", "macro", "test.f1_macro_tuned")]
    {
        let pred = c.dir.path().join(format!("pred-{thresholds}.jsonl"));
        let scored = Command::new(bin("sweep-worker"))
            .args(["predict", "--device", "cpu", "--thresholds", thresholds, "--model"])
            .arg(&dir)
            .arg("--input")
            .arg(bibtex.join("bibtex-test.arff"))
            .arg("--out")
            .arg(&pred)
            .output()
            .unwrap();
        assert!(scored.status.success(), "{}", String::from_utf8_lossy(&scored.stderr));
        assert_eq!(std::fs::read_to_string(&pred).unwrap().lines().count(), 2515, "one line per test row");
        let f1 = Command::new(&python)
            .args(["-c", SKLEARN_F1])
            .arg(dir.join("model.json"))
            .arg(&pred)
            .arg(average)
            .output()
            .unwrap();
        assert!(f1.status.success(), "{}", String::from_utf8_lossy(&f1.stderr));
        let sklearn: f64 = String::from_utf8(f1.stdout).unwrap().trim().parse().unwrap();
        let trial = reported[metric].as_f64().unwrap();
        assert!((sklearn - trial).abs() < 1e-6, "{metric}: scikit-learn {sklearn} vs reported {trial}");
    }
}
