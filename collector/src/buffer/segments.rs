//! An append-only log of checksummed records in numbered segment files.
//!
//! Each record is framed as `[len: u32 LE][crc32: u32 LE][payload]`. Records are numbered by
//! position; a segment file is named by the number of its first record (`{first:020}.seg`), so
//! the numbering survives deleting old segments.
//!
//! Recovery never gets stuck on damage: opening the log scans every segment, and a frame whose
//! length or checksum is wrong ends that segment. In the last segment the damaged tail (a torn
//! write) is cut off so appends continue after the last good record; in an older segment the
//! records after the damage are skipped and reading goes on with the next segment.
//!
//! ```
//! # use meridian_collector::buffer::segments::SegmentLog;
//! let dir = tempfile::tempdir().unwrap();
//! let (mut log, _) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
//! assert_eq!(log.append(b"first").unwrap(), 0);
//! assert_eq!(log.append(b"second").unwrap(), 1);
//! log.sync().unwrap();
//! let mut reader = log.reader(1);
//! assert_eq!(reader.next(log.next_index()).unwrap(), Some((1, b"second".to_vec())));
//! ```

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Bytes of a frame header.
const FRAME_HEADER: u64 = 8;
/// Larger frames are taken as damage, not as records.
pub const MAX_RECORD_BYTES: u32 = 1 << 30;
const SUFFIX: &str = "seg";

/// One segment file.
#[derive(Debug, Clone)]
struct Segment {
    first: u64,
    path: PathBuf,
    bytes: u64,
}

/// What opening the log found and repaired.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Valid records found.
    pub records: u64,
    /// Bytes cut off or skipped because a frame was torn or failed its checksum.
    pub damaged_bytes: u64,
}

/// The writing side of the log (one per directory).
pub struct SegmentLog {
    dir: PathBuf,
    segment_max_bytes: u64,
    segments: VecDeque<Segment>,
    active: File,
    next: u64,
    dir_dirty: bool,
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.{SUFFIX}"))
}

/// Segment files in `dir`, by first record number.
fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some(SUFFIX) {
            continue;
        }
        if let Some(first) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse().ok())
        {
            out.push((first, path));
        }
    }
    out.sort();
    Ok(out)
}

/// Reads one frame; `None` at a clean end, `Err(InvalidData)` at damage.
fn read_frame(reader: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; FRAME_HEADER as usize];
    let mut filled = 0;
    while filled < header.len() {
        match reader.read(&mut header[filled..])? {
            0 if filled == 0 => return Ok(None),
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "torn frame header",
                ))
            }
            n => filled += n,
        }
    }
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_RECORD_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame length out of range",
        ));
    }
    let mut payload = vec![0u8; len as usize];
    reader.read_exact(&mut payload).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            io::Error::new(io::ErrorKind::InvalidData, "torn frame payload")
        } else {
            e
        }
    })?;
    if crc32fast::hash(&payload) != crc {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "checksum mismatch",
        ));
    }
    Ok(Some(payload))
}

/// Scans a segment: (valid records, bytes they take); damage ends the scan.
fn scan(path: &Path) -> io::Result<(u64, u64)> {
    let mut reader = BufReader::new(File::open(path)?);
    let (mut records, mut good) = (0u64, 0u64);
    loop {
        match read_frame(&mut reader) {
            Ok(Some(payload)) => {
                records += 1;
                good += FRAME_HEADER + payload.len() as u64;
            }
            Ok(None) => return Ok((records, good)),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => return Ok((records, good)),
            Err(e) => return Err(e),
        }
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl SegmentLog {
    /// Opens (or creates) the log in `dir`, repairing a damaged tail; new segments start once
    /// the active one reaches `segment_max_bytes`.
    pub fn open(dir: &Path, segment_max_bytes: u64) -> io::Result<(Self, Recovery)> {
        fs::create_dir_all(dir)?;
        let mut recovery = Recovery::default();
        let mut segments = VecDeque::new();
        let mut next = 0;
        let found = list(dir)?;
        let count = found.len();
        for (i, (first, path)) in found.into_iter().enumerate() {
            let size = fs::metadata(&path)?.len();
            let (records, good) = scan(&path)?;
            recovery.records += records;
            if good < size {
                recovery.damaged_bytes += size - good;
                tracing::error!(segment = %path.display(), damaged_bytes = size - good, "damaged records in the buffer; skipping them");
                if i + 1 == count {
                    // A torn tail: cut it so the next append starts on a frame boundary.
                    OpenOptions::new().write(true).open(&path)?.set_len(good)?;
                }
            }
            next = first.max(next) + records;
            segments.push_back(Segment {
                first,
                path,
                bytes: if i + 1 == count { good } else { size },
            });
        }
        if segments.is_empty() {
            let path = segment_path(dir, 0);
            File::create(&path)?;
            sync_dir(dir)?;
            segments.push_back(Segment {
                first: 0,
                path,
                bytes: 0,
            });
        }
        let active_path = segments.back().map(|s| s.path.clone()).unwrap_or_default();
        let active = OpenOptions::new().append(true).open(&active_path)?;
        Ok((
            Self {
                dir: dir.to_path_buf(),
                segment_max_bytes: segment_max_bytes.max(1),
                segments,
                active,
                next,
                dir_dirty: false,
            },
            recovery,
        ))
    }

    /// Number the next appended record gets.
    pub fn next_index(&self) -> u64 {
        self.next
    }

    /// Number of the oldest record still on disk.
    pub fn first_index(&self) -> u64 {
        self.segments.front().map_or(self.next, |s| s.first)
    }

    /// Bytes of all segment files.
    pub fn total_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Appends one record (written, not yet synced); returns its number.
    pub fn append(&mut self, payload: &[u8]) -> io::Result<u64> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l <= MAX_RECORD_BYTES)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "record too large"))?;
        if self
            .segments
            .back()
            .is_some_and(|s| s.bytes > 0 && s.bytes + payload.len() as u64 > self.segment_max_bytes)
        {
            self.roll()?;
        }
        let mut frame = Vec::with_capacity(payload.len() + FRAME_HEADER as usize);
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        frame.extend_from_slice(payload);
        self.active.write_all(&frame)?;
        if let Some(s) = self.segments.back_mut() {
            s.bytes += frame.len() as u64;
        }
        let index = self.next;
        self.next += 1;
        Ok(index)
    }

    /// Makes every appended record durable (file data, and the directory after a new segment).
    pub fn sync(&mut self) -> io::Result<()> {
        self.active.sync_data()?;
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// Starts a new segment (the previous one is synced first).
    fn roll(&mut self) -> io::Result<()> {
        self.active.sync_data()?;
        let path = segment_path(&self.dir, self.next);
        self.active = OpenOptions::new().create(true).append(true).open(&path)?;
        self.segments.push_back(Segment {
            first: self.next,
            path,
            bytes: 0,
        });
        self.dir_dirty = true;
        Ok(())
    }

    /// Deletes segments all of whose records are numbered below `index` (they were consumed).
    pub fn remove_before(&mut self, index: u64) -> io::Result<()> {
        if index >= self.next && self.segments.back().is_some_and(|s| s.bytes > 0) {
            // Everything is consumed: start afresh so the active segment can go too.
            self.roll()?;
        }
        while self.segments.len() > 1 {
            let end = self.segments.get(1).map_or(self.next, |s| s.first);
            if end > index {
                break;
            }
            if let Some(old) = self.segments.pop_front() {
                fs::remove_file(&old.path)?;
                self.dir_dirty = true;
            }
        }
        Ok(())
    }

    /// A reader starting at record `from`.
    pub fn reader(&self, from: u64) -> SegmentReader {
        SegmentReader {
            dir: self.dir.clone(),
            next: from,
            current: None,
        }
    }
}

/// Reads records in order; safe to use while the log is appended to.
pub struct SegmentReader {
    dir: PathBuf,
    next: u64,
    current: Option<(BufReader<File>, u64)>,
}

impl SegmentReader {
    /// Number of the record `next` returns next.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// The next record numbered below `limit` (the writer's next index), if any.
    pub fn next(&mut self, limit: u64) -> io::Result<Option<(u64, Vec<u8>)>> {
        loop {
            if self.next >= limit {
                return Ok(None);
            }
            if self.current.is_none() {
                self.current = self.open_at(self.next)?;
                if self.current.is_none() {
                    return Ok(None);
                }
            }
            let Some((reader, _)) = self.current.as_mut() else {
                return Ok(None);
            };
            match read_frame(reader) {
                Ok(Some(payload)) => {
                    let index = self.next;
                    self.next += 1;
                    return Ok(Some((index, payload)));
                }
                Ok(None) | Err(_) => {
                    // End of this segment (clean, or damage found at open): go on with the next.
                    let Some(following) = self.following_segment()? else {
                        // No later segment: this is the live tail.
                        return Ok(None);
                    };
                    // Records between here and the next segment were lost to damage.
                    self.next = self.next.max(following);
                    self.current = None;
                }
            }
        }
    }

    /// First record number of the segment after the current one.
    fn following_segment(&self) -> io::Result<Option<u64>> {
        let current = self.current.as_ref().map_or(0, |(_, first)| *first);
        Ok(list(&self.dir)?
            .into_iter()
            .map(|(first, _)| first)
            .find(|first| *first > current))
    }

    /// Opens the segment holding record `index` and skips to it.
    fn open_at(&self, index: u64) -> io::Result<Option<(BufReader<File>, u64)>> {
        let segments = list(&self.dir)?;
        let Some((first, path)) = segments.into_iter().rev().find(|(f, _)| *f <= index) else {
            return Ok(None);
        };
        let mut reader = BufReader::new(File::open(&path)?);
        for _ in first..index {
            let mut header = [0u8; FRAME_HEADER as usize];
            if reader.read_exact(&mut header).is_err() {
                return Ok(Some((reader, first)));
            }
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            reader.seek(SeekFrom::Current(i64::from(len)))?;
        }
        Ok(Some((reader, first)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(log: &SegmentLog, from: u64) -> Vec<(u64, Vec<u8>)> {
        let mut reader = log.reader(from);
        let mut out = Vec::new();
        while let Some(r) = reader.next(log.next_index()).unwrap() {
            out.push(r);
        }
        out
    }

    /// Scenario: records appended across several segments, the log reopened.
    /// Guarantees: numbering continues, every record reads back in order from any start.
    #[test]
    fn reopens_and_reads_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, _) = SegmentLog::open(dir.path(), 64).unwrap();
            for i in 0..10u8 {
                log.append(&[i; 30]).unwrap();
            }
            log.sync().unwrap();
        }
        let (mut log, recovery) = SegmentLog::open(dir.path(), 64).unwrap();
        assert_eq!(recovery.records, 10);
        assert_eq!(log.append(&[10; 30]).unwrap(), 10);
        let all = records(&log, 0);
        assert_eq!(all.len(), 11);
        assert!(all
            .iter()
            .enumerate()
            .all(|(i, (n, p))| *n == i as u64 && p[0] == i as u8));
        assert_eq!(records(&log, 7)[0].0, 7);
    }

    /// Scenario: the process died in the middle of writing the last record.
    /// Guarantees: the torn tail is cut, earlier records survive, and appends continue cleanly.
    #[test]
    fn a_torn_tail_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, _) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
            log.append(b"one").unwrap();
            log.append(b"two").unwrap();
            log.sync().unwrap();
        }
        let path = segment_path(dir.path(), 0);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[50, 0, 0, 0, 1, 2, 3, 4, b'x']).unwrap();
        drop(f);
        let (mut log, recovery) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(recovery.records, 2);
        assert_eq!(recovery.damaged_bytes, 9);
        assert_eq!(log.append(b"three").unwrap(), 2);
        let all: Vec<_> = records(&log, 0).into_iter().map(|(_, p)| p).collect();
        assert_eq!(
            all,
            vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
    }

    /// Scenario: a bit flips inside a record of an older segment.
    /// Guarantees: reading skips the rest of that segment and continues with the next one.
    #[test]
    fn corruption_in_an_old_segment_does_not_block_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, _) = SegmentLog::open(dir.path(), 100).unwrap();
            for i in 0..9u8 {
                log.append(&[i; 40]).unwrap();
            }
            log.sync().unwrap();
        }
        let path = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        bytes[8 + 5] ^= 0xff; // inside record 0's payload
        fs::write(&path, bytes).unwrap();
        let (log, recovery) = SegmentLog::open(dir.path(), 100).unwrap();
        assert!(recovery.damaged_bytes > 0);
        let read: Vec<u8> = records(&log, 0).iter().map(|(_, p)| p[0]).collect();
        assert_eq!(read, vec![2, 3, 4, 5, 6, 7, 8]);
    }

    /// Scenario: a reader at the end of the log while everything is consumed and the writer
    /// starts a fresh segment, then more records come.
    /// Guarantees: the open reader moves on to the new segment and reads them.
    #[test]
    fn an_open_reader_follows_a_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
        log.append(b"a").unwrap();
        let mut reader = log.reader(0);
        assert_eq!(reader.next(log.next_index()).unwrap().unwrap().1, b"a");
        log.remove_before(1).unwrap();
        log.append(b"b").unwrap();
        log.append(b"c").unwrap();
        assert_eq!(
            reader.next(log.next_index()).unwrap(),
            Some((1, b"b".to_vec()))
        );
        assert_eq!(
            reader.next(log.next_index()).unwrap(),
            Some((2, b"c".to_vec()))
        );
        assert_eq!(reader.next(log.next_index()).unwrap(), None);
    }

    /// Scenario: records consumed, then old segments removed.
    /// Guarantees: removed bytes are reclaimed, unconsumed records stay readable, numbering holds.
    #[test]
    fn consumed_segments_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(dir.path(), 100).unwrap();
        for i in 0..9u8 {
            log.append(&[i; 40]).unwrap();
        }
        let before = log.total_bytes();
        log.remove_before(5).unwrap();
        assert!(log.total_bytes() < before);
        assert_eq!(records(&log, 5).first().map(|r| r.0), Some(5));
        log.remove_before(9).unwrap();
        assert_eq!(log.total_bytes(), 0);
        assert_eq!(log.append(b"z").unwrap(), 9);
        drop(log);
        let (log, _) = SegmentLog::open(dir.path(), 100).unwrap();
        assert_eq!(log.next_index(), 10);
    }
}
