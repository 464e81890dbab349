//! The agent's own metrics, in Prometheus text format on `/metrics`.

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// Counters and gauges of the agent; cheap to clone.
#[derive(Clone)]
pub struct AgentMetrics {
    /// Reconciles that changed the gateway, by result (`applied`, `failed`, `refused`).
    pub applies: IntCounterVec,
    /// Seconds from writing the gateway's configuration to the gateway confirming it.
    pub apply_seconds: Histogram,
    /// The routing version last applied.
    pub version: IntGauge,
    /// Weight applied per target and region.
    pub weight: IntGaugeVec,
    /// 1 while the last request to the analyzer succeeded.
    pub analyzer_up: IntGauge,
    /// 1 while the event stream is connected.
    pub stream_connected: IntGauge,
    /// Scaling recommendations handled, by outcome (`applied`, `logged`, `failed`).
    pub scaling: IntCounterVec,
}

impl AgentMetrics {
    /// Registers the metrics in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            applies: IntCounterVec::new(
                Opts::new("meridian_agent_applies_total", "Gateway updates by result"),
                &["result"],
            )?,
            apply_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "meridian_agent_apply_seconds",
                    "Time from writing the gateway configuration to the gateway confirming it",
                )
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            )?,
            version: IntGauge::new("meridian_agent_routing_version", "Routing version applied")?,
            weight: IntGaugeVec::new(
                Opts::new(
                    "meridian_agent_weight",
                    "Weight applied per gateway target and region",
                ),
                &["target", "region"],
            )?,
            analyzer_up: IntGauge::new(
                "meridian_agent_analyzer_up",
                "1 while the last request to the analyzer succeeded",
            )?,
            stream_connected: IntGauge::new(
                "meridian_agent_stream_connected",
                "1 while the analyzer's event stream is connected",
            )?,
            scaling: IntCounterVec::new(
                Opts::new(
                    "meridian_agent_scaling_total",
                    "Scaling recommendations by outcome",
                ),
                &["outcome"],
            )?,
        };
        registry.register(Box::new(m.applies.clone()))?;
        registry.register(Box::new(m.apply_seconds.clone()))?;
        registry.register(Box::new(m.version.clone()))?;
        registry.register(Box::new(m.weight.clone()))?;
        registry.register(Box::new(m.analyzer_up.clone()))?;
        registry.register(Box::new(m.stream_connected.clone()))?;
        registry.register(Box::new(m.scaling.clone()))?;
        Ok(m)
    }
}
