use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use signaldb_wal::{Error, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN, Wal, WalOptions};

use crate::{append_all, opts, payload, replay, segment_files};

#[tokio::test]
async fn round_trip_across_many_segments_and_seqs_continue() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, first) = Wal::open(opts(dir.path(), 4096)).unwrap();
    assert!(first.entries.is_empty());
    assert_eq!(first.stats, Default::default());

    let payloads: Vec<Bytes> = (0..300u64).map(|i| payload(i, (i as usize * 37) % 300)).collect();
    let seqs = append_all(&wal, &payloads).await;
    assert_eq!(seqs, (1..=300).collect::<Vec<u64>>());
    let stats = wal.stats();
    assert_eq!(stats.appended_records, 300);
    assert_eq!(stats.pending_records, 300);
    assert_eq!(
        stats.pending_bytes,
        payloads.iter().map(|p| p.len() as u64).sum::<u64>()
    );
    wal.close().await;

    let files = segment_files(dir.path());
    assert!(files.len() > 10, "expected many segments, got {}", files.len());
    for (_, path, len) in &files {
        // A segment only exceeds the limit when it holds a single record.
        assert!(*len <= 4096, "{} is {len} bytes", path.display());
    }
    assert_eq!(wal.stats().segments, files.len() as u64);

    let (wal, replayed, pairs) = replay(opts(dir.path(), 4096));
    crate::assert_pairs(
        &pairs,
        &seqs.iter().copied().zip(payloads.iter().cloned()).collect::<Vec<_>>(),
    );
    assert_eq!(replayed.stats.records, 300);
    assert_eq!(replayed.stats.segments, files.len() as u64);
    assert_eq!(replayed.stats.corrupt_records, 0);
    assert_eq!(replayed.stats.truncated_bytes, 0);
    assert_eq!(replayed.stats.empty_segments, 0);

    // New appends continue after the highest replayed sequence number.
    let more: Vec<Bytes> = (300..310u64).map(|i| payload(i, 50)).collect();
    let more_seqs = append_all(&wal, &more).await;
    assert_eq!(more_seqs, (301..=310).collect::<Vec<u64>>());
    wal.close().await;

    let (wal, _, pairs) = replay(opts(dir.path(), 4096));
    assert_eq!(pairs.len(), 310);
    assert_eq!(pairs.last().unwrap(), &(310, more[9].clone()));
    assert!(pairs.windows(2).all(|w| w[0].0 + 1 == w[1].0));
    wal.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_uses_fewer_fsyncs_than_records() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(WalOptions::new(dir.path())).unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let mut tasks = Vec::new();
    for i in 0..64u64 {
        let wal = wal.clone();
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let p = payload(i, 100 + i as usize);
            (wal.append(p.clone()).await.unwrap(), p)
        }));
    }
    let mut written = Vec::new();
    for t in tasks {
        written.push(t.await.unwrap());
    }
    let stats = wal.stats();
    assert_eq!(stats.appended_records, 64);
    assert!(stats.fsyncs >= 1);
    assert!(
        stats.fsyncs < stats.appended_records,
        "fsyncs {} for {} records",
        stats.fsyncs,
        stats.appended_records
    );
    let distinct: HashSet<u64> = written.iter().map(|(s, _)| *s).collect();
    assert_eq!(distinct.len(), 64);
    wal.close().await;

    written.sort_by_key(|(s, _)| *s);
    let (wal, _, pairs) = replay(WalOptions::new(dir.path()));
    crate::assert_pairs(&pairs, &written);
    wal.close().await;
}

#[tokio::test]
async fn record_larger_than_segment_gets_its_own_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(opts(dir.path(), 1024)).unwrap();
    let payloads = vec![payload(1, 100), payload(2, 100), payload(3, 5000), payload(4, 100)];
    let seqs = append_all(&wal, &payloads).await;
    wal.close().await;

    let files = segment_files(dir.path());
    let big = files
        .iter()
        .find(|(first, _, _)| *first == seqs[2])
        .expect("segment of the large record");
    assert_eq!(big.2, SEGMENT_HEADER_LEN + RECORD_HEADER_LEN + 5000);

    let (wal, _, pairs) = replay(opts(dir.path(), 1024));
    crate::assert_pairs(&pairs, &seqs.into_iter().zip(payloads).collect::<Vec<_>>());
    wal.close().await;
}

#[tokio::test]
async fn empty_payloads_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(opts(dir.path(), 4096)).unwrap();
    let payloads = vec![Bytes::new(), payload(1, 3), Bytes::new()];
    let seqs = append_all(&wal, &payloads).await;
    wal.close().await;
    let (wal, _, pairs) = replay(opts(dir.path(), 4096));
    crate::assert_pairs(&pairs, &seqs.into_iter().zip(payloads).collect::<Vec<_>>());
    wal.close().await;
}

#[tokio::test]
async fn closed_wal_rejects_appends_and_close_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(opts(dir.path(), 4096)).unwrap();
    let seq = wal.append(payload(1, 10)).await.unwrap();
    let clone = wal.clone();
    wal.close().await;
    assert!(matches!(clone.append(payload(2, 10)).await, Err(Error::Closed)));
    clone.close().await;
    // mark_done still works after close (deletion happens inline).
    clone.mark_done(&[seq]);
    assert_eq!(clone.stats().pending_records, 0);

    let (wal, _, pairs) = replay(opts(dir.path(), 4096));
    assert!(pairs.is_empty(), "done record must not replay: {pairs:?}");
    wal.close().await;
}

#[tokio::test]
async fn dropping_every_handle_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(opts(dir.path(), 4096)).unwrap();
    let seq = wal.append(payload(1, 10)).await.unwrap();
    drop(wal);
    // The record was durable before `append` returned; the writer thread exits on its own.
    let (wal, replay) = Wal::open(opts(dir.path(), 4096)).unwrap();
    assert_eq!(replay.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![seq]);
    wal.close().await;
}

#[tokio::test]
async fn open_reports_io_errors_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = Wal::open(opts(&file.join("wal"), 4096)).unwrap_err();
    match &err {
        Error::Io { path, .. } => assert!(path.starts_with(&file), "{}", path.display()),
        other => panic!("unexpected error {other:?}"),
    }
    assert!(err.to_string().contains("not-a-dir"), "{err}");
}
