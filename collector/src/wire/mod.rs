//! The wire encodings of record batches between a collector and the analyzer: Kafka messages,
//! deliveries over HTTP and the disk buffer's records all carry one of them, and say which (a
//! Kafka header, the Content-Type, the record's format byte).
//!
//! - [`Encoding::ArrowIpc`] (1): an Arrow IPC stream in the storage schema with zstd-compressed
//!   buffers; what collectors before encoding 2 send. Always decoded.
//! - [`Encoding::Columnar`] (2, the default): the batch's columns transformed to compress well
//!   ([`columns`]: ids as bytes, dictionaries, attribute maps pivoted to one column per key,
//!   timestamps as differences, narrow integers), written as an uncompressed Arrow IPC stream and
//!   compressed with zstd as a whole. The storage schema is unchanged: the analyzer turns it back
//!   into exactly the batch the collector converted.
//!
//! ```
//! use meridian_collector::wire::{decode, encode, Encoding};
//! use meridian_collector::Signal;
//! use arrow::array::RecordBatch;
//! let batch = RecordBatch::new_empty(Signal::Probes.schema());
//! for encoding in [Encoding::ArrowIpc, Encoding::Columnar] {
//!     let bytes = encode(encoding, &[batch.clone()]).unwrap();
//!     assert_eq!(decode(encoding, &Signal::Probes.schema(), &bytes).unwrap(), vec![batch.clone()]);
//! }
//! assert!(decode(Encoding::Columnar, &Signal::Probes.schema(), b"not zstd").is_err());
//! ```

pub mod columns;
mod descriptor;

use std::io::Read;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use arrow::array::{RecordBatch, RecordBatchOptions};
use arrow::datatypes::{Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use serde::{Deserialize, Serialize};

use crate::ipc;

/// Kafka header naming a message's encoding (decimal); absent on messages of encoding 1.
pub const KAFKA_HEADER: &str = "meridian.encoding";

/// zstd level of encoding 2: the level the OTLP+zstd baseline is measured at.
const ZSTD_LEVEL: i32 = 3;

/// A message: its bytes and the encoding they are in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// How `bytes` are encoded.
    pub encoding: Encoding,
    /// The message.
    pub bytes: bytes::Bytes,
}

/// How a batch is encoded on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// 1: an Arrow IPC stream with zstd-compressed buffers.
    ArrowIpc,
    /// 2: columns transformed for compression, the whole stream zstd-compressed.
    #[default]
    Columnar,
}

impl std::str::FromStr for Encoding {
    type Err = String;

    /// `columnar` or `arrow-ipc`, as in the configuration.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "columnar" => Ok(Encoding::Columnar),
            "arrow-ipc" => Ok(Encoding::ArrowIpc),
            other => Err(format!("wire encoding {other:?}: columnar or arrow-ipc")),
        }
    }
}

impl Encoding {
    /// The number carried in headers and buffer records.
    pub fn code(self) -> u8 {
        match self {
            Encoding::ArrowIpc => 1,
            Encoding::Columnar => 2,
        }
    }

    /// The encoding a number names, if this build knows it.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Encoding::ArrowIpc),
            2 => Some(Encoding::Columnar),
            _ => None,
        }
    }

    /// The encoding a Kafka header names: absent is 1 (messages from before the header).
    pub fn from_header(value: Option<&str>) -> Result<Self, String> {
        match value {
            None => Ok(Encoding::ArrowIpc),
            Some(v) => v
                .parse::<u8>()
                .ok()
                .and_then(Self::from_code)
                .ok_or_else(|| format!("wire encoding {v:?}, this build reads 1 and 2")),
        }
    }

    /// The HTTP media type of a delivery in this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::ArrowIpc => ipc::CONTENT_TYPE,
            Encoding::Columnar => "application/vnd.meridian.columnar.v2+zstd",
        }
    }

    /// The encoding of an HTTP delivery's media type; none given is 1.
    pub fn from_content_type(value: Option<&str>) -> Result<Self, String> {
        match value.map(|v| v.split(';').next().unwrap_or_default().trim()) {
            None | Some("") => Ok(Encoding::ArrowIpc),
            Some(v) if v == ipc::CONTENT_TYPE => Ok(Encoding::ArrowIpc),
            Some(v) if v == Encoding::Columnar.content_type() => Ok(Encoding::Columnar),
            Some(v) => Err(format!(
                "content type {v:?}: send {} or {}",
                ipc::CONTENT_TYPE,
                Encoding::Columnar.content_type()
            )),
        }
    }
}

/// Encodes batches of one schema as one message.
pub fn encode(encoding: Encoding, batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    match encoding {
        Encoding::ArrowIpc => ipc::encode(batches),
        Encoding::Columnar => encode_columnar(batches),
    }
}

/// Splits a batch into messages no larger than `max_bytes` each (by halving), unless a single
/// row is larger; each with its row count.
pub fn encode_bounded(
    encoding: Encoding,
    batch: &RecordBatch,
    max_bytes: usize,
) -> Result<Vec<(usize, Vec<u8>)>, ArrowError> {
    let encoded = encode(encoding, std::slice::from_ref(batch))?;
    if encoded.len() <= max_bytes || batch.num_rows() <= 1 {
        return Ok(vec![(batch.num_rows(), encoded)]);
    }
    let half = batch.num_rows() / 2;
    let mut out = encode_bounded(encoding, &batch.slice(0, half), max_bytes)?;
    out.extend(encode_bounded(
        encoding,
        &batch.slice(half, batch.num_rows() - half),
        max_bytes,
    )?);
    Ok(out)
}

/// Decodes a message into batches of `schema` (the signal's storage schema). Damaged or hostile
/// bytes are an error, never a panic or an allocation past [`ipc::MAX_DECLARED_BYTES`].
pub fn decode(
    encoding: Encoding,
    schema: &SchemaRef,
    bytes: &[u8],
) -> Result<Vec<RecordBatch>, ArrowError> {
    match encoding {
        Encoding::ArrowIpc => ipc::decode(bytes),
        Encoding::Columnar => decode_columnar(schema, bytes),
    }
}

fn encode_columnar(batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let storage = first.schema();
    let mut descriptor = None;
    let mut travelling = Vec::with_capacity(batches.len());
    for batch in batches {
        let (json, fields, columns) = descriptor::describe(&storage, columns::to_wire(batch)?)?;
        // Batches whose columns chose other transforms get a frame of their own.
        if descriptor.get_or_insert_with(|| json.clone()) != &json {
            return encode_each(batches);
        }
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        travelling.push(RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            columns,
            &options,
        )?);
    }
    let descriptor = descriptor.unwrap_or_default();
    let mut raw = Vec::new();
    raw.extend_from_slice(
        &u32::try_from(descriptor.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    raw.extend_from_slice(descriptor.as_bytes());
    let stream = ipc_stream(&travelling[0].schema(), &travelling)?;
    // The schema message is rebuilt from the descriptor on arrival.
    let schema_message = stream_length(&stream, 1)?;
    raw.extend_from_slice(&stream[schema_message..]);
    zstd::bulk::compress(&raw, ZSTD_LEVEL).map_err(|e| ArrowError::IpcError(e.to_string()))
}

/// An uncompressed IPC stream of `batches`, 8-byte aligned (the default 64 only adds padding
/// for zstd to squeeze out again).
fn ipc_stream(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let options = IpcWriteOptions::try_new(8, false, arrow::ipc::MetadataVersion::V5)?;
    let mut out = Vec::new();
    let mut writer = StreamWriter::try_new_with_options(&mut out, schema, options)?;
    for b in batches {
        writer.write(b)?;
    }
    writer.finish()?;
    drop(writer);
    Ok(out)
}

/// Several batches of different descriptors: one frame each, one after the other (zstd
/// inflates concatenated frames as one).
fn encode_each(batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let mut out = Vec::new();
    for b in batches {
        out.extend(encode_columnar(std::slice::from_ref(b))?);
    }
    Ok(out)
}

fn decode_columnar(schema: &SchemaRef, bytes: &[u8]) -> Result<Vec<RecordBatch>, ArrowError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let raw = inflate(bytes)?;
    let truncated = || ArrowError::IpcError("a columnar message is truncated".into());
    let mut out = Vec::new();
    let mut rest = raw.as_slice();
    while !rest.is_empty() {
        let len = rest
            .get(..4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes)
            .ok_or_else(truncated)? as usize;
        let descriptor = rest.get(4..4 + len).ok_or_else(truncated)?;
        rest = &rest[4 + len..];
        let plan = descriptor::Plan::parse(descriptor, schema)?;
        let used = stream_length(rest, usize::MAX)?;
        let mut stream = ipc_stream(&plan.schema, &[])?;
        // `ipc_stream` ends with an end-of-stream marker; the messages go before it.
        stream.truncate(stream_length(&stream, 1)?);
        stream.extend_from_slice(&rest[..used]);
        rest = &rest[used..];
        let travelling = ipc::decode(&stream)?;
        // The transforms index into columns the message describes; a damaged one must be an
        // error for its sender, not a dead consumer.
        let rebuilt = std::panic::catch_unwind(AssertUnwindSafe(|| {
            travelling
                .iter()
                .map(|t| {
                    let (fields, columns) = plan.restore(t)?;
                    columns::from_wire(&fields, &columns, t.num_rows(), schema)
                })
                .collect::<Result<Vec<_>, _>>()
        }))
        .unwrap_or_else(|_| {
            Err(ArrowError::InvalidArgumentError(
                "columnar wire batch: damaged, the decoder could not read it".into(),
            ))
        })?;
        out.extend(rebuilt);
    }
    Ok(out)
}

/// Inflates zstd frames, refusing output past [`ipc::MAX_DECLARED_BYTES`] before it is made.
fn inflate(bytes: &[u8]) -> Result<Vec<u8>, ArrowError> {
    let damaged = |e: std::io::Error| ArrowError::IpcError(format!("zstd: {e}"));
    let decoder = zstd::stream::read::Decoder::with_buffer(bytes).map_err(damaged)?;
    let mut out = Vec::new();
    decoder
        .take(ipc::MAX_DECLARED_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(damaged)?;
    if out.len() as u64 > ipc::MAX_DECLARED_BYTES {
        return Err(ArrowError::IpcError(format!(
            "a message inflates past the {}-byte limit",
            ipc::MAX_DECLARED_BYTES
        )));
    }
    Ok(out)
}

/// Length of the first `messages` IPC messages at the start of `bytes`, or of all of them
/// through the end-of-stream marker if there are fewer.
fn stream_length(bytes: &[u8], messages: usize) -> Result<usize, ArrowError> {
    let read_u32 = |at: usize| Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    let truncated = || ArrowError::IpcError("the IPC stream is truncated".into());
    let mut pos = 0usize;
    for _ in 0..messages {
        let mut len = read_u32(pos).ok_or_else(truncated)?;
        pos += 4;
        if len == u32::MAX {
            len = read_u32(pos).ok_or_else(truncated)?;
            pos += 4;
        }
        if len == 0 {
            return Ok(pos);
        }
        let meta_end = pos
            .checked_add(len as usize)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(truncated)?;
        let message = arrow::ipc::root_as_message(&bytes[pos..meta_end])
            .map_err(|e| ArrowError::IpcError(format!("a damaged IPC message: {e}")))?;
        pos = usize::try_from(message.bodyLength())
            .ok()
            .and_then(|n| meta_end.checked_add(n))
            .filter(|&e| e <= bytes.len())
            .ok_or_else(truncated)?;
    }
    Ok(pos)
}

#[cfg(test)]
mod tests;
