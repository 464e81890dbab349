//! Alerting: built-in rules and user rules over SQL evaluated on a schedule, alerts kept as
//! Prometheus keeps them (pending → firing → resolved, each change a row in `alerts`), pushed
//! to Alertmanager and grouped by Meridian for webhooks, each anomaly alert with its reason
//! attached (the route and status behind the change, exemplar traces, what else moved).

pub mod builtin;
pub mod collectors;
pub mod config;
pub mod group;
pub mod hints;
pub mod http;
pub mod notify;
pub mod rows;
pub mod rule;
pub mod saved;
pub mod state;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use meridian_collector::admin::ReadyCheck;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use config::AlertingConfig;
use state::{AlertBook, Instance, Phase, Timing, Transition};

use crate::pipeline::Pipeline;
use crate::query::sql::QueryEngine;
use crate::store::{Dataset, Store};
use crate::telemetry::AnalyzerMetrics;

/// A webhook's receiver name, its queue and its groups.
type Sender = (String, mpsc::Sender<serde_json::Value>, group::Grouper);

/// The alerting stage, built; [`Alerting::run`] evaluates and notifies until stopped.
pub struct Alerting {
    config: AlertingConfig,
    engine: Arc<QueryEngine>,
    pipeline: Arc<Pipeline>,
    store: Arc<Store>,
    ready: ReadyCheck,
    metrics: AnalyzerMetrics,
    book: Arc<Mutex<AlertBook>>,
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

impl Alerting {
    /// Alerting over the analyzer's engine, pipeline and store.
    pub fn new(
        config: AlertingConfig,
        engine: Arc<QueryEngine>,
        pipeline: Arc<Pipeline>,
        store: Arc<Store>,
        ready: ReadyCheck,
        metrics: AnalyzerMetrics,
    ) -> Self {
        Self {
            config,
            engine,
            pipeline,
            store,
            ready,
            metrics,
            book: Arc::default(),
        }
    }

    /// `GET /api/v1/alerts`.
    pub fn router(&self) -> Router {
        http::router(Arc::clone(&self.book))
    }

    fn observe(
        &self,
        rule: &str,
        timing: Timing,
        instances: Vec<Instance>,
        now: i64,
    ) -> Vec<Transition> {
        self.book
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(rule, timing, instances, now)
    }

    /// The built-in rules, once.
    async fn builtins(&self, now: i64) -> Vec<Transition> {
        let b = &self.config.builtin;
        let endpoints = self.pipeline.endpoints();
        let mut evaluated = Vec::new();
        if b.anomaly {
            match builtin::anomalies(&self.engine, b, &endpoints).await {
                Ok(e) => evaluated.push(e),
                Err(e) => {
                    tracing::warn!(error = %e, "built-in rule RegionAnomaly failed");
                    self.metrics
                        .alert_rule_errors
                        .with_label_values(&["RegionAnomaly"])
                        .inc();
                }
            }
        }
        if b.endpoint_unhealthy {
            evaluated.push(builtin::endpoints(b, &endpoints));
        }
        evaluated.extend(builtin::recommendations(b, &self.pipeline.board().active()));
        if b.pipeline {
            evaluated.push(builtin::pipeline(b, (self.ready)()));
        }
        if b.collectors {
            match collectors::evaluate(&self.engine, b, now).await {
                Ok(list) => evaluated.extend(list),
                Err(e) => {
                    tracing::warn!(error = %e, "built-in collector rules failed");
                    self.metrics
                        .alert_rule_errors
                        .with_label_values(&["MeridianCollector"])
                        .inc();
                }
            }
        }
        let mut changes = Vec::new();
        for e in evaluated {
            changes.extend(self.observe(e.rule, e.timing, e.instances, now));
        }
        changes
    }

    /// The rules evaluated with this configuration: built-in and user rules.
    fn rule_names(&self) -> Vec<&str> {
        let b = &self.config.builtin;
        let builtin = [
            (b.anomaly, "RegionAnomaly"),
            (b.endpoint_unhealthy, "EndpointUnhealthy"),
            (b.failover, "FailoverRecommended"),
            (b.capacity, "CapacityShortfall"),
            (b.pipeline, "MeridianAnalyzerNotReady"),
            (b.collectors, "MeridianCollectorSilent"),
            (b.collectors, "MeridianCollectorBufferFilling"),
            (b.collectors, "MeridianCollectorBehind"),
        ];
        builtin
            .into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, name)| name)
            .chain(self.config.rules.iter().map(|r| r.name.as_str()))
            .collect()
    }

    /// Saves the alerts, what was sent and the webhook groups with the store's objects.
    async fn save(&self, resender: &notify::Resender, senders: &[Sender]) {
        let bytes = {
            let book = self.book.lock().unwrap_or_else(|p| p.into_inner());
            let groupers = senders
                .iter()
                .zip(&self.config.webhooks)
                .map(|((_, _, g), hook)| (hook.url.as_str(), g))
                .collect();
            saved::encode(&saved::SavedRef::new(&book, resender, groupers))
        };
        if let Some(bytes) = bytes {
            saved::put(&self.store, bytes).await;
        }
    }

    /// Evaluates the rules on schedule, stores each change of state, notifies, until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        if !self.config.enabled {
            return;
        }
        let mut restored = saved::load(&self.store).await;
        let mut carried = {
            let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
            *book = std::mem::take(&mut restored.book);
            book.resolve_unknown(&self.rule_names(), now_ns())
        };
        let mut senders = Vec::new();
        let mut workers = Vec::new();
        for (i, hook) in self.config.webhooks.iter().enumerate() {
            let (tx, rx) = mpsc::channel(256);
            senders.push((
                format!("meridian-webhook-{i}"),
                tx,
                restored.groupers.remove(&hook.url).unwrap_or_default(),
            ));
            workers.push(tokio::spawn(notify::webhook(
                hook.clone(),
                rx,
                self.metrics.clone(),
                stop.clone(),
            )));
        }
        let client = reqwest::Client::new();
        let mut resender = restored.resender;
        let mut last_builtin: Option<Instant> = None;
        let mut last_rule: HashMap<String, Instant> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => break,
            }
            let now = now_ns();
            let mut changes = std::mem::take(&mut carried);
            if last_builtin.is_none_or(|t| t.elapsed() >= self.config.evaluate_every) {
                last_builtin = Some(Instant::now());
                changes.extend(self.builtins(now).await);
            }
            for rule in &self.config.rules {
                if last_rule
                    .get(&rule.name)
                    .is_some_and(|t| t.elapsed() < rule.every)
                {
                    continue;
                }
                last_rule.insert(rule.name.clone(), Instant::now());
                let timing = Timing {
                    for_: rule.for_,
                    keep_firing_for: rule.keep_firing_for,
                };
                match rule::evaluate(&self.engine, rule).await {
                    Ok(instances) => {
                        changes.extend(self.observe(&rule.name, timing, instances, now))
                    }
                    Err(e) => {
                        // A failing query changes nothing: its alerts neither fire nor resolve.
                        tracing::warn!(rule = %rule.name, error = %e, "alert rule failed");
                        self.metrics
                            .alert_rule_errors
                            .with_label_values(&[rule.name.as_str()])
                            .inc();
                    }
                }
            }
            for c in &changes {
                let l = &c.alert.instance.labels;
                tracing::info!(
                    alertname = %c.alert.rule,
                    state = c.alert.phase.as_str(),
                    region = l.get("region").map_or("", String::as_str),
                    service = l.get("service_name").map_or("", String::as_str),
                    summary = c.alert.instance.annotations.get("summary").map_or("", String::as_str),
                    "alert"
                );
            }
            if !changes.is_empty() {
                match rows::batch(&changes) {
                    Ok(batch) => {
                        if let Err(e) = self.store.insert_derived(Dataset::Alerts, vec![batch]) {
                            tracing::error!(error = %e, "storing alert transitions failed");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "building alert rows failed"),
                }
            }
            let mut dirty = !changes.is_empty();
            // Notify from a snapshot, without holding the book across awaits.
            let alerts: Vec<state::Alert> = {
                let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
                book.expire(self.config.resolved_retention, now);
                book.alerts().cloned().collect()
            };
            for phase in [Phase::Pending, Phase::Firing, Phase::Resolved] {
                let n = alerts.iter().filter(|a| a.phase == phase).count();
                self.metrics
                    .alerts
                    .with_label_values(&[phase.as_str()])
                    .set(n as i64);
            }
            if !self.config.alertmanagers.is_empty() {
                let due = resender.due(&self.config, alerts.iter(), now);
                if !due.is_empty()
                    && notify::push_alertmanagers(&client, &self.config, &due, now, &self.metrics)
                        .await
                {
                    resender.sent(&due, now);
                    dirty = true;
                }
                let known: Vec<String> = alerts.iter().map(|a| a.fingerprint.clone()).collect();
                resender.retain(&known);
            }
            for ((receiver, tx, grouper), hook) in senders.iter_mut().zip(&self.config.webhooks) {
                for n in grouper.due(hook, alerts.iter(), now) {
                    dirty = true;
                    let payload = notify::webhook_payload(&self.config, receiver, &n);
                    if tx.try_send(payload).is_err() {
                        tracing::warn!(url = %hook.url, "alert webhook queue full; notification dropped");
                        self.metrics
                            .alert_notifications
                            .with_label_values(&["webhook", "dropped"])
                            .inc();
                    }
                }
            }
            if dirty {
                self.save(&resender, &senders).await;
            }
        }
        self.save(&resender, &senders).await;
        drop(senders);
        for w in workers {
            let _ = w.await;
        }
    }
}
