//! Any bytes as a WAL directory after a crash: the first byte splits the rest
//! into a segment file and a done log. Opening replays what is intact and
//! counts the damage; it never panics, and a WAL it opened takes appends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signaldb_wal::{Wal, WalOptions};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = usize::from(split).min(rest.len());
    let (segment, done) = rest.split_at(rest.len() - at);
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join(format!("{:020}.wal", 1)), segment).expect("write segment");
    if !done.is_empty() {
        std::fs::write(dir.path().join("done.log"), done).expect("write done log");
    }
    let Ok((wal, replay)) = Wal::open(WalOptions::new(dir.path())) else {
        return;
    };
    let mut last = 0;
    for entry in &replay.entries {
        assert!(entry.seq > last, "replayed sequence numbers increase");
        last = entry.seq;
    }
    let appended = futures::executor::block_on(async {
        let seq = wal.append(bytes::Bytes::from_static(b"after replay")).await;
        wal.close().await;
        seq
    });
    let seq = appended.expect("an opened WAL takes an append");
    assert!(seq > last, "new records follow the replayed ones");
});
