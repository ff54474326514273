//! The dashboard over real HTTP on the coordinator's port: nothing without a token, the
//! login cookie, the API in exactly the CLI's `-o json` shapes (the real `sweep` binary
//! run beside it), server-sent events, and a trial's attempts as the trigger records them.

use std::process::Command;

use serde_json::Value;
use sweep_coordinator::db::tokens::{self, Role};
use sweep_testkit::app::{spawn, GRID};
use sweep_testkit::http::{self, Answer};
use sweep_testkit::procs::bin;

macro_rules! app {
    () => {
        match spawn().await {
            Some(a) => a,
            None => return,
        }
    };
}

/// One request over plain HTTP, off the async threads.
async fn send(method: &str, addr: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let (method, addr, path, body) = (method.to_string(), addr.to_string(), path.to_string(), body.to_string());
    let headers: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    tokio::task::spawn_blocking(move || {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        http::request(&addr, &method, &path, &h, &body)
    })
    .await
    .unwrap()
}

async fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    send("GET", addr, path, headers, "").await
}

async fn post(addr: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    send("POST", addr, path, headers, body).await
}

/// What `sweep -o json ARGS` prints against the app (None: the CLI is not built here).
fn cli_json(url: &str, token: &str, args: &[&str]) -> Option<Value> {
    let exe = bin("sweep");
    if !exe.exists() {
        return sweep_testkit::skip("sweep not built beside the tests (cargo test --workspace builds it)");
    }
    let out =
        Command::new(exe).args(["-o", "json", "--coordinator", url]).args(args).env("SWEEP_TOKEN", token).output();
    let out = out.unwrap();
    assert!(out.status.success(), "sweep {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_page_and_api_path_needs_a_token_and_the_api_prints_what_the_cli_prints() {
    let app = app!();
    let addr = app.addr.to_string();
    let (_, client) = tokens::create(&app.db, Role::Client, "dash").await.unwrap();
    let sweep = app.submit(GRID).await.sweep_id;
    let w = app.worker("w1").await;
    let leased = app.lease(&w, 3).await;
    app.complete(&w, &leased[0], 0.31).await.unwrap();
    app.complete(&w, &leased[1], 0.52).await.unwrap();
    let trial = leased[0].trial_id.clone();
    let paths: Vec<String> = [
        "/",
        "/workers",
        "/sweeps/S",
        "/trials/T",
        "/assets/app.js",
        "/assets/app.css",
        "/api/v1/sweeps",
        "/api/v1/overview",
        "/api/v1/sweeps/S",
        "/api/v1/sweeps/S/trials",
        "/api/v1/sweeps/S/configurations",
        "/api/v1/sweeps/S/importance",
        "/api/v1/sweeps/S/curves",
        "/api/v1/sweeps/S/events",
        "/api/v1/trials/T",
        "/api/v1/trials/T/model",
        "/api/v1/workers",
        "/api/v1/fleets",
    ]
    .iter()
    .map(|p| p.replace('S', &sweep).replace('T', &trial))
    .collect();
    let (bad, join) = ("Bearer swp_client_nonsense".to_string(), format!("Bearer {}", app.join));
    for p in &paths {
        for headers in [vec![], vec![("Authorization", bad.as_str())], vec![("Authorization", join.as_str())]] {
            let a = get(&addr, p, &headers).await;
            assert_eq!(a.status, 401, "{p} with {headers:?}: {a:?}");
            assert!(!a.body.contains(&sweep) && !a.body.contains("w1"), "{p}: a 401 says nothing about the sweeps");
        }
        for cookie in [format!("sweep_session={}", app.join), format!("sweep_token={client}")] {
            assert_eq!(get(&addr, p, &[("Cookie", &cookie)]).await.status, 401, "{p} with cookie {cookie}");
        }
    }
    let bearer = format!("Bearer {client}");
    let auth = [("Authorization", bearer.as_str())];
    for p in &paths {
        if p.ends_with("/events") {
            let (addr, path, bearer) = (addr.clone(), p.clone(), bearer.clone());
            let status =
                tokio::task::spawn_blocking(move || http::events(&addr, &path, &[("Authorization", &bearer)]).0);
            assert_eq!(status.await.unwrap(), 200, "{p}");
            continue;
        }
        let a = get(&addr, p, &auth).await;
        let want = if p.ends_with("/model") {
            404 // no model was uploaded for a trial completed by hand
        } else if p.ends_with("/fleets") {
            403 // fleets spend money: admin only
        } else {
            200
        };
        assert_eq!(a.status, want, "{p}: {}", a.body.chars().take(300).collect::<String>());
    }
    let admin = format!("Bearer {}", app.admin);
    assert_eq!(get(&addr, "/api/v1/fleets", &[("Authorization", &admin)]).await.status, 200);

    // The same JSON as the CLI's -o json.
    let url = format!("http://{addr}");
    for (api, cli) in [
        ("/api/v1/sweeps".to_string(), vec!["status"]),
        (format!("/api/v1/sweeps/{sweep}"), vec!["status", &sweep]),
        (format!("/api/v1/sweeps/{sweep}/trials"), vec!["trials", &sweep]),
        ("/api/v1/workers".to_string(), vec!["workers"]),
    ] {
        let Some(want) = cli_json(&url, &client, &cli) else { return };
        assert_eq!(get(&addr, &api, &auth).await.json(), want, "{api} against sweep {cli:?} -o json");
    }
    let trials = get(&addr, &format!("/api/v1/sweeps/{sweep}/trials"), &auth).await.json();
    assert_eq!(trials["trials"].as_array().unwrap().len(), 9);
    let ui = cli_json(&url, &client, &["ui", &sweep]).unwrap();
    assert_eq!(ui["url"], format!("{url}/sweeps/{sweep}"));
}

/// Issue 32, item 7: the login cookie holds a session id of its own (not the token),
/// opens the pages until logout ends it on the server or the token is revoked, and a
/// login posted from another site is refused.
#[tokio::test(flavor = "multi_thread")]
async fn login_sets_an_http_only_strict_session_cookie_that_logout_and_revocation_end() {
    let app = app!();
    let addr = app.addr.to_string();
    let (token_id, client) = tokens::create(&app.db, Role::Client, "dash").await.unwrap();
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let refused = post(&addr, "/login", &form, "token=swp_client_wrong").await;
    assert_eq!(refused.status, 401);
    assert!(refused.body.contains("unknown or revoked token"), "{}", refused.body);
    assert!(refused.header("set-cookie").is_none());
    // A form posted from another site (a browser says so in Origin or Sec-Fetch-Site).
    let body = format!("token={client}");
    for cross in [("Origin", "http://evil.example"), ("Sec-Fetch-Site", "cross-site")] {
        let headers = [form[0], cross];
        let a = post(&addr, "/login", &headers, &body).await;
        assert_eq!(a.status, 403, "{cross:?}: {a:?}");
        assert!(a.header("set-cookie").is_none(), "{cross:?} set no cookie");
    }
    let own_origin = format!("http://{addr}");
    let login = |origin: bool| {
        let (addr, body, own_origin) = (addr.clone(), body.clone(), own_origin.clone());
        async move {
            let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
            if origin {
                headers.push(("Origin", own_origin.as_str()));
            }
            let ok = post(&addr, "/login", &headers, &body).await;
            assert_eq!(ok.status, 303, "{ok:?}");
            ok.header("set-cookie").unwrap().to_string()
        }
    };
    let cookie = login(true).await;
    for part in ["sweep_session=swp_session_", "HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=604800"] {
        assert!(cookie.contains(part), "{cookie} lacks {part}");
    }
    assert!(!cookie.contains(&client), "the cookie is not the API token: {cookie}");
    let pair = cookie.split(';').next().unwrap().to_string();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM web_sessions WHERE token_id = $1 AND id_hash <> $2")
        .bind(token_id)
        .bind(pair.trim_start_matches("sweep_session="))
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, 1, "the session is stored, by hash only");
    let page = get(&addr, "/", &[("Cookie", &pair)]).await;
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    assert!(page.header("content-security-policy").unwrap().contains("default-src 'self'"));
    assert!(page.body.contains("/assets/app.js") && !page.body.contains("http://") && !page.body.contains("https://"));
    let api = get(&addr, "/api/v1/sweeps", &[("Cookie", &pair)]).await;
    assert_eq!(api.status, 200);
    assert_eq!(api.header("x-content-type-options"), Some("nosniff"), "JSON is never sniffed");
    assert_eq!(api.header("cache-control"), Some("no-store"), "JSON is never cached");
    let out = post(&addr, "/logout", &[("Cookie", &pair)], "").await;
    assert_eq!(out.status, 303);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    // Logout ended the session on the server: the old cookie, replayed, opens nothing.
    assert_eq!(get(&addr, "/api/v1/sweeps", &[("Cookie", &pair)]).await.status, 401, "ended by logout");
    // A second login (curl-like: no Origin), then the token revoked: its session ends.
    let pair = login(false).await.split(';').next().unwrap().to_string();
    assert_eq!(get(&addr, "/", &[("Cookie", &pair)]).await.status, 200);
    assert!(tokens::revoke(&app.db, token_id).await.unwrap());
    assert_eq!(get(&addr, "/", &[("Cookie", &pair)]).await.status, 401, "ended by revoking its token");
}

/// The event stream starts with every trial and then carries each change; a trial's
/// attempts (lost, then succeeded on another worker) come from the trigger.
#[tokio::test(flavor = "multi_thread")]
async fn events_carry_every_change_and_a_trial_lists_its_attempts() {
    let app = app!();
    let addr = app.addr.to_string();
    let sweep = app.submit(GRID).await.sweep_id;
    let (w1, w2) = (app.worker("w1").await, app.worker("w2").await);
    let first = app.lease(&w1, 1).await.remove(0);
    app.expire(&first.trial_id).await;
    let bearer = format!("Bearer {}", app.admin);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let path = format!("/api/v1/sweeps/{sweep}/events");
    std::thread::spawn(move || {
        let (status, events) = http::events(&addr, &path, &[("Authorization", &bearer)]);
        assert_eq!(status, 200);
        for e in events {
            if tx.send(serde_json::from_str::<Value>(&e).unwrap()).is_err() {
                return;
            }
        }
    });
    let opening = rx.recv().await.unwrap();
    assert_eq!(opening["trials"].as_array().unwrap().len(), 9, "the first event carries every trial");
    assert_eq!(opening["sweep"]["sweep_id"], sweep);
    // Leased again (now by w2) and completed.
    let again = loop {
        let l = app.lease(&w2, 1).await;
        if let Some(t) = l.into_iter().find(|t| t.trial_id == first.trial_id) {
            break t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    };
    app.complete(&w2, &again, 0.44).await.unwrap();
    let seen = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            let ev = rx.recv().await.unwrap();
            let t = ev["trials"].as_array().unwrap().iter().find(|t| t["trial_id"] == first.trial_id).cloned();
            if let Some(t) = t.filter(|t| t["state"] == "succeeded") {
                return t;
            }
        }
    })
    .await
    .expect("the completion arrives as an event");
    assert_eq!(seen["objective"], 0.44);
    let detail = get(
        &app.addr.to_string(),
        &format!("/api/v1/trials/{}", first.trial_id),
        &[("Authorization", &format!("Bearer {}", app.admin))],
    )
    .await
    .json();
    let attempts = detail["attempts"].as_array().unwrap();
    let summary: Vec<(i64, &str, &str)> = attempts
        .iter()
        .map(|a| (a["attempt"].as_i64().unwrap(), a["worker"].as_str().unwrap(), a["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(summary, [(1, "w1", "lost"), (2, "w2", "succeeded")]);
    assert!(attempts.iter().all(|a| !a["ended_at"].is_null()));
    assert!(detail["rerun_yaml"].as_str().unwrap().contains("method: grid"));
    assert_eq!(detail["sweep"]["sweep_id"], sweep);
}

/// Two coordinators on one database: a change made through one wakes the watch streams
/// (and dashboards) of the other through Postgres notifications, not only its 2 s tick
/// (which never touches the broadcast this listens on).
#[tokio::test(flavor = "multi_thread")]
async fn a_change_on_one_coordinator_wakes_the_watchers_of_another() {
    let app = app!();
    let other = sweep_coordinator::Coordinator::build(sweep_testkit::app::settings(&app.url)).await.unwrap();
    let mut woken = other.state.changes.subscribe();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(other.run(stop.clone()));
    // The other coordinator starts listening in the background: submit until it hears one.
    let mut heard = None;
    for i in 0..20 {
        let sweep = app.submit(&GRID.replacen("name: g\n", &format!("name: g{i}\n"), 1)).await.sweep_id;
        let wait = tokio::time::timeout(std::time::Duration::from_secs(1), async {
            loop {
                match woken.recv().await {
                    Ok(id) if id.to_string() == sweep => return id,
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(e) => panic!("{e}"),
                }
            }
        });
        if let Ok(id) = wait.await {
            heard = Some((i, id));
            break;
        }
    }
    stop.cancel();
    let (i, _) = heard.expect("the other coordinator heard of a sweep submitted elsewhere");
    eprintln!("heard after {} submit(s)", i + 1);
}

/// With several objectives the configurations answer carries the Pareto front (the page
/// draws it as a table): here the two trials no other beats on both.
#[tokio::test(flavor = "multi_thread")]
async fn several_objectives_give_the_page_a_pareto_front() {
    let app = app!();
    let two = "metrics:\n  - {name: val.f1_micro, goal: maximize}\n  - {name: val.loss, goal: minimize}\n";
    let sweep = app.submit(&GRID.replacen("metric: {name: val.f1_micro, goal: maximize}\n", two, 1)).await.sweep_id;
    let w = app.worker("w1").await;
    let leased = app.lease(&w, 3).await;
    for (t, (f1, loss)) in leased.iter().zip([(0.5, 0.3), (0.4, 0.2), (0.3, 0.4)]) {
        app.complete_with(&w, t, &[("val.f1_micro", f1), ("val.loss", loss)]).await.unwrap();
    }
    let bearer = format!("Bearer {}", app.admin);
    let c =
        get(&app.addr.to_string(), &format!("/api/v1/sweeps/{sweep}/configurations"), &[("Authorization", &bearer)])
            .await
            .json();
    let front: Vec<(f64, f64)> = c["pareto"]["front"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["means"]["val.f1_micro"].as_f64().unwrap(), f["means"]["val.loss"].as_f64().unwrap()))
        .collect();
    assert_eq!(front, [(0.5, 0.3), (0.4, 0.2)], "{c}");
}
