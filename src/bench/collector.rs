//! CPU per span of a regional collector on its own: a `meridian collector` child process with
//! its disk buffer (`fsync = "always"`) and Kafka sink, loaded over OTLP from this process. The
//! figure is spans per CPU-second of that process (spans/s per core), against prost's decode-only
//! rate on one core measured in this process in the same run.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::figures::Figures;
use super::ingest::{send_all, trace_payloads, Target};

/// The load of one measurement.
pub struct CollectorLoad<'a> {
    /// Kafka brokers of the collector's sink.
    pub brokers: &'a str,
    /// `grpc` or `http`.
    pub protocol: &'a str,
    /// Spans sent after the warm-up.
    pub spans: usize,
    /// Spans per request.
    pub batch: usize,
    /// Concurrent client connections.
    pub concurrency: usize,
}

/// Runs the measurement and adds `collector_*` figures.
pub async fn run(load: &CollectorLoad<'_>, figures: &mut Figures) -> anyhow::Result<()> {
    anyhow::ensure!(
        matches!(load.protocol, "grpc" | "http"),
        "unknown protocol `{}`: use grpc or http",
        load.protocol
    );
    let payloads = trace_payloads(load.batch);
    let decode_before = super::convert::decode_rate(&payloads, 200, load.batch)?;
    let child = CollectorProcess::start(load.brokers)?;
    let result = measure(&child, load, &payloads).await;
    child.stop();
    let (cpu_s, wall_s, retries) = result?;
    let decode_after = super::convert::decode_rate(&payloads, 200, load.batch)?;
    let decode = decode_before.max(decode_after);
    let spans = load.spans.div_ceil(load.batch) * load.batch;
    let per_core = spans as f64 / cpu_s;
    println!(
        "collector ({} → disk buffer, fsync always → Kafka): {spans} spans in {wall_s:.2}s wall, \
         {cpu_s:.2} CPU-s ({:.2} cores busy) → {per_core:.0} spans/s per core; {retries} backpressure retries",
        load.protocol,
        cpu_s / wall_s,
    );
    println!(
        "decode-only baseline (prost, one core, this process): {decode:.0} spans/s → collector per core / decode = {:.2}",
        per_core / decode
    );
    let p = load.protocol;
    figures.add(format!("{p}_collector_spans_per_cpu_s"), per_core);
    figures.add(format!("{p}_collector_spans_per_s"), spans as f64 / wall_s);
    figures.add(format!("{p}_collector_cores_busy"), cpu_s / wall_s);
    figures.add(format!("{p}_decode_spans_per_s"), decode);
    figures.add(format!("{p}_collector_ratio_vs_decode"), per_core / decode);
    Ok(())
}

/// Warm-up (topic metadata, first segment), then the timed load until the collector reports
/// every span delivered to Kafka; returns (CPU-seconds of the collector, wall seconds, retries).
async fn measure(
    child: &CollectorProcess,
    load: &CollectorLoad<'_>,
    payloads: &std::sync::Arc<Vec<bytes::Bytes>>,
) -> anyhow::Result<(f64, f64, usize)> {
    let target = Target {
        protocol: load.protocol,
        grpc_addr: child.grpc_addr,
        http_addr: child.http_addr,
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.delivered(&http).await.is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the collector did not serve /metrics within 60 s; see {}",
            child.log.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    send_all(&target, payloads, 1, 1).await?;
    child.wait_delivered(&http, load.batch).await?;
    let cpu_before = child.cpu_seconds()?;
    let started = Instant::now();
    let requests = load.spans.div_ceil(load.batch);
    let retries = send_all(&target, payloads, requests, load.concurrency).await?;
    child
        .wait_delivered(&http, load.batch * (requests + 1))
        .await?;
    let wall = started.elapsed().as_secs_f64();
    Ok((child.cpu_seconds()? - cpu_before, wall, retries))
}

/// A `meridian collector` child with its own data directory and topics.
struct CollectorProcess {
    child: Child,
    dir: PathBuf,
    log: PathBuf,
    grpc_addr: std::net::SocketAddr,
    http_addr: std::net::SocketAddr,
    api_addr: std::net::SocketAddr,
    clock: super::cpu::Clock,
}

impl CollectorProcess {
    fn start(brokers: &str) -> anyhow::Result<Self> {
        let unique = super::ingest::uuid_like();
        let dir = std::env::temp_dir().join(format!("meridian-bench-collector-{unique}"));
        std::fs::create_dir_all(&dir)?;
        let [grpc_addr, http_addr, api_addr] = free_addrs()?;
        let config = format!(
            r#"data_dir = "{data}"
[collector]
region = "bench"
http_addr = "{api_addr}"
[collector.otlp]
grpc_addr = "{grpc_addr}"
http_addr = "{http_addr}"
[collector.buffer]
kind = "disk"
fsync = "always"
[collector.self_metrics]
interval = "0s"
[kafka]
brokers = "{brokers}"
[kafka.topics]
spans = "bench-{unique}.spans"
metrics = "bench-{unique}.metrics"
logs = "bench-{unique}.logs"
probes = "bench-{unique}.probes"
"#,
            data = dir.join("data").display(),
        );
        let config_path = dir.join("collector.toml");
        std::fs::write(&config_path, config)?;
        let log = dir.join("collector.log");
        let child = Command::new(std::env::current_exe()?)
            .arg("--config")
            .arg(&config_path)
            .arg("collector")
            .env("MERIDIAN_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting `meridian collector`")?;
        Ok(Self {
            child,
            dir,
            log,
            grpc_addr,
            http_addr,
            api_addr,
            clock: super::cpu::Clock::new()?,
        })
    }

    /// Spans the collector has delivered to Kafka, from its `/metrics`.
    async fn delivered(&self, http: &reqwest::Client) -> anyhow::Result<usize> {
        let text = http
            .get(format!("http://{}/metrics", self.api_addr))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(forwarded_spans(&text))
    }

    async fn wait_delivered(&self, http: &reqwest::Client, spans: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(300);
        while self.delivered(http).await? < spans {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the collector did not deliver {spans} spans within 300 s; see {}",
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// User + system CPU time of the process and every thread it has had.
    fn cpu_seconds(&self) -> anyhow::Result<f64> {
        self.clock.seconds(self.child.id())
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `meridian_collector_forwarded_rows_total{signal="traces"}` in a Prometheus text page (0 when
/// absent: nothing delivered yet).
fn forwarded_spans(metrics: &str) -> usize {
    metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix(r#"meridian_collector_forwarded_rows_total{signal="traces"} "#)
        })
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

/// Three loopback addresses free a moment ago (bound to port 0, then released).
fn free_addrs() -> anyhow::Result<[std::net::SocketAddr; 3]> {
    let listeners = [
        std::net::TcpListener::bind("127.0.0.1:0")?,
        std::net::TcpListener::bind("127.0.0.1:0")?,
        std::net::TcpListener::bind("127.0.0.1:0")?,
    ];
    Ok([
        listeners[0].local_addr()?,
        listeners[1].local_addr()?,
        listeners[2].local_addr()?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_spans_reads_the_traces_counter() {
        let page = "# TYPE meridian_collector_forwarded_rows_total counter\n\
            meridian_collector_forwarded_rows_total{signal=\"logs\"} 7\n\
            meridian_collector_forwarded_rows_total{signal=\"traces\"} 12000\n";
        assert_eq!(forwarded_spans(page), 12000);
        assert_eq!(forwarded_spans(""), 0);
    }
}
