//! The reconcile loop: desired routing in (event stream, and a full fetch every `resync`),
//! safety rules, the gateway updated when its weights differ, the result reported back.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus::Registry;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::client::{Analyzer, Status, Update};
use crate::config::AgentConfig;
use crate::desired::Routing;
use crate::error::AgentError;
use crate::gateway::{Gateway, Planned, TargetSpec};
use crate::metrics::AgentMetrics;
use crate::scale::{Outcome, ScalingHook};

/// What the agent last applied, for reports and `/readyz`.
#[derive(Clone, Debug, Default)]
struct Applied {
    /// The plans the gateway serves (none until the first successful apply).
    plans: Option<Vec<Planned>>,
    /// The routing version they came from.
    version: u64,
    /// What the analyzer asked for, per service, at that version.
    requested: BTreeMap<String, BTreeMap<String, u8>>,
    /// Why the last reconcile failed, if it did.
    error: Option<String>,
    /// A routing has been received and reconciled.
    following: bool,
}

/// The agent: one gateway, one analyzer.
pub struct Agent<G: Gateway> {
    config: AgentConfig,
    gateway: G,
    specs: Vec<TargetSpec>,
    analyzer: Analyzer,
    metrics: AgentMetrics,
    registry: Registry,
    hook: ScalingHook,
    applied: Arc<Mutex<Applied>>,
}

impl<G: Gateway> Agent<G> {
    /// An agent driving `gateway` as `config` says; its metrics go to `registry`.
    pub fn new(config: AgentConfig, gateway: G, registry: Registry) -> Result<Self, AgentError> {
        config.validate()?;
        let metrics = AgentMetrics::new(&registry)?;
        Ok(Self {
            analyzer: Analyzer::new(
                &config.analyzer,
                &config.tls,
                config.timeout,
                config.token(),
            )?,
            hook: ScalingHook::new(config.scaling.clone()),
            specs: gateway.targets(),
            gateway,
            config,
            metrics,
            registry,
            applied: Arc::default(),
        })
    }

    /// Serves `/healthz`, `/readyz` (ready once a routing has been received and applied
    /// without error) and `/metrics` on `listen`, and reconciles until `stop`.
    pub async fn run(mut self, stop: CancellationToken) -> Result<(), AgentError> {
        let listener = tokio::net::TcpListener::bind(self.config.listen)
            .await
            .map_err(|source| AgentError::Listen {
                addr: self.config.listen,
                source,
            })?;
        let applied = Arc::clone(&self.applied);
        let ready: meridian_collector::admin::ReadyCheck = Arc::new(move || {
            let a = applied.lock().unwrap_or_else(|p| p.into_inner());
            match (a.following, &a.error) {
                (true, None) => Ok(()),
                (true, Some(e)) => Err(format!("serving the last applied weights; {e}")),
                (false, e) => Err(format!(
                    "no routing received from the analyzer yet{}",
                    e.as_ref().map_or(String::new(), |e| format!(": {e}"))
                )),
            }
        });
        // The agent serves only probes and metrics, on loopback by default.
        let open = meridian_collector::auth::Auth::open();
        let app = meridian_collector::admin::router(self.registry.clone(), ready, &open);
        let server_stop = stop.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(server_stop.cancelled_owned())
                .await
        });
        tracing::info!(
            id = %self.config.id,
            analyzer = %self.config.analyzer,
            gateway = self.gateway.kind(),
            dry_run = self.config.dry_run,
            listen = %self.config.listen,
            "agent following the analyzer"
        );

        let (tx, mut rx) = mpsc::channel(64);
        let follower = tokio::spawn(self.analyzer.clone().follow(
            tx,
            self.metrics.stream_connected.clone(),
            stop.clone(),
        ));
        let mut tick = tokio::time::interval(self.config.resync);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.resync().await,
                Some(update) = rx.recv() => match update {
                    Update::Routing(routing) => {
                        if self.reconcile(&routing).await {
                            self.report().await;
                        }
                    }
                    Update::Recommendation(rec) => self.scale(&rec).await,
                },
                () = stop.cancelled() => break,
            }
        }
        follower.abort();
        let _ = server.await;
        Ok(())
    }

    /// The full reconcile: fetch, apply, scaling, report (a heartbeat too).
    async fn resync(&mut self) {
        match self.analyzer.routing().await {
            Ok(routing) => {
                self.metrics.analyzer_up.set(1);
                self.reconcile(&routing).await;
                match self.analyzer.recommendations().await {
                    Ok(recs) => {
                        for rec in recs {
                            self.scale(&rec).await;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "recommendations not read"),
                }
                self.report().await;
            }
            Err(e) => {
                self.metrics.analyzer_up.set(0);
                tracing::warn!(error = %e, "analyzer unreachable; the gateway keeps the last applied weights");
            }
        }
    }

    /// Applies `routing` if its weights differ from what the gateway serves; returns whether
    /// anything was recorded (applied, refused or failed) that is worth reporting.
    async fn reconcile(&mut self, routing: &Routing) -> bool {
        let current = self.lock().plans.clone();
        // A target the routing says nothing about (an analyzer just started, no probes or
        // traffic seen yet) keeps what the gateway serves: the last applied weights, or the
        // gateway's own configuration when the agent has applied nothing yet.
        let plans: Vec<Planned> = self
            .specs
            .iter()
            .filter_map(|spec| {
                if routing.knows(spec) {
                    return Some(routing.plan(spec));
                }
                current
                    .as_ref()
                    .and_then(|c| c.iter().find(|p| p.name == spec.name))
                    .cloned()
            })
            .collect();
        if plans.is_empty() {
            let mut a = self.lock();
            a.following = true;
            a.version = routing.version;
            return false;
        }
        if let Some(all_off) = plans
            .iter()
            .find(|p| p.weights.values().all(|w| w.weight == 0))
        {
            let message = format!(
                "routing v{} puts every region of `{}` at 0; refused, the gateway keeps the last applied weights",
                routing.version, all_off.name
            );
            let mut a = self.lock();
            if a.error.as_deref() != Some(message.as_str()) {
                tracing::error!("{message}");
                self.metrics.applies.with_label_values(&["refused"]).inc();
            }
            a.error = Some(message);
            return true;
        }
        let unchanged = current.as_ref().is_some_and(|c| {
            c.len() == plans.len() && c.iter().zip(&plans).all(|(a, b)| a.same_weights(b))
        });
        if unchanged {
            let mut a = self.lock();
            let moved = a.version != routing.version || a.error.is_some();
            a.version = routing.version;
            a.requested = routing.requested(&self.specs);
            a.error = None;
            a.following = true;
            self.metrics.version.set(routing.version as i64);
            return moved;
        }
        self.log_changes(current.as_deref(), &plans, routing.version);
        if self.config.dry_run {
            let mut a = self.lock();
            a.plans = Some(plans);
            a.version = routing.version;
            a.following = true;
            return false;
        }
        let started = Instant::now();
        let result = self.gateway.apply(&plans).await;
        let mut a = self.lock();
        match result {
            Ok(()) => {
                let took = started.elapsed();
                self.metrics.apply_seconds.observe(took.as_secs_f64());
                self.metrics.applies.with_label_values(&["applied"]).inc();
                self.metrics.version.set(routing.version as i64);
                for p in &plans {
                    for (region, w) in &p.weights {
                        self.metrics
                            .weight
                            .with_label_values(&[p.name.as_str(), region.as_str()])
                            .set(i64::from(w.weight));
                    }
                }
                tracing::info!(
                    version = routing.version,
                    gateway = self.gateway.kind(),
                    ms = took.as_secs_f64() * 1e3,
                    "applied"
                );
                a.plans = Some(plans);
                a.version = routing.version;
                a.requested = routing.requested(&self.specs);
                a.error = None;
                a.following = true;
            }
            Err(e) => {
                self.metrics.applies.with_label_values(&["failed"]).inc();
                tracing::error!(error = %e, version = routing.version, "not applied; the gateway keeps the last applied weights");
                a.error = Some(e.to_string());
            }
        }
        true
    }

    /// One line per weight that changes, with the recommendation's reason (on stdout in a dry
    /// run, in the log otherwise).
    fn log_changes(&self, current: Option<&[Planned]>, plans: &[Planned], version: u64) {
        for plan in plans {
            let before = current.and_then(|c| c.iter().find(|p| p.name == plan.name));
            for (region, w) in &plan.weights {
                let from = before.and_then(|b| b.weights.get(region)).map(|b| b.weight);
                if from == Some(w.weight) {
                    continue;
                }
                let from = from.map_or_else(|| "?".to_owned(), |f| f.to_string());
                let reason = w.reason.as_deref().unwrap_or("normal");
                if self.config.dry_run {
                    println!(
                        "would set {} {region} {from} → {} (v{version}: {reason})",
                        plan.name, w.weight
                    );
                } else {
                    tracing::info!(
                        target_name = %plan.name,
                        region = %region,
                        from = %from,
                        to = w.weight,
                        version,
                        reason,
                        "weight change"
                    );
                }
            }
        }
    }

    async fn scale(&mut self, rec: &serde_json::Value) {
        let outcome = self.hook.handle(rec, self.config.dry_run).await;
        let label = match outcome {
            Ok(Outcome::Ignored) => return,
            Ok(Outcome::Logged) => "logged",
            Ok(Outcome::Applied) => "applied",
            Err(e) => {
                tracing::error!(error = %e, id = rec["id"].as_str().unwrap_or_default(), "scaling hook failed; tried again at the next resync");
                "failed"
            }
        };
        self.metrics.scaling.with_label_values(&[label]).inc();
    }

    /// Tells the analyzer what the gateway serves (not in a dry run: nothing was applied).
    async fn report(&self) {
        if self.config.dry_run {
            return;
        }
        let status = {
            let a = self.lock();
            if a.plans.is_none() && a.error.is_none() {
                return;
            }
            Status {
                version: a.version,
                applied: a.requested.clone(),
                gateway: self.gateway.kind(),
                error: a.error.clone(),
            }
        };
        match self.analyzer.report(&self.config.id, &status).await {
            Ok(()) => self.metrics.analyzer_up.set(1),
            Err(e) => {
                self.metrics.analyzer_up.set(0);
                tracing::warn!(error = %e, "status not reported");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Applied> {
        self.applied.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::config::{EnvoyCluster, EnvoyConfig};

    /// Every plan a gateway was asked to apply, in order.
    type Calls = Arc<Mutex<Vec<Vec<Planned>>>>;

    /// A gateway that records what it was asked to apply (the agent's own trait, faked).
    struct Recording(Calls);

    impl Gateway for Recording {
        fn kind(&self) -> &'static str {
            "recording"
        }
        fn targets(&self) -> Vec<TargetSpec> {
            vec![TargetSpec {
                name: "global".into(),
                service: "*".into(),
                regions: vec!["a".into(), "b".into()],
            }]
        }
        async fn apply(&mut self, plan: &[Planned]) -> Result<(), AgentError> {
            self.0.lock().unwrap().push(plan.to_vec());
            Ok(())
        }
    }

    fn agent(dry_run: bool) -> (Agent<Recording>, Calls) {
        let config = AgentConfig {
            dry_run,
            envoy: Some(EnvoyConfig {
                clusters: vec![EnvoyCluster {
                    name: "global".into(),
                    service: "*".into(),
                    eds_path: "eds.json".into(),
                    regions: [("a", "127.0.0.1:1"), ("b", "127.0.0.1:2")]
                        .into_iter()
                        .map(|(r, e)| (r.to_owned(), vec![e.to_owned()]))
                        .collect(),
                }],
                ..EnvoyConfig::default()
            }),
            ..AgentConfig::default()
        };
        let calls = Arc::default();
        let agent = Agent::new(config, Recording(Arc::clone(&calls)), Registry::new()).unwrap();
        (agent, calls)
    }

    fn routing(version: u64, a: u8, b: u8) -> Routing {
        serde_json::from_value(
            serde_json::json!({"version": version, "services": {"*": {"regions": {
            "a": {"weight": a, "normal_weight": 100, "state": "normal"},
            "b": {"weight": b, "normal_weight": 100, "state": "normal"}}}}}),
        )
        .unwrap()
    }

    fn weights(plan: &[Planned]) -> Vec<u8> {
        plan[0].weights.values().map(|w| w.weight).collect()
    }

    /// Scenario: routings in turn — nothing known, a failover, the same again at a new
    /// version, every region off, an analyzer that knows nothing (restarted), a failback.
    /// Guarantees: nothing is written until the analyzer knows the service; each weight change
    /// is applied once; a repeat is not re-applied; all-off is refused and the last weights
    /// stay; "nothing known" keeps the last weights.
    #[tokio::test]
    async fn applies_changes_once_and_refuses_what_is_unsafe() {
        let (mut agent, calls) = agent(false);
        agent.reconcile(&Routing::default()).await;
        assert!(
            calls.lock().unwrap().is_empty(),
            "nothing known, nothing written"
        );
        assert!(agent.lock().following);
        agent.reconcile(&routing(2, 0, 200)).await;
        agent.reconcile(&routing(3, 0, 200)).await;
        agent.reconcile(&routing(4, 0, 0)).await;
        assert!(agent
            .lock()
            .error
            .as_deref()
            .unwrap()
            .contains("every region"));
        agent
            .reconcile(&Routing {
                version: 1,
                ..Routing::default()
            })
            .await;
        agent.reconcile(&routing(6, 100, 100)).await;
        let calls = calls.lock().unwrap();
        let applied: Vec<Vec<u8>> = calls.iter().map(|p| weights(p)).collect();
        assert_eq!(applied, vec![vec![0, 200], vec![100, 100]]);
        assert_eq!(agent.lock().version, 6);
        assert!(agent.lock().error.is_none());
    }

    /// Scenario: a dry-run agent given a failover.
    /// Guarantees: the gateway is not touched.
    #[tokio::test]
    async fn a_dry_run_changes_nothing() {
        let (mut agent, calls) = agent(true);
        agent.reconcile(&routing(2, 0, 200)).await;
        assert!(calls.lock().unwrap().is_empty());
    }
}
