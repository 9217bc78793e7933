//! [`SqlCatalog`]: the catalog on SQLite or PostgreSQL through sqlx's Any
//! driver, with SQL that both accept.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::{Any, Transaction};
use tracing::{debug, warn};

use crate::url::{self, Backend};
use crate::{
    ApiKeyRecord, BatchId, Capability, Catalog, Error, FileRecord, Result, Role, ServiceRecord, Signal, TenantId,
};

/// How long a SQLite connection waits for another connection's (or
/// process's) write lock before failing.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 10_000;

/// How long an operation waits for a pooled connection. When the database
/// refuses connections (e.g. PostgreSQL still starting), connecting is
/// retried for this long.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(15);

/// Batch ids per statement in `batches_seen` (3 parameters each) and
/// `register_file` (5 each): far below SQLite's and PostgreSQL's limits.
const SEEN_CHUNK: usize = 300;
const INSERT_CHUNK: usize = 200;

/// The catalog on SQLite or PostgreSQL. Cheap to clone: clones share the
/// connection pool.
#[derive(Debug, Clone)]
pub struct SqlCatalog {
    pool: AnyPool,
    backend: Backend,
}

impl SqlCatalog {
    pub(crate) async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let url_redacted = url::redact(url);
        let Some(target) = url::target(url) else {
            return Err(Error::UnsupportedUrl { url_redacted });
        };
        let backend = target.backend;

        let mut options = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT);
        if target.in_memory {
            // Every connection to `sqlite::memory:` opens a database of its
            // own: keep exactly one, forever.
            options = options
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        if backend == Backend::Sqlite {
            options = options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    configure_sqlite(conn).await?;
                    Ok(())
                })
            });
        }
        let pool = options.connect(&target.url).await.map_err(|source| Error::Connect {
            url_redacted: url_redacted.clone(),
            source,
        })?;
        crate::migrate::run(&pool, backend).await?;
        debug!(url = %url_redacted, backend = backend.as_str(), "catalog open");
        Ok(Self { pool, backend })
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        self.backend.as_str()
    }

    /// Closes the pool's connections; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Sets up a new SQLite connection so that several connections and processes
/// can share the file: a busy timeout, and write-ahead logging (readers never
/// block the writer).
async fn configure_sqlite(conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}"))
        .persistent(false)
        .execute(&mut *conn)
        .await?;
    // Switching to WAL needs a moment of exclusive access, which the busy
    // timeout does not wait for: retry a little, then carry on with the
    // rollback journal (correct, only slower) rather than fail.
    for attempt in 1..=20u32 {
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .persistent(false)
            .fetch_one(&mut *conn)
            .await?;
        if mode.eq_ignore_ascii_case("wal") || mode.eq_ignore_ascii_case("memory") {
            break;
        }
        match sqlx::query_scalar::<_, String>("PRAGMA journal_mode = WAL")
            .persistent(false)
            .fetch_one(&mut *conn)
            .await
        {
            Ok(m) if m.eq_ignore_ascii_case("wal") => break,
            Ok(m) => debug!(mode = %m, attempt, "SQLite kept its journal mode"),
            Err(e) => debug!(error = %e, attempt, "switching SQLite to WAL failed"),
        }
        if attempt == 20 {
            warn!("could not switch the SQLite catalog to WAL journaling; continuing without");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
    }
    // FULL: a committed registration survives a power cut. Writers trim
    // their WAL once a file is registered, so a registration lost after its
    // commit would lose acknowledged spans (NORMAL may lose the last commits).
    sqlx::query("PRAGMA synchronous = FULL")
        .persistent(false)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

fn query_err(action: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |source| Error::Query { action, source }
}

fn seq_to_db(b: &BatchId) -> Result<i64> {
    i64::try_from(b.seq).map_err(|_| Error::InvalidInput {
        what: "batch seq",
        value: b.seq.to_string(),
    })
}

fn batch_from_db(source: String, seq: i64, part: i64) -> Result<BatchId> {
    let seq = u64::try_from(seq).map_err(|_| Error::Corrupt {
        what: "batch seq",
        value: seq.to_string(),
    })?;
    let part = u32::try_from(part).map_err(|_| Error::Corrupt {
        what: "batch part",
        value: part.to_string(),
    })?;
    Ok(BatchId { source, seq, part })
}

/// `,A,B,`: every name between commas, so `LIKE '%,A,%'` finds it.
fn capabilities_to_db(caps: &[Capability]) -> String {
    let mut s = String::from(",");
    for c in caps {
        s.push_str(c.as_str());
        s.push(',');
    }
    s
}

fn capabilities_from_db(s: &str) -> Result<Vec<Capability>> {
    s.split(',')
        .filter(|n| !n.is_empty())
        .map(|n| {
            Capability::from_str(n).map_err(|_| Error::Corrupt {
                what: "capability",
                value: n.to_owned(),
            })
        })
        .collect()
}

type ServiceRow = (String, String, String, String, i64, i64, i64);

fn service_from_row(row: ServiceRow) -> Result<ServiceRecord> {
    let (id, role, address, caps, draining, started_at_ms, last_heartbeat_ms) = row;
    let role = Role::from_str(&role).map_err(|_| Error::Corrupt {
        what: "role",
        value: role.clone(),
    })?;
    Ok(ServiceRecord {
        id,
        role,
        address,
        capabilities: capabilities_from_db(&caps)?,
        draining: draining != 0,
        started_at_ms,
        last_heartbeat_ms,
    })
}

type FileRow = (
    String,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    String,
    i64,
    Option<String>,
    Option<String>,
);

/// A trace id as stored: 32 lowercase hex digits, so text order is byte order.
fn trace_id_to_db(id: &[u8; 16]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(32);
    for b in id {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn trace_id_from_db(s: &str) -> Result<[u8; 16]> {
    let corrupt = || Error::Corrupt {
        what: "trace id",
        value: s.to_owned(),
    };
    if s.len() != 32 || !s.is_ascii() {
        return Err(corrupt());
    }
    let mut id = [0u8; 16];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| corrupt())?;
    }
    Ok(id)
}

fn file_from_row(row: FileRow) -> Result<FileRecord> {
    let (path, tenant, signal, min_time_ns, max_time_ns, rows, size_bytes, writer_id, created_at_ms, min_id, max_id) =
        row;
    let trace_ids = match (min_id, max_id) {
        (Some(min), Some(max)) => Some((trace_id_from_db(&min)?, trace_id_from_db(&max)?)),
        _ => None,
    };
    let tenant = TenantId::new(tenant.clone()).map_err(|_| Error::Corrupt {
        what: "tenant id",
        value: tenant,
    })?;
    let signal = Signal::from_str(&signal).map_err(|_| Error::Corrupt {
        what: "signal",
        value: signal.clone(),
    })?;
    Ok(FileRecord {
        path,
        tenant,
        signal,
        min_time_ns,
        max_time_ns,
        rows,
        size_bytes,
        trace_ids,
        writer_id,
        created_at_ms,
    })
}

/// `VALUES (...), (...)` placeholders for `rows` rows of `width` parameters,
/// numbered from `$1`.
fn values_placeholders(rows: usize, width: usize) -> String {
    let mut s = String::with_capacity(rows * width * 5 + 8);
    s.push_str("VALUES ");
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for c in 0..width {
            if c > 0 {
                s.push_str(", ");
            }
            s.push('$');
            s.push_str(&(r * width + c + 1).to_string());
        }
        s.push(')');
    }
    s
}

async fn insert_tenant(tx: &mut Transaction<'_, Any>, tenant: &TenantId, now_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO signaldb_tenants (id, created_at_ms) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
        .bind(tenant.as_str())
        .bind(now_ms)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Inserts a file row; false when its path is registered already.
async fn insert_file(tx: &mut Transaction<'_, Any>, file: &FileRecord) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO signaldb_files \
         (path, tenant, signal, min_time_ns, max_time_ns, row_count, size_bytes, writer_id, created_at_ms, \
          min_trace_id, max_trace_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (path) DO NOTHING",
    )
    .bind(&file.path)
    .bind(file.tenant.as_str())
    .bind(file.signal.as_str())
    .bind(file.min_time_ns)
    .bind(file.max_time_ns)
    .bind(file.rows)
    .bind(file.size_bytes)
    .bind(&file.writer_id)
    .bind(file.created_at_ms)
    .bind(file.trace_ids.map(|(min, _)| trace_id_to_db(&min)))
    .bind(file.trace_ids.map(|(_, max)| trace_id_to_db(&max)))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(inserted > 0)
}

/// Schedules the objects `paths` of `tenant` for deletion at `delete_after_ms`.
async fn schedule_deletes(
    tx: &mut Transaction<'_, Any>,
    tenant: &TenantId,
    paths: &[&str],
    delete_after_ms: i64,
) -> Result<(), sqlx::Error> {
    for chunk in paths.chunks(INSERT_CHUNK) {
        let sql = format!(
            "INSERT INTO signaldb_pending_deletes (path, tenant, delete_after_ms) {} \
             ON CONFLICT (path) DO UPDATE SET delete_after_ms = excluded.delete_after_ms",
            values_placeholders(chunk.len(), 3)
        );
        let mut q = sqlx::query(&sql).persistent(false);
        for path in chunk {
            q = q.bind(*path).bind(tenant.as_str()).bind(delete_after_ms);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

#[async_trait]
impl Catalog for SqlCatalog {
    async fn register_service(&self, svc: &ServiceRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO signaldb_services \
             (id, role, address, capabilities, draining, started_at_ms, last_heartbeat_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (id) DO UPDATE SET \
             role = excluded.role, address = excluded.address, capabilities = excluded.capabilities, \
             draining = excluded.draining, started_at_ms = excluded.started_at_ms, \
             last_heartbeat_ms = excluded.last_heartbeat_ms",
        )
        .bind(&svc.id)
        .bind(svc.role.as_str())
        .bind(&svc.address)
        .bind(capabilities_to_db(&svc.capabilities))
        .bind(i64::from(svc.draining))
        .bind(svc.started_at_ms)
        .bind(svc.last_heartbeat_ms)
        .execute(&self.pool)
        .await
        .map_err(query_err("registering a service"))?;
        Ok(())
    }

    async fn heartbeat(&self, id: &str, now_ms: i64) -> Result<()> {
        let n = sqlx::query("UPDATE signaldb_services SET last_heartbeat_ms = $1 WHERE id = $2")
            .bind(now_ms)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(query_err("recording a heartbeat"))?
            .rows_affected();
        if n == 0 {
            return Err(Error::NotFound {
                what: format!("service {id:?}"),
            });
        }
        Ok(())
    }

    async fn set_draining(&self, id: &str, draining: bool) -> Result<()> {
        let n = sqlx::query("UPDATE signaldb_services SET draining = $1 WHERE id = $2")
            .bind(i64::from(draining))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(query_err("setting a service's draining flag"))?
            .rows_affected();
        if n == 0 {
            return Err(Error::NotFound {
                what: format!("service {id:?}"),
            });
        }
        Ok(())
    }

    async fn deregister_service(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM signaldb_services WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(query_err("deregistering a service"))?;
        Ok(())
    }

    async fn live_services(&self, capability: Capability, now_ms: i64, ttl_ms: i64) -> Result<Vec<ServiceRecord>> {
        let rows: Vec<ServiceRow> = sqlx::query_as(
            "SELECT id, role, address, capabilities, draining, started_at_ms, last_heartbeat_ms \
             FROM signaldb_services WHERE last_heartbeat_ms >= $1 AND capabilities LIKE $2 ORDER BY id",
        )
        .bind(now_ms.saturating_sub(ttl_ms))
        .bind(format!("%,{},%", capability.as_str()))
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("listing live services"))?;
        let mut services = rows.into_iter().map(service_from_row).collect::<Result<Vec<_>>>()?;
        services.retain(|s| s.capabilities.contains(&capability));
        // Byte order whatever the database's collation.
        services.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(services)
    }

    async fn expire_services(&self, now_ms: i64, ttl_ms: i64) -> Result<u64> {
        let n = sqlx::query("DELETE FROM signaldb_services WHERE last_heartbeat_ms < $1")
            .bind(now_ms.saturating_sub(ttl_ms))
            .execute(&self.pool)
            .await
            .map_err(query_err("expiring services"))?
            .rows_affected();
        Ok(n)
    }

    async fn ensure_tenant(&self, tenant: &TenantId, now_ms: i64) -> Result<()> {
        sqlx::query("INSERT INTO signaldb_tenants (id, created_at_ms) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
            .bind(tenant.as_str())
            .bind(now_ms)
            .execute(&self.pool)
            .await
            .map_err(query_err("recording a tenant"))?;
        Ok(())
    }

    async fn list_tenants(&self) -> Result<Vec<TenantId>> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM signaldb_tenants ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(query_err("listing tenants"))?;
        let mut tenants = ids
            .into_iter()
            .map(|id| {
                TenantId::new(id.clone()).map_err(|_| Error::Corrupt {
                    what: "tenant id",
                    value: id,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        tenants.sort();
        Ok(tenants)
    }

    async fn register_file(&self, file: &FileRecord, batches: &[BatchId]) -> Result<()> {
        let action = "registering a file";
        // Distinct ids, in the order given.
        let mut distinct = HashSet::with_capacity(batches.len());
        let mut ids = Vec::with_capacity(batches.len());
        for b in batches {
            if distinct.insert(b) {
                ids.push((b, seq_to_db(b)?));
            }
        }

        let mut tx = self.pool.begin().await.map_err(query_err(action))?;
        // A write first: on SQLite the transaction takes the write lock now,
        // waiting for it, rather than failing to upgrade a read lock later.
        insert_tenant(&mut tx, &file.tenant, file.created_at_ms)
            .await
            .map_err(query_err(action))?;
        let inserted = insert_file(&mut tx, file).await.map_err(query_err(action))?;
        if !inserted {
            tx.rollback().await.map_err(query_err(action))?;
            return Err(Error::DuplicateFile {
                path: file.path.clone(),
            });
        }

        for chunk in ids.chunks(INSERT_CHUNK) {
            let sql = format!(
                "INSERT INTO signaldb_batches (source, seq, part, file_path, registered_at_ms) {} \
                 ON CONFLICT (source, seq, part) DO NOTHING RETURNING source, seq, part",
                values_placeholders(chunk.len(), 5)
            );
            let mut q = sqlx::query_as::<_, (String, i64, i64)>(&sql).persistent(chunk.len() == INSERT_CHUNK);
            for &(b, seq) in chunk {
                q = q
                    .bind(b.source.as_str())
                    .bind(seq)
                    .bind(i64::from(b.part))
                    .bind(file.path.as_str())
                    .bind(file.created_at_ms);
            }
            let rows = q.fetch_all(&mut *tx).await.map_err(query_err(action))?;
            if rows.len() != chunk.len() {
                let new: HashSet<(String, i64, i64)> = rows.into_iter().collect();
                let dup = chunk
                    .iter()
                    .find(|&&(b, seq)| !new.contains(&(b.source.clone(), seq, i64::from(b.part))))
                    .map(|&(b, _)| b.clone());
                tx.rollback().await.map_err(query_err(action))?;
                return match dup {
                    Some(batch) => Err(Error::DuplicateBatch {
                        batch,
                        path: file.path.clone(),
                    }),
                    // Not reachable: fewer rows than ids means one is missing.
                    None => Err(Error::Corrupt {
                        what: "batch insert result",
                        value: format!("{} rows for {} ids", new.len(), chunk.len()),
                    }),
                };
            }
        }
        sqlx::query("UPDATE signaldb_tenants SET files_version = files_version + 1 WHERE id = $1")
            .bind(file.tenant.as_str())
            .execute(&mut *tx)
            .await
            .map_err(query_err(action))?;
        tx.commit().await.map_err(query_err(action))?;
        Ok(())
    }

    async fn files_version(&self, tenant: &TenantId) -> Result<i64> {
        let version: Option<i64> = sqlx::query_scalar("SELECT files_version FROM signaldb_tenants WHERE id = $1")
            .bind(tenant.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(query_err("reading the file-list version"))?;
        Ok(version.unwrap_or(0))
    }

    async fn list_files(
        &self,
        tenant: &TenantId,
        signal: Signal,
        range: Option<(i64, i64)>,
    ) -> Result<Vec<FileRecord>> {
        const COLUMNS: &str = "SELECT path, tenant, signal, min_time_ns, max_time_ns, row_count, size_bytes, \
                               writer_id, created_at_ms, min_trace_id, max_trace_id \
                               FROM signaldb_files WHERE tenant = $1 AND signal = $2";
        let rows: Vec<FileRow> = match range {
            None => {
                sqlx::query_as(&format!("{COLUMNS} ORDER BY min_time_ns, path"))
                    .bind(tenant.as_str())
                    .bind(signal.as_str())
                    .fetch_all(&self.pool)
                    .await
            }
            Some((min, max)) => {
                sqlx::query_as(&format!(
                    "{COLUMNS} AND max_time_ns >= $3 AND min_time_ns <= $4 ORDER BY min_time_ns, path"
                ))
                .bind(tenant.as_str())
                .bind(signal.as_str())
                .bind(min)
                .bind(max)
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(query_err("listing files"))?;
        let mut files = rows.into_iter().map(file_from_row).collect::<Result<Vec<_>>>()?;
        files.sort_by(|a, b| a.min_time_ns.cmp(&b.min_time_ns).then_with(|| a.path.cmp(&b.path)));
        Ok(files)
    }

    async fn replace_files(
        &self,
        tenant: &TenantId,
        signal: Signal,
        removed: &[String],
        added: &[FileRecord],
        delete_after_ms: i64,
    ) -> Result<()> {
        let action = "replacing files";
        let distinct: HashSet<&str> = removed.iter().map(String::as_str).collect();
        let mut tx = self.pool.begin().await.map_err(query_err(action))?;
        // The write first, as in register_file.
        let now = added.iter().map(|f| f.created_at_ms).max().unwrap_or(delete_after_ms);
        insert_tenant(&mut tx, tenant, now).await.map_err(query_err(action))?;
        sqlx::query("UPDATE signaldb_tenants SET files_version = files_version + 1 WHERE id = $1")
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await
            .map_err(query_err(action))?;
        let paths: Vec<&str> = distinct.iter().copied().collect();
        let mut gone = 0usize;
        for chunk in paths.chunks(INSERT_CHUNK) {
            let list = (0..chunk.len())
                .map(|i| format!("${}", i + 3))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!("DELETE FROM signaldb_files WHERE tenant = $1 AND signal = $2 AND path IN ({list})");
            let mut q = sqlx::query(&sql)
                .persistent(false)
                .bind(tenant.as_str())
                .bind(signal.as_str());
            for path in chunk {
                q = q.bind(*path);
            }
            gone += q.execute(&mut *tx).await.map_err(query_err(action))?.rows_affected() as usize;
        }
        if gone != paths.len() {
            tx.rollback().await.map_err(query_err(action))?;
            return Err(Error::Conflict {
                what: format!(
                    "{} of the {} files to replace are no longer registered",
                    paths.len() - gone,
                    paths.len()
                ),
            });
        }
        for file in added {
            if file.tenant != *tenant || file.signal != signal {
                tx.rollback().await.map_err(query_err(action))?;
                return Err(Error::InvalidInput {
                    what: "replacement file of another tenant or signal",
                    value: file.path.clone(),
                });
            }
            if !insert_file(&mut tx, file).await.map_err(query_err(action))? {
                tx.rollback().await.map_err(query_err(action))?;
                return Err(Error::DuplicateFile {
                    path: file.path.clone(),
                });
            }
        }
        schedule_deletes(&mut tx, tenant, &paths, delete_after_ms)
            .await
            .map_err(query_err(action))?;
        tx.commit().await.map_err(query_err(action))?;
        Ok(())
    }

    async fn pending_deletes(&self, due_by_ms: Option<i64>) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT path FROM signaldb_pending_deletes WHERE delete_after_ms <= $1 \
             ORDER BY delete_after_ms, path",
        )
        .bind(due_by_ms.unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("listing pending deletes"))
    }

    async fn forget_deletes(&self, paths: &[String]) -> Result<()> {
        for chunk in paths.chunks(INSERT_CHUNK) {
            let list = (0..chunk.len())
                .map(|i| format!("${}", i + 1))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!("DELETE FROM signaldb_pending_deletes WHERE path IN ({list})");
            let mut q = sqlx::query(&sql).persistent(false);
            for path in chunk {
                q = q.bind(path.as_str());
            }
            q.execute(&self.pool)
                .await
                .map_err(query_err("forgetting pending deletes"))?;
        }
        Ok(())
    }

    async fn try_lease(&self, name: &str, holder: &str, now_ms: i64, ttl_ms: i64) -> Result<bool> {
        let taken = sqlx::query(
            "INSERT INTO signaldb_leases (name, holder, expires_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at_ms = excluded.expires_at_ms \
             WHERE signaldb_leases.holder = excluded.holder OR signaldb_leases.expires_at_ms < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(now_ms.saturating_add(ttl_ms))
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(query_err("taking a lease"))?
        .rows_affected();
        Ok(taken > 0)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM signaldb_leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await
            .map_err(query_err("releasing a lease"))?;
        Ok(())
    }

    async fn remove_files_before(
        &self,
        tenant: &TenantId,
        signal: Signal,
        before_ns: i64,
        delete_after_ms: i64,
    ) -> Result<Vec<FileRecord>> {
        let action = "removing expired files";
        let mut tx = self.pool.begin().await.map_err(query_err(action))?;
        // The write first, as in register_file: on SQLite the transaction
        // then holds the write lock from its start.
        let bumped = sqlx::query("UPDATE signaldb_tenants SET files_version = files_version + 1 WHERE id = $1")
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await
            .map_err(query_err(action))?
            .rows_affected();
        if bumped == 0 {
            tx.rollback().await.map_err(query_err(action))?;
            return Ok(Vec::new());
        }
        let rows: Vec<FileRow> = sqlx::query_as(
            "DELETE FROM signaldb_files WHERE tenant = $1 AND signal = $2 AND max_time_ns < $3 \
             RETURNING path, tenant, signal, min_time_ns, max_time_ns, row_count, size_bytes, \
             writer_id, created_at_ms, min_trace_id, max_trace_id",
        )
        .bind(tenant.as_str())
        .bind(signal.as_str())
        .bind(before_ns)
        .fetch_all(&mut *tx)
        .await
        .map_err(query_err(action))?;
        if rows.is_empty() {
            // Nothing went: the version stays as it was.
            tx.rollback().await.map_err(query_err(action))?;
            return Ok(Vec::new());
        }
        let paths: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        schedule_deletes(&mut tx, tenant, &paths, delete_after_ms)
            .await
            .map_err(query_err(action))?;
        tx.commit().await.map_err(query_err(action))?;
        let mut files = rows.into_iter().map(file_from_row).collect::<Result<Vec<_>>>()?;
        files.sort_by(|a, b| a.min_time_ns.cmp(&b.min_time_ns).then_with(|| a.path.cmp(&b.path)));
        Ok(files)
    }

    async fn batches_seen(&self, batches: &[BatchId]) -> Result<Vec<BatchId>> {
        let mut distinct = HashSet::with_capacity(batches.len());
        let mut ids = Vec::with_capacity(batches.len());
        for b in batches {
            if distinct.insert(b) {
                ids.push((b, seq_to_db(b)?));
            }
        }
        let mut seen: HashSet<BatchId> = HashSet::new();
        for chunk in ids.chunks(SEEN_CHUNK) {
            let sql = format!(
                "SELECT source, seq, part FROM signaldb_batches WHERE (source, seq, part) IN ({})",
                values_placeholders(chunk.len(), 3)
            );
            let mut q =
                sqlx::query_as::<_, (String, i64, i64)>(&sql).persistent(chunk.len() == 1 || chunk.len() == SEEN_CHUNK);
            for &(b, seq) in chunk {
                q = q.bind(b.source.as_str()).bind(seq).bind(i64::from(b.part));
            }
            let rows = q
                .fetch_all(&self.pool)
                .await
                .map_err(query_err("looking up batch ids"))?;
            for (source, seq, part) in rows {
                seen.insert(batch_from_db(source, seq, part)?);
            }
        }
        Ok(batches.iter().filter(|b| seen.contains(*b)).cloned().collect())
    }

    async fn prune_batches(&self, before_ms: i64) -> Result<u64> {
        let n = sqlx::query("DELETE FROM signaldb_batches WHERE registered_at_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await
            .map_err(query_err("pruning batch ids"))?
            .rows_affected();
        Ok(n)
    }

    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        let action = "recording an API key";
        let mut tx = self.pool.begin().await.map_err(query_err(action))?;
        sqlx::query("INSERT INTO signaldb_tenants (id, created_at_ms) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
            .bind(key.tenant.as_str())
            .bind(key.created_at_ms)
            .execute(&mut *tx)
            .await
            .map_err(query_err(action))?;
        let n = sqlx::query(
            "INSERT INTO signaldb_api_keys (id, tenant, secret_sha256, name, created_at_ms, revoked_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&key.id)
        .bind(key.tenant.as_str())
        .bind(&key.secret_sha256)
        .bind(&key.name)
        .bind(key.created_at_ms)
        .bind(key.revoked_at_ms)
        .execute(&mut *tx)
        .await
        .map_err(query_err(action))?
        .rows_affected();
        if n == 0 {
            return Err(Error::InvalidInput {
                what: "API key id (exists already)",
                value: key.id.clone(),
            });
        }
        tx.commit().await.map_err(query_err(action))
    }

    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        let row: Option<ApiKeyRow> = sqlx::query_as(&format!("{API_KEY_COLUMNS} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query_err("reading an API key"))?;
        row.map(api_key_record).transpose()
    }

    async fn list_api_keys(&self, tenant: Option<&TenantId>) -> Result<Vec<ApiKeyRecord>> {
        let order = "ORDER BY tenant, created_at_ms, id";
        let rows: Vec<ApiKeyRow> = match tenant {
            Some(t) => {
                sqlx::query_as(&format!("{API_KEY_COLUMNS} WHERE tenant = $1 {order}"))
                    .bind(t.as_str())
                    .fetch_all(&self.pool)
                    .await
            }
            None => {
                sqlx::query_as(&format!("{API_KEY_COLUMNS} {order}"))
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(query_err("listing API keys"))?;
        rows.into_iter().map(api_key_record).collect()
    }

    async fn revoke_api_key(&self, id: &str, now_ms: i64) -> Result<()> {
        let action = "revoking an API key";
        let n = sqlx::query("UPDATE signaldb_api_keys SET revoked_at_ms = COALESCE(revoked_at_ms, $1) WHERE id = $2")
            .bind(now_ms)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(query_err(action))?
            .rows_affected();
        if n == 0 {
            return Err(Error::NotFound {
                what: format!("API key {id:?}"),
            });
        }
        Ok(())
    }
}

const API_KEY_COLUMNS: &str =
    "SELECT id, tenant, secret_sha256, name, created_at_ms, revoked_at_ms FROM signaldb_api_keys";

type ApiKeyRow = (String, String, String, String, i64, Option<i64>);

fn api_key_record((id, tenant, secret_sha256, name, created_at_ms, revoked_at_ms): ApiKeyRow) -> Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        tenant: TenantId::new(tenant.clone()).map_err(|_| Error::Corrupt {
            what: "API key tenant",
            value: tenant,
        })?,
        id,
        secret_sha256,
        name,
        created_at_ms,
        revoked_at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        assert_eq!(values_placeholders(1, 3), "VALUES ($1, $2, $3)");
        assert_eq!(values_placeholders(2, 2), "VALUES ($1, $2), ($3, $4)");
    }

    #[test]
    fn capabilities_round_trip() {
        let caps = vec![Capability::Storage, Capability::QueryExecution];
        let s = capabilities_to_db(&caps);
        assert_eq!(s, ",Storage,QueryExecution,");
        assert_eq!(capabilities_from_db(&s).unwrap(), caps);
        assert_eq!(capabilities_from_db(",").unwrap(), vec![]);
        assert!(matches!(
            capabilities_from_db(",Nope,"),
            Err(Error::Corrupt { what: "capability", .. })
        ));
    }

    #[test]
    fn seq_limits() {
        let b = BatchId {
            source: "s".into(),
            seq: u64::MAX,
            part: 0,
        };
        assert!(matches!(seq_to_db(&b), Err(Error::InvalidInput { .. })));
        let b = BatchId {
            source: "s".into(),
            seq: (1 << 63) - 1,
            part: u32::MAX,
        };
        assert_eq!(seq_to_db(&b).unwrap(), i64::MAX);
        assert_eq!(batch_from_db("s".into(), i64::MAX, i64::from(u32::MAX)).unwrap(), b);
        assert!(batch_from_db("s".into(), -1, 0).is_err());
    }
}
