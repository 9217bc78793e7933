//! The span files of one query as a DataFusion table, read through the
//! querier's file indexes: no listing and no footer read per query.
//!
//! DataFusion's `ListingTable` asks the store for each file's size (a
//! `HEAD` per file per query) and reads each footer and page index through
//! a cache of its own. The catalog already knows every file's size, and the
//! querier already keeps every file's footer and page index for trace by
//! id ([`FileIndexes`], bounded in bytes). This table hands DataFusion's
//! Parquet scan both, so a warm scan reads only the pages it decodes.

use std::ops::Range;
use std::sync::Arc;

use arrow_schema::SchemaRef;
use async_trait::async_trait;
use bytes::Bytes;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfigBuilder, ParquetFileMetrics, ParquetFileReaderFactory, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::future::BoxFuture;
use object_store::ObjectStore;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::ParquetError;
use parquet::file::metadata::ParquetMetaData;
use signaldb_catalog::FileRecord;

use crate::byid::{FileIndexes, StoreReader, size_of};
use crate::engine::STORE_URL;

/// Span files as a table, scanned with the querier's cached indexes.
#[derive(Debug)]
pub(crate) struct SpanFiles {
    files: Vec<FileRecord>,
    indexes: FileIndexes,
    schema: SchemaRef,
}

impl SpanFiles {
    pub(crate) fn new(files: &[FileRecord], indexes: FileIndexes) -> Self {
        Self {
            files: files.to_vec(),
            indexes,
            schema: signaldb_schema::traces::schema(),
        }
    }
}

#[async_trait]
impl TableProvider for SpanFiles {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Filters prune row groups and pages and filter rows in the Parquet
    /// reader; DataFusion still applies them above the scan.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        if self.files.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => Arc::clone(&self.schema),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        let url = ObjectStoreUrl::parse(STORE_URL)?;
        // The session's store: it counts this query's reads.
        let store = state.runtime_env().object_store(&url)?;
        let source = ParquetSource::new(Arc::clone(&self.schema))
            .with_table_parquet_options(state.table_options().parquet.clone())
            .with_parquet_file_reader_factory(Arc::new(IndexedReaders {
                store,
                indexes: self.indexes.clone(),
            }));
        let config = FileScanConfigBuilder::new(url, Arc::new(source))
            .with_file_groups(file_groups(
                &self.files,
                state.config_options().execution.target_partitions,
            ))
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

/// `files` in at most `partitions` groups, each file whole, in the order
/// given (the scan's partitions read their groups in parallel).
fn file_groups(files: &[FileRecord], partitions: usize) -> Vec<FileGroup> {
    let per_group = files.len().div_ceil(partitions.max(1)).max(1);
    files
        .chunks(per_group)
        .map(|chunk| {
            FileGroup::new(
                chunk
                    .iter()
                    .map(|f| PartitionedFile::new(f.path.clone(), size_of(f)))
                    .collect(),
            )
        })
        .collect()
}

/// Readers whose footer and page index come from the querier's indexes.
#[derive(Debug)]
struct IndexedReaders {
    store: Arc<dyn ObjectStore>,
    indexes: FileIndexes,
}

impl ParquetFileReaderFactory for IndexedReaders {
    fn create_reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        _metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> datafusion::error::Result<Box<dyn AsyncFileReader + Send>> {
        let location = file.object_meta.location;
        Ok(Box::new(IndexedReader {
            metrics: ParquetFileMetrics::new(partition_index, location.as_ref(), metrics),
            pages: StoreReader {
                store: Arc::clone(&self.store),
                path: location,
                size: file.object_meta.size,
            },
            indexes: self.indexes.clone(),
        }))
    }
}

/// One file's pages from the store, its metadata from the indexes.
struct IndexedReader {
    pages: StoreReader,
    indexes: FileIndexes,
    /// The scan's metrics of this file (`bytes_scanned`, as DataFusion's
    /// own readers count it).
    metrics: ParquetFileMetrics,
}

impl IndexedReader {
    fn count(&self, bytes: u64) {
        self.metrics
            .bytes_scanned
            .add(usize::try_from(bytes).unwrap_or(usize::MAX));
    }
}

impl AsyncFileReader for IndexedReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.count(range.end - range.start);
        self.pages.get_bytes(range)
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        self.count(ranges.iter().map(|r| r.end - r.start).sum());
        self.pages.get_byte_ranges(ranges)
    }

    /// The cached footer, with its page index (the index loads both).
    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        Box::pin(async move {
            self.indexes
                .metadata(&self.pages.store, self.pages.path.as_ref(), self.pages.size)
                .await
                .map_err(|e| ParquetError::External(Box::new(e)))
        })
    }
}
