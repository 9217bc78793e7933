//! State shared between the [`Wal`](crate::Wal) handles and the writer thread.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tracing::warn;

use crate::donelog::Ranges;
use crate::format::segment_file_name;
use crate::writer::Disk;

/// The complement of `pending` (sorted) within the ranges of the segments: segment `k` spans from `k`
/// to the next segment's name, the last one up to `next_seq` (exclusive).
pub(crate) fn done_ranges(segments: impl Iterator<Item = u64>, pending: &[u64], next_seq: u64) -> Ranges {
    let starts: Vec<u64> = segments.collect();
    let mut out = Vec::new();
    let mut p = 0;
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(next_seq); // exclusive
        let mut cursor = start;
        while p < pending.len() && pending[p] < start {
            p += 1;
        }
        while p < pending.len() && pending[p] < end {
            if pending[p] > cursor {
                out.push((cursor, pending[p] - 1));
            }
            cursor = pending[p].saturating_add(1);
            p += 1;
        }
        if cursor < end {
            out.push((cursor, end - 1));
        }
    }
    out
}

/// Book-keeping of one segment file.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SegMeta {
    /// Records in the segment not yet marked done.
    pub(crate) live: u64,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    /// Records acknowledged or replayed and not yet done: sequence number -> payload length.
    pub(crate) pending: HashMap<u64, u64>,
    /// Payload bytes of `pending` plus those of appends queued or being written.
    pub(crate) pending_bytes: u64,
    /// Appends queued or being written.
    pub(crate) inflight_records: u64,
    /// Every segment file of the WAL, by first sequence number.
    pub(crate) segments: BTreeMap<u64, SegMeta>,
    /// First sequence number (name) of the active segment.
    pub(crate) active: u64,
    pub(crate) appended_records: u64,
    pub(crate) appended_bytes: u64,
    pub(crate) fsyncs: u64,
    /// Records marked done whose mark is not yet in the done log: (sequence number, its segment).
    pub(crate) done_queue: Vec<(u64, u64)>,
    /// A maintenance pass was requested and has not yet taken `done_queue`.
    pub(crate) maintain_requested: bool,
}

#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) dir: PathBuf,
    pub(crate) max_pending_bytes: u64,
    pub(crate) corrupt_records_at_open: u64,
    pub(crate) truncated_bytes_at_open: u64,
    state: Mutex<State>,
    /// The file state, parked here by the writer thread when it stops, so that `mark_done` after
    /// `close` can still delete segments and record done marks.
    parked: Mutex<Option<Disk>>,
}

impl Core {
    pub(crate) fn new(
        dir: PathBuf,
        max_pending_bytes: u64,
        corrupt_records_at_open: u64,
        truncated_bytes_at_open: u64,
        state: State,
    ) -> Self {
        Core {
            dir,
            max_pending_bytes,
            corrupt_records_at_open,
            truncated_bytes_at_open,
            state: Mutex::new(state),
            parked: Mutex::new(None),
        }
    }

    /// Parks the file state of the stopped writer thread, after a last maintenance pass.
    pub(crate) fn park(&self, mut disk: Disk) {
        let mut parked = self.parked.lock().unwrap_or_else(PoisonError::into_inner);
        disk.maintain(self);
        disk.shutdown();
        *parked = Some(disk);
    }

    /// Runs a maintenance pass on the parked file state, if the writer thread has stopped. (If it has
    /// not parked yet, its own last pass will see everything done so far.)
    pub(crate) fn maintain_parked(&self) {
        let mut parked = self.parked.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(disk) = parked.as_mut() {
            disk.maintain(self);
            disk.shutdown();
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is a few plain assignments.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn segment_path(&self, first_seq: u64) -> PathBuf {
        self.dir.join(segment_file_name(first_seq))
    }

    /// Marks records done. Returns whether a maintenance pass must be requested (to record the marks,
    /// delete finished segments, rotate an idle active segment).
    pub(crate) fn mark_done(&self, seqs: &[u64]) -> bool {
        let mut st = self.lock();
        let mut marked = false;
        for &seq in seqs {
            let Some(len) = st.pending.remove(&seq) else {
                continue;
            };
            marked = true;
            st.pending_bytes = st.pending_bytes.saturating_sub(len);
            // Segment `k` holds the sequence numbers from `k` up to the next segment's name.
            if let Some((&first, meta)) = st.segments.range_mut(..=seq).next_back() {
                meta.live = meta.live.saturating_sub(1);
                st.done_queue.push((seq, first));
            }
        }
        if marked && !st.maintain_requested {
            st.maintain_requested = true;
            return true;
        }
        false
    }

    /// Takes the queued done marks of segments that still exist (marks of deleted segments are moot).
    pub(crate) fn take_done_queue(&self) -> Vec<u64> {
        let mut st = self.lock();
        st.maintain_requested = false;
        let queue = std::mem::take(&mut st.done_queue);
        queue
            .into_iter()
            .filter(|(_, segment)| st.segments.contains_key(segment))
            .map(|(seq, _)| seq)
            .collect()
    }

    /// The done ranges to keep in a rewritten done log: every sequence number below `next_seq` within
    /// an existing segment that is not pending. (Everything there is done, failed or abandoned; nothing
    /// is in flight while the file owner runs this.)
    pub(crate) fn live_done_ranges(&self, next_seq: u64) -> Ranges {
        let st = self.lock();
        let mut pending: Vec<u64> = st.pending.keys().copied().collect();
        let segments: Vec<u64> = st.segments.keys().copied().collect();
        drop(st);
        pending.sort_unstable();
        done_ranges(segments.into_iter(), &pending, next_seq)
    }

    /// Removes the sealed segments without live records from the book-keeping and returns their paths
    /// for deletion.
    pub(crate) fn take_finished_sealed(&self) -> Vec<PathBuf> {
        let mut st = self.lock();
        let active = st.active;
        let finished: Vec<u64> = st
            .segments
            .iter()
            .filter(|(first, meta)| **first != active && meta.live == 0)
            .map(|(first, _)| *first)
            .collect();
        for first in &finished {
            st.segments.remove(first);
        }
        drop(st);
        finished.into_iter().map(|first| self.segment_path(first)).collect()
    }

    /// Deletes segment files. Failures are logged: the file stays and is replayed again on the next
    /// open. Returns whether any file was deleted.
    pub(crate) fn delete_segments(&self, paths: &[PathBuf]) -> bool {
        let mut deleted = false;
        for path in paths {
            match fs::remove_file(path) {
                Ok(()) => deleted = true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    warn!(file = %path.display(), error = %e, "failed to delete finished WAL segment")
                }
            }
        }
        deleted
    }

    /// Deletes the finished sealed segments and makes the deletion durable.
    pub(crate) fn collect_garbage(&self) {
        let paths = self.take_finished_sealed();
        if self.delete_segments(&paths)
            && let Err(e) = crate::recover::sync_dir(&self.dir)
        {
            warn!(error = %e, "failed to fsync the WAL directory after deleting segments");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_ranges_are_the_complement_of_pending() {
        // Segments 1..10, 10..20, 20..25 (next_seq 25).
        let r = done_ranges([1u64, 10, 20].into_iter(), &[3, 4, 10, 19, 24], 25);
        assert_eq!(r, vec![(1, 2), (5, 9), (11, 18), (20, 23)]);
        assert!(done_ranges([5u64].into_iter(), &[], 5).is_empty());
        assert_eq!(done_ranges([5u64].into_iter(), &[], 8), vec![(5, 7)]);
        assert!(done_ranges([5u64].into_iter(), &[5, 6, 7], 8).is_empty());
    }
}
