//! The board: the published desired state — routing weights per service and region (the
//! engine's, with manual overrides on top), the active recommendations, and what each agent
//! says it applied. Level-triggered: every read is the whole desired state with a version, so
//! an agent that missed an event loses nothing by reconciling to it. Every change is also an
//! [`Event`] (for SSE, Kafka and webhooks), kept in a short log so a client can resume from a
//! version.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::recommendation::{Recommendation, State};
use super::routing::{Changes, Phase, RegionRoute};

/// Events kept for clients resuming from a version.
const LOG: usize = 1024;

/// A manual override of one region's weight for one service (as an ARC routing control): it
/// wins over automation until removed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Override {
    /// The service (`*` for every service).
    pub service: String,
    /// The region.
    pub region: String,
    /// The weight, 0..255.
    pub weight: u8,
    /// Why, for the people reading `GET /api/v1/routing`.
    #[serde(default)]
    pub reason: String,
    /// When it was set, unix ns.
    #[serde(default)]
    pub set_at_ns: i64,
}

/// What an agent reports it applied (`POST /api/v1/agents/{id}/status`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// The routing version it reconciled to.
    pub version: u64,
    /// Weights it applied, per service and region.
    #[serde(default)]
    pub applied: BTreeMap<String, BTreeMap<String, u8>>,
    /// The gateway it drives (`envoy`, `traefik`).
    #[serde(default)]
    pub gateway: Option<String>,
    /// Why applying failed, if it did.
    #[serde(default)]
    pub error: Option<String>,
    /// When it reported, unix ns (set by the analyzer).
    #[serde(default)]
    pub at_ns: i64,
}

/// One change, as sent to SSE clients, Kafka and webhooks.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// The board's version after the change.
    pub version: u64,
    /// `routing` (the whole desired routing) or `recommendation` (one recommendation).
    pub kind: &'static str,
    /// The service it concerns (`*` for a routing snapshot of all services).
    pub service: String,
    /// The payload.
    pub data: serde_json::Value,
}

/// Why an override was refused.
#[derive(Debug, thiserror::Error)]
pub enum OverrideError {
    /// It would leave every region of the service at 0 (ARC's assertion rule).
    #[error("refused: every region of `{0}` would be at weight 0; keep at least one on")]
    AllOff(String),
    /// The service or region is empty.
    #[error("service and region must not be empty")]
    Empty,
}

/// What survives a restart: the version (agents compare it) and the overrides.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SavedBoard {
    version: u64,
    overrides: Vec<Override>,
}

#[derive(Default)]
struct Inner {
    version: u64,
    updated_ns: i64,
    computed: BTreeMap<String, BTreeMap<String, RegionRoute>>,
    overrides: BTreeMap<(String, String), Override>,
    active: BTreeMap<String, Recommendation>,
    agents: BTreeMap<String, AgentStatus>,
    log: VecDeque<Event>,
}

/// The published desired state; shared by the pipeline (writer) and the HTTP API.
pub struct Board {
    inner: RwLock<Inner>,
    events: broadcast::Sender<Event>,
}

impl Default for Board {
    fn default() -> Self {
        Self {
            inner: RwLock::default(),
            events: broadcast::channel(LOG).0,
        }
    }
}

fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

/// A recommendation as the API shows it.
pub fn recommendation_json(r: &Recommendation) -> serde_json::Value {
    serde_json::json!({
        "id": r.id,
        "time": rfc3339(r.time_ns),
        "kind": r.kind,
        "region": r.region,
        "service": r.service,
        "target": r.target,
        "previous": r.previous,
        "reason": r.reason,
        "evidence": r.evidence,
        "state": r.state,
        "expires_at": r.expires_at_ns.map(rfc3339),
        "apply": r.apply,
    })
}

impl Inner {
    /// The weights agents should apply for `service`: the engine's, overrides on top.
    fn effective(&self, service: &str) -> BTreeMap<String, (u8, Option<&Override>)> {
        let mut out: BTreeMap<String, (u8, Option<&Override>)> = self
            .computed
            .get(service)
            .map(|routes| {
                routes
                    .iter()
                    .map(|(r, x)| (r.clone(), (x.weight, None)))
                    .collect()
            })
            .unwrap_or_default();
        for ((s, region), o) in &self.overrides {
            if s == service || s == super::signals::ALL_SERVICES {
                out.insert(region.clone(), (o.weight, Some(o)));
            }
        }
        out
    }

    fn services(&self) -> Vec<String> {
        let mut s: Vec<String> = self.computed.keys().cloned().collect();
        s.extend(self.overrides.keys().map(|(s, _)| s.clone()));
        s.sort();
        s.dedup();
        s
    }

    fn routing(&self) -> serde_json::Value {
        let mut services = serde_json::Map::new();
        for service in self.services() {
            let computed = self.computed.get(&service);
            let mut regions = serde_json::Map::new();
            for (region, (weight, o)) in self.effective(&service) {
                let route = computed.and_then(|c| c.get(&region));
                let state = match (o, route.map(|r| r.phase)) {
                    (Some(_), _) => "override",
                    (None, Some(Phase::Drained)) => "drained",
                    (None, Some(Phase::Degraded)) => "degraded",
                    (None, Some(Phase::FailingBack)) => "failing_back",
                    (None, _) => "normal",
                };
                regions.insert(
                    region.clone(),
                    serde_json::json!({
                        "weight": weight,
                        "normal_weight": route.map(|r| r.normal),
                        "state": state,
                        "reason": o.map_or_else(
                            || route.map_or_else(String::new, |r| r.reason.clone()),
                            |o| format!("manual override: {}", o.reason),
                        ),
                        "since": route.map(|r| rfc3339(r.since_ns)),
                        "automatic_weight": route.map(|r| r.weight),
                        "recommendation": route.and_then(|r| r.recommendation.clone()),
                    }),
                );
            }
            services.insert(service, serde_json::json!({ "regions": regions }));
        }
        let agents: Vec<serde_json::Value> = self
            .agents
            .iter()
            .map(|(id, a)| {
                let in_sync = !a.applied.is_empty()
                    && a.applied.iter().all(|(service, applied)| {
                        self.effective(service)
                            .iter()
                            .all(|(r, (w, _))| applied.get(r).is_none_or(|x| x == w))
                    });
                serde_json::json!({
                    "id": id,
                    "version": a.version,
                    "behind": self.version.saturating_sub(a.version),
                    "applied": a.applied,
                    "gateway": a.gateway,
                    "error": a.error,
                    "in_sync": in_sync && a.error.is_none(),
                    "at": rfc3339(a.at_ns),
                })
            })
            .collect();
        serde_json::json!({
            "version": self.version,
            "updated_at": rfc3339(self.updated_ns),
            "services": services,
            "overrides": self.overrides.values().map(|o| serde_json::json!({
                "service": o.service, "region": o.region, "weight": o.weight,
                "reason": o.reason, "set_at": rfc3339(o.set_at_ns),
            })).collect::<Vec<_>>(),
            "agents": agents,
        })
    }

    fn weights_snapshot(&self) -> BTreeMap<String, BTreeMap<String, u8>> {
        self.services()
            .into_iter()
            .map(|s| {
                let w = self
                    .effective(&s)
                    .into_iter()
                    .map(|(r, (w, _))| (r, w))
                    .collect();
                (s, w)
            })
            .collect()
    }

    fn push(
        &mut self,
        events: &broadcast::Sender<Event>,
        kind: &'static str,
        service: String,
        data: serde_json::Value,
    ) {
        self.version += 1;
        let event = Event {
            version: self.version,
            kind,
            service,
            data,
        };
        self.log.push_back(event.clone());
        if self.log.len() > LOG {
            self.log.pop_front();
        }
        // No subscriber is fine: the state is level-triggered.
        let _ = events.send(event);
    }

    fn push_routing(&mut self, events: &broadcast::Sender<Event>) {
        let mut snapshot = self.routing();
        // The snapshot is the state at the event's version (push increments it).
        snapshot["version"] = serde_json::json!(self.version + 1);
        self.push(events, "routing", "*".into(), snapshot);
    }
}

impl Board {
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes the engine's desired routing and what changed with it; returns the retired
    /// recommendations in their new state (for the `recommendations` table).
    pub fn publish(
        &self,
        computed: &BTreeMap<String, BTreeMap<String, RegionRoute>>,
        changes: &Changes,
        now_ns: i64,
    ) -> Vec<Recommendation> {
        let mut retired = Vec::new();
        let mut inner = self.write();
        let before = inner.weights_snapshot();
        let first = inner.computed.is_empty() && !computed.is_empty();
        inner.computed = computed.clone();
        for (id, state) in &changes.retired {
            if let Some(mut r) = inner.active.remove(id) {
                r.state = *state;
                r.time_ns = now_ns;
                let data = recommendation_json(&r);
                inner.push(&self.events, "recommendation", r.service.clone(), data);
                retired.push(r);
            }
        }
        for r in &changes.made {
            if r.state == State::Active {
                inner.active.insert(r.id.clone(), r.clone());
            }
            let data = recommendation_json(r);
            inner.push(&self.events, "recommendation", r.service.clone(), data);
        }
        if first || inner.weights_snapshot() != before {
            inner.updated_ns = now_ns;
            inner.push_routing(&self.events);
        }
        retired
    }

    /// `GET /api/v1/routing`.
    pub fn routing(&self) -> serde_json::Value {
        self.read().routing()
    }

    /// The desired weights per service and region (overrides applied), and the version.
    pub fn weights(&self) -> (u64, BTreeMap<String, BTreeMap<String, u8>>) {
        let inner = self.read();
        (inner.version, inner.weights_snapshot())
    }

    /// The active recommendations, newest first.
    pub fn active(&self) -> Vec<Recommendation> {
        let mut recs: Vec<Recommendation> = self.read().active.values().cloned().collect();
        recs.sort_by_key(|r| std::cmp::Reverse(r.time_ns));
        recs
    }

    /// The current version.
    pub fn version(&self) -> u64 {
        self.read().version
    }

    /// Sets an override; refused if it would turn every region of the service off.
    pub fn set_override(&self, mut o: Override) -> Result<serde_json::Value, OverrideError> {
        if o.service.trim().is_empty() || o.region.trim().is_empty() {
            return Err(OverrideError::Empty);
        }
        let mut inner = self.write();
        o.set_at_ns = now_ns();
        let key = (o.service.clone(), o.region.clone());
        let previous = inner.overrides.insert(key.clone(), o.clone());
        let services = if o.service == super::signals::ALL_SERVICES {
            inner.services()
        } else {
            vec![o.service.clone()]
        };
        let all_off = services.iter().any(|s| {
            let w = inner.effective(s);
            !w.is_empty() && w.values().all(|(w, _)| *w == 0)
        });
        if all_off {
            match previous {
                Some(p) => inner.overrides.insert(key, p),
                None => inner.overrides.remove(&key),
            };
            return Err(OverrideError::AllOff(o.service));
        }
        inner.updated_ns = o.set_at_ns;
        inner.push_routing(&self.events);
        Ok(inner.routing())
    }

    /// Removes an override; whether there was one.
    pub fn remove_override(&self, service: &str, region: &str) -> bool {
        let mut inner = self.write();
        let removed = inner
            .overrides
            .remove(&(service.to_owned(), region.to_owned()))
            .is_some();
        if removed {
            inner.updated_ns = now_ns();
            inner.push_routing(&self.events);
        }
        removed
    }

    /// Records what an agent applied.
    pub fn agent_status(&self, id: &str, mut status: AgentStatus) {
        status.at_ns = now_ns();
        self.write().agents.insert(id.to_owned(), status);
    }

    /// Events after `since` (when the log still holds them all) and a receiver for the next
    /// ones; without `since`, or when it is too old, a routing snapshot and the active
    /// recommendations come first instead.
    pub fn subscribe(&self, since: Option<u64>) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let inner = self.read();
        let rx = self.events.subscribe();
        let covered = since.is_some_and(|v| {
            v >= inner.version || inner.log.front().is_some_and(|e| e.version <= v + 1)
        });
        let replay = match since {
            Some(v) if covered => inner
                .log
                .iter()
                .filter(|e| e.version > v)
                .cloned()
                .collect(),
            _ => {
                let mut first = vec![Event {
                    version: inner.version,
                    kind: "routing",
                    service: "*".into(),
                    data: inner.routing(),
                }];
                first.extend(inner.active.values().map(|r| Event {
                    version: inner.version,
                    kind: "recommendation",
                    service: r.service.clone(),
                    data: recommendation_json(r),
                }));
                first
            }
        };
        (replay, rx)
    }

    /// What to save across restarts.
    pub fn saved(&self) -> SavedBoard {
        let inner = self.read();
        SavedBoard {
            version: inner.version,
            overrides: inner.overrides.values().cloned().collect(),
        }
    }

    /// Restores the version and overrides.
    pub fn restore(&self, saved: SavedBoard) {
        let mut inner = self.write();
        inner.version = saved.version;
        inner.overrides = saved
            .overrides
            .into_iter()
            .map(|o| ((o.service.clone(), o.region.clone()), o))
            .collect();
    }
}
