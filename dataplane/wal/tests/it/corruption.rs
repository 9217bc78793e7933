use std::fs::{self, OpenOptions};
use std::path::Path;

use bytes::Bytes;
use signaldb_wal::{RECORD_HEADER_LEN, SEGMENT_HEADER_LEN, Wal, segment_file_name};

use crate::{append_all, opts, payload, replay, segment_files};

const BIG_SEGMENT: u64 = 1 << 20;

/// Writes `n` records into a single segment; returns the payloads and each record's offset.
async fn single_segment(dir: &Path, n: u64) -> (Vec<Bytes>, Vec<u64>) {
    let (wal, _) = Wal::open(opts(dir, BIG_SEGMENT)).unwrap();
    let payloads: Vec<Bytes> = (0..n).map(|i| payload(i, 20 + (i as usize * 13) % 90)).collect();
    let seqs = append_all(&wal, &payloads).await;
    assert_eq!(seqs, (1..=n).collect::<Vec<u64>>());
    wal.close().await;
    let mut offsets = Vec::new();
    let mut at = SEGMENT_HEADER_LEN;
    for p in &payloads {
        offsets.push(at);
        at += RECORD_HEADER_LEN + p.len() as u64;
    }
    assert_eq!(fs::metadata(dir.join(segment_file_name(1))).unwrap().len(), at);
    (payloads, offsets)
}

fn flip_bit(path: &Path, offset: u64, bit: u8) {
    let mut data = fs::read(path).unwrap();
    data[offset as usize] ^= 1 << bit;
    fs::write(path, data).unwrap();
}

fn expected(payloads: &[Bytes], seqs: impl IntoIterator<Item = u64>) -> Vec<(u64, Bytes)> {
    seqs.into_iter()
        .map(|s| (s, payloads[s as usize - 1].clone()))
        .collect()
}

#[tokio::test]
async fn truncated_tail_keeps_valid_prefix_and_later_appends_replay() {
    let dir = tempfile::tempdir().unwrap();
    let (payloads, offsets) = single_segment(dir.path(), 20).await;
    // Cut record 15 in the middle of its payload.
    let path = dir.path().join(segment_file_name(1));
    let cut = offsets[14] + RECORD_HEADER_LEN + 5;
    let full_len = fs::metadata(&path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(cut)
        .unwrap();

    let (wal, replayed, pairs) = replay(opts(dir.path(), BIG_SEGMENT));
    crate::assert_pairs(&pairs, &expected(&payloads, 1..=14));
    assert_eq!(replayed.stats.truncated_bytes, cut - offsets[14]);
    assert!(replayed.stats.truncated_bytes > 0);
    assert_eq!(replayed.stats.corrupt_records, 1);
    assert_eq!(wal.stats().truncated_bytes_at_open, cut - offsets[14]);
    assert!(cut < full_len);
    // The torn tail was cut off the file.
    assert_eq!(fs::metadata(&path).unwrap().len(), offsets[14]);

    let new: Vec<Bytes> = (100..103u64).map(|i| payload(i, 33)).collect();
    let new_seqs = append_all(&wal, &new).await;
    // The 21 torn bytes may have held up to two records (16 bytes at least each, the last one partial):
    // their numbers are not handed out again.
    assert_eq!(new_seqs, vec![17, 18, 19]);
    wal.close().await;

    let (wal, replayed, pairs) = replay(opts(dir.path(), BIG_SEGMENT));
    let mut want = expected(&payloads, 1..=14);
    want.extend(new_seqs.into_iter().zip(new));
    crate::assert_pairs(&pairs, &want);
    assert_eq!(replayed.stats.corrupt_records, 0);
    assert_eq!(replayed.stats.truncated_bytes, 0);
    wal.close().await;
}

#[tokio::test]
async fn cut_inside_a_record_header_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (payloads, offsets) = single_segment(dir.path(), 5).await;
    let path = dir.path().join(segment_file_name(1));
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(offsets[4] + 7)
        .unwrap();
    let (wal, replayed, pairs) = replay(opts(dir.path(), BIG_SEGMENT));
    crate::assert_pairs(&pairs, &expected(&payloads, 1..=4));
    assert_eq!(replayed.stats.truncated_bytes, 7);
    assert_eq!(replayed.stats.corrupt_records, 1);
    wal.close().await;
}

#[tokio::test]
async fn flipped_bit_in_middle_record_loses_exactly_that_record() {
    // Flip a bit in each field of record 15 of 30: length, checksum, sequence number, payload.
    for (field, delta, bit) in [
        ("length", 1u64, 3u8),
        ("crc", 5, 0),
        ("seq", 9, 6),
        ("payload", 16 + 4, 2),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (payloads, offsets) = single_segment(dir.path(), 30).await;
        let path = dir.path().join(segment_file_name(1));
        flip_bit(&path, offsets[14] + delta, bit);

        let (wal, replayed, pairs) = replay(opts(dir.path(), BIG_SEGMENT));
        let want = expected(&payloads, (1..=30).filter(|s| *s != 15));
        crate::assert_pairs(&pairs, &want);
        assert_eq!(replayed.stats.corrupt_records, 1, "{field}");
        assert_eq!(replayed.stats.truncated_bytes, offsets[15] - offsets[14], "{field}");
        assert_eq!(replayed.stats.records, 29);
        assert_eq!(wal.stats().corrupt_records_at_open, 1);
        // The damaged segment is still pending; appends continue after the highest sequence number.
        assert_eq!(wal.append(payload(99, 10)).await.unwrap(), 31);
        wal.close().await;
    }
}

#[tokio::test]
async fn zero_byte_and_partial_header_segments_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(opts(dir.path(), 512)).unwrap();
    let payloads: Vec<Bytes> = (0..40u64).map(|i| payload(i, 60)).collect();
    let seqs = append_all(&wal, &payloads).await;
    wal.close().await;
    let files = segment_files(dir.path());
    assert!(files.len() >= 4);

    // A zero-byte file sorted between valid segments, and a half-written header after the last one
    // (as left by a crash while rotating).
    let middle = files[1].0 + 1;
    let zero = dir.path().join(segment_file_name(middle));
    fs::write(&zero, b"").unwrap();
    let partial = dir.path().join(segment_file_name(1000));
    fs::write(&partial, b"SIGDB").unwrap();

    let (wal, replayed, pairs) = replay(opts(dir.path(), 512));
    crate::assert_pairs(
        &pairs,
        &seqs.iter().copied().zip(payloads.iter().cloned()).collect::<Vec<_>>(),
    );
    assert_eq!(replayed.stats.empty_segments, 2);
    assert_eq!(replayed.stats.corrupt_records, 0);
    assert_eq!(replayed.stats.segments, files.len() as u64);
    assert!(!zero.exists());
    // The partial segment's name still bounds sequence numbers from below: nothing is ever reused.
    assert_eq!(wal.append(payload(1, 1)).await.unwrap(), 1000);
    wal.close().await;
    assert!(fs::metadata(&partial).unwrap().len() > 5, "replaced by a fresh segment");
}

#[tokio::test]
async fn damaged_header_keeps_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let (payloads, _) = single_segment(dir.path(), 10).await;
    let path = dir.path().join(segment_file_name(1));
    flip_bit(&path, 2, 1);
    let (wal, replayed, pairs) = replay(opts(dir.path(), BIG_SEGMENT));
    crate::assert_pairs(&pairs, &expected(&payloads, 1..=10));
    assert_eq!(replayed.stats.corrupt_records, 1);
    wal.close().await;
}

#[tokio::test]
async fn unreadable_segment_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let (payloads, _) = single_segment(dir.path(), 3).await;
    let junk = dir.path().join(segment_file_name(2000));
    fs::write(&junk, vec![0xAB; 300]).unwrap();
    let (wal, replayed, pairs) = replay(opts(dir.path(), BIG_SEGMENT));
    crate::assert_pairs(&pairs, &expected(&payloads, 1..=3));
    assert_eq!(replayed.stats.truncated_bytes, 300 - SEGMENT_HEADER_LEN);
    assert!(replayed.stats.corrupt_records >= 1);
    assert!(!junk.exists());
    let mut aside = junk.into_os_string();
    aside.push(".unreadable");
    assert!(Path::new(&aside).exists());
    assert!(wal.append(payload(5, 5)).await.unwrap() > 2000);
    wal.close().await;
}

#[tokio::test]
async fn garbage_after_the_last_record_is_truncated_once() {
    let dir = tempfile::tempdir().unwrap();
    let (payloads, _) = single_segment(dir.path(), 4).await;
    let path = dir.path().join(segment_file_name(1));
    let mut data = fs::read(&path).unwrap();
    let good_len = data.len() as u64;
    data.extend_from_slice(&[0u8; 4096]);
    fs::write(&path, data).unwrap();

    let (wal, replayed, pairs) = replay(opts(dir.path(), BIG_SEGMENT));
    crate::assert_pairs(&pairs, &expected(&payloads, 1..=4));
    assert_eq!(replayed.stats.truncated_bytes, 4096);
    wal.close().await;
    assert_eq!(fs::metadata(&path).unwrap().len(), good_len);

    let (wal, replayed, pairs) = replay(opts(dir.path(), BIG_SEGMENT));
    assert_eq!(pairs.len(), 4);
    assert_eq!(replayed.stats.truncated_bytes, 0);
    wal.close().await;
}
