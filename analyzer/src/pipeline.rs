//! The analysis pipeline behind the store: every stored delivery of spans and metrics goes to
//! the [`derive`](crate::derive) stage as it is stored; a ticker closes RED intervals, stores
//! them in `red`, scores them ([`detect`](crate::detect)) into `anomalies`, and refits the
//! [`forecast`](crate::forecast)s on their schedule into `forecasts`. The state (open intervals,
//! detectors, forecasters) is saved with the store's objects every minute and at shutdown, and
//! restored at start (`_analysis/state.bin`), so a restart neither forgets what the detectors learnt nor starts the
//! series over.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::array::RecordBatch;
use meridian_collector::task::{join, TaskFailed};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::derive::{self, DeriveConfig, Deriver, RedAggregator};
use crate::detect::{self, DetectConfig, LiveDetector};
use crate::error::StoreError;
use crate::forecast::live::{FitJob, ForecastConfig, LiveForecaster};
use crate::forecast::rows as forecast_rows;
use crate::health::{self, HealthConfig, HealthTracker};
use crate::recommend::board::SavedBoard;
use crate::recommend::{recommendation, Board, RecommendConfig, Recommender};
use crate::store::{Dataset, Observer, Store};
use crate::telemetry::AnalyzerMetrics;

/// Version of the saved state; another version is not read (the pipeline starts fresh).
const STATE_VERSION: u32 = 2;
/// How often the state is saved while running.
const SAVE_EVERY: Duration = Duration::from_secs(60);

/// The settings of every stage the pipeline runs (`[analyzer.derive]`, `[analyzer.detect]`,
/// `[analyzer.forecast]`).
#[derive(Clone, Debug, Default)]
pub struct PipelineConfig {
    /// RED series.
    pub derive: DeriveConfig,
    /// Live detection, with the per-series detector's settings.
    pub detect: DetectConfig,
    /// Live forecasts.
    pub forecast: ForecastConfig,
    /// Endpoint health from the collectors' probes.
    pub health: HealthConfig,
    /// Routing and capacity recommendations.
    pub recommend: RecommendConfig,
}

/// What is saved across restarts.
#[derive(Default, Serialize, Deserialize)]
struct Saved {
    version: u32,
    red: RedAggregator,
    detector: LiveDetector,
    forecaster: LiveForecaster,
    health: HealthTracker,
    recommender: Recommender,
    board: SavedBoard,
}

struct State {
    deriver: Deriver,
    detector: LiveDetector,
    forecaster: LiveForecaster,
    health: HealthTracker,
    recommender: Recommender,
}

/// The running pipeline; the store's [`Observer`].
pub struct Pipeline {
    config: PipelineConfig,
    store: Arc<Store>,
    metrics: AnalyzerMetrics,
    state: Mutex<State>,
    board: Arc<Board>,
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

impl PipelineConfig {
    /// The pipeline over `store`, continuing from the state saved there (if any); registered
    /// as the store's observer. [`Pipeline::run`] then drives it.
    pub async fn build(
        &self,
        store: Arc<Store>,
        metrics: AnalyzerMetrics,
    ) -> Result<Arc<Pipeline>, StoreError> {
        let config = self.clone();
        let saved = match store.objects().get(&state_key(&store)).await? {
            Some(bytes) => match bincode::deserialize::<Saved>(&bytes) {
                Ok(saved) if saved.version == STATE_VERSION => saved,
                Ok(saved) => {
                    tracing::warn!(
                        version = saved.version,
                        "the saved analysis state is of another version; starting fresh"
                    );
                    Saved::default()
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the saved analysis state is unreadable; starting fresh");
                    Saved::default()
                }
            },
            None => Saved::default(),
        };
        tracing::info!(
            series = saved.detector.len(),
            "analysis pipeline: RED series, anomalies and forecasts"
        );
        let board = Arc::new(Board::default());
        board.restore(saved.board);
        let pipeline = Arc::new(Pipeline {
            config,
            store: Arc::clone(&store),
            metrics,
            board,
            state: Mutex::new(State {
                deriver: Deriver::new(saved.red),
                detector: saved.detector,
                forecaster: saved.forecaster,
                health: saved.health,
                recommender: saved.recommender,
            }),
        });
        store.set_observer(Arc::clone(&pipeline) as Arc<dyn Observer>);
        Ok(pipeline)
    }
}

impl Pipeline {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The published desired state (routing, recommendations, agents).
    pub fn board(&self) -> Arc<Board> {
        Arc::clone(&self.board)
    }

    /// Every probed endpoint's health now, by name.
    pub fn endpoints(&self) -> Vec<(String, crate::health::Endpoint)> {
        let state = self.lock();
        state
            .health
            .endpoints()
            .map(|(name, e)| (name.to_owned(), e.clone()))
            .collect()
    }

    /// Combines the probes into endpoint health, re-evaluates the recommendations at `now_ns`
    /// and publishes them; returns the health transitions and recommendation rows to store
    /// (stored by the caller once the state is unlocked, so ingest is not held up).
    fn recommend(
        &self,
        state: &mut State,
        now: i64,
    ) -> (Vec<health::Transition>, Vec<recommendation::Recommendation>) {
        let c = &self.config;
        let transitions = state.health.evaluate(&c.health, now);
        for (name, e) in state.health.endpoints() {
            self.metrics
                .probe_endpoint_healthy
                .with_label_values(&[name, &e.region, e.service.as_deref().unwrap_or("*")])
                .set(i64::from(e.healthy));
        }
        for t in &transitions {
            let to = if t.healthy { "healthy" } else { "unhealthy" };
            self.metrics
                .probe_transitions
                .with_label_values(&[&t.endpoint, to])
                .inc();
            tracing::warn!(endpoint = %t.endpoint, region = %t.region, healthy = t.healthy, reason = %t.reason, "endpoint health changed");
        }
        let changes = state.recommender.evaluate(&c.recommend, &state.health, now);
        let retired = self
            .board
            .publish(state.recommender.desired(), &changes, now);
        for r in &changes.made {
            self.metrics
                .recommendations
                .with_label_values(&[r.kind.as_str()])
                .inc();
            tracing::info!(kind = r.kind.as_str(), region = %r.region, service = %r.service, target = %r.target, reason = %r.reason, "recommendation");
        }
        let (version, weights) = self.board.weights();
        self.metrics.routing_version.set(version as i64);
        for (service, regions) in &weights {
            for (region, w) in regions {
                self.metrics
                    .routing_weight
                    .with_label_values(&[service, region])
                    .set(i64::from(*w));
            }
        }
        let mut rows = changes.made;
        rows.extend(retired);
        (transitions, rows)
    }

    /// Stores health transitions and recommendation rows.
    fn store_recommendations(
        &self,
        transitions: &[health::Transition],
        rows: &[recommendation::Recommendation],
    ) -> Result<(), StoreError> {
        if !transitions.is_empty() {
            self.store
                .insert_derived(Dataset::Health, vec![health::rows::batch(transitions)?])?;
        }
        if !rows.is_empty() {
            self.store
                .insert_derived(Dataset::Recommendations, vec![recommendation::batch(rows)?])?;
        }
        Ok(())
    }

    /// Closes the intervals due at `now_ns`, stores their RED points and the anomalies among
    /// them; returns how many points were closed.
    pub fn tick(&self, now_ns: i64) -> Result<usize, StoreError> {
        let c = &self.config;
        let (points, anomalies, late, (transitions, recommendations)) = {
            let mut state = self.lock();
            let points = state.deriver.close(&c.derive, now_ns);
            let anomalies = if c.detect.enabled {
                state.detector.update(&c.detect, &points)
            } else {
                Vec::new()
            };
            if c.forecast.enabled {
                state.forecaster.observe(&c.forecast, &points);
            }
            state
                .recommender
                .observe_intervals(&c.recommend, &points, &anomalies);
            self.metrics.watched_series.set(state.detector.len() as i64);
            let recommended = self.recommend(&mut state, now_ns);
            (points, anomalies, state.deriver.red.late, recommended)
        };
        if let Err(e) = self.store_recommendations(&transitions, &recommendations) {
            tracing::error!(error = %e, "storing health transitions or recommendations failed");
        }
        self.metrics.red_late.set(late as i64);
        if points.is_empty() {
            return Ok(0);
        }
        self.metrics.red_points.inc_by(points.len() as u64);
        self.store
            .insert_derived(Dataset::Red, vec![derive::rows::batch(&points)?])?;
        if !anomalies.is_empty() {
            for a in &anomalies {
                self.metrics
                    .anomalies
                    .with_label_values(&[a.severity])
                    .inc();
                tracing::info!(
                    region = %a.key.region,
                    service = %a.key.service,
                    route = %a.key.route,
                    metric = a.metric.name(),
                    value = a.value,
                    expected = a.expected,
                    score = a.score,
                    detector = a.detector,
                    severity = a.severity,
                    "anomaly"
                );
            }
            self.store.insert_derived(
                Dataset::Anomalies,
                vec![detect::rows::batch(&anomalies, now_ns)?],
            )?;
        }
        Ok(points.len())
    }

    /// Runs the fits that are due and stores their forecasts; returns how many series were
    /// fitted. Fitting runs on a blocking thread, without holding the state.
    pub async fn refit(&self) -> Result<usize, StoreError> {
        self.refit_until(&CancellationToken::new()).await
    }

    /// [`Self::refit`], stopping between series once `stop` is cancelled: a shutdown waits
    /// for one series' fit at most, not for a whole round (all series are due after a
    /// restart). The series left out stay due.
    pub async fn refit_until(&self, stop: &CancellationToken) -> Result<usize, StoreError> {
        if !self.config.forecast.enabled {
            return Ok(0);
        }
        let jobs: Vec<FitJob> = self
            .lock()
            .forecaster
            .due(&self.config.forecast, self.config.derive.interval);
        if jobs.is_empty() {
            return Ok(0);
        }
        let stop = stop.clone();
        let done = tokio::task::spawn_blocking(move || {
            jobs.into_iter()
                .take_while(|_| !stop.is_cancelled())
                .map(|job| {
                    let fitted = job.run();
                    (job, fitted)
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(StoreError::task("forecast"))?;
        let count = done.len();
        if count == 0 {
            return Ok(0);
        }
        let mut rows = Vec::new();
        {
            let mut state = self.lock();
            for (job, fitted) in &done {
                state.forecaster.fitted(job, fitted);
                state.recommender.observe_forecasts(&fitted.forecasts);
                let outcome = if fitted.used_model() {
                    "ok"
                } else {
                    "fallback"
                };
                self.metrics
                    .forecast_fits
                    .with_label_values(&[outcome])
                    .inc();
                rows.extend(fitted.forecasts.iter().cloned());
            }
        }
        self.store
            .insert_derived(Dataset::Forecasts, vec![forecast_rows::batch(&rows)?])?;
        Ok(count)
    }

    /// Saves the state with the store's objects.
    pub async fn save(&self) -> Result<(), StoreError> {
        let bytes = {
            let state = self.lock();
            let saved = SavedRef {
                version: STATE_VERSION,
                red: &state.deriver.red,
                detector: &state.detector,
                forecaster: &state.forecaster,
                health: &state.health,
                recommender: &state.recommender,
                board: self.board.saved(),
            };
            // Binary: the state holds NaN (missing values), which JSON cannot.
            bincode::serialize(&saved).map_err(StoreError::AnalysisState)?
        };
        self.store
            .objects()
            .put(&state_key(&self.store), bytes)
            .await
    }

    /// Ticks every second, refits on schedule and saves every minute until `stop`; then
    /// closes what is due and saves once more. A fit that panicked is logged when it is
    /// joined and returned at the end, after the last save.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) -> Result<(), TaskFailed> {
        let mut failed = None;
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut saved_at = Instant::now();
        let mut saved_version = self.board.version();
        let mut fitting: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = ticker.tick() => {}
            }
            if let Err(e) = self.tick(now_ns()) {
                tracing::error!(error = %e, "storing RED points or anomalies failed");
            }
            if fitting.as_ref().is_none_or(|f| f.is_finished()) {
                if let Some(done) = fitting.take() {
                    if let Err(e) = join("forecast fit", done).await {
                        failed.get_or_insert(e);
                    }
                }
                let me = Arc::clone(&self);
                let stop = stop.clone();
                fitting = Some(tokio::spawn(async move {
                    if let Err(e) = me.refit_until(&stop).await {
                        tracing::error!(error = %e, "storing forecasts failed");
                    }
                }));
            }
            // A routing change is saved at once: an analyzer killed after a failover must
            // come back with the region still drained, not tell agents to undo it.
            let routed = self.board.version();
            if saved_at.elapsed() >= SAVE_EVERY || routed != saved_version {
                saved_at = Instant::now();
                saved_version = routed;
                if let Err(e) = self.save().await {
                    tracing::error!(error = %e, "saving the analysis state failed");
                }
            }
        }
        if let Some(f) = fitting {
            if let Err(e) = join("forecast fit", f).await {
                failed.get_or_insert(e);
            }
        }
        if let Err(e) = self.tick(now_ns()) {
            tracing::error!(error = %e, "storing RED points or anomalies failed");
        }
        if let Err(e) = self.save().await {
            tracing::error!(error = %e, "saving the analysis state failed");
        }
        failed.map_or(Ok(()), Err)
    }
}

/// The saved state, borrowed for writing.
#[derive(Serialize)]
struct SavedRef<'a> {
    version: u32,
    red: &'a RedAggregator,
    detector: &'a LiveDetector,
    forecaster: &'a LiveForecaster,
    health: &'a HealthTracker,
    recommender: &'a Recommender,
    board: SavedBoard,
}

fn state_key(store: &Store) -> object_store::path::Path {
    store.objects().table_root("_analysis").join("state.bin")
}

impl Observer for Pipeline {
    fn observe(&self, dataset: Dataset, batches: &[RecordBatch]) {
        let derive =
            self.config.derive.enabled && matches!(dataset, Dataset::Spans | Dataset::Metrics);
        let gauge = dataset == Dataset::Metrics
            && !self.config.recommend.capacity.instances_metric.is_empty();
        if derive || gauge {
            let mut state = self.lock();
            if derive {
                state.deriver.observe(&self.config.derive, dataset, batches);
            }
            if gauge {
                state
                    .recommender
                    .observe_metrics(&self.config.recommend, batches);
            }
        }
        if dataset == Dataset::Probes {
            let received = self.lock().health.observe(batches);
            for (vantage, ok) in received.results {
                let result = if ok { "ok" } else { "fail" };
                self.metrics
                    .probe_results
                    .with_label_values(&[&vantage, result])
                    .inc();
            }
        }
    }
}
