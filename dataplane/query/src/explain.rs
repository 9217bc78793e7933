//! EXPLAIN for trace by id and for TraceQL searches: what the catalog, the
//! file indexes and the Parquet reader rule out, and which predicates go
//! into the scan. Both run the real lookup or scan, with the code a query
//! runs, and report what it did.
//!
//! Files are named `file-N`, newest first, so the text does not depend on
//! where or under which name a writer stored them.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::Arc;

use datafusion::physical_plan::metrics::MetricValue;
use datafusion::physical_plan::{ExecutionPlan, displayable};
use signaldb_catalog::FileRecord;
use signaldb_config::TenantId;

use crate::byid::{FileLookup, IndexPruning};
use crate::candidates::candidate_frame;
use crate::counting::ReadStats;
use crate::engine::{QueryEngine, QueryError};

/// The DataSourceExec metrics EXPLAIN reports, in this order: the counts
/// of what pruning and the pushed-down filter ruled out, no timings.
const SCAN_METRICS: [&str; 8] = [
    "files_ranges_pruned_statistics",
    "row_groups_pruned_statistics",
    "row_groups_pruned_bloom_filter",
    "page_index_pages_pruned",
    "page_index_rows_pruned",
    "pushdown_rows_pruned",
    "pushdown_rows_matched",
    "output_rows",
];

impl QueryEngine {
    /// What a lookup of `trace_id` reads: the files the catalog's trace-id
    /// ranges rule out, then per file what the row-group statistics, the
    /// bloom filters and the page index rule out, and the rows it matched.
    pub async fn explain_trace_by_id(
        &self,
        tenant: &TenantId,
        trace_id: [u8; 16],
        range: Option<(i64, i64)>,
    ) -> Result<String, QueryError> {
        let stored = self.files(tenant, None).await?.len();
        let files = newest_first(&self.files(tenant, range).await?);
        let lookups = self.indexes.explain(&self.store, &files, &trace_id).await?;
        let mut out = String::new();
        let _ = writeln!(out, "trace by id {}", hex::encode(trace_id));
        let _ = writeln!(out, "files: {stored} stored, {} overlap the time range", files.len());
        let outside = lookups
            .iter()
            .filter(|l| matches!(l, FileLookup::OutsideCatalogRange))
            .count();
        let _ = writeln!(out, "files outside the catalog's trace-id range: {outside} (not read)");
        let mut ruled_out = IndexPruning::default();
        let mut ruled_out_files = 0;
        let mut read = Vec::new();
        for (n, lookup) in lookups.iter().enumerate() {
            let FileLookup::Index(p) = lookup else { continue };
            if p.rows_selected == 0 {
                ruled_out_files += 1;
                ruled_out.row_groups += p.row_groups;
                ruled_out.pruned_by_statistics += p.pruned_by_statistics;
                ruled_out.pruned_by_bloom_filter += p.pruned_by_bloom_filter;
            } else {
                read.push((n, *p));
            }
        }
        let _ = writeln!(
            out,
            "files ruled out by their cached index: {ruled_out_files} ({} row groups: {} by statistics, {} by bloom filter)",
            ruled_out.row_groups, ruled_out.pruned_by_statistics, ruled_out.pruned_by_bloom_filter
        );
        for (n, p) in read {
            let _ = writeln!(
                out,
                "file-{n}: row groups {}: {} pruned by statistics, {} by bloom filter; the page index selects {} of their {} rows",
                p.row_groups, p.pruned_by_statistics, p.pruned_by_bloom_filter, p.rows_selected, p.rows
            );
        }
        let rows: usize = self
            .indexes
            .read_traces(&self.store, &files, &HashSet::from([trace_id]), None)
            .await?
            .iter()
            .map(|b| b.num_rows())
            .sum();
        let _ = writeln!(out, "rows of the trace read from files: {rows}");
        Ok(out)
    }

    /// How the candidate scan of the TraceQL `query` reads the tenant's
    /// files in `range`: the span condition, what of it goes into the
    /// Parquet reader, and per file (newest first) the physical plan and
    /// what pruning and the pushed-down filter ruled out. Every file is
    /// scanned to the end, where a search may stop early.
    pub async fn explain_search(
        &self,
        tenant: &TenantId,
        range: Option<(i64, i64)>,
        query: &str,
    ) -> Result<String, QueryError> {
        let parsed = signaldb_traceql::parse(query)
            .map_err(|e| QueryError::BadRequest(format!("invalid TraceQL query: {e}")))?;
        let condition = signaldb_traceql::span_prefilter(&parsed);
        let mut out = String::new();
        let _ = writeln!(out, "search {query}");
        match &condition {
            Some(c) => {
                let _ = writeln!(out, "span condition: {c}");
            }
            None => {
                let _ = writeln!(out, "span condition: none (every span in range)");
            }
        }
        match (
            condition.as_ref().and_then(crate::lower::lower_exact),
            condition.as_ref().and_then(crate::lower::lower),
        ) {
            (Some(exact), _) => {
                let _ = writeln!(out, "pushed into the Parquet reader as the whole condition: {exact}");
            }
            (None, Some(narrowing)) => {
                let _ = writeln!(
                    out,
                    "pushed into the Parquet reader to narrow the rows: {narrowing}; the condition is evaluated on the rows that pass"
                );
            }
            (None, None) => {
                let _ = writeln!(out, "nothing pushed into the Parquet reader");
            }
        }
        let whole = signaldb_traceql::prefilter_is_exact(&parsed);
        let _ = writeln!(
            out,
            "{}",
            if whole {
                "the condition is the whole query: the scan stops once `limit` traces are found"
            } else {
                "the query needs more than the condition: every candidate trace is evaluated"
            }
        );
        let stored = self.files(tenant, None).await?.len();
        let files = newest_first(&self.files(tenant, range).await?);
        let _ = writeln!(out, "files: {stored} stored, {} overlap the time range", files.len());
        let stats = ReadStats::default();
        let ctx = self.context(&stats)?;
        for (n, file) in files.iter().enumerate() {
            let df = ctx.read_table(self.listing(std::slice::from_ref(file))?)?;
            let (df, _) = candidate_frame(df, range, condition.as_ref())?;
            let plan = df.create_physical_plan().await?;
            datafusion::physical_plan::collect(Arc::clone(&plan), ctx.task_ctx()).await?;
            let _ = writeln!(out, "file-{n}:");
            let text = displayable(plan.as_ref()).indent(true).to_string();
            for line in text.replace(&file.path, &format!("file-{n}")).lines() {
                let _ = writeln!(out, "  {line}");
            }
            let _ = writeln!(out, "  read: {}", scan_metrics(plan.as_ref()));
        }
        Ok(out)
    }
}

/// The files newest first, owned (the index and the scan take slices).
fn newest_first(files: &[FileRecord]) -> Vec<FileRecord> {
    crate::listing::newest_first(files).into_iter().cloned().collect()
}

/// The [`SCAN_METRICS`] of the plan's scans, summed.
fn scan_metrics(plan: &dyn ExecutionPlan) -> String {
    let mut values: Vec<(&str, String)> = Vec::new();
    collect_scan_metrics(plan, &mut values);
    SCAN_METRICS
        .iter()
        .filter_map(|name| values.iter().find(|(n, _)| n == name))
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn collect_scan_metrics(plan: &dyn ExecutionPlan, values: &mut Vec<(&'static str, String)>) {
    if plan.name() == "DataSourceExec"
        && let Some(metrics) = plan.metrics()
    {
        for metric in metrics.aggregate_by_name().iter() {
            let Some(name) = SCAN_METRICS.iter().find(|n| **n == metric.value().name()) else {
                continue;
            };
            let value = match metric.value() {
                MetricValue::PruningMetrics { pruning_metrics, .. } => format!(
                    "{} pruned/{} matched",
                    pruning_metrics.pruned(),
                    pruning_metrics.matched()
                ),
                other => other.as_usize().to_string(),
            };
            values.push((name, value));
        }
    }
    for child in plan.children() {
        collect_scan_metrics(child.as_ref(), values);
    }
}
