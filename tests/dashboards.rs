//! What people look at: the Grafana dashboards in `dashboards/` (validated against Grafana's
//! own types; every query run over the PostgreSQL wire as Grafana would send it) and the
//! analyzer's console (loaded in headless Chromium during a demo run).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use common::KillOnDrop;

const DASHBOARDS: [&str; 4] = [
    "meridian-overview.json",
    "meridian-drilldown.json",
    "meridian-traces.json",
    "meridian-self.json",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dashboard(name: &str) -> Value {
    let text = std::fs::read_to_string(repo().join("dashboards").join(name)).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The tool directory `scripts/install-test-deps.sh` fills (npm packages).
fn js_dir() -> String {
    std::env::var("MERIDIAN_JS_DIR").unwrap_or_else(|_| {
        panic!("MERIDIAN_JS_DIR is not set: run the tests with scripts/test.sh, which installs @grafana/schema, ajv and playwright-core")
    })
}

fn node(script: &str, args: &[&str]) -> Value {
    let output = Command::new("node")
        .arg(repo().join("tests/js").join(script))
        .args(args)
        .env("MERIDIAN_JS_DIR", js_dir())
        .stderr(Stdio::inherit())
        .output()
        .expect("running node");
    assert!(output.status.success(), "{script} failed: {output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{script}: {e}: {stdout}"))
}

/// Scenario: the four dashboards, then a copy of one with a misspelt panel field and a stat
/// option of the wrong type.
/// Guarantees: the shipped dashboards validate against the JSON Schema generated from
/// `@grafana/schema`'s Dashboard type and each panel plugin's options; the damaged copy does
/// not (the check can fail); the provisioning files point the dashboards' datasource at
/// Grafana's stock PostgreSQL datasource with the uid the dashboards default to.
#[test]
fn dashboards_validate_against_grafana_types() {
    let files: Vec<String> = DASHBOARDS
        .iter()
        .map(|d| repo().join("dashboards").join(d).display().to_string())
        .collect();
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    let verdict = node("validate-dashboards.cjs", &args);
    assert_eq!(verdict["checked"], 4);
    assert_eq!(verdict["errors"], serde_json::json!([]), "{verdict:#}");

    let mut damaged = dashboard("meridian-overview.json");
    damaged["panels"][0]["titel"] = "typo".into();
    damaged["panels"][0]["options"]["colorMode"] = 3.into();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.json");
    std::fs::write(&path, damaged.to_string()).unwrap();
    let verdict = node("validate-dashboards.cjs", &[path.to_str().unwrap()]);
    let errors = verdict["errors"].to_string();
    assert!(errors.contains("titel"), "{errors}");
    assert!(errors.contains("colorMode"), "{errors}");

    let datasource =
        std::fs::read_to_string(repo().join("dashboards/provisioning/datasources/meridian.yaml"))
            .unwrap();
    assert!(datasource.contains("type: grafana-postgresql-datasource"));
    assert!(datasource.contains("uid: meridian"));
    let provider =
        std::fs::read_to_string(repo().join("dashboards/provisioning/dashboards/meridian.yaml"))
            .unwrap();
    assert!(provider.contains("type: file"));
    for name in DASHBOARDS {
        let d = dashboard(name);
        let ds = &d["templating"]["list"][0];
        assert_eq!(ds["type"], "datasource", "{name}");
        assert_eq!(ds["query"], "grafana-postgresql-datasource", "{name}");
        assert_eq!(ds["current"]["value"], "meridian", "{name}");
        assert!(d["uid"]
            .as_str()
            .is_some_and(|u| u.starts_with("meridian-")));
    }
}

/// One query of a dashboard: where it comes from, and its SQL before expansion.
struct Query {
    place: String,
    sql: String,
}

/// Every SQL a dashboard sends: template variables first (in order), then the panels' targets
/// and the annotations.
fn queries(d: &Value) -> (Vec<(String, String)>, Vec<Query>) {
    let mut variables = Vec::new();
    for v in d["templating"]["list"].as_array().unwrap() {
        if v["type"] == "query" {
            variables.push((
                v["name"].as_str().unwrap().to_owned(),
                v["query"].as_str().unwrap().to_owned(),
            ));
        }
    }
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            out.push(Query {
                place: format!("panel '{}' {}", p["title"].as_str().unwrap(), t["refId"]),
                sql: t["rawSql"].as_str().unwrap().to_owned(),
            });
        }
    }
    for a in d["annotations"]["list"].as_array().unwrap() {
        if let Some(sql) = a["target"]["rawSql"].as_str() {
            out.push(Query {
                place: format!("annotation '{}'", a["name"].as_str().unwrap()),
                sql: sql.to_owned(),
            });
        }
    }
    (variables, out)
}

/// Grafana's time range and interval for one dashboard load.
struct Range {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    interval_s: u64,
}

/// A multi-value variable as Grafana's SQL datasources format it: quoted, comma-separated.
fn sql_values(values: &[String]) -> String {
    values
        .iter()
        .map(|v| format!("'{}'", v.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(",")
}

/// The SQL as Grafana sends it: dashboard and global variables interpolated by the frontend,
/// then the PostgreSQL datasource's macros (pkg/tsdb/grafana-postgresql-datasource/macros.go).
fn expand(sql: &str, vars: &BTreeMap<String, String>, range: &Range) -> String {
    let mut s = sql
        .replace("$__interval_ms", &(range.interval_s * 1000).to_string())
        .replace("$__interval", &format!("{}s", range.interval_s))
        .replace(
            "$__range_s",
            &(range.to - range.from).num_seconds().to_string(),
        );
    // Longest names first, so `$route` never eats part of a longer name.
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for name in names {
        s = s.replace(&format!("${{{name}}}"), &vars[name]);
        s = s.replace(&format!("${name}"), &vars[name]);
    }
    let rfc = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    let mut out = String::new();
    let mut rest = s.as_str();
    while let Some(at) = rest.find("$__") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 3..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let (name, tail) = after.split_at(name_len);
        let Some(args_end) = tail.strip_prefix('(').and_then(|t| t.find(')')) else {
            panic!("unexpanded $__{name} in {sql}");
        };
        let args: Vec<&str> = tail[1..1 + args_end].split(',').map(str::trim).collect();
        let tail_after = &tail[args_end + 2..];
        let seconds = |arg: &str| -> f64 {
            let arg = arg.trim_matches('\'');
            humantime::parse_duration(arg)
                .unwrap_or_else(|e| panic!("interval {arg}: {e}"))
                .as_secs_f64()
        };
        let group = |col: &str, arg: &str| {
            let secs = seconds(arg);
            format!("floor(extract(epoch from {col})/{secs})*{secs}")
        };
        let expanded = match name {
            "time" => format!("{} AS \"time\"", args[0]),
            "timeEpoch" => format!("extract(epoch from {}) as \"time\"", args[0]),
            "timeFilter" => format!(
                "{} BETWEEN '{}' AND '{}'",
                args[0],
                rfc(range.from),
                rfc(range.to)
            ),
            "timeFrom" => format!("'{}'", rfc(range.from)),
            "timeTo" => format!("'{}'", rfc(range.to)),
            "timeGroup" if tail_after.starts_with(',') => {
                format!("{} AS \"time\"", group(args[0], args[1]))
            }
            "timeGroup" => group(args[0], args[1]),
            "timeGroupAlias" => format!("{} AS \"time\"", group(args[0], args[1])),
            "unixEpochFilter" => format!(
                "{c} >= {} AND {c} <= {}",
                range.from.timestamp(),
                range.to.timestamp(),
                c = args[0]
            ),
            other => panic!("macro $__{other} is not one Grafana's PostgreSQL datasource has"),
        };
        out.push_str(&expanded);
        rest = tail_after;
    }
    out.push_str(rest);
    out
}

/// Rows of a simple query, each as column → text.
async fn pg_rows(
    client: &tokio_postgres::Client,
    sql: &str,
) -> Result<Vec<BTreeMap<String, Option<String>>>, String> {
    let messages = client
        .simple_query(sql)
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                r.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.name().to_owned(), r.get(i).map(str::to_owned)))
                    .collect(),
            ),
            _ => None,
        })
        .collect())
}

/// Grafana's relative range, `now-1h` / `now+1h` / `now`.
fn relative(now: DateTime<Utc>, spec: &str) -> DateTime<Utc> {
    let offset = spec.strip_prefix("now").unwrap();
    if offset.is_empty() {
        return now;
    }
    let d = chrono::Duration::from_std(humantime::parse_duration(&offset[1..]).unwrap()).unwrap();
    if offset.starts_with('-') {
        now - d
    } else {
        now + d
    }
}

/// Runs every query of `name` as Grafana would on a dashboard load now; returns the failures
/// (errors, empty answers, answers with no value) and the number of queries run.
async fn run_dashboard(client: &tokio_postgres::Client, name: &str) -> (Vec<String>, usize) {
    let d = dashboard(name);
    let now = Utc::now();
    let range = Range {
        from: relative(now, d["time"]["from"].as_str().unwrap()),
        to: relative(now, d["time"]["to"].as_str().unwrap()),
        interval_s: 10,
    };
    let (variables, panels) = queries(&d);
    let mut vars = BTreeMap::new();
    let mut failures = Vec::new();
    for (var, sql) in &variables {
        let sql = expand(sql, &vars, &range);
        match pg_rows(client, &sql).await {
            Ok(rows) if !rows.is_empty() => {
                let values: Vec<String> = rows
                    .iter()
                    .filter_map(|r| r.values().next().cloned().flatten())
                    .collect();
                vars.insert(var.clone(), sql_values(&values));
            }
            Ok(_) => failures.push(format!("{name}: variable {var} has no values: {sql}")),
            Err(e) => failures.push(format!("{name}: variable {var}: {e}: {sql}")),
        }
    }
    // The traces dashboard's trace id: one a person would click in "Failing traces".
    if name == "meridian-traces.json" {
        vars.insert("trace_id".into(), String::new());
        let failing = panels
            .iter()
            .find(|q| q.place.contains("Failing traces"))
            .unwrap();
        let rows = pg_rows(client, &expand(&failing.sql, &vars, &range))
            .await
            .unwrap_or_default();
        let id = rows
            .first()
            .and_then(|r| r["trace_id"].clone())
            .unwrap_or_default();
        vars.insert("trace_id".into(), id);
    }
    for q in &panels {
        let sql = expand(&q.sql, &vars, &range);
        // Rows, and a value in them: a NULL in every value column would draw nothing.
        let valued = |row: &BTreeMap<String, Option<String>>| {
            row.iter()
                .any(|(column, v)| !matches!(column.as_str(), "time" | "metric") && v.is_some())
        };
        match pg_rows(client, &sql).await {
            Ok(rows) if rows.is_empty() => {
                failures.push(format!("{name}: {} returned no rows: {sql}", q.place))
            }
            Ok(rows) if !rows.iter().any(valued) => {
                failures.push(format!("{name}: {} returned only NULLs: {sql}", q.place))
            }
            Ok(_) => {}
            Err(e) => failures.push(format!("{name}: {}: {e}\n  {sql}", q.place)),
        }
    }
    (failures, panels.len() + variables.len())
}

/// `value` after `prefix` in the first line of `lines` that has it, up to whitespace or `/`.
fn printed(lines: &Mutex<Vec<String>>, prefix: &str) -> Option<String> {
    lines.lock().unwrap().iter().find_map(|l| {
        l.find(prefix).map(|at| {
            l[at + prefix.len()..]
                .split(|c: char| c.is_whitespace() || c == '/')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
    })
}

/// Scenario: `meridian demo` with 30 minutes of history and eu-west-1's incident from +20 s
/// for 70 s; once the incident has an anomaly and a recommendation, Chromium loads the console
/// and every dashboard's queries run over the PostgreSQL wire with Grafana's expansion.
/// Guarantees: the demo prints the console's address first; the console shows the three
/// regions, eu-west-1's critical anomalies and its failover recommendation, runs SQL from its
/// box, with no console or network error (screenshot saved); every variable, panel query and
/// annotation of the four dashboards runs and returns rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_and_every_dashboard_query_show_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .current_dir(dir.path())
        .args(common::loopback_ports("127.0.0.1:0"))
        .args([
            "demo",
            "--history",
            "30m",
            "--duration",
            "180s",
            "--incident-after",
            "20s",
            "--incident-for",
            "70s",
        ])
        .env("MERIDIAN_LOG", "warn")
        .env_remove("MERIDIAN_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting the demo");
    let lines = common::collect_lines(demo.stdout.take().unwrap());
    let demo = KillOnDrop(demo);
    let started = Instant::now();
    let (console, pg) = loop {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the demo printed no addresses"
        );
        let console = printed(&lines, "Meridian console: http://");
        let pg_host = printed(&lines, "psql -h ");
        if let (Some(console), Some(_)) = (console, pg_host) {
            let port = printed(&lines, " -p ").unwrap();
            break (console, format!("127.0.0.1:{port}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let first = lines.lock().unwrap()[0].clone();
    assert!(
        first.starts_with("Meridian console: http://"),
        "the console is not the first line: {first}"
    );
    let api: std::net::SocketAddr = console.parse().unwrap();

    // The incident is found and acted on.
    let ready = Instant::now();
    loop {
        assert!(
            ready.elapsed() < Duration::from_secs(240),
            "no anomaly and failover for eu-west-1"
        );
        let anomalies = common::count(
            api,
            "SELECT count(*) AS n FROM anomalies WHERE region = 'eu-west-1' AND severity = 'critical'",
        )
        .await;
        let failovers = common::count(
            api,
            "SELECT count(*) AS n FROM recommendations WHERE region = 'eu-west-1' AND kind = 'failover'",
        )
        .await;
        if anomalies > 0 && failovers > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console.png");
    let seen = node(
        "console-check.cjs",
        &[
            &format!("http://{console}/"),
            screenshot.to_str().unwrap(),
            "eu-west-1",
            "60",
        ],
    );
    println!("console: {seen}");
    println!("screenshot: {}", screenshot.display());
    assert_eq!(
        seen["regions"],
        serde_json::json!(["ap-southeast-2", "eu-west-1", "us-east-1"])
    );
    assert!(seen["critical_in_incident"].as_u64().unwrap() > 0, "{seen}");
    assert!(
        seen["recommendations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "failover eu-west-1"),
        "{seen}"
    );
    assert!(seen["charts"].as_u64().unwrap() >= 4, "{seen}");
    assert_eq!(seen["sql_rows"], 3, "{seen}");
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 10_000);

    // Every dashboard query, as Grafana sends it, over the PostgreSQL wire.
    let (client, connection) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=grafana dbname=meridian",
            pg.rsplit(':').next().unwrap()
        ),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connecting over the PostgreSQL wire");
    tokio::spawn(connection);
    // The pipeline's own reports arrive every 15 s; a failure is retried until then.
    let mut failures = Vec::new();
    let mut total = 0;
    let deadline = Instant::now() + Duration::from_secs(45);
    while Instant::now() < deadline {
        failures.clear();
        total = 0;
        for name in DASHBOARDS {
            let (f, n) = run_dashboard(&client, name).await;
            failures.extend(f);
            total += n;
        }
        if failures.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    assert!(
        failures.is_empty(),
        "{} of {total} dashboard queries failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!("{total} dashboard queries ran and returned rows");
    drop(demo);
}
