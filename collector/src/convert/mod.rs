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

use arrow::array::{Array, ArrayRef, RecordBatch, StringBuilder};
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

/// The columns with their buffers cut to their contents. Builders reserve for typical values
/// (a string column 16 bytes a row, a map 8 entries), and a converted batch waits in the
/// collector's queue or the analyzer's hot buffer: spare capacity would be held for as long
/// (1,375 bytes held for 814 of data per span before, `meridian bench convert`). A buffer used
/// to more than half stays where it is (mimalloc's realloc); the others are copied.
fn fitted(mut columns: Vec<ArrayRef>) -> Vec<ArrayRef> {
    for column in &mut columns {
        column.shrink_to_fit();
    }
    columns
}

/// Nanoseconds since the epoch as the signed value Arrow timestamps hold.
fn ts(nanos: u64) -> i64 {
    nanos as i64
}

#[cfg(test)]
mod roundtrip_tests;

#[cfg(test)]
mod tests {
    use arrow::array::ArrayData;
    use proptest::prelude::*;

    use super::*;
    use crate::testing::strategies::{logs, metrics, traces};

    /// Bytes the buffers of `data` (and its children's) hold beyond their contents.
    fn spare(data: &ArrayData) -> usize {
        data.buffers()
            .iter()
            .chain(data.nulls().map(|n| n.buffer()))
            .map(|b| b.capacity() - b.len())
            .sum::<usize>()
            + data.child_data().iter().map(spare).sum::<usize>()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// Scenario: any request of each signal, converted.
        /// Guarantees: no buffer of the batch holds capacity beyond its contents (the analyzer
        /// keeps converted batches until a flush).
        #[test]
        fn converted_batches_hold_no_spare_capacity(t in traces(), m in metrics(), l in logs()) {
            for converted in [
                traces_to_arrow(&t, "r1"),
                metrics_to_arrow(&m, "r1"),
                logs_to_arrow(&l, "r1"),
            ] {
                let batch = converted.unwrap().batch;
                for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
                    prop_assert_eq!(spare(&column.to_data()), 0, "column {}", field.name());
                }
            }
        }
    }
}
