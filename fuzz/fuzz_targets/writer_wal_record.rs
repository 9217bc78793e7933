//! Any bytes as one record of a writer's WAL (a `WriterWalRecord`: the
//! batch's `PutMetadata` and its Arrow IPC stream), through
//! `signaldb::writer::decode_record`, the function `Writer::restore` runs on
//! every replayed entry, and then what the writer does with what it decoded.
//!
//! Must hold: decoding refuses or decodes, never panics; the buffer's
//! bookkeeping (bytes held, trace ids) copes with any decoded batch; and a
//! batch of the span schema, the only kind `Writer::put` logs, is logged
//! again to a record that decodes to the same batch, converts back to OTLP
//! or says why not, and flushes to Parquet or says why not.
#![no_main]

use arrow_array::{Array, FixedSizeBinaryArray, RecordBatch};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use signaldb::proto::{PutMetadata, WriterWalRecord};
use signaldb::writer::decode_record;

/// The IPC stream `writer::encode_ipc` writes: the span schema, then each batch.
fn encode_ipc(batches: &[RecordBatch]) -> Vec<u8> {
    let schema = signaldb_schema::traces::schema();
    let mut w = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &schema).expect("an IPC writer");
    for b in batches {
        w.write(b).expect("a span batch encodes");
    }
    w.finish().expect("the stream ends");
    w.into_inner().expect("the encoded stream")
}

fn record(meta: &PutMetadata, batches: &[RecordBatch]) -> Vec<u8> {
    WriterWalRecord {
        meta: Some(meta.clone()),
        ipc: encode_ipc(batches).into(),
    }
    .encode_to_vec()
}

type Hook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>;

/// Puts libFuzzer's panic hook back, and names a panic that escaped.
struct FuzzerHook(Option<Hook>);

impl Drop for FuzzerHook {
    fn drop(&mut self) {
        if let Some(hook) = self.0.take() {
            std::panic::set_hook(hook);
        }
        if std::thread::panicking() {
            let message = LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default();
            eprintln!("a panic escaped decode_record: {message}");
        }
    }
}

thread_local! {
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// `decode_record` catches the panics of the Arrow IPC decoder on some
/// malformed streams and refuses those records. libFuzzer's panic hook
/// would abort on such a caught panic, so it is set aside meanwhile; a
/// panic escaping `decode_record` still unwinds to libFuzzer, which aborts.
fn decode_quietly(data: &[u8]) -> Result<(PutMetadata, Vec<RecordBatch>), String> {
    let _restore = FuzzerHook(Some(std::panic::take_hook()));
    std::panic::set_hook(Box::new(|info| {
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(info.to_string()));
    }));
    decode_record(data)
}

fuzz_target!(|data: &[u8]| {
    let Ok((meta, batches)) = decode_quietly(data) else {
        return;
    };
    // Writer::restore: the tenant, then Writer::insert's bookkeeping.
    let _ = signaldb_config::TenantId::new(meta.tenant.clone());
    for b in &batches {
        let _ = signaldb_schema::data_bytes(b);
        if let Some(ids) = b
            .column_by_name(signaldb_schema::columns::TRACE_ID)
            .and_then(|c| c.as_any().downcast_ref::<FixedSizeBinaryArray>())
        {
            let mut traces: Vec<[u8; 16]> = ids.iter().flatten().filter_map(|id| id.try_into().ok()).collect();
            traces.sort_unstable();
            traces.dedup();
        }
    }
    let spans = signaldb_schema::traces::schema();
    if batches.is_empty() || batches.iter().any(|b| b.schema().fields() != spans.fields()) {
        return;
    }
    // What Writer::put would have logged for these batches decodes to them.
    let logged = record(&meta, &batches);
    let (meta_again, again) = decode_record(&logged).expect("a record the writer wrote decodes");
    assert_eq!(meta_again, meta, "the metadata survives the WAL");
    assert_eq!(again.len(), batches.len(), "every batch survives the WAL");
    for (a, b) in again.iter().zip(&batches) {
        assert_eq!(a.num_rows(), b.num_rows(), "every row survives the WAL");
    }
    assert_eq!(
        record(&meta, &again),
        logged,
        "logging a replayed batch again writes the same record"
    );
    // Queries read buffered batches back as OTLP; the flush sorts and writes Parquet.
    for b in &batches {
        if let Ok(otlp) = signaldb_schema::traces::arrow_to_otlp(b) {
            assert_eq!(
                signaldb_schema::traces::span_count(&otlp),
                b.num_rows(),
                "one span per row"
            );
        }
        let _ = signaldb_schema::traces::parquet::sort_spans(b);
    }
    let _ = signaldb_schema::traces::parquet::encode_parquet(&batches);
});
