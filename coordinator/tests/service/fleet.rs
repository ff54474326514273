//! Fleets against a real EC2 API emulator (moto, a separate process) and, end to end,
//! with the local provider: the coordinator, the CLI and the bootstrapped workers are
//! separate processes on a real Postgres.

use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{Filter, InstanceStateName};
use base64::Engine;
use sweep_testkit::procs::{bin, processes_mentioning, Cluster, Moto, Proc, Proxy, LEASE_MS};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

macro_rules! need {
    ($e:expr) => {
        match $e {
            Some(v) => v,
            None => return,
        }
    };
}

/// The SDK pointed at the emulator, as a test's own view of "EC2".
async fn ec2(moto: &Moto) -> aws_sdk_ec2::Client {
    use aws_smithy_http_client::tls;
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .build_https();
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .endpoint_url(moto.url())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "test"))
        .load()
        .await;
    aws_sdk_ec2::Client::new(&conf)
}

/// An image the emulator knows.
async fn image(c: &aws_sdk_ec2::Client) -> String {
    let out = c.describe_images().owners("amazon").send().await.unwrap();
    out.images()[0].image_id().unwrap().to_string()
}

/// The fleet's instances as EC2 shows them.
async fn instances(c: &aws_sdk_ec2::Client, fleet: &str) -> Vec<aws_sdk_ec2::types::Instance> {
    let out = c
        .describe_instances()
        .filters(Filter::builder().name("tag:sweep:fleet").values(fleet).build())
        .send()
        .await
        .unwrap();
    out.reservations().iter().flat_map(|r| r.instances().to_vec()).collect()
}

fn is_live(i: &aws_sdk_ec2::types::Instance) -> bool {
    matches!(i.state().and_then(|s| s.name()), Some(InstanceStateName::Pending | InstanceStateName::Running))
}

async fn live(c: &aws_sdk_ec2::Client, fleet: &str) -> Vec<aws_sdk_ec2::types::Instance> {
    instances(c, fleet).await.into_iter().filter(is_live).collect()
}

async fn user_data(c: &aws_sdk_ec2::Client, id: &str) -> String {
    let out = c
        .describe_instance_attribute()
        .instance_id(id)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    let b64 = out.user_data().and_then(|u| u.value()).expect("user data");
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).expect("user data is base64")).unwrap()
}

/// Polls `f` until it holds (or fails after `within`, saying `what`).
async fn until<F, Fut>(what: &str, within: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn ok(out: std::process::Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn fails(out: std::process::Output) -> String {
    assert!(!out.status.success(), "expected a refusal, got: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8(out.stderr).unwrap()
}

/// A cluster, the EC2 emulator, the test's own client of it, and an image it knows.
async fn emulated() -> Option<(Cluster, Moto, aws_sdk_ec2::Client, String)> {
    let c = Cluster::new().await?;
    let moto = Moto::start()?;
    let aws = ec2(&moto).await;
    let ami = image(&aws).await;
    Some((c, moto, aws, ami))
}

/// A coordinator that launches on the emulator (through `endpoint`: moto or a proxy).
fn ec2_coordinator(c: &Cluster, endpoint: &str, extra: &[&str]) -> Proc {
    let mut args = vec!["--public-url", "https://coordinator.internal:50051", "--fleet-reconcile-ms", "300"];
    args.extend_from_slice(extra);
    c.coordinator_env(c.port, LEASE_MS, 500, &args, &Moto::env(endpoint))
}

async fn register(c: &Cluster, token: &str) -> Result<(), tonic::Status> {
    let channel = tonic::transport::Channel::from_shared(c.addr()).unwrap().connect().await.unwrap();
    let mut api = sweep_proto::agent_service_client::AgentServiceClient::new(channel);
    let mut req = tonic::Request::new(sweep_proto::RegisterRequest {
        name: "probe".into(),
        host: "probe".into(),
        gpus: vec![],
        slots: 1,
        version: "test".into(),
    });
    req.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    api.register(req).await.map(|_| ())
}

/// `fleet up` of `count` g5.xlarge instances of `ami`, then `extra`.
fn ec2_up<'a>(ami: &'a str, count: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["fleet", "up", "--instance-type", "g5.xlarge", "--count", count, "--image", ami];
    args.extend_from_slice(extra);
    args
}

fn join_token_in(script: &str) -> String {
    let line = script.lines().find(|l| l.starts_with("printf '%s\\n' 'swp_ijoin_")).expect("a join token line");
    line.split('\'').nth(3).unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn fleet_up_launches_tagged_spot_instances_with_safe_user_data_and_down_terminates_them() {
    let _serial = SERIAL.lock().await;
    let (c, moto, aws, ami) = need!(emulated().await);
    let _coord = ec2_coordinator(&c, &moto.url(), &["--spot-price-refresh-minutes", "0.005"]);

    let out = ok(c.cli(&ec2_up(&ami, "3", &["--spot", "-o", "json"])));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let fleet = v["fleet_id"].as_str().expect("{\"fleet_id\": ...}").to_string();

    let found = instances(&aws, &fleet).await;
    assert_eq!(found.len(), 3, "three instances, no more");
    let worker_sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(bin("sweep-worker")).unwrap()))
    };
    let admin = std::fs::read_to_string(&c.token).unwrap().trim().to_string();
    let standing_join = std::fs::read_to_string(&c.join).unwrap().trim().to_string();
    let mut tokens = Vec::new();
    for i in &found {
        assert_eq!(i.instance_type().map(|t| t.as_str()), Some("g5.xlarge"));
        assert_eq!(i.instance_lifecycle().map(|l| l.as_str()), Some("spot"));
        let md = i.metadata_options().expect("metadata options");
        assert_eq!(md.http_tokens().map(|t| t.as_str()), Some("required"), "IMDSv2 required");
        let tag = |k: &str| i.tags().iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).map(str::to_string);
        assert_eq!(tag("sweep:fleet").as_deref(), Some(fleet.as_str()));
        assert_eq!(tag("sweep:managed").as_deref(), Some("true"));
        assert!(tag("sweep:instance").is_some());
        let shutdown = aws
            .describe_instance_attribute()
            .instance_id(i.instance_id().unwrap())
            .attribute(aws_sdk_ec2::types::InstanceAttributeName::InstanceInitiatedShutdownBehavior)
            .send()
            .await
            .unwrap();
        assert_eq!(shutdown.instance_initiated_shutdown_behavior().and_then(|b| b.value()), Some("terminate"));

        let script = user_data(&aws, i.instance_id().unwrap()).await;
        assert!(script.starts_with("#!/bin/bash"));
        assert!(script.contains("COORDINATOR='https://coordinator.internal:50051'"), "names the coordinator");
        assert!(script.contains(&format!("WORKER_SHA256='{worker_sha}'")), "pins the worker binary's hash");
        assert!(!script.contains(&admin), "no admin token in user data");
        assert!(!script.contains(&standing_join), "no standing join token in user data");
        tokens.push(join_token_in(&script));
    }
    tokens.dedup();
    assert_eq!(tokens.len(), 3, "a join token per instance");

    // Each token enrols once; spent, it is refused.
    register(&c, &tokens[0]).await.expect("an instance's token enrols");
    let again = register(&c, &tokens[0]).await.unwrap_err();
    assert_eq!(again.code(), tonic::Code::Unauthenticated, "{again:?}");
    assert!(again.message().contains("already used or expired"), "{}", again.message());
    let bound: Option<uuid::Uuid> =
        sqlx::query_scalar("SELECT worker_id FROM instances WHERE fleet_id = $1::uuid AND worker_id IS NOT NULL")
            .bind(&fleet)
            .fetch_optional(&c.db)
            .await
            .unwrap()
            .flatten();
    assert!(bound.is_some(), "the enrolled worker is bound to its instance");

    // Status shows them; down terminates all of them and says so.
    let status: serde_json::Value =
        serde_json::from_str(&ok(c.cli(&["fleet", "status", &fleet, "-o", "json"]))).unwrap();
    assert_eq!(status["instances"].as_array().unwrap().len(), 3);
    // Priced from EC2's spot price history (moto lists 0.00001 USD/h in every zone).
    assert!(status["price_source"].as_str().unwrap().starts_with("EC2 spot price history"), "{status}");
    assert_eq!(status["price_per_hour"], 0.00001);
    // Read again while it runs (every 0.3 s here); moto's price does not move, so the
    // fleet's price history keeps its one segment.
    until("the spot price to be read again", Duration::from_secs(20), || async {
        let checked: Option<chrono::DateTime<chrono::Utc>> =
            sqlx::query_scalar("SELECT price_checked_at FROM fleets WHERE id = $1::uuid")
                .bind(&fleet)
                .fetch_one(&c.db)
                .await
                .unwrap();
        checked.is_some()
    })
    .await;
    let segments: i64 = sqlx::query_scalar("SELECT count(*) FROM fleet_prices WHERE fleet_id = $1::uuid")
        .bind(&fleet)
        .fetch_one(&c.db)
        .await
        .unwrap();
    assert_eq!(segments, 1, "an unchanged price starts no segment");
    let down: serde_json::Value = serde_json::from_str(&ok(c.cli(&["fleet", "down", &fleet, "-o", "json"]))).unwrap();
    assert_eq!(down["state"], "down");
    for i in down["instances"].as_array().unwrap() {
        assert_eq!(i["state"], "terminated");
        assert_eq!(i["end_reason"], "fleet down");
    }
    assert!(live(&aws, &fleet).await.is_empty(), "nothing left running in EC2");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vanished_instance_is_replaced_and_a_drained_fleet_scales_in() {
    let _serial = SERIAL.lock().await;
    let (c, moto, aws, ami) = need!(emulated().await);
    let _coord = ec2_coordinator(&c, &moto.url(), &[]);
    let sweep = c.submit(2, 1, sweep_testkit::procs::TINY);
    let fleet = ok(c.cli(&ec2_up(&ami, "2", &["--sweep", &sweep, "--idle-minutes", "0.05"]))).trim().to_string();
    assert_eq!(live(&aws, &fleet).await.len(), 2);

    // Terminated behind the coordinator's back (a spot reclaim looks the same): replaced.
    let victim = live(&aws, &fleet).await[0].instance_id().unwrap().to_string();
    aws.terminate_instances().instance_ids(&victim).send().await.unwrap();
    until("a replacement", Duration::from_secs(30), || async {
        let l = live(&aws, &fleet).await;
        l.len() == 2 && l.iter().all(|i| i.instance_id() != Some(victim.as_str()))
    })
    .await;
    let reason: String = sqlx::query_scalar("SELECT end_reason FROM instances WHERE provider_id = $1")
        .bind(&victim)
        .fetch_one(&c.db)
        .await
        .unwrap();
    assert!(reason.starts_with("vanished"), "{reason}");
    assert_eq!(instances(&aws, &fleet).await.len(), 3, "one replacement, not more");

    // Its sweep's queue drained (cancelled here): after --idle-minutes the fleet scales to zero.
    ok(c.cli(&["cancel", &sweep]));
    until("scale-in", Duration::from_secs(30), || async { live(&aws, &fleet).await.is_empty() }).await;
    let reasons: Vec<String> = sqlx::query_scalar(
        "SELECT end_reason FROM instances WHERE fleet_id = $1::uuid AND provider_id <> $2 ORDER BY end_reason",
    )
    .bind(&fleet)
    .bind(&victim)
    .fetch_all(&c.db)
    .await
    .unwrap();
    assert_eq!(reasons.len(), 2);
    assert!(reasons.iter().all(|r| r.starts_with("idle for")), "{reasons:?}");
    let state: String =
        sqlx::query_scalar("SELECT state FROM fleets WHERE id = $1::uuid").bind(&fleet).fetch_one(&c.db).await.unwrap();
    assert_eq!(state, "active", "idle is not the end: work for its sweeps would scale it out again");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_coordinator_killed_mid_launch_adopts_its_instances_and_never_exceeds_the_count() {
    let _serial = SERIAL.lock().await;
    let (c, moto, aws, ami) = need!(emulated().await);
    // EC2's answers come back 2 s late: a launch reaches EC2, its answer is still on the
    // way when the coordinator dies.
    let slow = Proxy::start_delayed(moto.port, Duration::from_secs(2)).await;
    let mut first = ec2_coordinator(&c, &format!("http://127.0.0.1:{}", slow.port), &[]);
    let cli = {
        let (addr, token) = (c.addr(), c.token.clone());
        let ami = ami.clone();
        std::thread::spawn(move || {
            std::process::Command::new(bin("sweep"))
                .args(ec2_up(&ami, "3", &[]))
                .args(["--coordinator", &addr])
                .env("SWEEP_TOKEN_FILE", token)
                .output()
                .unwrap()
        })
    };
    let start = Instant::now();
    let fleet = loop {
        let id: Option<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM fleets").fetch_optional(&c.db).await.unwrap();
        if let Some(id) = id {
            break id.to_string();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "timed out waiting for the fleet row");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Kill it once EC2 holds an instance whose launch the coordinator has not recorded.
    until("a launched, unrecorded instance", Duration::from_secs(60), || async {
        let recorded: i64 =
            sqlx::query_scalar("SELECT count(*) FROM instances WHERE fleet_id = $1::uuid AND provider_id IS NOT NULL")
                .bind(&fleet)
                .fetch_one(&c.db)
                .await
                .unwrap();
        instances(&aws, &fleet).await.len() as i64 > recorded
    })
    .await;
    first.signal("-KILL");
    assert!(first.wait_exit(Duration::from_secs(10)));
    assert!(!cli.join().unwrap().status.success(), "the CLI saw its coordinator die");

    let _second = ec2_coordinator(&c, &moto.url(), &[]);
    until("three recorded instances", Duration::from_secs(30), || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM instances WHERE fleet_id = $1::uuid AND state = 'running' AND provider_id IS NOT NULL",
        )
        .bind(&fleet)
        .fetch_one(&c.db)
        .await
        .unwrap();
        n == 3
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await; // several more passes
    let all = instances(&aws, &fleet).await;
    assert_eq!(
        all.len(),
        3,
        "adopted, never launched twice: {:?}",
        all.iter().map(|i| i.instance_id()).collect::<Vec<_>>()
    );
    assert_eq!(live(&aws, &fleet).await.len(), 3);
    ok(c.cli(&["fleet", "down", &fleet]));
    assert!(live(&aws, &fleet).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_join_token_is_refused_and_its_instance_replaced() {
    let _serial = SERIAL.lock().await;
    let (c, moto, aws, ami) = need!(emulated().await);
    let _coord = ec2_coordinator(&c, &moto.url(), &["--fleet-join-ttl-secs", "2"]);
    let fleet = ok(c.cli(&ec2_up(&ami, "1", &[]))).trim().to_string();
    let first = live(&aws, &fleet).await[0].instance_id().unwrap().to_string();
    let token = join_token_in(&user_data(&aws, &first).await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let refused = register(&c, &token).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    // It never enrolled before its token expired: terminated and replaced.
    until("the replacement", Duration::from_secs(30), || async {
        let l = live(&aws, &fleet).await;
        l.len() == 1 && l[0].instance_id() != Some(first.as_str())
    })
    .await;
    let reason: String = sqlx::query_scalar("SELECT end_reason FROM instances WHERE provider_id = $1")
        .bind(&first)
        .fetch_one(&c.db)
        .await
        .unwrap();
    assert_eq!(reason, "never enrolled before its join token expired");
    ok(c.cli(&["fleet", "down", &fleet]));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_fleets_are_refused_in_one_line_before_anything_launches() {
    let _serial = SERIAL.lock().await;
    let (c, moto, aws, ami) = need!(emulated().await);
    let _coord = ec2_coordinator(&c, &moto.url(), &["--fleet-max-instances", "4"]);
    let up = |extra: &[&str]| {
        let mut args = vec!["fleet", "up", "--image", &ami];
        args.extend_from_slice(extra);
        fails(c.cli(&args))
    };
    let cases: [(&[&str], &str); 10] = [
        (&["--instance-type", "g9.nonsense", "--count", "1"], "g9.nonsense: no price in the on-demand table"),
        (
            &["--instance-type", "g9.nonsense", "--count", "1", "--price-per-hour", "2"],
            "instance type `g9.nonsense` is not offered",
        ),
        (&["--instance-type", "g5.xlarge", "--count", "1", "--price-per-hour=-1"], "price_per_hour: -1"),
        (&["--instance-type", "g5.xlarge", "--count", "1", "--price-per-hour", "inf"], "price_per_hour: inf"),
        (&["--instance-type", "g5.xlarge", "--region", "mars-1", "--count", "1"], "is not a region name"),
        (&["--instance-type", "g5.xlarge", "--count", "3", "--max-count", "2"], "above --max-count 2"),
        (
            &["--instance-type", "g5.xlarge", "--count", "5", "--yes"],
            "above this coordinator's --fleet-max-instances 4",
        ),
        (&["--instance-type", "g5.xlarge", "--count", "6"], "pass --yes"),
        (&["--instance-type", "g5.xlarge", "--count", "1", "--max-hours", "0"], "max_hours"),
        (&["--instance-type", "g5.xlarge", "--count", "1", "--sweep", "nope"], "not a valid id"),
    ];
    for (args, says) in cases {
        let err = up(args);
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    let err =
        fails(c.cli(&["fleet", "up", "--instance-type", "g5.xlarge", "--image", &ami, "--price-per-hour", "abc"]));
    assert!(err.contains("invalid value 'abc' for '--price-per-hour"), "{err}");
    let err = fails(c.cli(&["fleet", "up", "--instance-type", "g5.xlarge", "--image", "ami-12345678"]));
    assert!(err.contains("ami-12345678"), "{err}");
    // A client token may not spend money.
    let err = fails(as_client(&c, &["fleet", "ls"]));
    assert!(err.contains("fleets need an admin token"), "{err}");

    // A dry run prices it and launches nothing; a bad budget is refused like a bad price.
    let plan = ok(c.cli(&[
        "fleet",
        "up",
        "--instance-type",
        "g5.xlarge",
        "--image",
        &ami,
        "--count",
        "3",
        "--dry-run",
        "--max-hours",
        "2",
        "--max-cost",
        "4.5",
    ]));
    assert!(
        plan.contains("dry run, nothing launched: 3 x g5.xlarge (ec2) at $1.006/instance-hour (on-demand"),
        "{plan}"
    );
    assert!(plan.contains("$3.02 per hour while all run; at most $6.04 by --max-hours 2"), "{plan}");
    assert!(plan.contains("budget $4.50: about 1.49 h at the full count"), "{plan}");
    for (arg, says) in [("-2", "-2 is out of range"), ("abc", "`abc` is not a number of dollars")] {
        let err = fails(c.cli(&["fleet", "up", "--instance-type", "g5.xlarge", "--image", &ami, "--max-cost", arg]));
        assert!(err.contains(says), "{arg}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }

    let total = aws.describe_instances().send().await.unwrap().reservations().len();
    assert_eq!(total, 0, "nothing was launched");
    let fleets: i64 = sqlx::query_scalar("SELECT count(*) FROM fleets").fetch_one(&c.db).await.unwrap();
    assert_eq!(fleets, 0, "no fleet was recorded");
}

#[tokio::test(flavor = "multi_thread")]
async fn local_fleet_bootstraps_two_workers_that_finish_a_sweep_then_scales_to_zero() {
    let _serial = SERIAL.lock().await;
    let c = need!(Cluster::new().await);
    let root = tempfile::tempdir().unwrap();
    let root_s = root.path().to_str().unwrap().to_string();
    let env = [("OMP_NUM_THREADS", "1".to_string())];
    let _coord =
        c.coordinator_env(c.port, LEASE_MS, 500, &["--fleet-reconcile-ms", "300", "--fleet-local-dir", &root_s], &env);
    let yaml = "name: fleet-local\n\
                dataset: {kind: synthetic, labels: 30, features: 16, train_samples: 2000, test_samples: 200, max_positives: 200}\n\
                model: {hidden: [32]}\ntrain: {epochs: 20, patience: 0}\n\
                parameters:\n  loss.focal_gamma: {values: [0, 1, 2, 3, 4, 5]}\n";
    let file = c.dir.path().join("local.yaml");
    std::fs::write(&file, yaml).unwrap();
    let sweep = ok(c.cli(&["submit", file.to_str().unwrap()])).trim().to_string();
    // Another sweep, not the fleet's: its workers must leave it alone.
    let other = c.dir.path().join("other.yaml");
    std::fs::write(&other, yaml.replace("name: fleet-local", "name: not-the-fleets")).unwrap();
    ok(c.cli(&["submit", other.to_str().unwrap()]));
    // A price that makes seconds expensive: 3,600 USD per hour, a dollar a second.
    let up = ["fleet", "up", "--provider", "local", "--count", "2", "--sweep", &sweep, "--idle-minutes", "0.1"];
    let fleet = ok(c.cli(&[&up[..], &["--price-per-hour", "3600"]].concat())).trim().to_string();

    c.wait_for(
        "the fleet's sweep to finish",
        Duration::from_secs(120),
        "SELECT count(*) = 6 FROM trials t JOIN sweeps s ON s.id = t.sweep_id
         WHERE s.name = 'fleet-local' AND t.state = 'succeeded'",
    )
    .await;
    // Both instances enrolled with their own one-time tokens, as two workers (the second
    // may enrol a moment after the first has finished the sweep).
    c.wait_for(
        "both instances to enrol",
        Duration::from_secs(60),
        &format!("SELECT count(*) = 2 FROM instances WHERE fleet_id = '{fleet}'::uuid AND worker_id IS NOT NULL"),
    )
    .await;
    let enrolled: Vec<(uuid::Uuid, Option<chrono::DateTime<chrono::Utc>>)> = sqlx::query_as(
        "SELECT worker_id, join_used_at FROM instances WHERE fleet_id = $1::uuid AND worker_id IS NOT NULL",
    )
    .bind(&fleet)
    .fetch_all(&c.db)
    .await
    .unwrap();
    assert_eq!(enrolled.len(), 2, "two instances enrolled");
    assert!(enrolled.iter().all(|(_, used)| used.is_some()), "their tokens are spent");
    let by_fleet: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM trials t JOIN instances i ON i.worker_id = t.finished_by WHERE i.fleet_id = $1::uuid",
    )
    .bind(&fleet)
    .fetch_one(&c.db)
    .await
    .unwrap();
    assert_eq!(by_fleet, 6, "the fleet's workers ran every trial");
    let untouched: (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE t.state = 'queued' AND t.attempt = 0)
         FROM trials t JOIN sweeps s ON s.id = t.sweep_id WHERE s.name = 'not-the-fleets'",
    )
    .fetch_one(&c.db)
    .await
    .unwrap();
    assert_eq!(untouched, (6, 6), "the fleet's workers never leased another sweep's trials");
    // Each saved its credential privately (a restarted worker reuses it: its token is spent).
    for dir in std::fs::read_dir(root.path()).unwrap().flatten() {
        let cred = dir.path().join("etc/credential.json");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&cred).expect("credential saved").permissions().mode() & 0o777, 0o600);
    }

    // Nothing left to do: the fleet scales to zero by itself, and nothing keeps running.
    until("scale to zero", Duration::from_secs(60), || async {
        let live: i64 =
            sqlx::query_scalar("SELECT count(*) FROM instances WHERE fleet_id = $1::uuid AND state <> 'terminated'")
                .bind(&fleet)
                .fetch_one(&c.db)
                .await
                .unwrap();
        live == 0
    })
    .await;
    until("the instances' processes to end", Duration::from_secs(30), || async {
        processes_mentioning(&format!("{root_s}/")).is_empty() // (the coordinator's own flag names the root)
    })
    .await;
    let status: serde_json::Value =
        serde_json::from_str(&ok(c.cli(&["fleet", "status", &fleet, "-o", "json"]))).unwrap();
    for i in status["instances"].as_array().unwrap() {
        assert!(i["end_reason"].as_str().unwrap().starts_with("idle for"), "{i}");
    }
    // The accrued cost is the instances' lifetimes (launch to termination, as Postgres
    // recorded them) times the price, within 1%; each instance's share adds up to it.
    let lived: f64 = sqlx::query_scalar(
        "SELECT sum(extract(epoch FROM terminated_at - launched_at))::float8 FROM instances WHERE fleet_id = $1::uuid",
    )
    .bind(&fleet)
    .fetch_one(&c.db)
    .await
    .unwrap();
    let cost = status["cost_usd"].as_f64().unwrap();
    assert_eq!(
        (status["price_per_hour"].as_f64(), status["price_source"].as_str()),
        (Some(3600.0), Some("--price-per-hour"))
    );
    assert!(lived > 1.0 && (cost - lived).abs() <= 0.01 * lived, "cost {cost} USD for {lived} s at 1 USD/s");
    let shares: f64 = status["instances"].as_array().unwrap().iter().map(|i| i["cost_usd"].as_f64().unwrap()).sum();
    assert!((shares - cost).abs() < 1e-6, "{shares} vs {cost}");
    // Per trial: its attempts' lease time over its worker's slots. They add up to the
    // sweep's cost, which is at most the fleet's (boot and idle time stay the fleet's);
    // the other sweep's trials, never run by the fleet, cost nothing.
    let trials: serde_json::Value = serde_json::from_str(&ok(c.cli(&["trials", &sweep, "-o", "json"]))).unwrap();
    let per_trial: Vec<f64> =
        trials["trials"].as_array().unwrap().iter().map(|t| t["cost_usd"].as_f64().unwrap()).collect();
    let busy: f64 = per_trial.iter().sum();
    let swept: serde_json::Value = serde_json::from_str(&ok(c.cli(&["status", "-o", "json"]))).unwrap();
    let cost_of = |name: &str| {
        let s = swept["sweeps"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap();
        s["cost_usd"].as_f64().unwrap()
    };
    assert!(per_trial.iter().all(|c| *c > 0.0), "every trial ran on the fleet: {per_trial:?}");
    assert!((cost_of("fleet-local") - busy).abs() < 1e-6 && busy <= cost, "busy {busy} of {cost}");
    assert_eq!(cost_of("not-the-fleets"), 0.0);
    let best: serde_json::Value = serde_json::from_str(&ok(c.cli(&["best", &sweep, "-o", "json"]))).unwrap();
    let reach = best["spent_to_reach_usd"].as_f64().unwrap();
    assert!(reach > 0.0 && reach <= busy + 1e-6, "spent {reach} of {busy} to reach the winner");
    // The best objective against the spend, in the report and the dashboard: its last
    // step is the winner, reached at what `sweep best` says.
    let report = c.dir.path().join("report.html");
    ok(c.cli(&["report", &sweep, "--out", report.to_str().unwrap()]));
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("id=\"best-by-cost\"") && html.contains(&format!("found after {reach:.2} USD")), "report");
    let token = std::fs::read_to_string(&c.token).unwrap();
    let (addr, path) = (c.addr().replace("http://", ""), format!("/api/v1/sweeps/{sweep}/configurations"));
    let bearer = format!("Bearer {}", token.trim());
    let api = tokio::task::spawn_blocking(move || {
        sweep_testkit::http::get(&addr, &path, &[("Authorization", bearer.as_str())]).json()
    })
    .await
    .unwrap();
    let steps = api["best_by_cost"].as_array().unwrap();
    let last = steps.last().unwrap();
    assert_eq!((last[0].as_f64().unwrap(), &last[1]), (reach, &best["objective"]), "{api}");
    eprintln!(
        "local fleet: {lived:.1} instance-seconds, {cost:.2} USD at 3,600 USD/h; trials {busy:.2} USD \
         ({:.0}% busy); the winner after {reach:.2} USD",
        100.0 * busy / cost
    );
    price_history_is_integrated(&c, &fleet).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn off_the_loopback_tls_is_required_and_tls_init_makes_what_a_local_fleet_pins() {
    let _serial = SERIAL.lock().await;
    let c = need!(Cluster::new().await);
    // Plaintext on a non-loopback address: refused, saying what to do.
    let refused = std::process::Command::new(bin("sweep-coordinator"))
        .args(["serve", "--listen", "0.0.0.0:0", "--database-url", &c.db_url])
        .output()
        .unwrap();
    let err = fails(refused);
    assert!(err.contains("refusing to listen on 0.0.0.0:0 without TLS") && err.contains("tls init"), "{err}");

    let tls = c.dir.path().join("tls");
    let made = std::process::Command::new(bin("sweep-coordinator"))
        .args(["tls", "init", "--name", "localhost", "--name", "127.0.0.1", "--dir"])
        .arg(&tls)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    use std::os::unix::fs::PermissionsExt;
    for (file, mode) in [("ca.pem", 0o644), ("ca.key", 0o600), ("server.pem", 0o644), ("server.key", 0o600)] {
        assert_eq!(std::fs::metadata(tls.join(file)).unwrap().permissions().mode() & 0o777, mode, "{file}");
    }
    let ca_pem = std::fs::read_to_string(tls.join("ca.pem")).unwrap();

    let root = tempfile::tempdir().unwrap();
    let root_s = root.path().to_str().unwrap().to_string();
    let p = |f: &str| tls.join(f).to_str().unwrap().to_string();
    let (cert, key, ca) = (p("server.pem"), p("server.key"), p("ca.pem"));
    let _coord = c.coordinator_env(
        c.port,
        LEASE_MS,
        500,
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-ca",
            &ca,
            "--fleet-reconcile-ms",
            "300",
            "--fleet-local-dir",
            &root_s,
        ],
        &[("OMP_NUM_THREADS", "1".to_string())],
    );
    let https = format!("https://127.0.0.1:{}", c.port);
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--ca-file", &ca]);
        c.cli_at(&https, &all)
    };
    let yaml = "name: fleet-tls\n\
                dataset: {kind: synthetic, labels: 20, features: 16, train_samples: 600, test_samples: 200, max_positives: 150}\n\
                model: {hidden: [16]}\ntrain: {epochs: 2}\n\
                parameters:\n  train.seed: {values: [1, 2]}\n";
    let file = c.dir.path().join("tls.yaml");
    std::fs::write(&file, yaml).unwrap();
    ok(cli(&["submit", file.to_str().unwrap()]));
    let fleet =
        ok(cli(&["fleet", "up", "--provider", "local", "--count", "1", "--idle-minutes", "0.05"])).trim().to_string();
    c.settled(Duration::from_secs(120)).await;
    let succeeded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM trials WHERE state = 'succeeded'").fetch_one(&c.db).await.unwrap();
    assert_eq!(succeeded, 2, "the instance downloaded the worker and enrolled over TLS");
    let dir = std::fs::read_dir(root.path()).unwrap().flatten().next().unwrap().path();
    let script = std::fs::read_to_string(dir.join("user-data.sh")).unwrap();
    assert!(script.contains(ca_pem.trim()), "the bootstrap pins the CA");
    assert!(script.contains(&format!("COORDINATOR='{https}'")));
    until("scale to zero", Duration::from_secs(60), || async {
        let status: serde_json::Value =
            serde_json::from_str(&ok(cli(&["fleet", "status", &fleet, "-o", "json"]))).unwrap();
        status["instances"].as_array().unwrap().iter().all(|i| i["state"] == "terminated")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_launch_that_fails_leaves_nothing_and_a_fleet_ends_at_its_max_hours() {
    let _serial = SERIAL.lock().await;
    let (c, moto, aws, ami) = need!(emulated().await);
    let _coord = ec2_coordinator(&c, &moto.url(), &[]);
    // EC2 refuses the launch itself (no such security group): one line, the fleet is
    // recorded as failed, nothing runs.
    let err = fails(c.cli(&ec2_up(&ami, "2", &["--security-group", "sg-00000000000000000"])));
    assert!(err.contains("fleet up failed") && err.contains("sg-00000000000000000"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let failed: (String, Option<String>) =
        sqlx::query_as("SELECT state, error FROM fleets").fetch_one(&c.db).await.unwrap();
    assert_eq!(failed.0, "failed");
    let running = aws.describe_instances().send().await.unwrap();
    let left = running.reservations().iter().flat_map(|r| r.instances()).filter(|i| is_live(i)).count();
    assert_eq!(left, 0, "nothing left running after a failed fleet up");

    // --max-hours 0.001 (3.6 s): everything ends, and the fleet says why.
    let fleet = ok(c.cli(&ec2_up(&ami, "2", &["--max-hours", "0.001"]))).trim().to_string();
    assert_eq!(live(&aws, &fleet).await.len(), 2);
    until("max hours", Duration::from_secs(30), || async { live(&aws, &fleet).await.is_empty() }).await;
    let status: serde_json::Value =
        serde_json::from_str(&ok(c.cli(&["fleet", "status", &fleet, "-o", "json"]))).unwrap();
    assert_eq!(status["state"], "expired");
    for i in status["instances"].as_array().unwrap() {
        assert!(i["end_reason"].as_str().unwrap().contains("max hours"), "{i}");
    }
}

/// The CLI with a client token (made on first use).
fn as_client(c: &Cluster, args: &[&str]) -> std::process::Output {
    let client_token = c.dir.path().join("client-token");
    if !client_token.exists() {
        let made = std::process::Command::new(bin("sweep-coordinator"))
            .args(["token", "create", "--role", "client", "--database-url", &c.db_url, "--out"])
            .arg(&client_token)
            .status()
            .unwrap();
        assert!(made.success());
    }
    std::process::Command::new(bin("sweep"))
        .args(args)
        .args(["--coordinator", &c.addr()])
        .env("SWEEP_TOKEN_FILE", &client_token)
        .output()
        .unwrap()
}

/// A price that moved (as a spot price read again does) applies from when it moved: with
/// a segment at 7,200 USD/h from a moment inside the first instance's life, each
/// instance costs 1 USD a second before it and 2 after.
async fn price_history_is_integrated(c: &Cluster, fleet: &str) {
    type Life = (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>);
    let lives: Vec<Life> = sqlx::query_as(
        "SELECT launched_at, terminated_at FROM instances WHERE fleet_id = $1::uuid ORDER BY launched_at",
    )
    .bind(fleet)
    .fetch_all(&c.db)
    .await
    .unwrap();
    let at = lives[0].0 + (lives[0].1 - lives[0].0) / 2;
    sqlx::query("INSERT INTO fleet_prices (fleet_id, since, usd_per_hour, source) VALUES ($1::uuid, $2, 7200, 'test')")
        .bind(fleet)
        .bind(at)
        .execute(&c.db)
        .await
        .unwrap();
    let secs = |d: chrono::TimeDelta| d.num_microseconds().unwrap() as f64 / 1e6;
    let want: f64 = lives
        .iter()
        .map(|&(from, to)| {
            let before = secs(to.min(at) - from).max(0.0);
            let after = secs(to - from.max(at)).max(0.0);
            before + 2.0 * after
        })
        .sum();
    let status: serde_json::Value =
        serde_json::from_str(&ok(c.cli(&["fleet", "status", fleet, "-o", "json"]))).unwrap();
    let cost = status["cost_usd"].as_f64().unwrap();
    assert!((cost - want).abs() < 1e-3, "{cost} USD, want {want}");
}

mod budget;
