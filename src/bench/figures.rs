//! The one machine-readable line every `meridian bench` run ends with —
//! `figures bench=wire spans_1000_ratio_vs_otlp_zstd=4.21 …` — so runs can be compared by script
//! (`grep '^figures '`). Keys are lower-case, `_`-separated; values are plain numbers.

/// The figures of one run, printed last.
pub struct Figures {
    bench: &'static str,
    pairs: Vec<(String, String)>,
}

impl Figures {
    /// The figures of `bench` (the subcommand's name).
    pub fn new(bench: &'static str) -> Self {
        Self {
            bench,
            pairs: Vec::new(),
        }
    }

    /// Adds `key=value`: whole numbers from 100 up, three decimals below (ratios, milliseconds).
    pub fn add(&mut self, key: impl Into<String>, value: f64) {
        let text = if value.abs() >= 100.0 {
            format!("{value:.0}")
        } else {
            format!("{value:.3}")
        };
        self.pairs.push((key.into(), text));
    }

    /// The line, as printed.
    pub fn line(&self) -> String {
        let mut line = format!("figures bench={}", self.bench);
        for (key, value) in &self.pairs {
            line.push_str(&format!(" {key}={value}"));
        }
        line
    }
}

/// `text` as a key: lower-case ASCII letters and digits, runs of anything else one `_`.
pub fn key(text: &str) -> String {
    let mut key = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            key.push(c.to_ascii_lowercase());
        } else if !key.is_empty() && !key.ends_with('_') {
            key.push('_');
        }
    }
    key.trim_end_matches('_').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_of_key_value_pairs() {
        let mut f = Figures::new("wire");
        f.add("spans_1000_ratio_vs_otlp_zstd", 0.6449);
        f.add("spans_per_s", 512_345.6);
        assert_eq!(
            f.line(),
            "figures bench=wire spans_1000_ratio_vs_otlp_zstd=0.645 spans_per_s=512346"
        );
        assert_eq!(
            key("p99 latency, per route (1h)"),
            "p99_latency_per_route_1h"
        );
    }
}
