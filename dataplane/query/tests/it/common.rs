//! Stored data for the tests: spans made as OTLP, converted and encoded by
//! the writer's code, put in a local object store and registered in a
//! SQLite catalog; and an object store that counts reads per file.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use signaldb_catalog::{BatchId, Catalog, FileRecord, SqlCatalog};
use signaldb_config::{Signal, TenantId};

pub(crate) const SPANS_PER_TRACE: usize = 5;
/// 2026-01-01T00:00:00Z in nanoseconds.
const T0: u64 = 1_767_225_600_000_000_000;

/// Reads per file path, and bytes read.
#[derive(Debug, Default)]
pub(crate) struct Reads {
    pub(crate) by_path: BTreeMap<String, usize>,
    pub(crate) bytes: u64,
    /// `HEAD` requests.
    pub(crate) heads: usize,
    /// Reads reaching a file's last byte: its footer.
    pub(crate) footer_reads: usize,
}

/// A local store that records every read.
#[derive(Debug)]
pub(crate) struct CountingStore {
    inner: LocalFileSystem,
    pub(crate) reads: Mutex<Reads>,
}

impl CountingStore {
    fn record(&self, path: &Path, ranges: &[Range<u64>]) {
        let size = std::fs::metadata(self.inner.path_to_filesystem(path).unwrap())
            .unwrap()
            .len();
        let mut reads = self.reads.lock().unwrap();
        *reads.by_path.entry(path.to_string()).or_default() += 1;
        reads.bytes += ranges.iter().map(|r| r.end - r.start).sum::<u64>();
        reads.footer_reads += ranges.iter().filter(|r| r.end == size).count();
    }

    /// `HEAD` requests and footer reads since the last call, and forgets them.
    pub(crate) fn take_metadata_reads(&self) -> (usize, usize) {
        let mut reads = self.reads.lock().unwrap();
        (
            std::mem::take(&mut reads.heads),
            std::mem::take(&mut reads.footer_reads),
        )
    }

    /// The files read since the last call, and forgets them.
    pub(crate) fn take_files_read(&self) -> Vec<String> {
        let mut reads = self.reads.lock().unwrap();
        reads.bytes = 0;
        std::mem::take(&mut reads.by_path).into_keys().collect()
    }
}

impl std::fmt::Display for CountingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for CountingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        if options.head {
            self.reads.lock().unwrap().heads += 1;
            return self.inner.get_opts(location, options).await;
        }
        let result = self.inner.get_opts(location, options).await?;
        self.record(location, std::slice::from_ref(&result.range));
        Ok(result)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        let out = self.inner.get_ranges(location, ranges).await?;
        self.record(location, ranges);
        Ok(out)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

/// A catalog, a counting store over a temporary directory, and a tenant.
pub(crate) struct Stored {
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) catalog: Arc<SqlCatalog>,
    pub(crate) store: Arc<CountingStore>,
    pub(crate) tenant: TenantId,
    files: usize,
}

impl Stored {
    pub(crate) async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Arc::new(signaldb_catalog::connect("sqlite::memory:", 1).await.unwrap());
        let store = Arc::new(CountingStore {
            inner: LocalFileSystem::new_with_prefix(dir.path()).unwrap(),
            reads: Mutex::default(),
        });
        Self {
            _dir: dir,
            catalog,
            store,
            tenant: TenantId::new("acme").unwrap(),
            files: 0,
        }
    }

    /// An engine over the stored files, with nothing buffered.
    pub(crate) fn engine(&self) -> signaldb_query::QueryEngine {
        signaldb_query::QueryEngine::new(
            Arc::clone(&self.catalog) as _,
            Arc::clone(&self.store) as _,
            Arc::new(signaldb_query::NoBuffers),
        )
        .unwrap()
    }

    /// Another counting store over the same files, as a second querier
    /// sees them.
    pub(crate) fn counting_view(&self) -> CountingStore {
        CountingStore {
            inner: LocalFileSystem::new_with_prefix(self._dir.path()).unwrap(),
            reads: Mutex::default(),
        }
    }

    /// Stores one file holding `traces` (SPANS_PER_TRACE spans each, span
    /// `i` with span id `[i+1; 8]`, trace `t` with `attr.str5` =
    /// `value-{t % 100}`, later traces starting later, every file after the
    /// one before) the way the writer does, and registers it.
    pub(crate) async fn add_file(&mut self, traces: &[[u8; 16]]) -> FileRecord {
        // Each file one second after the one before.
        let base = T0 + self.files as u64 * 1_000_000_000;
        let batch = signaldb_schema::traces::otlp_to_arrow(&[resource_spans(traces, base)]).unwrap();
        let file = signaldb_schema::traces::parquet::encode_parquet(&[batch])
            .unwrap()
            .unwrap();
        self.files += 1;
        let path = format!("{}/traces/file-{:04}.parquet", self.tenant, self.files);
        let size = file.bytes.len();
        self.store
            .put(&Path::from(path.as_str()), PutPayload::from(file.bytes))
            .await
            .unwrap();
        let record = FileRecord {
            path,
            tenant: self.tenant.clone(),
            signal: Signal::Traces,
            min_time_ns: file.summary.min_time_ns,
            max_time_ns: file.summary.max_time_ns,
            rows: file.summary.rows as i64,
            size_bytes: size as i64,
            trace_ids: file.summary.trace_ids,
            writer_id: "test-writer".into(),
            created_at_ms: 1,
        };
        let batch = BatchId {
            source: "test".into(),
            seq: self.files as u64,
            part: 0,
        };
        self.catalog.register_file(&record, &[batch]).await.unwrap();
        record
    }
}

/// The spans of `traces` as the writer buffers them, starting at `base`.
pub(crate) fn spans_batch(traces: &[[u8; 16]], base: u64) -> arrow_array::RecordBatch {
    signaldb_schema::traces::otlp_to_arrow(&[resource_spans(traces, base)]).unwrap()
}

fn resource_spans(traces: &[[u8; 16]], base: u64) -> ResourceSpans {
    let str_attr = |k: &str, v: String| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v)),
        }),
        ..Default::default()
    };
    let mut spans = Vec::with_capacity(traces.len() * SPANS_PER_TRACE);
    for (t, id) in traces.iter().enumerate() {
        for s in 0..SPANS_PER_TRACE {
            let start = base + (t as u64) * 100_000 + (s as u64) * 1_000;
            spans.push(Span {
                trace_id: id.to_vec(),
                span_id: vec![s as u8 + 1; 8],
                name: format!("op-{s}"),
                start_time_unix_nano: start,
                end_time_unix_nano: start + 500,
                attributes: vec![
                    str_attr("attr.str5", format!("value-{}", t % 100)),
                    // 500 on the first span of every 20th trace.
                    KeyValue {
                        key: "http.response.status_code".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::IntValue(if t % 20 == 0 && s == 0 {
                                500
                            } else {
                                200
                            })),
                        }),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            });
        }
    }
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![str_attr("service.name", "svc-00".into())],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Deterministic, well-spread trace ids.
pub(crate) fn random_ids(seed: u64, n: usize) -> Vec<[u8; 16]> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            let mut id = [0u8; 16];
            for chunk in id.chunks_mut(8) {
                // xorshift64*
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                chunk.copy_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
            }
            id
        })
        .collect()
}
