//! The built-in rules: a region's critical anomalies, unhealthy endpoints, failover and
//! capacity recommendations, and the analyzer's own trouble. Each gives this evaluation's
//! instances; the lifecycle is the same as for user rules.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::config::BuiltinConfig;
use super::hints;
use super::rule::format_value;
use super::state::{Instance, Labels, Timing};
use crate::health::Endpoint;
use crate::query::sql::QueryEngine;
use crate::recommend::recommendation::{Kind, Recommendation};

/// The metrics whose critical anomalies page.
const PAGED_METRICS: [&str; 2] = ["error_ratio", "latency_p99_ms"];

/// One built-in rule's result.
pub struct Evaluated {
    /// `alertname`.
    pub rule: &'static str,
    /// Its timing.
    pub timing: Timing,
    /// What it found.
    pub instances: Vec<Instance>,
}

/// The labels of a built-in rule's instance: `alertname`, the rule's severity, and `pairs`
/// that are not empty.
pub(super) fn labels(rule: &str, config: &BuiltinConfig, pairs: &[(&str, &str)]) -> Labels {
    let mut l: Labels = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    l.insert("alertname".into(), rule.to_owned());
    if let Some(s) = config.severities.get(rule) {
        l.insert("severity".into(), s.clone());
    }
    l
}

/// Annotations from the `pairs` that are not empty.
pub(super) fn annotations(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// Runs `sql` and gives its rows as JSON objects.
pub async fn rows(engine: &QueryEngine, sql: &str) -> Result<Vec<Value>, String> {
    let result = engine.query(sql).await.map_err(|e| e.to_string())?;
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    let batches: Vec<&arrow::array::RecordBatch> = result.batches.iter().collect();
    writer.write_batches(&batches).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

/// `RegionAnomaly`: per region and service, the critical anomalies on error ratio or p99
/// detected within the window (of intervals from the last two minutes besides) — one alert
/// however many routes, metrics and detectors fired.
pub async fn anomalies(
    engine: &QueryEngine,
    config: &BuiltinConfig,
    endpoints: &[(String, Endpoint)],
) -> Result<Evaluated, String> {
    let window = config.anomaly_window.as_secs().max(1);
    // Intervals that started long ago (a collector replaying its disk buffer, generated
    // history) are history, not an incident to page about now.
    let recent = window + 120;
    let found = rows(
        engine,
        &format!(
            "SELECT region, service_name, http_route, metric, value, expected, score, severity, detector \
             FROM anomalies WHERE detected_at >= now() - INTERVAL '{window} seconds' \
               AND time >= now() - INTERVAL '{recent} seconds' ORDER BY score DESC"
        ),
    )
    .await?;
    let mut groups: BTreeMap<(String, String), Vec<&Value>> = BTreeMap::new();
    for a in &found {
        let critical = a["severity"] == "critical"
            && PAGED_METRICS.contains(&a["metric"].as_str().unwrap_or_default());
        if critical {
            let key = (
                a["region"].as_str().unwrap_or_default().to_owned(),
                a["service_name"].as_str().unwrap_or_default().to_owned(),
            );
            groups.entry(key).or_default().push(a);
        }
    }
    let mut instances = Vec::new();
    for ((region, service), list) in groups {
        let top = list[0];
        let value = top["score"].as_f64().unwrap_or(0.0);
        let also: Vec<Value> = found
            .iter()
            .filter(|a| !list.iter().any(|b| std::ptr::eq(*b, *a)))
            .take(10)
            .map(|a| {
                json!({"region": a["region"], "service_name": a["service_name"], "http_route": a["http_route"],
                       "metric": a["metric"], "severity": a["severity"], "score": a["score"]})
            })
            .collect();
        let region_probes: Vec<Value> = endpoints
            .iter()
            .filter(|(_, e)| e.region == region)
            .map(|(name, e)| json!({"endpoint": name, "healthy": e.healthy, "summary": e.summary}))
            .collect();
        let probes_say = if region_probes.is_empty() {
            "no probes for the region".to_owned()
        } else if region_probes.iter().all(|p| p["healthy"] == true) {
            "probes say healthy".to_owned()
        } else {
            "probes agree: unhealthy".to_owned()
        };
        let (mut evidence, hint) = hints::gather(
            engine,
            &region,
            &service,
            window + 20,
            600,
            also.clone(),
            json!(region_probes),
        )
        .await;
        let metrics: Vec<String> = list
            .iter()
            .map(|a| {
                format!(
                    "{} {} {} (expected {}) by {}",
                    a["http_route"].as_str().unwrap_or_default(),
                    a["metric"].as_str().unwrap_or_default(),
                    format_value(a["value"].as_f64().unwrap_or(f64::NAN)),
                    format_value(a["expected"].as_f64().unwrap_or(f64::NAN)),
                    a["detector"].as_str().unwrap_or_default()
                )
            })
            .take(3)
            .collect();
        evidence["anomalies"] = json!(list);
        let route = evidence["top_error"]["http_route"]
            .as_str()
            .or(evidence["top_latency"]["http_route"].as_str())
            .or(top["http_route"].as_str())
            .unwrap_or_default()
            .to_owned();
        let also_text = if also.is_empty() {
            "nothing else moved".to_owned()
        } else {
            format!("{} other anomalies in the window", also.len())
        };
        instances.push(Instance {
            labels: labels(
                "RegionAnomaly",
                config,
                &[("region", &region), ("service_name", &service)],
            ),
            annotations: annotations(&[
                (
                    "summary",
                    format!("{region} {service}: {}", metrics.join("; ")),
                ),
                ("http_route", route),
                ("hint", hint),
                ("correlated", format!("{also_text}; {probes_say}")),
                (
                    "exemplar_sql",
                    evidence["exemplar_sql"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                ),
            ]),
            value,
            evidence,
        });
    }
    Ok(Evaluated {
        rule: "RegionAnomaly",
        timing: Timing {
            for_: config.anomaly_for,
            keep_firing_for: config.anomaly_keep_firing_for,
        },
        instances,
    })
}

/// `EndpointUnhealthy`: endpoints their vantage points call unhealthy.
pub fn endpoints(config: &BuiltinConfig, endpoints: &[(String, Endpoint)]) -> Evaluated {
    let instances = endpoints
        .iter()
        .filter(|(_, e)| !e.healthy)
        .map(|(name, e)| Instance {
            labels: labels(
                "EndpointUnhealthy",
                config,
                &[
                    ("endpoint", name),
                    ("region", &e.region),
                    ("service_name", e.service.as_deref().unwrap_or("")),
                ],
            ),
            annotations: annotations(&[(
                "summary",
                format!(
                    "{name} ({}) unhealthy: {}/{} vantage points healthy; {}",
                    e.region, e.healthy_vantages, e.vantages, e.summary
                ),
            )]),
            value: e.healthy_vantages as f64,
            evidence: json!({"endpoint": name, "since_ns": e.since_ns, "summary": e.summary}),
        })
        .collect();
    Evaluated {
        rule: "EndpointUnhealthy",
        timing: Timing::default(),
        instances,
    }
}

/// `FailoverRecommended` (failover, shift) and `CapacityShortfall` (scale-out) from the active
/// recommendations.
pub fn recommendations(config: &BuiltinConfig, active: &[Recommendation]) -> Vec<Evaluated> {
    let make = |rule: &'static str, kinds: &[Kind]| Evaluated {
        rule,
        timing: Timing::default(),
        instances: active
            .iter()
            .filter(|r| kinds.contains(&r.kind))
            .map(|r| Instance {
                labels: labels(
                    rule,
                    config,
                    &[("region", &r.region), ("service_name", &r.service)],
                ),
                annotations: annotations(&[
                    (
                        "summary",
                        format!(
                            "{} {} {}: {}",
                            r.kind.as_str(),
                            r.region,
                            r.service,
                            r.reason
                        ),
                    ),
                    ("target", r.target.to_string()),
                    ("recommendation_id", r.id.clone()),
                ]),
                value: r.target["instances"].as_f64().unwrap_or(0.0),
                evidence: r.evidence.clone(),
            })
            .collect(),
    };
    let mut out = Vec::new();
    if config.failover {
        out.push(make("FailoverRecommended", &[Kind::Failover, Kind::Shift]));
    }
    if config.capacity {
        out.push(make("CapacityShortfall", &[Kind::ScaleOut]));
    }
    out
}

/// `MeridianAnalyzerNotReady`: the analyzer's readiness check fails (store behind, a sink
/// refusing), with its reason.
pub fn pipeline(config: &BuiltinConfig, ready: Result<(), String>) -> Evaluated {
    let instances = match ready {
        Ok(()) => Vec::new(),
        Err(reason) => vec![Instance {
            labels: labels("MeridianAnalyzerNotReady", config, &[]),
            annotations: annotations(&[(
                "summary",
                format!("the analyzer is not ready: {reason}"),
            )]),
            value: 1.0,
            evidence: json!({"reason": reason}),
        }],
    };
    Evaluated {
        rule: "MeridianAnalyzerNotReady",
        timing: Timing {
            for_: std::time::Duration::from_secs(60),
            keep_firing_for: std::time::Duration::ZERO,
        },
        instances,
    }
}
