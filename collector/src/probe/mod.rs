//! The probe stage: every collector checks the configured endpoints (`[[collector.probes]]`)
//! on their interval, as one of Route 53's checkers — so each endpoint is checked from every
//! region. Each result, with this vantage point's verdict after the failure threshold, is a row
//! of the `probes` table and travels like any other batch (queue, disk buffer, sink); the
//! analyzer combines the vantage points into the endpoint's health.
//!
//! [`config`] parses a probe, [`check`] runs one check, [`vantage`] applies the threshold,
//! [`rows`] builds the Arrow row.

pub mod check;
pub mod config;
pub mod rows;
mod tls;
pub mod vantage;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{validate, ProbeConfig, ProbeConfigError, Target};
pub use vantage::Verdict;

use crate::otlp::Intake;
use crate::signal::{Signal, SignalBatch};

/// The collector's probe metrics (`meridian_probe_*`).
#[derive(Clone)]
pub struct ProbeMetrics {
    /// Checks run, by probe and result (`ok`, `fail`).
    pub checks: IntCounterVec,
    /// 1 while this vantage point says the endpoint is healthy, by probe.
    pub healthy: IntGaugeVec,
    /// Time to the response's first byte (to connect, for TCP), by probe.
    pub latency: HistogramVec,
    /// Results that could not be queued (queue or disk buffer full), by probe.
    pub dropped: IntCounterVec,
}

impl ProbeMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let checks = IntCounterVec::new(
            Opts::new(
                "meridian_probe_checks_total",
                "Health checks run by this collector",
            ),
            &["probe", "result"],
        )?;
        let healthy = IntGaugeVec::new(
            Opts::new(
                "meridian_probe_vantage_healthy",
                "1 while this vantage point says the endpoint is healthy (threshold applied)",
            ),
            &["probe"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "meridian_probe_latency_seconds",
                "Time to the first byte of the response (to connect, for TCP probes)",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0,
            ]),
            &["probe"],
        )?;
        let dropped = IntCounterVec::new(
            Opts::new(
                "meridian_probe_results_dropped_total",
                "Probe results not queued because the queue or the disk buffer was full",
            ),
            &["probe"],
        )?;
        registry.register(Box::new(checks.clone()))?;
        registry.register(Box::new(healthy.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(dropped.clone()))?;
        Ok(Self {
            checks,
            healthy,
            latency,
            dropped,
        })
    }
}

/// Starts one task per probe, queueing results into `intake` until `stop`; the probes were
/// checked by [`validate`] (their targets are given in the same order).
pub fn start(
    probes: &[ProbeConfig],
    targets: Vec<Target>,
    vantage_region: &str,
    intake: Intake,
    metrics: ProbeMetrics,
    stop: CancellationToken,
) -> Vec<(&'static str, JoinHandle<()>)> {
    let count = probes.len().max(1) as u32;
    probes
        .iter()
        .cloned()
        .zip(targets)
        .enumerate()
        .map(|(i, (probe, target))| {
            // Checkers are not coordinated; spreading the first checks over the interval
            // keeps many probes from firing at once.
            let offset = probe.interval / count * i as u32;
            let watch = Watch {
                probe,
                target,
                vantage_region: vantage_region.to_owned(),
                intake: intake.clone(),
                metrics: metrics.clone(),
            };
            (
                "health probe",
                tokio::spawn(watch.run(offset, stop.clone())),
            )
        })
        .collect()
}

/// One probe's loop.
struct Watch {
    probe: ProbeConfig,
    target: Target,
    vantage_region: String,
    intake: Intake,
    metrics: ProbeMetrics,
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

impl Watch {
    async fn run(self, offset: Duration, stop: CancellationToken) {
        let name = self.probe.name.as_str();
        let start = tokio::time::Instant::now() + offset;
        let mut ticker = tokio::time::interval_at(start, self.probe.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut verdict = Verdict::new(self.probe.failure_threshold);
        self.metrics.healthy.with_label_values(&[name]).set(1);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let time_ns = now_ns();
            let outcome = tokio::select! {
                _ = stop.cancelled() => return,
                outcome = check::run(&self.probe, &self.target) => outcome,
            };
            let result = if outcome.ok { "ok" } else { "fail" };
            self.metrics.checks.with_label_values(&[name, result]).inc();
            if let Some(ms) = outcome.first_byte_ms.or(outcome.connect_ms) {
                self.metrics
                    .latency
                    .with_label_values(&[name])
                    .observe(ms / 1e3);
            }
            if verdict.observe(outcome.ok) {
                let healthy = verdict.healthy();
                self.metrics
                    .healthy
                    .with_label_values(&[name])
                    .set(i64::from(healthy));
                if healthy {
                    tracing::info!(probe = name, url = %self.probe.url, "endpoint healthy again from this vantage point");
                } else {
                    tracing::warn!(probe = name, url = %self.probe.url, error = outcome.error.as_deref().unwrap_or(""), "endpoint unhealthy from this vantage point");
                }
            }
            let row = rows::ProbeRow {
                time_ns,
                vantage_region: &self.vantage_region,
                probe: &self.probe,
                outcome: &outcome,
                healthy: verdict.healthy(),
            };
            let batch = match rows::batch(&[row]) {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::error!(probe = name, error = %e, "building a probe row failed");
                    continue;
                }
            };
            if let Err(e) = self
                .intake
                .submit(SignalBatch::new(Signal::Probes, batch))
                .await
            {
                self.metrics.dropped.with_label_values(&[name]).inc();
                tracing::warn!(probe = name, reason = %e, "probe result dropped");
            }
        }
    }
}

#[cfg(test)]
mod tests;
