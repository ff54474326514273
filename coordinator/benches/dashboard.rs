//! Dashboard at scale: a sweep of 10,000 finished trials (each with 3 epochs of
//! validation curve), inserted through the agent API by 8 concurrent agents whose trials
//! do nothing (a stand-in trainer: this measures the dashboard, not training), then the
//! sweep's page opened in headless Chromium. Prints the time to first paint, to the data,
//! to a complete parallel-coordinates plot and to the full trials table; the API's answer
//! times; and the page's weight, raw and gzip-compressed.
//!
//!     bench/dashboard.sh            (starts a private Postgres, then runs this)

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::json;
use sweep_proto as pb;
use sweep_testkit::app::{spawn, with_token, TestApp};
use sweep_testkit::browser::Browser;
use sweep_testkit::http;

const SIDE: [usize; 3] = [25, 20, 20];

/// The stand-in objective: a peak in the learning rate, the rest nearly flat.
fn objective(lr: f64, cap: f64, gamma: f64, seq: u64) -> f64 {
    let noise = ((seq.wrapping_mul(2_654_435_761) % 1000) as f64 / 1000.0 - 0.5) * 0.01;
    0.5 - 0.05 * (lr.log10() + 2.5).powi(2) + 0.001 * cap - 0.0005 * gamma + noise
}

async fn agent(app: &TestApp, name: &str) -> usize {
    let w = app.worker(name).await;
    let mut agent = app.agent();
    let mut n = 0u64;
    loop {
        let leased = app.lease(&w, 50).await;
        if leased.is_empty() {
            return n as usize;
        }
        for t in &leased {
            let p: serde_json::Value = serde_json::from_str(&t.params_json).unwrap();
            let lr = p["train.lr"].as_f64().unwrap();
            let (cap, gamma) = (p["loss.class_weight.cap"].as_f64().unwrap(), p["loss.focal_gamma"].as_f64().unwrap());
            let y = objective(lr, cap, gamma, n);
            for epoch in 1..=3u32 {
                let v = y - 0.02 * f64::from(3 - epoch);
                let req = pb::ProgressRequest {
                    trial: Some(pb::TrialRef { trial_id: t.trial_id.clone(), attempt: t.attempt }),
                    epoch,
                    metrics: [("val.f1_micro".to_string(), v), ("val.loss".to_string(), 1.0 - v)].into(),
                };
                agent.report_progress(with_token(&w, req)).await.expect("progress");
            }
            let m = [
                ("val.f1_micro", y),
                ("test.f1_macro_head", y),
                ("test.f1_macro_medium", y - 0.1),
                ("test.f1_macro_tail", y - 0.2),
            ];
            app.complete_with(&w, t, &m).await.expect("complete");
            n += 1;
        }
    }
}

fn gzip_len(bytes: &[u8]) -> usize {
    let mut child = std::process::Command::new("gzip")
        .arg("-9c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    child.wait_with_output().unwrap().stdout.len()
}

fn timed(addr: &str, path: &str, auth: &str) -> (Duration, usize) {
    let t = Instant::now();
    let a = http::get(addr, path, &[("Authorization", auth)]);
    assert_eq!(a.status, 200, "{path}: {}", a.body);
    (t.elapsed(), a.body.len())
}

#[tokio::main]
async fn main() {
    let Some(app) = spawn().await else { return };
    let yaml = format!(
        "name: scale\nparameters:\n  train.lr: {{values: {:?}}}\n  loss.class_weight.cap: {{values: {:?}}}\n  loss.focal_gamma: {{values: {:?}}}\n",
        (0..SIDE[0]).map(|i| 10f64.powf(-5.0 + 4.0 * i as f64 / (SIDE[0] - 1) as f64)).collect::<Vec<_>>(),
        (1..=SIDE[1]).collect::<Vec<_>>(),
        (0..SIDE[2]).map(|g| g as f64 / 2.0).collect::<Vec<_>>(),
    );
    let t0 = Instant::now();
    let sweep = app.submit(&yaml).await.sweep_id;
    let done: usize = futures::future::join_all((0..8).map(|i| {
        let app = &app;
        async move { agent(app, &format!("a{i}")).await }
    }))
    .await
    .into_iter()
    .sum();
    let insert = t0.elapsed();
    assert_eq!(done, SIDE.iter().product::<usize>());
    let addr = app.addr.to_string();
    let auth = format!("Bearer {}", app.admin);
    let api: Vec<(String, (Duration, usize))> = ["trials", "configurations", "importance", "curves"]
        .iter()
        .map(|p| {
            let path = format!("/api/v1/sweeps/{sweep}/{p}");
            let r = timed(&addr, &path, &auth);
            (path, r)
        })
        .collect();
    let importance =
        http::get(&addr, &format!("/api/v1/sweeps/{sweep}/importance"), &[("Authorization", &auth)]).json();
    let page = browse(&addr, &app.admin, &sweep);
    let weight: Vec<(&str, usize, usize)> = ["/", "/assets/app.js", "/assets/app.css"]
        .iter()
        .map(|p| {
            let body = http::get(&addr, p, &[("Authorization", &auth)]).body;
            (*p, body.len(), gzip_len(body.as_bytes()))
        })
        .collect();
    println!(
        "\nDashboard at scale: {done} finished trials, 3 epochs each (inserted through the agent API in {:.1} s)\n",
        insert.as_secs_f64()
    );
    println!("| in the browser (headless Chromium) | ms from navigation start |\n|---|---|");
    for (what, ms) in &page {
        println!("| {what} | {ms:.0} |");
    }
    println!("\n| API path | answered in ms | bytes |\n|---|---|---|");
    for (path, (t, n)) in &api {
        println!("| {} | {:.0} | {n} |", path.replace(&sweep, "ID"), t.as_secs_f64() * 1e3);
    }
    println!("\n| asset | bytes | gzip -9 bytes |\n|---|---|---|");
    for (p, raw, gz) in &weight {
        println!("| {p} | {raw} | {gz} |");
    }
    let (raw, gz) = weight.iter().fold((0, 0), |a, w| (a.0 + w.1, a.1 + w.2));
    println!("| the page (all three) | {raw} | {gz} |");
    println!("\nparameter importance ({}): {}", importance["method"], json!(importance["parameters"]));
}

/// Opens the sweep page signed in; the moments it reached, from navigation start.
fn browse(addr: &str, token: &str, sweep: &str) -> Vec<(&'static str, f64)> {
    let Some(mut b) = Browser::launch(1400, 1000) else { return vec![] };
    let base = format!("http://{addr}");
    b.goto(&format!("{base}/login"));
    b.eval(&format!(
        "document.getElementById('token').value = {}; document.getElementById('login').submit(); true",
        json!(token)
    ));
    b.wait_until("location.pathname === '/' && document.readyState === 'complete'", Duration::from_secs(30));
    b.goto(&format!("{base}/sweeps/{sweep}"));
    b.wait_until(
        "performance.getEntriesByName('trials-done').length > 0 && document.querySelectorAll('#trials tbody tr').length === 10000",
        Duration::from_secs(120),
    );
    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&shot).unwrap();
    b.screenshot(&shot.join("dashboard-10k.png"));
    let at = |b: &mut Browser, js: &str| b.eval(js).as_f64().unwrap_or(f64::NAN);
    vec![
        (
            "first paint",
            at(&mut b, "performance.getEntriesByType('paint').find(e => e.name === 'first-paint')?.startTime"),
        ),
        (
            "first contentful paint",
            at(
                &mut b,
                "performance.getEntriesByType('paint').find(e => e.name === 'first-contentful-paint')?.startTime",
            ),
        ),
        (
            "every trial received (the event stream's first event)",
            at(&mut b, "performance.getEntriesByName('sweep-data')[0].startTime"),
        ),
        (
            "parallel coordinates complete (10,000 lines)",
            at(&mut b, "performance.getEntriesByName('parcoords-done')[0].startTime"),
        ),
        ("trials table complete (10,000 rows)", at(&mut b, "performance.getEntriesByName('trials-done')[0].startTime")),
    ]
}
