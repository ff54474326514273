//! The dashboard in a real browser (headless Chromium over the DevTools protocol) during a
//! live sweep through real processes: it lists exactly what `sweep trials -o json` lists,
//! trials finishing show up without a reload, brushing an axis filters the table. It
//! leaves a screenshot of each view under target/test-artifacts/ (`scripts/screenshots.sh`
//! copies them into docs/). The scale benchmark (10,000 trials) is `bench/dashboard.sh`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use sweep_testkit::browser::Browser;
use sweep_testkit::procs::Cluster;

const SWEEP: &str = "name: live\n\
    dataset: {kind: synthetic, labels: 60, features: 32, train_samples: 1500, test_samples: 300, max_positives: 400}\n\
    model: {hidden: [32]}\ntrain: {epochs: 5, patience: 0}\n\
    parameters:\n  loss.class_weight.cap: {values: [4, 8]}\n  loss.focal_gamma: {values: [0, 3]}\n  train.seed: {values: [0, 1]}\n";

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Signs in through the login form with the cluster's admin token.
fn sign_in(b: &mut Browser, base: &str, token: &str) {
    b.goto(&format!("{base}/login"));
    b.eval(&format!(
        "document.getElementById('token').value = {}; document.getElementById('login').submit(); true",
        json!(token)
    ));
    b.wait_until("location.pathname === '/' && document.readyState === 'complete'", Duration::from_secs(20));
}

/// (trial id, state, objective) of each row of the page's trials table.
fn rows(b: &mut Browser) -> Vec<(String, String, Option<f64>)> {
    let v = b.eval(
        "[...document.querySelectorAll('#trials tbody tr')].map(r => [r.dataset.trial, r.dataset.state, r.dataset.objective])",
    );
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_str().unwrap().into(), r[1].as_str().unwrap().into(), r[2].as_str().unwrap().parse().ok()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_follows_a_live_sweep_in_a_real_browser() {
    let Some(c) = Cluster::new().await else { return };
    let Some(mut b) = Browser::launch(1400, 1000) else { return };
    let _coordinator = c.coordinator();
    let token = std::fs::read_to_string(&c.token).unwrap().trim().to_string();
    let sweep = c.submit_yaml(SWEEP);
    let base = c.addr();
    sign_in(&mut b, &base, &token);
    b.screenshot(&artifacts().join("dashboard-sweeps.png"));
    b.goto(&format!("{base}/sweeps/{sweep}"));
    b.wait_until("document.querySelectorAll('#trials tbody tr').length === 8", Duration::from_secs(20));
    b.eval("window.notReloaded = true");
    let _worker = c.worker("w0", &base, &["--threads", "1", "--exit-when-idle-secs", "5"]);

    // Each trial's first appearance as succeeded on the page, against when the database
    // recorded its end (one machine, one clock): printed, not asserted (timings are the
    // benchmark's business); what is asserted is that every one appears without a reload.
    let mut seen: BTreeMap<String, i64> = BTreeMap::new();
    let start = Instant::now();
    while seen.len() < 8 {
        assert!(start.elapsed() < Duration::from_secs(240), "only {} of 8 trials showed as succeeded", seen.len());
        for (id, state, _) in rows(&mut b) {
            if state == "succeeded" {
                seen.entry(id).or_insert_with(now_ms);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(b.eval("window.notReloaded === true"), json!(true), "the page was not reloaded");
    let finished: Vec<(String, i64)> = sqlx::query_as(
        "SELECT id::text, (extract(epoch FROM finished_at) * 1000)::int8 FROM trials WHERE sweep_id = $1::uuid",
    )
    .bind(&sweep)
    .fetch_all(&c.db)
    .await
    .unwrap();
    let lags: Vec<i64> = finished.iter().map(|(id, at)| seen[id] - at).collect();
    eprintln!("ms from a trial's end in Postgres to its row showing succeeded on the page: {lags:?}");

    // Exactly the trials and objectives of `sweep trials -o json`.
    let out = c.cli(&["trials", &sweep, "-o", "json"]);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let want: BTreeSet<(String, String, Option<u64>)> = listed["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["trial_id"].as_str().unwrap().into(),
                t["state"].as_str().unwrap().into(),
                t["objective"].as_f64().map(f64::to_bits),
            )
        })
        .collect();
    b.wait_until(
        "[...document.querySelectorAll('#trials tbody tr')].every(r => r.dataset.objective !== '')",
        Duration::from_secs(20),
    );
    let got: BTreeSet<(String, String, Option<u64>)> =
        rows(&mut b).into_iter().map(|(id, s, o)| (id, s, o.map(f64::to_bits))).collect();
    assert_eq!(got, want, "the page lists exactly what `sweep trials -o json` lists");

    brush_filters_the_table(&mut b, &listed);
    b.screenshot(&artifacts().join("dashboard-sweep.png"));
    let objective = |t: &&Value| t["objective"].as_f64().unwrap_or(f64::NEG_INFINITY);
    let best =
        listed["trials"].as_array().unwrap().iter().max_by(|x, y| objective(x).total_cmp(&objective(y))).unwrap();
    b.goto(&format!("{base}/trials/{}", best["trial_id"].as_str().unwrap()));
    b.wait_until("document.querySelectorAll('#attempts tbody tr').length === 1", Duration::from_secs(20));
    assert!(b.eval("document.getElementById('rerun').textContent").as_str().unwrap().contains("method: grid"));
    b.screenshot(&artifacts().join("dashboard-trial.png"));
    // The page's model link: the trial's model archive, as `sweep model get` fetches it.
    let href = b.eval("document.getElementById('model').getAttribute('href')");
    let addr = base.trim_start_matches("http://");
    let model =
        sweep_testkit::http::get(addr, href.as_str().unwrap(), &[("Authorization", &format!("Bearer {token}"))]);
    assert_eq!((model.status, model.header("content-type")), (200, Some("application/x-tar")));
    assert!(model.body.contains("model.json") && model.body.contains("model.safetensors"));
    b.goto(&format!("{base}/workers"));
    b.wait_until("document.querySelectorAll('#workers tbody tr').length === 1", Duration::from_secs(20));
    b.screenshot(&artifacts().join("dashboard-workers.png"));
    b.goto(&format!("{base}/sweeps/{sweep}"));
    b.wait_until(
        "document.getElementById('heat') && document.querySelector('#importance .imp')",
        Duration::from_secs(20),
    );
    b.screenshot(&artifacts().join("dashboard-sweep.png"));
}

/// Drags on the focal gamma axis over its upper half (gamma 3 sits at the top): the table
/// keeps exactly the trials with gamma 3; a click on the axis clears the filter.
fn brush_filters_the_table(b: &mut Browser, listed: &Value) {
    let rect = b.eval(
        "(() => { const r = document.querySelector('.pc .axis[data-param=\"loss.focal_gamma\"]').getBoundingClientRect();
                  return [r.left + r.width / 2, r.top, r.bottom]; })()",
    );
    let (x, top, bottom) = (rect[0].as_f64().unwrap(), rect[1].as_f64().unwrap(), rect[2].as_f64().unwrap());
    b.mouse("mousePressed", x, top + 1.0);
    b.mouse("mouseMoved", x, top + (bottom - top) * 0.25);
    b.mouse("mouseMoved", x, top + (bottom - top) * 0.5);
    b.mouse("mouseReleased", x, top + (bottom - top) * 0.5);
    let want: BTreeSet<String> = listed["trials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["params"]["loss.focal_gamma"] == json!(3))
        .map(|t| t["trial_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(want.len(), 4);
    let got: BTreeSet<String> = rows(b).into_iter().map(|r| r.0).collect();
    assert_eq!(got, want, "brushing gamma's upper half keeps the gamma-3 trials");
    assert_eq!(b.eval("document.getElementById('shown').textContent"), json!("4 of 8 shown"));
    b.mouse("mousePressed", x, top + 10.0);
    b.mouse("mouseReleased", x, top + 10.0);
    assert_eq!(rows(b).len(), 8, "a click clears the brush");
}
