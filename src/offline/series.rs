//! Reading and writing `timestamp,value` series files (the NAB format), keeping each row's
//! original text so output rows echo their input exactly.

use std::path::Path;

use anyhow::{bail, Context};
use chrono::{DateTime, NaiveDateTime};

/// One series file, rows in file order.
#[derive(Clone, Debug, Default)]
pub struct Series {
    /// Timestamps as written in the file.
    pub stamps: Vec<String>,
    /// Values as written in the file.
    pub raw_values: Vec<String>,
    /// Timestamps in seconds since the epoch.
    pub times: Vec<f64>,
    /// Values (NaN where the file has an empty or `nan` value).
    pub values: Vec<f64>,
}

impl Series {
    /// Reads a file with a `timestamp,value` header.
    pub fn read(path: &Path) -> anyhow::Result<Series> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_path(path)
            .with_context(|| format!("reading {}", path.display()))?;
        let headers = reader.headers()?.clone();
        let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
        let (Some(t), Some(v)) = (column("timestamp"), column("value")) else {
            bail!(
                "{}: the header must name `timestamp` and `value` columns (found {:?})",
                path.display(),
                headers.iter().collect::<Vec<_>>()
            );
        };
        let mut series = Series::default();
        for (i, record) in reader.records().enumerate() {
            let line = i + 2;
            let record = record.with_context(|| format!("{}:{line}", path.display()))?;
            let stamp = record.get(t).unwrap_or_default();
            let raw = record.get(v).unwrap_or_default();
            let time = parse_time(stamp).with_context(|| {
                format!("{}:{line}: unreadable timestamp {stamp:?}", path.display())
            })?;
            let value = if raw.is_empty() {
                f64::NAN
            } else {
                raw.parse().with_context(|| {
                    format!("{}:{line}: value {raw:?} is not a number", path.display())
                })?
            };
            series.stamps.push(stamp.to_owned());
            series.raw_values.push(raw.to_owned());
            series.times.push(time);
            series.values.push(value);
        }
        Ok(series)
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.values.len()
    }
}

/// Seconds since the epoch of `YYYY-MM-DD HH:MM:SS[.f]`, ISO 8601 / RFC 3339, or a number of
/// epoch seconds (milliseconds if it is too large to be seconds).
pub fn parse_time(text: &str) -> Option<f64> {
    if let Ok(n) = text.parse::<f64>() {
        return Some(if n.abs() > 1e11 { n / 1e3 } else { n });
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_micros() as f64 / 1e6);
    }
    [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
    .map(|t| t.and_utc().timestamp_micros() as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_the_usual_forms() {
        let t = 1_396_224_000.0; // 2014-03-31 00:00:00 UTC
        assert_eq!(parse_time("2014-03-31 00:00:00"), Some(t));
        assert_eq!(parse_time("2014-03-31T00:00:00"), Some(t));
        assert_eq!(parse_time("2014-03-31T00:00:00Z"), Some(t));
        assert_eq!(parse_time("2014-03-31 00:00:00.000000"), Some(t));
        assert_eq!(parse_time("1396224000"), Some(t));
        assert_eq!(parse_time("1396224000000"), Some(t));
        assert_eq!(parse_time("yesterday"), None);
    }
}
