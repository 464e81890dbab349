//! Root-cause hints for an anomaly alert, from the spans themselves: which route and status
//! explain most of the change against the minutes before, the traces to look at (and the SQL
//! that fetches them), what else moved at the same time, and whether the probes agree.

use serde_json::{json, Value};

use super::builtin::rows;
use crate::query::sql::QueryEngine;

/// `'text'` as a SQL string literal.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// One (route, status) cell: requests and total duration now and in the baseline.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Cell {
    /// The route (empty when spans have none).
    pub route: String,
    /// HTTP status, or the span status when there is none.
    pub status: String,
    /// Requests in the anomalous window.
    pub recent: f64,
    /// Requests in the baseline.
    pub before: f64,
    /// Summed duration in the window, ns.
    pub recent_ns: f64,
    /// Summed duration in the baseline, ns.
    pub before_ns: f64,
}

impl Cell {
    fn is_error(&self) -> bool {
        self.status == "error" || self.status.parse::<u16>().is_ok_and(|s| s >= 500)
    }
}

/// The top error cell with its share of the error rise, and the top latency route with its
/// share of the extra time.
pub type Contributors = (Option<(Cell, f64)>, Option<(String, f64)>);

/// The cell whose error rate rose most (per second, window against baseline) and its share of
/// the whole rise; then the route whose requests took the most time beyond their baseline
/// mean, and its share of the excess.
///
/// ```
/// # use meridian_analyzer::alert::hints::{top_contributors, Cell};
/// let cell = |route: &str, status: &str, recent, before, recent_ns, before_ns| Cell {
///     route: route.into(), status: status.into(), recent, before, recent_ns, before_ns };
/// let cells = vec![
///     cell("/a", "200", 60.0, 600.0, 6e9, 6e10),
///     cell("/b", "503", 30.0, 0.0, 3e9, 0.0),
///     cell("/b", "200", 30.0, 600.0, 9e10, 6e10),
/// ];
/// let (errors, latency) = top_contributors(&cells, 60.0, 600.0);
/// assert_eq!(errors.unwrap().0.route, "/b");
/// assert_eq!(latency.unwrap().0, "/b");
/// ```
pub fn top_contributors(cells: &[Cell], window_s: f64, baseline_s: f64) -> Contributors {
    let rise = |c: &Cell| c.recent / window_s - c.before / baseline_s;
    let errors: Vec<&Cell> = cells.iter().filter(|c| c.is_error()).collect();
    let total: f64 = errors.iter().map(|c| rise(c).max(0.0)).sum();
    let top_error = errors
        .iter()
        .max_by(|a, b| rise(a).total_cmp(&rise(b)))
        .filter(|c| rise(c) > 0.0 && total > 0.0)
        .map(|c| ((*c).clone(), rise(c) / total));
    let mut routes: std::collections::BTreeMap<&str, (f64, f64, f64, f64)> = Default::default();
    for c in cells {
        let r = routes.entry(c.route.as_str()).or_default();
        r.0 += c.recent;
        r.1 += c.before;
        r.2 += c.recent_ns;
        r.3 += c.before_ns;
    }
    let excess = |(recent, before, recent_ns, before_ns): (f64, f64, f64, f64)| {
        if before > 0.0 {
            recent_ns - recent * before_ns / before
        } else {
            0.0
        }
    };
    let total_excess: f64 = routes.values().map(|r| excess(*r).max(0.0)).sum();
    let top_latency = routes
        .iter()
        .max_by(|a, b| excess(*a.1).total_cmp(&excess(*b.1)))
        .filter(|(_, r)| excess(**r) > 0.0 && total_excess > 0.0)
        .map(|(route, r)| ((*route).to_owned(), excess(*r) / total_excess));
    (top_error, top_latency)
}

/// The hints for `region` / `service` over the last `window_s` seconds against the
/// `baseline_s` before them; `also` lists other anomalies of the window, `probes` what the
/// probes say of the region. A query that fails leaves its part out, with the error.
pub async fn gather(
    engine: &QueryEngine,
    region: &str,
    service: &str,
    window_s: u64,
    baseline_s: u64,
    also: Vec<Value>,
    probes: Value,
) -> (Value, String) {
    let filter = format!(
        "region = {} AND service_name = {} AND kind = 'server'",
        quote(region),
        quote(service)
    );
    let cells_sql = format!(
        "SELECT coalesce(http_route, '') AS route, \
         coalesce(CAST(http_response_status_code AS VARCHAR), status_code) AS status, \
         CAST(sum(CASE WHEN time >= now() - INTERVAL '{window_s} seconds' THEN 1 ELSE 0 END) AS DOUBLE) AS recent, \
         CAST(sum(CASE WHEN time < now() - INTERVAL '{window_s} seconds' THEN 1 ELSE 0 END) AS DOUBLE) AS before, \
         CAST(sum(CASE WHEN time >= now() - INTERVAL '{window_s} seconds' THEN duration_ns ELSE 0 END) AS DOUBLE) AS recent_ns, \
         CAST(sum(CASE WHEN time < now() - INTERVAL '{window_s} seconds' THEN duration_ns ELSE 0 END) AS DOUBLE) AS before_ns \
         FROM spans WHERE {filter} AND time >= now() - INTERVAL '{} seconds' GROUP BY 1, 2",
        window_s + baseline_s
    );
    let exemplar_sql = format!(
        "SELECT trace_id, http_route, http_response_status_code, duration_ns / 1e6 AS duration_ms \
         FROM spans WHERE {filter} AND time >= now() - INTERVAL '{window_s} seconds' \
         ORDER BY CASE WHEN http_response_status_code >= 500 OR status_code = 'error' THEN 0 ELSE 1 END, duration_ns DESC LIMIT 5"
    );
    let mut evidence = json!({
        "region": region,
        "service_name": service,
        "window_s": window_s,
        "baseline_s": baseline_s,
        "exemplar_sql": exemplar_sql,
        "also_moved": also,
        "probes": probes,
    });
    let mut hint = Vec::new();
    match cells(engine, &cells_sql).await {
        Ok(cells) => {
            let (errors, latency) = top_contributors(&cells, window_s as f64, baseline_s as f64);
            if let Some((cell, share)) = &errors {
                hint.push(format!(
                    "errors: {} {} explains {:.0}% of the rise",
                    display_route(&cell.route),
                    cell.status,
                    share * 100.0
                ));
                evidence["top_error"] =
                    json!({"http_route": cell.route, "status": cell.status, "share": share});
            }
            if let Some((route, share)) = &latency {
                hint.push(format!(
                    "latency: {} explains {:.0}% of the extra time",
                    display_route(route),
                    share * 100.0
                ));
                evidence["top_latency"] = json!({"http_route": route, "share": share});
            }
        }
        Err(e) => evidence["error"] = json!(e),
    }
    match exemplars(engine, &exemplar_sql).await {
        Ok(ids) => {
            if !ids.is_empty() {
                hint.push(format!("traces: {}", ids.join(", ")));
            }
            evidence["exemplar_trace_ids"] = json!(ids);
        }
        Err(e) => evidence["exemplar_error"] = json!(e),
    }
    (evidence, hint.join("; "))
}

fn display_route(route: &str) -> &str {
    if route.is_empty() {
        "(no route)"
    } else {
        route
    }
}

async fn cells(engine: &QueryEngine, sql: &str) -> Result<Vec<Cell>, String> {
    let number = |row: &Value, key: &str| row[key].as_f64().unwrap_or(0.0);
    Ok(rows(engine, sql)
        .await?
        .iter()
        .map(|r| Cell {
            route: r["route"].as_str().unwrap_or_default().to_owned(),
            status: r["status"].as_str().unwrap_or_default().to_owned(),
            recent: number(r, "recent"),
            before: number(r, "before"),
            recent_ns: number(r, "recent_ns"),
            before_ns: number(r, "before_ns"),
        })
        .collect())
}

async fn exemplars(engine: &QueryEngine, sql: &str) -> Result<Vec<String>, String> {
    Ok(rows(engine, sql)
        .await?
        .iter()
        .filter_map(|r| r["trace_id"].as_str().map(str::to_owned))
        .collect())
}
