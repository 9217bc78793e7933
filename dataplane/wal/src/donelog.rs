//! The done log: which sequence numbers were marked done, so that replay skips them.
//!
//! Format (little endian): a 16-byte header (magic `SIGDBDON`, version u32 = 1, reserved u32) followed
//! by frames `count u32 | crc u32 | count × (first u64, last u64)`, each pair an inclusive range of
//! sequence numbers marked done. The crc (crc32fast) covers the count and the ranges.
//!
//! Done marks are advisory: losing some only means those records are replayed again (at-least-once).
//! Frames are therefore appended without fsync (they survive a process crash, not necessarily a power
//! loss); the log is fsynced on close and rewritten (compacted) atomically via a temporary file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::error::{Error, Result};
use crate::recover::sync_dir;

/// File name of the done log inside the WAL directory.
pub const DONE_LOG_FILE: &str = "done.log";
const TMP_FILE: &str = "done.log.tmp";
const MAGIC: [u8; 8] = *b"SIGDBDON";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 16;
const FRAME_HEADER_LEN: usize = 8;
const RANGE_LEN: usize = 16;
/// Ranges per frame when rewriting.
const MAX_FRAME_RANGES: usize = 4096;
/// The log is compacted once it exceeds twice its size after the last compaction, and at least this.
const MIN_COMPACT_LEN: u64 = 1 << 20;

/// Inclusive ranges of sequence numbers.
pub(crate) type Ranges = Vec<(u64, u64)>;

/// Sorts and merges overlapping or adjacent ranges.
pub(crate) fn normalize(mut ranges: Ranges) -> Ranges {
    ranges.retain(|(a, b)| a <= b);
    ranges.sort_unstable();
    let mut out: Ranges = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// Ranges covering the given sequence numbers.
pub(crate) fn ranges_of(mut seqs: Vec<u64>) -> Ranges {
    seqs.sort_unstable();
    seqs.dedup();
    let mut out: Ranges = Vec::new();
    for s in seqs {
        match out.last_mut() {
            Some(last) if last.1.checked_add(1) == Some(s) => last.1 = s,
            _ => out.push((s, s)),
        }
    }
    out
}

/// Whether `seq` lies in one of the normalized `ranges`.
pub(crate) fn contains(ranges: &[(u64, u64)], seq: u64) -> bool {
    let idx = ranges.partition_point(|(a, _)| *a <= seq);
    idx > 0 && ranges[idx - 1].1 >= seq
}

fn encode_frame(out: &mut Vec<u8>, ranges: &[(u64, u64)]) {
    let count = u32::try_from(ranges.len()).unwrap_or(u32::MAX);
    let mut body = Vec::with_capacity(ranges.len() * RANGE_LEN);
    for (a, b) in ranges.iter().take(count as usize) {
        body.extend_from_slice(&a.to_le_bytes());
        body.extend_from_slice(&b.to_le_bytes());
    }
    let mut h = crc32fast::Hasher::new();
    h.update(&count.to_le_bytes());
    h.update(&body);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.extend_from_slice(&body);
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Parses a done log. Damage is logged; everything before it is kept.
fn parse(path: &Path, data: &[u8]) -> Ranges {
    if data.is_empty() {
        return Vec::new();
    }
    if data.len() < HEADER_LEN || data[..8] != MAGIC || le_u32(&data[8..12]) != VERSION {
        warn!(file = %path.display(), offset = 0, "WAL done log has a damaged header; ignoring it (done records may replay again)");
        return Vec::new();
    }
    let mut ranges = Vec::new();
    let mut pos = HEADER_LEN;
    while pos < data.len() {
        let rest = &data[pos..];
        if rest.len() < FRAME_HEADER_LEN {
            warn!(file = %path.display(), offset = pos, "WAL done log ends in a torn frame header; ignoring the last {} bytes", rest.len());
            break;
        }
        let count = le_u32(rest) as usize;
        let body_len = count.saturating_mul(RANGE_LEN);
        if body_len > rest.len() - FRAME_HEADER_LEN {
            warn!(file = %path.display(), offset = pos, "WAL done log frame of {count} ranges is torn; ignoring the last {} bytes", rest.len());
            break;
        }
        let body = &rest[FRAME_HEADER_LEN..FRAME_HEADER_LEN + body_len];
        let mut h = crc32fast::Hasher::new();
        h.update(&rest[..4]);
        h.update(body);
        if h.finalize() != le_u32(&rest[4..8]) {
            warn!(file = %path.display(), offset = pos, "WAL done log frame checksum mismatch; ignoring the last {} bytes", rest.len());
            break;
        }
        ranges.extend(body.chunks_exact(RANGE_LEN).map(|r| (le_u64(&r[..8]), le_u64(&r[8..]))));
        pos += FRAME_HEADER_LEN + body_len;
    }
    normalize(ranges)
}

/// Reads the done log of `dir` (empty if there is none).
pub(crate) fn read(dir: &Path) -> Result<Ranges> {
    let path = dir.join(DONE_LOG_FILE);
    match fs::read(&path) {
        Ok(data) => Ok(parse(&path, &data)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io("read done log", &path, e)),
    }
}

/// The open done log, appended to by whoever owns the segment files.
#[derive(Debug)]
pub(crate) struct DoneLog {
    path: PathBuf,
    file: File,
    len: u64,
    compact_at: u64,
    /// A write failed: the file may end in a partial frame, so it must be rewritten before appending.
    damaged: bool,
}

impl DoneLog {
    /// Atomically replaces the done log of `dir` with one holding `ranges`.
    pub(crate) fn create(dir: &Path, ranges: &[(u64, u64)]) -> Result<Self> {
        let tmp = dir.join(TMP_FILE);
        let path = dir.join(DONE_LOG_FILE);
        let mut buf = Vec::with_capacity(HEADER_LEN + FRAME_HEADER_LEN + ranges.len() * RANGE_LEN);
        buf.extend_from_slice(&MAGIC);
        buf.extend_from_slice(&VERSION.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        for chunk in ranges.chunks(MAX_FRAME_RANGES) {
            encode_frame(&mut buf, chunk);
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(Error::io_with("create", &tmp))?;
        file.write_all(&buf).map_err(Error::io_with("write", &tmp))?;
        file.sync_all().map_err(Error::io_with("fsync", &tmp))?;
        fs::rename(&tmp, &path).map_err(Error::io_with("rename into place", &tmp))?;
        sync_dir(dir)?;
        let len = buf.len() as u64;
        Ok(DoneLog {
            path,
            file,
            len,
            compact_at: MIN_COMPACT_LEN.max(2 * len),
            damaged: false,
        })
    }

    /// Appends ranges (without fsync).
    pub(crate) fn append(&mut self, ranges: &[(u64, u64)]) {
        if ranges.is_empty() || self.damaged {
            return;
        }
        let mut buf = Vec::new();
        for chunk in ranges.chunks(MAX_FRAME_RANGES) {
            encode_frame(&mut buf, chunk);
        }
        match self.file.write_all(&buf) {
            Ok(()) => self.len += buf.len() as u64,
            Err(e) => {
                warn!(file = %self.path.display(), error = %e, "failed to append to the WAL done log; it will be rewritten");
                self.damaged = true;
            }
        }
    }

    pub(crate) fn needs_compaction(&self) -> bool {
        self.damaged || self.len > self.compact_at
    }

    /// Called when a compaction failed, so it is not retried at every step.
    pub(crate) fn postpone_compaction(&mut self) {
        self.compact_at = self.compact_at.saturating_mul(2);
    }

    pub(crate) fn sync(&self) {
        if let Err(e) = self.file.sync_data() {
            warn!(file = %self.path.display(), error = %e, "failed to fsync the WAL done log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_built_and_merged() {
        assert_eq!(ranges_of(vec![5, 3, 4, 9, 10, 1, 4]), vec![(1, 1), (3, 5), (9, 10)]);
        assert_eq!(
            normalize(vec![(5, 7), (1, 2), (3, 4), (10, 12), (11, 11), (9, 8)]),
            vec![(1, 7), (10, 12)]
        );
        let r = normalize(vec![(3, 5), (9, 10)]);
        assert!(!contains(&r, 2));
        assert!(contains(&r, 3) && contains(&r, 5) && contains(&r, 9) && contains(&r, 10));
        assert!(!contains(&r, 6) && !contains(&r, 11));
        assert!(!contains(&[], 1));
    }

    #[test]
    fn write_read_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_empty());
        let mut log = DoneLog::create(dir.path(), &[(1, 3)]).unwrap();
        log.append(&[(7, 7), (9, 12)]);
        log.append(&[(4, 4)]);
        assert_eq!(read(dir.path()).unwrap(), vec![(1, 4), (7, 7), (9, 12)]);

        // Tear the last frame: the earlier ones are kept.
        let path = dir.path().join(DONE_LOG_FILE);
        let data = fs::read(&path).unwrap();
        fs::write(&path, &data[..data.len() - 3]).unwrap();
        assert_eq!(read(dir.path()).unwrap(), vec![(1, 3), (7, 7), (9, 12)]);

        // A flipped bit in the first frame loses everything from there on.
        let mut data = fs::read(&path).unwrap();
        data[HEADER_LEN + FRAME_HEADER_LEN] ^= 1;
        fs::write(&path, &data).unwrap();
        assert!(read(dir.path()).unwrap().is_empty());

        fs::write(&path, b"garbage").unwrap();
        assert!(read(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn rewrite_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = DoneLog::create(dir.path(), &[(1, 100)]).unwrap();
        log.append(&[(200, 300)]);
        let ranges: Ranges = (0..10_000u64).map(|i| (i * 3, i * 3)).collect();
        let log = DoneLog::create(dir.path(), &ranges).unwrap();
        assert!(!log.needs_compaction());
        assert_eq!(read(dir.path()).unwrap(), ranges);
        assert!(!dir.path().join(TMP_FILE).exists());
    }
}
