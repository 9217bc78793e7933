//! A search's first step: the traces with a span meeting the query's span
//! condition, read newest data first (the writers' buffers, then the files
//! by their latest span), stopping as soon as [`Collect`] allows; or, for
//! scans that read every file, one plan split across the queriers.

use arrow_array::{Array, RecordBatch};
use datafusion::dataframe::DataFrame;
use signaldb_schema::columns;

use crate::counting::ReadStats;
use crate::engine::{QueryEngine, QueryError, Snapshot, fsb, in_range, ts};

impl QueryEngine {
    /// The traces with a span in `range` that satisfies `condition` (any
    /// span when `None`), each with the latest start among those spans,
    /// newest first. Reads only the trace id, the start time and what the
    /// condition reads, streaming, newest data first (the buffers, then the
    /// files by their latest span), and keeps only trace ids; `collect`
    /// says when it may stop.
    pub async fn candidate_traces(
        &self,
        snap: &Snapshot,
        condition: Option<&signaldb_traceql::FieldExpr>,
        collect: Collect,
        stats: &ReadStats,
    ) -> Result<Vec<([u8; 16], i64)>, QueryError> {
        let range = snap.range;
        let ctx = self.context(stats)?;
        let mut found = Newest::new(match collect {
            Collect::Newest(n) => Some(n),
            Collect::First(_) | Collect::Every { .. } => None,
        });
        // The writers sent only spans in range that meet the condition (so
        // it is not evaluated again), with the columns it reads, oldest
        // first.
        for batch in snap.buffered.iter().rev() {
            if offer_batch(batch, None, collect, &mut found)? {
                return Ok(found.into_newest_first());
            }
        }
        // Every file in range is read: one plan, its files split across
        // the queriers.
        if !matches!(collect, Collect::First(_))
            && let Some(cluster) = &self.cluster
            && cluster.splits(snap.files.len())
        {
            let runtime = ctx.runtime_env();
            let ctx = cluster.session(Self::session_config(), runtime);
            let df = ctx.read_table(self.listing(&snap.files)?)?;
            split_scan(df, range, condition, collect, &mut found, stats).await?;
            return Ok(found.into_newest_first());
        }
        for file in crate::listing::newest_first(&snap.files) {
            // Once the newest `n` are known and a file (and so every older
            // one) holds nothing newer than the oldest of them, reading on
            // cannot change the answer.
            if let (Collect::Newest(n), Some(oldest)) = (collect, found.oldest())
                && found.len() >= n
                && file.max_time_ns <= oldest
            {
                break;
            }
            // A scan that stops at the first `n` reads the file a window
            // of rows at a time; one that needs every match reads it whole.
            let table = match collect {
                Collect::First(_) => self.windowed_listing(std::slice::from_ref(file)),
                Collect::Newest(_) | Collect::Every { .. } => self.listing(std::slice::from_ref(file))?,
            };
            let df = ctx.read_table(table)?;
            if self.scan_candidates(df, range, condition, collect, &mut found).await? {
                break;
            }
        }
        Ok(found.into_newest_first())
    }

    /// Offers the trace of every span of `source` in `range` that meets
    /// `condition` to `found`.
    /// True when `collect` has what it needs and reading should stop.
    async fn scan_candidates(
        &self,
        source: DataFrame,
        range: Option<(i64, i64)>,
        condition: Option<&signaldb_traceql::FieldExpr>,
        collect: Collect,
        found: &mut Newest,
    ) -> Result<bool, QueryError> {
        use futures::StreamExt;
        let (df, evaluate) = candidate_frame(source, range, condition)?;
        let mut stream = df.execute_stream().await?;
        while let Some(batch) = stream.next().await {
            if offer_batch(&batch?, evaluate, collect, found)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// The candidate scan of `source` split across the queriers, offering
/// what it finds to `found`. The bytes every querier read count into
/// `stats`: the scan's own count of the pages it read, less what this
/// querier's store already counted.
async fn split_scan(
    source: DataFrame,
    range: Option<(i64, i64)>,
    condition: Option<&signaldb_traceql::FieldExpr>,
    collect: Collect,
    found: &mut Newest,
    stats: &ReadStats,
) -> Result<(), QueryError> {
    use futures::StreamExt;
    let counted_before = stats.bytes();
    let (df, evaluate) = candidate_frame(source, range, condition)?;
    let task = df.task_ctx();
    let plan = df.create_physical_plan().await?;
    let mut stream =
        datafusion::physical_plan::execute_stream(std::sync::Arc::clone(&plan), std::sync::Arc::new(task))?;
    while let Some(batch) = stream.next().await {
        if offer_batch(&batch?, evaluate, collect, found)? {
            break;
        }
    }
    drop(stream);
    let scanned = crate::distributed::bytes_scanned(plan).await?;
    stats.add_bytes(scanned.saturating_sub(stats.bytes().saturating_sub(counted_before)));
    Ok(())
}

/// The candidate scan of `source`: its spans in `range` that may meet
/// `condition`, with the trace id, the start time and what the condition
/// still has to be evaluated on; and that rest of the condition, if any.
///
/// A condition wholly over columns of their own is the filter itself: no
/// attribute list is read. Otherwise the filter narrows the rows and the
/// condition is evaluated over the rows that pass.
pub(crate) fn candidate_frame(
    source: DataFrame,
    range: Option<(i64, i64)>,
    condition: Option<&signaldb_traceql::FieldExpr>,
) -> Result<(DataFrame, Option<&signaldb_traceql::FieldExpr>), QueryError> {
    let (pushed, columns, evaluate) = match condition.and_then(crate::lower::lower_exact) {
        Some(exact) => (Some(exact), crate::search::condition_columns(None), None),
        None => (
            condition.and_then(crate::lower::lower),
            crate::search::condition_columns(condition),
            condition,
        ),
    };
    let mut df = in_range(source, range)?;
    if let Some(pushed) = pushed {
        df = df.filter(pushed)?;
    }
    Ok((df.select_columns(&columns)?, evaluate))
}

/// Offers the trace of every span of `batch` that meets `condition` to
/// `found`; true when `collect` has what it needs.
fn offer_batch(
    batch: &RecordBatch,
    condition: Option<&signaldb_traceql::FieldExpr>,
    collect: Collect,
    found: &mut Newest,
) -> Result<bool, QueryError> {
    let mask = match condition {
        Some(c) => Some(signaldb_traceql::span_mask(c, batch).map_err(|e| QueryError::BadRequest(e.to_string()))?),
        None => None,
    };
    let ids = fsb(batch, columns::TRACE_ID)?;
    let starts = ts(batch, columns::START_TIME_UNIX_NANO)?;
    for i in 0..batch.num_rows() {
        if mask.as_ref().is_some_and(|m| !(m.is_valid(i) && m.value(i))) {
            continue;
        }
        let Ok(id) = <[u8; 16]>::try_from(ids.value(i)) else {
            continue;
        };
        found.offer(id, starts.value(i));
        if let Collect::Every { max } = collect
            && found.len() > max
        {
            return Err(QueryError::Exhausted(format!(
                "the search matches more than {max} traces before the query can be evaluated; \
                 narrow the time range or the query"
            )));
        }
    }
    // The whole batch is offered, so a small table gives the same answer
    // whichever way it is collected.
    Ok(matches!(collect, Collect::First(n) if found.len() >= n))
}

/// When a candidate scan may stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collect {
    /// Every candidate; past `max` the search is refused as too broad
    /// (the condition is not the whole query, so all must be evaluated).
    Every { max: usize },
    /// The newest `n` traces (the condition is the whole query): every
    /// file that may hold a newer match is read.
    Newest(usize),
    /// Any `n` traces, reading the newest data first and stopping once
    /// found (the condition is the whole query; Tempo's default).
    First(usize),
}

/// Trace ids with the latest start seen for each; with a bound, only the
/// newest `n` traces.
struct Newest {
    bound: Option<usize>,
    latest: std::collections::HashMap<[u8; 16], i64>,
    order: std::collections::BTreeSet<(i64, [u8; 16])>,
}

impl Newest {
    fn new(bound: Option<usize>) -> Self {
        Self {
            bound,
            latest: std::collections::HashMap::new(),
            order: std::collections::BTreeSet::new(),
        }
    }

    fn len(&self) -> usize {
        self.latest.len()
    }

    /// The start of the oldest trace kept.
    fn oldest(&self) -> Option<i64> {
        self.order.first().map(|(start, _)| *start)
    }

    fn offer(&mut self, id: [u8; 16], start: i64) {
        match self.latest.get(&id) {
            Some(&seen) if seen >= start => return,
            Some(&seen) => {
                self.order.remove(&(seen, id));
            }
            None => {
                if let Some(n) = self.bound
                    && self.latest.len() >= n
                {
                    match self.order.first() {
                        Some(&(oldest, _)) if oldest >= start => return,
                        Some(&(oldest, old_id)) => {
                            self.order.remove(&(oldest, old_id));
                            self.latest.remove(&old_id);
                        }
                        None => return,
                    }
                }
            }
        }
        self.latest.insert(id, start);
        self.order.insert((start, id));
    }

    fn into_newest_first(self) -> Vec<([u8; 16], i64)> {
        self.order.into_iter().rev().map(|(start, id)| (id, start)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Newest;

    fn id(n: u8) -> [u8; 16] {
        [n; 16]
    }

    #[test]
    fn newest_keeps_the_latest_start_of_each_trace() {
        let mut all = Newest::new(None);
        for (n, start) in [(1, 10), (2, 5), (1, 3), (3, 7), (2, 20)] {
            all.offer(id(n), start);
        }
        assert_eq!(all.len(), 3);
        assert_eq!(all.into_newest_first(), vec![(id(2), 20), (id(1), 10), (id(3), 7)]);
    }

    #[test]
    fn a_bound_keeps_only_the_newest_traces() {
        let mut two = Newest::new(Some(2));
        for (n, start) in [(1, 10), (2, 5), (3, 7), (4, 1), (2, 30), (5, 8)] {
            two.offer(id(n), start);
            assert!(two.len() <= 2);
        }
        assert_eq!(two.into_newest_first(), vec![(id(2), 30), (id(1), 10)]);
    }
}
