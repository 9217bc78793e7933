//! Opening a WAL directory: reading every segment, repairing what can be repaired and preparing a
//! fresh active segment.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tracing::{debug, warn};

use crate::donelog::{self, DoneLog};
use crate::error::{Error, Result};
use crate::format::{self, HeaderCheck, SEGMENT_HEADER_LEN};
use crate::state::done_ranges;
use crate::writer::ActiveSegment;
use crate::{ReplayEntry, ReplayStats};

/// A segment file found in the directory.
#[derive(Debug)]
struct Listed {
    first_seq: u64,
    path: PathBuf,
}

/// Everything `Wal::open` needs to know after replay.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub(crate) entries: Vec<ReplayEntry>,
    pub(crate) stats: ReplayStats,
    /// Segments that hold replayed records: first sequence number -> number of records.
    pub(crate) segments: BTreeMap<u64, u64>,
    /// The freshly created, empty active segment.
    pub(crate) active: ActiveSegment,
    /// The freshly rewritten done log.
    pub(crate) done_log: DoneLog,
    /// The sequence number the next append gets.
    pub(crate) next_seq: u64,
}

/// Reads and repairs the WAL in `dir` (which exists).
pub(crate) fn recover(dir: &Path) -> Result<Recovered> {
    let listed = list_segments(dir)?;
    let done = donelog::read(dir)?;

    let mut stats = ReplayStats::default();
    let mut entries = Vec::new();
    let mut segments = BTreeMap::new();
    let mut remove: Vec<PathBuf> = Vec::new();
    let mut set_aside: Vec<PathBuf> = Vec::new();
    // The last segment with valid records: its path, the end of its valid records if its tail is
    // damaged, and whether it is kept.
    let mut last_with_records: Option<(PathBuf, Option<u64>, bool)> = None;
    // Sequence numbers start at 1. Every file name is a lower bound for the next sequence number, and
    // so is every sequence number marked done, so numbers are never reused, even when all records have
    // been trimmed.
    let mut floor: u64 = done.last().map_or(1, |(_, last)| last.saturating_add(1)).max(1);
    let mut last_seq: u64 = 0;
    let mut already_done: u64 = 0;

    for seg in listed {
        floor = floor.max(seg.first_seq);
        let data = fs::read(&seg.path).map_err(Error::io_with("read segment", &seg.path))?;
        let mut header_damaged = false;
        match format::check_segment_header(&data) {
            HeaderCheck::Valid => {}
            HeaderCheck::Short => {
                stats.empty_segments += 1;
                if data.is_empty() {
                    warn!(file = %seg.path.display(), "WAL segment is empty (zero bytes); removing it");
                } else {
                    warn!(
                        file = %seg.path.display(),
                        len = data.len(),
                        "WAL segment holds only a partial header ({} of {SEGMENT_HEADER_LEN} bytes); removing it",
                        data.len()
                    );
                }
                remove.push(seg.path);
                continue;
            }
            HeaderCheck::BadMagic => {
                warn!(file = %seg.path.display(), offset = 0, "WAL segment header has the wrong magic bytes; scanning it for valid records");
                header_damaged = true;
            }
            HeaderCheck::UnknownVersion(v) => {
                warn!(file = %seg.path.display(), offset = 8, version = v, "WAL segment header has an unknown format version {v}; scanning it for valid records");
                header_damaged = true;
            }
        }
        stats.segments += 1;
        if header_damaged {
            stats.corrupt_records += 1;
        }

        let min_seq = seg.first_seq.max(last_seq.saturating_add(1));
        let scan = format::scan_segment(&data, SEGMENT_HEADER_LEN as usize, min_seq);
        for d in &scan.damage {
            match d.resumed_at {
                Some(resumed) => warn!(
                    file = %seg.path.display(),
                    offset = d.offset,
                    resumed_at = resumed,
                    skipped_bytes = d.skipped_bytes,
                    lost_records = d.lost_records,
                    "corrupt WAL record at offset {}: {}; resynchronised at offset {resumed}, skipping {} bytes",
                    d.offset,
                    d.defect,
                    d.skipped_bytes
                ),
                None => warn!(
                    file = %seg.path.display(),
                    offset = d.offset,
                    skipped_bytes = d.skipped_bytes,
                    "corrupt or torn WAL record at offset {}: {}; ignoring the last {} bytes of the segment",
                    d.offset,
                    d.defect,
                    d.skipped_bytes
                ),
            }
        }
        stats.corrupt_records += scan.corrupt_records();
        stats.truncated_bytes += scan.skipped_bytes();
        // Records in a damaged tail may have been acknowledged: never hand out their numbers again.
        floor = floor.max(scan.next_seq_bound(min_seq));

        if scan.records.is_empty() {
            if header_damaged {
                // Possibly a segment of a newer format, or not ours at all: keep it for inspection, but
                // out of the way.
                set_aside.push(seg.path);
            } else {
                if !scan.damage.is_empty() {
                    warn!(file = %seg.path.display(), "WAL segment holds no valid record; removing it");
                }
                remove.push(seg.path);
            }
            continue;
        }

        let tail_end = scan.tail_damaged().then_some(scan.valid_end as u64);
        let data = Bytes::from(data);
        let mut count = 0;
        for rec in &scan.records {
            last_seq = rec.seq;
            if donelog::contains(&done, rec.seq) {
                already_done += 1;
                continue;
            }
            entries.push(ReplayEntry {
                seq: rec.seq,
                payload: data.slice(rec.payload.clone()),
            });
            count += 1;
        }
        stats.records += count;
        let kept = count > 0;
        if kept {
            segments.insert(seg.first_seq, count);
        } else {
            debug!(file = %seg.path.display(), "every record of the WAL segment is done; removing it");
            remove.push(seg.path.clone());
        }
        last_with_records = Some((seg.path, tail_end, kept));
    }
    if already_done > 0 {
        debug!(records = already_done, "skipped WAL records already marked done");
    }

    // Never append after garbage: cut the damaged tail off the newest segment (a torn write).
    // New records always go to a fresh segment anyway; this only keeps the next open quiet.
    if let Some((path, Some(valid_end), true)) = &last_with_records {
        truncate(path, *valid_end)?;
        debug!(file = %path.display(), len = valid_end, "truncated damaged WAL tail");
    }

    let mut next_seq = floor.max(last_seq.saturating_add(1));
    // A file named `next_seq` can only exist without valid records, so it is safe to replace it,
    // unless it is about to be set aside for inspection.
    if set_aside
        .iter()
        .any(|p| *p == dir.join(format::segment_file_name(next_seq)))
    {
        next_seq = next_seq.saturating_add(1);
    }
    let active = ActiveSegment::create(dir, next_seq)?;
    remove.retain(|p| *p != active.path);

    // The new active segment is durable, so removing the empty ones cannot lose the floor.
    let mut removed_any = false;
    for path in &remove {
        match fs::remove_file(path) {
            Ok(()) => removed_any = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove empty segment", path, e)),
        }
    }
    for path in &set_aside {
        let mut target = path.clone().into_os_string();
        target.push(".unreadable");
        let target = PathBuf::from(target);
        warn!(file = %path.display(), to = %target.display(), "WAL segment is unreadable; moving it aside");
        fs::rename(path, &target).map_err(Error::io_with("move aside unreadable segment", path))?;
        removed_any = true;
    }
    if removed_any {
        sync_dir(dir)?;
    }

    // Rewrite the done log with only the marks that still matter (after the deletions above, so that a
    // crash in between cannot resurrect finished segments).
    let pending: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    let starts = segments.keys().copied().chain(std::iter::once(active.first_seq));
    let done_log = DoneLog::create(dir, &done_ranges(starts, &pending, next_seq))?;

    Ok(Recovered {
        entries,
        stats,
        segments,
        active,
        done_log,
        next_seq,
    })
}

fn list_segments(dir: &Path) -> Result<Vec<Listed>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(Error::io_with("list directory", dir))? {
        let entry = entry.map_err(Error::io_with("list directory", dir))?;
        let name = entry.file_name();
        let Some(first_seq) = name.to_str().and_then(format::parse_segment_file_name) else {
            continue;
        };
        let path = entry.path();
        let file_type = entry.file_type().map_err(Error::io_with("inspect", &path))?;
        if !file_type.is_file() {
            warn!(file = %path.display(), "ignoring WAL segment name that is not a regular file");
            continue;
        }
        out.push(Listed { first_seq, path });
    }
    out.sort_by_key(|s| s.first_seq);
    Ok(out)
}

fn truncate(path: &Path, len: u64) -> Result<()> {
    let file = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(Error::io_with("open for truncation", path))?;
    file.set_len(len)
        .map_err(Error::io_with("truncate damaged tail of", path))?;
    file.sync_all().map_err(Error::io_with("fsync", path))?;
    Ok(())
}

/// Makes directory entries (created, renamed or removed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let d = fs::File::open(dir).map_err(Error::io_with("open directory", dir))?;
        d.sync_all().map_err(Error::io_with("fsync directory", dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
