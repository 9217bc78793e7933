//! A segmented, checksummed write-ahead log with group-commit fsync.
//!
//! SignalDB's acceptor appends every validated OTLP request and acknowledges the client only after
//! the record is durable; the writer does the same with every Arrow batch it receives. Once the data
//! is held durably elsewhere (by a writer, or in Parquet registered in the catalog) the caller marks
//! the records done and the WAL deletes the segment files that hold nothing else. After a crash
//! [`Wal::open`] replays every record that was not yet trimmed.
//!
//! ```no_run
//! # async fn example() -> signaldb_wal::Result<()> {
//! use signaldb_wal::{Wal, WalOptions};
//!
//! let (wal, replay) = Wal::open(WalOptions::new("/var/lib/signaldb/wal"))?;
//! for entry in &replay.entries {
//!     // Re-deliver entry.payload, then:
//!     wal.mark_done(&[entry.seq]);
//! }
//! let seq = wal.append(bytes::Bytes::from_static(b"request")).await?; // durable now
//! wal.mark_done(&[seq]);
//! wal.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Semantics
//!
//! * [`Wal::append`] resolves after the record is written **and** fsynced. It returns the record's
//!   sequence number: strictly increasing, starting at 1, continuing after the highest number seen in
//!   replay and never reused, not even after every segment was trimmed (see *Sequence numbers* below;
//!   only records whose bytes vanished from the disk entirely cannot be accounted for).
//! * Appends are refused with [`Error::Full`] when the payload bytes not yet done (replayed records
//!   included) plus the new payload would exceed [`WalOptions::max_pending_bytes`].
//! * Replay returns exactly the records not marked done, as far as the done marks reached the disk
//!   (see *Done log*). Delivery is at-least-once: a done mark lost in a power failure, or an append
//!   that failed with an I/O error after reaching the disk, may be replayed again.
//! * If an `append` future is dropped before it resolves, the record may still be written; since
//!   nobody learned its sequence number and no client was acknowledged, it is marked done at once.
//! * [`Wal::mark_done`] never blocks on I/O: deletion happens on the background thread (after
//!   [`Wal::close`], on the calling thread).
//!
//! # Threading
//!
//! A dedicated OS thread owns the files, so blocking I/O never runs on the async runtime. `append`
//! sends its payload over a channel together with a `tokio::sync::oneshot` for the reply. The thread
//! takes every request queued at that moment, writes them all, calls `sync_data` once and then replies
//! to all of them (group commit): while one fsync runs, the next batch queues up.
//!
//! # On-disk format (version 1)
//!
//! A WAL is a directory of *segment* files named `{first_seq:020}.wal`: the sequence number of the
//! first record the segment was created for, zero-padded to 20 digits, so names sort in log order.
//! Other files in the directory are ignored. All integers are little endian.
//!
//! ```text
//! segment = header record*
//! header  = magic "SIGDBWAL" (8 bytes) | version u32 = 1 | reserved u32 = 0          (16 bytes)
//! record  = len u32 | crc u32 | seq u64 | payload (len bytes)          (16 + len bytes)
//! crc     = CRC-32 (IEEE, crc32fast) of seq (8 bytes LE) followed by payload
//! ```
//!
//! * The records of a segment have consecutive sequence numbers, the first being the file's name.
//!   Segment `N` holds sequence numbers from `N` up to (excluding) the next segment's name.
//! * Exactly one segment is *active* (the newest); the others are *sealed*. A new segment is started
//!   when the next record would take the active one beyond `segment_size`, unless the active one holds
//!   no record yet (so a record larger than `segment_size` gets a segment of its own); after a write or
//!   fsync error; and when every record of the active segment is done (so an idle WAL holds no
//!   finished data, only an empty active segment). `open` always starts a new active segment: nothing
//!   is ever appended after bytes of unknown state.
//! * A new segment is created with its header, fsynced, and the directory is fsynced before it is used.
//! * A sealed segment whose records are all done is deleted (and the directory fsynced).
//!
//! ## Done log
//!
//! Segments are deleted whole, so a segment that is only partly done stays. To keep its done records
//! from being replayed, done marks are appended to `done.log` ([`DONE_LOG_FILE`]) by the background
//! thread: a 16-byte header (magic `SIGDBDON`, version u32 = 1, reserved u32) followed by frames
//! `count u32 | crc u32 | count × (first u64, last u64)`, each pair an inclusive range of done sequence
//! numbers, the crc (crc32fast) covering count and ranges. Frames are written without fsync (they
//! survive a process crash; the log is fsynced on close): losing a mark only means a duplicate replay.
//! Marks of segments already deleted are not written. The log is rewritten (temporary file, fsync,
//! rename, directory fsync) on open and whenever it grows beyond twice its last rewritten size (at
//! least 1 MiB), keeping only ranges inside existing segments. A damaged done log is logged and read
//! up to the damage.
//!
//! ## Sequence numbers
//!
//! Every segment file name is a lower bound for the next sequence number: on open, the next number
//! is `max(highest seq read + 1, highest segment name, highest seq in the done log + 1)`. Because the
//! active segment is named after the next number and is created (durably) before older segments are
//! deleted, numbers are never reused. A damaged tail of `n` bytes may have held up to
//! `ceil(n / 16)` records: their numbers are skipped too.
//!
//! # Replay and corruption handling
//!
//! [`Wal::open`] never fails because of corrupt data; only I/O errors (such as permission denied) are
//! returned. Segments are read in order, and every problem is logged with `tracing::warn!` naming the
//! file, the offset and what was wrong, and counted in [`ReplayStats`]:
//!
//! * A zero-byte file, or one shorter than the header (a crash while creating it), counts in
//!   `empty_segments` and is removed.
//! * A header with wrong magic or an unknown version counts as one corrupt record; the segment is
//!   still scanned for valid records. If none is found the file is renamed to `*.wal.unreadable`
//!   (kept for inspection, never read again).
//! * A record is valid if its length fits in the file, its checksum matches and its sequence number
//!   is greater than the previous valid record's (and at least the segment's name). At the first
//!   invalid record the scanner **resynchronises**: it searches the following offsets for the next
//!   record that is completely valid, with a sequence number in `expected..=expected + skipped / 16`
//!   (records are numbered consecutively and take at least 16 bytes, which makes accidental matches
//!   inside payload bytes practically impossible). Records from there on are kept; the skipped bytes
//!   count in `truncated_bytes` and the skipped records (the gap in sequence numbers, at least one)
//!   in `corrupt_records`. A flipped bit anywhere in a record therefore loses exactly that record.
//! * If no valid record follows, the rest of the segment (a torn tail after a crash, or damage) is
//!   ignored: its bytes count in `truncated_bytes` and it counts as one corrupt record. A damaged
//!   tail of the newest segment with records is truncated away.
//! * A segment left without any valid record is removed, and so is one whose records are all done.
//!
//! Replayed records count as pending (toward `max_pending_bytes`) until they are marked done.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::path::PathBuf;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::sync::{oneshot, watch};
use tracing::info;

mod donelog;
mod error;
mod format;
mod recover;
mod state;
mod writer;

pub use donelog::DONE_LOG_FILE;
pub use error::{Error, Result};
pub use format::{
    FORMAT_VERSION, MAX_PAYLOAD_LEN, RECORD_HEADER_LEN, SEGMENT_EXTENSION, SEGMENT_HEADER_LEN, SEGMENT_MAGIC,
    parse_segment_file_name, segment_file_name,
};

use state::{Core, SegMeta, State};
use writer::{Disk, Msg, Writer};

/// Default [`WalOptions::segment_size`]: 64 MiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;
/// Default [`WalOptions::max_pending_bytes`]: 1 GiB.
pub const DEFAULT_MAX_PENDING_BYTES: u64 = 1 << 30;

/// Configuration of a WAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalOptions {
    /// Directory holding the segment files; created if missing.
    pub dir: PathBuf,
    /// Size (header included) beyond which a new segment is started.
    pub segment_size: u64,
    /// Limit on the payload bytes appended (or replayed) and not yet marked done.
    pub max_pending_bytes: u64,
}

impl WalOptions {
    /// Options with the default segment size and pending limit.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        WalOptions {
            dir: dir.into(),
            segment_size: DEFAULT_SEGMENT_SIZE,
            max_pending_bytes: DEFAULT_MAX_PENDING_BYTES,
        }
    }
}

/// What [`Wal::open`] found on disk.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    /// Every record not yet trimmed, in sequence order.
    pub entries: Vec<ReplayEntry>,
    pub stats: ReplayStats,
}

/// A replayed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayEntry {
    pub seq: u64,
    pub payload: Bytes,
}

/// Counters of a replay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Segment files read (with a complete header).
    pub segments: u64,
    /// Records replayed (valid and not marked done).
    pub records: u64,
    /// Records lost to corruption (including torn tails and damaged segment headers).
    pub corrupt_records: u64,
    /// Bytes skipped because they were not valid records.
    pub truncated_bytes: u64,
    /// Segment files that were empty or held only part of a header; they are removed.
    pub empty_segments: u64,
}

/// Live counters of a WAL.
#[derive(Debug, Clone, Default)]
pub struct WalStats {
    /// Payload bytes not yet marked done, including appends in progress.
    pub pending_bytes: u64,
    /// Records not yet marked done, including appends in progress.
    pub pending_records: u64,
    /// Segment files, the active one included.
    pub segments: u64,
    /// Records appended successfully since open.
    pub appended_records: u64,
    /// Payload bytes appended successfully since open.
    pub appended_bytes: u64,
    /// fsyncs of segment files since open (directory fsyncs not counted).
    pub fsyncs: u64,
    pub corrupt_records_at_open: u64,
    pub truncated_bytes_at_open: u64,
}

/// A handle to an open WAL. Cheap to clone; all clones share the same log.
///
/// Dropping every handle stops the background thread once it has finished queued appends.
#[derive(Clone)]
pub struct Wal {
    inner: Arc<Inner>,
}

struct Inner {
    core: Arc<Core>,
    /// `None` once closed.
    tx: Mutex<Option<Sender<Msg>>>,
    /// Becomes `true` when the writer thread has stopped.
    stopped: watch::Receiver<bool>,
}

impl fmt::Debug for Wal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.inner.core.dir)
            .field("closed", &self.sender().is_none())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Wal {
    /// Opens the WAL in `opts.dir` (creating the directory if needed) and replays it.
    ///
    /// Never fails because of corrupt data: corrupt or torn records are skipped, counted in
    /// [`ReplayStats`] and logged. Fails only on I/O errors, such as permission denied.
    pub fn open(opts: WalOptions) -> Result<(Wal, Replay)> {
        fs::create_dir_all(&opts.dir).map_err(Error::io_with("create directory", &opts.dir))?;
        let recovered = recover::recover(&opts.dir)?;
        let stats = recovered.stats;
        if stats.corrupt_records > 0 || stats.truncated_bytes > 0 || stats.empty_segments > 0 {
            info!(
                dir = %opts.dir.display(),
                corrupt_records = stats.corrupt_records,
                truncated_bytes = stats.truncated_bytes,
                empty_segments = stats.empty_segments,
                replayed_records = stats.records,
                "WAL replay found damage"
            );
        }

        let mut segments: BTreeMap<u64, SegMeta> = recovered
            .segments
            .iter()
            .map(|(&first, &records)| (first, SegMeta { live: records }))
            .collect();
        segments.entry(recovered.active.first_seq).or_default();
        let pending: HashMap<u64, u64> = recovered
            .entries
            .iter()
            .map(|e| (e.seq, e.payload.len() as u64))
            .collect();
        let state = State {
            pending_bytes: pending.values().sum(),
            pending,
            inflight_records: 0,
            segments,
            active: recovered.active.first_seq,
            appended_records: 0,
            appended_bytes: 0,
            fsyncs: 0,
            done_queue: Vec::new(),
            maintain_requested: false,
        };
        let core = Arc::new(Core::new(
            opts.dir.clone(),
            opts.max_pending_bytes,
            stats.corrupt_records,
            stats.truncated_bytes,
            state,
        ));

        let (tx, rx) = mpsc::channel();
        let (stopped_tx, stopped_rx) = watch::channel(false);
        let disk = Disk::new(
            opts.dir.clone(),
            recovered.active,
            recovered.done_log,
            recovered.next_seq,
            opts.segment_size,
        );
        let writer = Writer::new(Arc::clone(&core), rx, disk, stopped_tx);
        std::thread::Builder::new()
            .name("signaldb-wal".to_owned())
            .spawn(move || writer.run())
            .map_err(Error::io_with("start the writer thread for", &opts.dir))?;

        let wal = Wal {
            inner: Arc::new(Inner {
                core,
                tx: Mutex::new(Some(tx)),
                stopped: stopped_rx,
            }),
        };
        Ok((
            wal,
            Replay {
                entries: recovered.entries,
                stats,
            },
        ))
    }

    fn sender(&self) -> MutexGuard<'_, Option<Sender<Msg>>> {
        self.inner.tx.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends one record and resolves once it is written and fsynced, with its sequence number.
    ///
    /// Returns [`Error::Full`] without writing if the pending bytes plus this payload would exceed
    /// `max_pending_bytes`, [`Error::TooLarge`] for payloads over [`MAX_PAYLOAD_LEN`] and
    /// [`Error::Closed`] after [`Wal::close`].
    pub async fn append(&self, payload: Bytes) -> Result<u64> {
        let len = payload.len() as u64;
        if len > MAX_PAYLOAD_LEN {
            return Err(Error::TooLarge {
                len,
                max: MAX_PAYLOAD_LEN,
            });
        }
        let (reply, response) = oneshot::channel();
        {
            // Holding the sender lock orders this append before a concurrent `close`.
            let sender = self.sender();
            let Some(tx) = sender.as_ref() else {
                return Err(Error::Closed);
            };
            let core = &self.inner.core;
            {
                let mut st = core.lock();
                let limit = core.max_pending_bytes;
                if st.pending_bytes.saturating_add(len) > limit {
                    return Err(Error::Full {
                        pending_bytes: st.pending_bytes,
                        limit,
                    });
                }
                st.pending_bytes += len;
                st.inflight_records += 1;
            }
            if tx.send(Msg::Append { payload, reply }).is_err() {
                let mut st = core.lock();
                st.pending_bytes = st.pending_bytes.saturating_sub(len);
                st.inflight_records = st.inflight_records.saturating_sub(1);
                return Err(Error::Closed);
            }
        }
        response.await.unwrap_or(Err(Error::Closed))
    }

    /// Marks records done. Unknown and already-done sequence numbers are ignored.
    ///
    /// Sealed segments whose records are all done are deleted; when every record of the (non-empty)
    /// active segment is done, it is sealed and deleted too. The file I/O happens on the background
    /// thread (or here, if the WAL is closed).
    pub fn mark_done(&self, seqs: &[u64]) {
        if !self.inner.core.mark_done(seqs) {
            return;
        }
        let sent = self.sender().as_ref().is_some_and(|tx| tx.send(Msg::Maintain).is_ok());
        if !sent {
            self.inner.core.maintain_parked();
        }
    }

    /// Current counters.
    pub fn stats(&self) -> WalStats {
        let core = &self.inner.core;
        let st = core.lock();
        WalStats {
            pending_bytes: st.pending_bytes,
            pending_records: st.pending.len() as u64 + st.inflight_records,
            segments: st.segments.len() as u64,
            appended_records: st.appended_records,
            appended_bytes: st.appended_bytes,
            fsyncs: st.fsyncs,
            corrupt_records_at_open: core.corrupt_records_at_open,
            truncated_bytes_at_open: core.truncated_bytes_at_open,
        }
    }

    /// Stops the background thread after it has finished the appends queued before this call.
    /// Later appends return [`Error::Closed`]. Affects every clone of the handle; calling it again is
    /// harmless.
    pub async fn close(&self) {
        let tx = self.sender().take();
        if let Some(tx) = tx {
            // If the thread is already gone there is nothing to stop.
            let _ = tx.send(Msg::Close);
        }
        let mut stopped = self.inner.stopped.clone();
        // An error means the thread is gone, which is what we wait for.
        let _ = stopped.wait_for(|stopped| *stopped).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + Clone + fmt::Debug>() {}

    #[test]
    fn handle_is_send_sync_clone_debug() {
        assert_send_sync::<Wal>();
    }

    #[tokio::test]
    async fn debug_output_names_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(WalOptions::new(dir.path())).unwrap();
        let text = format!("{wal:?}");
        assert!(text.contains("closed: false"), "{text}");
        wal.close().await;
        assert!(format!("{wal:?}").contains("closed: true"));
    }
}
