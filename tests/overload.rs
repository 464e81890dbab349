//! Overload: sixteen senders as fast as they can for 30 s against `meridian standalone` with a
//! queue small enough to fill, and against `meridian collector` whose disk buffer fills because
//! its analyzer is down the whole time (started only afterwards). Every answer is 200 or a
//! retryable refusal with Retry-After; memory stays bounded; the backlog drains afterwards and
//! every span answered 200 is stored exactly once. (On two cores a load generator cannot outrun
//! the receivers by itself, so the refusals come from a full queue and a full buffer.)

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{count, span, traces, Meridian};
use prost::Message;

const SPANS_PER_REQUEST: u64 = 500;
const SENDERS: usize = 16;

fn blast_seconds() -> u64 {
    std::env::var("MERIDIAN_OVERLOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30)
}

struct Outcome {
    accepted: u64,
    refused: u64,
}

/// Sends the same request from `SENDERS` tasks for `seconds`; panics on any answer that is
/// neither 200 nor a retryable refusal with Retry-After.
async fn blast(url: String, seconds: u64) -> Outcome {
    let body = traces(
        "overload",
        (0..SPANS_PER_REQUEST)
            .map(|i| span("GET /api/orders", i))
            .collect(),
    )
    .encode_to_vec();
    let body = bytes::Bytes::from(body);
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let client = reqwest::Client::new();
    let tasks: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            let (accepted, refused) = (Arc::clone(&accepted), Arc::clone(&refused));
            tokio::spawn(async move {
                while Instant::now() < until {
                    let response = client
                        .post(&url)
                        .header("content-type", "application/x-protobuf")
                        .body(body.clone())
                        .send()
                        .await
                        .expect("the receiver stopped answering");
                    match response.status().as_u16() {
                        200 => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                        }
                        503 | 429 => {
                            assert!(response.headers().contains_key("retry-after"));
                            refused.fetch_add(1, Ordering::Relaxed);
                            // A client honouring Retry-After would wait a second; keep the
                            // pressure on instead, a little slower.
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        other => panic!("non-retryable answer {other} under overload"),
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    Outcome {
        accepted: accepted.load(Ordering::Relaxed),
        refused: refused.load(Ordering::Relaxed),
    }
}

async fn drained(api: std::net::SocketAddr, expected: i64) {
    let q = "SELECT count(*) AS n FROM spans WHERE service_name = 'overload'";
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let n = count(api, q).await;
        if n >= expected {
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert_eq!(
                count(api, q).await,
                expected,
                "more spans than were accepted"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{n} of {expected} accepted spans stored"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_gets_only_retryable_answers_and_loses_nothing() {
    let seconds = blast_seconds();

    // Standalone, with a queue small enough to fill.
    let dir = tempfile::tempdir().unwrap();
    let m = Meridian::start("standalone", dir.path(), &["--queue-capacity-rows", "2000"]);
    let outcome = blast(format!("{}/v1/traces", m.http_url()), seconds).await;
    println!(
        "standalone: {} requests accepted, {} refused in {seconds} s; peak RSS {} MiB",
        outcome.accepted,
        outcome.refused,
        m.peak_rss_kib() / 1024
    );
    assert!(
        outcome.accepted > 0 && outcome.refused > 0,
        "no overload reached"
    );
    drained(m.api, (outcome.accepted * SPANS_PER_REQUEST) as i64).await;
    let peak = m.peak_rss_kib() / 1024;
    assert!(peak < 3072, "standalone peak RSS {peak} MiB");
    m.terminate();

    // A collector with its disk buffer (16 MiB, so it fills), forwarding to an analyzer that
    // only starts once the blast is over.
    let analyzer_addr = format!("127.0.0.1:{}", common::reserved_port());
    let collector_dir = tempfile::tempdir().unwrap();
    let config = collector_dir.path().join("meridian.toml");
    std::fs::write(
        &config,
        format!(
            "[collector.network]\nurl = \"http://{analyzer_addr}\"\n[collector.forward]\nretry_max_backoff = \"1s\"\n"
        ),
    )
    .unwrap();
    let collector = Meridian::start(
        "collector",
        collector_dir.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--buffer-max-bytes",
            "16777216",
        ],
    );
    let outcome = blast(format!("{}/v1/traces", collector.http_url()), seconds).await;
    println!(
        "collector: {} requests accepted, {} refused in {seconds} s; peak RSS collector {} MiB",
        outcome.accepted,
        outcome.refused,
        collector.peak_rss_kib() / 1024,
    );
    assert!(
        outcome.accepted > 0 && outcome.refused > 0,
        "no overload reached"
    );
    let analyzer_dir = tempfile::tempdir().unwrap();
    let analyzer = Meridian::start_on("analyzer", analyzer_dir.path(), &analyzer_addr, &[]);
    drained(analyzer.api, (outcome.accepted * SPANS_PER_REQUEST) as i64).await;
    let peak = collector.peak_rss_kib() / 1024;
    assert!(peak < 1024, "collector peak RSS {peak} MiB");
    collector.terminate();
    analyzer.terminate();
}
