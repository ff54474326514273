//! `sweep report`: one self-contained HTML file (no network fetches): the
//! leaderboard, per-epoch F1 curves of every trial, a heatmap of the objective for
//! two-parameter grids, and test F1 by head / medium / tail labels for the top trials.
//! Charts are SVG drawn with plotters and inlined.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use plotters::prelude::*;
use sweep_proto as pb;

use crate::objectives::Rules;
use crate::output::{fmt_metric, params, params_inline, rank};
use crate::replicas::Configuration;

pub struct ReportData {
    pub sweep: pb::Sweep,
    pub trials: Vec<pb::Trial>,
    /// trial id -> per-epoch metrics (latest attempt)
    pub history: BTreeMap<String, Vec<pb::EpochMetrics>>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn svg_curves(t: &pb::Trial, epochs: &[pb::EpochMetrics], metric: &str) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (420, 240)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let n = epochs.iter().map(|e| e.epoch).max().unwrap_or(1).max(1);
        let series: Vec<(&str, RGBColor)> =
            vec![(metric, RGBColor(31, 119, 180)), ("val.f1_macro", RGBColor(214, 39, 40))];
        let ymax = epochs
            .iter()
            .flat_map(|e| series.iter().filter_map(|(k, _)| e.metrics.get(*k).copied()))
            .fold(0.05f64, f64::max)
            .min(1.0);
        let title = format!("{} [{}]", &t.trial_id[..8], params_inline(&params(t)));
        let chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 13))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(40)
            .build_cartesian_2d(1u32..n.max(2), 0f64..ymax * 1.1);
        if let Ok(mut chart) = chart {
            let _ = chart.configure_mesh().x_desc("epoch").light_line_style(WHITE.mix(0.0)).draw();
            for (key, color) in series {
                let pts: Vec<(u32, f64)> =
                    epochs.iter().filter_map(|e| e.metrics.get(key).map(|v| (e.epoch, *v))).collect();
                if let Ok(s) = chart.draw_series(LineSeries::new(pts, color.stroke_width(2))) {
                    s.label(key).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], color));
                }
            }
            let _ = chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw();
        }
        let _ = root.present();
    }
    svg
}

/// Heatmap of the objective over a two-parameter grid (e.g. cap x gamma).
fn svg_heatmap(trials: &[pb::Trial], metric: &str) -> Option<String> {
    let ps: Vec<serde_json::Value> = trials.iter().map(params).collect();
    let keys: Vec<String> = ps.first()?.as_object()?.keys().cloned().collect();
    if keys.len() != 2 {
        return None;
    }
    let axis = |k: &str| -> Vec<String> {
        let set: BTreeSet<String> = ps.iter().map(|p| p[k].to_string()).collect();
        let mut v: Vec<String> = set.into_iter().collect();
        v.sort_by(|a, b| {
            a.parse::<f64>().ok().partial_cmp(&b.parse::<f64>().ok()).unwrap_or(std::cmp::Ordering::Equal)
        });
        v
    };
    let (xs, ys) = (axis(&keys[0]), axis(&keys[1]));
    let mut cells = BTreeMap::new();
    for (t, p) in trials.iter().zip(&ps) {
        if let Some(v) = t.metrics.get(metric).filter(|_| t.state() == pb::TrialState::Succeeded) {
            let (px, py) = (p[&keys[0]].to_string(), p[&keys[1]].to_string());
            let x = xs.iter().position(|a| *a == px)?;
            let y = ys.iter().position(|a| *a == py)?;
            cells.insert((x, y), *v);
        }
    }
    let (lo, hi) = cells.values().fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (520, 380)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{metric} by {} x {}", keys[0], keys[1]), ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((0..xs.len() - 1).into_segmented(), (0..ys.len() - 1).into_segmented())
            .ok()?;
        let name = |v: &[String], s: &SegmentValue<usize>| match s {
            SegmentValue::CenterOf(i) => v.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        };
        let _ = chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(keys[0].as_str())
            .y_desc(keys[1].as_str())
            .x_label_formatter(&|s| name(&xs, s))
            .y_label_formatter(&|s| name(&ys, s))
            .draw();
        let span = (hi - lo).max(1e-9);
        let _ = chart.draw_series(cells.iter().map(|(&(x, y), v)| {
            let f = (v - lo) / span;
            let color = RGBColor((255.0 - 200.0 * f) as u8, (245.0 - 120.0 * f) as u8, (240.0 - 60.0 * f) as u8);
            Rectangle::new(
                [
                    (SegmentValue::Exact(x), SegmentValue::Exact(y)),
                    (SegmentValue::Exact(x + 1), SegmentValue::Exact(y + 1)),
                ],
                color.filled(),
            )
        }));
        let _ = chart.draw_series(cells.iter().map(|(&(x, y), v)| {
            Text::new(
                format!("{v:.4}"),
                (SegmentValue::CenterOf(x), SegmentValue::CenterOf(y)),
                ("sans-serif", 14).into_font().color(&BLACK),
            )
        }));
        let _ = root.present();
    }
    Some(svg)
}

/// Test macro-F1 by label frequency group for the top trials.
fn svg_groups(top: &[&pb::Trial]) -> String {
    let groups = ["head", "medium", "tail"];
    let colors = [RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(44, 160, 44)];
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (620, 300)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let n = top.len().max(1);
        if let Ok(mut chart) = ChartBuilder::on(&root)
            .caption(
                "test macro-F1 by label group (head >= 100, medium 20-99, tail < 20 training positives)",
                ("sans-serif", 13),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(0f64..n as f64, -0.08f64..1f64)
        {
            let _ = chart.configure_mesh().disable_x_mesh().x_labels(0).draw();
            let _ = chart.draw_series(top.iter().enumerate().map(|(i, t)| {
                Text::new(t.trial_id[..8].to_string(), (i as f64 + 0.2, -0.02), ("sans-serif", 12).into_font())
            }));
            for (gi, (g, color)) in groups.iter().zip(colors).enumerate() {
                let bars = top.iter().enumerate().filter_map(|(i, t)| {
                    let v = *t.metrics.get(&format!("test.f1_macro_{g}"))?;
                    let x0 = i as f64 + 0.15 + gi as f64 * 0.23;
                    Some(Rectangle::new([(x0, 0.0), (x0 + 0.2, v)], color.filled()))
                });
                if let Ok(s) = chart.draw_series(bars) {
                    s.label(*g).legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 10, y + 4)], color.filled()));
                }
            }
            let _ = chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw();
        }
        let _ = root.present();
    }
    svg
}

/// The test metric a validation objective is scored against on held-out data: the
/// same name under `test.` (`train.loss` has none).
fn test_counterpart(metric: &str) -> Option<String> {
    metric.strip_prefix("val.").map(|m| format!("test.{m}"))
}

/// Each succeeded trial's selection score (validation, what the search saw) against
/// the same metric on test, with the diagonal: how optimistic validation was.
fn svg_val_vs_test(trials: &[pb::Trial], metric: &str) -> Option<String> {
    let test = test_counterpart(metric)?;
    let pts: Vec<(f64, f64)> = trials
        .iter()
        .filter(|t| t.state() == pb::TrialState::Succeeded)
        .filter_map(|t| Some((*t.metrics.get(metric)?, *t.metrics.get(&test)?)))
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    if pts.is_empty() {
        return None;
    }
    let lo = pts.iter().flat_map(|(x, y)| [*x, *y]).fold(f64::INFINITY, f64::min);
    let hi = pts.iter().flat_map(|(x, y)| [*x, *y]).fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.05).max(0.005);
    let (lo, hi) = (lo - pad, hi + pad);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (420, 380)).into_drawing_area();
        let _ = root.fill(&WHITE);
        if let Ok(mut chart) = ChartBuilder::on(&root)
            .caption(format!("{metric} (selection) against {test}, per trial"), ("sans-serif", 13))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(45)
            .build_cartesian_2d(lo..hi, lo..hi)
        {
            let _ = chart.configure_mesh().x_desc(metric).y_desc(test.as_str()).draw();
            let _ = chart.draw_series(LineSeries::new([(lo, lo), (hi, hi)], BLACK.mix(0.3)));
            let _ = chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, RGBColor(31, 119, 180).filled())));
        }
        let _ = root.present();
    }
    Some(svg)
}

/// The best objective so far against what the sweep had spent (a step at each new best).
fn svg_best_by_cost(steps: &[(f64, f64)], metric: &str, spent: f64) -> Option<String> {
    let (first, last) = (steps.first()?, steps.last()?);
    let x_hi = spent.max(last.0) * 1.05;
    let (lo, hi) = steps.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), s| (lo.min(s.1), hi.max(s.1)));
    let pad = ((hi - lo) * 0.1).max(0.005);
    // The staircase: each best holds until the next is found, then on to what was spent.
    let mut line = vec![*first];
    for w in steps.windows(2) {
        line.extend([(w[1].0, w[0].1), w[1]]);
    }
    line.push((x_hi / 1.05, last.1));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (520, 300)).into_drawing_area();
        let _ = root.fill(&WHITE);
        if let Ok(mut chart) = ChartBuilder::on(&root)
            .caption(format!("best {metric} against what the sweep had spent"), ("sans-serif", 13))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..x_hi, (lo - pad)..(hi + pad))
        {
            let _ = chart.configure_mesh().x_desc("USD spent").y_desc(metric).draw();
            let _ = chart.draw_series(LineSeries::new(line, RGBColor(31, 119, 180)));
            let _ = chart.draw_series(steps.iter().map(|&p| Circle::new(p, 3, RGBColor(31, 119, 180).filled())));
        }
        let _ = root.present();
    }
    Some(svg)
}

/// With several objectives, the configurations on the Pareto front.
fn pareto_table(h: &mut String, rules: &Rules, configs: &[Configuration]) {
    if rules.objectives.len() < 2 {
        return;
    }
    h.push_str("<h2>Pareto front</h2><p>Configurations no other beats on one objective without losing on another.</p><table id=\"pareto\"><tr><th>configuration</th>");
    for m in &rules.objectives {
        let _ = write!(h, "<th>{} {}</th>", esc(m.goal.as_str()), esc(&m.name));
    }
    h.push_str("<th>n</th></tr>");
    for i in crate::objectives::front(rules, configs) {
        let c = &configs[i];
        let _ = write!(h, "<tr><td class=l>{}</td>", esc(&params_inline(&c.params)));
        for v in crate::objectives::means(rules, c) {
            let _ = write!(h, "<td>{}</td>", fmt_metric(Some(&v)));
        }
        let _ = write!(h, "<td>{}</td></tr>", c.summary.n);
    }
    h.push_str("</table>");
}

/// Fetches a sweep, its trials and their per-epoch history, and renders the report.
pub async fn build(c: &mut crate::client::Client, sweep_id: &str) -> anyhow::Result<String> {
    use crate::client::status_error;
    let (sweep, trials) = crate::client::sweep_and_trials(c, sweep_id, "report").await?;
    let mut history = BTreeMap::new();
    for t in &trials {
        let epochs = c
            .trial_history(pb::TrialHistoryRequest { trial_id: t.trial_id.clone() })
            .await
            .map_err(|s| status_error("report", s))?
            .into_inner()
            .epochs;
        let last = epochs.iter().map(|e| e.attempt).max().unwrap_or(0);
        history.insert(t.trial_id.clone(), epochs.into_iter().filter(|e| e.attempt == last).collect());
    }
    Ok(render(&ReportData { sweep, trials, history }))
}

/// The configurations table, when some configuration has replicas.
fn configurations_table(h: &mut String, d: &ReportData, configs: &[Configuration]) {
    let metric = &d.sweep.metric_name;
    if configs.iter().any(|c| c.summary.n >= 2) {
        let p = crate::replicas::versus_winner(configs);
        let _ = write!(
            h,
            "<h2>Configurations</h2><p>Replicas grouped, ranked by mean {m} with its 95% interval; p: paired \
         t-test against #1 over shared seeds, Holm-corrected.</p><table id=\"configurations\"><tr><th>#</th>\
         <th>configuration</th><th>mean {m}</th><th>95% CI</th><th>sd</th><th>n</th><th>p vs #1</th></tr>",
            m = esc(metric)
        );
        for (i, c) in configs.iter().enumerate() {
            let ci = c.summary.ci95.map(|x| format!("± {x:.4}")).unwrap_or_else(|| "-".into());
            let pv =
                if i == 0 { "-".into() } else { p[i - 1].map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into()) };
            let _ = write!(
            h,
            "<tr><td>{}</td><td class=l>{}</td><td>{:.4}</td><td>{ci}</td><td>{:.4}</td><td>{}</td><td>{pv}</td></tr>",
            i + 1,
            esc(&params_inline(&c.params)),
            c.summary.mean,
            c.summary.sd,
            c.summary.n
        );
        }
        h.push_str("</table>");
    }
}

/// Every trial, best first, with the objective and the test F1 columns; a succeeded
/// trial that misses the sweep's constraints says so.
fn leaderboard_table(h: &mut String, ranked: &[&pb::Trial], metric: &str, rules: &Rules) {
    h.push_str(
        "<h2>Leaderboard</h2><table id=\"leaderboard\"><tr><th>#</th><th>trial</th><th>state</th><th>params</th>",
    );
    let cols =
        [metric, "test.f1_micro", "test.f1_micro_tuned", "test.f1_macro", "test.f1_macro_tuned", "test.f1_macro_tail"];
    for c in cols {
        let _ = write!(h, "<th>{}</th>", esc(c));
    }
    h.push_str("</tr>");
    for (i, t) in ranked.iter().enumerate() {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=l>{}</td><td class=l>{}</td><td class=l>{}</td>",
            i + 1,
            &t.trial_id[..8],
            match t.state() {
                pb::TrialState::Succeeded if !rules.feasible(t) => "succeeded (infeasible)",
                state => state.name(),
            },
            esc(&params_inline(&params(t)))
        );
        for c in cols {
            let _ = write!(h, "<td>{}</td>", fmt_metric(t.metrics.get(c)));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
}

pub fn render(d: &ReportData) -> String {
    let s = &d.sweep;
    let metric = &s.metric_name;
    let ranked = rank(&d.trials, metric, s.metric_goal());
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>sweep {name}</title><style>\
         body{{font-family:sans-serif;margin:24px;color:#222}} table{{border-collapse:collapse;font-size:13px}}\
         td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}} th{{background:#f3f3f3}}\
         td.l{{text-align:left}} .grid{{display:flex;flex-wrap:wrap;gap:8px}} .chart{{border:1px solid #eee}}\
         </style></head><body><h1>Sweep {name}</h1><p>{state}: {counts}; objective {goal} <b>{metric}</b></p>",
        name = esc(&s.name),
        state = esc(s.state().name()),
        counts = esc(&crate::output::counts_line(s)),
        goal = esc(s.metric_goal().name()),
        metric = esc(metric)
    );
    // What ranks trials (constraints, objectives) and the configurations, worked out once.
    let rules = Rules::of(s);
    let configs = crate::replicas::configurations(s, &d.trials, &rules);
    pareto_table(&mut h, &rules, &configs);
    configurations_table(&mut h, d, &configs);
    leaderboard_table(&mut h, &ranked, metric, &rules);
    if let Some(svg) = svg_val_vs_test(&d.trials, metric) {
        let _ = write!(h, "<h2>Selection against test</h2><div class=\"chart val-test\" id=\"val-test\">{svg}</div>");
    }
    let steps = crate::objectives::best_by_cost(&rules, &d.trials);
    if let Some(svg) = svg_best_by_cost(&steps, metric, s.cost_usd) {
        let _ = write!(
            h,
            "<h2>What it cost</h2><p>{:.2} USD spent; its best trial had been found after {:.2} USD.</p>\
             <div class=\"chart best-by-cost\" id=\"best-by-cost\">{svg}</div>",
            s.cost_usd,
            steps.last().map_or(0.0, |l| l.0)
        );
    }
    if let Some(svg) = svg_heatmap(&d.trials, metric) {
        let _ = write!(h, "<h2>Grid</h2><div class=\"chart heatmap\" id=\"heatmap\">{svg}</div>");
    }
    let top: Vec<&pb::Trial> =
        ranked.iter().filter(|t| t.state() == pb::TrialState::Succeeded).take(5).copied().collect();
    if !top.is_empty() {
        let _ =
            write!(h, "<h2>Label groups, top {}</h2><div class=\"chart groups\">{}</div>", top.len(), svg_groups(&top));
    }
    h.push_str("<h2>Per-epoch validation F1</h2><div class=\"grid\">");
    for t in &d.trials {
        let epochs = d.history.get(&t.trial_id).map(Vec::as_slice).unwrap_or(&[]);
        let _ = write!(
            h,
            "<div class=\"chart trial-chart\" data-trial=\"{}\">{}</div>",
            t.trial_id,
            svg_curves(t, epochs, metric)
        );
    }
    h.push_str("</div></body></html>\n");
    h
}
