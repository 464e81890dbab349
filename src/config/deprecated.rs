//! Keys renamed in 0.2, still read for one release: each is moved to its new place in the parsed
//! TOML before it is typed, with a warning naming both, so an old file keeps working and its
//! owner learns what to change.

use toml::{Table, Value};

/// `(old table path, old key or "*" for the whole table, new table path, new key)`.
const MOVES: &[(&str, &str, &str, &str)] = &[
    ("network_sink", "*", "collector.network", "*"),
    ("collector", "otlp_grpc_addr", "collector.otlp", "grpc_addr"),
    ("collector", "otlp_http_addr", "collector.otlp", "http_addr"),
    (
        "collector",
        "max_request_bytes",
        "collector.otlp",
        "max_request_bytes",
    ),
    ("collector", "retry_after", "collector.otlp", "retry_after"),
    ("analyzer.red", "*", "analyzer.derive", "*"),
    ("analyzer.anomalies", "*", "analyzer.detect", "*"),
];

/// Moves every deprecated key of `root` to its new place; returns one warning per key moved.
/// A key already present at the new place wins, and the old one is dropped with a warning.
///
/// `[analyzer.detect]` changed meaning: it held the streaming detector's settings, which now
/// live in `[analyzer.detect.series]`; keys in `series_keys` found directly under it move there.
pub fn migrate(root: &mut Table, series_keys: &[String]) -> Vec<String> {
    let mut warnings = Vec::new();
    // Before the anomalies table merges in, so only the old detector keys move.
    if let Some(detect) = table_mut(root, "analyzer.detect") {
        let old: Vec<String> = detect
            .keys()
            .filter(|k| series_keys.contains(k))
            .cloned()
            .collect();
        for key in old {
            if let Some(value) = detect.remove(&key) {
                let series = detect
                    .entry("series")
                    .or_insert_with(|| Value::Table(Table::new()));
                if let Value::Table(series) = series {
                    series.entry(key.clone()).or_insert(value);
                }
                warnings.push(format!(
                    "`analyzer.detect.{key}` is deprecated; write it as `analyzer.detect.series.{key}`"
                ));
            }
        }
    }
    for &(from, from_key, to, to_key) in MOVES {
        let moved: Vec<(String, Value)> = match table_mut(root, from) {
            None => continue,
            Some(table) if from_key == "*" => {
                let all = std::mem::take(table);
                remove_path(root, from);
                all.into_iter().collect()
            }
            Some(table) => match table.remove(from_key) {
                Some(value) => vec![(to_key.to_owned(), value)],
                None => continue,
            },
        };
        let target = ensure_table(root, to);
        for (key, value) in moved {
            let old = if from_key == "*" {
                format!("{from}.{key}")
            } else {
                format!("{from}.{from_key}")
            };
            if target.contains_key(&key) {
                warnings.push(format!(
                    "`{old}` is deprecated and ignored: `{to}.{key}` is also set"
                ));
            } else {
                warnings.push(format!("`{old}` is deprecated; write it as `{to}.{key}`"));
                target.insert(key, value);
            }
        }
    }
    warnings
}

fn table_mut<'a>(root: &'a mut Table, path: &str) -> Option<&'a mut Table> {
    path.split('.')
        .try_fold(root, |table, part| match table.get_mut(part) {
            Some(Value::Table(t)) => Some(t),
            _ => None,
        })
}

fn ensure_table<'a>(root: &'a mut Table, path: &str) -> &'a mut Table {
    path.split('.').fold(root, |table, part| {
        let entry = table
            .entry(part.to_owned())
            .or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        match entry {
            Value::Table(t) => t,
            _ => unreachable!("made a table just above"),
        }
    })
}

fn remove_path(root: &mut Table, path: &str) {
    match path.rsplit_once('.') {
        Some((parent, last)) => {
            if let Some(parent) = table_mut(root, parent) {
                parent.remove(last);
            }
        }
        None => {
            root.remove(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scenario: a file written for 0.1, with every renamed key.
    /// Guarantees: each moves to its new place with a warning; a new key set too wins.
    #[test]
    fn old_keys_move_to_their_new_places() {
        let mut root: Table = toml::from_str(
            r#"
            [network_sink]
            url = "http://analyzer:4380"
            [collector]
            otlp_grpc_addr = "0.0.0.0:5317"
            retry_after = "2s"
            [collector.otlp]
            retry_after = "3s"
            [analyzer.red]
            interval = "30s"
            [analyzer.anomalies]
            min_score = 0.5
            [analyzer.detect]
            window = 50
            "#,
        )
        .unwrap();
        let warnings = migrate(&mut root, &["window".to_owned()]);
        let expected: Table = toml::from_str(
            r#"
            [collector]
            [collector.otlp]
            grpc_addr = "0.0.0.0:5317"
            retry_after = "3s"
            [collector.network]
            url = "http://analyzer:4380"
            [analyzer.derive]
            interval = "30s"
            [analyzer.detect]
            min_score = 0.5
            [analyzer.detect.series]
            window = 50
            "#,
        )
        .unwrap();
        assert_eq!(root, expected);
        assert_eq!(warnings.len(), 6, "{warnings:#?}");
        assert!(warnings
            .iter()
            .any(|w| w.contains("`collector.retry_after` is deprecated and ignored")));
    }
}
