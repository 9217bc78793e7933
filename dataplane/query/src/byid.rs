//! Trace by id without planning: per-file indexes (Parquet footer, page
//! index, trace-id bloom filters) kept in memory, so a lookup tests every
//! file of the tenant in memory and reads only the pages that can hold the
//! trace.
//!
//! A lookup goes, for each file of the tenant:
//! 1. the file's trace-id range from the catalog (no I/O);
//! 2. each row group's trace-id statistics and bloom filter, from the
//!    cached [`FileIndex`] (I/O only the first time a file is seen);
//! 3. the pages of the row groups left whose trace-id range holds the id,
//!    from the page index; only those pages are fetched, and the other
//!    columns are decoded only for rows whose trace id matches.
//!
//! Files are immutable, so an index never goes stale; the cache is bounded
//! in bytes and drops the least recently used indexes first.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use arrow_array::{Array, BooleanArray, FixedSizeBinaryArray, RecordBatch};
use arrow_schema::ArrowError;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, RowFilter, RowSelection, RowSelector,
};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::bloom_filter::Sbbf;
use parquet::errors::ParquetError;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use signaldb_catalog::FileRecord;
use signaldb_schema::columns;

use crate::engine::QueryError;

/// How many files' indexes a cold lookup loads at once.
const LOAD_CONCURRENCY: usize = 16;

/// Default bound of the index cache.
pub const DEFAULT_INDEX_CACHE_BYTES: usize = 256 * 1024 * 1024;

/// Row groups that may hold a trace, each with the rows to read.
type Candidates = Vec<(usize, RowSelection)>;

/// What a lookup needs of one file, loaded once.
#[derive(Debug)]
pub(crate) struct FileIndex {
    meta: ArrowReaderMetadata,
    /// Leaf column of the trace id.
    leaf: usize,
    /// Per row group: the trace-id bloom filter, if the file has one.
    blooms: Vec<Option<Sbbf>>,
    bytes: usize,
}

impl FileIndex {
    async fn load(store: Arc<dyn ObjectStore>, path: &str, size: u64) -> Result<Self, QueryError> {
        let mut reader = StoreReader {
            store,
            path: Path::from(path),
            size,
        };
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let meta = ArrowReaderMetadata::load_async(&mut reader, options).await?;
        let leaf = trace_id_leaf(&meta, path)?;
        let row_groups = meta.metadata().num_row_groups();
        let mut builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, meta.clone());
        let mut blooms = Vec::with_capacity(row_groups);
        let mut bytes = meta.metadata().memory_size();
        for rg in 0..row_groups {
            let bloom = builder.get_row_group_column_bloom_filter(rg, leaf).await?;
            bytes += bloom.as_ref().map_or(0, |b| b.num_blocks() * 32);
            blooms.push(bloom);
        }
        Ok(Self {
            meta,
            leaf,
            blooms,
            bytes,
        })
    }

    /// Row groups that may hold one of `ids`, each with the rows of its
    /// pages that may hold one.
    fn candidates_of_all(&self, ids: &HashSet<[u8; 16]>) -> Candidates {
        let mut by_group: std::collections::BTreeMap<usize, RowSelection> = std::collections::BTreeMap::new();
        for id in ids {
            for (rg, selection) in self.candidates(id) {
                let merged = match by_group.remove(&rg) {
                    Some(seen) => seen.union(&selection),
                    None => selection,
                };
                by_group.insert(rg, merged);
            }
        }
        by_group.into_iter().collect()
    }

    /// Row groups that may hold `id`, each with the rows of its pages that
    /// may hold it.
    fn candidates(&self, id: &[u8; 16]) -> Candidates {
        (0..self.meta.metadata().num_row_groups())
            .filter_map(|rg| match self.row_group(rg, id) {
                RowGroupVerdict::Rows(selection) if selection.selects_any() => Some((rg, selection)),
                _ => None,
            })
            .collect()
    }

    /// Whether row group `rg` may hold trace `id`, and which of its rows.
    fn row_group(&self, rg: usize, id: &[u8; 16]) -> RowGroupVerdict {
        let group = self.meta.metadata().row_group(rg);
        if let Some(stats) = group.column(self.leaf).statistics()
            && let (Some(min), Some(max)) = (stats.min_bytes_opt(), stats.max_bytes_opt())
            && (id.as_slice() < min || id.as_slice() > max)
        {
            return RowGroupVerdict::OutsideStatistics;
        }
        if let Some(Some(bloom)) = self.blooms.get(rg)
            && !bloom.check(id.as_slice())
        {
            return RowGroupVerdict::NotInBloomFilter;
        }
        let rows = usize::try_from(group.num_rows()).unwrap_or(0);
        RowGroupVerdict::Rows(
            self.pages(rg, rows, id)
                .unwrap_or_else(|| RowSelection::from(vec![RowSelector::select(rows)])),
        )
    }

    /// What this file's index rules out for trace `id`.
    fn explain(&self, id: &[u8; 16]) -> IndexPruning {
        let md = self.meta.metadata();
        let mut out = IndexPruning {
            row_groups: md.num_row_groups(),
            ..IndexPruning::default()
        };
        for rg in 0..md.num_row_groups() {
            match self.row_group(rg, id) {
                RowGroupVerdict::OutsideStatistics => out.pruned_by_statistics += 1,
                RowGroupVerdict::NotInBloomFilter => out.pruned_by_bloom_filter += 1,
                RowGroupVerdict::Rows(selection) => {
                    out.rows += usize::try_from(md.row_group(rg).num_rows()).unwrap_or(0);
                    out.rows_selected += selection.row_count();
                }
            }
        }
        out
    }

    fn pages(&self, rg: usize, rows: usize, id: &[u8; 16]) -> Option<RowSelection> {
        let md = self.meta.metadata();
        let meta_index = md.column_index()?.get(rg)?.get(self.leaf)?;
        let ColumnIndexMetaData::FIXED_LEN_BYTE_ARRAY(index) = meta_index else {
            return None;
        };
        let locations = md.offset_index()?.get(rg)?.get(self.leaf)?.page_locations();
        if u64::try_from(locations.len()).ok()? != meta_index.num_pages() {
            return None;
        }
        let mut selectors = Vec::with_capacity(locations.len());
        for (page, location) in locations.iter().enumerate() {
            let first = usize::try_from(location.first_row_index).ok()?;
            let end = match locations.get(page + 1) {
                Some(next) => usize::try_from(next.first_row_index).ok()?,
                None => rows,
            };
            let len = end.checked_sub(first)?;
            let may_hold = match (index.min_value(page), index.max_value(page)) {
                (Some(min), Some(max)) => min <= id.as_slice() && id.as_slice() <= max,
                // A page of nulls holds no id; a page without statistics may.
                _ => !meta_index.is_null_page(page),
            };
            selectors.push(if may_hold {
                RowSelector::select(len)
            } else {
                RowSelector::skip(len)
            });
        }
        Some(RowSelection::from(selectors))
    }
}

/// What a file's index says of one row group for one trace id.
enum RowGroupVerdict {
    /// The id is outside the row group's min/max statistics.
    OutsideStatistics,
    /// The row group's bloom filter does not hold the id.
    NotInBloomFilter,
    /// The rows of the pages whose min/max hold the id (all rows without a
    /// page index).
    Rows(RowSelection),
}

/// What a file's index ruled out for one trace id (for EXPLAIN).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexPruning {
    pub(crate) row_groups: usize,
    pub(crate) pruned_by_statistics: usize,
    pub(crate) pruned_by_bloom_filter: usize,
    /// Rows of the row groups kept, and those the page index selects.
    pub(crate) rows: usize,
    pub(crate) rows_selected: usize,
}

/// What a lookup of one trace id does with one file (for EXPLAIN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileLookup {
    /// The catalog's trace-id range of the file excludes the id: no I/O.
    OutsideCatalogRange,
    /// The file's cached index was consulted.
    Index(IndexPruning),
}

fn reader(store: Arc<dyn ObjectStore>, file: &FileRecord) -> StoreReader {
    StoreReader {
        store,
        path: Path::from(file.path.as_str()),
        size: size_of(file),
    }
}

/// The size of `file` in bytes, as the catalog records it.
pub(crate) fn size_of(file: &FileRecord) -> u64 {
    u64::try_from(file.size_bytes).unwrap_or(0)
}

/// Reads one Parquet file of known size from the object store.
pub struct StoreReader {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) path: Path,
    pub(crate) size: u64,
}

impl std::fmt::Debug for StoreReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreReader")
            .field("path", &self.path)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl StoreReader {
    /// A reader of the `size` bytes at `path` in `store`.
    pub fn new(store: Arc<dyn ObjectStore>, path: Path, size: u64) -> Self {
        Self { store, path, size }
    }
}

fn external(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for StoreReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        Box::pin(async move { self.store.get_range(&self.path, range).await.map_err(external) })
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        Box::pin(async move { self.store.get_ranges(&self.path, &ranges).await.map_err(external) })
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        Box::pin(async move {
            let policy = options.map_or(PageIndexPolicy::Skip, ArrowReaderOptions::offset_index_policy);
            let size = self.size;
            let meta = ParquetMetaDataReader::new()
                .with_page_index_policy(policy)
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(meta))
        })
    }
}

fn trace_id_leaf(meta: &ArrowReaderMetadata, path: &str) -> Result<usize, QueryError> {
    meta.metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.path().parts() == [columns::TRACE_ID])
        .ok_or_else(|| QueryError::BadRequest(format!("file {path} has no {} column", columns::TRACE_ID)))
}

/// Loaded [`FileIndex`]es by path, bounded in bytes; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct FileIndexes {
    limit: usize,
    inner: Arc<Mutex<Lru>>,
}

#[derive(Debug, Default)]
struct Lru {
    entries: HashMap<String, (Arc<FileIndex>, u64)>,
    bytes: usize,
    tick: u64,
}

impl FileIndexes {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            inner: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Bytes the cached indexes hold.
    pub(crate) fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn get(&self, path: &str) -> Option<Arc<FileIndex>> {
        let mut lru = self.lock();
        lru.tick += 1;
        let tick = lru.tick;
        let (index, used) = lru.entries.get_mut(path)?;
        *used = tick;
        Some(Arc::clone(index))
    }

    fn insert(&self, path: &str, index: Arc<FileIndex>) {
        if index.bytes > self.limit {
            return;
        }
        let mut lru = self.lock();
        lru.tick += 1;
        let tick = lru.tick;
        if let Some((old, _)) = lru.entries.insert(path.to_owned(), (Arc::clone(&index), tick)) {
            lru.bytes -= old.bytes;
        }
        lru.bytes += index.bytes;
        while lru.bytes > self.limit {
            let Some(oldest) = lru
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(p, _)| p.clone())
            else {
                break;
            };
            if let Some((gone, _)) = lru.entries.remove(&oldest) {
                lru.bytes -= gone.bytes;
            }
        }
    }

    /// Loads the indexes of `files` not cached yet, newest first, while
    /// the cache has room; a file that cannot be read is skipped (a lookup
    /// that needs it reports the error).
    pub(crate) async fn warm(&self, store: &Arc<dyn ObjectStore>, files: &[FileRecord]) {
        for file in crate::listing::newest_first(files) {
            if self.bytes() >= self.limit {
                return;
            }
            if self.get(&file.path).is_none()
                && let Err(e) = self.index(store, file).await
            {
                tracing::debug!(path = %file.path, error = %e, "cannot load a file index ahead of queries");
            }
        }
    }

    /// The index of `file`, loaded on first use.
    async fn index(&self, store: &Arc<dyn ObjectStore>, file: &FileRecord) -> Result<Arc<FileIndex>, QueryError> {
        self.index_at(store, &file.path, size_of(file)).await
    }

    /// The index of the file at `path`, of `size` bytes, loaded on first use.
    async fn index_at(
        &self,
        store: &Arc<dyn ObjectStore>,
        path: &str,
        size: u64,
    ) -> Result<Arc<FileIndex>, QueryError> {
        if let Some(index) = self.get(path) {
            return Ok(index);
        }
        let index = Arc::new(FileIndex::load(Arc::clone(store), path, size).await?);
        self.insert(path, Arc::clone(&index));
        Ok(index)
    }

    /// The footer and page index of the file at `path`, of `size` bytes,
    /// from its cached index (loaded on first use): what a DataFusion scan
    /// of the file reads before its pages.
    pub(crate) async fn metadata(
        &self,
        store: &Arc<dyn ObjectStore>,
        path: &str,
        size: u64,
    ) -> Result<Arc<ParquetMetaData>, QueryError> {
        Ok(Arc::clone(self.index_at(store, path, size).await?.meta.metadata()))
    }

    /// The spans of the traces `ids` stored in `files`, as read from them
    /// (`projection`: only these columns).
    pub(crate) async fn read_traces(
        &self,
        store: &Arc<dyn ObjectStore>,
        files: &[FileRecord],
        ids: &HashSet<[u8; 16]>,
        projection: Option<&[&str]>,
    ) -> Result<Vec<RecordBatch>, QueryError> {
        let in_range: Vec<FileRecord> = files.iter().filter(|f| may_hold_any(f, ids)).cloned().collect();
        let ids = Arc::new(ids.clone());
        let looked_up: Vec<(FileRecord, Arc<FileIndex>, Candidates)> = futures::stream::iter(in_range)
            .map(|file| {
                let (this, store, ids) = (self.clone(), Arc::clone(store), Arc::clone(&ids));
                async move {
                    let index = this.index(&store, &file).await?;
                    let candidates = index.candidates_of_all(&ids);
                    Ok::<_, QueryError>((file, index, candidates))
                }
            })
            .buffered(LOAD_CONCURRENCY)
            .try_collect()
            .await?;
        // The files' pages are read concurrently (a search's candidates are
        // spread over many files; each read waits on the store twice), and
        // their rows kept in file order.
        let per_file: Vec<Vec<RecordBatch>> = futures::stream::iter(
            looked_up
                .into_iter()
                .filter(|(_, _, candidates)| !candidates.is_empty()),
        )
        .map(|(file, index, candidates)| {
            let ids = Arc::clone(&ids);
            async move { read_rows(store, &file, &index, candidates, ids, projection).await }
        })
        .buffered(LOAD_CONCURRENCY)
        .try_collect()
        .await?;
        Ok(per_file.into_iter().flatten().collect())
    }

    /// What a lookup of trace `id` does with each of `files`, in order.
    pub(crate) async fn explain(
        &self,
        store: &Arc<dyn ObjectStore>,
        files: &[FileRecord],
        id: &[u8; 16],
    ) -> Result<Vec<FileLookup>, QueryError> {
        let ids = HashSet::from([*id]);
        let mut out = Vec::with_capacity(files.len());
        for file in files {
            out.push(if may_hold_any(file, &ids) {
                FileLookup::Index(self.index(store, file).await?.explain(id))
            } else {
                FileLookup::OutsideCatalogRange
            });
        }
        Ok(out)
    }
}

/// Whether the catalog's trace-id range of `file` (when known) holds one of `ids`.
fn may_hold_any(file: &FileRecord, ids: &HashSet<[u8; 16]>) -> bool {
    file.trace_ids
        .is_none_or(|(min, max)| ids.iter().any(|id| min <= *id && *id <= max))
}

/// The rows of `file` in `candidates` whose trace id is one of `ids`.
async fn read_rows(
    store: &Arc<dyn ObjectStore>,
    file: &FileRecord,
    index: &FileIndex,
    candidates: Candidates,
    ids: Arc<HashSet<[u8; 16]>>,
    projection: Option<&[&str]>,
) -> Result<Vec<RecordBatch>, QueryError> {
    let row_groups: Vec<usize> = candidates.iter().map(|(rg, _)| *rg).collect();
    let mut selectors: Vec<RowSelector> = Vec::new();
    for (_, selection) in candidates {
        selectors.extend(Vec::<RowSelector>::from(selection));
    }
    let descr = index.meta.metadata().file_metadata().schema_descr_ptr();
    let predicate = ArrowPredicateFn::new(
        ProjectionMask::leaves(&descr, [index.leaf]),
        move |batch: RecordBatch| {
            let trace = batch
                .column(0)
                .as_any()
                .downcast_ref::<FixedSizeBinaryArray>()
                .ok_or_else(|| ArrowError::SchemaError(format!("{} is not fixed-size binary", columns::TRACE_ID)))?;
            Ok((0..trace.len())
                .map(|i| {
                    Some(trace.is_valid(i) && <[u8; 16]>::try_from(trace.value(i)).is_ok_and(|id| ids.contains(&id)))
                })
                .collect::<BooleanArray>())
        },
    );
    let mut builder =
        ParquetRecordBatchStreamBuilder::new_with_metadata(reader(Arc::clone(store), file), index.meta.clone())
            .with_row_groups(row_groups)
            .with_row_selection(RowSelection::from(selectors))
            .with_row_filter(RowFilter::new(vec![Box::new(predicate)]));
    if let Some(columns) = projection {
        let fields = index.meta.schema().fields();
        // A column the file predates is left out (and read as nulls).
        let roots: Vec<usize> = columns
            .iter()
            .filter_map(|c| fields.iter().position(|f| f.name() == c))
            .collect();
        builder = builder.with_projection(ProjectionMask::roots(&descr, roots));
    }
    Ok(builder.build()?.try_collect().await?)
}
