//! `meridian detect` and `meridian evaluate nab` as a user runs them.

use std::path::Path;
use std::process::Command;

fn meridian(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(args)
        .env_remove("MERIDIAN_CONFIG")
        .output()
        .expect("running meridian")
}

/// A 5-minute series of `n` rows with a spike at row `spike`.
fn write_series(path: &Path, n: usize, spike: usize) {
    let mut text = String::from("timestamp,value\n");
    for i in 0..n {
        let t = chrono::DateTime::from_timestamp(1_400_000_000 + i as i64 * 300, 0).unwrap();
        let v = 50.0 + ((i * 7919) % 11) as f64 + if i == spike { 400.0 } else { 0.0 };
        text.push_str(&format!("{},{v}\n", t.format("%Y-%m-%d %H:%M:%S")));
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn read_output(path: &Path) -> (Vec<String>, Vec<f64>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect();
    let scores = lines
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    (header, scores)
}

/// Scenario: one file, then a directory tree of files.
/// Guarantees: one output row per input row with `timestamp,value,anomaly_score`, scores in
/// [0, 1], the spike scored highest; a directory is mirrored file by file.
#[test]
fn detect_scores_files_and_trees() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in/a/cpu.csv");
    write_series(&input, 1500, 1200);
    write_series(&dir.path().join("in/b/latency.csv"), 800, 700);
    let out = dir.path().join("cpu-scored.csv");
    let run = meridian(&[
        "detect",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let (header, scores) = read_output(&out);
    assert_eq!(header, ["timestamp", "value", "anomaly_score"]);
    assert_eq!(scores.len(), 1500);
    assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)));
    let top = scores
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap();
    assert_eq!(top.0, 1200, "the spike is the top score");

    let run = meridian(&[
        "detect",
        "--input",
        dir.path().join("in").to_str().unwrap(),
        "--output",
        dir.path().join("out").to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(read_output(&dir.path().join("out/a/cpu.csv")).1, scores);
    assert_eq!(
        read_output(&dir.path().join("out/b/latency.csv")).1.len(),
        800
    );
}

/// Scenario: a file without the header, and one with a value that is not a number.
/// Guarantees: exit status non-zero and a message naming the file and line.
#[test]
fn detect_explains_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let no_header = dir.path().join("h.csv");
    std::fs::write(&no_header, "time,v\n2024-01-01 00:00:00,1\n").unwrap();
    let bad_value = dir.path().join("v.csv");
    std::fs::write(
        &bad_value,
        "timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:05:00,high\n",
    )
    .unwrap();
    for (file, expected) in [(&no_header, "timestamp"), (&bad_value, "v.csv:3")] {
        let out = dir.path().join("o.csv");
        let run = meridian(&[
            "detect",
            "--input",
            file.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ]);
        assert!(!run.status.success());
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.contains(expected), "{stderr}");
    }
}

/// The NAB corpus `scripts/install-test-deps.sh` found (`MERIDIAN_NAB_DIR`).
fn nab_dir() -> String {
    std::env::var("MERIDIAN_NAB_DIR").unwrap_or_else(|_| {
        panic!("MERIDIAN_NAB_DIR is not set: run the tests through scripts/test.sh (it looks for ../shared/nab)")
    })
}

/// Scenario: the scorer run on NAB's published Numenta HTM results.
/// Guarantees: it reproduces NAB's reference row (standard 66.69, raw 24.0375 at θ 0.581621;
/// low FP 60.01; low FN 71.06), so the scorer implements NAB's rules.
#[test]
fn nab_scorer_reproduces_the_numenta_reference() {
    let nab = nab_dir();
    let reference = format!("{nab}/reference/numenta");
    let run = meridian(&["evaluate", "nab", "--data", &nab, "--scores", &reference]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("standard                66.69    24.0375   0.581621"),
        "{stdout}"
    );
    assert!(stdout.contains("reward_low_FP_rate      60.01"), "{stdout}");
    assert!(stdout.contains("reward_low_FN_rate      71.06"), "{stdout}");
}

/// Scenario: Meridian's detector with default settings over the NAB corpus.
/// Guarantees: the standard score stays at or above 65 (the floor; measured 67.01).
#[test]
fn nab_standard_score_is_at_least_65() {
    let nab = nab_dir();
    let run = meridian(&["evaluate", "nab", "--data", &nab]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let standard: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("standard"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("a standard score line");
    assert!(standard >= 65.0, "{stdout}");
}

/// Scenario: `meridian forecast` with a rolling origin over a noisy daily-seasonal 5-minute
/// series (ten days).
/// Guarantees: one row per origin and step with the documented columns; once calibrated, the
/// intervals nest (95% around 80% around the forecast); the summary beats the naive forecast
/// and covers about 95% with the 95% interval.
#[test]
fn forecast_rolls_the_origin_and_calibrates_intervals() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("rate.csv");
    let mut text = String::from("timestamp,value\n");
    for i in 0..2880 {
        let t = 1_400_000_000 + i * 300;
        let phase = (i % 288) as f64 / 288.0 * std::f64::consts::TAU;
        let noise = ((i * 7919) % 13) as f64 - 6.0;
        text.push_str(&format!("{t},{}\n", 200.0 + 80.0 * phase.sin() + noise));
    }
    std::fs::write(&input, text).unwrap();
    let out = dir.path().join("forecast.csv");
    let run = meridian(&[
        "forecast",
        "--input",
        input.to_str().unwrap(),
        "--horizon",
        "6",
        "--output",
        out.to_str().unwrap(),
        "--every",
        "24",
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "origin,timestamp,step,actual,forecast,lower_80,upper_80,lower_95,upper_95,naive,seasonal_naive"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    // Origins from two days (576) on, every 24 points, 6 steps each.
    assert_eq!(rows.len(), (576..2880).step_by(24).count() * 6);
    let calibrated: Vec<[f64; 5]> = rows
        .iter()
        .filter(|r| !r[5].is_empty())
        .map(|r| [4, 5, 6, 7, 8].map(|i| r[i].parse::<f64>().unwrap()))
        .collect();
    assert!(calibrated.len() > rows.len() / 2);
    for [f, l80, u80, l95, u95] in &calibrated {
        assert!(l95 <= l80 && l80 <= f && f <= u80 && u80 <= u95);
    }
    // The summary line: MASE, model, naive, snaive, cov80, cov95.
    let summary: Vec<f64> = stdout
        .lines()
        .find(|l| l.contains("rate.csv"))
        .unwrap()
        .split_whitespace()
        .skip(2)
        .take(6)
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(summary[0] < summary[2], "beats naive: {stdout}");
    assert!((0.85..=1.0).contains(&summary[5]), "95% coverage: {stdout}");
}
