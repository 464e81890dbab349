//! `[analyzer.alerting]`: the built-in rules, user rules over SQL, and where notifications go.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Alerting settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    /// Evaluate rules and send notifications.
    pub enabled: bool,
    /// How often the built-in rules are evaluated.
    #[serde(with = "humantime_serde")]
    pub evaluate_every: Duration,
    /// Firing alerts are sent to Alertmanager again this often (Prometheus: 1 m).
    #[serde(with = "humantime_serde")]
    pub resend_delay: Duration,
    /// Resolved alerts are kept, and sent to Alertmanager again, for this long (Prometheus:
    /// 15 m), so an Alertmanager restarted meanwhile still learns they ended.
    #[serde(with = "humantime_serde")]
    pub resolved_retention: Duration,
    /// Base URL people reach the analyzer at, for `generatorURL` and `externalURL`.
    pub external_url: String,
    /// The built-in rules (`[analyzer.alerting.builtin]`).
    pub builtin: BuiltinConfig,
    /// User rules over SQL (`[[analyzer.alerting.rules]]`).
    pub rules: Vec<SqlRuleConfig>,
    /// Alertmanagers alerts are pushed to (`[[analyzer.alerting.alertmanagers]]`).
    pub alertmanagers: Vec<AlertmanagerConfig>,
    /// Webhooks Meridian groups and notifies itself (`[[analyzer.alerting.webhooks]]`).
    pub webhooks: Vec<WebhookConfig>,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            evaluate_every: Duration::from_secs(10),
            resend_delay: Duration::from_secs(60),
            resolved_retention: Duration::from_secs(15 * 60),
            external_url: String::new(),
            builtin: BuiltinConfig::default(),
            rules: Vec::new(),
            alertmanagers: Vec::new(),
            webhooks: Vec::new(),
        }
    }
}

/// The rules Meridian brings (`[analyzer.alerting.builtin]`), each on by default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BuiltinConfig {
    /// `RegionAnomaly`: a critical anomaly on a region's error ratio or p99 (critical already
    /// needs two consecutive intervals beyond the band).
    pub anomaly: bool,
    /// How long the anomaly condition must hold before it fires.
    #[serde(rename = "anomaly_for", with = "humantime_serde")]
    pub anomaly_for: Duration,
    /// Anomalies detected within this window count as "now".
    #[serde(with = "humantime_serde")]
    pub anomaly_window: Duration,
    /// The anomaly alert keeps firing this long after its last anomaly, so an incident with a
    /// quiet interval is one alert, not two.
    #[serde(with = "humantime_serde")]
    pub anomaly_keep_firing_for: Duration,
    /// `EndpointUnhealthy`: a probed endpoint unhealthy by its vantage points.
    pub endpoint_unhealthy: bool,
    /// `FailoverRecommended`: an active failover (or shift) recommendation.
    pub failover: bool,
    /// `CapacityShortfall`: an active scale-out recommendation.
    pub capacity: bool,
    /// `MeridianAnalyzerNotReady`: the analyzer's own trouble (store behind, sink refusing).
    pub pipeline: bool,
    /// `MeridianCollectorSilent`, `MeridianCollectorBufferFilling`, `MeridianCollectorBehind`:
    /// the collectors' trouble, from the metrics they report about themselves.
    pub collectors: bool,
    /// A collector that has not reported for this long is silent (it reports every 15 s by
    /// default).
    #[serde(with = "humantime_serde")]
    pub collector_silent_after: Duration,
    /// A collector not heard from for this long is forgotten (its silence alert resolves).
    #[serde(with = "humantime_serde")]
    pub collector_forget_after: Duration,
    /// Queue or disk-buffer fill (0–1) at which `MeridianCollectorBufferFilling` fires.
    pub collector_full_ratio: f64,
    /// Age of the oldest data a collector is still delivering at which it is behind.
    #[serde(with = "humantime_serde")]
    pub collector_behind_after: Duration,
    /// Severity label of each built-in rule.
    pub severities: BTreeMap<String, String>,
}

impl Default for BuiltinConfig {
    fn default() -> Self {
        Self {
            anomaly: true,
            anomaly_for: Duration::ZERO,
            anomaly_window: Duration::from_secs(60),
            anomaly_keep_firing_for: Duration::from_secs(60),
            endpoint_unhealthy: true,
            failover: true,
            capacity: true,
            pipeline: true,
            collectors: true,
            collector_silent_after: Duration::from_secs(120),
            collector_forget_after: Duration::from_secs(6 * 3600),
            collector_full_ratio: 0.8,
            collector_behind_after: Duration::from_secs(300),
            severities: [
                ("RegionAnomaly", "page"),
                ("EndpointUnhealthy", "page"),
                ("FailoverRecommended", "page"),
                ("CapacityShortfall", "ticket"),
                ("MeridianAnalyzerNotReady", "page"),
                ("MeridianCollectorSilent", "page"),
                ("MeridianCollectorBufferFilling", "page"),
                ("MeridianCollectorBehind", "ticket"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        }
    }
}

/// A rule over SQL: each row is an alert instance, its string columns labels, `value` its value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlRuleConfig {
    /// The `alertname` label.
    pub name: String,
    /// A read-only query.
    pub sql: String,
    /// How often it runs.
    #[serde(default = "default_every", with = "humantime_serde")]
    pub every: Duration,
    /// How long an instance must be returned before it fires (pending until then).
    #[serde(default, rename = "for", with = "humantime_serde")]
    pub for_: Duration,
    /// How long a firing instance keeps firing after the query stops returning it.
    #[serde(default, with = "humantime_serde")]
    pub keep_firing_for: Duration,
    /// Labels added to every instance.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations, with `{{ label }}` and `{{ value }}` filled in.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

fn default_every() -> Duration {
    Duration::from_secs(30)
}

/// An Alertmanager (`POST /api/v2/alerts`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Base URL, e.g. `http://alertmanager:9093`.
    pub url: String,
    /// Time allowed per request.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

/// A webhook receiving Alertmanager's webhook payload (version 4), grouped by Meridian.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// URL notifications are POSTed to.
    pub url: String,
    /// Labels alerts are grouped by: one notification per group.
    #[serde(default = "default_group_by")]
    pub group_by: Vec<String>,
    /// Wait before the first notification of a new group (more alerts may join it).
    #[serde(default = "default_group_wait", with = "humantime_serde")]
    pub group_wait: Duration,
    /// Wait before notifying a group again when it changed.
    #[serde(default = "default_group_interval", with = "humantime_serde")]
    pub group_interval: Duration,
    /// Wait before repeating an unchanged, still firing group.
    #[serde(default = "default_repeat_interval", with = "humantime_serde")]
    pub repeat_interval: Duration,
    /// Notify when a group's alerts resolve.
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    /// HMAC-SHA256 key of the `X-Meridian-Signature` header; empty sends none.
    #[serde(default)]
    pub secret: String,
    /// Attempts per notification before it is given up (and counted).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Time allowed per attempt.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_group_by() -> Vec<String> {
    vec!["alertname".into(), "region".into(), "service_name".into()]
}
fn default_group_wait() -> Duration {
    Duration::from_secs(10)
}
fn default_group_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_repeat_interval() -> Duration {
    Duration::from_secs(4 * 3600)
}
fn default_true() -> bool {
    true
}
fn default_attempts() -> u32 {
    5
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}
