//! Alert instances and their lifecycle, as Prometheus keeps them: an instance is `pending`
//! from the first evaluation that returns it, `firing` once it has been returned for `for`,
//! and `resolved` when it has not been returned for `keep_firing_for`; a pending instance that
//! disappears is dropped. Resolved instances are kept for a while so notifiers can say so.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};

/// Labels of an alert instance (`alertname` among them).
pub type Labels = BTreeMap<String, String>;

/// What a rule found in one evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// Identity: `alertname` and the rule's labels.
    pub labels: Labels,
    /// Text for people, filled in.
    pub annotations: BTreeMap<String, String>,
    /// The value that made it an alert.
    #[serde(deserialize_with = "nan_as_null")]
    pub value: f64,
    /// Why (root-cause hints), stored in the `evidence` column.
    pub evidence: serde_json::Value,
}

/// A rule's timing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timing {
    /// Returned this long before firing.
    pub for_: Duration,
    /// Kept firing this long after it stops being returned.
    pub keep_firing_for: Duration,
}

/// The state of an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Returned, not yet for `for`.
    Pending,
    /// Firing.
    Firing,
    /// Was firing, no longer.
    Resolved,
}

impl Phase {
    /// The name in the `alerts` table and the APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Firing => "firing",
            Phase::Resolved => "resolved",
        }
    }
}

/// One alert and its history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The rule's name.
    pub rule: String,
    /// Stable identity of the labels.
    pub fingerprint: String,
    /// The latest instance.
    pub instance: Instance,
    /// Its state.
    pub phase: Phase,
    /// First returned (unix ns): `activeAt`, and `startsAt` once firing.
    pub active_at_ns: i64,
    /// Last returned, unix ns.
    pub last_seen_ns: i64,
    /// When it resolved, unix ns.
    pub resolved_at_ns: Option<i64>,
}

/// A change of state, for the `alerts` table and the notifiers.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// When, unix ns.
    pub at_ns: i64,
    /// The alert after the change.
    pub alert: Alert,
}

/// JSON has no NaN: serde_json writes it as `null`, read back here.
fn nan_as_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// `sha256` of the sorted labels, as 16 hex digits.
///
/// ```
/// # use meridian_analyzer::alert::state::{fingerprint, Labels};
/// let a: Labels = [("alertname".into(), "X".into()), ("region".into(), "eu".into())].into();
/// assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
/// assert_eq!(fingerprint(&a).len(), 16);
/// ```
pub fn fingerprint(labels: &Labels) -> String {
    let mut hash = Sha256::new();
    for (k, v) in labels {
        hash.update(k.as_bytes());
        hash.update([0xff]);
        hash.update(v.as_bytes());
        hash.update([0xfe]);
    }
    hex::encode(&hash.finalize()[..8])
}

/// Every alert of every rule.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct AlertBook {
    alerts: BTreeMap<String, Alert>,
}

fn ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl AlertBook {
    /// Applies one evaluation of `rule` at `now_ns`; returns the changes of state.
    pub fn observe(
        &mut self,
        rule: &str,
        timing: Timing,
        instances: Vec<Instance>,
        now_ns: i64,
    ) -> Vec<Transition> {
        let mut changes = Vec::new();
        let mut seen = Vec::new();
        for instance in instances {
            let fp = fingerprint(&instance.labels);
            seen.push(fp.clone());
            let alert = match self.alerts.get_mut(&fp) {
                Some(a) if a.phase != Phase::Resolved => {
                    a.instance = instance;
                    a.last_seen_ns = now_ns;
                    a
                }
                _ => {
                    let a = Alert {
                        rule: rule.to_owned(),
                        fingerprint: fp.clone(),
                        instance,
                        phase: Phase::Pending,
                        active_at_ns: now_ns,
                        last_seen_ns: now_ns,
                        resolved_at_ns: None,
                    };
                    self.alerts.insert(fp.clone(), a);
                    let a = self.alerts.get_mut(&fp).unwrap_or_else(|| unreachable!());
                    if !timing.for_.is_zero() {
                        changes.push(Transition {
                            at_ns: now_ns,
                            alert: a.clone(),
                        });
                    }
                    a
                }
            };
            if alert.phase == Phase::Pending && now_ns - alert.active_at_ns >= ns(timing.for_) {
                alert.phase = Phase::Firing;
                changes.push(Transition {
                    at_ns: now_ns,
                    alert: alert.clone(),
                });
            }
        }
        let mut dropped = Vec::new();
        for (fp, alert) in self.alerts.iter_mut() {
            if alert.rule != rule || seen.contains(fp) {
                continue;
            }
            match alert.phase {
                Phase::Pending => dropped.push(fp.clone()),
                Phase::Firing if now_ns - alert.last_seen_ns >= ns(timing.keep_firing_for) => {
                    alert.phase = Phase::Resolved;
                    alert.resolved_at_ns = Some(now_ns);
                    changes.push(Transition {
                        at_ns: now_ns,
                        alert: alert.clone(),
                    });
                }
                _ => {}
            }
        }
        for fp in dropped {
            self.alerts.remove(&fp);
        }
        changes
    }

    /// Resolves, at `now_ns`, the active alerts of rules not in `rules` (a rule removed from the
    /// configuration while the analyzer was down), so notifiers learn they ended.
    pub fn resolve_unknown(&mut self, rules: &[&str], now_ns: i64) -> Vec<Transition> {
        let mut changes = Vec::new();
        let mut dropped = Vec::new();
        for (fp, alert) in self.alerts.iter_mut() {
            if rules.contains(&alert.rule.as_str()) {
                continue;
            }
            match alert.phase {
                Phase::Pending => dropped.push(fp.clone()),
                Phase::Firing => {
                    alert.phase = Phase::Resolved;
                    alert.resolved_at_ns = Some(now_ns);
                    changes.push(Transition {
                        at_ns: now_ns,
                        alert: alert.clone(),
                    });
                }
                Phase::Resolved => {}
            }
        }
        for fp in dropped {
            self.alerts.remove(&fp);
        }
        changes
    }

    /// Forgets alerts resolved more than `retention` ago.
    pub fn expire(&mut self, retention: Duration, now_ns: i64) {
        self.alerts.retain(|_, a| {
            a.resolved_at_ns
                .is_none_or(|at| now_ns - at < ns(retention))
        });
    }

    /// Every alert known (pending, firing and recently resolved).
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn instance(region: &str) -> Instance {
        Instance {
            labels: [("alertname", "X"), ("region", region)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            annotations: BTreeMap::new(),
            value: 1.0,
            evidence: serde_json::Value::Null,
        }
    }

    fn phases(changes: &[Transition]) -> Vec<Phase> {
        changes.iter().map(|t| t.alert.phase).collect()
    }

    /// Scenario: a rule with `for` 20 s and `keep_firing_for` 30 s evaluated every 10 s; an
    /// instance returned for 40 s, then gone; another returned once.
    /// Guarantees: pending at once, firing after 20 s, resolved 30 s after it was last
    /// returned; the one-off pending instance is dropped without a firing; resolved ones expire.
    #[test]
    fn pending_firing_resolved_as_prometheus() {
        let timing = Timing {
            for_: Duration::from_secs(20),
            keep_firing_for: Duration::from_secs(30),
        };
        let mut book = AlertBook::default();
        assert_eq!(
            phases(&book.observe("X", timing, vec![instance("eu"), instance("us")], 0)),
            vec![Phase::Pending, Phase::Pending]
        );
        assert!(book
            .observe("X", timing, vec![instance("eu")], 10 * S)
            .is_empty());
        assert_eq!(
            phases(&book.observe("X", timing, vec![instance("eu")], 20 * S)),
            vec![Phase::Firing]
        );
        assert_eq!(book.alerts().count(), 1, "us dropped while pending");
        book.observe("X", timing, vec![instance("eu")], 40 * S);
        assert!(
            book.observe("X", timing, vec![], 60 * S).is_empty(),
            "kept firing"
        );
        let resolved = book.observe("X", timing, vec![], 70 * S);
        assert_eq!(phases(&resolved), vec![Phase::Resolved]);
        assert_eq!(resolved[0].alert.resolved_at_ns, Some(70 * S));
        book.expire(Duration::from_secs(60), 100 * S);
        assert_eq!(book.alerts().count(), 1);
        book.expire(Duration::from_secs(60), 130 * S);
        assert_eq!(book.alerts().count(), 0);
    }

    /// Scenario: `for` 0; an instance returned again after it resolved.
    /// Guarantees: firing at the first evaluation (no pending row), and a new alert with a new
    /// start after the resolution.
    #[test]
    fn zero_for_fires_at_once_and_returns_as_new() {
        let timing = Timing::default();
        let mut book = AlertBook::default();
        assert_eq!(
            phases(&book.observe("X", timing, vec![instance("eu")], 0)),
            vec![Phase::Firing]
        );
        assert_eq!(
            phases(&book.observe("X", timing, vec![], S)),
            vec![Phase::Resolved]
        );
        let again = book.observe("X", timing, vec![instance("eu")], 2 * S);
        assert_eq!(phases(&again), vec![Phase::Firing]);
        assert_eq!(again[0].alert.active_at_ns, 2 * S);
    }
}
