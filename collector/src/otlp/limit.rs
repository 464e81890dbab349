//! Rate limits of the OTLP receivers (`[collector.otlp.rate_limit]`): a token bucket per sender
//! — the token's name when authentication is on, the client's IP address otherwise — in items
//! (spans, data points, log records) per second and request bytes per second.
//!
//! Hand-written rather than from a rate-limiting crate because both resources must be charged
//! together or not at all: a request refused for its bytes must not have spent items.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::auth::Caller;

/// Limits per sender; `0` turns a dimension off. Off by default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Items (spans, metric data points, log records) per second per sender.
    pub items_per_second: u64,
    /// Request bytes (uncompressed OTLP protobuf) per second per sender.
    pub bytes_per_second: u64,
    /// How much a sender may send at once after being idle, as time at its rate.
    #[serde(with = "humantime_serde")]
    pub burst: Duration,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            items_per_second: 0,
            bytes_per_second: 0,
            burst: Duration::from_secs(1),
        }
    }
}

/// Who sent a request, as rate limits count it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Sender {
    /// The named token.
    Token(Arc<str>),
    /// A client address (authentication off).
    Address(std::net::IpAddr),
    /// Neither is known.
    Unknown,
}

impl Sender {
    /// The sender of a request from `addr` that authenticated as `caller`.
    pub fn of(caller: Option<&Caller>, addr: Option<SocketAddr>) -> Self {
        match (caller, addr) {
            (Some(Caller::Token(name)), _) => Sender::Token(Arc::clone(name)),
            (_, Some(addr)) => Sender::Address(addr.ip()),
            _ => Sender::Unknown,
        }
    }
}

/// One sender's two buckets; levels may go negative (debt), so a request larger than the
/// burst still passes once the sender is idle, instead of being refused forever.
struct Bucket {
    items: f64,
    bytes: f64,
    at: Instant,
}

/// Senders tracked before idle ones (whose buckets are full again) are forgotten.
const MAX_SENDERS: usize = 10_000;

/// The rate limiter shared by both receivers. Cheap to clone.
#[derive(Clone)]
pub struct RateLimiter {
    config: RateLimitConfig,
    buckets: Arc<Mutex<HashMap<Sender, Bucket>>>,
}

impl RateLimiter {
    /// A limiter with `config`'s limits.
    pub fn new(config: RateLimitConfig) -> Self {
        Self {
            config,
            buckets: Arc::default(),
        }
    }

    /// Whether any limit is set.
    pub fn enabled(&self) -> bool {
        self.config.items_per_second > 0 || self.limits_bytes()
    }

    /// Whether requests' sizes count: measuring a request walks all of it, so skip it otherwise.
    pub fn limits_bytes(&self) -> bool {
        self.config.bytes_per_second > 0
    }

    /// Charges `items` and `bytes` to `sender` at `now`, or says how long it must wait.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use meridian_collector::otlp::{RateLimitConfig, RateLimiter, Sender};
    /// let limiter = RateLimiter::new(RateLimitConfig {
    ///     items_per_second: 100,
    ///     bytes_per_second: 0,
    ///     burst: Duration::from_secs(1),
    /// });
    /// let (gw, t0) = (Sender::Unknown, Instant::now());
    /// assert_eq!(limiter.admit(&gw, 100, 0, t0), Ok(()));
    /// // The bucket is empty: one more item waits for a hundredth of a second.
    /// assert_eq!(limiter.admit(&gw, 1, 0, t0), Err(Duration::from_millis(10)));
    /// assert_eq!(limiter.admit(&gw, 1, 0, t0 + Duration::from_millis(10)), Ok(()));
    /// ```
    pub fn admit(
        &self,
        sender: &Sender,
        items: usize,
        bytes: usize,
        now: Instant,
    ) -> Result<(), Duration> {
        if !self.enabled() {
            return Ok(());
        }
        let burst = self.config.burst.as_secs_f64().max(0.001);
        let (item_rate, byte_rate) = (
            self.config.items_per_second as f64,
            self.config.bytes_per_second as f64,
        );
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_SENDERS && !buckets.contains_key(sender) {
            buckets.retain(|_, b| {
                let idle = now.saturating_duration_since(b.at).as_secs_f64();
                idle < burst * 2.0
            });
        }
        let bucket = buckets.entry(sender.clone()).or_insert(Bucket {
            items: item_rate * burst,
            bytes: byte_rate * burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.at = now.max(bucket.at);
        bucket.items = (bucket.items + elapsed * item_rate).min(item_rate * burst);
        bucket.bytes = (bucket.bytes + elapsed * byte_rate).min(byte_rate * burst);
        // Seconds until a level is back at zero.
        let wait = |level: f64, rate: f64| {
            if rate > 0.0 && level < 0.0 {
                -level / rate
            } else {
                0.0
            }
        };
        let waiting = wait(bucket.items, item_rate).max(wait(bucket.bytes, byte_rate));
        // A level exactly at zero has room for nothing.
        let empty = (item_rate > 0.0 && bucket.items <= 0.0 && items > 0)
            || (byte_rate > 0.0 && bucket.bytes <= 0.0 && bytes > 0);
        if waiting > 0.0 || empty {
            let needed = |n: usize, rate: f64| {
                if rate > 0.0 {
                    n.min(1) as f64 / rate
                } else {
                    0.0
                }
            };
            let floor = needed(items, item_rate).max(needed(bytes, byte_rate));
            return Err(Duration::from_secs_f64(waiting.max(floor)));
        }
        if item_rate > 0.0 {
            bucket.items -= items as f64;
        }
        if byte_rate > 0.0 {
            bucket.bytes -= bytes as f64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scenario: two senders at 1,000 items/s, one sending 5,000 items in one request.
    /// Guarantees: the large request passes on a full bucket (no request is refused forever)
    /// and its sender then waits 4 s; the other sender is not affected; a sender idle for a
    /// second is full again.
    #[test]
    fn debt_makes_large_requests_wait_and_senders_are_independent() {
        let limiter = RateLimiter::new(RateLimitConfig {
            items_per_second: 1_000,
            bytes_per_second: 0,
            burst: Duration::from_secs(1),
        });
        let t0 = Instant::now();
        let (a, b) = (Sender::Token("a".into()), Sender::Token("b".into()));
        assert_eq!(limiter.admit(&a, 5_000, 0, t0), Ok(()));
        let wait = limiter.admit(&a, 1, 0, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 4.0).abs() < 0.01, "{wait:?}");
        assert_eq!(limiter.admit(&b, 1_000, 0, t0), Ok(()));
        assert!(limiter
            .admit(&a, 1, 0, t0 + Duration::from_secs(4))
            .is_err());
        assert_eq!(
            limiter.admit(&a, 1, 0, t0 + Duration::from_millis(4_001)),
            Ok(())
        );
        assert_eq!(
            limiter.admit(&b, 1_000, 0, t0 + Duration::from_secs(2)),
            Ok(())
        );
    }

    /// Scenario: a bytes limit reached while items are left.
    /// Guarantees: the request is refused (either limit refuses), and admitted again once
    /// the bytes bucket refilled.
    #[test]
    fn either_limit_refuses() {
        let limiter = RateLimiter::new(RateLimitConfig {
            items_per_second: 10,
            bytes_per_second: 100,
            burst: Duration::from_secs(1),
        });
        let (s, t0) = (Sender::Unknown, Instant::now());
        assert_eq!(limiter.admit(&s, 1, 100, t0), Ok(()));
        assert!(limiter.admit(&s, 1, 10, t0).is_err());
        let later = t0 + Duration::from_secs(1);
        assert_eq!(limiter.admit(&s, 9, 100, later), Ok(()));
    }
}
