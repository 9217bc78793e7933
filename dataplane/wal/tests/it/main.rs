//! Integration tests of the WAL: one binary, one module per area.

// Test helpers outside `#[test]` functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod corruption;
mod lifecycle;
mod prop;
mod roundtrip;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use signaldb_wal::{Wal, WalOptions, parse_segment_file_name};

pub fn opts(dir: &Path, segment_size: u64) -> WalOptions {
    WalOptions {
        dir: dir.to_path_buf(),
        segment_size,
        max_pending_bytes: u64::MAX,
    }
}

/// A deterministic payload of `len` bytes that differs for every `i`.
pub fn payload(i: u64, len: usize) -> Bytes {
    Bytes::from((0..len).map(|j| (i as usize * 31 + j * 7) as u8).collect::<Vec<u8>>())
}

/// Segment files in the directory, sorted: (first sequence number, path, length). Files deleted by
/// the background thread while listing are left out.
pub fn segment_files(dir: &Path) -> Vec<(u64, PathBuf, u64)> {
    let mut out: Vec<(u64, PathBuf, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let seq = parse_segment_file_name(e.file_name().to_str()?)?;
            Some((seq, e.path(), e.metadata().ok()?.len()))
        })
        .collect();
    out.sort();
    out
}

pub async fn append_all(wal: &Wal, payloads: &[Bytes]) -> Vec<u64> {
    let mut seqs = Vec::with_capacity(payloads.len());
    for p in payloads {
        seqs.push(wal.append(p.clone()).await.unwrap());
    }
    seqs
}

/// Polls `cond` until it holds (the background thread deletes files asynchronously). Blocking is fine:
/// the WAL's work happens on its own thread.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reopens the WAL and returns the replayed (seq, payload) pairs.
pub fn replay(options: WalOptions) -> (Wal, signaldb_wal::Replay, Vec<(u64, Bytes)>) {
    let (wal, replay) = Wal::open(options).unwrap();
    let pairs = replay.entries.iter().map(|e| (e.seq, e.payload.clone())).collect();
    (wal, replay, pairs)
}

/// Compares replayed and expected (seq, payload) pairs, reporting sequence numbers rather than bytes.
#[track_caller]
pub fn assert_pairs(got: &[(u64, Bytes)], want: &[(u64, Bytes)]) {
    let got_seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
    let want_seqs: Vec<u64> = want.iter().map(|(s, _)| *s).collect();
    assert_eq!(got_seqs, want_seqs, "replayed sequence numbers");
    for ((seq, g), (_, w)) in got.iter().zip(want) {
        assert!(
            g == w,
            "payload of record {seq} differs: {} vs {} bytes",
            g.len(),
            w.len()
        );
    }
}
