//! A forwarded batch's payload — what Kafka messages, the ingest API and disk-buffer records
//! carry: a buffer record header and an Arrow IPC stream with zstd-compressed buffers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meridian_collector::buffer::record::BufferedRecord;

fuzz_target!(|data: &[u8]| {
    meridian_fuzz::quiet_caught_panics();
    let _ = meridian_collector::ipc::decode(data);
    if let Some(record) = BufferedRecord::decode(data.to_vec()) {
        let _ = meridian_collector::ipc::decode(&record.ipc);
    }
});
