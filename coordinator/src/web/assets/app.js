// Sweep's dashboard: plain JavaScript, no library, nothing fetched from elsewhere.
// Pages: / (sweeps), /sweeps/ID (live), /trials/ID, /workers. Data: /api/v1/.
'use strict';

const $main = document.getElementById('main');
const SEEDS = ['train.seed', 'dataset.split_seed', 'dataset.fold'];
const ORDER = ['queued', 'leased', 'succeeded', 'pruned', 'failed', 'dead', 'cancelled'];

function esc(s) {
  return String(s ?? '').replace(/[&<>"']/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c]));
}
function fmt(v, d = 4) { return v === null || v === undefined || Number.isNaN(v) ? '-' : Number(v).toFixed(d); }
function fmtVal(v) { return typeof v === 'number' ? (Math.abs(v) < 1e-3 && v !== 0 ? v.toExponential(2) : String(+v.toPrecision(6))) : String(v); }
function ago(ms) {
  if (!ms) return '-';
  const s = Math.max(0, (Date.now() - ms) / 1000);
  return s < 90 ? `${s.toFixed(0)} s ago` : s < 5400 ? `${(s / 60).toFixed(0)} min ago` : `${(s / 3600).toFixed(1)} h ago`;
}
function duration(s) { return s < 90 ? `${s.toFixed(0)} s` : s < 5400 ? `${(s / 60).toFixed(0)} min` : `${(s / 3600).toFixed(1)} h`; }
async function api(path) {
  const r = await fetch('/api/v1/' + path, {credentials: 'same-origin'});
  if (r.status === 401) { location.href = '/login'; throw new Error('signed out'); }
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}
// Viridis-like ramp, t in [0, 1].
function color(t) {
  const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  t = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(t)), f = t - i;
  const c = stops[i].map((v, k) => Math.round(v + (stops[i + 1][k] - v) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}
function progressBar(counts, total) {
  const parts = ['succeeded', 'pruned', 'leased', 'failed', 'dead', 'cancelled']
    .filter(s => counts[s]).map(s => `<span class="bg-${s}" style="width:${100 * counts[s] / Math.max(1, total)}%" title="${s} ${counts[s]}"></span>`);
  return `<div class="bar">${parts.join('')}</div>`;
}
function done(s) { return ['succeeded', 'pruned', 'failed', 'dead', 'cancelled'].reduce((a, k) => a + (s.counts[k] || 0), 0); }
function canvas(el, height) {
  const c = document.createElement('canvas');
  el.appendChild(c);
  const w = el.clientWidth || 600, dpr = window.devicePixelRatio || 1;
  c.width = w * dpr; c.height = height * dpr; c.style.height = height + 'px';
  const g = c.getContext('2d');
  g.scale(dpr, dpr);
  return {c, g, w, h: height};
}

// ---------- sweeps ----------
async function sweepsPage() {
  const {sweeps} = await api('overview');
  $main.innerHTML = `<h1>Sweeps</h1><section><table id="sweeps"><thead><tr><th>name</th><th>state</th><th>progress</th>
    <th class="num">done / total</th><th>objective</th><th class="num">best</th><th>started</th><th class="num">workers</th></tr></thead><tbody>${
    sweeps.map(s => `<tr data-sweep="${esc(s.sweep_id)}"><td><a href="/sweeps/${esc(s.sweep_id)}">${esc(s.name)}</a></td>
      <td>${esc(s.state)}</td><td>${progressBar(s.counts, s.total)}</td><td class="num">${done(s)} / ${s.total}</td>
      <td>${esc(s.metric.goal)} ${esc(s.metric.name)}</td><td class="num">${fmt(s.best_objective)}</td>
      <td>${esc(new Date(s.created_unix_ms).toLocaleString())}</td><td class="num">${s.workers}</td></tr>`).join('')
  }</tbody></table>${sweeps.length ? '' : '<p class="muted">No sweep yet: <code>sweep submit FILE</code>.</p>'}</section>`;
}

// ---------- one sweep, live ----------
const S = {id: null, sweep: null, trials: new Map(), configs: null, importance: null, curves: new Map(), brushes: {}, axes: []};

async function sweepPage(id) {
  S.id = id;
  $main.innerHTML = `<h1 id="title">Sweep</h1><div id="summary" class="muted"></div>
    <section><h2>Leaderboard</h2><div id="verdict" class="muted"></div><div class="scroll"><table id="leaderboard"></table></div></section>
    <div class="grid2"><section><h2>Parallel coordinates <span class="legend">drag on an axis to filter the trials; click it to clear</span></h2><div id="parcoords" class="pc"></div></section>
    <section><h2>Validation curves <span class="legend" id="curves-legend"></span></h2><div id="curves"></div></section></div>
    <div class="grid2"><section><h2>Parameter importance</h2><div id="importance" class="muted">needs 8 succeeded trials</div></section>
    <section id="heat-section"><h2>Heatmap</h2><div id="heatmap" class="muted">for sweeps over exactly two parameters</div></section></div>
    <section id="cost" hidden><h2>What it cost <span class="legend">the best objective so far against what the sweep had spent when each trial finished</span></h2><div id="cost-chart"></div></section>
    <section id="pareto" hidden><h2>Pareto front <span class="legend">no other configuration is at least as good on every objective and better on one</span></h2><table></table></section>
    <section><h2>Test macro-F1 by label group <span class="legend">head: 100+ training positives, medium: 20-99, tail: under 20</span></h2><table id="groups"></table></section>
    <section><h2>Trials <span class="legend" id="shown"></span></h2><div class="scroll"><table id="trials"></table></div></section>
    <section><h2>Problems</h2><div id="problems" class="muted">none</div></section>`;
  const es = new EventSource(`/api/v1/sweeps/${id}/events`);
  const live = document.getElementById('live');
  let first = true;
  es.onopen = () => live.classList.add('on');
  es.onerror = () => live.classList.remove('on');
  es.onmessage = m => {
    const ev = JSON.parse(m.data);
    if (ev.error) { document.getElementById('summary').textContent = ev.error; es.close(); return; }
    // The stream's 2 s tick with nothing new: nothing to redraw.
    if (!first && !ev.trials.length && !ev.finished) return;
    const ended = [];
    for (const t of ev.trials) {
      const old = S.trials.get(t.trial_id);
      if (!old || old.state !== t.state || old.epoch !== t.epoch) ended.push(t);
      S.trials.set(t.trial_id, t);
    }
    S.sweep = ev.sweep;
    renderLive();
    if (first) { performance.mark('sweep-data'); first = false; refreshDerived(); loadCurves(null); }
    else if (ended.length) { scheduleDerived(); loadCurves(ended.map(t => t.trial_id)); }
    if (ev.finished) { es.close(); live.classList.remove('on'); refreshDerived(); }
  };
  api('workers').then(w => { S.workers = w.workers; renderProblems(); }).catch(() => {});
}

let derivedTimer = null;
function scheduleDerived() {
  if (!derivedTimer) derivedTimer = setTimeout(() => { derivedTimer = null; refreshDerived(); }, 1500);
}
async function refreshDerived() {
  const [c, i] = await Promise.all([api(`sweeps/${S.id}/configurations`), api(`sweeps/${S.id}/importance`)]);
  S.configs = c; S.importance = i;
  renderLeaderboard(); renderImportance(); renderHeatmap(); renderGroups(); renderPareto(); renderCost();
}
async function loadCurves(ids) {
  const q = ids ? `?trials=${ids.join(',')}` : '';
  const {metric, curves} = await api(`sweeps/${S.id}/curves${q}`);
  for (const [k, v] of Object.entries(curves)) S.curves.set(k, v);
  S.curveMetric = metric;
  renderCurves();
}

let frame = null;
function renderLive() {
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = null;
    const s = S.sweep;
    document.getElementById('title').textContent = `Sweep ${s.name}`;
    const d = done(s), elapsed = (Date.now() - s.created_unix_ms) / 1000;
    const eta = d > 0 && d < s.total && s.state === 'running' ? `, about ${duration(elapsed / d * (s.total - d))} to go` : '';
    document.getElementById('summary').innerHTML = `${esc(s.state)} &middot; ${esc(s.method)} &middot; ${esc(s.metric.goal)} ${esc(s.metric.name)} &middot;
      ${d} of ${s.total} trials ended${eta}${spent(s)} ${progressBar(s.counts, s.total)}
      ${ORDER.filter(k => s.counts[k]).map(k => `<span class="pill st-${k}">${k} ${s.counts[k]}</span>`).join(' ')}`;
    renderParcoords(); renderTrials(); renderProblems();
  });
}

// What the sweep has spent, of its budget; when the budget is spent, how to go on.
function spent(s) {
  if (!s.cost_usd && !s.max_cost_usd) return '';
  const of = s.max_cost_usd ? ` of ${s.max_cost_usd.toFixed(2)}` : '';
  const held = s.state === 'budget_exhausted' ? ` <span class="warn" id="budget-spent">budget spent: queued trials wait; <code>sweep budget ${esc(s.sweep_id)} USD</code> raises it</span>` : '';
  return ` &middot; ${s.cost_usd.toFixed(2)}${of} USD${held}`;
}
function objective(t) { return t.objective; }
function swept() {
  const names = new Set();
  for (const t of S.trials.values()) for (const k of Object.keys(t.params || {})) if (k !== 'dataset.fold') names.add(k);
  return [...names].filter(k => new Set([...S.trials.values()].map(t => JSON.stringify(t.params[k]))).size > 1);
}
function better(a, b) { return S.sweep.metric.goal === 'minimize' ? a < b : a > b; }
function visible(t) {
  return Object.entries(S.brushes).every(([k, [lo, hi]]) => {
    const v = S.axes.find(a => a.name === k)?.pos(t);
    // A few pixels' slack, so a brush drawn from an axis' end keeps the lines ending there.
    return v !== undefined && v >= lo - 0.02 && v <= hi + 0.02;
  });
}

function renderTrials() {
  const metric = S.sweep.metric.name;
  const rows = [...S.trials.values()].filter(visible);
  document.getElementById('shown').textContent = `${rows.length} of ${S.trials.size} shown`;
  const keys = swept();
  document.getElementById('trials').innerHTML = `<thead><tr><th>trial</th><th>state</th>${keys.map(k => `<th>${esc(k)}</th>`).join('')}
    <th class="num">epoch</th><th class="num">${esc(metric)}</th><th>worker</th></tr></thead><tbody>${rows.map(t =>
    `<tr data-trial="${esc(t.trial_id)}" data-state="${esc(t.state)}" data-objective="${t.objective ?? ''}"><td><a href="/trials/${esc(t.trial_id)}">${esc(t.trial_id.slice(0, 8))}</a></td>
      <td class="st-${esc(t.state)}">${esc(t.state)}${t.feasible === false ? ' (infeasible)' : ''}</td>
      ${keys.map(k => `<td>${esc(fmtVal(t.params[k]))}</td>`).join('')}<td class="num">${t.epoch}</td>
      <td class="num objective">${fmt(objective(t))}</td><td>${esc(t.worker)}</td></tr>`).join('')}</tbody>`;
  performance.mark('trials-done');
}

function renderLeaderboard() {
  const c = S.configs, el = document.getElementById('leaderboard');
  const replicas = c.configurations && c.configurations.some(x => x.n > 1);
  document.getElementById('verdict').textContent = c.verdict || '';
  if (replicas) {
    el.innerHTML = `<thead><tr><th>#</th><th>configuration</th><th class="num">mean</th><th class="num">&plusmn; CI95</th><th class="num">sd</th><th class="num">n</th><th class="num">p vs best (Holm)</th></tr></thead><tbody>${
      c.configurations.map((x, i) => `<tr><td>${i + 1}</td><td>${esc(inline(x.params))}</td><td class="num">${fmt(x.mean)}</td><td class="num">${fmt(x.ci95)}</td>
      <td class="num">${fmt(x.sd)}</td><td class="num">${x.n}</td><td class="num">${x.p_value_vs_winner === null ? '-' : fmt(x.p_value_vs_winner, 3)}</td></tr>`).join('')}</tbody>`;
  } else {
    const ranked = [...S.trials.values()].filter(t => t.state === 'succeeded' && t.feasible !== false && t.objective !== null)
      .sort((a, b) => better(a.objective, b.objective) ? -1 : better(b.objective, a.objective) ? 1 : 0).slice(0, 20);
    el.innerHTML = `<thead><tr><th>#</th><th>trial</th><th>configuration</th><th class="num">${esc(S.sweep.metric.name)}</th></tr></thead><tbody>${
      ranked.map((t, i) => `<tr><td>${i + 1}</td><td><a href="/trials/${esc(t.trial_id)}">${esc(t.trial_id.slice(0, 8))}</a></td><td>${esc(inline(t.params))}</td>
      <td class="num">${fmt(t.objective)}</td></tr>`).join('')}</tbody>`;
  }
}
function inline(p) { return Object.entries(p || {}).filter(([k]) => !SEEDS.includes(k)).map(([k, v]) => `${k}=${fmtVal(v)}`).join(', '); }

function renderImportance() {
  const el = document.getElementById('importance'), p = S.importance.parameters;
  if (!p.length) return;
  el.className = '';
  el.innerHTML = `<div class="imp">${p.map(x => `<span>${esc(x.parameter)}</span><div class="b" style="width:${(100 * x.share).toFixed(1)}%"></div>
    <span class="num">${(100 * x.share).toFixed(0)}%</span>`).join('')}</div><p class="legend">${esc(S.importance.method)}, over ${S.importance.trials} trials</p>`;
}

function renderHeatmap() {
  const el = document.getElementById('heatmap');
  const confs = S.configs.configurations || [];
  const keys = [...new Set(confs.flatMap(c => Object.keys(c.params)))].filter(k => new Set(confs.map(c => JSON.stringify(c.params[k]))).size > 1);
  if (keys.length !== 2) return;
  const [a, b] = keys;
  const va = [...new Set(confs.map(c => JSON.stringify(c.params[a])))].sort(cmpJson);
  const vb = [...new Set(confs.map(c => JSON.stringify(c.params[b])))].sort(cmpJson);
  const means = confs.map(c => c.mean), lo = Math.min(...means), hi = Math.max(...means);
  const cell = (x, y) => {
    const c = confs.find(c => JSON.stringify(c.params[a]) === x && JSON.stringify(c.params[b]) === y);
    if (!c) return '<td class="muted">-</td>';
    const t = hi > lo ? (c.mean - lo) / (hi - lo) : 0.5;
    return `<td style="background:${color(S.sweep.metric.goal === 'minimize' ? 1 - t : t)}" title="n=${c.n}">${fmt(c.mean, 3)}</td>`;
  };
  el.className = '';
  el.innerHTML = `<table class="heat" id="heat"><thead><tr><th>${esc(a)} \\ ${esc(b)}</th>${vb.map(y => `<th>${esc(y)}</th>`).join('')}</tr></thead><tbody>${
    va.map(x => `<tr><th>${esc(x)}</th>${vb.map(y => cell(x, y)).join('')}</tr>`).join('')}</tbody></table>`;
}
function cmpJson(x, y) { const a = JSON.parse(x), b = JSON.parse(y); return typeof a === 'number' && typeof b === 'number' ? a - b : String(a).localeCompare(String(b)); }

function renderGroups() {
  const g = S.configs.groups || [];
  document.getElementById('groups').innerHTML = `<thead><tr><th>configuration</th><th class="num">n</th><th class="num">head</th><th class="num">medium</th><th class="num">tail</th></tr></thead><tbody>${
    g.map(x => `<tr><td>${esc(inline(x.params))}</td><td class="num">${x.n}</td><td class="num">${fmt(x.head)}</td><td class="num">${fmt(x.medium)}</td><td class="num">${fmt(x.tail)}</td></tr>`).join('')}</tbody>`;
}

// The best objective so far against the dollars spent: a staircase, a dot at each new best.
function renderCost() {
  const steps = S.configs.best_by_cost || [], el = document.getElementById('cost');
  if (!steps.length) return;
  el.hidden = false;
  const W = 560, H = 220, L = 56, B = 28, xs = Math.max(S.configs.cost_usd, steps[steps.length - 1][0]) * 1.05;
  const ys = steps.map(s => s[1]), lo = Math.min(...ys), hi = Math.max(...ys), pad = Math.max((hi - lo) * 0.1, 0.005);
  const x = u => L + (W - L - 10) * u / xs, y = v => 10 + (H - B - 10) * (1 - (v - lo + pad) / (hi - lo + 2 * pad));
  let d = `M${x(steps[0][0])},${y(steps[0][1])}`;
  for (let i = 1; i < steps.length; i++) d += ` H${x(steps[i][0])} V${y(steps[i][1])}`;
  d += ` H${x(xs / 1.05)}`;
  const last = steps[steps.length - 1];
  document.getElementById('cost-chart').innerHTML = `<svg width="${W}" height="${H}" role="img"><path d="${d}" fill="none" stroke="#1c5fd1"/>
    ${steps.map(s => `<circle cx="${x(s[0])}" cy="${y(s[1])}" r="3" fill="#1c5fd1"><title>${fmt(s[1])} after ${s[0].toFixed(2)} USD</title></circle>`).join('')}
    <line x1="${L}" y1="${H - B}" x2="${W - 10}" y2="${H - B}" stroke="#999"/><line x1="${L}" y1="10" x2="${L}" y2="${H - B}" stroke="#999"/>
    <text x="${L}" y="${H - 8}" font-size="11">0</text><text x="${x(xs / 1.05)}" y="${H - 8}" font-size="11" text-anchor="end">${(xs / 1.05).toFixed(2)} USD</text>
    <text x="${L - 4}" y="${y(hi)}" font-size="11" text-anchor="end">${fmt(hi, 3)}</text><text x="${L - 4}" y="${y(lo)}" font-size="11" text-anchor="end">${fmt(lo, 3)}</text></svg>
    <p class="legend" id="cost-found">best ${fmt(last[1])} found after ${last[0].toFixed(2)} of ${S.configs.cost_usd.toFixed(2)} USD</p>`;
}

// With several objectives: the configurations no other beats on every one.
function renderPareto() {
  const p = S.configs.pareto, el = document.getElementById('pareto');
  if (!p) return;
  el.hidden = false;
  const names = p.objectives.map(o => o.name);
  el.querySelector('table').innerHTML = `<thead><tr><th>configuration</th>${p.objectives.map(o => `<th class="num">${esc(o.goal)} ${esc(o.name)}</th>`).join('')}<th class="num">n</th></tr></thead><tbody>${
    p.front.map(f => `<tr><td>${esc(inline(f.params))}</td>${names.map(n => `<td class="num">${fmt(f.means[n])}</td>`).join('')}<td class="num">${f.n}</td></tr>`).join('')}</tbody>`;
}

function renderProblems() {
  const bad = [...S.trials.values()].filter(t => ['failed', 'dead'].includes(t.state) || t.error);
  const quarantined = (S.workers || []).filter(w => w.state === 'quarantined' || w.state === 'revoked');
  const el = document.getElementById('problems');
  if (!bad.length && !quarantined.length) return;
  el.className = '';
  el.innerHTML = `<table><thead><tr><th>what</th><th>state</th><th>error</th></tr></thead><tbody>${
    bad.map(t => `<tr><td><a href="/trials/${esc(t.trial_id)}">trial ${esc(t.trial_id.slice(0, 8))}</a></td><td class="st-${esc(t.state)}">${esc(t.state)}</td><td>${esc(t.error)}</td></tr>`).join('')}${
    quarantined.map(w => `<tr><td>worker ${esc(w.name)}</td><td class="warn">${esc(w.state)}</td><td>no new leases</td></tr>`).join('')}</tbody></table>`;
}

// Parallel coordinates: one axis per swept parameter and one for the objective; lines on a
// canvas, brushes as boxes on each axis.
function renderParcoords() {
  const el = document.getElementById('parcoords');
  const trials = [...S.trials.values()];
  const names = [...swept(), S.sweep.metric.name];
  const H = 300, top = 22, bottom = H - 12;
  el.innerHTML = '';
  const {g, w} = canvas(el, H);
  const left = 40, right = w - 60, step = names.length > 1 ? (right - left) / (names.length - 1) : 0;
  S.axes = names.map((name, i) => axis(name, trials, i === names.length - 1, left + i * step, top, bottom));
  const obj = S.axes[S.axes.length - 1];
  const [olo, ohi] = obj.range;
  const minimize = S.sweep.metric.goal === 'minimize';
  // Lines in 32 colour bands, one path per band (10,000 strokes cost far more than 33),
  // worst band first so the best lines lie on top; trials without an objective in grey.
  const BANDS = 32, bands = Array.from({length: BANDS + 1}, () => []);
  for (const t of trials) {
    if (!visible(t)) continue;
    const v = objective(t);
    const q = v === null ? null : ohi > olo ? (minimize ? ohi - v : v - olo) / (ohi - olo) : 0.5;
    bands[q === null ? 0 : 1 + Math.min(BANDS - 1, Math.floor(q * BANDS))].push(t);
  }
  g.lineWidth = 1;
  g.globalAlpha = trials.length > 2000 ? 0.25 : 0.7;
  bands.forEach((members, i) => {
    if (!members.length) return;
    g.strokeStyle = i === 0 ? '#c5cad3' : color((i - 0.5) / BANDS);
    g.beginPath();
    for (const t of members) S.axes.forEach((a, k) => { const y = a.y(t); if (y === null) return; k ? g.lineTo(a.x, y) : g.moveTo(a.x, y); });
    g.stroke();
  });
  g.globalAlpha = 1;
  g.strokeStyle = '#4a5264';
  for (const a of S.axes) { g.beginPath(); g.moveTo(a.x, top); g.lineTo(a.x, bottom); g.stroke(); }
  for (const a of S.axes) decorate(el, a, top, bottom);
  performance.mark('parcoords-done');
}

function axis(name, trials, isObjective, x, top, bottom) {
  const raw = trials.map(t => isObjective ? objective(t) : t.params?.[name]);
  const numeric = raw.every(v => v === null || v === undefined || typeof v === 'number');
  let pos, range, ticks;
  if (numeric) {
    const vals = raw.filter(v => typeof v === 'number');
    const pos0 = vals.length && vals.every(v => v > 0) && Math.max(...vals) / Math.min(...vals) > 50;
    const f = pos0 ? Math.log10 : v => v;
    const lo = vals.length ? Math.min(...vals) : 0, hi = vals.length ? Math.max(...vals) : 1;
    range = [lo, hi];
    const [a, b] = [f(lo), f(hi)];
    pos = t => { const v = isObjective ? objective(t) : t.params?.[name]; return typeof v === 'number' ? (b > a ? (f(v) - a) / (b - a) : 0.5) : undefined; };
    ticks = [[lo, 0], [hi, 1]];
  } else {
    const cats = [...new Set(raw.map(v => JSON.stringify(v)))].sort();
    range = [0, cats.length - 1];
    pos = t => { const i = cats.indexOf(JSON.stringify(t.params?.[name])); return cats.length > 1 ? i / (cats.length - 1) : 0.5; };
    ticks = cats.map((c, i) => [JSON.parse(c ?? 'null'), cats.length > 1 ? i / (cats.length - 1) : 0.5]);
  }
  const y = t => { const p = pos(t); return p === undefined ? null : bottom - p * (bottom - top); };
  return {name, x, pos, y, range, ticks};
}

function decorate(el, a, top, bottom) {
  const label = document.createElement('div');
  label.className = 'label'; label.style.left = a.x + 'px'; label.textContent = a.name.replace(/^(train|loss|model|dataset)\./, '');
  label.title = a.name;
  el.appendChild(label);
  for (const [v, p] of a.ticks) {
    const t = document.createElement('div');
    t.className = 'tick'; t.style.left = a.x + 'px'; t.style.top = (bottom - p * (bottom - top)) + 'px'; t.textContent = fmtVal(v);
    el.appendChild(t);
  }
  const hit = document.createElement('div');
  hit.className = 'axis'; hit.dataset.param = a.name;
  hit.style.left = a.x + 'px'; hit.style.top = top + 'px'; hit.style.height = (bottom - top) + 'px';
  el.appendChild(hit);
  const b = S.brushes[a.name];
  const box = document.createElement('div');
  box.className = 'brush';
  const show = ([lo, hi]) => { box.style.top = ((1 - hi) * (bottom - top)) + 'px'; box.style.height = ((hi - lo) * (bottom - top)) + 'px'; };
  if (b) { show(b); hit.appendChild(box); }
  hit.addEventListener('mousedown', e => {
    e.preventDefault();
    const r = hit.getBoundingClientRect(), at = ev => 1 - Math.min(1, Math.max(0, (ev.clientY - r.top) / r.height));
    const start = at(e);
    let moved = false;
    const move = ev => {
      moved = true;
      const p = at(ev), lo = Math.min(start, p), hi = Math.max(start, p);
      S.brushes[a.name] = [lo, hi]; show([lo, hi]);
      if (!box.parentNode) hit.appendChild(box);
    };
    const up = () => {
      window.removeEventListener('mousemove', move); window.removeEventListener('mouseup', up);
      if (!moved) delete S.brushes[a.name];
      renderParcoords(); renderTrials();
    };
    window.addEventListener('mousemove', move); window.addEventListener('mouseup', up);
  });
}

// Validation curves: the objective per epoch of every trial; running ones blue, pruned
// ones dashed amber and ended with a cross.
function renderCurves() {
  const el = document.getElementById('curves');
  if (!el) return;
  el.innerHTML = '';
  document.getElementById('curves-legend').textContent = `${S.curveMetric} per epoch; running: blue, pruned: dashed`;
  const {g, w, h} = canvas(el, 300);
  const pts = [...S.curves.values()].flat().filter(p => p[1] !== null);
  if (!pts.length) return;
  const maxE = Math.max(...pts.map(p => p[0])), lo = Math.min(...pts.map(p => p[1])), hi = Math.max(...pts.map(p => p[1]));
  const L = 44, R = w - 10, T = 10, B = h - 24;
  const X = e => L + (maxE > 1 ? (e - 1) / (maxE - 1) : 0.5) * (R - L), Y = v => B - (hi > lo ? (v - lo) / (hi - lo) : 0.5) * (B - T);
  g.strokeStyle = '#c5cad3'; g.fillStyle = '#6b7385'; g.font = '11px system-ui';
  g.beginPath(); g.moveTo(L, T); g.lineTo(L, B); g.lineTo(R, B); g.stroke();
  g.fillText(fmt(hi, 3), 2, T + 8); g.fillText(fmt(lo, 3), 2, B); g.fillText('epoch ' + maxE, R - 50, h - 6); g.fillText('1', L, h - 6);
  g.globalAlpha = S.curves.size > 2000 ? 0.2 : 0.6;
  for (const [id, c] of S.curves) {
    const t = S.trials.get(id);
    const p = c.filter(q => q[1] !== null);
    if (!p.length) continue;
    g.setLineDash(t && t.state === 'pruned' ? [4, 3] : []);
    g.strokeStyle = t && t.state === 'leased' ? '#1c5fd1' : t && t.state === 'pruned' ? '#b08a00' : '#2e9e50';
    g.beginPath();
    p.forEach((q, i) => i ? g.lineTo(X(q[0]), Y(q[1])) : g.moveTo(X(q[0]), Y(q[1])));
    g.stroke();
    if (t && t.state === 'pruned') {
      const [e, v] = p[p.length - 1];
      g.setLineDash([]); g.beginPath(); g.moveTo(X(e) - 3, Y(v) - 3); g.lineTo(X(e) + 3, Y(v) + 3); g.moveTo(X(e) + 3, Y(v) - 3); g.lineTo(X(e) - 3, Y(v) + 3); g.stroke();
    }
  }
  g.globalAlpha = 1; g.setLineDash([]);
}

// ---------- one trial ----------
async function trialPage(id) {
  const t = await api(`trials/${id}`);
  const metrics = Object.entries(t.metrics || {});
  $main.innerHTML = `<h1>Trial ${esc(t.trial_id.slice(0, 8))} <span class="st-${esc(t.state)}">${esc(t.state)}</span></h1>
    <p class="muted">of sweep <a href="/sweeps/${esc(t.sweep.sweep_id)}">${esc(t.sweep.name)}</a> &middot; attempt ${t.attempt} &middot; epoch ${t.epoch}
    &middot; ${esc(t.sweep.metric)} ${fmt(t.objective)} ${t.error ? `&middot; <span class="warn">${esc(t.error)}</span>` : ''}</p>
    <div class="grid2"><section><h2>Parameters</h2><table>${Object.entries(t.params || {}).map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(fmtVal(v))}</td></tr>`).join('')}</table>
      <h2>Model and checkpoint</h2><p>${t.model_sha256 ? `<a id="model" href="/api/v1/trials/${esc(t.trial_id)}/model">download the model</a> (model.json + model.safetensors, for <code>sweep-worker predict</code>)` : 'no model kept (only succeeded trials; a sweep keeps its best few)'}</p>
      <p>checkpoint: ${t.checkpoint.epoch === null ? 'none' : `epoch ${t.checkpoint.epoch}${t.checkpoint.kept ? '' : ' (dropped after the trial ended)'}`}</p></section>
    <section><h2>Curves</h2><div id="trial-curves"></div></section></div>
    <section><h2>Attempts</h2><table id="attempts"><thead><tr><th>#</th><th>worker</th><th>start</th><th>end</th><th>outcome</th><th>error</th></tr></thead><tbody>${
      t.attempts.map(a => `<tr><td>${a.attempt}</td><td>${esc(a.worker || a.worker_id || '-')}</td><td>${esc(new Date(a.started_at).toLocaleString())}</td>
      <td>${a.ended_at ? esc(new Date(a.ended_at).toLocaleString()) : 'running'}</td><td class="st-${esc(a.outcome)}">${esc(a.outcome || '')}</td><td>${esc(a.error || '')}</td></tr>`).join('')}</tbody></table></section>
    <section><h2>Final metrics</h2><div class="scroll"><table>${metrics.map(([k, v]) => `<tr><td>${esc(k)}</td><td class="num">${fmt(v)}</td></tr>`).join('')}</table></div></section>
    <section><h2>Re-run it <button class="small" id="copy">copy</button></h2><pre id="rerun">${esc(t.rerun_yaml || '')}</pre><p class="legend">sweep submit this file (a cross-validated trial's file trains the deliverable on all of train)</p></section>`;
  document.getElementById('copy').onclick = () => navigator.clipboard?.writeText(t.rerun_yaml || '');
  trialCurves(t);
}

function trialCurves(t) {
  const el = document.getElementById('trial-curves');
  const series = {};
  for (const e of t.history) for (const [k, v] of Object.entries(e.metrics)) {
    if (!k.startsWith('val.')) continue;
    (series[`${k} (attempt ${e.attempt})`] ||= []).push([e.epoch, v]);
  }
  const keys = Object.keys(series).filter(k => /val\.(loss|f1_micro|f1_macro) /.test(k + ' ') || k.startsWith(t.sweep.metric + ' '));
  const {g, w, h} = canvas(el, 260);
  const pts = keys.flatMap(k => series[k]);
  if (!pts.length) { el.insertAdjacentHTML('beforeend', '<p class="muted">no epoch reported yet</p>'); return; }
  const maxE = Math.max(...pts.map(p => p[0])), lo = Math.min(...pts.map(p => p[1])), hi = Math.max(...pts.map(p => p[1]));
  const L = 44, R = w - 170, T = 10, B = h - 24;
  const X = e => L + (maxE > 1 ? (e - 1) / (maxE - 1) : 0.5) * (R - L), Y = v => B - (hi > lo ? (v - lo) / (hi - lo) : 0.5) * (B - T);
  g.font = '11px system-ui'; g.fillStyle = '#6b7385';
  g.fillText(fmt(hi, 3), 2, T + 8); g.fillText(fmt(lo, 3), 2, B); g.fillText('epoch ' + maxE, R - 50, h - 6);
  keys.forEach((k, i) => {
    g.strokeStyle = color(keys.length > 1 ? i / (keys.length - 1) : 0.3); g.fillStyle = g.strokeStyle;
    g.beginPath(); series[k].forEach((q, j) => j ? g.lineTo(X(q[0]), Y(q[1])) : g.moveTo(X(q[0]), Y(q[1]))); g.stroke();
    g.fillText(k, R + 8, T + 12 + 14 * i);
  });
}

// ---------- workers and fleets ----------
async function workersPage() {
  const {workers} = await api('workers');
  let fleets = null, why = '';
  try { fleets = await api('fleets'); } catch (e) { why = e.message; }
  $main.innerHTML = `<h1>Workers</h1><section><table id="workers"><thead><tr><th>name</th><th>host</th><th>state</th><th>GPUs</th><th class="num">slots</th><th class="num">running</th><th>last seen</th><th>version</th></tr></thead><tbody>${
    workers.map(w => `<tr data-worker="${esc(w.worker_id)}"><td>${esc(w.name)}</td><td>${esc(w.host)}</td><td class="${w.state === 'alive' ? 'st-succeeded' : 'warn'}">${esc(w.state)}</td>
    <td>${esc(w.gpus.join(', ') || 'cpu')}</td><td class="num">${w.slots}</td><td class="num">${w.running}</td><td>${ago(w.last_seen_unix_ms)}</td><td>${esc(w.version)}</td></tr>`).join('')}</tbody></table></section>
    <h1>Fleets</h1><section>${fleets === null ? `<p class="muted">${esc(why)}</p>` : fleets.length === 0 ? '<p class="muted">none</p>' : fleets.map(f => `
      <h2>${esc(f.fleet_id.slice(0, 8))} &middot; ${esc(f.provider)} ${esc(f.instance_type)}${f.spot ? ' (spot)' : ''} &middot; ${esc(f.state)}</h2>
      <p class="muted">desired ${f.desired} of at most ${f.max_count} &middot; ${fmt(f.instance_hours, 2)} instance-hours &middot; $${fmt(f.cost_usd, 2)} at $${f.price_per_hour}/h (${esc(f.price_source)}) ${f.error ? `&middot; <span class="warn">${esc(f.error)}</span>` : ''}</p>
      <table><thead><tr><th>instance</th><th>state</th><th>worker</th><th>trials</th><th>launched</th><th>ended</th><th class="num">hours</th><th class="num">USD</th></tr></thead><tbody>${
        f.instances.map(i => `<tr><td>${esc(i.provider_id || i.instance_id)}</td><td>${esc(i.state)}</td><td>${esc(i.worker)}</td><td>${i.trials.length}</td>
        <td>${esc(i.launched || '-')}</td><td>${esc(i.terminated ? `${i.terminated} (${i.end_reason || ''})` : '-')}</td><td class="num">${fmt(i.hours, 2)}</td><td class="num">${fmt(i.cost_usd, 2)}</td></tr>`).join('')}</tbody></table>`).join('')}</section>`;
}

// ---------- routing ----------
(async () => {
  const path = location.pathname;
  let m;
  try {
    if ((m = path.match(/^\/sweeps\/([0-9a-f-]+)$/))) await sweepPage(m[1]);
    else if ((m = path.match(/^\/trials\/([0-9a-f-]+)$/))) await trialPage(m[1]);
    else if (path === '/workers') await workersPage();
    else await sweepsPage();
  } catch (e) {
    $main.innerHTML = `<p class="warn">${esc(e.message)}</p>`;
  }
})();
