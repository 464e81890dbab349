//! Arrow IPC stream encoding of record batches, zstd-compressed: the wire format between the
//! collector and the analyzer (HTTP now, Kafka messages later).

use std::panic::AssertUnwindSafe;

use arrow::array::RecordBatch;
use arrow::error::ArrowError;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow::ipc::CompressionType;

/// Media type of an Arrow IPC stream.
pub const CONTENT_TYPE: &str = "application/vnd.apache.arrow.stream";

/// Encodes batches as one IPC stream with zstd-compressed buffers.
pub fn encode(batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let options = IpcWriteOptions::default().try_with_compression(Some(CompressionType::ZSTD))?;
    let mut out = Vec::new();
    {
        let mut writer = StreamWriter::try_new_with_options(&mut out, &first.schema(), options)?;
        for b in batches {
            writer.write(b)?;
        }
        writer.finish()?;
    }
    Ok(out)
}

/// Splits a batch into IPC streams no larger than `max_bytes` each (by halving), unless a single
/// row is larger.
pub fn encode_bounded(
    batch: &RecordBatch,
    max_bytes: usize,
) -> Result<Vec<(usize, Vec<u8>)>, ArrowError> {
    let encoded = encode(std::slice::from_ref(batch))?;
    if encoded.len() <= max_bytes || batch.num_rows() <= 1 {
        return Ok(vec![(batch.num_rows(), encoded)]);
    }
    let half = batch.num_rows() / 2;
    let mut out = encode_bounded(&batch.slice(0, half), max_bytes)?;
    out.extend(encode_bounded(
        &batch.slice(half, batch.num_rows() - half),
        max_bytes,
    )?);
    Ok(out)
}

/// Most bytes the compressed buffers of one IPC message may say they inflate to. arrow-ipc
/// allocates a compressed buffer's declared length before inflating it, so a damaged or hostile
/// message declaring 4.8 EB aborted the whole process (found by the `batch_payload` fuzz target).
/// Real batches are a few MiB.
pub const MAX_DECLARED_BYTES: u64 = 1 << 30;

/// Decodes every batch of an IPC stream; a message whose compressed buffers declare more than
/// [`MAX_DECLARED_BYTES`] is an error, found before anything is allocated.
///
/// ```
/// use meridian_collector::ipc::{decode, encode};
/// use arrow::array::{Int64Array, RecordBatch};
/// use std::sync::Arc;
/// let batch = RecordBatch::try_from_iter([("n", Arc::new(Int64Array::from(vec![1, 2, 3])) as _)]).unwrap();
/// assert_eq!(decode(&encode(&[batch.clone()]).unwrap()).unwrap(), vec![batch]);
/// assert!(decode(b"not an IPC stream").is_err());
/// ```
pub fn decode(bytes: &[u8]) -> Result<Vec<RecordBatch>, ArrowError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    check_declared_sizes(bytes)?;
    // arrow-ipc panics on some damaged schemas (`unimplemented!` for a field of type NONE, found
    // by fuzzing); a damaged batch must be an error for its sender, not a dead consumer task.
    std::panic::catch_unwind(AssertUnwindSafe(|| {
        StreamReader::try_new(bytes, None)?.collect()
    }))
    .unwrap_or_else(|_| {
        Err(ArrowError::IpcError(
            "the IPC stream is damaged: the decoder could not read it".into(),
        ))
    })
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// Walks the stream's messages (continuation marker, metadata length, metadata, body) before
/// the reader does: the reader allocates a message's declared metadata and body lengths before
/// reading them, so a length past the end of the bytes is refused here; and it sums what each
/// batch's compressed buffers declare. Other damage is left to the reader, which reports it.
fn check_declared_sizes(bytes: &[u8]) -> Result<(), ArrowError> {
    let truncated = |what: &str, declared: u64, left: usize| {
        ArrowError::IpcError(format!(
            "the IPC stream is truncated: a message declares {declared} bytes of {what}, {left} remain"
        ))
    };
    let mut pos = 0usize;
    while let Some(mut len) = read_u32(bytes, pos) {
        pos += 4;
        if len == u32::MAX {
            let Some(next) = read_u32(bytes, pos) else {
                return Ok(());
            };
            len = next;
            pos += 4;
        }
        if len == 0 {
            return Ok(());
        }
        let left = bytes.len() - pos;
        let Some(meta_end) = pos.checked_add(len as usize).filter(|&e| e <= bytes.len()) else {
            return Err(truncated("metadata", u64::from(len), left));
        };
        let Ok(message) = arrow::ipc::root_as_message(&bytes[pos..meta_end]) else {
            return Ok(());
        };
        let declared_body = message.bodyLength();
        let left = bytes.len() - meta_end;
        let body_end = usize::try_from(declared_body)
            .ok()
            .and_then(|n| meta_end.checked_add(n))
            .filter(|&e| e <= bytes.len());
        let Some(body_end) = body_end else {
            return Err(truncated("body", declared_body.max(0) as u64, left));
        };
        let body = &bytes[meta_end..body_end];
        let batch = message
            .header_as_record_batch()
            .or_else(|| message.header_as_dictionary_batch().and_then(|d| d.data()));
        if let Some(batch) = batch.filter(|b| b.compression().is_some()) {
            let mut declared: u64 = 0;
            for buffer in batch.buffers().iter().flatten() {
                let Ok(at) = usize::try_from(buffer.offset()) else {
                    continue;
                };
                let prefix = at
                    .checked_add(8)
                    .and_then(|end| body.get(at..end))
                    .and_then(|b| <[u8; 8]>::try_from(b).ok());
                if let (true, Some(prefix)) = (buffer.length() >= 8, prefix) {
                    // -1 marks a buffer stored uncompressed.
                    let n = i64::from_le_bytes(prefix);
                    declared = declared.saturating_add(u64::try_from(n).unwrap_or(0));
                }
            }
            if declared > MAX_DECLARED_BYTES {
                return Err(ArrowError::IpcError(format!(
                    "a batch's compressed buffers declare {declared} bytes, over the {MAX_DECLARED_BYTES}-byte limit"
                )));
            }
        }
        pos = body_end;
    }
    Ok(())
}

/// Encodes batches as one IPC stream without buffer compression.
pub fn encode_uncompressed(batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    {
        let mut writer = StreamWriter::try_new(&mut out, &first.schema())?;
        for b in batches {
            writer.write(b)?;
        }
        writer.finish()?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scenario: the `batch_payload` fuzz target's first crash: a damaged record whose zstd
    /// buffer declares 4.8 EB uncompressed.
    /// Guarantees: an error, and the process is still here (it aborted in arrow-ipc's
    /// allocation before the check existed).
    #[test]
    fn a_buffer_declaring_exabytes_is_refused_not_allocated() {
        let bytes = include_bytes!("../tests/data/ipc-declares-4-exabytes.bin");
        let e = decode(bytes).unwrap_err();
        assert!(e.to_string().contains("declare"), "{e}");
    }

    /// Scenario: the third crash: a message declaring a body of 1.4 EB, which the reader
    /// allocated before reading.
    /// Guarantees: an error saying the stream is truncated.
    #[test]
    fn a_body_longer_than_the_stream_is_refused_not_allocated() {
        let bytes = include_bytes!("../tests/data/ipc-body-length-exabytes.bin");
        let e = decode(bytes).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
    }

    /// Scenario: the second crash: a schema field of type NONE, on which arrow-ipc panics.
    /// Guarantees: an error returned to the caller, not a panic.
    #[test]
    fn a_schema_the_decoder_panics_on_is_an_error() {
        let bytes = include_bytes!("../tests/data/ipc-field-type-none.bin");
        let e = decode(bytes).unwrap_err();
        assert!(e.to_string().contains("damaged"), "{e}");
    }
}
