//! The PostgreSQL wire endpoint against real clients: a byte-exact replay of what Grafana's
//! PostgreSQL datasource sends (simple protocol), psql, tokio-postgres (simple and extended
//! protocols) and Python's psycopg 3. Run against `meridian standalone`.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::pgwire::{Msg, RawPg};
use common::{kv, post_protobuf, traces, wait_for_count, Meridian};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// 2024-01-01T00:00:00Z.
const T0: u64 = 1_704_067_200;
/// Spans in the fixture: one a second for two minutes.
const SPANS: u64 = 120;

/// Span `i`: starts at T0 + i s, lasts (i % 10 + 1) ms; odd spans are `/api/fail` with 500.
fn fixture_span(i: u64) -> Span {
    let start = (T0 + i) * 1_000_000_000;
    let fail = i % 2 == 1;
    let mut span = common::span("GET", i);
    span.start_time_unix_nano = start;
    span.end_time_unix_nano = start + (i % 10 + 1) * 1_000_000;
    span.attributes = vec![
        kv(
            "http.route",
            if fail { "/api/fail" } else { "/api/items/{id}" },
        ),
        kv("http.response.status_code", if fail { 500 } else { 200 }),
        kv("tenant", "acme"),
    ];
    span
}

/// A standalone Meridian holding the fixture; `args` are extra flags.
async fn meridian_with_fixture(args: &[&str]) -> (tempfile::TempDir, Meridian, SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec!["--region", "eu-test"];
    all.extend_from_slice(args);
    let m = Meridian::start("standalone", dir.path(), &all);
    let spans = (0..SPANS).map(fixture_span).collect();
    let body = traces("gateway", spans).encode_to_vec();
    assert!(post_protobuf(&m.http_url(), "/v1/traces", body)
        .await
        .status()
        .is_success());
    let stored = wait_for_count(
        m.api,
        "SELECT count(*) AS n FROM spans",
        SPANS as i64,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(stored, SPANS as i64);
    let pg =
        m.pg.expect("the standalone banner names the PostgreSQL address");
    (dir, m, pg)
}

fn single(rows: &[Vec<Option<String>>]) -> String {
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0][0].clone().unwrap_or_default()
}

/// What Grafana's search_path constraint expands to (postgresMetaQuery.ts).
const SCHEMA_CONSTRAINT: &str = r#"
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )"#;

/// Scenario: Grafana's PostgreSQL datasource, replayed byte for byte over the simple protocol:
/// connect, health check, config page, query builder metadata, then panel queries with the
/// macros expanded as Grafana expands them.
/// Guarantees: each answers as PostgreSQL would (EmptyQueryResponse for comment-only strings,
/// the first SELECT's rows after a SET, PostgreSQL type names, timestamps as
/// `2024-01-01 00:00:00+00`), so the stock datasource works unchanged.
#[tokio::test]
async fn grafana_datasource_replay() {
    let (_dir, _m, pg) = meridian_with_fixture(&[]).await;
    let mut c = RawPg::connect(
        pg,
        "grafana",
        "meridian",
        &[("client_encoding", "UTF8"), ("application_name", "grafana")],
    );

    // Startup parameters the drivers read.
    let p = &c.parameters;
    assert!(p["server_version"].starts_with("16."), "{p:?}");
    assert_eq!(p["server_encoding"], "UTF8");
    assert_eq!(p["client_encoding"], "UTF8");
    assert!(p["DateStyle"].starts_with("ISO"), "{p:?}");
    assert_eq!(p["TimeZone"], "UTC");
    assert_eq!(p["integer_datetimes"], "on");
    assert_eq!(p["standard_conforming_strings"], "on");

    // Health check and other empty strings.
    for empty in ["-- ping", ";", "", "  -- only a comment\n"] {
        assert_eq!(c.query(empty), vec![Msg::EmptyQuery], "{empty:?}");
    }

    // Multi-statement: the SET completes, the SELECT's rows follow.
    let messages = c.query("SET TIMEZONE TO 'UTC'; SELECT 1 AS one");
    assert!(
        messages.contains(&Msg::CommandComplete("SET".into())),
        "{messages:?}"
    );
    assert!(
        messages.contains(&Msg::DataRow(vec![Some("1".into())])),
        "{messages:?}"
    );

    // Config page.
    let (cols, rows) = c.rows("SELECT current_setting('server_version_num')::int/100 as version");
    assert_eq!(cols, ["version"]);
    assert_eq!(single(&rows), "1600");
    let (cols, rows) = c.rows("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'");
    assert_eq!(cols, ["extversion"]);
    assert!(rows.is_empty());

    // Query builder: schemas, tables (default and named schema), columns with their types.
    let (_, rows) = c.rows(
        "SELECT schema_name AS \"name\"
    FROM information_schema.schemata
    WHERE schema_name NOT IN ('information_schema',
                              'pg_catalog',
                              'pg_toast',
                              '_timescaledb_cache',
                              '_timescaledb_catalog',
                              '_timescaledb_internal',
                              '_timescaledb_config',
                              'timescaledb_information',
                              'timescaledb_experimental')
    ORDER BY schema_name",
    );
    assert_eq!(rows, vec![vec![Some("public".to_string())]]);
    let tables_query = format!(
        "SELECT
    CASE WHEN {SCHEMA_CONSTRAINT}
      THEN quote_ident(table_name)
      ELSE quote_ident(table_schema) || '.' || quote_ident(table_name)
    END AS \"table\"
    FROM information_schema.tables
    WHERE quote_ident(table_schema) NOT IN ('information_schema',
                             'pg_catalog',
                             '_timescaledb_cache',
                             '_timescaledb_catalog',
                             '_timescaledb_internal',
                             '_timescaledb_config',
                             'timescaledb_information',
                             'timescaledb_experimental')
    ORDER BY CASE WHEN {SCHEMA_CONSTRAINT} THEN 0 ELSE 1 END, 1"
    );
    let (cols, rows) = c.rows(&tables_query);
    assert_eq!(cols, ["table"]);
    let names: Vec<_> = rows.iter().map(|r| r[0].clone().unwrap()).collect();
    assert_eq!(
        names,
        [
            "alerts",
            "anomalies",
            "forecasts",
            "health",
            "logs",
            "metrics",
            "probes",
            "recommendations",
            "red",
            "spans"
        ],
        "tables on the search path, unqualified"
    );
    let (_, rows) = c.rows(
        "SELECT quote_ident(table_name) AS \"table\"
      FROM information_schema.tables
      WHERE quote_ident(table_schema) = 'public'
      ORDER BY 1",
    );
    assert_eq!(rows.len(), 10);
    let columns_query = format!(
        "SELECT quote_ident(column_name) AS \"column\", data_type AS \"type\"
    FROM information_schema.columns
    WHERE
      CASE WHEN array_length(parse_ident('spans'),1) = 2
        THEN quote_ident(table_schema) = (parse_ident('spans'))[1]
          AND quote_ident(table_name) = (parse_ident('spans'))[2]
        ELSE quote_ident(table_name) = 'spans'
          AND {SCHEMA_CONSTRAINT}
      END"
    );
    let (cols, rows) = c.rows(&columns_query);
    assert_eq!(cols, ["column", "type"]);
    let typed = |name: &str| {
        rows.iter()
            .find(|r| r[0].as_deref() == Some(name))
            .and_then(|r| r[1].clone())
            .unwrap_or_else(|| panic!("no column {name} in {rows:?}"))
    };
    assert_eq!(typed("time"), "timestamp with time zone");
    assert_eq!(typed("duration_ns"), "bigint");
    assert_eq!(typed("region"), "text");
    assert_eq!(typed("http_response_status_code"), "integer");
    // The same through the qualified form of the name.
    let qualified = columns_query.replace("'spans'", "'public.spans'");
    assert_eq!(c.rows(&qualified).1.len(), rows.len());
    // Array helpers the builder's queries lean on.
    let (_, rows) = c.rows(
        "SELECT array_length(string_to_array('a,b,c', ','), 1), \
         array_lower(string_to_array('a,b', ','), 1), array_upper(string_to_array('a,b', ','), 1), \
         (string_to_array(' x , y', ','))[2], trim(' z '), quote_ident('Mixed Case'), \
         (parse_ident('public.spans'))[2], user IS NOT NULL",
    );
    assert_eq!(
        rows[0],
        ["3", "1", "2", " y", "z", "\"Mixed Case\"", "spans", "t"]
            .iter()
            .map(|s| Some(s.to_string()))
            .collect::<Vec<_>>()
    );

    // $__timeFilter(time): string literals against a timestamp column.
    let (_, rows) = c.rows(
        "SELECT count(*) FROM spans WHERE time BETWEEN '2024-01-01T00:00:00Z' AND '2024-01-01T00:00:59Z'",
    );
    assert_eq!(single(&rows), "60");
    // $__unixEpochFilter(ts) on an epoch column.
    let (_, rows) = c.rows(
        "SELECT count(*) FROM (SELECT extract(epoch from time) AS ts FROM spans) t \
         WHERE ts >= 1704067200 AND ts <= 1704067229",
    );
    assert_eq!(single(&rows), "30");
    // $__timeGroupAlias(time,'1m') with a metric column: a multi-series panel.
    let (cols, rows) = c.rows(
        "SELECT floor(extract(epoch from time)/60)*60 AS \"time\", http_route AS metric, \
         count(*) AS value FROM spans \
         WHERE time BETWEEN '2024-01-01T00:00:00Z' AND '2024-01-01T00:02:00Z' \
         GROUP BY 1, 2 ORDER BY 1, 2",
    );
    assert_eq!(cols, ["time", "metric", "value"]);
    assert_eq!(rows.len(), 4, "{rows:?}");
    let first_bucket: f64 = rows[0][0].as_deref().unwrap().parse().unwrap();
    assert_eq!(first_bucket, T0 as f64);
    assert_eq!(rows[0][1].as_deref(), Some("/api/fail"));
    assert_eq!(rows[0][2].as_deref(), Some("30"));
    // $__timeGroup(time,'1m') as a bare expression, with an alias added by the panel.
    let (_, rows) = c.rows(
        "SELECT floor(extract(epoch from time)/60)*60 AS time_sec, count(*) FROM spans GROUP BY 1 ORDER BY 1",
    );
    assert_eq!(rows.len(), 2);
    // Timestamps in text, as PostgreSQL prints timestamptz in UTC.
    let (_, rows) = c.rows("SELECT time FROM spans ORDER BY time LIMIT 1");
    assert_eq!(single(&rows), "2024-01-01 00:00:00+00");

    // A bad query is an error, and the session carries on.
    let messages = c.query("SELECT nope FROM spans");
    assert!(
        matches!(&messages[0], Msg::Error { code, .. } if code.starts_with("42")),
        "{messages:?}"
    );
    assert_eq!(c.rows("SELECT 2").1, vec![vec![Some("2".into())]]);
}

/// Scenario: writes, DDL and engine settings over the wire.
/// Guarantees: refused with SQLSTATE 25006 and a message saying the endpoint is read-only;
/// nothing changes.
#[tokio::test]
async fn writes_are_refused_as_read_only() {
    let (_dir, m, pg) = meridian_with_fixture(&[]).await;
    let mut c = RawPg::connect(pg, "grafana", "meridian", &[]);
    for sql in [
        "INSERT INTO spans (region) VALUES ('x')",
        "CREATE TABLE t (a int)",
        "DROP TABLE spans",
        "COPY spans TO '/tmp/out.csv'",
        "SET datafusion.execution.batch_size = 1",
        "DELETE FROM spans",
    ] {
        let messages = c.query(sql);
        match &messages[..] {
            [Msg::Error { code, message }] => {
                assert_eq!(code, "25006", "{sql}: {message}");
                assert!(message.contains("read-only"), "{message}");
            }
            other => panic!("{sql}: {other:?}"),
        }
    }
    // Not PostgreSQL syntax at all: refused before planning.
    let messages = c.query("CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'");
    assert!(matches!(&messages[..], [Msg::Error { .. }]), "{messages:?}");
    assert_eq!(
        common::count(m.api, "SELECT count(*) AS n FROM spans").await,
        SPANS as i64
    );
}

/// Scenario: tokio-postgres over both protocols: `simple_query`, and prepared statements with
/// typed parameters and binary results.
/// Guarantees: the gateway questions answer with the right values and types; errors carry
/// their SQLSTATE.
#[tokio::test]
async fn tokio_postgres_simple_and_extended() {
    let (_dir, _m, pg) = meridian_with_fixture(&[]).await;
    let config = format!(
        "host={} port={} user=grafana dbname=meridian",
        pg.ip(),
        pg.port()
    );
    let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);

    // Simple protocol.
    let messages = client
        .simple_query("SELECT region, count(*) AS n FROM spans GROUP BY region")
        .await
        .unwrap();
    let row = messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .expect("a row");
    assert_eq!(row.get("region"), Some("eu-test"));
    assert_eq!(row.get("n"), Some("120"));

    // Extended protocol: parameters, binary decoding of bigint, double and timestamptz.
    let rows = client
        .query(
            "SELECT http_route, count(*) AS requests, \
             avg(CASE WHEN http_response_status_code >= 500 THEN 1.0 ELSE 0.0 END) AS error_rate, \
             min(time) AS first \
             FROM spans WHERE region = $1 AND duration_ns >= $2 GROUP BY http_route ORDER BY http_route",
            &[&"eu-test", &0i64],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let route: String = rows[0].get("http_route");
    let requests: i64 = rows[0].get("requests");
    let error_rate: f64 = rows[0].get("error_rate");
    let first: chrono::DateTime<chrono::Utc> = rows[0].get("first");
    assert_eq!(
        (route.as_str(), requests, error_rate),
        ("/api/fail", 60, 1.0)
    );
    assert_eq!(first.timestamp(), T0 as i64 + 1);
    let ok_rate: f64 = rows[1].get("error_rate");
    assert_eq!(ok_rate, 0.0);

    // A prepared statement runs again with other parameters.
    let statement = client
        .prepare("SELECT count(*) FROM spans WHERE http_route = $1")
        .await
        .unwrap();
    for (route, expected) in [("/api/fail", 60i64), ("/api/items/{id}", 60), ("/none", 0)] {
        let n: i64 = client
            .query_one(&statement, &[&route])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, expected, "{route}");
    }

    // Errors carry SQLSTATE.
    let e = client.query("DROP TABLE spans", &[]).await.unwrap_err();
    assert_eq!(
        e.code(),
        Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION)
    );
    let e = client
        .simple_query("SELECT * FROM nowhere")
        .await
        .unwrap_err();
    assert!(e.code().is_some(), "{e}");
}

/// Runs psql with `args`; returns (success, stdout, stderr).
fn psql(pg: SocketAddr, user: &str, password: Option<&str>, sql: &str) -> (bool, String, String) {
    let mut command = Command::new("psql");
    command
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .args(["-h", &pg.ip().to_string(), "-p", &pg.port().to_string()])
        .args(["-U", user, "-d", "meridian", "-c", sql])
        .env("PGCONNECT_TIMEOUT", "10");
    match password {
        Some(p) => command.env("PGPASSWORD", p),
        None => command.env_remove("PGPASSWORD"),
    };
    let out = command
        .output()
        .expect("psql is installed (scripts/install-test-deps.sh)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Scenario: psql runs the gateway questions of docs/sql.md; a configured user must log in
/// with the right password (SCRAM-SHA-256).
/// Guarantees: correct answers; a wrong or missing password is refused, the right one admitted.
#[tokio::test]
async fn psql_gateway_questions_and_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("meridian.toml");
    std::fs::write(
        &config,
        "[[analyzer.postgres.users]]\nname = \"grafana\"\npassword = \"s3cret\"\n\n\
         [[analyzer.postgres.users]]\nname = \"ops\"\npassword_env = \"MERIDIAN_TEST_OPS_PASSWORD\"\n",
    )
    .unwrap();
    std::env::set_var("MERIDIAN_TEST_OPS_PASSWORD", "from-env");
    let config = config.display().to_string();
    let (_data, _m, pg) = meridian_with_fixture(&["--config", &config]).await;

    let (ok, _, err) = psql(pg, "grafana", Some("wrong"), "SELECT 1");
    assert!(
        !ok && err.to_lowercase().contains("password"),
        "wrong password: {err}"
    );
    let (ok, _, err) = psql(pg, "intruder", Some("s3cret"), "SELECT 1");
    assert!(!ok, "unknown user admitted: {err}");
    let (ok, out, err) = psql(pg, "ops", Some("from-env"), "SELECT 1");
    assert!(ok && out.trim() == "1", "{err}");

    let ask = |sql: &str| {
        let (ok, out, err) = psql(pg, "grafana", Some("s3cret"), sql);
        assert!(ok, "{sql}\n{err}");
        out.trim().to_string()
    };
    // p99 latency by region per minute.
    let out = ask(
        "SELECT date_bin(INTERVAL '1 minute', time) AS minute, region, \
         approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ns) / 1e6 AS p99_ms \
         FROM spans GROUP BY 1, 2 ORDER BY 1",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("2024-01-01 00:00:00+00|eu-test|"),
        "{out}"
    );
    let p99: f64 = lines[0].rsplit('|').next().unwrap().parse().unwrap();
    assert!((9.0..=10.0).contains(&p99), "p99 of 1..10 ms: {p99}");
    // Error rate by route.
    let out = ask(
        "SELECT http_route, round(100.0 * avg(CASE WHEN http_response_status_code >= 500 THEN 1 ELSE 0 END), 1) \
         FROM spans GROUP BY 1 ORDER BY 1",
    );
    let rates: Vec<(String, f64)> = out
        .lines()
        .map(|l| {
            let (route, rate) = l.split_once('|').unwrap();
            (route.to_string(), rate.parse().unwrap())
        })
        .collect();
    assert_eq!(
        rates,
        [
            ("/api/fail".to_string(), 100.0),
            ("/api/items/{id}".to_string(), 0.0)
        ]
    );
    // Any attribute by key.
    assert_eq!(
        ask("SELECT count(*) FROM spans WHERE attributes['tenant'] = 'acme'"),
        "120"
    );
    // Read-only through psql too.
    let (ok, _, err) = psql(pg, "grafana", Some("s3cret"), "DROP TABLE spans");
    assert!(!ok && err.contains("read-only"), "{err}");
}

/// Scenario: TLS configured (a self-signed certificate made with openssl); psql connects with
/// `sslmode=require`.
/// Guarantees: the session is encrypted (psql's `\conninfo` says SSL) and answers queries.
#[tokio::test]
async fn psql_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let config = dir.path().join("meridian.toml");
    std::fs::write(
        &config,
        format!(
            "[analyzer.postgres]\ntls_cert = {:?}\ntls_key = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let (_data, _m, pg) = meridian_with_fixture(&["--config", &config]).await;
    let out = Command::new("psql")
        .arg(format!(
            "host={} port={} user=grafana dbname=meridian sslmode=require",
            pg.ip(),
            pg.port()
        ))
        .args([
            "-X",
            "-A",
            "-t",
            "-c",
            "SELECT count(*) FROM spans",
            "-c",
            "\\conninfo",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("120"), "{stdout}");
    assert!(stdout.contains("SSL connection"), "{stdout}");
}

/// Scenario: Python's psycopg 3 (libpq, extended protocol with server-side parameters, a
/// transaction opened implicitly, as psycopg does by default).
/// Guarantees: parameterised gateway queries answer correctly with Python types.
#[tokio::test]
async fn psycopg_runs_gateway_queries() {
    let python = std::env::var("MERIDIAN_PYTHON").unwrap_or_else(|_| {
        panic!("MERIDIAN_PYTHON is not set: run the tests through scripts/test.sh, or eval \"$(scripts/install-test-deps.sh)\"")
    });
    let (_dir, _m, pg) = meridian_with_fixture(&[]).await;
    let script = format!(
        r#"
import datetime, psycopg
with psycopg.connect(host="{host}", port={port}, user="grafana", dbname="meridian") as conn:
    assert conn.info.parameter_status("TimeZone") == "UTC"
    with conn.cursor() as cur:
        cur.execute("SELECT http_route, count(*) AS n, max(duration_ns) AS slowest FROM spans "
                    "WHERE region = %s AND time >= %s GROUP BY 1 ORDER BY 1",
                    ("eu-test", datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)))
        rows = cur.fetchall()
        assert rows == [("/api/fail", 60, 10_000_000), ("/api/items/{{id}}", 60, 9_000_000)], rows
        cur.execute("SELECT min(time) FROM spans")
        (first,) = cur.fetchone()
        assert first == datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc), first
        try:
            cur.execute("DELETE FROM spans")
            raise SystemExit("DELETE was accepted")
        except psycopg.errors.ReadOnlySqlTransaction:
            pass
print("ok")
"#,
        host = pg.ip(),
        port = pg.port()
    );
    let out = Command::new(python)
        .args(["-c", &script])
        .output()
        .expect("running python");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Scenario: a result over `max_result_rows`, and a query over the timeout, over the wire.
/// Guarantees: clear errors with SQLSTATE 54000 and 57014; the session keeps working.
#[tokio::test]
async fn limits_apply_over_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("meridian.toml");
    std::fs::write(
        &config,
        "[analyzer.query]\nmax_result_rows = 50\ntimeout = \"300ms\"\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let (_data, _m, pg) = meridian_with_fixture(&["--config", &config]).await;
    let mut c = RawPg::connect(pg, "grafana", "meridian", &[]);
    let messages = c.query("SELECT span_id FROM spans");
    let error = messages.iter().find_map(|m| match m {
        Msg::Error { code, message } => Some((code.clone(), message.clone())),
        _ => None,
    });
    let (code, message) = error.expect("an error for too many rows");
    assert_eq!(code, "54000");
    assert!(message.contains("max_result_rows"), "{message}");
    assert_eq!(
        c.rows("SELECT count(*) FROM spans").1[0][0].as_deref(),
        Some("120")
    );
    let messages = c.query("SELECT count(*) FROM generate_series(1, 10000000000) a");
    assert!(
        matches!(&messages[..], [.., Msg::Error { code, .. }] if code == "57014"),
        "{messages:?}"
    );
    assert_eq!(c.rows("SELECT 1").1.len(), 1);
}

/// Scenario: a client sets `statement_timeout` below the configured timeout (30 s default).
/// Guarantees: the session's own limit applies: a long query fails with 57014 within it.
#[tokio::test]
async fn statement_timeout_of_the_session_applies() {
    let (_dir, _m, pg) = meridian_with_fixture(&[]).await;
    let mut c = RawPg::connect(pg, "grafana", "meridian", &[]);
    assert!(c
        .query("SET statement_timeout = '200ms'")
        .contains(&Msg::CommandComplete("SET".into())));
    let started = std::time::Instant::now();
    let messages = c.query("SELECT count(*) FROM generate_series(1, 10000000000) a");
    assert!(
        matches!(&messages[..], [.., Msg::Error { code, .. }] if code == "57014"),
        "{messages:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}
