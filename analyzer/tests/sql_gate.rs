//! The SQL read-only gate and the dialect rewrites under generated input: thousands of statements
//! made by mutating and splicing seeds — Grafana's queries, the rewrites' own cases, writes,
//! file reads, settings — each run through the HTTP API's path (`QueryEngine::query`: rewrite,
//! plan under the read-only options, run within the limits).
//!
//! Invariants: nothing panics; no error is the engine's fault when the statement is not a query
//! (writes are `Invalid`, never `Execution`); every accepted statement changed nothing — the
//! spans are all still there and no more, no table or file appeared, no file outside the store
//! was read; a rewrite of a statement that parses parses again. The generator is seeded, so a
//! failure names the seed and the statement to replay (`MERIDIAN_SQL_GATE_SEED`,
//! `MERIDIAN_SQL_GATE_CASES`).

mod common;

use std::time::Duration;

use arrow::array::AsArray;
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use meridian_analyzer::query::dialect::rewrite;
use meridian_analyzer::query::QueryConfig;
use meridian_analyzer::{AnalyzerConfig, QueryError};
use meridian_collector::{Signal, SignalBatch};
use opentelemetry_proto::tonic::trace::v1::Span;

const SPANS: i64 = 40;

/// Statements the mutations start from; `{dir}` is a directory nothing may be written to.
const SEEDS: &[&str] = &[
    "SELECT count(*) AS n FROM spans",
    "SELECT service_name, count(*) FROM spans WHERE time > now() - interval '1 hour' GROUP BY 1 ORDER BY 2 DESC LIMIT 10",
    "SELECT date_bin(interval '10 seconds', time) AS t, avg(duration_ns) FROM spans GROUP BY 1",
    "SELECT s[i] FROM generate_series(1, 2) AS i, string_to_array('a,b', ',') s",
    "SELECT CASE WHEN region IN (SELECT region FROM spans) THEN 1 ELSE 0 END FROM spans",
    "SELECT user, current_database(), version()",
    "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace",
    "SELECT table_name FROM information_schema.tables",
    "WITH x AS (SELECT name FROM spans) SELECT * FROM x UNION ALL SELECT 'a'",
    "SELECT * FROM red ORDER BY time DESC LIMIT 5",
    "INSERT INTO spans (name) VALUES ('x')",
    "DELETE FROM spans",
    "DROP TABLE spans",
    "UPDATE spans SET name = 'x'",
    "CREATE TABLE t AS SELECT * FROM spans",
    "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '{dir}/t.csv'",
    "COPY (SELECT * FROM spans) TO '{dir}/out.csv'",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SET datafusion.execution.batch_size = 1",
    "CREATE VIEW v AS SELECT 1",
    "TRUNCATE spans",
    "EXPLAIN ANALYZE SELECT count(*) FROM spans",
    "SELECT 1; DROP TABLE spans",
];

/// Fragments mutations insert.
const TOKENS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "(",
    ")",
    ",",
    ";",
    "'",
    "\"",
    "--",
    "/*",
    "*/",
    "*",
    "spans",
    "logs",
    "metrics",
    "red",
    "generate_series(1, 3)",
    "string_to_array('a', ',') s",
    "AS i",
    "IN (SELECT 1)",
    "CASE WHEN 1 IN (SELECT 1) THEN 1 END",
    "user",
    "UNION",
    "JOIN",
    "ON",
    "NULL",
    "::int",
    "[1]",
    "interval '1 day'",
    "now()",
    "DROP",
    "INSERT INTO",
    "COPY",
    "'/etc/passwd'",
    "LIMIT 1",
    "ORDER BY 1",
    "GROUP BY 1",
    "unnest(ARRAY[1,2])",
    "$1",
    "\\",
    "\u{0}",
    "é",
    "9999999999999999999999",
    "-1",
    "WITH RECURSIVE r AS (SELECT 1 UNION SELECT 1 FROM r) SELECT * FROM r",
];

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// One generated statement: a seed with up to three mutations.
fn generate(rng: &mut Rng, dir: &str) -> String {
    let mut sql = rng.pick(SEEDS).replace("{dir}", dir);
    for _ in 0..rng.below(4) {
        let at = floor_char_boundary(&sql, rng.below(sql.len() + 1));
        match rng.below(6) {
            0 => sql.insert_str(at, &format!(" {} ", rng.pick(TOKENS))),
            1 => {
                let end = floor_char_boundary(&sql, at + rng.below(12));
                sql.replace_range(at..end.max(at), "");
            }
            2 => {
                let other = rng.pick(SEEDS).replace("{dir}", dir);
                let cut = floor_char_boundary(&other, rng.below(other.len() + 1));
                sql = format!("{}{}", &sql[..at], &other[cut..]);
            }
            3 => sql = format!("SELECT * FROM ({sql}) AS sub"),
            4 => sql = format!("{sql}; {}", rng.pick(SEEDS).replace("{dir}", dir)),
            _ => sql = format!("WITH w AS ({sql}) SELECT * FROM w"),
        }
    }
    sql
}

fn floor_char_boundary(s: &str, mut at: usize) -> usize {
    at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Scenario: `MERIDIAN_SQL_GATE_CASES` (default 3,000) generated statements against an analyzer
/// holding 40 spans.
/// Guarantees: the invariants in the module comment, for every statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_sql_never_writes_reads_files_or_panics() {
    let dir = tempfile::tempdir().unwrap();
    let forbidden = tempfile::tempdir().unwrap();
    let forbidden_dir = forbidden.path().display().to_string();
    let config = AnalyzerConfig {
        query: QueryConfig {
            timeout: Duration::from_secs(1),
            max_result_rows: 100,
            memory_limit_bytes: 64 << 20,
            ..QueryConfig::default()
        },
        ..AnalyzerConfig::default()
    };
    let analyzer = config
        .build(dir.path(), &prometheus::Registry::new())
        .await
        .unwrap();
    let spans = (0..SPANS)
        .map(|k| Span {
            trace_id: vec![1; 16],
            span_id: (k as u64 + 1).to_be_bytes().to_vec(),
            name: format!("GET /{k}"),
            start_time_unix_nano: 1_700_000_000_000_000_000 + k as u64,
            end_time_unix_nano: 1_700_000_000_000_001_000 + k as u64,
            ..Default::default()
        })
        .collect();
    analyzer
        .store()
        .insert(SignalBatch::new(Signal::Traces, common::spans_batch(spans)))
        .unwrap();
    let engine = analyzer.engine();
    let spans_now = "SELECT count(*) AS n FROM spans";
    assert_eq!(common::count(&engine, spans_now).await, SPANS);
    let tables = "SELECT count(*) AS n FROM information_schema.tables";
    let tables_before = common::count(&engine, tables).await;
    let ctx = engine.session().clone();

    let seed = env_or("MERIDIAN_SQL_GATE_SEED", 0x5eed_2026);
    let cases = env_or("MERIDIAN_SQL_GATE_CASES", 3000);
    let mut rng = Rng(seed);
    let (mut accepted, mut invalid, mut other) = (0, 0, 0);
    for case in 0..cases {
        let sql = generate(&mut rng, &forbidden_dir);
        let replay = format!("seed {seed:#x}, case {case}: {sql:?}");
        // A rewrite keeps a statement that parses parseable.
        let rewritten = rewrite(&ctx, &sql);
        if rewritten != sql {
            assert!(
                Parser::parse_sql(&PostgreSqlDialect {}, &rewritten).is_ok(),
                "the rewrite of {replay} does not parse: {rewritten}"
            );
        }
        match engine.query(&sql).await {
            Ok(result) => {
                accepted += 1;
                for column in result.batches.iter().flat_map(|b| b.columns()) {
                    let Ok(text) = cast(column, &DataType::Utf8) else {
                        continue;
                    };
                    let leaked = text
                        .as_string::<i32>()
                        .iter()
                        .flatten()
                        .any(|v| v.contains("root:x:0:0"));
                    assert!(!leaked, "read /etc/passwd: {replay}");
                }
            }
            Err(QueryError::Invalid(_)) => invalid += 1,
            Err(QueryError::Execution(e)) => {
                let lower = sql.to_ascii_lowercase();
                for write in [
                    "insert ",
                    "delete ",
                    "drop ",
                    "update ",
                    "copy ",
                    "create ",
                    "truncate ",
                ] {
                    assert!(
                        !lower.trim_start().starts_with(write),
                        "a write reached execution ({e}): {replay}"
                    );
                }
                other += 1;
            }
            Err(QueryError::Timeout(_) | QueryError::TooLarge(_)) => other += 1,
        }
    }
    println!(
        "{cases} generated statements (seed {seed:#x}): {accepted} ran, {invalid} refused as \
         invalid, {other} failed while running or hit a limit"
    );
    assert!(
        accepted > cases / 20,
        "the generator hardly ever makes a valid query"
    );
    assert!(
        invalid > cases / 20,
        "the generator hardly ever makes an invalid one"
    );
    assert_eq!(
        common::count(&engine, spans_now).await,
        SPANS,
        "spans changed"
    );
    assert_eq!(
        common::count(&engine, tables).await,
        tables_before,
        "a table appeared"
    );
    let written: Vec<_> = std::fs::read_dir(forbidden.path()).unwrap().collect();
    assert!(written.is_empty(), "files written: {written:?}");
}
