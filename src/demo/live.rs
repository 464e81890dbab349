//! The demo's live table: per-region requests/s, error %, p50 and p99, computed by SQL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray};
use arrow::datatypes::Float64Type;
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

/// Prints the table every `refresh` until `stop`.
pub async fn print_loop(
    engine: Arc<QueryEngine>,
    refresh: Duration,
    started: Instant,
    stop: tokio_util::sync::CancellationToken,
) {
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
                            if p50.is_null(i) {
                                f64::NAN
                            } else {
                                p50.value(i)
                            },
                            if p99.is_null(i) {
                                f64::NAN
                            } else {
                                p99.value(i)
                            },
                        );
                    }
                }
                println!();
            }
            Err(e) => tracing::warn!(error = %e, "live query failed"),
        }
    }
}
