//! Detector update cost and memory per series: `SeriesDetector` over many synthetic 5-minute
//! series (daily cycle, noise, occasional spikes), against a windowed Gaussian z-score (the
//! simplest streaming detector) over the same points in the same run; plus the live path's
//! changepoint stage (robust z over 360 points, then BOCPD) on the same points.

use std::collections::VecDeque;
use std::time::Instant;

use super::figures::Figures;

use meridian_analyzer::detect::changepoint::Changepoints;
use meridian_analyzer::detect::robust::RobustDeviation;
use meridian_analyzer::detect::{DetectConfig, SeriesConfig, SeriesDetector};

/// Point `i` of series `s`: a daily cycle at 5-minute steps, noise and rare spikes.
fn point(s: usize, i: usize) -> (f64, f64) {
    let t = i as f64 * 300.0;
    let phase = (t / 86_400.0 + s as f64 / 7.0) * std::f64::consts::TAU;
    let noise = (((i * 7919 + s * 104_729) % 1000) as f64 / 1000.0 - 0.5) * 10.0;
    let spike = if (i + s * 31) % 997 == 0 { 80.0 } else { 0.0 };
    (t, 100.0 + 30.0 * phase.sin() + noise + spike)
}

/// Rolling mean/standard deviation z-score over the last `n` points: the baseline.
struct WindowedGaussian {
    n: usize,
    values: VecDeque<f64>,
    sum: f64,
    sum_sq: f64,
}

impl WindowedGaussian {
    fn update(&mut self, v: f64) -> f64 {
        let k = self.values.len() as f64;
        let z = if k > 1.0 {
            let mean = self.sum / k;
            let var = (self.sum_sq / k - mean * mean).max(1e-12);
            (v - mean).abs() / var.sqrt()
        } else {
            0.0
        };
        self.values.push_back(v);
        self.sum += v;
        self.sum_sq += v * v;
        if self.values.len() > self.n {
            if let Some(old) = self.values.pop_front() {
                self.sum -= old;
                self.sum_sq -= old * old;
            }
        }
        z
    }
}

/// Resident memory of this process (bytes), from /proc.
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Runs `series` series of `points` points each through both detectors (`config`: the
/// `[analyzer.detect.series]` settings), one core.
pub fn run(
    series: usize,
    points: usize,
    config: &SeriesConfig,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let total = (series * points) as f64;
    let before = resident_bytes();
    let mut detectors: Vec<SeriesDetector> =
        (0..series).map(|_| SeriesDetector::new(config)).collect();
    let mut baselines: Vec<WindowedGaussian> = (0..series)
        .map(|_| WindowedGaussian {
            n: config.window,
            values: VecDeque::new(),
            sum: 0.0,
            sum_sq: 0.0,
        })
        .collect();
    let live = DetectConfig::default();
    let mut changepoints: Vec<(RobustDeviation, Changepoints)> = (0..series)
        .map(|_| {
            (
                RobustDeviation::new(live.scale_window),
                Changepoints::new(live.changepoint_hazard, live.changepoint_min_run),
            )
        })
        .collect();
    let mut changes = 0usize;
    // Interleaved by point, as live series arrive: every series' point i, then i + 1.
    let (mut meridian_secs, mut baseline_secs, mut changepoint_secs) = (0.0, 0.0, 0.0);
    let mut fired = 0usize;
    for i in 0..points {
        let t = Instant::now();
        for (s, d) in detectors.iter_mut().enumerate() {
            let (time, value) = point(s, i);
            if d.update(time, value).score >= config.fire {
                fired += 1;
            }
        }
        meridian_secs += t.elapsed().as_secs_f64();
        let t = Instant::now();
        for (s, b) in baselines.iter_mut().enumerate() {
            std::hint::black_box(b.update(point(s, i).1));
        }
        baseline_secs += t.elapsed().as_secs_f64();
        let t = Instant::now();
        for (s, (scale, cp)) in changepoints.iter_mut().enumerate() {
            let value = point(s, i).1;
            let d = scale.update(value);
            if d.spread > 0.0 && cp.update((value - d.expected) / d.spread).is_some() {
                changes += 1;
            }
        }
        changepoint_secs += t.elapsed().as_secs_f64();
    }
    let after = resident_bytes();
    let state: usize = detectors
        .iter()
        .map(|d| serde_json::to_vec(d).map_or(0, |v| v.len()))
        .sum();
    let meridian = total / meridian_secs;
    let baseline = total / baseline_secs;
    println!(
        "{series} series x {points} points (5-minute steps), one core: meridian {meridian:.0} series-points/s, windowed-gaussian baseline {baseline:.0} series-points/s, ratio {:.3}",
        meridian / baseline
    );
    println!(
        "memory: resident growth {:.1} KiB per series (detectors and baselines, after {points} points); serialized detector state {:.1} KiB per series; {fired} firings",
        after.saturating_sub(before) as f64 / series as f64 / 1024.0,
        state as f64 / series as f64 / 1024.0
    );
    let changepoint = total / changepoint_secs;
    println!(
        "live changepoint stage (robust z + BOCPD): {changepoint:.0} series-points/s; detector and changepoints together {:.0} series-points/s; {changes} changepoints",
        total / (meridian_secs + changepoint_secs)
    );
    figures.add("detector_points_per_s", meridian);
    figures.add("baseline_points_per_s", baseline);
    figures.add("detector_ratio_vs_baseline", meridian / baseline);
    figures.add("changepoint_points_per_s", changepoint);
    figures.add(
        "detector_and_changepoint_points_per_s",
        total / (meridian_secs + changepoint_secs),
    );
    figures.add(
        "resident_kib_per_series",
        after.saturating_sub(before) as f64 / series as f64 / 1024.0,
    );
    figures.add(
        "state_kib_per_series",
        state as f64 / series as f64 / 1024.0,
    );
    Ok(())
}
