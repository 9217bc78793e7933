//! The background thread that owns the segment files: it writes, fsyncs, rotates and deletes them.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use bytes::Bytes;
use tokio::sync::{oneshot, watch};
use tracing::{debug, error, warn};

use crate::donelog::{self, DoneLog};
use crate::error::{Error, Result};
use crate::format::{self, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use crate::recover::sync_dir;
use crate::state::Core;

/// Encoded records are written to the file whenever this much has accumulated, so a huge batch does
/// not need a huge buffer. Only the fsync waits for the end of the batch.
const WRITE_CHUNK: usize = 1 << 20;

/// A request to the writer thread.
#[derive(Debug)]
pub(crate) enum Msg {
    Append {
        payload: Bytes,
        reply: oneshot::Sender<Result<u64>>,
    },
    /// Some segment has no live record left: delete finished sealed segments, rotate an idle active one.
    Maintain,
    /// Finish what is queued and stop.
    Close,
}

/// The segment new records are appended to.
#[derive(Debug)]
pub(crate) struct ActiveSegment {
    pub(crate) first_seq: u64,
    pub(crate) path: PathBuf,
    file: File,
    /// Bytes written.
    len: u64,
    /// Bytes known to be durable.
    synced_len: u64,
    /// A write or fsync failed: nothing more is appended to this file.
    broken: bool,
}

impl ActiveSegment {
    /// Creates (or replaces) the segment file for `first_seq`, writes its header and makes both the
    /// file and its directory entry durable.
    pub(crate) fn create(dir: &Path, first_seq: u64) -> Result<Self> {
        let path = dir.join(format::segment_file_name(first_seq));
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(Error::io_with("create segment", &path))?;
        file.write_all(&format::encode_segment_header())
            .map_err(Error::io_with("write header of segment", &path))?;
        file.sync_all().map_err(Error::io_with("fsync new segment", &path))?;
        sync_dir(dir)?;
        debug!(file = %path.display(), "created WAL segment");
        Ok(ActiveSegment {
            first_seq,
            path,
            file,
            len: SEGMENT_HEADER_LEN,
            synced_len: SEGMENT_HEADER_LEN,
            broken: false,
        })
    }
}

type AppendReq = (Bytes, oneshot::Sender<Result<u64>>);

/// Everything on disk: owned by the writer thread while it runs, parked in [`Core`] afterwards.
#[derive(Debug)]
pub(crate) struct Disk {
    dir: PathBuf,
    active: ActiveSegment,
    done_log: DoneLog,
    next_seq: u64,
    segment_size: u64,
    buf: Vec<u8>,
}

impl Disk {
    pub(crate) fn new(
        dir: PathBuf,
        active: ActiveSegment,
        done_log: DoneLog,
        next_seq: u64,
        segment_size: u64,
    ) -> Self {
        Disk {
            dir,
            active,
            done_log,
            next_seq,
            segment_size,
            buf: Vec::new(),
        }
    }

    fn commit(&mut self, core: &Core, appends: Vec<AppendReq>) {
        // (sequence number, segment) of every record given a place, in order.
        let mut assigned: Vec<(u64, u64)> = Vec::with_capacity(appends.len());
        // How many of `assigned` are durable.
        let mut committed = 0;
        let outcome = self.write_batch(core, &appends, &mut assigned, &mut committed);
        if let Err(e) = &outcome {
            error!(error = %e, failed = appends.len() - committed, "WAL append failed");
            self.abandon_unsynced();
        }

        {
            let mut st = core.lock();
            for (i, (payload, _)) in appends.iter().enumerate() {
                let len = payload.len() as u64;
                st.inflight_records = st.inflight_records.saturating_sub(1);
                match assigned.get(i) {
                    Some(&(seq, segment)) if i < committed => {
                        st.pending.insert(seq, len);
                        st.segments.entry(segment).or_default().live += 1;
                        st.appended_records += 1;
                        st.appended_bytes += len;
                    }
                    _ => st.pending_bytes = st.pending_bytes.saturating_sub(len),
                }
            }
        }

        let mut abandoned = Vec::new();
        for (i, (_, reply)) in appends.into_iter().enumerate() {
            match (assigned.get(i), &outcome) {
                (Some(&(seq, _)), _) if i < committed => {
                    if reply.send(Ok(seq)).is_err() {
                        abandoned.push(seq);
                    }
                }
                (_, Err(e)) => {
                    let _ = reply.send(Err(e.duplicate()));
                }
                // Every record is committed when the batch succeeds.
                (_, Ok(())) => {
                    let _ = reply.send(Err(Error::Closed));
                }
            }
        }
        if !abandoned.is_empty() {
            // Nobody learned these sequence numbers (the append futures were dropped), so nobody can
            // mark them done and no client was acknowledged: they are finished already.
            debug!(
                records = abandoned.len(),
                "append futures dropped; marking their records done"
            );
            core.mark_done(&abandoned);
        }
    }

    fn write_batch(
        &mut self,
        core: &Core,
        appends: &[AppendReq],
        assigned: &mut Vec<(u64, u64)>,
        committed: &mut usize,
    ) -> Result<()> {
        self.buf.clear();
        for (payload, _) in appends {
            if self.active.broken {
                self.rotate(core)?;
            }
            let record_len = RECORD_HEADER_LEN + payload.len() as u64;
            let used = self.active.len + self.buf.len() as u64;
            // A record that does not fit goes to a new segment, unless the segment is still empty:
            // a record larger than `segment_size` gets a segment of its own.
            if used > SEGMENT_HEADER_LEN && used.saturating_add(record_len) > self.segment_size {
                self.flush()?;
                self.sync(core)?;
                *committed = assigned.len();
                self.rotate(core)?;
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            format::encode_record(&mut self.buf, seq, payload);
            assigned.push((seq, self.active.first_seq));
            if self.buf.len() >= WRITE_CHUNK {
                self.flush()?;
            }
        }
        self.flush()?;
        self.sync(core)?;
        *committed = assigned.len();
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let a = &mut self.active;
        a.file
            .write_all(&self.buf)
            .map_err(Error::io_with("write to segment", &a.path))?;
        a.len += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    fn sync(&mut self, core: &Core) -> Result<()> {
        let a = &mut self.active;
        if a.len == a.synced_len {
            return Ok(());
        }
        a.file.sync_data().map_err(Error::io_with("fsync segment", &a.path))?;
        a.synced_len = a.len;
        core.lock().fsyncs += 1;
        Ok(())
    }

    /// After a failed write or fsync: cut what may be partially written (best effort) and stop using
    /// the file. The next append starts a new segment.
    fn abandon_unsynced(&mut self) {
        self.buf.clear();
        let a = &mut self.active;
        a.broken = true;
        if let Err(e) = a.file.set_len(a.synced_len) {
            warn!(file = %a.path.display(), error = %e, "failed to cut unsynced bytes off a failed WAL segment");
        }
    }

    /// Seals the active segment and starts a new one named after the next sequence number.
    fn rotate(&mut self, core: &Core) -> Result<()> {
        let new = ActiveSegment::create(&self.dir, self.next_seq)?;
        let first_seq = new.first_seq;
        let old = std::mem::replace(&mut self.active, new);
        {
            let mut st = core.lock();
            st.fsyncs += 1;
            st.segments.entry(first_seq).or_default();
            st.active = first_seq;
        }
        debug!(sealed = %old.path.display(), active = %self.active.path.display(), "rotated WAL segment");
        Ok(())
    }

    /// Rotates an idle active segment, deletes finished segments and records done marks.
    pub(crate) fn maintain(&mut self, core: &Core) {
        let idle = {
            let st = core.lock();
            st.segments.get(&st.active).is_none_or(|meta| meta.live == 0)
        };
        // An idle WAL keeps no finished records: seal the active segment so it can be deleted.
        if idle
            && (self.active.broken || self.active.len > SEGMENT_HEADER_LEN)
            && let Err(e) = self.rotate(core)
        {
            warn!(error = %e, "failed to rotate the idle WAL segment");
        }
        core.collect_garbage();

        let done = core.take_done_queue();
        if !done.is_empty() {
            self.done_log.append(&donelog::ranges_of(done));
        }
        if self.done_log.needs_compaction() {
            let ranges = core.live_done_ranges(self.next_seq);
            match DoneLog::create(&self.dir, &ranges) {
                Ok(log) => self.done_log = log,
                Err(e) => {
                    warn!(error = %e, "failed to rewrite the WAL done log");
                    self.done_log.postpone_compaction();
                }
            }
        }
    }

    /// Makes the done marks durable (segment data is always synced already).
    pub(crate) fn shutdown(&self) {
        self.done_log.sync();
    }
}

#[derive(Debug)]
pub(crate) struct Writer {
    core: Arc<Core>,
    rx: Receiver<Msg>,
    disk: Disk,
    stopped: watch::Sender<bool>,
}

impl Writer {
    pub(crate) fn new(core: Arc<Core>, rx: Receiver<Msg>, disk: Disk, stopped: watch::Sender<bool>) -> Self {
        Writer {
            core,
            rx,
            disk,
            stopped,
        }
    }

    /// The thread's main loop: runs until `Close` or until every `Wal` handle is gone.
    pub(crate) fn run(mut self) {
        while let Ok(first) = self.rx.recv() {
            // Group commit: take everything queued (appends that arrived while the last fsync ran)
            // and make it durable with one fsync.
            let mut appends: Vec<AppendReq> = Vec::new();
            let mut maintain = false;
            let mut close = false;
            let mut next = Some(first);
            while let Some(msg) = next {
                match msg {
                    Msg::Append { payload, reply } => appends.push((payload, reply)),
                    Msg::Maintain => maintain = true,
                    Msg::Close => close = true,
                }
                next = if close { None } else { self.rx.try_recv().ok() };
            }
            if !appends.is_empty() {
                self.disk.commit(&self.core, appends);
                maintain = true;
            }
            if maintain {
                self.disk.maintain(&self.core);
            }
            if close {
                break;
            }
        }
        debug!(dir = %self.core.dir.display(), "WAL writer thread stopped");
        self.core.park(self.disk);
        self.stopped.send_replace(true);
    }
}
