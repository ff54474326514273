//! Data to the workers through the blob store, with real processes: the CLI uploads
//! the files a sweep names, the coordinator binds their hashes into the trials, and a
//! worker with no data of its own fetches them into its cache.

use std::process::Command;
use std::time::Duration;

use sweep_testkit::procs::{bin, Cluster, LEASE_MS};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn sweep_yaml(seed: u32) -> String {
    format!(
        "name: blobs-{seed}\ndataset: {{kind: mulan, name: emotions}}\nmodel: {{hidden: [32]}}\n\
         train: {{epochs: 2, seed: {seed}}}\nparameters:\n  loss.focal_gamma: {{values: [0, 2]}}\n"
    )
}

/// `sweep submit` run from `cwd`, with the MULAN root given as --data.
fn submit_from(c: &Cluster, cwd: &std::path::Path, yaml: &str, data: &std::path::Path) -> std::process::Output {
    let file = cwd.join("sweep.yaml");
    std::fs::write(&file, yaml).unwrap();
    Command::new(bin("sweep"))
        .current_dir(cwd)
        .args(["submit", "sweep.yaml", "--data"])
        .arg(data)
        .args(["--coordinator", &c.addr()])
        .env("SWEEP_TOKEN_FILE", &c.token)
        .env_remove("SWEEP_DATA_DIR")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_submitted_from_one_directory_trains_on_a_worker_with_no_data_and_a_corrupt_cache_is_refetched() {
    let _serial = SERIAL.lock().await;
    let Some(c) = Cluster::new().await else { return };
    let Some(emotions) = sweep_testkit::mulan_dir("emotions") else { return };
    let data_root = emotions.parent().unwrap().parent().unwrap().to_path_buf();
    let store = c.dir.path().join("blobs");
    let _coord = c.coordinator_with(LEASE_MS, 500, &["--blob-store", store.to_str().unwrap()]);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cache = b.path().join("cache");

    let out = submit_from(&c, a.path(), &sweep_yaml(1), &data_root);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(said.matches("data mulan/emotions/").count(), 3, "three files uploaded: {said}");
    // The trials carry hashes, not paths.
    let config: serde_json::Value =
        sqlx::query_scalar("SELECT config FROM trials LIMIT 1").fetch_one(&c.db).await.unwrap();
    assert_eq!(config["dataset"]["blobs"].as_object().map(|b| b.len()), Some(3), "{config}");
    assert!(config["dataset"].get("train").is_none_or(|t| t.is_null()), "{config}");

    // A worker in another directory, with no data directory at all.
    let worker = || {
        let mut cmd = Command::new(bin("sweep-worker"));
        cmd.current_dir(b.path()).env("SWEEP_DATA_DIR", b.path().join("no-data-here"));
        c.worker_with(cmd, "b", &c.addr(), &["--cache-dir", cache.to_str().unwrap(), "--exit-when-idle-secs", "2"])
    };
    let mut w = worker();
    c.settled(Duration::from_secs(120)).await;
    let ok: i64 =
        sqlx::query_scalar("SELECT count(*) FROM trials WHERE state = 'succeeded'").fetch_one(&c.db).await.unwrap();
    assert_eq!(ok, 2);
    assert!(w.wait_exit(Duration::from_secs(30)));
    let cached: Vec<_> = std::fs::read_dir(&cache).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(cached.len(), 3, "{cached:?}");

    // Corrupt one cached file: the next trial notices, fetches it again, and trains.
    let victim = cached.iter().find(|p| std::fs::metadata(p).unwrap().len() > 1000).unwrap();
    let mut bytes = std::fs::read(victim).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(victim, &bytes).unwrap();
    let out = submit_from(&c, a.path(), &sweep_yaml(2), &data_root);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _w = worker();
    c.settled(Duration::from_secs(120)).await;
    let ok: i64 =
        sqlx::query_scalar("SELECT count(*) FROM trials WHERE state = 'succeeded'").fetch_one(&c.db).await.unwrap();
    assert_eq!(ok, 4, "the second sweep trained on a re-fetched file");
    let name = victim.file_name().unwrap().to_str().unwrap().to_string();
    let (actual, _) = sweep_client::blobs::hash_file(victim).await.unwrap();
    assert_eq!(actual, name, "the corrupted copy was replaced by a good one");
    c.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_data_file_is_refused_in_one_line_and_nothing_is_stored() {
    let _serial = SERIAL.lock().await;
    let Some(c) = Cluster::new().await else { return };
    let Some(emotions) = sweep_testkit::mulan_dir("emotions") else { return };
    let data_root = emotions.parent().unwrap().parent().unwrap().to_path_buf();
    let store = c.dir.path().join("blobs");
    let _coord =
        c.coordinator_with(LEASE_MS, 500, &["--blob-store", store.to_str().unwrap(), "--max-blob-bytes", "10000"]);
    let a = tempfile::tempdir().unwrap();
    let out = submit_from(&c, a.path(), &sweep_yaml(1), &data_root);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--max-blob-bytes 10000"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let stored: Vec<_> = sweep_testkit::procs::files_under(&store);
    assert!(stored.is_empty(), "nothing stored: {stored:?}");
    let sweeps: i64 = sqlx::query_scalar("SELECT count(*) FROM sweeps").fetch_one(&c.db).await.unwrap();
    assert_eq!(sweeps, 0);
}

/// One plain HTTP/1.1 request to the emulator (moto needs no signature to make a bucket,
/// list one or put an object); the response.
fn http(port: u16, method: &str, path: &str, body: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn an_s3_blob_store_serves_a_sweep_end_to_end() {
    let _serial = SERIAL.lock().await;
    let Some(c) = Cluster::new().await else { return };
    let Some(emotions) = sweep_testkit::mulan_dir("emotions") else { return };
    let Some(moto) = sweep_testkit::procs::Moto::start() else { return };
    let data_root = emotions.parent().unwrap().parent().unwrap().to_path_buf();
    assert!(http(moto.port, "PUT", "/sweep-blobs", b"").starts_with("HTTP/1.1 200"), "bucket made");
    let mut env = sweep_testkit::procs::Moto::env(&moto.url());
    env.push(("AWS_ALLOW_HTTP", "true".into()));
    let staging = c.dir.path().join("staging");
    let _coord = c.coordinator_env(
        c.port,
        LEASE_MS,
        500,
        &["--blob-store", "s3://sweep-blobs/team-a", "--blob-staging", staging.to_str().unwrap()],
        &env,
    );
    let a = tempfile::tempdir().unwrap();
    let out = submit_from(&c, a.path(), &sweep_yaml(3), &data_root);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = http(moto.port, "GET", "/sweep-blobs?list-type=2", b"");
    assert_eq!(listing.matches("<Key>team-a/sha256/").count(), 3, "three blobs under the prefix: {listing}");
    let b = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin("sweep-worker"));
    cmd.current_dir(b.path()).env("SWEEP_DATA_DIR", b.path().join("no-data-here"));
    let _w = c.worker_with(cmd, "s3", &c.addr(), &["--cache-dir", b.path().join("cache").to_str().unwrap()]);
    c.settled(Duration::from_secs(120)).await;
    let ok: i64 =
        sqlx::query_scalar("SELECT count(*) FROM trials WHERE state = 'succeeded'").fetch_one(&c.db).await.unwrap();
    assert_eq!(ok, 2);
}

/// A sweep whose dataset paths are `s3://` URIs: `sweep submit` uploads nothing, the
/// trials keep the URIs, and a worker with no data of its own reads the objects from the
/// store (moto's S3) into its cache, once for both trials.
#[tokio::test(flavor = "multi_thread")]
async fn dataset_paths_given_as_s3_uris_are_read_by_the_worker_directly() {
    let _serial = SERIAL.lock().await;
    let Some(c) = Cluster::new().await else { return };
    let Some(emotions) = sweep_testkit::mulan_dir("emotions") else { return };
    let Some(moto) = sweep_testkit::procs::Moto::start() else { return };
    assert!(http(moto.port, "PUT", "/sweep-data", b"").starts_with("HTTP/1.1 200"), "bucket made");
    for f in ["emotions-train.arff", "emotions-test.arff", "emotions.xml"] {
        let body = std::fs::read(emotions.join(f)).unwrap();
        assert!(
            http(moto.port, "PUT", &format!("/sweep-data/mulan/{f}"), &body).starts_with("HTTP/1.1 200"),
            "{f} stored"
        );
    }
    let _coord = c.coordinator();
    let a = tempfile::tempdir().unwrap();
    let yaml = "name: s3-data\ndataset: {kind: mulan, train: s3://sweep-data/mulan/emotions-train.arff, \
                test: s3://sweep-data/mulan/emotions-test.arff}\nmodel: {hidden: [32]}\ntrain: {epochs: 2}\n\
                parameters:\n  loss.focal_gamma: {values: [0, 2]}\n";
    let out = submit_from(&c, a.path(), yaml, a.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("data s3://"), "nothing uploaded");
    let config: serde_json::Value =
        sqlx::query_scalar("SELECT config FROM trials LIMIT 1").fetch_one(&c.db).await.unwrap();
    assert_eq!(config["dataset"]["train"], "s3://sweep-data/mulan/emotions-train.arff", "{config}");

    let b = tempfile::tempdir().unwrap();
    let cache = b.path().join("cache");
    let mut cmd = Command::new(bin("sweep-worker"));
    cmd.current_dir(b.path()).env("SWEEP_DATA_DIR", b.path().join("no-data-here"));
    let mut env = sweep_testkit::procs::Moto::env(&moto.url());
    env.push(("AWS_ALLOW_HTTP", "true".into()));
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let _w = c.worker_with(cmd, "s3-reader", &c.addr(), &["--cache-dir", cache.to_str().unwrap()]);
    c.settled(Duration::from_secs(120)).await;
    let ok: i64 =
        sqlx::query_scalar("SELECT count(*) FROM trials WHERE state = 'succeeded'").fetch_one(&c.db).await.unwrap();
    assert_eq!(ok, 2);
    let fetched = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("s3-"))
        .count();
    assert_eq!(fetched, 3, "train, test and the label file (beside train), once each");
}

/// A small XC dataset with signal: label j is on when feature j is above its threshold.
fn write_xc(path: &std::path::Path, rows: usize, seed: u64) {
    let mut s = String::from(&format!("{rows} 12 4\n"));
    let mut x = seed;
    for _ in 0..rows {
        let mut feats = Vec::new();
        let mut labels = Vec::new();
        for f in 0..12 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let v = ((x >> 33) % 1000) as f32 / 1000.0;
            if v > 0.3 {
                feats.push(format!("{f}:{v:.3}"));
                if f < 4 && v > 0.6 {
                    labels.push(f.to_string());
                }
            }
        }
        s.push_str(&format!("{} {}\n", labels.join(","), feats.join(" ")));
    }
    std::fs::write(path, s).unwrap();
}

/// `sweep best`'s re-run file: its dataset section, and the hash `sweep validate` gives it.
fn rerun_of(c: &Cluster, sweep: &str, dir: &std::path::Path) -> (serde_json::Value, String) {
    let out = c.cli(&["best", sweep]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let yaml = text.split("# a sweep file that re-runs this configuration:\n").nth(1).expect("a re-run file");
    let file = dir.join(format!("rerun-{sweep}.yaml"));
    std::fs::write(&file, yaml).unwrap();
    let doc: serde_json::Value = serde_norway::from_str(yaml).unwrap();
    let out = Command::new(bin("sweep")).args(["validate"]).arg(&file).args(["-o", "json"]).output().unwrap();
    assert!(out.status.success(), "{yaml}\n{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (doc["dataset"].clone(), v["trials"][0]["hash"].as_str().unwrap().to_string())
}

/// A user's own files, named by paths relative to their sweep file and submitted from
/// another directory, train on a worker that has no data directory: a MULAN and an XC
/// dataset, a TPE sweep (its proposals bind the same blobs) and a confirm sweep of the
/// first. The re-run file `sweep best` prints for a MULAN, an XC and a synthetic winner
/// holds only its dataset kind's fields and names the winner's configuration again.
#[tokio::test(flavor = "multi_thread")]
async fn own_files_by_relative_path_train_on_a_worker_without_data() {
    let _serial = SERIAL.lock().await;
    let Some(c) = Cluster::new().await else { return };
    let Some(emotions) = sweep_testkit::mulan_dir("emotions") else { return };
    let store = c.dir.path().join("blobs");
    let _coord = c.coordinator_with(LEASE_MS, 500, &["--blob-store", store.to_str().unwrap()]);
    // The user's project: their files under data/, their sweep files under sweeps/.
    let home = tempfile::tempdir().unwrap();
    let project = home.path().join("project");
    std::fs::create_dir_all(project.join("data")).unwrap();
    std::fs::create_dir_all(project.join("sweeps")).unwrap();
    for (from, to) in
        [("emotions-train.arff", "train.arff"), ("emotions-test.arff", "test.arff"), ("emotions.xml", "labels.xml")]
    {
        std::fs::copy(emotions.join(from), project.join("data").join(to)).unwrap();
    }
    write_xc(&project.join("data/xc-train.txt"), 400, 1);
    write_xc(&project.join("data/xc-test.txt"), 100, 2);
    let mulan = "dataset: {kind: mulan, train: ../data/train.arff, test: ../data/test.arff, xml: ../data/labels.xml}\n";
    let sweeps = [
        ("mulan", format!("name: own-mulan\n{mulan}model: {{hidden: [16]}}\ntrain: {{epochs: 2}}\nparameters:\n  loss.focal_gamma: {{values: [0, 2]}}\n")),
        ("xc", "name: own-xc\ndataset: {kind: xc, train: ../data/xc-train.txt, test: ../data/xc-test.txt}\nmodel: {hidden: [16]}\ntrain: {epochs: 2}\nparameters:\n  loss.focal_gamma: {values: [0, 2]}\n".to_string()),
        ("tpe", format!("name: own-tpe\nmethod: tpe\nrun_cap: 12\n{mulan}model: {{hidden: [8]}}\ntrain: {{epochs: 1}}\nparameters:\n  train.lr: {{min: 0.0005, max: 0.01, distribution: log_uniform}}\n")),
        ("synthetic", "name: own-synthetic\ndataset: {kind: synthetic, labels: 10, features: 8, train_samples: 200, test_samples: 50, max_positives: 60}\nmodel: {hidden: [8]}\ntrain: {epochs: 1}\nparameters:\n  loss.focal_gamma: {values: [0, 2]}\n".to_string()),
    ];
    // Submitted from the home directory, the sweep file's path relative to it.
    let mut ids = std::collections::BTreeMap::new();
    for (name, yaml) in &sweeps {
        std::fs::write(project.join(format!("sweeps/{name}.yaml")), yaml).unwrap();
        let out = Command::new(bin("sweep"))
            .current_dir(home.path())
            .args(["submit", &format!("project/sweeps/{name}.yaml"), "--coordinator", &c.addr()])
            .env("SWEEP_TOKEN_FILE", &c.token)
            .env_remove("SWEEP_DATA_DIR")
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        ids.insert(*name, String::from_utf8(out.stdout).unwrap().trim().to_string());
    }
    // A worker elsewhere, with no data directory and an empty cache.
    let elsewhere = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin("sweep-worker"));
    cmd.current_dir(elsewhere.path()).env("SWEEP_DATA_DIR", elsewhere.path().join("no-data-here"));
    let cache = elsewhere.path().join("cache");
    let _w = c.worker_with(cmd, "elsewhere", &c.addr(), &["--cache-dir", cache.to_str().unwrap()]);
    c.settled(Duration::from_secs(240)).await;
    let out = c.cli(&["confirm", &ids["mulan"], "--top", "1", "--replicas", "2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    c.settled(Duration::from_secs(120)).await;
    let states: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT s.name, t.state, count(*) FROM trials t JOIN sweeps s ON s.id = t.sweep_id GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(&c.db)
    .await
    .unwrap();
    let confirm = format!("own-mulan-confirm-{}", &ids["mulan"][..8]);
    let want: Vec<(String, String, i64)> =
        [("own-mulan", 2), (confirm.as_str(), 2), ("own-synthetic", 2), ("own-tpe", 12), ("own-xc", 2)]
            .into_iter()
            .map(|(s, n)| (s.to_string(), "succeeded".to_string(), n))
            .collect();
    let mut got = states.clone();
    got.sort();
    let mut want = want;
    want.sort();
    assert_eq!(got, want, "every trial of every sweep succeeded: {states:?}");
    // Each re-run file holds its kind's fields only and is the winner's configuration.
    for (name, keys) in [
        ("mulan", vec!["blobs", "kind", "split_seed", "val_fraction"]),
        ("xc", vec!["blobs", "kind", "split_seed", "val_fraction"]),
        (
            "synthetic",
            vec![
                "features",
                "kind",
                "labels",
                "max_positives",
                "min_positives",
                "seed",
                "split_seed",
                "test_samples",
                "train_samples",
                "val_fraction",
            ],
        ),
    ] {
        let (dataset, hash) = rerun_of(&c, &ids[name], elsewhere.path());
        let mut got: Vec<&str> = dataset.as_object().unwrap().keys().map(String::as_str).collect();
        got.sort();
        assert_eq!(got, keys, "{name}: {dataset}");
        let winner: serde_json::Value =
            serde_json::from_slice(&c.cli(&["best", &ids[name], "-o", "json"]).stdout).unwrap();
        let stored: String = sqlx::query_scalar("SELECT params_hash FROM trials WHERE id = $1::uuid")
            .bind(winner["trial_id"].as_str().unwrap())
            .fetch_one(&c.db)
            .await
            .unwrap();
        assert_eq!(hash, stored, "{name}: the re-run file is the winner's configuration");
    }
    c.check_invariants().await;
}
