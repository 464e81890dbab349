//! The Kafka deployment — regional collectors → broker (tansu) → analyzer — under faults: the
//! broker frozen, the analyzer and the collector killed with SIGKILL, the disk buffer full; plus
//! the OpenTelemetry Collector's Kafka format and batches larger than the message limit.
//! Every test ends by checking that each span is stored exactly once.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::kafka::{config, shared_brokers, Broker};
use common::{count, span, traces, wait_for_count, Meridian};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

/// Spans per request of the test streams.
const PER_REQUEST: u64 = 50;

/// Exports like an OTLP exporter that honours backpressure: on UNAVAILABLE (or no connection)
/// it waits and retries the same request, up to `timeout`. Returns how many refusals it saw.
async fn export_retrying(url: &str, request: &ExportTraceServiceRequest, timeout: Duration) -> u32 {
    let deadline = Instant::now() + timeout;
    let mut refusals = 0;
    loop {
        let outcome = match TraceServiceClient::connect(url.to_owned()).await {
            Ok(mut client) => client.export(request.clone()).await.map(|_| ()),
            Err(e) => Err(tonic::Status::unavailable(e.to_string())),
        };
        match outcome {
            Ok(()) => return refusals,
            Err(status) if status.code() == tonic::Code::Unavailable => refusals += 1,
            Err(status) => panic!("export failed for good: {status}"),
        }
        assert!(
            Instant::now() < deadline,
            "export still refused after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The request with spans `first..first + PER_REQUEST` of `service`.
fn request(service: &str, first: u64) -> ExportTraceServiceRequest {
    traces(
        service,
        (first..first + PER_REQUEST)
            .map(|n| span("op", n))
            .collect(),
    )
}

/// Waits until `service` has `n` spans, then checks that each is stored exactly once.
async fn assert_exactly_once(analyzer: &Meridian, service: &str, n: i64, timeout: Duration) {
    let all = format!("SELECT count(*) AS n FROM spans WHERE service_name = '{service}'");
    let got = wait_for_count(analyzer.api, &all, n, timeout).await;
    assert_eq!(got, n, "spans of {service} stored");
    // A late duplicate would show up after the count was first reached.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(analyzer.api, &all).await, n, "no duplicates");
    let distinct =
        format!("SELECT count(DISTINCT span_id) AS n FROM spans WHERE service_name = '{service}'");
    assert_eq!(count(analyzer.api, &distinct).await, n, "each span once");
}

/// Checks exactly-once delivery of `n` spans of `service`, then stops both processes cleanly.
async fn finish(analyzer: Meridian, collector: Meridian, service: &str, n: u64) {
    assert_exactly_once(&analyzer, service, n as i64, Duration::from_secs(120)).await;
    collector.terminate();
    analyzer.terminate();
}

fn start_analyzer(dir: &Path, brokers: &str, config: &Path) -> Meridian {
    Meridian::start(
        "analyzer",
        &dir.join("analyzer"),
        &[
            "--kafka-brokers",
            brokers,
            "--config",
            config.to_str().unwrap(),
        ],
    )
}

fn start_pair(dir: &Path, brokers: &str, config: &Path) -> (Meridian, Meridian) {
    let analyzer = start_analyzer(dir, brokers, config);
    let collector = start_collector(dir, brokers, config, &[]);
    (analyzer, collector)
}

fn start_collector(dir: &Path, brokers: &str, config: &Path, extra: &[&str]) -> Meridian {
    let conf = config.to_str().unwrap();
    let mut args = vec![
        "--kafka-brokers",
        brokers,
        "--config",
        conf,
        "--region",
        "eu-west-1",
    ];
    args.extend_from_slice(extra);
    Meridian::start("collector", &dir.join("collector"), &args)
}

/// Scenario (fault a): a steady stream through a broker that is frozen (SIGSTOP) for 20 s in
/// the middle, then resumes.
/// Guarantees: clients are never refused; all N spans are stored exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_unreachable_for_20s_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let conf = config(dir.path(), "fault-a", "");
    let (analyzer, collector) = start_pair(dir.path(), &broker.address, &conf);
    let url = collector.grpc_url();
    let requests = 50u64;
    let started = Instant::now();
    let mut paused_at = None;
    for i in 0..requests {
        if i == 10 {
            broker.pause();
            paused_at = Some(Instant::now());
        }
        if paused_at.is_some_and(|t| t.elapsed() >= Duration::from_secs(20)) {
            broker.resume();
            paused_at = None;
        }
        let refusals = export_retrying(
            &url,
            &request("fault-a", i * PER_REQUEST),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(
            refusals, 0,
            "the disk buffer takes the stream while the broker is away"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if let Some(at) = paused_at {
        let left = Duration::from_secs(20).saturating_sub(at.elapsed());
        tokio::time::sleep(left).await;
        broker.resume();
    }
    assert!(started.elapsed() >= Duration::from_secs(20));
    finish(analyzer, collector, "fault-a", requests * PER_REQUEST).await;
}

/// Scenario (fault b): the analyzer is killed with SIGKILL in the middle of a stream (with rows
/// only in memory) and restarted on the same data directory.
/// Guarantees: all N spans are stored exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_analyzer_killed_mid_stream_stores_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let brokers = shared_brokers();
    let conf = config(dir.path(), "fault-b", "");
    let (analyzer, collector) = start_pair(dir.path(), &brokers, &conf);
    let url = collector.grpc_url();
    let requests = 40u64;
    let mut analyzer = Some(analyzer);
    for i in 0..requests {
        if i == 20 {
            // Wait until the analyzer has stored some of the stream, so the kill loses hot rows.
            let a = analyzer.take().unwrap();
            let q = "SELECT count(*) AS n FROM spans WHERE service_name = 'fault-b'";
            assert!(wait_for_count(a.api, q, 1, Duration::from_secs(60)).await > 0);
            a.kill9();
        }
        if i == 30 {
            analyzer = Some(start_analyzer(dir.path(), &brokers, &conf));
        }
        export_retrying(
            &url,
            &request("fault-b", i * PER_REQUEST),
            Duration::from_secs(5),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let analyzer = analyzer.unwrap();
    finish(analyzer, collector, "fault-b", requests * PER_REQUEST).await;
}

/// Scenario (fault c): with the broker frozen, a collector accepts a stream into its disk buffer,
/// is killed with SIGKILL, and is restarted on the same buffer after the broker is back.
/// Guarantees: everything it acknowledged is stored, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_collector_killed_with_a_full_buffer_stores_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let conf = config(dir.path(), "fault-c", "");
    let (analyzer, collector) = start_pair(dir.path(), &broker.address, &conf);
    let url = collector.grpc_url();
    // Some data flows normally first, so the kill also hits delivered-but-not-saved positions.
    for i in 0..5 {
        export_retrying(
            &url,
            &request("fault-c", i * PER_REQUEST),
            Duration::from_secs(5),
        )
        .await;
    }
    let q = "SELECT count(*) AS n FROM spans WHERE service_name = 'fault-c'";
    assert!(wait_for_count(analyzer.api, q, 1, Duration::from_secs(60)).await > 0);
    broker.pause();
    for i in 5..25 {
        export_retrying(
            &url,
            &request("fault-c", i * PER_REQUEST),
            Duration::from_secs(5),
        )
        .await;
    }
    assert!(
        collector.metric("meridian_collector_buffer_records").await > 0.0,
        "the disk buffer holds the undelivered batches"
    );
    collector.kill9();
    broker.resume();
    let collector = start_collector(dir.path(), &broker.address, &conf, &[]);
    finish(analyzer, collector, "fault-c", 25 * PER_REQUEST).await;
}

/// Scenario (fault d): the broker is frozen and the collector's disk buffer is small, so it
/// fills; an exporter that retries on backpressure keeps sending; then the broker resumes.
/// Guarantees: a full buffer answers UNAVAILABLE (retryable), never drops; /readyz says why;
/// every span the exporter sent is stored exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d_full_disk_buffer_pushes_back_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let conf = config(dir.path(), "fault-d", "");
    let analyzer = start_analyzer(dir.path(), &broker.address, &conf);
    let collector = start_collector(
        dir.path(),
        &broker.address,
        &conf,
        &["--buffer-max-bytes", "12000"],
    );
    let url = collector.grpc_url();
    broker.pause();
    let sender = {
        let url = url.clone();
        tokio::spawn(async move {
            let mut refusals = 0;
            for i in 0..60 {
                refusals += export_retrying(
                    &url,
                    &request("fault-d", i * PER_REQUEST),
                    Duration::from_secs(120),
                )
                .await;
            }
            refusals
        })
    };
    // The buffer fills and the collector says so.
    let admin = format!("http://{}/readyz", collector.api);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = reqwest::get(&admin).await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        if status == 503 && text.contains("disk buffer") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the buffer never filled: {status} {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let refused_before_resume = collector
        .metric("meridian_collector_refused_requests_total{protocol=\"grpc\",signal=\"traces\"}")
        .await;
    assert!(
        refused_before_resume > 0.0,
        "a full buffer refuses requests"
    );
    broker.resume();
    let refusals = sender.await.unwrap();
    assert!(refusals > 0, "the exporter was told to back off");
    finish(analyzer, collector, "fault-d", 60 * PER_REQUEST).await;
}

/// Scenario: an OpenTelemetry Collector fleet's Kafka exporter (`encoding: otlp_proto`) writes
/// Export requests to `otlp_spans`; we produce such messages with rdkafka as it does (one
/// serialized ExportTraceServiceRequest per message, no key), plus one message that is garbage.
/// Guarantees: the analyzer stores every span of every valid message, with the configured
/// region, skips the garbage, and keeps going.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_collector_kafka_format_is_consumed() {
    use prost::Message;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let dir = tempfile::tempdir().unwrap();
    let brokers = shared_brokers();
    let unique = format!("otlp-{}", std::process::id());
    let extra = format!(
        "[kafka.otlp_topics]\nenabled = true\nspans = \"{unique}_spans\"\nmetrics = \"{unique}_metrics\"\nlogs = \"{unique}_logs\"\nregion = \"fleet-a\"\n"
    );
    let conf = config(dir.path(), "otlp", &extra);
    let analyzer = start_analyzer(dir.path(), &brokers, &conf);
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let topic = format!("{unique}_spans");
    let mut payloads: Vec<Vec<u8>> = (0..10u64)
        .map(|i| request("otel-fleet", i * PER_REQUEST).encode_to_vec())
        .collect();
    payloads.insert(3, b"\x0a\xff\xffnot protobuf".to_vec());
    for payload in &payloads {
        producer
            .send(
                FutureRecord::<(), _>::to(&topic).payload(payload),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    assert_exactly_once(
        &analyzer,
        "otel-fleet",
        (10 * PER_REQUEST) as i64,
        Duration::from_secs(90),
    )
    .await;
    let regions = common::sql(
        analyzer.api,
        "SELECT DISTINCT region FROM spans WHERE service_name = 'otel-fleet'",
    )
    .await;
    assert_eq!(regions, vec![serde_json::json!({"region": "fleet-a"})]);
    analyzer.terminate();
}

/// Scenario: one export request whose batch is far larger than the configured message limit.
/// Guarantees: it is split into several messages, none over the limit, and every span arrives
/// once (the OTel Collector's exporter fails such batches permanently instead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_larger_than_a_message_are_split() {
    let dir = tempfile::tempdir().unwrap();
    let brokers = shared_brokers();
    let conf = config(
        dir.path(),
        "split",
        "[kafka.producer]\n\"message.max.bytes\" = \"20000\"\n",
    );
    // Spans with sequential ids take ~3 bytes each in wire encoding 2: 5,000 need several
    // messages of 8 KB.
    let text = std::fs::read_to_string(&conf)
        .unwrap()
        .replace("[kafka]\n", "[kafka]\nmax_message_bytes = 8000\n");
    std::fs::write(&conf, text).unwrap();
    let (analyzer, collector) = start_pair(dir.path(), &brokers, &conf);
    let big = traces("split", (0..5000).map(|n| span("big", n)).collect());
    export_retrying(&collector.grpc_url(), &big, Duration::from_secs(10)).await;
    assert_exactly_once(&analyzer, "split", 5000, Duration::from_secs(90)).await;
    let messages = analyzer
        .metric(&format!(
            "meridian_analyzer_kafka_messages_total{{outcome=\"stored\",topic=\"split-{}.spans\"}}",
            std::process::id()
        ))
        .await;
    assert!(messages > 1.0, "one message per part, got {messages}");
    collector.terminate();
    analyzer.terminate();
}

/// Scenario: two collectors into one analyzer through Kafka, one sending wire encoding 2 (the
/// default) and one set to encoding 1 (`--wire-encoding arrow-ipc`, as a collector from before
/// encoding 2 sends), each from its disk buffer.
/// Guarantees: the analyzer stores both streams, every span exactly once, in the same table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_wire_encodings_are_consumed() {
    let dir = tempfile::tempdir().unwrap();
    let brokers = shared_brokers();
    let conf = config(dir.path(), "encodings", "");
    let analyzer = start_analyzer(dir.path(), &brokers, &conf);
    let new = start_collector(dir.path(), &brokers, &conf, &[]);
    let conf_arg = conf.to_str().unwrap();
    let old = Meridian::start(
        "collector",
        &dir.path().join("collector-old"),
        &[
            "--kafka-brokers",
            &brokers,
            "--config",
            conf_arg,
            "--region",
            "us-east-1",
            "--wire-encoding",
            "arrow-ipc",
        ],
    );
    for i in 0..5 {
        export_retrying(
            &new.grpc_url(),
            &request("enc-new", i * PER_REQUEST),
            Duration::from_secs(10),
        )
        .await;
        export_retrying(
            &old.grpc_url(),
            &request("enc-old", i * PER_REQUEST),
            Duration::from_secs(10),
        )
        .await;
    }
    let n = 5 * PER_REQUEST as i64;
    assert_exactly_once(&analyzer, "enc-new", n, Duration::from_secs(90)).await;
    assert_exactly_once(&analyzer, "enc-old", n, Duration::from_secs(90)).await;
    let regions = "SELECT count(DISTINCT region) AS n FROM spans WHERE service_name LIKE 'enc-%'";
    assert_eq!(count(analyzer.api, regions).await, 2);
    new.terminate();
    old.terminate();
    analyzer.terminate();
}
