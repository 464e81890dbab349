//! `meridian detect`: scores a `timestamp,value` file (or a directory tree of them) with the
//! live path's streaming detector, row by row, and writes `timestamp,value,anomaly_score`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use meridian_analyzer::detect::{SeriesConfig, SeriesDetector};

use super::series::Series;

/// Options of `meridian detect`.
#[derive(Clone, Debug, clap::Args)]
pub struct DetectArgs {
    /// A `timestamp,value` CSV file, or a directory searched recursively for `*.csv`.
    #[arg(long)]
    pub input: PathBuf,
    /// The output file (or directory, mirroring the input tree).
    #[arg(long)]
    pub output: PathBuf,
}

/// Scores every row of `series` in order, each from the rows before it only.
pub fn scores(series: &Series, config: &SeriesConfig) -> Vec<f64> {
    let mut detector = SeriesDetector::new(config);
    series
        .times
        .iter()
        .zip(&series.values)
        .map(|(t, v)| detector.update(*t, *v).score)
        .collect()
}

/// Runs the command; `config` is `[analyzer.detect.series]`.
pub fn run(args: &DetectArgs, config: &SeriesConfig) -> anyhow::Result<()> {
    if args.input.is_dir() {
        let files = csv_files(&args.input)?;
        if files.is_empty() {
            bail!("no .csv files under {}", args.input.display());
        }
        for file in &files {
            let relative = file.strip_prefix(&args.input).unwrap_or(file);
            detect_file(file, &args.output.join(relative), config)?;
        }
        println!(
            "scored {} files from {} into {}",
            files.len(),
            args.input.display(),
            args.output.display()
        );
    } else {
        let rows = detect_file(&args.input, &args.output, config)?;
        println!("scored {rows} rows into {}", args.output.display());
    }
    Ok(())
}

fn detect_file(input: &Path, output: &Path, config: &SeriesConfig) -> anyhow::Result<usize> {
    let series = Series::read(input)?;
    let scores = scores(&series, config);
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut writer =
        csv::Writer::from_path(output).with_context(|| format!("writing {}", output.display()))?;
    writer.write_record(["timestamp", "value", "anomaly_score"])?;
    for ((stamp, value), score) in series.stamps.iter().zip(&series.raw_values).zip(&scores) {
        writer.write_record([stamp.as_str(), value.as_str(), &format!("{score:.6}")])?;
    }
    writer
        .flush()
        .with_context(|| format!("writing {}", output.display()))?;
    Ok(series.len())
}

/// `*.csv` files under `dir`, sorted.
pub fn csv_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "csv") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}
