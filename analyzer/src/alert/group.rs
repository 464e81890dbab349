//! Meridian's own grouping for webhooks, as Alertmanager groups: alerts sharing the `group_by`
//! labels are one group and one notification; a new group waits `group_wait` for more alerts,
//! a changed group is notified again after `group_interval`, an unchanged firing one is
//! repeated after `repeat_interval`, and resolved alerts are sent once (`send_resolved`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::config::WebhookConfig;
use super::state::{Alert, Labels, Phase};

/// One notification: a group and its alerts.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// `{}:{label="value", ...}`, as Alertmanager's `groupKey`.
    pub key: String,
    /// The group's labels (the `group_by` labels the alerts have).
    pub labels: Labels,
    /// Firing alerts, then resolved ones (when `send_resolved`).
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Group {
    labels: Labels,
    next_ns: i64,
    notified: Option<Sent>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Sent {
    at_ns: i64,
    firing: BTreeSet<String>,
    resolved: BTreeSet<String>,
}

/// The groups of one webhook.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Grouper {
    groups: BTreeMap<String, Group>,
}

fn ns(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// The group key of `labels` under `group_by`.
pub fn group_labels(labels: &Labels, group_by: &[String]) -> Labels {
    group_by
        .iter()
        .filter_map(|k| labels.get(k).map(|v| (k.clone(), v.clone())))
        .collect()
}

fn key(labels: &Labels) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{}}:{{{}}}", inner.join(", "))
}

impl Grouper {
    /// The notifications due at `now_ns`, given every alert known now.
    pub fn due<'a>(
        &mut self,
        config: &WebhookConfig,
        alerts: impl Iterator<Item = &'a Alert>,
        now_ns: i64,
    ) -> Vec<Notification> {
        let mut current: BTreeMap<String, (Labels, Vec<&Alert>)> = BTreeMap::new();
        for a in alerts.filter(|a| a.phase != Phase::Pending) {
            let labels = group_labels(&a.instance.labels, &config.group_by);
            let entry = current
                .entry(key(&labels))
                .or_insert_with(|| (labels, Vec::new()));
            entry.1.push(a);
        }
        self.groups.retain(|k, _| current.contains_key(k));
        let mut out = Vec::new();
        for (k, (labels, members)) in current {
            let firing: BTreeSet<String> = members
                .iter()
                .filter(|a| a.phase == Phase::Firing)
                .map(|a| a.fingerprint.clone())
                .collect();
            let resolved: BTreeSet<String> = members
                .iter()
                .filter(|a| a.phase == Phase::Resolved)
                .map(|a| a.fingerprint.clone())
                .collect();
            let group = match self.groups.get_mut(&k) {
                Some(g) => g,
                None if firing.is_empty() => continue,
                None => self.groups.entry(k.clone()).or_insert(Group {
                    labels: labels.clone(),
                    next_ns: now_ns + ns(config.group_wait),
                    notified: None,
                }),
            };
            if now_ns < group.next_ns {
                continue;
            }
            let send = match &group.notified {
                None => true,
                Some(sent) => {
                    let new_firing = firing != sent.firing;
                    let new_resolved = config.send_resolved && !resolved.is_subset(&sent.resolved);
                    let repeat =
                        !firing.is_empty() && now_ns - sent.at_ns >= ns(config.repeat_interval);
                    new_firing && !firing.is_subset(&sent.firing) || new_resolved || repeat
                }
            };
            group.next_ns = now_ns + ns(config.group_interval);
            if send {
                let mut list: Vec<Alert> = members
                    .iter()
                    .filter(|a| a.phase == Phase::Firing)
                    .map(|a| (*a).clone())
                    .collect();
                if config.send_resolved {
                    list.extend(
                        members
                            .iter()
                            .filter(|a| a.phase == Phase::Resolved)
                            .map(|a| (*a).clone()),
                    );
                }
                if !list.is_empty() {
                    out.push(Notification {
                        key: k.clone(),
                        labels: group.labels.clone(),
                        alerts: list,
                    });
                }
                group.notified = Some(Sent {
                    at_ns: now_ns,
                    firing: firing.clone(),
                    resolved: resolved.clone(),
                });
            }
            if firing.is_empty() {
                // Every alert resolved and said so (or not wanted): the group is over.
                self.groups.remove(&k);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::alert::state::{fingerprint, Instance};

    const S: i64 = 1_000_000_000;

    fn alert(rule: &str, route: &str, phase: Phase) -> Alert {
        let labels: Labels = [
            ("alertname", rule),
            ("region", "eu"),
            ("service_name", "api"),
            ("route", route),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Alert {
            rule: rule.into(),
            fingerprint: fingerprint(&labels),
            instance: Instance {
                labels,
                annotations: BTreeMap::new(),
                value: 1.0,
                evidence: serde_json::Value::Null,
            },
            phase,
            active_at_ns: 0,
            last_seen_ns: 0,
            resolved_at_ns: (phase == Phase::Resolved).then_some(0),
        }
    }

    fn config() -> WebhookConfig {
        WebhookConfig {
            url: String::new(),
            group_by: vec!["alertname".into(), "region".into(), "service_name".into()],
            group_wait: Duration::from_secs(10),
            group_interval: Duration::from_secs(60),
            repeat_interval: Duration::from_secs(3600),
            send_resolved: true,
            secret: String::new(),
            max_attempts: 1,
            timeout: Duration::from_secs(1),
        }
    }

    /// Scenario: three alerts of one rule on three routes of one region (one incident), a
    /// fourth joining later, all resolving; checked every second for two hours.
    /// Guarantees: one notification after `group_wait` with the first three; the joiner is
    /// sent after `group_interval`, not at once; nothing while unchanged until
    /// `repeat_interval`; one resolved notification at the next `group_interval` tick (5050 s:
    /// the group ticks every 60 s from 3670 s); then silence.
    #[test]
    fn one_incident_one_group_with_waits_and_repeats() {
        let c = config();
        let mut g = Grouper::default();
        let mut sent = Vec::new();
        for t in 0..7200 {
            let now = t * S;
            let mut alerts = vec![
                alert("A", "/a", Phase::Firing),
                alert("A", "/b", Phase::Firing),
                alert("A", "/c", Phase::Firing),
            ];
            if t >= 15 {
                alerts.push(alert("A", "/d", Phase::Firing));
            }
            if t >= 5000 {
                for a in &mut alerts {
                    a.phase = Phase::Resolved;
                }
            }
            for n in g.due(&c, alerts.iter(), now) {
                sent.push((
                    t,
                    n.alerts.len(),
                    n.alerts.iter().all(|a| a.phase == Phase::Resolved),
                ));
            }
        }
        assert_eq!(
            sent,
            vec![
                (10, 3, false),
                (70, 4, false),
                (3670, 4, false),
                (5050, 4, true)
            ]
        );
    }
}
