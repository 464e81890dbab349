//! The built-in rules on the regional collectors, from the metrics each reports about itself
//! (service `meridian-collector` in the `metrics` table, see `meridian_collector::self_metrics`):
//! `MeridianCollectorSilent` (reports stopped: the collector is down or cannot reach the
//! center, so the region's data is not arriving), `MeridianCollectorBufferFilling` (queue or
//! disk buffer nearly full: refusals and loss come next) and `MeridianCollectorBehind` (its sink
//! fails or the backlog it delivers is old).

use std::collections::BTreeMap;
use std::time::Duration;

use meridian_collector::self_metrics::COLLECTOR_SERVICE;
use serde_json::json;

use super::builtin::{annotations, labels, rows, Evaluated};
use super::config::BuiltinConfig;
use super::rule::format_value;
use super::state::{Instance, Timing};
use crate::query::sql::QueryEngine;

/// The collector gauges the rules read.
const GAUGES: [&str; 6] = [
    "meridian_collector_sink_up",
    "meridian_collector_queue_rows",
    "meridian_collector_queue_capacity_rows",
    "meridian_collector_buffer_bytes",
    "meridian_collector_buffer_max_bytes",
    "meridian_collector_buffer_oldest_age_seconds",
];

/// One collector's latest report.
#[derive(Debug, Default)]
struct Report {
    /// Unix ns of the latest report.
    last_ns: i64,
    /// The latest value of each gauge.
    gauges: BTreeMap<String, f64>,
}

impl Report {
    fn gauge(&self, name: &str) -> Option<f64> {
        self.gauges.get(name).copied()
    }

    /// Fill of `used` against `limit`, when the limit is known and not zero.
    fn ratio(&self, used: &str, limit: &str) -> Option<f64> {
        let limit = self.gauge(limit).filter(|l| *l > 0.0)?;
        Some(self.gauge(used)? / limit)
    }
}

/// The latest report of every collector seen within `forget_after`, by (region, instance).
async fn reports(
    engine: &QueryEngine,
    forget_after: Duration,
) -> Result<BTreeMap<(String, String), Report>, String> {
    let names = GAUGES.map(|g| format!("'{g}'")).join(", ");
    let found = rows(
        engine,
        &format!(
            "SELECT region, resource_attributes['service.instance.id'] AS instance, name, \
                    last_value(value ORDER BY time) AS value, \
                    CAST(max(time) AS BIGINT) AS last_ns \
             FROM metrics \
             WHERE service_name = '{COLLECTOR_SERVICE}' AND name IN ({names}) \
               AND time >= now() - INTERVAL '{} seconds' \
             GROUP BY 1, 2, 3",
            forget_after.as_secs().max(1)
        ),
    )
    .await?;
    let mut out: BTreeMap<(String, String), Report> = BTreeMap::new();
    for row in found {
        let key = (
            row["region"].as_str().unwrap_or_default().to_owned(),
            row["instance"].as_str().unwrap_or_default().to_owned(),
        );
        let report = out.entry(key).or_default();
        report.last_ns = report.last_ns.max(row["last_ns"].as_i64().unwrap_or(0));
        if let (Some(name), Some(value)) = (row["name"].as_str(), row["value"].as_f64()) {
            report.gauges.insert(name.to_owned(), value);
        }
    }
    Ok(out)
}

/// The three collector rules at `now_ns`.
pub async fn evaluate(
    engine: &QueryEngine,
    config: &BuiltinConfig,
    now_ns: i64,
) -> Result<Vec<Evaluated>, String> {
    let reports = reports(engine, config.collector_forget_after).await?;
    let (mut silent, mut filling, mut behind) = (Vec::new(), Vec::new(), Vec::new());
    for ((region, instance), report) in &reports {
        let pairs = [("region", region.as_str()), ("instance", instance.as_str())];
        let quiet = Duration::from_nanos((now_ns - report.last_ns).max(0) as u64);
        let evidence = json!({"region": region, "instance": instance, "last_report_ns": report.last_ns, "gauges": report.gauges});
        if quiet >= config.collector_silent_after {
            silent.push(Instance {
                labels: labels("MeridianCollectorSilent", config, &pairs),
                annotations: annotations(&[(
                    "summary",
                    format!(
                        "collector {instance} in {region} has not reported for {}s: it is down or cannot reach the center, so {region}'s telemetry is not arriving",
                        quiet.as_secs()
                    ),
                )]),
                value: quiet.as_secs_f64(),
                evidence: evidence.clone(),
            });
            // Its last gauges are stale; judging them would only add noise to the page.
            continue;
        }
        let fill = [
            (
                "queue",
                report.ratio(
                    "meridian_collector_queue_rows",
                    "meridian_collector_queue_capacity_rows",
                ),
            ),
            (
                "disk buffer",
                report.ratio(
                    "meridian_collector_buffer_bytes",
                    "meridian_collector_buffer_max_bytes",
                ),
            ),
        ]
        .into_iter()
        .filter_map(|(what, r)| r.map(|r| (what, r)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((what, ratio)) = fill.filter(|(_, r)| *r >= config.collector_full_ratio) {
            filling.push(Instance {
                labels: labels("MeridianCollectorBufferFilling", config, &pairs),
                annotations: annotations(&[(
                    "summary",
                    format!(
                        "collector {instance} in {region}: {what} {}% full; clients get refusals when it is full",
                        format_value(ratio * 100.0)
                    ),
                )]),
                value: ratio,
                evidence: evidence.clone(),
            });
        }
        let age = report
            .gauge("meridian_collector_buffer_oldest_age_seconds")
            .unwrap_or(0.0);
        let sink_down = report.gauge("meridian_collector_sink_up") == Some(0.0);
        if sink_down || age >= config.collector_behind_after.as_secs_f64() {
            let why = if sink_down {
                "its deliveries to the center fail".to_owned()
            } else {
                format!("it is delivering data {}s old", format_value(age))
            };
            behind.push(Instance {
                labels: labels("MeridianCollectorBehind", config, &pairs),
                annotations: annotations(&[(
                    "summary",
                    format!("collector {instance} in {region} is behind: {why}"),
                )]),
                value: age,
                evidence: evidence.clone(),
            });
        }
    }
    let sustained = Timing {
        for_: Duration::from_secs(60),
        keep_firing_for: Duration::ZERO,
    };
    Ok(vec![
        Evaluated {
            rule: "MeridianCollectorSilent",
            timing: Timing::default(),
            instances: silent,
        },
        Evaluated {
            rule: "MeridianCollectorBufferFilling",
            timing: sustained,
            instances: filling,
        },
        Evaluated {
            rule: "MeridianCollectorBehind",
            timing: sustained,
            instances: behind,
        },
    ])
}
