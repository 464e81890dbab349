//! `meridian demo`, the README's main command, run for a few seconds.

use std::process::{Command, Stdio};

/// Scenario: the demo with an incident starting at +3 s, for 13 s, on free ports.
/// Guarantees: it exits 0 on its own, prints the live table for all three regions, and flags the
/// incident region; the SQL it prints for users works while it runs (checked via the same table).
#[test]
fn demo_runs_and_flags_the_incident() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .current_dir(dir.path())
        .args([
            "demo",
            "--duration",
            "13s",
            "--incident-after",
            "3s",
            "--refresh",
            "4s",
            "--otlp-grpc-addr",
            "127.0.0.1:0",
            "--otlp-http-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--pg-addr",
            "127.0.0.1:0",
        ])
        .env("MERIDIAN_LOG", "warn")
        .stderr(Stdio::inherit())
        .output()
        .expect("running the demo");
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
