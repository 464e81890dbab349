//! Overload: ten times the rate a process sustains, for 60 s, against `meridian standalone`
//! with a memory limit and against `meridian collector` whose disk buffer fills because its
//! analyzer is down the whole time (started only afterwards). Every answer is 200 or a
//! retryable refusal with Retry-After; resident memory stays within the limit plus 10%; the
//! backlog drains afterwards and every span answered 200 is stored exactly once.
//!
//! The load is open-loop: requests leave on schedule whatever happened to the ones before, as
//! a fleet of gateways' exporters would, so refusals do not slow the offered rate down.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{count, metric_sum, span, traces, Meridian};
use prost::Message;
use tokio::sync::Semaphore;

const SPANS_PER_REQUEST: u64 = 500;
/// Requests in flight at once, at most; a tick with none free is counted as not offered.
const MAX_IN_FLIGHT: usize = 128;
/// The memory limit both processes run with.
const LIMIT_MIB: u64 = 384;

fn blast_seconds() -> u64 {
    std::env::var("MERIDIAN_OVERLOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

fn request_body() -> Bytes {
    let spans = (0..SPANS_PER_REQUEST)
        .map(|i| span("GET /api/orders", i))
        .collect();
    Bytes::from(traces("overload", spans).encode_to_vec())
}

#[derive(Default)]
struct Counts {
    accepted: AtomicU64,
    refused: AtomicU64,
    sent: AtomicU64,
    skipped: AtomicU64,
}

/// Sends `body` once; panics on any answer that is neither 200 nor a retryable refusal with
/// Retry-After.
async fn send(client: &reqwest::Client, url: &str, body: Bytes, counts: &Counts) {
    counts.sent.fetch_add(1, Ordering::Relaxed);
    let response = client
        .post(url)
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .expect("the receiver stopped answering");
    match response.status().as_u16() {
        200 => {
            counts.accepted.fetch_add(1, Ordering::Relaxed);
        }
        503 | 429 => {
            assert!(response.headers().contains_key("retry-after"));
            counts.refused.fetch_add(1, Ordering::Relaxed);
        }
        other => panic!("non-retryable answer {other} under overload"),
    }
}

/// Closed-loop senders, each sending its next request once the last was answered.
const CLOSED_LOOP_SENDERS: usize = 4;

/// [`CLOSED_LOOP_SENDERS`] senders for `seconds`: the requests per second the process
/// sustains (what it accepted), and how many it accepted.
async fn sustainable(
    client: &reqwest::Client,
    url: &str,
    body: &Bytes,
    seconds: u64,
) -> (f64, u64) {
    let counts = Arc::new(Counts::default());
    let started = Instant::now();
    let senders: Vec<_> = (0..CLOSED_LOOP_SENDERS)
        .map(|_| {
            let (client, url, body, counts) = (
                client.clone(),
                url.to_owned(),
                body.clone(),
                Arc::clone(&counts),
            );
            tokio::spawn(async move {
                while started.elapsed() < Duration::from_secs(seconds) {
                    send(&client, &url, body.clone(), &counts).await;
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    let accepted = counts.accepted.load(Ordering::Relaxed);
    (accepted as f64 / started.elapsed().as_secs_f64(), accepted)
}

/// Open loop: `rate` requests per second for `seconds`, each in its own task.
async fn blast(
    client: &reqwest::Client,
    url: &str,
    body: &Bytes,
    rate: f64,
    seconds: u64,
) -> Arc<Counts> {
    let counts = Arc::new(Counts::default());
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let tick = Duration::from_millis(10);
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut due = 0.0;
    let mut tasks = tokio::task::JoinSet::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        ticker.tick().await;
        due += rate * tick.as_secs_f64();
        while due >= 1.0 {
            due -= 1.0;
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                counts.skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let (client, url, body, counts) = (
                client.clone(),
                url.to_owned(),
                body.clone(),
                Arc::clone(&counts),
            );
            tasks.spawn(async move {
                send(&client, &url, body, &counts).await;
                drop(slot);
            });
        }
        while let Some(done) = tasks.try_join_next() {
            done.unwrap();
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    counts
}

/// Measures what the process at `url` sustains, then offers ten times that for the blast's
/// duration; returns the requests answered 200 in both phases.
async fn overload(name: &str, m: &Meridian, url: &str) -> u64 {
    let client = reqwest::Client::new();
    let body = request_body();
    let (rate, before) = sustainable(&client, url, &body, 10).await;
    let seconds = blast_seconds();
    let counts = blast(&client, url, &body, 10.0 * rate, seconds).await;
    let (accepted, refused, sent, skipped) = (
        counts.accepted.load(Ordering::Relaxed),
        counts.refused.load(Ordering::Relaxed),
        counts.sent.load(Ordering::Relaxed),
        counts.skipped.load(Ordering::Relaxed),
    );
    let offered = sent as f64 / seconds as f64;
    let peak = m.peak_rss_kib() / 1024;
    println!(
        "{name}: sustains {rate:.1} requests/s ({:.0} spans/s); offered {offered:.1}/s \
         ({:.1}x) for {seconds} s: {accepted} accepted, {refused} refused, {skipped} not sent \
         ({MAX_IN_FLIGHT} in flight); peak RSS {peak} MiB of a {LIMIT_MIB} MiB limit",
        rate * SPANS_PER_REQUEST as f64,
        offered / rate,
    );
    assert!(refused > 0, "{name}: no overload reached");
    assert!(
        offered >= 5.0 * rate,
        "{name}: the load generator offered only {:.1}x the sustainable rate",
        offered / rate
    );
    assert!(
        peak <= LIMIT_MIB * 11 / 10,
        "{name}: peak RSS {peak} MiB over the {LIMIT_MIB} MiB limit + 10%"
    );
    before + accepted
}

/// Waits until the store holds `expected` overload spans, then checks it holds no more.
async fn drained(api: std::net::SocketAddr, expected: i64) {
    let q = "SELECT count(*) AS n FROM spans WHERE service_name = 'overload'";
    let deadline = Instant::now() + Duration::from_secs(240);
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
async fn ten_times_the_sustainable_rate_gets_only_retryable_answers_and_loses_nothing() {
    let limit = (LIMIT_MIB << 20).to_string();

    // Standalone: the store keeps what it ingests in memory until it flushes, so the memory
    // limit is what refuses.
    let dir = tempfile::tempdir().unwrap();
    let m = Meridian::start("standalone", dir.path(), &["--max-memory-bytes", &limit]);
    let accepted = overload("standalone", &m, &format!("{}/v1/traces", m.http_url())).await;
    let by_memory = metric_sum(m.api, None, "meridian_memory_refused_requests_total").await;
    println!("standalone: {by_memory} requests refused by the memory limit");
    drained(m.api, (accepted * SPANS_PER_REQUEST) as i64).await;
    m.terminate();

    // A collector with a 1 MiB disk buffer (these spans take ~2.5 bytes each in wire encoding
    // 2), forwarding to an analyzer that only starts once the blast is over: the buffer fills
    // and refuses.
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
            "1048576",
            "--max-memory-bytes",
            &limit,
        ],
    );
    let url = format!("{}/v1/traces", collector.http_url());
    let accepted = overload("collector", &collector, &url).await;
    let analyzer_dir = tempfile::tempdir().unwrap();
    let analyzer = Meridian::start_on("analyzer", analyzer_dir.path(), &analyzer_addr, &[]);
    drained(analyzer.api, (accepted * SPANS_PER_REQUEST) as i64).await;
    collector.terminate();
    analyzer.terminate();
}
