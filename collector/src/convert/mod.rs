//! OTLP requests → Arrow record batches in the shared schema (`crate::schema`).
//!
//! `*_to_arrow` takes a decoded Export request and the collector's region and gives one batch plus
//! what was rejected. The way back, Arrow → OTLP, is `to_otlp` (compiled for the round-trip
//! tests).

mod attributes;
mod context;
mod logs;
mod metrics;
mod nested;
mod promoted;
mod traces;

#[cfg(test)]
mod to_otlp;

pub use logs::logs_to_arrow;
pub use metrics::metrics_to_arrow;
pub use traces::traces_to_arrow;

use arrow::array::{RecordBatch, StringBuilder};
use arrow::error::ArrowError;

/// Why a conversion failed.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// Arrow refused to assemble the batch (a bug in the schema or a builder).
    #[error("building an Arrow batch: {0}")]
    Arrow(#[from] ArrowError),
    /// A column is missing, has the wrong type or holds a value that cannot be read back.
    #[error("reading a stored column: {0}")]
    Column(String),
}

/// A converted request: the rows that can be stored, and what had to be rejected.
#[derive(Debug)]
pub struct Converted {
    /// Rows in the signal's schema (possibly empty).
    pub batch: RecordBatch,
    /// Items (spans, data points, log records) rejected as invalid.
    pub rejected: i64,
    /// Why the first rejected item was rejected; empty when none were.
    pub error_message: String,
}

/// Counts and describes the items a conversion rejected.
#[derive(Debug, Default)]
struct Rejections {
    count: i64,
    message: String,
}

impl Rejections {
    fn add(&mut self, message: impl FnOnce() -> String) {
        if self.count == 0 {
            self.message = message();
        }
        self.count += 1;
    }

    fn into_converted(self, batch: RecordBatch) -> Converted {
        Converted {
            batch,
            rejected: self.count,
            error_message: self.message,
        }
    }
}

/// Checks an id's length: an empty optional id is fine; a wrong length or an all-zero id is not
/// (both invalid in OTLP).
fn check_id(id: &[u8], len: usize, what: &str, optional: bool) -> Result<(), String> {
    if id.is_empty() && optional {
        return Ok(());
    }
    if id.len() != len {
        return Err(format!("{what} must be {len} bytes, got {}", id.len()));
    }
    if id.iter().all(|b| *b == 0) {
        return Err(format!("{what} must not be all zeros"));
    }
    Ok(())
}

/// Calls `f` with the id as lowercase hex, without allocating for ids of up to 32 bytes.
fn with_hex<R>(id: &[u8], f: impl FnOnce(&str) -> R) -> R {
    let mut buf = [0u8; 64];
    if let Some(out) = buf.get_mut(..id.len() * 2) {
        if hex::encode_to_slice(id, out).is_ok() {
            return f(std::str::from_utf8(out).unwrap_or_default());
        }
    }
    f(&hex::encode(id))
}

/// Appends an id as hex, or null when empty.
fn append_hex(builder: &mut StringBuilder, id: &[u8]) {
    if id.is_empty() {
        builder.append_null();
    } else {
        with_hex(id, |h| builder.append_value(h));
    }
}

/// Nanoseconds since the epoch as the signed value Arrow timestamps hold.
fn ts(nanos: u64) -> i64 {
    nanos as i64
}

#[cfg(test)]
mod roundtrip_tests;
