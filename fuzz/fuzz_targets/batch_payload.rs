//! A forwarded batch's payload — what Kafka messages, the ingest API and disk-buffer records
//! carry: a buffer record header and a message in either wire encoding (an Arrow IPC stream
//! with zstd-compressed buffers, or the columnar encoding's zstd frame).
#![no_main]

use libfuzzer_sys::fuzz_target;
use meridian_collector::buffer::record::BufferedRecord;
use meridian_collector::wire::{decode, Encoding};
use meridian_collector::Signal;

fuzz_target!(|data: &[u8]| {
    meridian_fuzz::quiet_caught_panics();
    for encoding in [Encoding::ArrowIpc, Encoding::Columnar] {
        let _ = decode(encoding, &Signal::Traces.schema(), data);
    }
    if let Some(record) = BufferedRecord::decode(data.to_vec()) {
        let _ = decode(record.encoding, &record.signal.schema(), &record.payload);
    }
});
