// The recsys console: draws each page's charts from its JSON endpoint (data-api) with
// Chart.js, refreshes the overview, and sends the models page's actions with the page's
// CSRF token. No inline script: the console's Content-Security-Policy forbids it.
"use strict";

const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                 "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const charts = {};

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

function timeLabels(seconds) {
  return seconds.map((t) => new Date(t * 1000).toLocaleTimeString());
}

function datasets(series, prefix) {
  return Object.keys(series).map((name, i) => ({
    label: (prefix || "") + name, data: series[name], borderColor: COLOURS[i % COLOURS.length],
    backgroundColor: COLOURS[i % COLOURS.length], spanGaps: true, pointRadius: 0,
    borderWidth: 1.5, fill: false,
  }));
}

function draw(id, type, labels, sets, yTitle) {
  const canvas = document.getElementById(id);
  if (!canvas || typeof Chart === "undefined") return;
  if (charts[id]) {
    charts[id].data.labels = labels;
    charts[id].data.datasets = sets;
    charts[id].update("none");
    return;
  }
  charts[id] = new Chart(canvas, {
    type: type, data: {labels: labels, datasets: sets},
    options: {animation: false, responsive: true, maintainAspectRatio: false,
              scales: {y: {beginAtZero: true, title: {display: !!yTitle, text: yTitle || ""}}},
              plugins: {legend: {position: "bottom"}}},
  });
}

function drawOverview(data) {
  const s = data.series;
  const labels = timeLabels(s.t);
  draw("chart-requests", "line", labels, datasets(s.requests_per_s), "req/s");
  const latency = {"request p50": s.total_p50_ms, "request p99": s.total_p99_ms};
  for (const stage of Object.keys(s.stage_p50_ms)) {
    if (s.stage_p50_ms[stage].some((v) => v !== null)) latency[stage + " p50"] = s.stage_p50_ms[stage];
  }
  draw("chart-latency", "line", labels, datasets(latency), "ms");
  draw("chart-fallbacks", "line", labels, datasets(s.fallbacks_per_s), "per s");
  draw("chart-ingest", "line", labels,
       datasets(s.ingested_per_s, "ingested ").concat(datasets(s.errors_per_s, "refused ")),
       "per s");
  const stream = {};
  if (s.extra.lag_s) stream["lag (s)"] = s.extra.lag_s;
  if (s.extra.pending) stream["pending"] = s.extra.pending;
  if (s.extra.dead_letters) stream["dead letters"] = s.extra.dead_letters;
  draw("chart-stream", "line", labels, datasets(stream), "");
}

function drawUser(data) {
  const trace = data.answer.trace_ms;
  const stages = Object.keys(trace).filter((k) => k !== "total");
  draw("chart-trace", "bar", stages,
       [{label: "ms", data: stages.map((k) => trace[k]), backgroundColor: COLOURS[0]}], "ms");
}

function drawItem(data) {
  const c = data.counters;
  if (!c || c.error || !c.t) return;
  draw("chart-counters", "line", timeLabels(c.t),
       datasets({impressions: c.impressions, clicks: c.clicks, engagements: c.engagements}),
       "per 5 min");
}

function drawExperiments(data) {
  for (const canvas of document.querySelectorAll("canvas.chart-intervals")) {
    const experiment = data.experiments.find((e) => e.name === canvas.dataset.experiment);
    if (!experiment) continue;
    const metrics = experiment.intervals_over_time;
    const metric = Object.keys(metrics)[0];
    if (!metric) continue;
    const sets = {};
    let labels = [];
    for (const arm of Object.keys(metrics[metric])) {
      const series = metrics[metric][arm];
      labels = series.t;
      sets[arm + " difference"] = series.difference;
      sets[arm + " low"] = series.low;
      sets[arm + " high"] = series.high;
    }
    canvas.id = "chart-intervals-" + experiment.name;
    draw(canvas.id, "line", labels, datasets(sets), metric);
  }
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST", credentials: "same-origin",
    headers: {"content-type": "application/json", "x-csrf-token": csrfToken()},
    body: JSON.stringify(body),
  });
  let answer = {};
  try { answer = await response.json(); } catch (e) { answer = {}; }
  return {status: response.status, answer: answer};
}

function setUpModelActions() {
  const result = document.getElementById("action-result");
  const reason = () => (document.getElementById("reason") || {}).value || "changed from the console";
  const say = (outcome) => {
    if (outcome.status === 200) {
      result.textContent = outcome.answer.action + ": " + outcome.answer.alias + " " +
        outcome.answer.from + " -> " + outcome.answer.to;
      result.className = "ok";
      setTimeout(() => window.location.reload(), 300);
    } else {
      result.textContent = "refused (" + outcome.status + "): " +
        (typeof outcome.answer.detail === "string" ? outcome.answer.detail : JSON.stringify(outcome.answer));
      result.className = "error";
    }
  };
  for (const button of document.querySelectorAll("button.promote")) {
    button.addEventListener("click", async () => {
      const force = (document.getElementById("force") || {}).checked || false;
      say(await post("/console/api/models/promote", {
        version: Number(button.dataset.version), alias: button.dataset.alias,
        reason: reason(), force: force}));
    });
  }
  for (const button of document.querySelectorAll("button.rollback")) {
    button.addEventListener("click", async () => {
      say(await post("/console/api/models/rollback", {alias: button.dataset.alias, reason: reason()}));
    });
  }
}

const DRAW = {overview: drawOverview, user: drawUser, item: drawItem,
              experiments: drawExperiments};

// the data the server rendered the page from (so charts and tables agree), else a fetch
function embedded() {
  const block = document.getElementById("page-data");
  return block ? JSON.parse(block.textContent) : null;
}

async function refresh(first) {
  const page = document.body.dataset.page;
  const api = document.body.dataset.api;
  if (!api || !DRAW[page]) return null;
  let data = first ? embedded() : null;
  if (data === null) {
    const response = await fetch(api, {credentials: "same-origin"});
    if (!response.ok) return null;
    data = await response.json();
  }
  DRAW[page](data);
  document.body.dataset.drawn = "yes";
  return data;
}

document.addEventListener("DOMContentLoaded", async () => {
  if (document.body.dataset.page === "models") setUpModelActions();
  const data = await refresh(true);
  if (document.body.dataset.page === "overview" && data) {
    setInterval(() => refresh(false), Math.max(data.interval_s, 2) * 1000);
  }
});
