//! One record of the disk buffer: a batch of one signal in a wire encoding, with the identity
//! it is delivered under.
//!
//! Layout: `[format: u8][signal: u8][sequence: u64 LE][rows: u32 LE][created unix ms: i64 LE]`
//! followed by the message, exactly what a sink sends. The format byte is the message's wire
//! encoding ([`Encoding::code`]): records of format 1, written before encoding 2, still read.

use crate::signal::Signal;
use crate::wire::Encoding;

const HEADER: usize = 1 + 1 + 8 + 4 + 8;

/// A buffered batch, still encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferedRecord {
    /// Signal of the rows.
    pub signal: Signal,
    /// Sequence number within (collector, signal), starting at 1; stable across restarts.
    pub sequence: u64,
    /// Rows in the batch.
    pub rows: u32,
    /// When the record was written (unix ms), for the buffer's age.
    pub created_ms: i64,
    /// The encoding of `payload`.
    pub encoding: Encoding,
    /// The rows, encoded.
    pub payload: Vec<u8>,
}

fn signal_code(signal: Signal) -> u8 {
    match signal {
        Signal::Traces => 1,
        Signal::Metrics => 2,
        Signal::Logs => 3,
        Signal::Probes => 4,
    }
}

impl BufferedRecord {
    /// Serializes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.payload.len());
        out.push(self.encoding.code());
        out.push(signal_code(self.signal));
        out.extend_from_slice(&self.sequence.to_le_bytes());
        out.extend_from_slice(&self.rows.to_le_bytes());
        out.extend_from_slice(&self.created_ms.to_le_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    /// Parses a record; `None` if it is not one (an unknown format version).
    pub fn decode(mut bytes: Vec<u8>) -> Option<Self> {
        if bytes.len() < HEADER {
            return None;
        }
        let encoding = Encoding::from_code(bytes[0])?;
        let signal = match bytes[1] {
            1 => Signal::Traces,
            2 => Signal::Metrics,
            3 => Signal::Logs,
            4 => Signal::Probes,
            _ => return None,
        };
        let sequence = u64::from_le_bytes(bytes[2..10].try_into().ok()?);
        let rows = u32::from_le_bytes(bytes[10..14].try_into().ok()?);
        let created_ms = i64::from_le_bytes(bytes[14..22].try_into().ok()?);
        let payload = bytes.split_off(HEADER);
        Some(Self {
            signal,
            sequence,
            rows,
            created_ms,
            encoding,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scenario: a record encoded and decoded.
    /// Guarantees: every field survives; foreign bytes are not mistaken for a record.
    #[test]
    fn round_trips() {
        let r = BufferedRecord {
            signal: Signal::Logs,
            sequence: 42,
            rows: 7,
            created_ms: 1_700_000_000_000,
            encoding: Encoding::Columnar,
            payload: vec![1, 2, 3],
        };
        assert_eq!(BufferedRecord::decode(r.encode()), Some(r.clone()));
        // A record of format 1, as buffers written before encoding 2 hold.
        let old = BufferedRecord {
            encoding: Encoding::ArrowIpc,
            ..r
        };
        assert_eq!(old.encode()[0], 1);
        assert_eq!(BufferedRecord::decode(old.encode()), Some(old));
        assert_eq!(BufferedRecord::decode(vec![9; 30]), None);
    }
}
