//! The process's memory limit (`max_memory_bytes`): a request is refused, retryably, before it
//! is read or decoded when the process's resident memory plus what the requests already admitted
//! may still allocate would pass the limit.
//!
//! Resident memory is read from `/proc/self/status` (at most every 10 ms); each admitted request
//! holds a [`Reservation`] for the memory it may still need until it is answered. Counting both
//! is deliberately conservative: a request's memory shows in the resident figure and in its
//! reservation while it runs. Requests are admitted up to [`ADMIT_UP_TO`] of the limit: the
//! rest is for work that cannot be refused once data was accepted (the store's flushes to
//! Parquet, the analysis, queries within their own budget).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

/// How old a resident-memory reading may be before a request reads it again.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// The share of the limit requests may fill, in percent.
pub const ADMIT_UP_TO: u64 = 90;

/// Memory a decoded OTLP request (prost structures, then its Arrow batch) takes per byte of
/// its uncompressed protobuf or JSON body: an estimate on the safe side.
pub const DECODED_PER_BODY_BYTE: u64 = 6;

/// What a gRPC request reserves before tonic reads it (its length is not known before then;
/// OTel SDKs' default batches of 512 spans decode to well under this).
pub const GRPC_REQUEST_RESERVATION: u64 = 4 << 20;

/// The process-wide memory limit; [`MemoryLimit::unlimited`] admits everything. Cheap to clone.
#[derive(Clone, Default)]
pub struct MemoryLimit {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    max: u64,
    /// `max` × [`ADMIT_UP_TO`]: what requests may fill.
    admit: u64,
    reserved: AtomicU64,
    resident: AtomicU64,
    /// Nanoseconds after `epoch` of the last reading of `resident`.
    sampled_at: AtomicU64,
    epoch: Instant,
    metrics: MemoryMetrics,
}

#[derive(Clone, Debug)]
struct MemoryMetrics {
    resident: IntGauge,
    reserved: IntGauge,
    refused: IntCounterVec,
}

/// A request the limit turned away; answered as overload (503 / UNAVAILABLE, retryable).
#[derive(Debug, thiserror::Error)]
#[error(
    "memory limit: {} MiB resident + {} MiB admitted + {} MiB for this request exceeds {ADMIT_UP_TO}% of {} MiB; retry later",
    .resident >> 20, .reserved >> 20, .wanted >> 20, .max >> 20
)]
pub struct MemoryExhausted {
    /// Resident memory when the request was refused.
    pub resident: u64,
    /// Memory reserved by requests in flight.
    pub reserved: u64,
    /// What this request asked for.
    pub wanted: u64,
    /// The limit.
    pub max: u64,
}

impl MemoryLimit {
    /// No limit: every reservation succeeds and nothing is measured.
    pub fn unlimited() -> Self {
        Self::default()
    }

    /// A limit of `max_bytes`, reporting `meridian_memory_*` metrics to `registry`; `None`
    /// (or 0) is [`MemoryLimit::unlimited`].
    pub fn new(max_bytes: Option<u64>, registry: &Registry) -> Result<Self, prometheus::Error> {
        let Some(max) = max_bytes.filter(|&m| m > 0) else {
            return Ok(Self::unlimited());
        };
        let limit = IntGauge::new(
            "meridian_memory_limit_bytes",
            "max_memory_bytes: requests are refused before the process would pass it",
        )?;
        let resident = IntGauge::new(
            "meridian_memory_resident_bytes",
            "The process's resident memory at the last admission check",
        )?;
        let reserved = IntGauge::new(
            "meridian_memory_reserved_bytes",
            "Memory reserved by requests being read, decoded or stored",
        )?;
        let refused = IntCounterVec::new(
            Opts::new(
                "meridian_memory_refused_requests_total",
                "Requests refused because the memory limit would be passed",
            ),
            &["listener"],
        )?;
        registry.register(Box::new(limit.clone()))?;
        registry.register(Box::new(resident.clone()))?;
        registry.register(Box::new(reserved.clone()))?;
        registry.register(Box::new(refused.clone()))?;
        limit.set(max as i64);
        Ok(Self {
            inner: Some(Arc::new(Inner {
                max,
                admit: max / 100 * ADMIT_UP_TO,
                reserved: AtomicU64::new(0),
                resident: AtomicU64::new(0),
                sampled_at: AtomicU64::new(u64::MAX),
                epoch: Instant::now(),
                metrics: MemoryMetrics {
                    resident,
                    reserved,
                    refused,
                },
            })),
        })
    }

    /// The limit in bytes, if there is one.
    pub fn max_bytes(&self) -> Option<u64> {
        self.inner.as_ref().map(|i| i.max)
    }

    /// Reserves `bytes` for a request arriving on `listener`, or refuses it if resident memory
    /// plus every reservation would pass [`ADMIT_UP_TO`] of the limit. So that a request larger than the whole
    /// headroom is not refused forever, one is admitted whenever nothing else is reserved and
    /// the process is under its limit.
    ///
    /// ```
    /// use meridian_collector::memory::MemoryLimit;
    /// let registry = prometheus::Registry::new();
    /// let limit = MemoryLimit::new(Some(1 << 40), &registry).unwrap();
    /// let first = limit.reserve("otlp_http", 1 << 20).unwrap();
    /// assert!(limit.reserve("otlp_http", 1 << 41).is_err());
    /// drop(first);
    /// // Nothing else in flight: even an oversized request gets its turn.
    /// assert!(limit.reserve("otlp_http", 1 << 41).is_ok());
    /// assert!(MemoryLimit::unlimited().reserve("otlp_http", u64::MAX).is_ok());
    /// ```
    pub fn reserve(&self, listener: &str, bytes: u64) -> Result<Reservation, MemoryExhausted> {
        let Some(inner) = &self.inner else {
            return Ok(Reservation::none());
        };
        inner.admit(listener, bytes, 0)?;
        Ok(Reservation {
            inner: Some(Arc::clone(inner)),
            bytes,
        })
    }
}

impl Inner {
    /// Adds `bytes` to the reserved total if it fits beside `held` (what the asking request
    /// already holds).
    fn admit(&self, listener: &str, bytes: u64, held: u64) -> Result<(), MemoryExhausted> {
        let resident = self.resident();
        let mut reserved = self.reserved.load(Ordering::Relaxed);
        loop {
            let alone = reserved == held && resident < self.admit;
            let fits = resident.saturating_add(reserved).saturating_add(bytes) <= self.admit;
            if !fits && !alone {
                self.metrics.refused.with_label_values(&[listener]).inc();
                return Err(MemoryExhausted {
                    resident,
                    reserved,
                    wanted: bytes,
                    max: self.max,
                });
            }
            match self.reserved.compare_exchange_weak(
                reserved,
                reserved + bytes,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.metrics.reserved.set((reserved + bytes) as i64);
                    return Ok(());
                }
                Err(now) => reserved = now,
            }
        }
    }

    fn release(&self, bytes: u64) {
        let before = self.reserved.fetch_sub(bytes, Ordering::AcqRel);
        self.metrics
            .reserved
            .set(before.saturating_sub(bytes) as i64);
    }

    /// Resident memory, read again when the last reading is older than [`SAMPLE_EVERY`].
    fn resident(&self) -> u64 {
        let now = self.epoch.elapsed().as_nanos() as u64;
        let at = self.sampled_at.load(Ordering::Relaxed);
        if at != u64::MAX && now.saturating_sub(at) < SAMPLE_EVERY.as_nanos() as u64 {
            return self.resident.load(Ordering::Relaxed);
        }
        let resident = resident_bytes();
        self.resident.store(resident, Ordering::Relaxed);
        self.sampled_at.store(now, Ordering::Relaxed);
        self.metrics.resident.set(resident as i64);
        resident
    }
}

/// Memory held for one request until it is dropped.
#[derive(Debug)]
#[must_use = "the memory is released when the reservation is dropped"]
pub struct Reservation {
    inner: Option<Arc<Inner>>,
    bytes: u64,
}

impl Reservation {
    fn none() -> Self {
        Self {
            inner: None,
            bytes: 0,
        }
    }

    /// Raises this reservation to `total` bytes once the request's real size is known (after
    /// its body is read and decompressed), refusing it if the increase does not fit.
    pub fn grow_to(&mut self, listener: &str, total: u64) -> Result<(), MemoryExhausted> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        if total <= self.bytes {
            return Ok(());
        }
        inner.admit(listener, total - self.bytes, self.bytes)?;
        self.bytes = total;
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(inner) = &self.inner {
            inner.release(self.bytes);
        }
    }
}

/// The process's resident set size (`VmRSS`), or 0 where `/proc` does not say.
fn resident_bytes() -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(max: u64) -> MemoryLimit {
        MemoryLimit::new(Some(max), &Registry::new()).unwrap()
    }

    /// Scenario: a limit just above the test process's resident memory.
    /// Guarantees: reservations are admitted while they fit, refused once they would not, and
    /// released on drop; growing a reservation is checked the same way.
    #[test]
    fn reservations_fit_under_the_limit_and_are_released() {
        let resident = resident_bytes();
        assert!(resident > 0, "no VmRSS in /proc/self/status");
        // 64 MiB of room to admit into.
        let limit = limit((resident + (64 << 20)) / ADMIT_UP_TO * 100);
        let mut a = limit.reserve("t", 16 << 20).unwrap();
        let b = limit.reserve("t", 16 << 20).unwrap();
        let refused = limit.reserve("t", 48 << 20).unwrap_err();
        assert_eq!(refused.reserved, 32 << 20);
        assert!(refused.to_string().contains("retry later"), "{refused}");
        assert!(a.grow_to("t", 64 << 20).is_err(), "grown past the limit");
        a.grow_to("t", 24 << 20).unwrap();
        drop(b);
        drop(a);
        let inner = limit.inner.as_ref().unwrap();
        assert_eq!(inner.reserved.load(Ordering::Relaxed), 0);
        assert_eq!(
            inner.metrics.refused.with_label_values(&["t"]).get(),
            2,
            "both refusals counted"
        );
    }

    /// Scenario: resident memory already over the limit.
    /// Guarantees: even a lone small request is refused (the process must shed load).
    #[test]
    fn over_the_limit_nothing_is_admitted() {
        let limit = limit(1 << 20);
        assert!(limit.reserve("t", 1).is_err());
    }
}
