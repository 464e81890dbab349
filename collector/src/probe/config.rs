//! One probe's configuration (`[[collector.probes]]`) and the target it parses into.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Route 53's limit on a search string.
pub const MAX_SEARCH_STRING: usize = 255;

/// One endpoint every collector checks (`[[collector.probes]]`), as a Route 53 health check.
///
/// ```
/// use meridian_collector::probe::{ProbeConfig, Target};
/// let probe: ProbeConfig = toml::from_str(r#"
///     name = "api-eu"
///     region = "eu-west-1"
///     url = "https://api-eu.example.com/health"
///     interval = "10s"
///     search_string = "ok"
/// "#).unwrap();
/// assert_eq!(probe.failure_threshold, 3);
/// match probe.target().unwrap() {
///     Target::Http { tls, port, path, .. } => assert!(tls && port == 443 && path == "/health"),
///     Target::Tcp { .. } => unreachable!(),
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// Unique name of the endpoint (the `endpoint` column).
    pub name: String,
    /// The region the endpoint serves.
    pub region: String,
    /// The service the endpoint speaks for; absent, the probe speaks for the whole region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// `http://`, `https://` (certificates are not validated, as Route 53) or `tcp://host:port`.
    pub url: String,
    /// Time between checks; Route 53 offers 10 s and 30 s.
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// Consecutive results that flip this vantage point's verdict, in both directions (1..10).
    #[serde(default = "default_failure_threshold")]
    pub failure_threshold: u32,
    /// Must appear in the first 5,120 bytes of the (decompressed) body; case-sensitive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_string: Option<String>,
    /// Time allowed to connect (Route 53: 4 s for HTTP, 10 s for TCP).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub connect_timeout: Option<Duration>,
    /// Time allowed, after connecting, for the status line (and again for the body when a
    /// search string is set); Route 53: 2 s.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub response_timeout: Option<Duration>,
}

fn default_interval() -> Duration {
    Duration::from_secs(30)
}

fn default_failure_threshold() -> u32 {
    3
}

/// What a probe connects to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// An HTTP(S) request; healthy on a 2xx or 3xx (and the search string, if any).
    Http {
        /// HTTPS.
        tls: bool,
        /// Host name or address to connect to (and the TLS server name).
        host: String,
        /// Port.
        port: u16,
        /// Path and query of the request.
        path: String,
    },
    /// A TCP connection; healthy once connected.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
}

/// Why a probe's configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProbeConfigError {
    /// The URL does not parse or has no host.
    #[error("probe `{name}`: url `{url}`: {reason}")]
    Url {
        /// The probe.
        name: String,
        /// Its URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A field is out of its range.
    #[error("probe `{name}`: {reason}")]
    Invalid {
        /// The probe.
        name: String,
        /// Which field and why.
        reason: String,
    },
    /// Two probes share a name.
    #[error("two probes are named `{0}`; names must be unique")]
    Duplicate(String),
}

impl ProbeConfig {
    /// Time allowed to connect: configured, else Route 53's (10 s TCP, 4 s HTTP).
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout.unwrap_or_else(|| {
            if self.url.starts_with("tcp://") {
                Duration::from_secs(10)
            } else {
                Duration::from_secs(4)
            }
        })
    }

    /// Time allowed for the response after connecting: configured, else Route 53's 2 s.
    pub fn response_timeout(&self) -> Duration {
        self.response_timeout.unwrap_or(Duration::from_secs(2))
    }

    /// Checks the ranges and parses the URL.
    pub fn target(&self) -> Result<Target, ProbeConfigError> {
        let invalid = |reason: String| ProbeConfigError::Invalid {
            name: self.name.clone(),
            reason,
        };
        if self.name.trim().is_empty() || self.region.trim().is_empty() {
            return Err(invalid("`name` and `region` must not be empty".into()));
        }
        if !(1..=10).contains(&self.failure_threshold) {
            return Err(invalid(format!(
                "failure_threshold is {}; it must be 1..10",
                self.failure_threshold
            )));
        }
        if self.interval < Duration::from_secs(1) {
            return Err(invalid(format!(
                "interval is {:?}; it must be at least 1s (Route 53 offers 10s and 30s)",
                self.interval
            )));
        }
        if let Some(s) = &self.search_string {
            if s.is_empty() || s.len() > MAX_SEARCH_STRING {
                return Err(invalid(format!(
                    "search_string must be 1..{MAX_SEARCH_STRING} bytes"
                )));
            }
        }
        let bad_url = |reason: &str| ProbeConfigError::Url {
            name: self.name.clone(),
            url: self.url.clone(),
            reason: reason.to_owned(),
        };
        let url = url::Url::parse(&self.url).map_err(|e| bad_url(&e.to_string()))?;
        let host = url
            .host_str()
            .ok_or_else(|| bad_url("it has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        match url.scheme() {
            "http" | "https" => {
                let path = match url.query() {
                    Some(q) => format!("{}?{q}", url.path()),
                    None => url.path().to_owned(),
                };
                Ok(Target::Http {
                    tls: url.scheme() == "https",
                    host,
                    port: url.port_or_known_default().unwrap_or(80),
                    path,
                })
            }
            "tcp" => {
                if self.search_string.is_some() {
                    return Err(invalid("a TCP probe cannot have a search_string".into()));
                }
                let port = url
                    .port()
                    .ok_or_else(|| bad_url("a tcp:// URL needs a port"))?;
                Ok(Target::Tcp { host, port })
            }
            other => Err(bad_url(&format!(
                "scheme `{other}` is not http, https or tcp"
            ))),
        }
    }
}

/// Checks every probe and that their names are unique.
pub fn validate(probes: &[ProbeConfig]) -> Result<Vec<Target>, ProbeConfigError> {
    let mut names = std::collections::BTreeSet::new();
    probes
        .iter()
        .map(|p| {
            if !names.insert(p.name.as_str()) {
                return Err(ProbeConfigError::Duplicate(p.name.clone()));
            }
            p.target()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(url: &str) -> ProbeConfig {
        ProbeConfig {
            name: "p".into(),
            region: "eu-west-1".into(),
            service: None,
            url: url.into(),
            interval: Duration::from_secs(10),
            failure_threshold: 3,
            search_string: None,
            connect_timeout: None,
            response_timeout: None,
        }
    }

    /// Scenario: URLs of each scheme, and ones that cannot work.
    /// Guarantees: targets carry Route 53's default ports and timeouts; bad ones are named.
    #[test]
    fn urls_parse_into_targets_or_clear_errors() {
        assert_eq!(
            probe("http://127.0.0.1:8080/h?x=1").target().unwrap(),
            Target::Http {
                tls: false,
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/h?x=1".into()
            }
        );
        assert_eq!(
            probe("tcp://db:5432").target().unwrap(),
            Target::Tcp {
                host: "db".into(),
                port: 5432
            }
        );
        assert_eq!(
            probe("tcp://db:5432").connect_timeout(),
            Duration::from_secs(10)
        );
        assert_eq!(probe("http://a/").connect_timeout(), Duration::from_secs(4));
        let e = probe("ftp://a/").target().unwrap_err().to_string();
        assert!(e.contains("not http, https or tcp"), "{e}");
        assert!(probe("tcp://db").target().is_err());
        let mut p = probe("http://a/");
        p.failure_threshold = 11;
        assert!(p.target().unwrap_err().to_string().contains("1..10"));
        let same = [probe("http://a/"), probe("http://b/")];
        assert!(matches!(
            validate(&same),
            Err(ProbeConfigError::Duplicate(n)) if n == "p"
        ));
    }
}
