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
use datafusion::datasource::physical_plan::parquet::{ParquetAccessPlan, RowGroupAccess};
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
use parquet::arrow::arrow_reader::{ArrowReaderOptions, RowSelection, RowSelector};
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
    /// Read each file in windows of rows, one after the other (see
    /// [`SpanFiles::windowed`]).
    windowed: bool,
}

impl SpanFiles {
    pub(crate) fn new(files: &[FileRecord], indexes: FileIndexes) -> Self {
        Self {
            files: files.to_vec(),
            indexes,
            schema: signaldb_schema::traces::schema(),
            windowed: false,
        }
    }

    /// The same files, each read in windows of rows that grow from
    /// [`FIRST_WINDOW_ROWS`] to a row group, one window after the other.
    ///
    /// The Parquet reader evaluates a pushed-down filter over a whole row
    /// group (64K rows) before it yields the first row that passes, so a
    /// scan that stops after a few matches still decoded the filter's
    /// columns of the whole row group. Windows bound that to the rows the
    /// scan gets to: a search that stops at `limit` decodes a window or
    /// two.
    pub(crate) fn windowed(mut self) -> Self {
        self.windowed = true;
        self
    }

    /// One group of every file's windows, in order.
    async fn windows(&self, store: &Arc<dyn ObjectStore>) -> datafusion::error::Result<FileGroup> {
        let mut windows = Vec::new();
        for file in &self.files {
            let metadata = self
                .indexes
                .metadata(store, &file.path, size_of(file))
                .await
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
            let groups: Vec<usize> = metadata
                .row_groups()
                .iter()
                .map(|g| usize::try_from(g.num_rows()).unwrap_or(0))
                .collect();
            let total: usize = groups.iter().sum();
            let (mut start, mut rows) = (0, FIRST_WINDOW_ROWS);
            while start < total {
                let end = (start + rows).min(total);
                windows.push(
                    PartitionedFile::new(file.path.clone(), size_of(file))
                        .with_extension(window_plan(&groups, start..end)),
                );
                start = end;
                rows = (rows * 2).min(signaldb_schema::traces::parquet::ROW_GROUP_ROWS);
            }
        }
        Ok(FileGroup::new(windows))
    }
}

/// Rows in a file's first window: four data pages.
const FIRST_WINDOW_ROWS: usize = 4 * signaldb_schema::traces::parquet::PAGE_ROWS;

/// The access plan that reads only the rows `window` of a file whose row
/// groups hold `groups` rows each.
fn window_plan(groups: &[usize], window: Range<usize>) -> ParquetAccessPlan {
    let mut first = 0;
    ParquetAccessPlan::new(
        groups
            .iter()
            .map(|&rows| {
                let group = first..first + rows;
                first = group.end;
                let (from, to) = (window.start.max(group.start), window.end.min(group.end));
                if from >= to {
                    RowGroupAccess::Skip
                } else if from == group.start && to == group.end {
                    RowGroupAccess::Scan
                } else {
                    let selectors = [
                        RowSelector::skip(from - group.start),
                        RowSelector::select(to - from),
                        RowSelector::skip(group.end - to),
                    ];
                    RowGroupAccess::Selection(RowSelection::from(
                        selectors.into_iter().filter(|s| s.row_count > 0).collect::<Vec<_>>(),
                    ))
                }
            })
            .collect(),
    )
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
        let groups = if self.windowed {
            vec![self.windows(&store).await?]
        } else {
            file_groups(&self.files, state.config_options().execution.target_partitions)
        };
        let source = ParquetSource::new(Arc::clone(&self.schema))
            .with_table_parquet_options(state.table_options().parquet.clone())
            .with_parquet_file_reader_factory(Arc::new(IndexedReaders {
                store,
                indexes: self.indexes.clone(),
            }));
        let config = FileScanConfigBuilder::new(url, Arc::new(source))
            .with_file_groups(groups)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(access: &RowGroupAccess) -> (usize, usize) {
        match access {
            RowGroupAccess::Skip => (0, 0),
            RowGroupAccess::Scan => (usize::MAX, 0),
            RowGroupAccess::Selection(s) => (s.row_count(), s.skipped_row_count()),
        }
    }

    #[test]
    fn a_window_reads_its_rows_of_each_row_group() {
        let groups = [100, 100, 50];
        let plan = window_plan(&groups, 0..100);
        assert_eq!(
            plan.inner().iter().map(rows).collect::<Vec<_>>(),
            [(usize::MAX, 0), (0, 0), (0, 0)]
        );
        let plan = window_plan(&groups, 40..230);
        assert_eq!(
            plan.inner().iter().map(rows).collect::<Vec<_>>(),
            [(60, 40), (usize::MAX, 0), (30, 20)]
        );
        let plan = window_plan(&groups, 210..220);
        assert_eq!(
            plan.inner().iter().map(rows).collect::<Vec<_>>(),
            [(0, 0), (0, 0), (10, 40)]
        );
    }
}
