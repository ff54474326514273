//! The coordinator over real gRPC against a real Postgres: claims, fencing, the
//! reaper, cancel, duplicate submits and completions, credentials.

use std::collections::HashSet;

use sweep_proto as pb;
use sweep_testkit::app::{spawn, with_token, GRID};
use tonic::Code;

macro_rules! app {
    () => {
        match spawn().await {
            Some(a) => a,
            None => return,
        }
    };
}

#[tokio::test]
async fn duplicate_submit_and_extension_never_duplicate_cells() {
    let app = app!();
    let a = app.submit(GRID).await;
    assert!(a.created);
    assert_eq!((a.trials_total, a.trials_added), (9, 9));
    let b = app.submit(GRID).await;
    assert_eq!(b.sweep_id, a.sweep_id);
    assert!(!b.created);
    assert_eq!((b.trials_total, b.trials_added), (9, 0));
    // 7 and 7.0 are the same cell; 9 is new: 3 more trials.
    let extended = GRID.replace("[6, 7, 8]", "[6, 7.0, 8, 9]");
    let c = app.submit(&extended).await;
    assert_eq!((c.trials_total, c.trials_added), (12, 3));
}

#[tokio::test]
async fn concurrent_claims_lease_each_trial_once() {
    let app = app!();
    let big = GRID.replace(
        "loss.focal_gamma: {values: [0, 2, 3]}",
        &format!("train.seed: {{values: {:?}}}", (0..20).collect::<Vec<_>>()),
    );
    assert_eq!(app.submit(&big).await.trials_total, 60);
    let mut workers = Vec::new();
    for i in 0..12 {
        workers.push(app.worker(&format!("w{i}")).await);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for w in workers {
        let agent = app.agent();
        tasks.spawn(async move {
            let mut got = Vec::new();
            loop {
                let mut a = agent.clone();
                let r = a
                    .lease(with_token(&w, pb::LeaseRequest { max_trials: 3, wait_ms: 0, fuse: false }))
                    .await
                    .unwrap()
                    .into_inner();
                if r.trials.is_empty() {
                    return got;
                }
                got.extend(r.trials.into_iter().map(|t| (t.trial_id, t.attempt)));
            }
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r.unwrap());
    }
    assert_eq!(all.len(), 60, "every trial leased");
    assert_eq!(all.iter().map(|t| &t.0).collect::<HashSet<_>>().len(), 60, "none twice");
    assert!(all.iter().all(|t| t.1 == 1));
}

#[tokio::test]
async fn stale_attempt_is_fenced_out_and_completion_is_idempotent() {
    let app = app!();
    app.submit(GRID).await;
    let (w1, w2) = (app.worker("a").await, app.worker("b").await);
    let t1 = app.lease(&w1, 1).await.remove(0);
    assert_eq!(t1.attempt, 1);
    app.expire(&t1.trial_id).await;
    assert_eq!(app.state_of(&t1.trial_id).await, ("queued".into(), 1, 1, 0));

    // The same trial comes back as attempt 2 (first in queue order).
    let t2 = app.lease(&w2, 1).await.remove(0);
    assert_eq!((t2.trial_id.as_str(), t2.attempt), (t1.trial_id.as_str(), 2));

    // The stale attempt's heartbeat says lease lost; its completion is refused.
    let hb = app
        .agent()
        .heartbeat(with_token(
            &w1,
            pb::HeartbeatRequest { trials: vec![pb::TrialRef { trial_id: t1.trial_id.clone(), attempt: 1 }] },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hb.directives[0].action, pb::Action::LeaseLost as i32);
    let stale = app.complete(&w1, &t1, 0.9).await.unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition, "{stale:?}");

    // Worker A cannot touch worker B's live lease.
    let mut forged = t2.clone();
    forged.attempt = 2;
    let denied = app.complete(&w1, &forged, 0.99).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    app.complete(&w2, &t2, 0.5).await.unwrap();
    app.complete(&w2, &t2, 0.5).await.expect("a duplicate report of the same attempt succeeds");
    let (state, attempt, ..) = app.state_of(&t2.trial_id).await;
    assert_eq!((state.as_str(), attempt), ("succeeded", 2));
    let (obj,): (Option<f64>,) = sqlx::query_as("SELECT objective FROM trials WHERE id = $1")
        .bind(t2.trial_id.parse::<uuid::Uuid>().unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(obj, Some(0.5), "the stale attempt's 0.9 was not recorded");
    // A late stale completion after success is still refused.
    assert_eq!(app.complete(&w1, &t1, 0.9).await.unwrap_err().code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn stale_progress_is_not_recorded() {
    let app = app!();
    app.submit(GRID).await;
    let w = app.worker("a").await;
    let t = app.lease(&w, 1).await.remove(0);
    let progress = |attempt: u32| pb::ProgressRequest {
        trial: Some(pb::TrialRef { trial_id: t.trial_id.clone(), attempt }),
        epoch: 1,
        metrics: [("val.f1_micro".to_string(), 0.1)].into(),
    };
    app.agent().report_progress(with_token(&w, progress(1))).await.unwrap();
    app.expire(&t.trial_id).await;
    let err = app.agent().report_progress(with_token(&w, progress(1))).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM trial_epochs").fetch_one(&app.db).await.unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn lost_leases_end_dead_after_max_attempts() {
    let app = app!();
    app.submit(&GRID.replace("max_attempts: 3", "max_attempts: 2")).await;
    let w = app.worker("a").await;
    let t = app.lease(&w, 1).await.remove(0);
    app.expire(&t.trial_id).await;
    let t = app.lease(&w, 1).await.remove(0);
    assert_eq!(t.attempt, 2);
    app.expire(&t.trial_id).await;
    assert_eq!(app.state_of(&t.trial_id).await, ("dead".into(), 2, 2, 0));
}

#[tokio::test]
async fn user_errors_fail_at_once_and_transient_ones_retry_with_backoff() {
    let app = app!();
    app.submit(GRID).await;
    let w = app.worker("a").await;
    let fail = |t: &pb::LeasedTrial, kind: pb::FailureKind| {
        with_token(
            &w,
            pb::FailRequest {
                trial: Some(pb::TrialRef { trial_id: t.trial_id.clone(), attempt: t.attempt }),
                error: "boom".into(),
                kind: kind as i32,
            },
        )
    };
    let user = app.lease(&w, 1).await.remove(0);
    app.agent().fail(fail(&user, pb::FailureKind::User)).await.unwrap();
    assert_eq!(app.state_of(&user.trial_id).await, ("failed".into(), 1, 0, 1));

    // A poison trial: transient errors use up its budget (max_attempts 3), then failed.
    let poison = app.lease(&w, 1).await.remove(0);
    let id = poison.trial_id.clone();
    let mut t = poison;
    for attempt in 1..=3 {
        assert_eq!(t.attempt, attempt);
        app.agent().fail(fail(&t, pb::FailureKind::Transient)).await.unwrap();
        if attempt == 3 {
            break;
        }
        // Backoff: not claimable until not_before passes; find it again by id.
        let (nb_in_future,): (bool,) = sqlx::query_as("SELECT not_before > now() FROM trials WHERE id = $1")
            .bind(id.parse::<uuid::Uuid>().unwrap())
            .fetch_one(&app.db)
            .await
            .unwrap();
        assert!(nb_in_future, "retry is delayed");
        sqlx::query("UPDATE trials SET not_before = now() WHERE id = $1")
            .bind(id.parse::<uuid::Uuid>().unwrap())
            .execute(&app.db)
            .await
            .unwrap();
        // Everything else is queued too; lease until we get the poison trial back.
        let mut found = None;
        for _ in 0..9 {
            for l in app.lease(&w, 1).await {
                if l.trial_id == id {
                    found = Some(l);
                }
            }
            if found.is_some() {
                break;
            }
        }
        t = found.expect("poison trial re-leased");
    }
    assert_eq!(app.state_of(&id).await, ("failed".into(), 3, 0, 3));
}

/// `retry --failed` requeues failed trials only, `--dead` dead ones only; asking for
/// neither is refused and changes nothing.
#[tokio::test]
async fn retry_requeues_exactly_the_states_it_names() {
    let app = app!();
    let sweep = app.submit(&GRID.replace("max_attempts: 3", "max_attempts: 1")).await.sweep_id;
    let w = app.worker("a").await;
    let leased = app.lease(&w, 2).await;
    let (failed, dead) = (&leased[0], &leased[1]);
    let req = pb::FailRequest {
        trial: Some(pb::TrialRef { trial_id: failed.trial_id.clone(), attempt: failed.attempt }),
        error: "bad config".into(),
        kind: pb::FailureKind::User as i32,
    };
    app.agent().fail(with_token(&w, req)).await.unwrap();
    app.expire(&dead.trial_id).await;
    assert_eq!(app.state_of(&failed.trial_id).await.0, "failed");
    assert_eq!(app.state_of(&dead.trial_id).await.0, "dead");
    let retry = |failed: bool, dead: bool| {
        let req = pb::RetryFailedRequest { sweep_id: sweep.clone(), failed, dead };
        let mut c = app.client();
        let admin = app.admin.clone();
        async move { c.retry_failed(with_token(&admin, req)).await }
    };
    let refused = retry(false, false).await.expect_err("must say which");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert_eq!(retry(true, false).await.unwrap().into_inner().requeued, 1);
    assert_eq!(app.state_of(&failed.trial_id).await.0, "queued");
    assert_eq!(app.state_of(&dead.trial_id).await.0, "dead", "--failed leaves dead trials alone");
    assert_eq!(retry(false, true).await.unwrap().into_inner().requeued, 1);
    assert_eq!(app.state_of(&dead.trial_id).await, ("queued".into(), 1, 0, 0), "a fresh budget");
}

#[tokio::test]
async fn cancel_reaches_a_running_trial_through_its_heartbeat() {
    let app = app!();
    let sweep = app.submit(GRID).await;
    let w = app.worker("a").await;
    let t = app.lease(&w, 1).await.remove(0);
    let r = app
        .client()
        .cancel_sweep(with_token(&app.admin, pb::CancelSweepRequest { sweep_id: sweep.sweep_id.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.cancelled, 9);
    let hb = app
        .agent()
        .heartbeat(with_token(
            &w,
            pb::HeartbeatRequest { trials: vec![pb::TrialRef { trial_id: t.trial_id.clone(), attempt: 1 }] },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hb.directives[0].action, pb::Action::Cancel as i32);
    assert!(app.lease(&w, 5).await.is_empty(), "nothing left to lease");
    assert_eq!(app.complete(&w, &t, 0.3).await.unwrap_err().code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn best_trial_follows_the_goal() {
    let app = app!();
    let sweep = app.submit(GRID).await;
    let w = app.worker("a").await;
    let ts = app.lease(&w, 9).await;
    for (i, t) in ts.iter().enumerate() {
        app.complete(&w, t, [0.2, 0.7, 0.4, 0.1, 0.3, 0.6, 0.5, 0.05, 0.15][i]).await.unwrap();
    }
    let best = app
        .client()
        .best_trial(with_token(
            &app.admin,
            pb::BestTrialRequest { sweep_id: sweep.sweep_id.clone(), trial_id: String::new() },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(best.trial_id, ts[1].trial_id);
    assert_eq!(best.metrics["val.f1_micro"], 0.7);
}

/// With `constraints:`, the best trial is the best of those meeting them, whatever the
/// infeasible ones score; when none meets them, the answer says so.
#[tokio::test]
async fn best_trial_meets_the_constraints() {
    let app = app!();
    let yaml = format!("{GRID}constraints: ['val.f1_micro <= 0.5', 'val.f1_macro >= 0.2']\n");
    let sweep = app.submit(&yaml).await;
    let w = app.worker("a").await;
    let ts = app.lease(&w, 9).await;
    let micro = [0.2, 0.7, 0.4, 0.1, 0.3, 0.6, 0.5, 0.05, 0.15];
    let macro_ = [0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.1, 0.3, 0.3];
    for (i, t) in ts.iter().enumerate() {
        app.complete_with(&w, t, &[("val.f1_micro", micro[i]), ("val.f1_macro", macro_[i])]).await.unwrap();
    }
    let best = |id: String| async {
        app.client()
            .best_trial(with_token(&app.admin, pb::BestTrialRequest { sweep_id: id, trial_id: String::new() }))
            .await
    };
    // 0.7 and 0.6 are over the cap; 0.5 misses the macro floor: 0.4 is the best that counts.
    let b = best(sweep.sweep_id.clone()).await.unwrap().into_inner();
    assert_eq!((b.trial_id.as_str(), b.metrics["val.f1_micro"]), (ts[2].trial_id.as_str(), 0.4));

    let none = format!("{}constraints: ['val.f1_micro >= 0.9']\n", GRID.replace("name: g\n", "name: strict\n"));
    let strict = app.submit(&none).await;
    for t in app.lease(&w, 9).await {
        app.complete(&w, &t, 0.5).await.unwrap();
    }
    let e = best(strict.sweep_id).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("meeting its constraints"), "{}", e.message());
}

#[tokio::test]
async fn nothing_is_served_without_a_credential() {
    let app = app!();
    let no_token = app.client().list_sweeps(pb::ListSweepsRequest {}).await.unwrap_err();
    assert_eq!(no_token.code(), Code::Unauthenticated);
    let wrong = app.client().list_sweeps(with_token("swp_admin_nope", pb::ListSweepsRequest {})).await.unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    // A join token only registers; a client token cannot lease.
    let join_as_client = app.client().list_sweeps(with_token(&app.join, pb::ListSweepsRequest {})).await.unwrap_err();
    assert_eq!(join_as_client.code(), Code::PermissionDenied);
    let lease = app
        .agent()
        .lease(with_token(&app.admin, pb::LeaseRequest { max_trials: 1, wait_ms: 0, fuse: false }))
        .await
        .unwrap_err();
    assert_eq!(lease.code(), Code::Unauthenticated);
    let register = app
        .agent()
        .register(pb::RegisterRequest {
            name: "x".into(),
            host: "h".into(),
            gpus: vec![],
            slots: 1,
            version: "v".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(register.code(), Code::Unauthenticated);
    // Nothing was written by the refused calls.
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM workers").fetch_one(&app.db).await.unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn revoked_worker_is_refused_and_its_leases_return() {
    let app = app!();
    app.submit(GRID).await;
    let w = app.worker("a").await;
    let t = app.lease(&w, 2).await;
    let (id,): (uuid::Uuid,) = sqlx::query_as("SELECT id FROM workers").fetch_one(&app.db).await.unwrap();
    let mut conn = app.db.acquire().await.unwrap();
    assert_eq!(sweep_coordinator::db::workers::revoke(&mut conn, id).await.unwrap(), Some(2));
    assert_eq!(app.state_of(&t[0].trial_id).await.0, "queued");
    let err = app.complete(&w, &t[0], 0.5).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn bad_sweep_files_are_refused_and_insert_nothing() {
    let app = app!();
    for (yaml, needle) in [
        ("name: x\nparameters:\n  loss.focal_gama: {values: [1]}\n", "unknown parameter path"),
        ("name: x\nparameters:\n  loss.focal_gamma: {values: []}\n", "`values` is empty"),
        ("name: x\nbogus: 1\n", "unknown field"),
        ("name: x\nparameters:\n  train.lr: {values: [.nan]}\n", "not a finite number"),
    ] {
        let err = app
            .client()
            .submit_sweep(with_token(
                &app.admin,
                pb::SubmitSweepRequest {
                    spec_yaml: yaml.into(),
                    source_name: "bad.yaml".into(),
                    data_blobs: Default::default(),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{yaml}");
        assert!(err.message().contains(needle) && err.message().contains("bad.yaml"), "{}", err.message());
    }
    // Over the grid cap (1e6 cells with the default 1e5 cap).
    let values = format!("{:?}", (0..1000).collect::<Vec<_>>());
    let huge = format!(
        "name: x\nparameters:\n  train.seed: {{values: {values}}}\n  dataset.split_seed: {{values: {values}}}\n"
    );
    let err = app
        .client()
        .submit_sweep(with_token(
            &app.admin,
            pb::SubmitSweepRequest { spec_yaml: huge, source_name: "huge.yaml".into(), data_blobs: Default::default() },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("over the cap"), "{}", err.message());
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM sweeps").fetch_one(&app.db).await.unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn watch_streams_until_the_sweep_ends() {
    let app = app!();
    let sweep = app.submit(&GRID.replace("[6, 7, 8]", "[7]")).await;
    let mut stream = app
        .client()
        .watch_sweep(with_token(
            &app.admin,
            pb::WatchSweepRequest { sweep_id: sweep.sweep_id.clone(), omit_config: false },
        ))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.changed.len(), 3);
    assert!(!first.finished);
    let w = app.worker("a").await;
    for t in app.lease(&w, 3).await {
        app.complete(&w, &t, 0.4).await.unwrap();
    }
    let mut last = first;
    while let Some(ev) = stream.message().await.unwrap() {
        last = ev;
        if last.finished {
            break;
        }
    }
    assert!(last.finished);
    assert_eq!(last.sweep.unwrap().counts["succeeded"], 3);
}

#[tokio::test]
async fn two_hundred_agents_claiming_at_once_lease_every_trial_once() {
    let app = app!();
    let grid = GRID.replace(
        "loss.focal_gamma: {values: [0, 2, 3]}",
        &format!("train.seed: {{values: {:?}}}", (0..100).collect::<Vec<_>>()),
    );
    assert_eq!(app.submit(&grid).await.trials_total, 300);
    let mut workers = Vec::new();
    for i in 0..200 {
        workers.push(app.worker(&format!("w{i}")).await);
    }
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(200));
    let mut tasks = tokio::task::JoinSet::new();
    for w in workers {
        let (agent, start) = (app.agent(), start.clone());
        tasks.spawn(async move {
            start.wait().await;
            let mut a = agent.clone();
            let r = a.lease(with_token(&w, pb::LeaseRequest { max_trials: 2, wait_ms: 0, fuse: false })).await.unwrap();
            r.into_inner().trials.into_iter().map(|t| t.trial_id).collect::<Vec<_>>()
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r.unwrap());
    }
    assert_eq!(all.len(), 300, "two per agent until the 300 ran out");
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 300, "none leased twice");
    let v = sweep_coordinator::db::invariants::check(&app.db, false).await.unwrap();
    assert!(v.is_empty(), "{v:?}");
}

#[tokio::test]
async fn completion_racing_the_reaper_has_exactly_one_outcome() {
    let app = app!();
    app.submit(&GRID.replace("[6, 7, 8]", "[7]")).await;
    let w = app.worker("a").await;
    // Many rounds: each trial's lease runs out while its completion is in flight.
    let mut outcomes = (0, 0);
    for t in app.lease(&w, 3).await {
        sqlx::query("UPDATE trials SET lease_expires_at = now() + interval '5 milliseconds' WHERE id = $1")
            .bind(t.trial_id.parse::<uuid::Uuid>().unwrap())
            .execute(&app.db)
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(4)).await;
        match app.complete(&w, &t, 0.5).await {
            Ok(()) => outcomes.0 += 1,
            Err(e) => {
                assert_eq!(e.code(), Code::FailedPrecondition);
                outcomes.1 += 1;
            }
        }
        // Let the reaper pass, then check the trial took exactly one path.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let (state, attempt, lost, _) = app.state_of(&t.trial_id).await;
        match state.as_str() {
            "succeeded" => assert_eq!((attempt, lost), (1, 0)),
            "queued" => assert_eq!((attempt, lost), (1, 1)),
            other => panic!("unexpected state {other}"),
        }
    }
    assert_eq!(outcomes.0 + outcomes.1, 3);
    let v = sweep_coordinator::db::invariants::check(&app.db, false).await.unwrap();
    assert!(v.is_empty(), "{v:?}");
}

#[tokio::test]
async fn oversized_messages_are_refused_and_the_server_stays_healthy() {
    let app = app!();
    // Bigger than the server's 1 MiB message limit (the test settings).
    let huge = format!("name: x\ndescription: '{}'\n", "a".repeat(2 << 20));
    let err = app
        .client()
        .submit_sweep(with_token(
            &app.admin,
            pb::SubmitSweepRequest { spec_yaml: huge, source_name: "big.yaml".into(), data_blobs: Default::default() },
        ))
        .await
        .unwrap_err();
    assert!(matches!(err.code(), Code::ResourceExhausted | Code::OutOfRange), "{err:?}");
    // Too many metrics in one report.
    app.submit(GRID).await;
    let w = app.worker("a").await;
    let t = app.lease(&w, 1).await.remove(0);
    let metrics = (0..1000).map(|i| (format!("m{i}"), 0.1)).collect();
    let err = app
        .agent()
        .report_progress(with_token(
            &w,
            pb::ProgressRequest {
                trial: Some(pb::TrialRef { trial_id: t.trial_id.clone(), attempt: 1 }),
                epoch: 1,
                metrics,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    // Still serving.
    let sweeps = app.client().list_sweeps(with_token(&app.admin, pb::ListSweepsRequest {})).await.unwrap();
    assert_eq!(sweeps.into_inner().sweeps.len(), 1);
}

/// gRPC reflection answers in both protocol versions (v1, and v1alpha, which Python's
/// grpcio-reflection and older grpcurl speak) and lists every service, health included.
#[tokio::test]
async fn reflection_v1_and_v1alpha_list_every_service() {
    use tonic_reflection::pb::{v1, v1alpha};
    let app = app!();
    let want = [
        "sweep.v1.ClientService",
        "sweep.v1.AgentService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ];
    let req = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut c = v1alpha::server_reflection_client::ServerReflectionClient::new(app.channel.clone());
    let mut stream = c.server_reflection_info(tokio_stream::iter([req])).await.unwrap().into_inner();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        stream.message().await.unwrap().unwrap().message_response
    else {
        panic!("v1alpha: not a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(want.iter().all(|w| names.iter().any(|n| n == w)), "v1alpha lists {names:?}");
    let req = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut c = v1::server_reflection_client::ServerReflectionClient::new(app.channel.clone());
    let mut stream = c.server_reflection_info(tokio_stream::iter([req])).await.unwrap().into_inner();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        stream.message().await.unwrap().unwrap().message_response
    else {
        panic!("v1: not a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(want.iter().all(|w| names.iter().any(|n| n == w)), "v1 lists {names:?}");
}

/// Complete-and-lease-next: one call records the result and leases the next trials to
/// the same worker; the same report sent again records nothing and leases nothing.
#[tokio::test]
async fn completion_leases_the_next_trials_in_the_same_call() {
    let app = app!();
    app.submit(GRID).await;
    let w = app.worker("a").await;
    let t = app.lease(&w, 1).await.remove(0);
    let req = pb::CompleteRequest {
        trial: Some(pb::TrialRef { trial_id: t.trial_id.clone(), attempt: t.attempt }),
        metrics: [("val.f1_micro".to_string(), 0.5)].into(),
        result_json: "{}".into(),
        lease_next: 2,
        pruned: false,
        model_sha256: String::new(),
    };
    let next = app.agent().complete(with_token(&w, req.clone())).await.unwrap().into_inner().next;
    assert_eq!(next.len(), 2);
    for n in &next {
        assert_ne!(n.trial_id, t.trial_id);
        assert_eq!(app.state_of(&n.trial_id).await, ("leased".into(), 1, 0, 0));
    }
    assert_eq!(app.state_of(&t.trial_id).await.0, "succeeded");
    let again = app.agent().complete(with_token(&w, req)).await.unwrap().into_inner().next;
    assert!(again.is_empty(), "a repeated report leases nothing: {again:?}");
    let (leased,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM trials WHERE state = 'leased'").fetch_one(&app.db).await.unwrap();
    assert_eq!(leased, 2);
}

/// Quarantine: a worker whose trials fail with transient (infrastructure) errors
/// `quarantine_after` times in a row gets no new leases, shows as quarantined, and leases
/// again once an admin clears it; user errors and other workers are not affected.
#[tokio::test]
async fn a_worker_failing_again_and_again_is_quarantined_until_cleared() {
    let Some(app) = sweep_testkit::app::spawn_with(|s| s.quarantine_after = 2).await else { return };
    app.submit(GRID).await;
    let (bad, good) = (app.worker("bad").await, app.worker("good").await);
    let fail = |t: &pb::LeasedTrial, kind: pb::FailureKind| {
        with_token(
            &bad,
            pb::FailRequest {
                trial: Some(pb::TrialRef { trial_id: t.trial_id.clone(), attempt: t.attempt }),
                error: "CUDA error: an illegal memory access".into(),
                kind: kind as i32,
            },
        )
    };
    let user = app.lease(&bad, 1).await.remove(0);
    app.agent().fail(fail(&user, pb::FailureKind::User)).await.unwrap(); // says nothing about the machine
    for _ in 0..2 {
        let t = app.lease(&bad, 1).await.remove(0);
        app.agent().fail(fail(&t, pb::FailureKind::Transient)).await.unwrap();
    }
    assert!(app.lease(&bad, 1).await.is_empty(), "a quarantined worker gets no lease while trials are queued");
    assert_eq!(app.lease(&good, 1).await.len(), 1, "other workers still do");
    let workers = app
        .client()
        .list_workers(with_token(&app.admin, pb::ListWorkersRequest {}))
        .await
        .unwrap()
        .into_inner()
        .workers;
    let state = |name: &str| workers.iter().find(|w| w.name == name).unwrap().state();
    assert_eq!((state("bad"), state("good")), (pb::WorkerState::Quarantined, pb::WorkerState::Alive));
    let id = workers.iter().find(|w| w.name == "bad").unwrap().worker_id.parse().unwrap();
    assert!(sweep_coordinator::db::workers::clear_quarantine(&app.db, id).await.unwrap());
    assert_eq!(app.lease(&bad, 1).await.len(), 1, "cleared, it leases again");
}

/// Issue 38's guard: with 10,000 trials queued, every form of the claim statement (one
/// trial or a fused group; any sweep or a fleet's own) walks the queue's index in order and
/// stops at the first claimable rows: no sequential scan of `trials`, no hash or merge join
/// over it, and no sort outside a fused group, before statistics are gathered and after. (A `NOT EXISTS` over sweeps
/// once turned into an anti-join that scanned and sorted the whole queue on every claim:
/// a quarter of the throughput.) A plan, not a timing: it cannot flake.
#[tokio::test]
async fn the_claim_walks_the_queue_index_and_never_scans_the_queue() {
    use sweep_coordinator::db::leases::claim_sql;
    let app = app!();
    let values: Vec<u32> = (0..100).collect();
    let yaml = format!(
        "name: big\nparameters:\n  train.seed: {{values: {values:?}}}\n  dataset.split_seed: {{values: {values:?}}}\n"
    );
    let sweep: uuid::Uuid = app.submit(&yaml).await.sweep_id.parse().unwrap();
    app.worker("w").await;
    let (worker,): (uuid::Uuid,) = sqlx::query_as("SELECT id FROM workers").fetch_one(&app.db).await.unwrap();
    // A fused claim may sort its group (the trials sharing the head's fuse key, taken K
    // at a time); the plain claim, the path of every unfused worker, sorts nothing.
    fn walk(node: &serde_json::Value, fuse: bool, bad: &mut Vec<String>) {
        let kind = node["Node Type"].as_str().unwrap_or_default();
        let on_trials = node["Relation Name"].as_str() == Some("trials");
        let sort = kind == "Sort" && !fuse;
        if (on_trials && kind == "Seq Scan") || sort || kind == "Hash Join" || kind == "Merge Join" {
            bad.push(format!("{kind} {}", node["Relation Name"].as_str().unwrap_or_default()));
        }
        for child in node["Plans"].as_array().into_iter().flatten() {
            walk(child, fuse, bad);
        }
    }
    for analyzed in [false, true] {
        if analyzed {
            sqlx::query("ANALYZE").execute(&app.db).await.unwrap();
        }
        for (fuse, only) in [(false, false), (true, false), (false, true), (true, true)] {
            let sql = format!("EXPLAIN (FORMAT JSON) {}", claim_sql(fuse, only));
            let q = sqlx::query_scalar::<_, serde_json::Value>(&sql).bind(worker).bind(4i64).bind(30_000f64);
            let q = if only { q.bind(vec![sweep]) } else { q };
            let plan = q.fetch_one(&app.db).await.unwrap();
            let mut bad = Vec::new();
            walk(&plan[0]["Plan"], fuse, &mut bad);
            assert!(bad.is_empty(), "fuse {fuse}, a fleet's sweeps {only}, analyzed {analyzed}: {bad:?}\n{plan:#}");
        }
    }
}
