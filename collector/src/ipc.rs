//! Arrow IPC stream encoding of record batches, zstd-compressed: the wire format between the
//! collector and the analyzer (HTTP now, Kafka messages later).

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

/// Decodes every batch of an IPC stream.
pub fn decode(bytes: &[u8]) -> Result<Vec<RecordBatch>, ArrowError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    StreamReader::try_new(bytes, None)?.collect()
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
