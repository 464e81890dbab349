//! `meridian forecast`: rolling-origin evaluation of the forecaster on `timestamp,value` files.
//! At every `--every`-th point the forecaster is fitted on the points so far (at most
//! `--fit-points`) and forecasts `--horizon` points; intervals come from the errors of earlier
//! origins only (no look-ahead), the naive forecast's until enough are known. It drives the
//! same per-series loop as the live `forecasts` table (`forecast::series`). Naive and
//! seasonal-naive forecasts are scored alongside.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use meridian_analyzer::forecast::baseline::carried_forward;
use meridian_analyzer::forecast::live::ForecastConfig;
use meridian_analyzer::forecast::model::MIN_HISTORY;
use meridian_analyzer::forecast::series::SeriesForecaster;

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
    // The library's loop, on a clock of point indices: forecasts for point `o + k` are made
    // from the points before `o` and scored when point `o + k` is observed.
    let keep_errors = ForecastConfig::default().keep_errors;
    let mut forecaster = SeriesForecaster::new(horizon, keep_errors);
    let steps: Vec<usize> = (1..=horizon).collect();
    let fmt = |v: Option<(f64, f64)>, side: fn((f64, f64)) -> f64| {
        v.map(|v| format!("{:.6}", side(v))).unwrap_or_default()
    };
    for (origin, &value) in y.iter().enumerate() {
        if origin >= first && (origin - first) % every == 0 {
            if let Some(fit) = forecaster.fit(&steps, period.unwrap_or(0), 1) {
                let started = Instant::now();
                let done = fit.run();
                tally.fit_secs += started.elapsed().as_secs_f64();
                tally.fits += 1;
                tally.fit_points = tally.fit_points.max(origin.min(fit_points));
                for point in done.points.iter().filter(|p| (p.target as usize) < n) {
                    let target = point.target as usize;
                    let actual = y[target];
                    tally.forecasts += 1;
                    tally.scale += scale;
                    tally.abs_error[0] += (actual - point.forecast).abs();
                    tally.abs_error[1] += (actual - point.model).abs();
                    tally.abs_error[2] += (actual - point.naive).abs();
                    tally.abs_error[3] += (actual - point.seasonal_naive).abs();
                    if let (Some((lo80, hi80)), Some((lo95, hi95))) =
                        (point.interval_80, point.interval_95)
                    {
                        tally.with_intervals += 1;
                        tally.covered[0] += usize::from((lo80..=hi80).contains(&actual));
                        tally.covered[1] += usize::from((lo95..=hi95).contains(&actual));
                    }
                    writer.write_record([
                        series.stamps[origin - 1].as_str(),
                        series.stamps[target].as_str(),
                        &point.steps.to_string(),
                        &format!("{actual}"),
                        &format!("{:.6}", point.forecast),
                        &fmt(point.interval_80, |v| v.0),
                        &fmt(point.interval_80, |v| v.1),
                        &fmt(point.interval_95, |v| v.0),
                        &fmt(point.interval_95, |v| v.1),
                        &format!("{}", point.naive),
                        &format!("{}", point.seasonal_naive),
                    ])?;
                }
                forecaster.fitted(&fit, &done);
            }
        }
        forecaster.observe(origin as i64, value, fit_points);
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
