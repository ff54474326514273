//! A pretrained encoder's frozen tier end to end: the seed's 9-cell grid (class-weight cap
//! x focal gamma) over heads on a tiny saved DistilBERT, submitted from a directory the
//! worker cannot see (the model directory and the data shipped as blobs), trained as one
//! stack of nine on embeddings computed once; `sweep model get best` brings the encoder
//! along, and `sweep-worker predict` on the raw test texts gives scikit-learn the F1 the
//! trial reported.

use std::process::Command;
use std::time::Duration;

use sweep_testkit::procs::{bin, Cluster, LEASE_MS};

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_encoder_grid_trains_as_one_stack_and_its_model_predicts_raw_text() {
    let Some(c) = Cluster::new().await else { return };
    let Some(python) = sweep_testkit::torch_python() else { return };
    let has = Command::new(&python).args(["-c", "import transformers"]).status().unwrap();
    if !has.success() {
        return sweep_testkit::skip(format!("{python} has no transformers (scripts/setup.sh installs it)"))
            .unwrap_or(());
    }
    let store = c.dir.path().join("blobs");
    let _coord = c.coordinator_with(LEASE_MS, 500, &["--blob-store", store.to_str().unwrap()]);
    let project = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../trainer/tests/reference/make_encoders.py");
    let made = Command::new(&python).arg(script).arg(project.path().join("models")).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    std::fs::create_dir_all(project.path().join("data")).unwrap();
    crate::models::write_text(&project.path().join("data/train.tsv"), 600, 1);
    crate::models::write_text(&project.path().join("data/test.tsv"), 200, 2);
    let yaml = "name: frozen-encoder\n\
        dataset: {kind: text, train: data/train.tsv, test: data/test.tsv, labels: label}\n\
        model: {kind: encoder, path: models/distilbert, freeze: true, pooling: mean, max_length: 24, hidden: []}\n\
        train: {epochs: 6, batch_size: 64, lr: 0.02}\n\
        parameters:\n  loss.class_weight.cap: {values: [1, 3, 7]}\n  loss.focal_gamma: {values: [0, 1, 3]}\n";
    std::fs::write(project.path().join("sweep.yaml"), yaml).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let submit = |file: &str| {
        Command::new(bin("sweep"))
            .current_dir(elsewhere.path())
            .arg("submit")
            .arg(project.path().join(file))
            .args(["--coordinator", &c.addr()])
            .env("SWEEP_TOKEN_FILE", &c.token)
            .env_remove("SWEEP_DATA_DIR")
            .output()
            .unwrap()
    };
    // A directory whose tokenizer is another model's: one line, nothing uploaded or stored.
    let bad = project.path().join("models/mixed");
    std::fs::create_dir(&bad).unwrap();
    for (f, from) in [("config.json", "distilbert"), ("model.safetensors", "distilbert"), ("tokenizer.json", "roberta")]
    {
        std::fs::copy(project.path().join("models").join(from).join(f), bad.join(f)).unwrap();
    }
    std::fs::write(project.path().join("bad.yaml"), yaml.replace("models/distilbert", "models/mixed")).unwrap();
    let files = |dir: &std::path::Path| -> Vec<std::path::PathBuf> {
        let mut all = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    todo.push(e.path())
                } else {
                    all.push(e.path())
                }
            }
        }
        all
    };
    let refused = submit("bad.yaml");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        said.contains("bad.yaml: model.path `models/mixed`: ") && said.contains("tokenizer.json: ids up to"),
        "{said}"
    );
    let sweeps: i64 = sqlx::query_scalar("SELECT count(*) FROM sweeps").fetch_one(&c.db).await.unwrap();
    assert_eq!((sweeps, files(&store)), (0, vec![]), "nothing stored");
    let out = submit("sweep.yaml");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("data models/distilbert: "), "the model directory is uploaded as one blob: {said}");
    let sweep = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let mut cmd = Command::new(bin("sweep-worker"));
    cmd.current_dir(elsewhere.path()).env("SWEEP_DATA_DIR", elsewhere.path().join("nothing"));
    let cache = elsewhere.path().join("cache");
    let _w = c.worker_with(cmd, "e", &c.addr(), &["--cache-dir", cache.to_str().unwrap(), "--fuse", "9"]);
    c.settled(Duration::from_secs(240)).await;
    let trials = c.cli(&["trials", &sweep, "-o", "json"]);
    assert!(trials.status.success(), "{}", String::from_utf8_lossy(&trials.stderr));
    let trials: serde_json::Value = serde_json::from_slice(&trials.stdout).unwrap();
    let trials = trials["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 9);
    for t in trials {
        assert_eq!(t["state"], "succeeded", "{t}");
        assert_eq!(t["metrics"]["stack_size"], 9.0, "trained in one stack of nine: {t}");
    }
    let names: Vec<String> =
        std::fs::read_dir(&cache).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names.iter().filter(|n| n.starts_with("featurized-")).count(), 1, "embedded once: {names:?}");
    assert_eq!(names.iter().filter(|n| n.ends_with(".d")).count(), 1, "the model directory unpacked once: {names:?}");

    let dir = elsewhere.path().join("model");
    let got = c.cli(&["model", "get", "best", "--sweep", &sweep, "--out", dir.to_str().unwrap()]);
    assert!(got.status.success(), "{}", String::from_utf8_lossy(&got.stderr));
    for f in sweep_file::ENCODER_FILES {
        assert!(dir.join("encoder").join(f).is_file(), "the encoder comes with the model: {f}");
    }
    let test = project.path().join("data/test.tsv");
    let sklearn = crate::models::predicted_micro_f1(&python, &dir, &test, elsewhere.path(), 200);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("model.json")).unwrap()).unwrap();
    let reported = manifest["metrics"]["test.f1_micro_tuned"].as_f64().unwrap();
    assert!((sklearn - reported).abs() < 1e-6, "scikit-learn {sklearn} vs reported {reported}");
    assert!(reported > 0.0, "{reported}");
}
