//! The RED aggregator: requests from spans and histograms go into fixed intervals per series;
//! an interval is closed — its figures final — once the region's watermark (the latest event
//! time seen there, less the grace period) has passed its end. A region that has sent nothing
//! for `idle_after` is closed by the wall clock instead, so a silent gateway shows up as zero
//! traffic rather than as no data.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::histograms::HistogramRequests;
use super::key::SeriesKey;
use super::spans::SpanRequest;
use super::window::{Red, WindowStats};
use super::DeriveConfig;

/// The figures of one series in one closed interval.
#[derive(Clone, Debug, PartialEq)]
pub struct RedPoint {
    /// Start of the interval, ns since the epoch.
    pub start_ns: i64,
    /// The series.
    pub key: SeriesKey,
    /// Length of the interval, s.
    pub interval_s: f64,
    /// The figures.
    pub red: Red,
}

/// Event time of one region.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct RegionClock {
    /// Latest event time seen.
    max_event_ns: i64,
    /// Intervals starting before this are closed.
    closed_until_ns: i64,
    /// When data last arrived (not kept across restarts: a restarted region counts as idle
    /// until it sends again).
    #[serde(skip)]
    last_arrival: Option<Instant>,
}

/// When a series had data: its first and last interval with requests.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Seen {
    first_ns: i64,
    last_ns: i64,
}

/// Open intervals, region clocks and known series.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RedAggregator {
    regions: BTreeMap<String, RegionClock>,
    /// Open intervals: (start, series) → what was seen.
    #[serde(with = "crate::pairs")]
    open: BTreeMap<(i64, SeriesKey), WindowStats>,
    #[serde(with = "crate::pairs")]
    series: BTreeMap<SeriesKey, Seen>,
    /// Requests that arrived after their interval was closed.
    pub late: u64,
}

impl RedAggregator {
    fn interval_ns(config: &DeriveConfig) -> i64 {
        (config.interval.as_nanos() as i64).max(1)
    }

    /// Files a request at `time_ns` under its open interval; `false` if that interval is
    /// already closed (late).
    fn window(
        &mut self,
        config: &DeriveConfig,
        key: &SeriesKey,
        time_ns: i64,
    ) -> Option<&mut WindowStats> {
        let step = Self::interval_ns(config);
        let start = time_ns.div_euclid(step) * step;
        // A region's first event opens the intervals back to its watermark, so earlier events
        // of other kinds (spans batched longer than metrics) still count.
        let opened = (time_ns - config.grace.as_nanos() as i64).div_euclid(step) * step;
        let clock = self
            .regions
            .entry(key.region.clone())
            .or_insert_with(|| RegionClock {
                max_event_ns: time_ns,
                closed_until_ns: opened,
                last_arrival: None,
            });
        clock.last_arrival = Some(Instant::now());
        if start < clock.closed_until_ns {
            self.late += 1;
            return None;
        }
        clock.max_event_ns = clock.max_event_ns.max(time_ns);
        let seen = self.series.entry(key.clone()).or_insert(Seen {
            first_ns: start,
            last_ns: start,
        });
        seen.first_ns = seen.first_ns.min(start);
        seen.last_ns = seen.last_ns.max(start);
        Some(self.open.entry((start, key.clone())).or_default())
    }

    /// Adds requests seen as spans.
    pub fn add_spans(&mut self, config: &DeriveConfig, requests: Vec<SpanRequest>) {
        for r in requests {
            if let Some(w) = self.window(config, &r.key, r.end_ns) {
                w.add_span(r.duration_ms, r.error);
            }
        }
    }

    /// Adds requests counted by histograms.
    pub fn add_histograms(&mut self, config: &DeriveConfig, requests: Vec<HistogramRequests>) {
        for r in requests {
            if let Some(w) = self.window(config, &r.key, r.time_ns) {
                w.add_histogram(r.count, r.error, &r.bounds_ms, &r.buckets);
            }
        }
    }

    /// Closes every interval the watermarks have passed, at wall-clock time `now_ns`; returns
    /// their points, oldest first. Series known in a region get a point for every closed
    /// interval (zero requests when none came) until `series_ttl` after their last request.
    pub fn close(&mut self, config: &DeriveConfig, now_ns: i64) -> Vec<RedPoint> {
        let step = Self::interval_ns(config);
        let grace = config.grace.as_nanos() as i64;
        let ttl = config.series_ttl.as_nanos() as i64;
        let interval_s = config.interval.as_secs_f64();
        let mut points = Vec::new();
        for (region, clock) in &mut self.regions {
            let mut watermark = clock.max_event_ns - grace;
            if clock
                .last_arrival
                .is_none_or(|t| t.elapsed() >= config.idle_after)
            {
                watermark = watermark.max(now_ns - grace);
            }
            // Intervals ending at or before the watermark are complete.
            let until = (watermark - step).div_euclid(step) * step + step;
            let mut start = clock.closed_until_ns;
            while start < until {
                let mut stats: HashMap<SeriesKey, WindowStats> = HashMap::new();
                let keys: Vec<(i64, SeriesKey)> = self
                    .open
                    .range((start, SeriesKey::default())..(start + 1, SeriesKey::default()))
                    .filter(|((_, k), _)| &k.region == region)
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in keys {
                    if let Some(w) = self.open.remove(&k) {
                        stats.insert(k.1, w);
                    }
                }
                let mut live = 0;
                for (key, seen) in self.series.range(
                    SeriesKey {
                        region: region.clone(),
                        service: String::new(),
                        route: String::new(),
                    }..,
                ) {
                    if &key.region != region {
                        break;
                    }
                    if seen.first_ns > start || seen.last_ns + ttl < start {
                        continue;
                    }
                    live += 1;
                    let mut window = stats.remove(key).unwrap_or_default();
                    points.push(RedPoint {
                        start_ns: start,
                        key: key.clone(),
                        interval_s,
                        red: window.red(),
                    });
                }
                start += step;
                // Nothing open and no series alive: jump over the silence.
                let pending = self
                    .open
                    .range((start, SeriesKey::default())..)
                    .any(|((_, k), _)| &k.region == region);
                if live == 0 && !pending {
                    start = start.max(until);
                }
            }
            clock.closed_until_ns = clock.closed_until_ns.max(until);
        }
        let regions = &self.regions;
        self.series.retain(|key, seen| {
            regions
                .get(&key.region)
                .is_none_or(|c| seen.last_ns + ttl >= c.closed_until_ns)
        });
        points.sort_by(|a, b| (a.start_ns, &a.key).cmp(&(b.start_ns, &b.key)));
        points
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const S: i64 = 1_000_000_000;

    fn config() -> DeriveConfig {
        DeriveConfig {
            interval: Duration::from_secs(10),
            grace: Duration::from_secs(10),
            idle_after: Duration::from_secs(3600),
            ..DeriveConfig::default()
        }
    }

    fn key(region: &str, route: &str) -> SeriesKey {
        SeriesKey {
            region: region.into(),
            service: "gw".into(),
            route: route.into(),
        }
    }

    fn span(region: &str, route: &str, at_ns: i64, ms: f64, error: bool) -> SpanRequest {
        SpanRequest {
            key: key(region, route),
            end_ns: at_ns,
            duration_ms: ms,
            error,
        }
    }

    #[test]
    fn an_interval_closes_once_the_watermark_passes_its_end() {
        let c = config();
        let mut red = RedAggregator::default();
        let spans = (0..10)
            .map(|i| span("eu", "/a", i * S, (i + 1) as f64, i == 3))
            .collect();
        red.add_spans(&c, spans);
        assert!(red.close(&c, 0).is_empty(), "grace not over");
        // 19 s: the watermark is 9 s, the interval [0, 10) still waits.
        red.add_spans(&c, vec![span("eu", "/a", 19 * S, 1.0, false)]);
        assert!(red.close(&c, 0).is_empty());
        red.add_spans(&c, vec![span("eu", "/a", 20 * S, 1.0, false)]);
        let points = red.close(&c, 0);
        assert_eq!(points.len(), 1);
        let p = &points[0];
        assert_eq!((p.start_ns, p.red.count, p.red.errors), (0, 10, 1));
        assert_eq!(p.red.count_source, "spans");
        let [p50, _, p99] = p.red.latency_ms.unwrap();
        assert_eq!(p50, 5.5);
        assert!((p99 - 9.91).abs() < 1e-9);
    }

    #[test]
    fn late_requests_are_counted_and_left_out() {
        let c = config();
        let mut red = RedAggregator::default();
        red.add_spans(&c, vec![span("eu", "/a", S, 1.0, false)]);
        red.add_spans(&c, vec![span("eu", "/a", 25 * S, 1.0, false)]);
        assert_eq!(red.close(&c, 0).len(), 1);
        red.add_spans(&c, vec![span("eu", "/a", 2 * S, 1.0, false)]);
        assert_eq!(red.late, 1);
        red.add_spans(&c, vec![span("eu", "/a", 45 * S, 1.0, false)]);
        let points = red.close(&c, 0);
        // [10, 20) had nothing: a zero point, not a gap; [20, 30) has the one request.
        let counts: Vec<(i64, u64)> = points
            .iter()
            .map(|p| (p.start_ns / S, p.red.count))
            .collect();
        assert_eq!(counts, vec![(10, 0), (20, 1)]);
        assert_eq!(points[0].red.latency_ms, None);
    }

    #[test]
    fn earlier_events_within_the_grace_of_a_regions_first_one_count() {
        let c = config();
        let mut red = RedAggregator::default();
        // A metric point at 21 s arrives first; spans that ended at 14 s follow.
        red.add_spans(&c, vec![span("eu", "/b", 21 * S, 1.0, false)]);
        red.add_spans(&c, vec![span("eu", "/a", 14 * S, 1.0, false)]);
        assert_eq!(red.late, 0);
        red.add_spans(&c, vec![span("eu", "/a", 40 * S, 1.0, false)]);
        let a: Vec<(i64, u64)> = red
            .close(&c, 0)
            .into_iter()
            .filter(|p| p.key.route == "/a")
            .map(|p| (p.start_ns / S, p.red.count))
            .collect();
        assert_eq!(a, vec![(10, 1), (20, 0)]);
    }

    #[test]
    fn regions_keep_their_own_watermark() {
        let c = config();
        let mut red = RedAggregator::default();
        red.add_spans(
            &c,
            vec![
                span("eu", "/a", S, 1.0, false),
                span("us", "/a", S, 1.0, false),
                span("eu", "/a", 40 * S, 1.0, false),
            ],
        );
        // eu is at 40 s; us (a lagging collector) is not closed by eu's clock.
        let regions: Vec<String> = red.close(&c, 0).into_iter().map(|p| p.key.region).collect();
        assert!(regions.iter().all(|r| r == "eu"), "{regions:?}");
        assert!(!regions.is_empty());
    }

    #[test]
    fn an_idle_region_is_closed_by_the_wall_clock() {
        let c = DeriveConfig {
            idle_after: Duration::ZERO,
            ..config()
        };
        let mut red = RedAggregator::default();
        red.add_spans(&c, vec![span("eu", "/a", S, 1.0, false)]);
        let points = red.close(&c, 60 * S);
        let starts: Vec<i64> = points.iter().map(|p| p.start_ns / S).collect();
        assert_eq!(starts, vec![0, 10, 20, 30, 40]);
        assert_eq!(points[0].red.count, 1);
        assert!(points[1..].iter().all(|p| p.red.count == 0));
    }

    #[test]
    fn histograms_count_every_request_and_spans_give_exact_latency() {
        let c = config();
        let mut red = RedAggregator::default();
        red.add_spans(&c, vec![span("eu", "/a", S, 12.0, false)]);
        red.add_histograms(
            &c,
            vec![HistogramRequests {
                key: key("eu", "/a"),
                time_ns: 2 * S,
                count: 100,
                error: Some(false),
                bounds_ms: vec![10.0, 100.0],
                buckets: vec![50, 50, 0],
            }],
        );
        red.add_histograms(
            &c,
            vec![HistogramRequests {
                key: key("eu", "/b"),
                time_ns: 3 * S,
                count: 10,
                error: Some(true),
                bounds_ms: vec![10.0, 100.0],
                buckets: vec![0, 10, 0],
            }],
        );
        red.add_spans(&c, vec![span("eu", "/a", 30 * S, 1.0, false)]);
        let points = red.close(&c, 0);
        let a = points.iter().find(|p| p.key.route == "/a").unwrap();
        assert_eq!((a.red.count, a.red.count_source), (100, "histogram"));
        assert_eq!(a.red.latency_source, Some("spans"));
        assert_eq!(a.red.latency_ms.unwrap()[0], 12.0);
        let b = points.iter().find(|p| p.key.route == "/b").unwrap();
        assert_eq!((b.red.count, b.red.errors), (10, 10));
        assert_eq!(b.red.latency_source, Some("histogram"));
        assert_eq!(b.red.latency_ms.unwrap()[0], 55.0);
    }

    #[test]
    fn the_state_survives_serialisation() {
        let c = config();
        let mut red = RedAggregator::default();
        red.add_spans(&c, vec![span("eu", "/a", S, 1.0, false)]);
        let json = serde_json::to_string(&red).unwrap();
        let mut restored: RedAggregator = serde_json::from_str(&json).unwrap();
        restored.add_spans(&c, vec![span("eu", "/a", 25 * S, 1.0, false)]);
        let points = restored.close(&c, 0);
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].red.count, 1);
    }
}
