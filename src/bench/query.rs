//! `meridian bench query`: gateway questions over a dataset of the demo's traffic, answered by
//! Meridian through its SQL API and by DuckDB over the same Parquet files, timed in one run.
//!
//! The dataset (default 10M spans: three regions over six hours, an incident in eu-west-1) is
//! ingested through the store as in production (flushes, then compaction) and kept in `--dir`
//! for the next run.

use super::figures::Figures;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use meridian_analyzer::query::PgConfig;
use meridian_analyzer::AnalyzerConfig;
use meridian_collector::convert::traces_to_arrow;
use meridian_collector::{Signal, SignalBatch};
use prometheus::Registry;
use rand::SeedableRng;
use serde_json::Value;

use crate::demo::dataset::trace_request;
use crate::demo::traffic::Condition;

/// 2025-11-01T00:00:00Z: the dataset's first request.
const START_NS: u64 = 1_761_955_200_000_000_000;
/// The dataset spans six hours.
const SPAN_NS: u64 = 6 * 3_600_000_000_000;
const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-2"];
/// Requests per generated OTLP request (about 1.9 spans each).
const CHUNK: usize = 5_000;

/// One question, in each engine's dialect.
struct Question {
    name: &'static str,
    meridian: String,
    duckdb: String,
}

fn questions(trace_id: &str) -> Vec<Question> {
    let both = |name, sql: &str| Question {
        name,
        meridian: sql.to_string(),
        duckdb: sql.to_string(),
    };
    // DataFusion's approx_percentile_cont and DuckDB's approx_quantile are both sketches
    // (t-digest); the rest is the same SQL.
    let percentile = |name, template: &str| Question {
        name,
        meridian: template.replace("PCT(", "approx_percentile_cont(duration_ns, "),
        duckdb: template.replace("PCT(", "approx_quantile(duration_ns, "),
    };
    vec![
        percentile(
            "p99 latency by region per minute",
            "SELECT date_trunc('minute', time) AS minute, region, PCT(0.99) AS p99 \
             FROM spans WHERE kind = 'server' GROUP BY 1, 2 ORDER BY 1, 2",
        ),
        both(
            "error rate by route",
            "SELECT http_route, count(*) AS requests, \
             avg(CASE WHEN http_response_status_code >= 500 THEN 1.0 ELSE 0.0 END) AS error_rate \
             FROM spans WHERE kind = 'server' GROUP BY 1 ORDER BY 3 DESC",
        ),
        percentile(
            "top slow routes (p95 by region, route)",
            "SELECT region, http_route, PCT(0.95) AS p95 FROM spans WHERE kind = 'server' \
             GROUP BY 1, 2 ORDER BY p95 DESC LIMIT 10",
        ),
        both(
            "incident window by region (30 min)",
            "SELECT region, count(*) AS requests, avg(duration_ns) AS mean_ns FROM spans \
             WHERE time >= '2025-11-01T03:00:00Z' AND time < '2025-11-01T03:30:00Z' \
             AND kind = 'server' GROUP BY 1 ORDER BY 1",
        ),
        both(
            "slowest requests of a route (the traces behind them)",
            "SELECT trace_id, duration_ns FROM spans WHERE kind = 'server' \
             AND region = 'eu-west-1' AND http_route = '/api/payments' \
             ORDER BY duration_ns DESC LIMIT 20",
        ),
        both(
            "one trace",
            &format!(
                "SELECT name, kind, duration_ns FROM spans WHERE trace_id = '{trace_id}' ORDER BY time"
            ),
        ),
        both(
            "status mix per hour",
            "SELECT date_trunc('hour', time) AS hour, http_response_status_code, count(*) AS n \
             FROM spans GROUP BY 1, 2 ORDER BY 1, 2",
        ),
    ]
}

/// Generates (or finds) the dataset, then times every question in both engines.
pub async fn run(
    spans: usize,
    dir: &Path,
    (python, script): (&str, &Path),
    runs: usize,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let marker = dir.join(format!("dataset-{spans}.done"));
    if !marker.exists() {
        generate(spans, dir).await?;
        std::fs::write(&marker, b"")?;
    } else {
        println!("reusing the dataset in {}", dir.display());
    }
    let config = AnalyzerConfig {
        http_addr: "127.0.0.1:0".parse()?,
        postgres: PgConfig {
            enabled: false,
            ..PgConfig::default()
        },
        ..bench_config()
    };
    let analyzer = config.build(dir, &Registry::new()).await?.start().await?;
    let url = format!("http://{}/api/v1/sql", analyzer.http_addr);
    let client = reqwest::Client::new();
    let count = sql(&client, &url, "SELECT count(*) AS n FROM spans").await?;
    let total = count["rows"][0]["n"].as_i64().unwrap_or(0);
    let files = parquet_files(&dir.join("spans"));
    let bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "dataset: {total} spans in {} Parquet files, {:.0} MiB",
        files.len(),
        bytes as f64 / (1 << 20) as f64
    );
    let slow = sql(
        &client,
        &url,
        "SELECT trace_id FROM spans WHERE kind = 'server' AND region = 'eu-west-1' \
         ORDER BY duration_ns DESC LIMIT 1",
    )
    .await?;
    let trace_id = slow["rows"][0]["trace_id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let questions = questions(&trace_id);

    let mut meridian = Vec::new();
    for q in &questions {
        let _ = sql(&client, &url, &q.meridian).await?; // warm-up: file metadata, page cache
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..runs {
            let started = Instant::now();
            let result = sql(&client, &url, &q.meridian).await?;
            times.push(started.elapsed());
            rows = result["rows"].as_array().map_or(0, Vec::len);
        }
        meridian.push((median(&mut times), rows));
    }
    analyzer.shutdown().await?;

    let duck = duckdb(python, script, &dir.join("spans"), &questions, runs)?;
    println!(
        "\n{:<52} {:>12} {:>12} {:>9} {:>6}",
        "question", "meridian ms", "duckdb ms", "ratio", "rows"
    );
    let mut ratios = Vec::new();
    for (i, q) in questions.iter().enumerate() {
        let (m, rows) = meridian[i];
        let (d, duck_rows) = duck[i];
        let ratio = m.as_secs_f64() / d.as_secs_f64();
        ratios.push(ratio);
        let rows = if rows == duck_rows {
            rows.to_string()
        } else {
            format!("{rows}≠{duck_rows}")
        };
        println!(
            "{:<52} {:>12.1} {:>12.1} {:>9.2} {:>6}",
            q.name,
            m.as_secs_f64() * 1e3,
            d.as_secs_f64() * 1e3,
            ratio,
            rows
        );
        let key = super::figures::key(q.name);
        figures.add(format!("{key}_meridian_ms"), m.as_secs_f64() * 1e3);
        figures.add(format!("{key}_ratio_vs_duckdb"), ratio);
    }
    let geomean = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
    println!("geometric mean ratio (meridian / duckdb): {geomean:.2}");
    figures.add("geomean_ratio_vs_duckdb", geomean);
    Ok(())
}

/// The analyzer settings of the benchmark: long timeout, no retention (the data is old).
fn bench_config() -> AnalyzerConfig {
    let mut config = AnalyzerConfig::default();
    config.query.timeout = Duration::from_secs(600);
    config.store.retention.spans = Duration::ZERO;
    config.store.flush_max_rows = 1_000_000;
    config
}

/// Ingests `spans` spans of demo traffic into a store in `dir`, flushes and compacts it.
async fn generate(spans: usize, dir: &Path) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let analyzer = bench_config().build(dir, &Registry::new()).await?;
    let store = analyzer.store();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    // ~1.9 spans a request: enough requests to pass `spans`, spread evenly over six hours.
    let requests_per_region = spans / REGIONS.len() * 10 / 19 + CHUNK;
    let step = SPAN_NS / requests_per_region as u64;
    let started = Instant::now();
    let (mut made, mut chunk) = (0usize, 0usize);
    while made < spans {
        for region in REGIONS {
            let first = START_NS + (chunk * CHUNK) as u64 * step;
            let hour = (first - START_NS) / 3_600_000_000_000;
            let minute = (first - START_NS) / 60_000_000_000 % 60;
            // The incident: eu-west-1, 03:00–03:30, slower and failing.
            let condition = if region == "eu-west-1" && hour == 3 && minute < 30 {
                Condition {
                    latency_factor: 4.0,
                    error_rate: 0.15,
                }
            } else {
                Condition {
                    latency_factor: 1.0,
                    error_rate: 0.0,
                }
            };
            let request = trace_request(region, CHUNK, first, step, condition, &mut rng);
            let converted = traces_to_arrow(&request, region)?;
            made += converted.batch.num_rows();
            loop {
                match store.insert(SignalBatch::new(Signal::Traces, converted.batch.clone())) {
                    Ok(()) => break,
                    Err(e) if e.is_retryable() => store.flush(Signal::Traces).await?,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        chunk += 1;
        if store.table(Signal::Traces).hot_rows() >= 1_000_000 {
            store.flush(Signal::Traces).await?;
        }
    }
    store.flush_all().await?;
    let generated = started.elapsed();
    let compacting = Instant::now();
    let done = store.maintain().await?;
    store.delete_retired(Duration::ZERO).await;
    println!(
        "generated {made} spans in {:.1}s; compaction merged {} files into {} in {:.1}s",
        generated.as_secs_f64(),
        done.compacted,
        done.written,
        compacting.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn sql(client: &reqwest::Client, url: &str, query: &str) -> anyhow::Result<Value> {
    let response = client
        .post(url)
        .json(&serde_json::json!({ "query": query }))
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await?;
    anyhow::ensure!(status.is_success(), "{query}: {status} {body}");
    Ok(body)
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                out.push(path);
            }
        }
    }
    out
}

/// Runs DuckDB's side (`script`, a Python file) over the same files.
fn duckdb(
    python: &str,
    script: &Path,
    spans_dir: &Path,
    questions: &[Question],
    runs: usize,
) -> anyhow::Result<Vec<(Duration, usize)>> {
    let job = serde_json::json!({
        "glob": format!("{}/**/*.parquet", spans_dir.display()),
        "queries": questions.iter().map(|q| q.duckdb.clone()).collect::<Vec<_>>(),
        "runs": runs,
    });
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| {
            format!(
                "running {python} {} (needs `pip install duckdb`)",
                script.display()
            )
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin.write_all(job.to_string().as_bytes())?;
    }
    let output = child.wait_with_output()?;
    anyhow::ensure!(output.status.success(), "the DuckDB script failed");
    let result: Value = serde_json::from_slice(&output.stdout)?;
    println!(
        "duckdb {} with {} threads",
        result["version"].as_str().unwrap_or("?"),
        result["threads"]
    );
    Ok(result["results"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    (
                        Duration::from_secs_f64(r[0].as_f64().unwrap_or(0.0)),
                        r[1].as_u64().unwrap_or(0) as usize,
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}
