//! SignalDB's catalog: the registry of running services, the list of
//! tenants, the index of stored files and the names of the batches they hold.
//!
//! [`Catalog`] is the interface; [`SqlCatalog`] implements it on SQLite (one
//! file, shareable by several processes on one machine) or PostgreSQL (shared
//! by a cluster), with the same portable SQL. [`connect`] opens a catalog and
//! brings its schema up to date.
//!
//! Times are plain integers: unix milliseconds in `*_ms` fields, unix
//! nanoseconds in `*_ns` fields. Callers pass "now" explicitly, so the
//! catalog never reads a clock.

use std::fmt;

use async_trait::async_trait;
pub use signaldb_config::{Capability, Role, Signal, TenantId};

#[doc(hidden)]
mod migrate;
mod sql;
mod url;

pub use sql::SqlCatalog;

/// A result of a catalog operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Opens the catalog at `url` and applies any pending schema migrations.
///
/// `url` is `sqlite://PATH` (the file is created if missing; `?mode=rwc` is
/// implied), `sqlite::memory:` (private to this pool, which then has a
/// single connection) or `postgres://USER:PASSWORD@HOST:PORT/DB`.
/// `max_connections` bounds the pool (at least 1).
///
/// Several processes may call this at once against one database: migrations
/// are serialised, and each is applied exactly once.
pub async fn connect(url: &str, max_connections: u32) -> Result<SqlCatalog> {
    SqlCatalog::connect(url, max_connections).await
}

/// The catalog's operations. Implementations must be safe to share between
/// tasks and processes.
#[async_trait]
pub trait Catalog: Send + Sync + fmt::Debug + 'static {
    /// Creates or replaces the service `svc.id`, including its heartbeat time.
    async fn register_service(&self, svc: &ServiceRecord) -> Result<()>;

    /// Records a heartbeat of service `id`. [`Error::NotFound`] when the
    /// service is unknown (never registered, deregistered or expired): the
    /// caller should register again.
    async fn heartbeat(&self, id: &str, now_ms: i64) -> Result<()>;

    /// Marks service `id` as draining (or not). [`Error::NotFound`] when the
    /// service is unknown.
    async fn set_draining(&self, id: &str, draining: bool) -> Result<()>;

    /// Removes service `id`; removing an unknown service is not an error.
    async fn deregister_service(&self, id: &str) -> Result<()>;

    /// Services with `capability` whose last heartbeat is >= `now_ms - ttl_ms`,
    /// ordered by id. Draining services are included, with `draining` set.
    async fn live_services(&self, capability: Capability, now_ms: i64, ttl_ms: i64) -> Result<Vec<ServiceRecord>>;

    /// Deletes the services whose last heartbeat is older than
    /// `now_ms - ttl_ms`; returns how many.
    async fn expire_services(&self, now_ms: i64, ttl_ms: i64) -> Result<u64>;

    /// Records `tenant` if it is new; idempotent.
    async fn ensure_tenant(&self, tenant: &TenantId, now_ms: i64) -> Result<()>;

    /// Every known tenant, ordered by id.
    async fn list_tenants(&self) -> Result<Vec<TenantId>>;

    /// In one transaction: records the file's tenant, the file and every
    /// batch id in `batches` (registered at `file.created_at_ms`).
    ///
    /// A batch id that is already registered fails the whole call with
    /// [`Error::DuplicateBatch`], a path that is already registered with
    /// [`Error::DuplicateFile`]; nothing is recorded then. Callers check
    /// [`Catalog::batches_seen`] first. Repeated ids within `batches` count
    /// once.
    async fn register_file(&self, file: &FileRecord, batches: &[BatchId]) -> Result<()>;

    /// In one transaction: removes the files `removed` (paths) of `tenant`
    /// and `signal`, registers `added` in their place, schedules the
    /// removed files' objects for deletion at `delete_after_ms` (see
    /// [`Catalog::pending_deletes`]) and bumps the tenant's file-list
    /// version. Queries see either the old files or the new ones, never
    /// both or neither.
    ///
    /// When one of `removed` is no longer registered (someone else replaced
    /// or expired it) the call fails with [`Error::Conflict`] and changes
    /// nothing; an `added` path that is registered already fails it with
    /// [`Error::DuplicateFile`].
    async fn replace_files(
        &self,
        tenant: &TenantId,
        signal: Signal,
        removed: &[String],
        added: &[FileRecord],
        delete_after_ms: i64,
    ) -> Result<()>;

    /// Objects whose files left the catalog and that wait to be deleted:
    /// those due by `due_by_ms` (`None`: all of them, due or not), ordered
    /// by due time, then path.
    async fn pending_deletes(&self, due_by_ms: Option<i64>) -> Result<Vec<String>>;

    /// Forgets pending deletes (their objects are gone); unknown paths are
    /// not an error.
    async fn forget_deletes(&self, paths: &[String]) -> Result<()>;

    /// Takes the lease `name` for `holder` until `now_ms + ttl_ms`, or
    /// renews it if `holder` holds it already. False when another holder's
    /// lease on `name` has not expired (`expires_at_ms >= now_ms`).
    async fn try_lease(&self, name: &str, holder: &str, now_ms: i64, ttl_ms: i64) -> Result<bool>;

    /// Gives up `holder`'s lease `name`; a lease `holder` does not hold is
    /// left alone, and that is not an error.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()>;

    /// The files of `tenant` and `signal` whose time range overlaps the
    /// inclusive range `[min_time_ns, max_time_ns]` (`None`: all of them),
    /// ordered by `min_time_ns`, then path.
    async fn list_files(&self, tenant: &TenantId, signal: Signal, range: Option<(i64, i64)>)
    -> Result<Vec<FileRecord>>;

    /// In one transaction: removes the files of `tenant` and `signal` whose
    /// spans all ended before `before_ns` (`max_time_ns < before_ns`), and
    /// bumps the tenant's file-list version when any went. Their objects
    /// are scheduled for deletion at `delete_after_ms` (see
    /// [`Catalog::pending_deletes`]). Returns the files removed.
    async fn remove_files_before(
        &self,
        tenant: &TenantId,
        signal: Signal,
        before_ns: i64,
        delete_after_ms: i64,
    ) -> Result<Vec<FileRecord>>;

    /// The version of `tenant`'s file list: it changes whenever a file of
    /// the tenant is registered (or removed), so a cached listing taken at
    /// this version or later is current. 0 for an unknown tenant.
    async fn files_version(&self, tenant: &TenantId) -> Result<i64>;

    /// Which of `batches` are registered already, in the order given.
    async fn batches_seen(&self, batches: &[BatchId]) -> Result<Vec<BatchId>>;

    /// Forgets the batch ids registered before `before_ms`; returns how many.
    async fn prune_batches(&self, before_ms: i64) -> Result<u64>;

    /// Records a new API key (and its tenant, if new). An id that exists
    /// already is [`Error::InvalidInput`].
    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<()>;

    /// The API key `id`, revoked or not; `None` when there is none.
    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>>;

    /// The API keys of `tenant` (`None`: of every tenant), revoked ones
    /// included, ordered by tenant, then creation time, then id.
    async fn list_api_keys(&self, tenant: Option<&TenantId>) -> Result<Vec<ApiKeyRecord>>;

    /// Revokes the API key `id` at `now_ms`; revoking a revoked key keeps
    /// its first revocation time. [`Error::NotFound`] for an unknown id.
    async fn revoke_api_key(&self, id: &str, now_ms: i64) -> Result<()>;
}

/// An API key as the catalog holds it: never its secret, only the secret's
/// SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The key's public id (the part of the key before its secret).
    pub id: String,
    /// The tenant requests with this key act as.
    pub tenant: TenantId,
    /// SHA-256 of the key's secret, 64 lowercase hex digits.
    pub secret_sha256: String,
    /// A label for people (`grafana`, `otel-collector-eu`); may be empty.
    pub name: String,
    pub created_at_ms: i64,
    /// When the key was revoked; `None` while it is valid.
    pub revoked_at_ms: Option<i64>,
}

/// A running service, as registered in the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRecord {
    /// Unique id of the service instance.
    pub id: String,
    pub role: Role,
    /// Where other services reach it (e.g. `http://10.0.0.7:50051`).
    pub address: String,
    pub capabilities: Vec<Capability>,
    /// A draining service finishes its work but takes no new work.
    pub draining: bool,
    pub started_at_ms: i64,
    pub last_heartbeat_ms: i64,
}

/// A data file in object storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// Object-store path; unique.
    pub path: String,
    pub tenant: TenantId,
    pub signal: Signal,
    /// Smallest and largest timestamp of the rows, unix nanoseconds.
    pub min_time_ns: i64,
    pub max_time_ns: i64,
    pub rows: i64,
    pub size_bytes: i64,
    /// Smallest and largest trace id of the rows (byte order), when the
    /// signal has trace ids and the writer recorded them.
    pub trace_ids: Option<([u8; 16], [u8; 16])>,
    /// Id of the writer that produced the file.
    pub writer_id: String,
    pub created_at_ms: i64,
}

/// The name of a batch: part `part` of request `seq` from `source`.
///
/// `seq` must stay below 2^63 (it is stored as a signed 64-bit integer).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchId {
    pub source: String,
    pub seq: u64,
    pub part: u32,
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.source, self.seq, self.part)
    }
}

/// Why a catalog operation failed. Messages never contain a password from the
/// connection URL.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL names no supported database.
    #[error("unsupported catalog URL {url_redacted}: expected sqlite://PATH, sqlite::memory: or postgres://...")]
    UnsupportedUrl { url_redacted: String },

    /// The database could not be opened.
    #[error("connecting to the catalog at {url_redacted}: {source}")]
    Connect {
        url_redacted: String,
        #[source]
        source: sqlx::Error,
    },

    /// A schema migration failed (version 0: creating the migrations table).
    #[error("applying catalog migration {version} ({name}): {source}")]
    Migrate {
        version: i64,
        name: &'static str,
        #[source]
        source: sqlx::Error,
    },

    /// A query failed.
    #[error("catalog: {action}: {source}")]
    Query {
        action: &'static str,
        #[source]
        source: sqlx::Error,
    },

    /// The thing does not exist (e.g. an unknown service id).
    #[error("catalog: {what} not found")]
    NotFound { what: String },

    /// A batch id passed to [`Catalog::register_file`] is registered already.
    #[error("catalog: batch {batch} is registered already; file {path} was not registered")]
    DuplicateBatch { batch: BatchId, path: String },

    /// A file path passed to [`Catalog::register_file`] is registered already.
    #[error("catalog: file {path} is registered already")]
    DuplicateFile { path: String },

    /// The catalog changed under the call (e.g. a file to replace is gone).
    #[error("catalog: {what}; nothing was changed")]
    Conflict { what: String },

    /// A value cannot be stored (e.g. a batch `seq` of 2^63 or more).
    #[error("catalog: cannot store {what} {value}")]
    InvalidInput { what: &'static str, value: String },

    /// A stored value makes no sense (e.g. an unknown capability name).
    #[error("catalog: stored {what} {value:?} is invalid")]
    Corrupt { what: &'static str, value: String },
}
