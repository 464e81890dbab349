//! `meridian forecast`: rolling-origin evaluation of the forecaster on `timestamp,value` files.
//! At every `--every`-th point the forecaster is fitted on the points so far (at most
//! `--fit-points`) and forecasts `--horizon` points; intervals come from the errors of earlier
//! origins only (no look-ahead). Naive and seasonal-naive forecasts are scored alongside.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use meridian_analyzer::forecast::baseline::{carried_forward, seasonal_naive};
use meridian_analyzer::forecast::calibrate::Calibrator;
use meridian_analyzer::forecast::model::{point_forecast, MIN_HISTORY};
use meridian_analyzer::forecast::select::Selector;

use super::detect::csv_files;
use super::series::Series;

/// Options of `meridian forecast`.
#[derive(Clone, Debug, clap::Args)]
pub struct ForecastArgs {
    /// A `timestamp,value` CSV file, or a directory searched recursively for `*.csv`.
    #[arg(long)]
    pub input: PathBuf,
    /// Points ahead to forecast (h = 1..N).
    #[arg(long, default_value_t = 12)]
    pub horizon: usize,
    /// The output file (or directory, mirroring the input tree): one row per origin and step.
    #[arg(long)]
    pub output: PathBuf,
    /// A new origin every this many points [default: the horizon].
    #[arg(long)]
    pub every: Option<usize>,
    /// Most points a fit uses (the most recent) [default: one week of the series' step].
    #[arg(long)]
    pub fit_points: Option<usize>,
    /// Season length in seconds.
    #[arg(long, default_value_t = 86_400.0)]
    pub season_secs: f64,
}

/// Sums over forecasts: absolute errors per method, interval hits, fits.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Forecasts scored.
    pub forecasts: usize,
    /// Σ |error| of Meridian's forecast (the method chosen per step), the model alone, naive
    /// and seasonal naive.
    pub abs_error: [f64; 4],
    /// Σ of the series' one-step naive in-sample |change| scale, per forecast (MASE's scale).
    pub scale: f64,
    /// Forecasts with calibrated intervals.
    pub with_intervals: usize,
    /// Of those, actuals inside the 80% and the 95% interval.
    pub covered: [usize; 2],
    /// Fits made and their total time.
    pub fits: usize,
    /// Seconds spent fitting.
    pub fit_secs: f64,
    /// Most points in one fit.
    pub fit_points: usize,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.forecasts += other.forecasts;
        for i in 0..4 {
            self.abs_error[i] += other.abs_error[i];
        }
        self.scale += other.scale;
        self.with_intervals += other.with_intervals;
        self.covered[0] += other.covered[0];
        self.covered[1] += other.covered[1];
        self.fits += other.fits;
        self.fit_secs += other.fit_secs;
        self.fit_points = self.fit_points.max(other.fit_points);
    }

    /// MASE of (Meridian, model alone, naive, seasonal naive): mean |error| over the mean
    /// one-step |change| of the same series.
    pub fn mase(&self) -> [f64; 4] {
        self.abs_error
            .map(|e| e / self.scale.max(f64::MIN_POSITIVE))
    }
}

/// Median sampling step (seconds) of a series.
fn step_secs(times: &[f64]) -> f64 {
    let mut steps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    steps.sort_by(f64::total_cmp);
    steps.get(steps.len() / 2).copied().unwrap_or(0.0)
}

/// Values with missing ones carried forward from the last known value.
fn filled(values: &[f64]) -> Vec<f64> {
    carried_forward(values).unwrap_or_else(|| vec![0.0; values.len()])
}

/// Runs the rolling-origin evaluation of one series, writing its rows to `output`.
fn evaluate(series: &Series, args: &ForecastArgs, output: &Path) -> anyhow::Result<Tally> {
    let y = filled(&series.values);
    let n = y.len();
    let step = step_secs(&series.times);
    let period = (step > 0.0)
        .then(|| (args.season_secs / step).round() as usize)
        .filter(|p| (4..=2016).contains(p));
    let fit_points = args.fit_points.unwrap_or_else(|| {
        if step > 0.0 {
            ((7.0 * 86_400.0 / step) as usize).clamp(MIN_HISTORY, 4032)
        } else {
            2016
        }
    });
    let every = args.every.unwrap_or(args.horizon).max(1);
    let horizon = args.horizon.max(1);
    let first = MIN_HISTORY.max(period.map_or(0, |p| 2 * p)).min(n);
    // Mean |y_t − y_{t−1}|: MASE's scale, the same for all three methods.
    let scale = if n > 1 {
        y.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>() / (n - 1) as f64
    } else {
        0.0
    };

    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut writer =
        csv::Writer::from_path(output).with_context(|| format!("writing {}", output.display()))?;
    writer.write_record([
        "origin",
        "timestamp",
        "step",
        "actual",
        "forecast",
        "lower_80",
        "upper_80",
        "lower_95",
        "upper_95",
        "naive",
        "seasonal_naive",
    ])?;
    let mut tally = Tally::default();
    let mut calibrator = Calibrator::new(horizon, 200);
    let mut selector = Selector::new(horizon, 50);
    // Forecasts whose actual is not known yet: (target index, step, chosen, candidates).
    let mut pending: Vec<(usize, usize, f64, [f64; 3])> = Vec::new();
    let fmt = |v: Option<f64>| v.map(|v| format!("{v:.6}")).unwrap_or_default();
    for origin in (first..n).step_by(every) {
        // Errors known by now (targets before the origin) calibrate the next intervals.
        pending.retain(|&(target, step, chosen, candidates)| {
            if target < origin {
                calibrator.record(step, y[target], chosen);
                selector.record(step, y[target], candidates);
                false
            } else {
                true
            }
        });
        let history = &y[origin.saturating_sub(fit_points)..origin];
        let started = Instant::now();
        let point = point_forecast(history, period, horizon)?;
        tally.fit_secs += started.elapsed().as_secs_f64();
        tally.fits += 1;
        tally.fit_points = tally.fit_points.max(history.len());
        for (k, model) in point.iter().copied().enumerate() {
            let step = k + 1;
            let target = origin + k;
            if target >= n {
                break;
            }
            let naive = y[origin - 1];
            let seasonal = period
                .and_then(|p| seasonal_naive(&y[..origin], p, step))
                .unwrap_or(naive);
            let candidates = [model, naive, seasonal];
            let forecast = candidates[selector.best(step)];
            let w80 = calibrator.half_width(step, 0.8);
            let w95 = calibrator.half_width(step, 0.95);
            let actual = y[target];
            tally.forecasts += 1;
            tally.scale += scale;
            tally.abs_error[0] += (actual - forecast).abs();
            tally.abs_error[1] += (actual - model).abs();
            tally.abs_error[2] += (actual - naive).abs();
            tally.abs_error[3] += (actual - seasonal).abs();
            if let (Some(a), Some(b)) = (w80, w95) {
                tally.with_intervals += 1;
                tally.covered[0] += usize::from((actual - forecast).abs() <= a);
                tally.covered[1] += usize::from((actual - forecast).abs() <= b);
            }
            pending.push((target, step, forecast, candidates));
            writer.write_record([
                series.stamps[origin - 1].as_str(),
                series.stamps[target].as_str(),
                &step.to_string(),
                &format!("{actual}"),
                &format!("{forecast:.6}"),
                &fmt(w80.map(|w| forecast - w)),
                &fmt(w80.map(|w| forecast + w)),
                &fmt(w95.map(|w| forecast - w)),
                &fmt(w95.map(|w| forecast + w)),
                &format!("{naive}"),
                &format!("{seasonal}"),
            ])?;
        }
    }
    writer.flush()?;
    Ok(tally)
}

/// Runs the command: evaluates each file and prints per-file and overall figures.
pub fn run(args: &ForecastArgs) -> anyhow::Result<()> {
    let files = if args.input.is_dir() {
        csv_files(&args.input)?
    } else {
        vec![args.input.clone()]
    };
    let mut total = Tally::default();
    println!(
        "{:<48} {:>6} {:>7} {:>7} {:>7} {:>7} {:>6} {:>6} {:>8}",
        "series", "fcsts", "MASE", "model", "naive", "snaive", "cov80", "cov95", "fit ms"
    );
    for file in &files {
        let output = if args.input.is_dir() {
            args.output
                .join(file.strip_prefix(&args.input).unwrap_or(file))
        } else {
            args.output.clone()
        };
        let series = Series::read(file)?;
        let tally = evaluate(&series, args, &output)?;
        print_row(&file.display().to_string(), &tally);
        total.add(&tally);
    }
    if files.len() > 1 {
        print_row("all", &total);
    }
    println!(
        "horizon {} steps; MASE = mean |error| / mean |one-step change| of the series (Meridian: per step the method with the smallest recent errors; model: MSTL + AutoETS alone); cov = share of actuals inside the calibrated 80%/95% intervals; fit ms = mean time of one fit (at most {} points)",
        args.horizon, total.fit_points
    );
    Ok(())
}

fn print_row(name: &str, t: &Tally) {
    let m = t.mase();
    let cov = |c: usize| c as f64 / t.with_intervals.max(1) as f64;
    let name = if name.len() > 48 {
        &name[name.len() - 48..]
    } else {
        name
    };
    println!(
        "{name:<48} {:>6} {:>7.3} {:>7.3} {:>7.3} {:>7.3} {:>6.3} {:>6.3} {:>8.2}",
        t.forecasts,
        m[0],
        m[1],
        m[2],
        m[3],
        cov(t.covered[0]),
        cov(t.covered[1]),
        t.fit_secs * 1e3 / t.fits.max(1) as f64
    );
}
