//! Root-cause hints for an anomaly alert, from the spans themselves: which route and status,
//! and which upstream, explain most of the change against the minutes before, the traces to
//! look at (and the SQL that fetches them), what else moved at the same time, and whether the
//! probes agree.

use serde_json::{json, Value};

use super::builtin::rows;
use crate::query::sql::QueryEngine;

/// `'text'` as a SQL string literal.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// One (route, status, upstream) cell: requests and total duration now and in the baseline.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Cell {
    /// The route (empty when spans have none).
    pub route: String,
    /// HTTP status, or the span status when there is none.
    pub status: String,
    /// The upstream the gateway sent the request to (`peer.service`, Envoy's
    /// `upstream_cluster`); empty when spans do not say.
    pub upstream: String,
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

/// What explains the change most: the error cell (route and status) and the upstream with
/// the largest share of the error rise, and the route and the upstream with the largest share
/// of the extra time. An upstream is named only when the spans name more than one.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Contributors {
    /// The (route, status) whose error rate rose most, and its share of the rise.
    pub error: Option<(Cell, f64)>,
    /// The upstream whose errors rose most, and its share of the rise.
    pub error_upstream: Option<(String, f64)>,
    /// The route whose requests took the most time beyond their baseline mean, and its share.
    pub latency: Option<(String, f64)>,
    /// The upstream whose requests took the most extra time, and its share.
    pub latency_upstream: Option<(String, f64)>,
}

/// Cells summed per `key`.
fn sum_by(cells: &[&Cell], key: impl Fn(&Cell) -> String) -> Vec<(String, Cell)> {
    let mut out: std::collections::BTreeMap<String, Cell> = Default::default();
    for c in cells {
        let k = key(c);
        let sum = out.entry(k).or_insert_with(|| Cell {
            route: c.route.clone(),
            status: c.status.clone(),
            upstream: c.upstream.clone(),
            ..Cell::default()
        });
        sum.recent += c.recent;
        sum.before += c.before;
        sum.recent_ns += c.recent_ns;
        sum.before_ns += c.before_ns;
    }
    out.into_iter().collect()
}

/// The group with the largest positive `score`, and its share of all positive scores.
fn top(groups: Vec<(String, Cell)>, score: impl Fn(&Cell) -> f64) -> Option<(String, Cell, f64)> {
    let total: f64 = groups.iter().map(|(_, c)| score(c).max(0.0)).sum();
    groups
        .into_iter()
        .max_by(|a, b| score(&a.1).total_cmp(&score(&b.1)))
        .filter(|(_, c)| score(c) > 0.0 && total > 0.0)
        .map(|(k, c)| {
            let share = score(&c) / total;
            (k, c, share)
        })
}

/// The contributors of `cells` over a window of `window_s` against a baseline of
/// `baseline_s`: error rise per second (window against baseline), extra time against each
/// group's baseline mean.
///
/// ```
/// # use meridian_analyzer::alert::hints::{top_contributors, Cell};
/// let cell = |route: &str, status: &str, upstream: &str, recent, before, recent_ns, before_ns| Cell {
///     route: route.into(), status: status.into(), upstream: upstream.into(),
///     recent, before, recent_ns, before_ns };
/// let cells = vec![
///     cell("/a", "200", "a-v1", 60.0, 600.0, 6e9, 6e10),
///     cell("/b", "503", "b-v2", 30.0, 0.0, 3e9, 0.0),
///     cell("/b", "200", "b-v1", 15.0, 300.0, 1.5e9, 3e10),
///     cell("/b", "200", "b-v2", 15.0, 300.0, 7.5e10, 3e10),
/// ];
/// let top = top_contributors(&cells, 60.0, 600.0);
/// assert_eq!(top.error.unwrap().0.route, "/b");
/// assert_eq!(top.error_upstream.unwrap().0, "b-v2");
/// assert_eq!(top.latency.unwrap().0, "/b");
/// assert_eq!(top.latency_upstream.unwrap().0, "b-v2");
/// ```
pub fn top_contributors(cells: &[Cell], window_s: f64, baseline_s: f64) -> Contributors {
    let rise = |c: &Cell| c.recent / window_s - c.before / baseline_s;
    let excess = |c: &Cell| {
        if c.before > 0.0 {
            c.recent_ns - c.recent * c.before_ns / c.before
        } else {
            0.0
        }
    };
    let all: Vec<&Cell> = cells.iter().collect();
    let errors: Vec<&Cell> = cells.iter().filter(|c| c.is_error()).collect();
    let upstreams = sum_by(&all, |c| c.upstream.clone());
    let named_upstreams = upstreams.iter().filter(|(u, _)| !u.is_empty()).count() > 1;
    let by_upstream = |groups: Vec<(String, Cell)>, score: &dyn Fn(&Cell) -> f64| {
        if !named_upstreams {
            return None;
        }
        top(groups, score)
            .filter(|(u, _, _)| !u.is_empty())
            .map(|(u, _, share)| (u, share))
    };
    Contributors {
        error: top(
            sum_by(&errors, |c| format!("{}\u{0}{}", c.route, c.status)),
            rise,
        )
        .map(|(_, c, share)| (c, share)),
        error_upstream: by_upstream(sum_by(&errors, |c| c.upstream.clone()), &rise),
        latency: top(sum_by(&all, |c| c.route.clone()), excess).map(|(r, _, share)| (r, share)),
        latency_upstream: by_upstream(upstreams, &excess),
    }
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
         coalesce(peer_service, '') AS upstream, \
         CAST(sum(CASE WHEN time >= now() - INTERVAL '{window_s} seconds' THEN 1 ELSE 0 END) AS DOUBLE) AS recent, \
         CAST(sum(CASE WHEN time < now() - INTERVAL '{window_s} seconds' THEN 1 ELSE 0 END) AS DOUBLE) AS before, \
         CAST(sum(CASE WHEN time >= now() - INTERVAL '{window_s} seconds' THEN duration_ns ELSE 0 END) AS DOUBLE) AS recent_ns, \
         CAST(sum(CASE WHEN time < now() - INTERVAL '{window_s} seconds' THEN duration_ns ELSE 0 END) AS DOUBLE) AS before_ns \
         FROM spans WHERE {filter} AND time >= now() - INTERVAL '{} seconds' GROUP BY 1, 2, 3",
        window_s + baseline_s
    );
    let exemplar_sql = format!(
        "SELECT trace_id, http_route, http_response_status_code, peer_service, duration_ns / 1e6 AS duration_ms \
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
            let top = top_contributors(&cells, window_s as f64, baseline_s as f64);
            if let Some((cell, share)) = &top.error {
                hint.push(format!(
                    "errors: {} {} explains {:.0}% of the rise",
                    display_route(&cell.route),
                    cell.status,
                    share * 100.0
                ));
                evidence["top_error"] =
                    json!({"http_route": cell.route, "status": cell.status, "share": share});
            }
            if let Some((upstream, share)) = &top.error_upstream {
                hint.push(format!(
                    "upstream {upstream} has {:.0}% of the error rise",
                    share * 100.0
                ));
                evidence["top_error_upstream"] = json!({"upstream": upstream, "share": share});
            }
            if let Some((route, share)) = &top.latency {
                hint.push(format!(
                    "latency: {} explains {:.0}% of the extra time",
                    display_route(route),
                    share * 100.0
                ));
                evidence["top_latency"] = json!({"http_route": route, "share": share});
            }
            if let Some((upstream, share)) = &top.latency_upstream {
                hint.push(format!(
                    "upstream {upstream} has {:.0}% of the extra time",
                    share * 100.0
                ));
                evidence["top_latency_upstream"] = json!({"upstream": upstream, "share": share});
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
            upstream: r["upstream"].as_str().unwrap_or_default().to_owned(),
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
