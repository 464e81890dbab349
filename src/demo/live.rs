//! The demo's live output: per-region requests/s, error %, p50 and p99, computed by SQL over
//! the spans, and the anomalies the analyzer finds in the RED series as they are stored.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, Int64Type};
use meridian_analyzer::query::QueryEngine;

/// The SQL behind the table: the last `window` seconds of gateway server spans, per region.
pub fn live_query(window_secs: u64) -> String {
    format!(
        "SELECT region, \
           CAST(count(*) AS DOUBLE) / {window_secs} AS rps, \
           100.0 * avg(CASE WHEN http_response_status_code >= 500 THEN 1.0 ELSE 0.0 END) AS error_pct, \
           approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ns) / 1e6 AS p50_ms, \
           approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ns) / 1e6 AS p99_ms \
         FROM spans \
         WHERE kind = 'server' AND time > now() - INTERVAL '{window_secs} seconds' \
         GROUP BY region ORDER BY region"
    )
}

/// When the live output refreshes and what it measures from.
pub struct Timing {
    /// How often it refreshes.
    pub refresh: Duration,
    /// When the live traffic started.
    pub started: Instant,
    /// When the scripted incident starts (`None`: no incident).
    pub onset: Option<SystemTime>,
    /// The RED interval.
    pub interval: Duration,
}

/// Prints the table and new anomalies every `refresh` until `stop`.
pub async fn print_loop(
    engine: Arc<QueryEngine>,
    timing: Timing,
    stop: tokio_util::sync::CancellationToken,
) {
    let Timing {
        refresh, started, ..
    } = timing;
    let mut anomalies_after = unix_ns(SystemTime::now());
    let mut recommendations_after = anomalies_after;
    let mut alerts_after = anomalies_after;
    let window = refresh.as_secs().max(5) * 2;
    let sql = live_query(window);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(refresh) => {}
            _ = stop.cancelled() => return,
        }
        match engine.query(&sql).await {
            Ok(result) => {
                println!(
                    "t+{:>4}s  {:<15} {:>8} {:>8} {:>9} {:>9}",
                    started.elapsed().as_secs(),
                    "region",
                    "req/s",
                    "err %",
                    "p50 ms",
                    "p99 ms"
                );
                for batch in &result.batches {
                    let region = batch.column(0).as_string::<i32>();
                    let rps = batch.column(1).as_primitive::<Float64Type>();
                    let err = batch.column(2).as_primitive::<Float64Type>();
                    let p50 = batch.column(3).as_primitive::<Float64Type>();
                    let p99 = batch.column(4).as_primitive::<Float64Type>();
                    for i in 0..batch.num_rows() {
                        let flag = if err.value(i) > 5.0 || p99.value(i) > 1000.0 {
                            "  ⚠"
                        } else {
                            ""
                        };
                        println!(
                            "         {:<15} {:>8.1} {:>8.2} {:>9.1} {:>9.1}{flag}",
                            region.value(i),
                            rps.value(i),
                            err.value(i),
                            or_nan(p50, i),
                            or_nan(p99, i),
                        );
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "live query failed"),
        }
        match print_anomalies(&engine, &timing, anomalies_after).await {
            Ok(newest) => anomalies_after = anomalies_after.max(newest),
            Err(e) => tracing::warn!(error = %e, "anomalies query failed"),
        }
        match print_recommendations(&engine, &timing, recommendations_after).await {
            Ok(newest) => recommendations_after = recommendations_after.max(newest),
            Err(e) => tracing::warn!(error = %e, "recommendations query failed"),
        }
        match print_alerts(&engine, &timing, alerts_after).await {
            Ok(newest) => alerts_after = alerts_after.max(newest),
            Err(e) => tracing::warn!(error = %e, "alerts query failed"),
        }
        println!();
    }
}

fn unix_ns(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// The SQL behind the anomaly lines: anomalies stored after `after_ns`, strongest first.
pub fn anomalies_query(after_ns: i64) -> String {
    format!(
        "SELECT CAST(time AS BIGINT) AS t, CAST(detected_at AS BIGINT) AS d, region, http_route, \
           metric, value, expected, score, severity, detector \
         FROM anomalies WHERE CAST(detected_at AS BIGINT) > {after_ns} \
         ORDER BY score DESC LIMIT 12"
    )
}

/// Prints the anomalies stored since `after_ns`; returns the newest detection time printed.
async fn print_anomalies(
    engine: &QueryEngine,
    timing: &Timing,
    after_ns: i64,
) -> Result<i64, meridian_analyzer::QueryError> {
    let result = engine.query(&anomalies_query(after_ns)).await?;
    let step = timing.interval.as_nanos().max(1) as i64;
    let onset_interval = timing.onset.map(|o| unix_ns(o).div_euclid(step) * step);
    let started_ns = unix_ns(SystemTime::now()) - timing.started.elapsed().as_nanos() as i64;
    let mut newest = after_ns;
    for batch in &result.batches {
        let t = batch.column(0).as_primitive::<Int64Type>();
        let d = batch.column(1).as_primitive::<Int64Type>();
        let text = |i: usize| batch.column(i).as_string::<i32>();
        let (region, route, metric) = (text(2), text(3), text(4));
        let (severity, detector) = (text(8), text(9));
        let number = |i: usize| batch.column(i).as_primitive::<Float64Type>();
        let (value, expected, score) = (number(5), number(6), number(7));
        for i in 0..batch.num_rows() {
            newest = newest.max(d.value(i));
            let since_onset = onset_interval.map(|o| (t.value(i) - o).div_euclid(step));
            let when = if let Some(since_onset) = since_onset.filter(|s| *s >= 0) {
                format!("interval {} after the incident's onset", since_onset)
            } else {
                format!(
                    "interval at t{:+}s",
                    (t.value(i) - started_ns) / 1_000_000_000
                )
            };
            println!(
                "  ⚠ {} anomaly  {} {} {}: {:.3} (expected {:.3}), score {:.2} by {} — {}",
                severity.value(i),
                region.value(i),
                route.value(i),
                metric.value(i),
                value.value(i),
                or_nan(expected, i),
                score.value(i),
                detector.value(i),
                when,
            );
        }
    }
    Ok(newest)
}

/// The value at `i`, NaN where it is NULL (prints as `NaN`).
fn or_nan(column: &arrow::array::Float64Array, i: usize) -> f64 {
    if column.is_null(i) {
        f64::NAN
    } else {
        column.value(i)
    }
}

/// The SQL behind the recommendation lines: recommendations made after `after_ns`, in order.
pub fn recommendations_query(after_ns: i64) -> String {
    format!(
        "SELECT CAST(time AS BIGINT) AS t, kind, region, service_name, target, reason, state \
         FROM recommendations WHERE CAST(time AS BIGINT) > {after_ns} \
           AND state IN ('active', 'resolved') ORDER BY time"
    )
}

/// Prints the recommendations made since `after_ns`; returns the newest time printed.
async fn print_recommendations(
    engine: &QueryEngine,
    timing: &Timing,
    after_ns: i64,
) -> Result<i64, meridian_analyzer::QueryError> {
    let result = engine.query(&recommendations_query(after_ns)).await?;
    let onset = timing.onset.map(unix_ns);
    let started_ns = unix_ns(SystemTime::now()) - timing.started.elapsed().as_nanos() as i64;
    let mut newest = after_ns;
    for batch in &result.batches {
        let t = batch.column(0).as_primitive::<Int64Type>();
        let text = |i: usize| batch.column(i).as_string::<i32>();
        let (kind, region, service, target, reason) = (text(1), text(2), text(3), text(4), text(5));
        for i in 0..batch.num_rows() {
            newest = newest.max(t.value(i));
            let when = match onset {
                Some(o) => format!(
                    "{:+.0}s from the incident's onset",
                    (t.value(i) - o) as f64 / 1e9
                ),
                None => format!("at t+{}s", (t.value(i) - started_ns) / 1_000_000_000),
            };
            println!(
                "  ➜ {} {} {}: {} — {} ({when})",
                kind.value(i),
                region.value(i),
                service.value(i),
                target.value(i),
                reason.value(i),
            );
        }
    }
    Ok(newest)
}

/// The SQL behind the alert lines: alerts that fired or resolved after `after_ns`, in order.
pub fn alerts_query(after_ns: i64) -> String {
    format!(
        "SELECT CAST(time AS BIGINT) AS t, alertname, state, coalesce(region, '') AS region, \
           coalesce(service_name, '') AS service_name, annotations \
         FROM alerts WHERE CAST(time AS BIGINT) > {after_ns} AND state IN ('firing', 'resolved') \
         ORDER BY time"
    )
}

/// Prints the alerts that fired or resolved since `after_ns` (what Alertmanager and webhooks
/// are sent), with their summary and hint; returns the newest time printed.
async fn print_alerts(
    engine: &QueryEngine,
    timing: &Timing,
    after_ns: i64,
) -> Result<i64, meridian_analyzer::QueryError> {
    let result = engine.query(&alerts_query(after_ns)).await?;
    let onset = timing.onset.map(unix_ns);
    let mut newest = after_ns;
    for batch in &result.batches {
        let t = batch.column(0).as_primitive::<Int64Type>();
        let text = |i: usize| batch.column(i).as_string::<i32>();
        let (name, state, region, service, annotations) =
            (text(1), text(2), text(3), text(4), text(5));
        for i in 0..batch.num_rows() {
            newest = newest.max(t.value(i));
            let notes: serde_json::Value =
                serde_json::from_str(annotations.value(i)).unwrap_or_default();
            let when = onset.map_or_else(String::new, |o| {
                format!(
                    " ({:+.0}s from the incident's onset)",
                    (t.value(i) - o) as f64 / 1e9
                )
            });
            let hint = notes["hint"]
                .as_str()
                .map_or_else(String::new, |h| format!(" — {h}"));
            println!(
                "  🔔 {} {} {} {}: {}{hint}{when}",
                state.value(i),
                name.value(i),
                region.value(i),
                service.value(i),
                notes["summary"].as_str().unwrap_or_default(),
            );
        }
    }
    Ok(newest)
}
