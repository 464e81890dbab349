//! `meridian evaluate nab`: runs `detect`'s code over a NAB corpus (`data/`, `labels/`) and
//! scores it with NAB's rules; or scores another detector's result files (`--scores`), which
//! is how the scorer is checked against NAB's published Numenta HTM row.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use meridian_analyzer::detect::SeriesConfig;

use super::scoring::{self, ScoredFile, PROFILES};
use crate::offline::detect::{csv_files, scores};
use crate::offline::series::Series;

/// Options of `meridian evaluate nab`.
#[derive(Clone, Debug, clap::Args)]
pub struct NabArgs {
    /// The NAB corpus: `data/<category>/<file>.csv` and `labels/combined_windows.json`.
    #[arg(long, env = "MERIDIAN_NAB_DIR", default_value = "../shared/nab")]
    pub data: PathBuf,
    /// Score these result files (`<category>/<prefix><file>.csv` with an `anomaly_score`
    /// column, e.g. NAB's `reference/numenta`) instead of running Meridian's detector.
    #[arg(long)]
    pub scores: Option<PathBuf>,
    /// Also write Meridian's per-row scores here (the layout `--scores` reads).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// One file of the corpus with its labels.
struct Labelled {
    name: String,
    series: Series,
    windows: Vec<(usize, usize)>,
}

/// The result of an evaluation.
pub struct NabReport {
    /// Per profile: name and score.
    pub profiles: Vec<(&'static str, scoring::ProfileScore)>,
    /// Events at the standard profile's threshold.
    pub events: scoring::Events,
    /// Files and rows scored.
    pub files: usize,
    /// Rows scored.
    pub rows: usize,
}

/// Loads the corpus's files and windows (timestamps matched exactly to rows).
fn load(dir: &Path) -> anyhow::Result<Vec<Labelled>> {
    let labels_path = dir.join("labels/combined_windows.json");
    let text = std::fs::read_to_string(&labels_path).with_context(|| {
        format!(
            "reading {} (point --data or MERIDIAN_NAB_DIR at a NAB corpus)",
            labels_path.display()
        )
    })?;
    let labels: BTreeMap<String, Vec<[String; 2]>> = serde_json::from_str(&text)
        .with_context(|| format!("parsing {}", labels_path.display()))?;
    let data = dir.join("data");
    let mut out = Vec::new();
    for path in csv_files(&data)? {
        let name = path
            .strip_prefix(&data)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        let Some(windows) = labels.get(&name) else {
            bail!("{name} has no entry in {}", labels_path.display());
        };
        let series = Series::read(&path)?;
        let row_of = |stamp: &str| {
            let stamp = stamp.split('.').next().unwrap_or(stamp);
            series
                .stamps
                .iter()
                .position(|s| s == stamp)
                .with_context(|| format!("{name}: window bound {stamp} is not a row"))
        };
        let windows = windows
            .iter()
            .map(|[a, b]| Ok((row_of(a)?, row_of(b)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        out.push(Labelled {
            name,
            series,
            windows,
        });
    }
    if out.is_empty() {
        bail!("no series under {}", data.display());
    }
    Ok(out)
}

/// Reads another detector's scores for `name` (`cat/file.csv`) from `dir`.
fn read_scores(dir: &Path, name: &str, rows: usize) -> anyhow::Result<Vec<f64>> {
    let (category, file) = name.rsplit_once('/').unwrap_or(("", name));
    let folder = dir.join(category);
    let direct = folder.join(file);
    let path = if direct.exists() {
        direct
    } else {
        std::fs::read_dir(&folder)
            .with_context(|| format!("reading {}", folder.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(&format!("_{file}")))
            })
            .with_context(|| format!("no scores for {name} in {}", folder.display()))?
    };
    let mut reader = csv::Reader::from_path(&path)?;
    let column = reader
        .headers()?
        .iter()
        .position(|h| h == "anomaly_score")
        .with_context(|| format!("{}: no anomaly_score column", path.display()))?;
    let scores = reader
        .records()
        .map(|r| -> anyhow::Result<f64> {
            let r = r?;
            Ok(r.get(column).unwrap_or_default().parse()?)
        })
        .collect::<anyhow::Result<Vec<_>>>()
        .with_context(|| format!("reading {}", path.display()))?;
    if scores.len() != rows {
        bail!(
            "{}: {} scores for {rows} rows",
            path.display(),
            scores.len()
        );
    }
    Ok(scores)
}

/// Scores the corpus at `args.data` with Meridian's detector (or `args.scores`).
pub fn evaluate(args: &NabArgs, config: &SeriesConfig) -> anyhow::Result<NabReport> {
    let corpus = load(&args.data)?;
    let mut files = Vec::with_capacity(corpus.len());
    let mut rows = 0;
    for file in &corpus {
        let s = match &args.scores {
            Some(dir) => read_scores(dir, &file.name, file.series.len())?,
            None => scores(&file.series, config),
        };
        if let Some(out) = &args.output {
            write_scores(&out.join(&file.name), &file.series, &s)?;
        }
        rows += s.len();
        files.push(ScoredFile {
            windows: file.windows.clone(),
            scores: s,
        });
    }
    let profiles: Vec<_> = PROFILES
        .iter()
        .map(|p| (p.name, scoring::score(&files, p)))
        .collect();
    let events = scoring::events(&files, profiles[0].1.threshold);
    Ok(NabReport {
        profiles,
        events,
        files: files.len(),
        rows,
    })
}

fn write_scores(path: &Path, series: &Series, scores: &[f64]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(["timestamp", "anomaly_score"])?;
    for (stamp, score) in series.stamps.iter().zip(scores) {
        w.write_record([stamp.as_str(), &score.to_string()])?;
    }
    Ok(w.flush()?)
}

/// Runs the command and prints the report.
pub fn run(args: &NabArgs, config: &SeriesConfig) -> anyhow::Result<()> {
    let started = Instant::now();
    let report = evaluate(args, config)?;
    let who = match &args.scores {
        Some(dir) => format!("scores in {}", dir.display()),
        None => "meridian detect (default settings)".to_owned(),
    };
    println!(
        "NAB v1.1 scoring of {who} over {} files, {} rows ({:.1} s)",
        report.files,
        report.rows,
        started.elapsed().as_secs_f64()
    );
    println!(
        "{:<20} {:>8} {:>10} {:>10}",
        "profile", "score", "raw", "threshold"
    );
    for (name, s) in &report.profiles {
        println!(
            "{name:<20} {:>8.2} {:>10.4} {:>10.6}",
            s.normalized, s.raw, s.threshold
        );
    }
    let e = &report.events;
    println!(
        "events at the standard threshold: windows hit {} of {}, false-positive events {}, precision {:.2}, recall {:.2}, F1 {:.2}",
        e.hit,
        e.hit + e.missed,
        e.false_positives,
        e.precision(),
        e.recall(),
        e.f1()
    );
    Ok(())
}
