//! `meridian demo`, the README's main command: its live table, and the scripted incident found
//! by the analyzer's detectors in the RED series, stored in `anomalies` next to `red` and
//! `forecasts`.

mod common;

use std::process::{Command, Output, Stdio};

use common::{count, loopback_ports, sql, Meridian};

fn demo(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meridian"))
        .current_dir(dir)
        .arg("demo")
        .args(args)
        .args(loopback_ports("127.0.0.1:0"))
        .env("MERIDIAN_LOG", "warn")
        .env_remove("MERIDIAN_CONFIG")
        .stderr(Stdio::inherit())
        .output()
        .expect("running the demo")
}

/// Scenario: the demo without history, an incident starting at +3 s, for 13 s, on free ports.
/// Guarantees: it exits 0 on its own, prints the live table for all three regions, and flags the
/// incident region; the SQL it prints for users works while it runs (checked via the same table).
#[test]
fn demo_runs_and_flags_the_incident() {
    let dir = tempfile::tempdir().unwrap();
    let output = demo(
        dir.path(),
        &[
            "--duration",
            "13s",
            "--history",
            "0s",
            "--incident-after",
            "3s",
            "--refresh",
            "4s",
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "demo failed:\n{stdout}");
    for region in ["us-east-1", "eu-west-1", "ap-southeast-2"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.trim_start().starts_with(region) && l.contains('.')),
            "no row for {region}:\n{stdout}"
        );
    }
    assert!(
        stdout
            .lines()
            .any(|l| l.trim_start().starts_with("eu-west-1") && l.ends_with('⚠')),
        "the incident was not flagged:\n{stdout}"
    );
    assert!(
        !stdout
            .lines()
            .any(|l| l.trim_start().starts_with("us-east-1") && l.ends_with('⚠')),
        "false alarm:\n{stdout}"
    );
    assert!(
        dir.path().join("meridian-data/spans").exists(),
        "no data written"
    );
}

/// Scenario: the demo with 30 minutes of generated history, the incident (eu-west-1 six times
/// slower, a quarter of requests failing) at +30 s for 40 s, 10 s RED intervals; afterwards
/// `meridian standalone` serves the same data directory.
/// Guarantees: the live output shows an eu-west-1 anomaly in the incident's first or second
/// interval and no critical anomaly elsewhere during it; `red`, `anomalies` and `forecasts` are
/// queryable by SQL, the anomaly rows carry score, expected value, band, severity and
/// detector, and the forecasts carry 80% and 95% intervals at 15, 30 and 60 minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incident_is_detected_live_within_two_intervals() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap().to_owned();
    let output = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || {
            demo(
                &dir,
                &[
                    "--data-dir",
                    &data_arg,
                    "--duration",
                    "75s",
                    "--history",
                    "30m",
                    "--incident-after",
                    "30s",
                    "--incident-for",
                    "40s",
                    "--refresh",
                    "5s",
                ],
            )
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "demo failed:\n{stdout}");
    let anomaly_lines: Vec<&str> = stdout.lines().filter(|l| l.contains("anomaly  ")).collect();
    let early = |l: &&str| {
        l.contains("eu-west-1")
            && (l.contains("interval 0 after the incident's onset")
                || l.contains("interval 1 after the incident's onset"))
    };
    assert!(
        anomaly_lines.iter().any(early),
        "no eu-west-1 anomaly within two intervals of the onset:\n{stdout}"
    );
    let blamed_elsewhere = anomaly_lines.iter().any(|l| {
        l.contains("critical")
            && !l.contains("eu-west-1")
            && l.contains("after the incident's onset")
    });
    assert!(!blamed_elsewhere, "a healthy region was blamed:\n{stdout}");

    let meridian = Meridian::start("standalone", &data, &[]);
    let api = meridian.api;
    assert!(count(api, "SELECT count(*) AS n FROM red").await > 500);
    let rows = sql(
        api,
        "SELECT region, metric, score, expected, lower, upper, severity, detector \
         FROM anomalies WHERE region = 'eu-west-1' ORDER BY score DESC LIMIT 1",
    )
    .await;
    let top = rows.first().expect("no eu-west-1 anomaly stored");
    assert!(top["score"].as_f64().unwrap() >= 0.8, "{top}");
    // One interval is only a warning, however strong: critical needs the deviation sustained.
    assert!(
        count(
            api,
            "SELECT count(*) AS n FROM anomalies WHERE region = 'eu-west-1' AND severity = 'critical'",
        )
        .await
            > 0,
        "the sustained incident reached critical"
    );
    assert!(top["lower"].as_f64().unwrap() <= top["expected"].as_f64().unwrap());
    assert!(!top["detector"].as_str().unwrap().is_empty());
    let horizons = sql(
        api,
        "SELECT DISTINCT horizon_s FROM forecasts WHERE lower_95 <= lower_80 \
         AND lower_80 <= forecast AND forecast <= upper_80 AND upper_80 <= upper_95 \
         ORDER BY horizon_s",
    )
    .await;
    let horizons: Vec<i64> = horizons
        .iter()
        .map(|r| r["horizon_s"].as_i64().unwrap())
        .collect();
    assert_eq!(horizons, vec![900, 1800, 3600]);
    meridian.terminate();
}
