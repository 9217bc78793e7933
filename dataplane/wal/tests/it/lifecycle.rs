use bytes::Bytes;
use signaldb_wal::{Error, SEGMENT_HEADER_LEN, Wal, WalOptions};

use crate::{append_all, opts, payload, replay, segment_files, wait_until};

/// The segment (by first sequence number) holding each sequence number.
fn segment_of(files: &[(u64, std::path::PathBuf, u64)], seq: u64) -> u64 {
    files.iter().rev().find(|(first, _, _)| *first <= seq).unwrap().0
}

#[tokio::test]
async fn mark_done_deletes_finished_sealed_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(opts(dir.path(), 4096)).unwrap();
    let payloads: Vec<Bytes> = (0..100u64).map(|i| payload(i, 100)).collect();
    let seqs = append_all(&wal, &payloads).await;
    let files = segment_files(dir.path());
    assert!(files.len() >= 3, "{files:?}");
    let first_segment: Vec<u64> = seqs
        .iter()
        .copied()
        .filter(|s| segment_of(&files, *s) == files[0].0)
        .collect();
    let second_segment: Vec<u64> = seqs
        .iter()
        .copied()
        .filter(|s| segment_of(&files, *s) == files[1].0)
        .collect();

    // All of the first segment and half of the second.
    let half = &second_segment[..second_segment.len() / 2];
    wal.mark_done(&first_segment);
    wal.mark_done(half);
    wait_until("first segment deleted", || !files[0].1.exists());
    assert!(files[1].1.exists(), "partially done segment must stay");
    assert!(files[2..].iter().all(|(_, p, _)| p.exists()));
    // Marking unknown or already-done records again changes nothing.
    wal.mark_done(&first_segment);
    wal.mark_done(&[0, 10_000]);
    let done: Vec<u64> = first_segment.iter().chain(half).copied().collect();
    let stats = wal.stats();
    assert_eq!(stats.pending_records, 100 - done.len() as u64);
    assert_eq!(stats.pending_bytes, 100 * (100 - done.len() as u64));
    assert_eq!(stats.segments, files.len() as u64 - 1);
    wal.close().await;

    // Replay returns exactly the records not done.
    let (wal, replayed, pairs) = replay(opts(dir.path(), 4096));
    let want: Vec<(u64, Bytes)> = seqs
        .iter()
        .copied()
        .zip(payloads.iter().cloned())
        .filter(|(s, _)| !done.contains(s))
        .collect();
    crate::assert_pairs(&pairs, &want);
    assert_eq!(replayed.stats.corrupt_records, 0);

    // Replayed records are pending until done; finishing them removes their segments.
    let stats = wal.stats();
    assert_eq!(stats.pending_records, want.len() as u64);
    assert_eq!(stats.pending_bytes, 100 * want.len() as u64);
    let rest: Vec<u64> = want.iter().map(|(s, _)| *s).collect();
    wal.mark_done(&rest);
    assert_eq!(wal.stats().pending_records, 0);
    wait_until("replayed segments deleted", || segment_files(dir.path()).len() == 1);
    let only = segment_files(dir.path());
    assert_eq!(only[0].2, SEGMENT_HEADER_LEN, "only the empty active segment remains");
    assert_eq!(wal.append(payload(1, 1)).await.unwrap(), 101);
    wal.close().await;
}

#[tokio::test]
async fn idle_wal_holds_no_finished_records() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(opts(dir.path(), 4096)).unwrap();
    let payloads: Vec<Bytes> = (0..10u64).map(|i| payload(i, 100)).collect();
    let seqs = append_all(&wal, &payloads).await;
    // Everything fits in the active segment.
    assert_eq!(segment_files(dir.path()).len(), 1);
    wal.mark_done(&seqs[..5]);
    wal.mark_done(&seqs[5..]);
    // close() runs after the queued maintenance, so the rotation and deletion are done.
    wal.close().await;

    let files = segment_files(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].2, SEGMENT_HEADER_LEN, "no record on disk");
    assert_eq!(
        files[0].0, 11,
        "the new active segment is named after the next sequence number"
    );
    let stats = wal.stats();
    assert_eq!((stats.pending_records, stats.pending_bytes, stats.segments), (0, 0, 1));

    // Sequence numbers are not reused although every record was trimmed.
    let (wal, replayed, _) = replay(opts(dir.path(), 4096));
    assert!(replayed.entries.is_empty());
    assert_eq!(wal.append(payload(1, 1)).await.unwrap(), 11);
    wal.close().await;
    // Reopening repeatedly without appends does not pile up segment files.
    for _ in 0..3 {
        let (wal, _) = Wal::open(opts(dir.path(), 4096)).unwrap();
        wal.close().await;
    }
    assert_eq!(segment_files(dir.path()).len(), 2);
}

#[tokio::test]
async fn active_segment_is_rotated_when_its_records_are_done() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(opts(dir.path(), 1 << 20)).unwrap();
    let a = wal.append(payload(1, 10)).await.unwrap();
    wal.mark_done(&[a]);
    wait_until("rotated", || {
        let files = segment_files(dir.path());
        files.len() == 1 && files[0].0 == 2 && files[0].2 == SEGMENT_HEADER_LEN
    });
    let b = wal.append(payload(2, 10)).await.unwrap();
    assert_eq!(b, 2);
    wal.close().await;
    let (wal, _, pairs) = replay(opts(dir.path(), 1 << 20));
    crate::assert_pairs(&pairs, &[(2, payload(2, 10))]);
    wal.close().await;
}

#[tokio::test]
async fn full_until_records_are_done() {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions {
        dir: dir.path().to_path_buf(),
        segment_size: 4096,
        max_pending_bytes: 1000,
    };
    let (wal, _) = Wal::open(options.clone()).unwrap();
    let mut seqs = Vec::new();
    for i in 0..4u64 {
        seqs.push(wal.append(payload(i, 250)).await.unwrap());
    }
    match wal.append(payload(9, 1)).await {
        Err(Error::Full { pending_bytes, limit }) => assert_eq!((pending_bytes, limit), (1000, 1000)),
        other => panic!("expected Full, got {other:?}"),
    }
    let stats = wal.stats();
    assert_eq!(stats.appended_records, 4, "the refused record is not written");
    assert_eq!(stats.pending_bytes, 1000);

    wal.mark_done(&seqs[..1]);
    let next = wal.append(payload(10, 250)).await.unwrap();
    assert_eq!(next, 5);
    assert!(matches!(wal.append(payload(11, 1)).await, Err(Error::Full { .. })));
    wal.close().await;

    // Replayed records count toward the limit too.
    let (wal, replayed) = Wal::open(options).unwrap();
    assert_eq!(replayed.entries.len(), 4);
    assert_eq!(wal.stats().pending_bytes, 1000);
    assert!(matches!(wal.append(payload(12, 1)).await, Err(Error::Full { .. })));
    wal.mark_done(&[replayed.entries[0].seq]);
    assert_eq!(wal.append(payload(13, 250)).await.unwrap(), 6);
    wal.close().await;
}

#[tokio::test]
async fn dropped_append_future_counts_as_done() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(opts(dir.path(), 1 << 20)).unwrap();
    // Poll an append once (which queues the record) and drop it before it resolves. An fsync takes far
    // longer than the poll, but retry in case the reply was faster.
    let mut dropped = false;
    for i in 0..5 {
        tokio::select! {
            biased;
            r = wal.append(payload(i, 10)) => wal.mark_done(&[r.unwrap()]),
            () = std::future::ready(()) => { dropped = true; }
        }
        if dropped {
            break;
        }
    }
    assert!(dropped, "every append resolved on its first poll");
    wait_until("the dropped append is written and marked done", || {
        let stats = wal.stats();
        stats.pending_records == 0 && stats.appended_records >= 1
    });
    assert_eq!(wal.stats().pending_bytes, 0);
    wal.close().await;
    let (wal, replayed, _) = replay(opts(dir.path(), 1 << 20));
    assert!(replayed.entries.is_empty(), "{:?}", replayed.entries);
    wal.close().await;
}
