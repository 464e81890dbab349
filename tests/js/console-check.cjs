// Loads Meridian's console in headless Chromium (Debian's, driven by playwright-core) and
// prints what its DOM shows as one JSON line, for tests/console.rs to judge.
//
// usage: node console-check.cjs URL SCREENSHOT.png INCIDENT_REGION TIMEOUT_S
// env:   MERIDIAN_JS_DIR (node_modules' parent), MERIDIAN_CHROMIUM (the browser)
"use strict";

const path = require("path");
const { createRequire } = require("module");

const need = createRequire(path.join(process.env.MERIDIAN_JS_DIR || __dirname, "package.json"));
const { chromium } = need("playwright-core");

async function main() {
  const [url, screenshot, incidentRegion, timeoutS] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.MERIDIAN_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const errors = [];
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  page.on("console", (m) => { if (m.type() === "error") errors.push(`console: ${m.text()}`); });
  page.on("pageerror", (e) => errors.push(`page: ${e.message}`));
  page.on("requestfailed", (r) => errors.push(`request ${r.url()}: ${r.failure()?.errorText}`));
  page.on("response", (r) => { if (r.status() >= 400) errors.push(`response ${r.status()} ${r.url()}`); });
  await page.goto(url, { waitUntil: "load" });

  const look = () => page.evaluate((incident) => {
    const attr = (sel, name) => [...document.querySelectorAll(sel)].map((n) => n.getAttribute(name));
    return {
      refreshed: Number(document.body.dataset.refreshed || 0),
      status: document.getElementById("status").textContent,
      regions: attr("#regions .card", "data-region"),
      unhealthy: attr("#regions .card[data-healthy=false]", "data-region"),
      anomaly_regions: [...new Set(attr("#anomalies tbody tr[data-region]", "data-region"))],
      critical_in_incident: document.querySelectorAll(`#anomalies tbody tr.critical[data-region="${incident}"]`).length,
      recommendations: [...document.querySelectorAll("#recommendations li[data-kind]")]
        .map((n) => `${n.dataset.kind} ${n.dataset.region}`),
      alerts: [...document.querySelectorAll("#alerts li[data-alertname]")]
        .map((n) => `${n.dataset.state} ${n.dataset.alertname} ${n.dataset.region}`),
      charts: document.querySelectorAll(".uplot").length,
    };
  }, incidentRegion);

  const deadline = Date.now() + Number(timeoutS) * 1000;
  let seen = await look();
  while (Date.now() < deadline) {
    const complete = seen.refreshed >= 2 && seen.regions.length >= 3
      && seen.critical_in_incident > 0
      && seen.recommendations.some((r) => r.endsWith(` ${incidentRegion}`));
    if (complete) break;
    await page.waitForTimeout(1000);
    seen = await look();
  }
  // The SQL box, as a person uses it.
  await page.fill("#sql", "SELECT region, count(*) AS n FROM spans GROUP BY region ORDER BY region");
  await page.click("#sql-form button");
  await page.waitForFunction(() => /rows in/.test(document.getElementById("sql-status").textContent), null, { timeout: 15000 })
    .catch(() => {});
  seen.sql_status = await page.textContent("#sql-status");
  seen.sql_rows = await page.locator("#sql-result tbody tr").count();
  await page.screenshot({ path: screenshot, fullPage: true });
  seen.errors = errors;
  await browser.close();
  process.stdout.write(JSON.stringify(seen) + "\n");
}

main().catch((e) => {
  process.stderr.write(`console check failed: ${e.stack || e}\n`);
  process.exit(2);
});
