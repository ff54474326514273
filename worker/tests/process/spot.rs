//! A spot interruption notice from a fake instance metadata service (IMDSv2: token,
//! then `spot/instance-action`): the worker hands its trial back as preempted and exits;
//! another worker finishes it from the checkpoint taken at the notice (its first epoch is
//! the checkpoint's + 1); no attempt budget is spent, and the final metrics equal an
//! uninterrupted run's (CPU, same seed).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sweep_testkit::procs::{bin, Cluster, TINY};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Answers IMDSv2's token PUT, and `spot/instance-action` with 404 until `notice` is set.
async fn fake_imds(notice: Arc<AtomicBool>, tokens: Arc<std::sync::atomic::AtomicUsize>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            let (notice, tokens) = (notice.clone(), tokens.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let Ok(n) = s.read(&mut buf).await else { return };
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let line = req.lines().next().unwrap_or("").to_string();
                let has_token = req.to_ascii_lowercase().contains("x-aws-ec2-metadata-token: tok");
                let (status, body) = if line.starts_with("PUT /latest/api/token") {
                    tokens.fetch_add(1, Ordering::SeqCst);
                    ("200 OK", "tok".to_string())
                } else if !has_token {
                    ("401 Unauthorized", String::new())
                } else if line.starts_with("GET /latest/meta-data/spot/instance-action")
                    && notice.load(Ordering::SeqCst)
                {
                    ("200 OK", r#"{"action": "terminate", "time": "2026-11-27T12:00:00Z"}"#.to_string())
                } else {
                    ("404 Not Found", String::new())
                };
                let resp =
                    format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spot_notice_hands_the_trial_back_preempted_and_another_worker_finishes_it() {
    let Some(c) = Cluster::new().await else { return };
    let notice = Arc::new(AtomicBool::new(false));
    let tokens = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let imds = fake_imds(notice.clone(), tokens.clone()).await;
    let _coord = c.coordinator();
    c.submit(1, 12, TINY);
    let mut a =
        c.worker("a", &c.addr(), &["--imds-endpoint", &format!("http://127.0.0.1:{imds}"), "--imds-poll-ms", "100"]);
    c.wait_for("epoch 2", Duration::from_secs(60), "SELECT coalesce(max(epoch), 0) >= 2 FROM trial_epochs").await;
    notice.store(true, Ordering::SeqCst);
    assert!(a.wait_exit(Duration::from_secs(30)), "the worker exits after handing back");
    let (state, preempted, errors, lost): (String, i32, i32, i32) =
        sqlx::query_as("SELECT state, preempted_count, error_count, lost_count FROM trials")
            .fetch_one(&c.db)
            .await
            .unwrap();
    assert_eq!((state.as_str(), preempted, errors, lost), ("queued", 1, 0, 0), "handed back at once, nothing spent");
    assert!(tokens.load(Ordering::SeqCst) >= 2, "IMDSv2: a token for every look");
    let (saved,): (Option<i32>,) =
        sqlx::query_as("SELECT checkpoint_epoch FROM trials").fetch_one(&c.db).await.unwrap();
    let saved = saved.expect("the handed-back trial left a checkpoint");
    assert!(saved >= 2, "checkpointed at the notice, after epoch {saved}");

    let _b = c.worker("b", &c.addr(), &["--spot-watch", "off"]);
    c.settled(Duration::from_secs(120)).await;
    let (state, attempt, preempted, errors, lost, metrics, config): (
        String,
        i32,
        i32,
        i32,
        i32,
        serde_json::Value,
        serde_json::Value,
    ) = sqlx::query_as("SELECT state, attempt, preempted_count, error_count, lost_count, metrics, config FROM trials")
        .fetch_one(&c.db)
        .await
        .unwrap();
    assert_eq!((state.as_str(), attempt, preempted, errors, lost), ("succeeded", 2, 1, 0, 0));
    let (first,): (i32,) =
        sqlx::query_as("SELECT min(epoch) FROM trial_epochs WHERE attempt = 2").fetch_one(&c.db).await.unwrap();
    assert_eq!(first, saved + 1, "the second attempt went on from the checkpoint");

    // The same config trained alone, uninterrupted: the same final metrics.
    let cfg = c.dir.path().join("trial.json");
    std::fs::write(&cfg, config.to_string()).unwrap();
    let alone = std::process::Command::new(bin("sweep-worker"))
        .args(["train", "--device", "cpu", "--config"])
        .arg(&cfg)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(alone.status.success(), "{}", String::from_utf8_lossy(&alone.stderr));
    let alone: serde_json::Value = serde_json::from_slice(&alone.stdout).unwrap();
    for m in ["val.f1_micro", "test.f1_micro", "test.f1_macro_tuned", "best_epoch"] {
        assert_eq!(metrics[m], alone["metrics"][m], "{m}");
    }
    c.check_invariants().await;
}
