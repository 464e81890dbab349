//! Kafka for the end-to-end tests: the broker the test script started, private brokers a test can
//! pause, and per-test topic configurations.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The shared broker started by `scripts/test.sh`. Fails (never skips) without one.
pub fn shared_brokers() -> String {
    let brokers = std::env::var("MERIDIAN_TEST_KAFKA_BROKERS").unwrap_or_else(|_| {
        panic!(
            "no Kafka broker for this test: run it through scripts/test.sh, or start one with \
             `eval \"$(scripts/kafka-broker.sh start)\"` and run again in that shell"
        )
    });
    let addr = brokers.split(',').next().unwrap_or_default().to_owned();
    assert!(
        std::net::TcpStream::connect_timeout(
            &addr
                .parse()
                .expect("MERIDIAN_TEST_KAFKA_BROKERS is HOST:PORT"),
            Duration::from_secs(2)
        )
        .is_ok(),
        "the Kafka broker at {brokers} (MERIDIAN_TEST_KAFKA_BROKERS) does not answer; start one \
         with `eval \"$(scripts/kafka-broker.sh start)\"`"
    );
    brokers
}

/// A private tansu broker (in-memory storage) that a test may pause; killed when dropped.
pub struct Broker {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub address: String,
}

impl Broker {
    /// Starts tansu from `MERIDIAN_TANSU_BIN` on a free loopback port.
    pub fn start() -> Broker {
        let bin = std::env::var("MERIDIAN_TANSU_BIN").unwrap_or_else(|_| {
            panic!(
                "MERIDIAN_TANSU_BIN is not set: run the tests through scripts/test.sh, which \
                 installs tansu (scripts/kafka-broker.sh install)"
            )
        });
        let port = super::free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting tansu");
        // Owned at once, so a failed start below still kills and reaps it.
        let broker = Broker {
            child,
            address: format!("127.0.0.1:{port}"),
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(&broker.address).is_ok() {
                return broker;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("tansu did not listen on {}", broker.address);
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Freezes the broker (SIGSTOP): connections stay open but nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Resumes a paused broker (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a configuration with topics and a consumer group of this test's own (`name`), consumer
/// settings that join a group quickly, and `extra` TOML appended.
pub fn config(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let unique = format!("{name}-{}", std::process::id());
    let text = format!(
        r#"
[kafka]
group_id = "g-{unique}"
partitions = 2

[kafka.topics]
spans = "{unique}.spans"
metrics = "{unique}.metrics"
logs = "{unique}.logs"

[kafka.consumer]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "500"
"topic.metadata.refresh.interval.ms" = "1000"

[analyzer.store]
flush_interval = "1s"

{extra}
"#
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("writing the test configuration");
    path
}
