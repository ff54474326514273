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
