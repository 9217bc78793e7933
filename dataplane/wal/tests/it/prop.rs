use std::fs::OpenOptions;

use bytes::Bytes;
use proptest::prelude::*;
use signaldb_wal::{RECORD_HEADER_LEN, SEGMENT_HEADER_LEN, Wal};

use crate::{append_all, opts, payload, segment_files};

const SEGMENT_SIZE: u64 = 1024;

/// Appends records of the given sizes, cuts the last segment at `cut_fraction` of its length and
/// checks that replay returns exactly the records wholly before the cut.
fn check_truncated_replay(sizes: &[usize], cut_fraction: f64) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let payloads: Vec<Bytes> = sizes.iter().enumerate().map(|(i, &n)| payload(i as u64, n)).collect();

    let seqs = rt.block_on(async {
        let (wal, _) = Wal::open(opts(dir.path(), SEGMENT_SIZE)).unwrap();
        let seqs = append_all(&wal, &payloads).await;
        wal.close().await;
        seqs
    });
    prop_assert_eq!(&seqs, &(1..=payloads.len() as u64).collect::<Vec<_>>());

    // The last segment holds the last record (rotation happens before a record is written).
    let files = segment_files(dir.path());
    let (last_first, last_path, last_len) = files.last().unwrap().clone();
    let cut = (last_len as f64 * cut_fraction) as u64;
    OpenOptions::new()
        .write(true)
        .open(&last_path)
        .unwrap()
        .set_len(cut)
        .unwrap();

    // Records wholly before the cut survive: all of the earlier segments, a prefix of the last one.
    let mut expected = last_first as usize - 1;
    let mut end = SEGMENT_HEADER_LEN;
    for p in &payloads[last_first as usize - 1..] {
        end += RECORD_HEADER_LEN + p.len() as u64;
        if end <= cut {
            expected += 1;
        }
    }
    if cut == last_len {
        prop_assert_eq!(expected, payloads.len());
    }

    let (wal, replay) = Wal::open(opts(dir.path(), SEGMENT_SIZE)).unwrap();
    let got: Vec<(u64, Bytes)> = replay.entries.iter().map(|e| (e.seq, e.payload.clone())).collect();
    let want: Vec<(u64, Bytes)> = seqs
        .iter()
        .copied()
        .zip(payloads.iter().cloned())
        .take(expected)
        .collect();
    prop_assert_eq!(got, want);
    prop_assert_eq!(replay.stats.records as usize, expected);
    if cut == last_len {
        prop_assert_eq!(replay.stats.truncated_bytes, 0);
        prop_assert_eq!(replay.stats.corrupt_records, 0);
    }
    rt.block_on(wal.close());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn replay_after_random_truncation_is_exact_prefix(
        sizes in prop::collection::vec(0usize..1500, 1..40),
        cut_fraction in prop_oneof![Just(1.0f64), 0.0f64..1.0],
    ) {
        check_truncated_replay(&sizes, cut_fraction)?;
    }
}

/// Appends records, marks a random subset done, and checks the files on disk and the replay.
fn check_done_subset(sizes: &[usize], done_mask: &[bool]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let payloads: Vec<Bytes> = sizes.iter().enumerate().map(|(i, &n)| payload(i as u64, n)).collect();
    let options = opts(dir.path(), SEGMENT_SIZE);

    let seqs = rt.block_on(async {
        let (wal, _) = Wal::open(options.clone()).unwrap();
        let seqs = append_all(&wal, &payloads).await;
        let done: Vec<u64> = seqs
            .iter()
            .zip(done_mask.iter().cycle())
            .filter(|(_, d)| **d)
            .map(|(s, _)| *s)
            .collect();
        // In two calls, to exercise repeated marks.
        let (a, b) = done.split_at(done.len() / 2);
        wal.mark_done(b);
        wal.mark_done(a);
        wal.mark_done(a);
        wal.close().await;
        seqs
    });
    let is_done = |seq: u64| done_mask.iter().cycle().nth(seq as usize - 1).copied().unwrap_or(false);

    // Every segment file left holds a record not done (or is the empty active segment).
    let files = segment_files(dir.path());
    for (i, (first, path, len)) in files.iter().enumerate() {
        if *len == SEGMENT_HEADER_LEN {
            continue;
        }
        let end = files.get(i + 1).map_or(u64::MAX, |f| f.0);
        let live = seqs.iter().any(|&s| s >= *first && s < end && !is_done(s));
        prop_assert!(live, "{} holds only done records", path.display());
    }

    let (wal, replay) = Wal::open(options.clone()).unwrap();
    let got: Vec<u64> = replay.entries.iter().map(|e| e.seq).collect();
    let want: Vec<u64> = seqs.iter().copied().filter(|s| !is_done(*s)).collect();
    prop_assert_eq!(&got, &want);
    for e in &replay.entries {
        prop_assert_eq!(&e.payload, &payloads[e.seq as usize - 1]);
    }

    // Finishing the rest leaves a single empty segment, and nothing replays.
    wal.mark_done(&got);
    rt.block_on(wal.close());
    let files = segment_files(dir.path());
    prop_assert_eq!(files.len(), 1);
    prop_assert_eq!(files[0].2, SEGMENT_HEADER_LEN);
    let (wal, replay) = Wal::open(options).unwrap();
    prop_assert!(replay.entries.is_empty());
    rt.block_on(wal.close());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn replay_returns_exactly_the_records_not_done(
        sizes in prop::collection::vec(0usize..600, 1..40),
        done_mask in prop::collection::vec(any::<bool>(), 1..16),
    ) {
        check_done_subset(&sizes, &done_mask)?;
    }
}
