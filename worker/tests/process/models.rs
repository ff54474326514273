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

/// `sweep-worker predict` with the model in `dir` on the raw texts of `input` (`rows` of
/// them), and scikit-learn's micro-F1 of its predictions.
pub(crate) fn predicted_micro_f1(
    python: &str,
    dir: &std::path::Path,
    input: &std::path::Path,
    scratch: &std::path::Path,
    rows: usize,
) -> f64 {
    let pred = scratch.join("pred.jsonl");
    let scored = Command::new(bin("sweep-worker"))
        .args(["predict", "--device", "cpu", "--model"])
        .arg(dir)
        .arg("--input")
        .arg(input)
        .arg("--out")
        .arg(&pred)
        .output()
        .unwrap();
    assert!(scored.status.success(), "{}", String::from_utf8_lossy(&scored.stderr));
    assert_eq!(std::fs::read_to_string(&pred).unwrap().lines().count(), rows);
    let f1 = Command::new(python)
        .args(["-c", SKLEARN_F1])
        .arg(dir.join("model.json"))
        .arg(&pred)
        .arg("micro")
        .output()
        .unwrap();
    assert!(f1.status.success(), "{}", String::from_utf8_lossy(&f1.stderr));
    String::from_utf8(f1.stdout).unwrap().trim().parse().unwrap()
}

/// Text with label ids: label j is signalled by the words `w{j}a` / `w{j}b` among filler.
pub(crate) fn write_text(path: &std::path::Path, rows: usize, seed: u64) {
    let mut x = seed;
    let mut next = move || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) as usize
    };
    let mut out = String::from("id\ttext\tlabel\n");
    for i in 0..rows {
        let labels: Vec<usize> = (0..6).filter(|_| next() % 4 == 0).collect();
        let mut words: Vec<String> = (0..8).map(|_| format!("filler{}", next() % 40)).collect();
        for &j in &labels {
            words.insert(next() % words.len(), format!("w{j}{}", if next() % 3 == 0 { "a" } else { "b" }));
        }
        let ids: Vec<String> = labels.iter().map(|j| j.to_string()).collect();
        out.push_str(&format!("r{i}\t\"{}, indeed\"\t{}\n", words.join(" "), ids.join(",")));
    }
    std::fs::write(path, out).unwrap();
}

/// Raw text end to end: a text sweep submitted from another directory (its files shipped
/// as blobs) trains on a worker with no data of its own; the best model comes out with
/// its fitted featurizer, `sweep-worker predict` reads the raw test texts, and
/// scikit-learn's micro-F1 of its predictions equals the trial's `test.f1_micro_tuned`.
#[tokio::test(flavor = "multi_thread")]
async fn a_text_model_predicts_raw_text_as_its_trial_scored_it() {
    let Some(c) = Cluster::new().await else { return };
    let Some(python) = sweep_testkit::torch_python() else { return };
    let store = c.dir.path().join("blobs");
    let _coord = c.coordinator_with(LEASE_MS, 500, &["--blob-store", store.to_str().unwrap()]);
    let project = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(project.path().join("data")).unwrap();
    write_text(&project.path().join("data/train.tsv"), 600, 1);
    write_text(&project.path().join("data/test.tsv"), 200, 2);
    std::fs::write(project.path().join("data/labels.txt"), "joy\nanger\nfear\nlove\ngrief\nnone of these\n").unwrap();
    let yaml = "name: text-e2e\n\
        dataset:\n  kind: text\n  train: data/train.tsv\n  test: data/test.tsv\n  labels: label\n  label_names: data/labels.txt\n\
        \x20 features: {kind: tfidf, ngram: [1, 2], sublinear_tf: true}\n\
        model: {hidden: [32], dropout: 0.1}\ntrain: {epochs: 4, batch_size: 64, lr: 0.01}\n\
        parameters:\n  dataset.features.ngram: {values: [[1, 1], [1, 2]]}\n";
    std::fs::write(project.path().join("text.yaml"), yaml).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new(bin("sweep"))
        .current_dir(elsewhere.path())
        .arg("submit")
        .arg(project.path().join("text.yaml"))
        .args(["--coordinator", &c.addr()])
        .env("SWEEP_TOKEN_FILE", &c.token)
        .env_remove("SWEEP_DATA_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sweep = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let mut cmd = Command::new(bin("sweep-worker"));
    cmd.current_dir(elsewhere.path()).env("SWEEP_DATA_DIR", elsewhere.path().join("nothing"));
    let cache = elsewhere.path().join("cache");
    let _w = c.worker_with(cmd, "t", &c.addr(), &["--cache-dir", cache.to_str().unwrap()]);
    c.settled(Duration::from_secs(180)).await;
    let states: Vec<(String, String)> =
        sqlx::query_as("SELECT state, coalesce(error, '') FROM trials").fetch_all(&c.db).await.unwrap();
    assert_eq!(states.len(), 2);
    assert!(states.iter().all(|(s, _)| s == "succeeded"), "{states:?}");
    // Each featurizer setting featurized once on this machine, beside the blobs.
    let featurized = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("featurized-"))
        .count();
    assert_eq!(featurized, 2, "one featurized dataset per ngram setting");

    let dir = elsewhere.path().join("model");
    let got = c.cli(&["model", "get", "best", "--sweep", &sweep, "--out", dir.to_str().unwrap()]);
    assert!(got.status.success(), "{}", String::from_utf8_lossy(&got.stderr));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("model.json")).unwrap()).unwrap();
    assert!(
        manifest["columns"]["text"]["vocabulary"].as_array().is_some_and(|v| !v.is_empty()),
        "the fitted vocabulary travels"
    );
    let sklearn = predicted_micro_f1(&python, &dir, &project.path().join("data/test.tsv"), elsewhere.path(), 200);
    let reported = manifest["metrics"]["test.f1_micro_tuned"].as_f64().unwrap();
    assert!((sklearn - reported).abs() < 1e-6, "scikit-learn {sklearn} vs reported {reported}");
    assert!(reported > 0.5, "the signal words are learnt: {reported}");
}
