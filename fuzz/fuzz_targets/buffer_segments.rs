//! The disk buffer opened on a damaged segment: the input is written as a segment file, the
//! log is opened (recovery) and every record read back, then appended to, as a collector
//! restarting on a damaged disk would.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meridian_collector::buffer::record::BufferedRecord;
use meridian_collector::buffer::segments::SegmentLog;

fuzz_target!(|data: &[u8]| {
    meridian_fuzz::quiet_caught_panics();
    // tmpfs where there is one: the log's fsyncs cost nothing there, and they are not what is
    // under test (about 50 times more inputs per second than on disk).
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    };
    let Ok(dir) = dir else { return };
    if std::fs::write(dir.path().join(format!("{:020}.seg", 0)), data).is_err() {
        return;
    }
    let Ok((mut log, _)) = SegmentLog::open(dir.path(), 1 << 20) else { return };
    let mut reader = log.reader(log.first_index());
    while let Ok(Some((_, payload))) = reader.next(log.next_index()) {
        if let Some(record) = BufferedRecord::decode(payload) {
            let schema = record.signal.schema();
            let _ = meridian_collector::wire::decode(record.encoding, &schema, &record.payload);
        }
    }
    let _ = log.append(b"after recovery");
    let _ = log.sync();
});
