// Meridian's console: polls the analyzer's public API and draws what it answers. No build
// step, no dependencies but uPlot (vendored beside this file).
"use strict";

const REFRESH_MS = 5000;
const PALETTE = ["#2f5bd3", "#d9480f", "#2b8a3e", "#862e9c", "#c2255c", "#0b7285"];
const charts = {};
let windowMinutes = 30;
let refreshing = false;

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : String(c ?? ""));
  return node;
}

function fmt(x, digits = 1) {
  if (x === null || x === undefined || Number.isNaN(Number(x))) return "–";
  const n = Number(x);
  if (Math.abs(n) >= 1000) return n.toFixed(0);
  return n.toFixed(digits);
}

function quote(text) {
  return "'" + String(text).replaceAll("'", "''") + "'";
}

// When the analyzer requires tokens, the page asks for a `read` token once and keeps it for
// this tab only (sessionStorage), sending it as `authorization: Bearer`.
const TOKEN_KEY = "meridian.token";

async function api(path, init = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = { ...(init.headers || {}) };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(path, { ...init, headers });
  if (res.status === 401 || res.status === 403) {
    $("token-form").hidden = false;
    throw new Error(res.status === 401 ? "a read token is needed" : "the token lacks the read scope");
  }
  return res;
}

async function sql(query) {
  const res = await api("/api/v1/sql", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query }),
  });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

async function rows(query) {
  return (await sql(query)).rows;
}

async function getJson(path) {
  const res = await api(path);
  if (!res.ok) throw new Error(`${path}: ${res.status}`);
  return res.json();
}

function since() {
  return `now() - INTERVAL '${windowMinutes} minutes'`;
}

// ---- regions ---------------------------------------------------------------------------

async function loadRegions() {
  const [red, probes, routing, anomalous] = await Promise.all([
    rows(`SELECT region, sum(request_count) / (count(DISTINCT time) * max(interval_s)) AS rps,
            sum(error_count) * 100.0 / nullif(sum(request_count), 0) AS error_pct,
            max(latency_p99_ms) AS p99_ms
          FROM red WHERE time >= now() - INTERVAL '1 minute' GROUP BY region ORDER BY region`),
    rows(`SELECT region, sum(CASE WHEN healthy THEN 1 ELSE 0 END) AS healthy, count(*) AS checks
          FROM (SELECT region, healthy, row_number() OVER
                  (PARTITION BY region, vantage_region, endpoint ORDER BY time DESC) AS k
                FROM probes WHERE time >= now() - INTERVAL '2 minutes')
          WHERE k = 1 GROUP BY region`),
    getJson("/api/v1/routing"),
    rows(`SELECT region, min(severity) AS severity FROM anomalies
          WHERE time >= now() - INTERVAL '2 minutes' GROUP BY region`),
  ]);
  const byRegion = new Map();
  const entry = (r) => {
    if (!byRegion.has(r)) byRegion.set(r, { region: r, weights: [] });
    return byRegion.get(r);
  };
  for (const r of red) Object.assign(entry(r.region), r);
  for (const p of probes) Object.assign(entry(p.region), { healthy: p.healthy, checks: p.checks });
  for (const a of anomalous) entry(a.region).severity = a.severity;
  for (const [service, s] of Object.entries(routing.services || {})) {
    for (const [region, w] of Object.entries(s.regions || {})) {
      entry(region).weights.push({ service, ...w });
    }
  }
  const cards = [...byRegion.values()].sort((a, b) => a.region.localeCompare(b.region));
  const container = $("regions");
  container.replaceChildren(
    ...cards.map((c) => {
      const probed = c.checks !== undefined;
      const unhealthy = probed && c.healthy * 2 < c.checks;
      const badge = !probed
        ? el("span", { class: "badge warn" }, "not probed")
        : unhealthy
          ? el("span", { class: "badge bad" }, `unhealthy ${c.healthy}/${c.checks}`)
          : el("span", { class: "badge" }, `healthy ${c.healthy}/${c.checks}`);
      const weights = c.weights.length
        ? c.weights.map((w) => `${w.service === "*" ? "region" : w.service} ${w.weight}${w.state !== "normal" ? " (" + w.state + ")" : ""}`).join(", ")
        : "–";
      const cls = "card" + (unhealthy ? " unhealthy" : c.severity === "critical" ? " anomalous" : "");
      return el("div", { class: cls, "data-region": c.region, "data-healthy": String(!unhealthy) },
        el("h3", {}, c.region, badge),
        el("dl", {},
          el("dt", {}, "requests / s"), el("dd", {}, fmt(c.rps)),
          el("dt", {}, "errors"), el("dd", {}, fmt(c.error_pct, 2) + " %"),
          el("dt", {}, "p99 (slowest route)"), el("dd", {}, fmt(c.p99_ms) + " ms"),
          el("dt", {}, "routing weight"), el("dd", { "data-weights": weights }, weights),
          el("dt", {}, "anomaly (2 min)"), el("dd", {}, c.severity || "none")));
    }),
  );
  if (!cards.length) container.replaceChildren(el("p", { class: "empty" }, "No data yet."));
  const select = $("forecast-region");
  const names = cards.map((c) => c.region);
  if ([...select.options].map((o) => o.value).join() !== names.join()) {
    const keep = select.value;
    select.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
    if (names.includes(keep)) select.value = keep;
  }
}

// ---- charts ----------------------------------------------------------------------------

// Rows of (t, series, value) into uPlot's aligned columns.
function align(data, key, value) {
  const xs = [...new Set(data.map((r) => r.t))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const names = [...new Set(data.map((r) => r[key]))].sort();
  const columns = names.map(() => new Array(xs.length).fill(null));
  for (const r of data) columns[names.indexOf(r[key])][index.get(r.t)] = r[value];
  return { names, data: [xs, ...columns] };
}

function draw(id, names, data, extra = {}) {
  const target = $(id);
  const width = Math.max(300, target.clientWidth || 400);
  const signature = names.join("|");
  const old = charts[id];
  if (old && old.signature === signature) {
    old.plot.setData(data);
    return;
  }
  if (old) old.plot.destroy();
  const series = [{}, ...names.map((n, i) => ({
    label: n, stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: false, ...(extra.series?.[i] || {}),
  }))];
  const plot = new uPlot({
    width, height: 200, series, bands: extra.bands,
    axes: [{}, { size: 55 }],
    scales: { x: { time: true } },
    legend: { live: true },
  }, data, target);
  charts[id] = { plot, signature };
}

async function loadRed() {
  const data = await rows(`SELECT CAST(extract(epoch from time) AS BIGINT) AS t, region,
      sum(request_count) / max(interval_s) AS rps,
      sum(error_count) * 100.0 / nullif(sum(request_count), 0) AS error_pct,
      max(latency_p99_ms) AS p99_ms
    FROM red WHERE time >= ${since()} GROUP BY 1, 2 ORDER BY 1`);
  for (const [id, column] of [["chart-rate", "rps"], ["chart-errors", "error_pct"], ["chart-p99", "p99_ms"]]) {
    const { names, data: columns } = align(data, "region", column);
    draw(id, names, columns);
  }
}

async function loadForecast() {
  const region = $("forecast-region").value;
  if (!region) return;
  const r = quote(region);
  const [actual, forecast] = await Promise.all([
    rows(`SELECT CAST(extract(epoch from time) AS BIGINT) AS t, sum(request_count) / max(interval_s) AS v
          FROM red WHERE region = ${r} AND time >= ${since()} GROUP BY 1 ORDER BY 1`),
    rows(`SELECT CAST(extract(epoch from time) AS BIGINT) AS t, sum(forecast) AS f,
            sum(lower_80) AS lo80, sum(upper_80) AS hi80, sum(lower_95) AS lo95, sum(upper_95) AS hi95,
            max(made_at) AS made_at
          FROM forecasts WHERE region = ${r} AND metric = 'request_rate'
            AND made_at = (SELECT max(made_at) FROM forecasts WHERE region = ${r} AND metric = 'request_rate')
          GROUP BY 1 ORDER BY 1`),
  ]);
  const xs = [...new Set([...actual.map((a) => a.t), ...forecast.map((f) => f.t)])].sort((a, b) => a - b);
  const at = new Map(xs.map((x, i) => [x, i]));
  const cols = Array.from({ length: 6 }, () => new Array(xs.length).fill(null));
  for (const a of actual) cols[0][at.get(a.t)] = a.v;
  for (const f of forecast) {
    const i = at.get(f.t);
    [cols[1][i], cols[2][i], cols[3][i], cols[4][i], cols[5][i]] = [f.f, f.lo80, f.hi80, f.lo95, f.hi95];
  }
  const dashed = { dash: [6, 4], spanGaps: true };
  const faint = { stroke: "rgba(47,91,211,0.35)", width: 1, spanGaps: true };
  draw("chart-forecast", ["actual", "forecast", "80% low", "80% high", "95% low", "95% high"],
    [xs, ...cols], {
      series: [{ stroke: "#1d2330" }, { stroke: "#2f5bd3", ...dashed }, faint, faint, faint, faint],
      bands: [
        { series: [6, 5], fill: "rgba(47,91,211,0.08)" },
        { series: [4, 3], fill: "rgba(47,91,211,0.16)" },
      ],
    });
  $("forecast-note").textContent = forecast.length
    ? `Fit made at ${forecast[0].made_at}; horizons ${forecast.length}; summed over ${region}'s routes (summed bands are wider than the region's own).`
    : `No forecast for ${region} yet (the forecaster needs some history).`;
}

// ---- anomalies, alerts, recommendations ------------------------------------------------

async function loadAnomalies() {
  const data = await rows(`SELECT time, region, service_name, http_route, metric, value, expected,
      lower, upper, score, severity, detector
    FROM anomalies WHERE time >= ${since()} ORDER BY time DESC, score DESC LIMIT 100`);
  const body = $("anomalies").tBodies[0];
  if (!data.length) {
    body.replaceChildren(el("tr", {}, el("td", { colSpan: 7, class: "empty" }, "No anomalies in the window.")));
    return;
  }
  body.replaceChildren(...data.map((a) => {
    const why = `${fmt(a.value, 3)} vs ${fmt(a.expected, 3)} expected (band ${fmt(a.lower, 3)}–${fmt(a.upper, 3)}), ${a.detector}, score ${fmt(a.score, 2)}`;
    return el("tr", { class: a.severity, "data-region": a.region, "data-metric": a.metric },
      el("td", {}, String(a.time).replace("T", " ").slice(0, 19)),
      el("td", {}, a.region), el("td", {}, a.service_name), el("td", {}, a.http_route),
      el("td", {}, a.metric), el("td", {}, a.severity), el("td", {}, why));
  }));
}

async function loadAlerts() {
  const body = await getJson("/api/v1/alerts");
  const alerts = (body.data?.alerts || []).filter((a) => a.state !== "inactive");
  const list = $("alerts");
  if (!alerts.length) {
    list.replaceChildren(el("li", { class: "empty" }, "No alerts pending or firing."));
    return;
  }
  list.replaceChildren(...alerts.map((a) => {
    const l = a.labels || {};
    const n = a.annotations || {};
    return el("li", { "data-alertname": l.alertname || "", "data-region": l.region || "", "data-state": a.state },
      el("div", { class: "title" },
        el("span", { class: a.state === "firing" ? "badge bad" : "badge warn" }, a.state),
        ` ${l.alertname} ${l.region || ""} ${l.service_name || ""} [${l.severity || ""}]`),
      el("div", { class: "detail" }, n.summary || ""),
      n.hint ? el("div", { class: "detail" }, "hint: " + n.hint) : "",
      el("div", { class: "detail" }, `${a.state} since ${a.activeAt}`));
  }));
}

async function loadRecommendations() {
  const body = await getJson("/api/v1/recommendations");
  const list = $("recommendations");
  const recs = body.recommendations || [];
  if (!recs.length) {
    list.replaceChildren(el("li", { class: "empty" }, "No active recommendations."));
    return;
  }
  list.replaceChildren(...recs.map((r) => el("li", { "data-kind": r.kind, "data-region": r.region },
    el("div", { class: "title" }, `${r.kind} ${r.region} ${r.service === "*" ? "" : r.service}`),
    el("div", { class: "detail" }, r.reason),
    el("div", { class: "detail" }, `target ${JSON.stringify(r.target)} · ${r.time}${r.apply ? "" : " · advisory"}`))));
}

// ---- SQL box ---------------------------------------------------------------------------

async function runSql(event) {
  event.preventDefault();
  const status = $("sql-status");
  const out = $("sql-result");
  status.textContent = "running…";
  status.className = "muted";
  const started = performance.now();
  try {
    const result = await sql($("sql").value);
    const names = result.columns.map((c) => c.name);
    out.replaceChildren(el("table", {},
      el("thead", {}, el("tr", {}, ...names.map((n) => el("th", {}, n)))),
      el("tbody", {}, ...result.rows.map((r) => el("tr", {}, ...names.map((n) => el("td", {},
        r[n] === null ? "NULL" : typeof r[n] === "object" ? JSON.stringify(r[n]) : r[n])))))));
    status.textContent = `${result.rows.length} rows in ${Math.round(performance.now() - started)} ms${result.truncated ? " (truncated)" : ""}`;
  } catch (e) {
    out.replaceChildren();
    status.textContent = e.message;
    status.className = "error";
  }
}

// ---- the loop --------------------------------------------------------------------------

async function refresh() {
  if (refreshing) return;
  refreshing = true;
  const parts = [loadRegions, loadRed, loadAnomalies, loadAlerts, loadRecommendations];
  const failed = [];
  const results = await Promise.allSettled(parts.map((p) => p()));
  results.forEach((r, i) => { if (r.status === "rejected") failed.push(`${parts[i].name}: ${r.reason.message}`); });
  // The forecast's region list comes from the regions' answer.
  try { await loadForecast(); } catch (e) { failed.push(`loadForecast: ${e.message}`); }
  const status = $("status");
  status.textContent = failed.length
    ? `partly updated ${new Date().toLocaleTimeString()} — ${failed.join("; ")}`
    : `updated ${new Date().toLocaleTimeString()}`;
  status.className = failed.length ? "error" : "muted";
  document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
  refreshing = false;
}

$("window").addEventListener("change", (e) => { windowMinutes = Number(e.target.value); refresh(); });
$("forecast-region").addEventListener("change", () => loadForecast().catch(() => {}));
$("sql-form").addEventListener("submit", runSql);
$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  $("token").value = "";
  $("token-form").hidden = true;
  refresh();
});
window.addEventListener("resize", () => {
  for (const [id, c] of Object.entries(charts)) c.plot.setSize({ width: Math.max(300, $(id).clientWidth), height: 200 });
});
refresh();
setInterval(refresh, REFRESH_MS);
