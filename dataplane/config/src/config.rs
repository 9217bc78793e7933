//! The `signaldb.yaml` schema.
//!
//! Precedence, lowest first: built-in defaults, the YAML file, `SIGNALDB_*`
//! environment variables, command-line flags. Environment variables name a key
//! path with `__` between levels: `SIGNALDB_WRITER__FLUSH_MAX_AGE=5s` sets
//! `writer.flush_max_age`. Values are parsed as YAML scalars, so numbers and
//! booleans keep their types.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_yaml_ng::{Mapping, Value};

use crate::size::ByteSize;
use crate::vocab::{TenantId, ports};

/// Prefix of the environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "SIGNALDB_";

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid YAML: {source}")]
    Yaml {
        path: PathBuf,
        source: serde_yaml_ng::Error,
    },
    #[error("override {key}={value:?}: {reason}")]
    Override { key: String, value: String, reason: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration of a `signaldb` process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Stable id of this process in the service registry (the pod name in
    /// Kubernetes). Default: kept in `<data_dir>/node-id`, made once.
    pub node_id: Option<String>,
    /// Directory for the WALs, the embedded catalog and local object storage.
    pub data_dir: PathBuf,
    pub acceptor: AcceptorConfig,
    pub writer: WriterConfig,
    pub querier: QuerierConfig,
    pub router: RouterConfig,
    pub compactor: CompactorConfig,
    pub wal: WalConfig,
    pub catalog: CatalogConfig,
    pub storage: StorageConfig,
    pub discovery: DiscoveryConfig,
    pub admin: AdminConfig,
    pub tenancy: TenancyConfig,
    pub cluster: ClusterConfig,
    pub limits: LimitsConfig,
    pub tls: TlsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node_id: None,
            data_dir: PathBuf::from("./data"),
            acceptor: AcceptorConfig::default(),
            writer: WriterConfig::default(),
            querier: QuerierConfig::default(),
            router: RouterConfig::default(),
            compactor: CompactorConfig::default(),
            wal: WalConfig::default(),
            catalog: CatalogConfig::default(),
            storage: StorageConfig::default(),
            discovery: DiscoveryConfig::default(),
            admin: AdminConfig::default(),
            tenancy: TenancyConfig::default(),
            cluster: ClusterConfig::default(),
            limits: LimitsConfig::default(),
            tls: TlsConfig::default(),
        }
    }
}

/// OTLP intake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AcceptorConfig {
    /// OTLP/gRPC listen address.
    pub grpc_addr: SocketAddr,
    /// OTLP/HTTP listen address.
    pub http_addr: SocketAddr,
    /// Largest request accepted, after decompression.
    pub max_request_size: ByteSize,
    /// Bytes of acknowledged data that may wait in the WAL for a writer; past
    /// this the acceptor answers 429 / RESOURCE_EXHAUSTED.
    pub max_pending: ByteSize,
    /// Bytes of request bodies being received, decoded and logged at once,
    /// over gRPC and HTTP together. A request that would go past it is
    /// refused at once with 429 / RESOURCE_EXHAUSTED, so memory stays
    /// bounded however many clients send. Decoded requests take a few times
    /// their wire size on top of this.
    pub max_in_flight: ByteSize,
    /// Bytes of logged requests (as received) being converted and sent to
    /// writers at once. Each takes about three times its size while it is
    /// converted and waits for the writers; the others wait in the WAL
    /// (counted in `max_pending`) until there is room.
    pub max_delivering: ByteSize,
    /// Bytes of span rows held for delivery as they were converted when
    /// their requests were accepted (every request is converted before it
    /// is acknowledged, so one that cannot be stored is refused, never
    /// dropped later). Past this, accepted requests wait as logged and are
    /// converted again when delivered.
    pub max_converted_pending: ByteSize,
    /// Longest a request body may go without sending a byte; past it the
    /// request is dropped (408 / DEADLINE_EXCEEDED) and its bytes leave the
    /// in-flight budget, so stalled clients cannot hold it.
    #[serde(with = "humantime_serde_compat")]
    pub body_timeout: Duration,
    /// How many writers receive each trace.
    pub replication_factor: u8,
    /// Longest wait between delivery attempts to an unreachable writer.
    #[serde(with = "humantime_serde_compat")]
    pub max_retry_backoff: Duration,
    /// Largest attribute value (string or bytes) stored; longer ones are
    /// truncated and counted.
    pub max_attribute_value_size: ByteSize,
    /// Most attributes on one resource, scope, span, event or link; a
    /// request with more is refused (413 / INVALID_ARGUMENT).
    pub max_attributes: usize,
    /// Largest a request may grow to once converted to span rows (resource
    /// and scope attributes repeat on every span); past it the request is
    /// refused with 413 / INVALID_ARGUMENT before it is acknowledged.
    pub max_converted_request_size: ByteSize,
}

impl Default for AcceptorConfig {
    fn default() -> Self {
        Self {
            grpc_addr: SocketAddr::from(([0, 0, 0, 0], ports::OTLP_GRPC)),
            http_addr: SocketAddr::from(([0, 0, 0, 0], ports::OTLP_HTTP)),
            max_request_size: ByteSize::mib(16),
            max_pending: ByteSize::mib(256),
            max_in_flight: ByteSize::mib(256),
            max_delivering: ByteSize::mib(32),
            max_converted_pending: ByteSize::mib(96),
            body_timeout: Duration::from_secs(15),
            replication_factor: 1,
            max_retry_backoff: Duration::from_secs(5),
            max_attribute_value_size: ByteSize(64 * 1024),
            max_attributes: 1024,
            max_converted_request_size: ByteSize::mib(128),
        }
    }
}

/// Buffering and Parquet flushing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WriterConfig {
    /// Arrow Flight listen address.
    pub flight_addr: SocketAddr,
    /// Address other services use to reach this writer (`host:port`). Default:
    /// the listen address, with `0.0.0.0` replaced by `127.0.0.1`.
    pub advertise_addr: Option<String>,
    /// Flush when the buffer reaches this size.
    pub flush_max_size: ByteSize,
    /// Flush buffered data at least this often.
    #[serde(with = "humantime_serde_compat")]
    pub flush_max_age: Duration,
    /// Refuse new data (RESOURCE_EXHAUSTED) while the buffer holds this much.
    pub max_buffer_size: ByteSize,
    /// Parquet objects that no catalog row names (left by a crash between
    /// upload and registration) are deleted once they are this old; checked
    /// when the writer starts and then this often.
    #[serde(with = "humantime_serde_compat")]
    pub orphan_grace: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            flight_addr: SocketAddr::from(([0, 0, 0, 0], ports::WRITER_FLIGHT)),
            advertise_addr: None,
            flush_max_size: ByteSize::mib(64),
            flush_max_age: Duration::from_secs(30),
            max_buffer_size: ByteSize::mib(512),
            orphan_grace: Duration::from_secs(3600),
        }
    }
}

/// Compaction: a tenant's small files of one time window merged into large
/// ones sorted by trace id, duplicate spans dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompactorConfig {
    /// How often the compactor looks for work (and deletes the objects of
    /// replaced files that are due).
    #[serde(with = "humantime_serde_compat")]
    pub interval: Duration,
    /// Files are merged with files whose earliest span falls in the same
    /// window of this length (Tempo's `compaction_window`).
    #[serde(with = "humantime_serde_compat")]
    pub window: Duration,
    /// Size merged files aim for. Files of half this size or more are left
    /// as they are.
    pub target_file_size: ByteSize,
    /// A window is compacted once it holds this many small files, or two
    /// once the window has been over for ten minutes.
    pub min_files: usize,
    /// Most files merged by one job (each open input holds a row group's
    /// worth of its columns in memory).
    pub max_files: usize,
    /// How long a replaced file's object outlives its catalog row: longer
    /// than any query may run (`querier.query_timeout`).
    #[serde(with = "humantime_serde_compat")]
    pub delete_delay: Duration,
    /// How long a job's lease in the catalog lasts without renewal; a
    /// compactor that dies mid-job holds its window this long.
    #[serde(with = "humantime_serde_compat")]
    pub lease_ttl: Duration,
}

impl Default for CompactorConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            window: Duration::from_secs(3600),
            target_file_size: ByteSize::mib(256),
            min_files: 4,
            max_files: 8,
            delete_delay: Duration::from_secs(5 * 60),
            lease_ttl: Duration::from_secs(5 * 60),
        }
    }
}

/// Query execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuerierConfig {
    /// Arrow Flight listen address.
    pub flight_addr: SocketAddr,
    /// Address other services use to reach this querier (`host:port`). Default:
    /// the listen address, with `0.0.0.0` replaced by `127.0.0.1`.
    pub advertise_addr: Option<String>,
    /// Longest wait for one writer's unflushed data before answering without it.
    #[serde(with = "humantime_serde_compat")]
    pub buffer_timeout: Duration,
    /// Memory all running queries may hold together: DataFusion's operators
    /// (sorts, aggregations) and the spans a query collects outside them; a
    /// query that needs more fails with RESOURCE_EXHAUSTED instead of
    /// growing the process.
    pub memory_limit: ByteSize,
    /// Memory for the per-file indexes trace-by-id keeps (Parquet footers,
    /// page indexes, trace-id bloom filters); the least recently used go
    /// first. About 0.3 MiB per stored file.
    pub index_cache_size: ByteSize,
    /// Longest a query may run; past it the client gets DEADLINE_EXCEEDED
    /// (HTTP 504) and the query's work stops.
    #[serde(with = "humantime_serde_compat")]
    pub query_timeout: Duration,
    /// How far back searches and tag lookups without `start`/`end` look.
    #[serde(with = "humantime_serde_compat")]
    pub default_lookback: Duration,
    /// Longest `end - start` a search or tag lookup may cover (Tempo's
    /// `max_duration`); a longer one is refused with 400. 0: no bound.
    #[serde(with = "humantime_serde_compat")]
    pub max_search_duration: Duration,
    /// Queries one querier runs at once; past it a query is refused at once
    /// with RESOURCE_EXHAUSTED (HTTP 429) instead of queueing.
    pub max_concurrent_queries: usize,
    /// Threads of the runtime queries run on, apart from the one serving
    /// sockets, so a heavy query cannot hold up other requests' I/O.
    /// 0: one per CPU core.
    pub cpu_threads: usize,
    /// Files one querier reads of a search that reads every file in range
    /// (its condition is not the whole query, or `most_recent=true`): past
    /// this many, the scan is split across the live queriers, this many
    /// files each.
    pub files_per_task: usize,
}

impl Default for QuerierConfig {
    fn default() -> Self {
        Self {
            flight_addr: SocketAddr::from(([0, 0, 0, 0], ports::QUERIER_FLIGHT)),
            advertise_addr: None,
            buffer_timeout: Duration::from_secs(5),
            memory_limit: ByteSize::mib(1024),
            index_cache_size: ByteSize::mib(256),
            query_timeout: Duration::from_secs(60),
            default_lookback: Duration::from_secs(24 * 3600),
            max_search_duration: Duration::from_secs(168 * 3600),
            max_concurrent_queries: 16,
            cpu_threads: 0,
            files_per_task: 8,
        }
    }
}

/// The external query APIs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterConfig {
    /// Grafana Tempo HTTP API listen address.
    pub http_addr: SocketAddr,
    /// Flight SQL listen address.
    pub flight_sql_addr: SocketAddr,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([0, 0, 0, 0], ports::ROUTER_HTTP)),
            flight_sql_addr: SocketAddr::from(([0, 0, 0, 0], ports::ROUTER_FLIGHT_SQL)),
        }
    }
}

/// The write-ahead logs of the acceptor and writer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WalConfig {
    /// Directory of the WALs (one subdirectory per role). Default: `<data_dir>/wal`.
    pub dir: Option<PathBuf>,
    /// A segment is closed and a new one started at this size.
    pub segment_size: ByteSize,
}

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            dir: None,
            segment_size: ByteSize::mib(64),
        }
    }
}

/// Where the catalog lives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogConfig {
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST:PORT/DB`. Default:
    /// SQLite at `<data_dir>/catalog.db`.
    pub url: Option<String>,
    /// Largest number of pooled connections.
    pub max_connections: u32,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 8,
        }
    }
}

/// Where Parquet files go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[derive(Default)]
pub struct StorageConfig {
    /// `file:///PATH` or `s3://BUCKET[/PREFIX]`. Default: `<data_dir>/objects`.
    pub url: Option<String>,
    pub s3: S3Config,
}

/// Settings for `s3://` storage URLs. Unset values come from the usual
/// `AWS_*` environment variables.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Endpoint of an S3-compatible server, e.g. `http://minio:9000`.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`), as most S3-compatible servers need.
    pub path_style: bool,
    /// Allow `http://` endpoints.
    pub allow_http: bool,
}

/// The service registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoveryConfig {
    #[serde(with = "humantime_serde_compat")]
    pub heartbeat_interval: Duration,
    /// A service whose last heartbeat is older than this is out of routing.
    #[serde(with = "humantime_serde_compat")]
    pub ttl: Duration,
    /// In Kubernetes: also follow the EndpointSlices of the role Services, so
    /// that a pod that is not ready (or gone) leaves routing at once instead
    /// of after `ttl`. Set by the operator; unset elsewhere.
    pub kubernetes: Option<KubernetesDiscovery>,
}

/// EndpointSlice discovery: which Services to follow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesDiscovery {
    /// Namespace of the Services. Default: the pod's own (`POD_NAMESPACE`,
    /// else the service account's namespace file).
    pub namespace: Option<String>,
    /// Headless Service whose endpoints are the writer pods.
    pub writer_service: Option<String>,
    /// Headless Service whose endpoints are the querier pods.
    pub querier_service: Option<String>,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(5),
            ttl: Duration::from_secs(30),
            kubernetes: None,
        }
    }
}

/// `/metrics`, `/ready`, `/live`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    pub addr: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([0, 0, 0, 0], ports::ADMIN_HTTP)),
        }
    }
}

/// How the roles of one cluster trust each other.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// File holding the cluster token (at least 16 characters), the same for
    /// every role of a cluster: role-to-role Flight calls carry it as
    /// `authorization: Bearer <token>`, and the writer's and querier's Flight
    /// ports and the drain controls on the admin port refuse calls without
    /// it. Unset: the all-in-one process makes a random one at start (nobody
    /// outside can act as one of its roles); a role run alone checks nothing
    /// and warns.
    pub token_file: Option<PathBuf>,
}

/// TLS on the listeners clients reach: OTLP gRPC and HTTP, the Tempo API
/// and Flight SQL. Role-to-role ports are not affected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the certificate chain, leaf first (cert-manager's
    /// `tls.crt`). Set together with `key_file`; unset: plain TCP.
    pub cert_file: Option<PathBuf>,
    /// PEM file of the certificate's private key (cert-manager's `tls.key`;
    /// PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// How often the files are checked; a changed pair is presented to
    /// the connections that follow (renewals need no restart).
    #[serde(with = "humantime_serde_compat")]
    pub reload_interval: Duration,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert_file: None,
            key_file: None,
            reload_interval: Duration::from_secs(10),
        }
    }
}

/// Tenancy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenancyConfig {
    /// Require `X-Scope-OrgID` on every request. When off, requests without it
    /// belong to `default_tenant`.
    pub multi_tenant: bool,
    pub default_tenant: TenantId,
    /// Require an API key (`Authorization: Bearer <key>`, made with
    /// `signaldb keys create`) on OTLP, the Tempo API and Flight SQL. The
    /// key decides the tenant; an `X-Scope-OrgID` naming another tenant is
    /// refused with 403.
    pub api_keys: bool,
    /// How long a looked-up API key is trusted before the catalog is asked
    /// again: a revoked key stops working within this time.
    #[serde(with = "humantime_serde_compat")]
    pub api_key_cache_ttl: Duration,
}

impl Default for TenancyConfig {
    fn default() -> Self {
        Self {
            multi_tenant: false,
            default_tenant: TenantId::default_tenant(),
            api_keys: false,
            api_key_cache_ttl: Duration::from_secs(10),
        }
    }
}

/// Per-tenant limits: `defaults` for every tenant, and `overrides` by
/// tenant id (as Tempo's overrides). An override is a whole set of limits:
/// a field it leaves out takes the built-in default, not `defaults`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub defaults: TenantLimits,
    pub overrides: std::collections::BTreeMap<TenantId, TenantLimits>,
}

impl LimitsConfig {
    /// The limits of `tenant`.
    pub fn of(&self, tenant: &TenantId) -> &TenantLimits {
        self.overrides.get(tenant).unwrap_or(&self.defaults)
    }
}

/// What one tenant may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantLimits {
    /// OTLP bytes per second the tenant may send (protobuf size of each
    /// request after validation); past it, 429 / RESOURCE_EXHAUSTED with
    /// when to retry. 0: no limit.
    pub ingestion_rate: ByteSize,
    /// Bytes the tenant may send at once above its rate (the token bucket's
    /// size); a single request larger than this is refused with 413.
    pub ingestion_burst: ByteSize,
    /// Queries of the tenant one querier runs at once; past it a query is
    /// refused with 429 / RESOURCE_EXHAUSTED, so one tenant cannot take
    /// every slot of `querier.max_concurrent_queries`. 0 (the default, for
    /// the single-tenant case): no limit of its own; set it when tenants
    /// share queriers.
    pub max_concurrent_queries: usize,
    /// OTLP bytes one trace may gather (Tempo's `max_bytes_per_trace`),
    /// counted by each acceptor over the spans it received while the trace
    /// is active (a minute since its last span). Spans that would take a
    /// trace past it are refused before the acknowledgement and reported in
    /// `partial_success` (413 / INVALID_ARGUMENT when no span is left).
    /// 0: no limit.
    pub max_bytes_per_trace: ByteSize,
    /// How long the tenant's spans are kept (Tempo's `block_retention`):
    /// files whose spans all ended longer ago leave the catalog, and their
    /// objects are deleted a little later, once queries that may have
    /// planned on them are over. 0: kept forever.
    #[serde(with = "humantime_serde_compat")]
    pub retention: Duration,
    /// The tenant's largest attribute value (string or bytes); longer ones
    /// are truncated and counted. Unset: `acceptor.max_attribute_value_size`.
    pub max_attribute_value_size: Option<ByteSize>,
    /// The most attributes the tenant may put on one resource, scope, span,
    /// event or link. Unset: `acceptor.max_attributes`.
    pub max_attributes: Option<usize>,
}

impl Default for TenantLimits {
    fn default() -> Self {
        Self {
            ingestion_rate: ByteSize::mib(64),
            ingestion_burst: ByteSize::mib(128),
            max_concurrent_queries: 0,
            max_bytes_per_trace: ByteSize::mib(5),
            retention: Duration::from_secs(14 * 24 * 3600),
            max_attribute_value_size: None,
            max_attributes: None,
        }
    }
}

impl Config {
    /// Loads a configuration: defaults, then `file`, then every `SIGNALDB_*`
    /// pair of `env`, then `overrides` (`key.path`, value), then validation.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        let mut tree = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                if text.trim().is_empty() {
                    Value::Mapping(Mapping::new())
                } else {
                    serde_yaml_ng::from_str(&text).map_err(|source| ConfigError::Yaml {
                        path: path.to_owned(),
                        source,
                    })?
                }
            }
            None => Value::Mapping(Mapping::new()),
        };
        let (mut env_pairs, _ignored) = env_overrides(env);
        env_pairs.sort();
        for (key, value) in env_pairs.iter().chain(overrides) {
            set_path(&mut tree, key, value)?;
        }
        let config: Config = serde_yaml_ng::from_value(tree).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a YAML document, as the operator renders it.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let config: Config = serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Renders the configuration as YAML.
    pub fn to_yaml(&self) -> Result<String, ConfigError> {
        serde_yaml_ng::to_string(self).map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// Checks rules that span fields or that types cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.acceptor.replication_factor == 0 {
            return bad("acceptor.replication_factor must be at least 1".into());
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return bad("tls.cert_file and tls.key_file are set together or not at all".to_owned());
        }
        if self.tls.reload_interval < Duration::from_millis(100) {
            return bad(format!(
                "tls.reload_interval is {}; at least 100ms is needed",
                humantime::format_duration(self.tls.reload_interval)
            ));
        }
        if self.acceptor.max_request_size.as_u64() < 1024 {
            return bad(format!(
                "acceptor.max_request_size is {}; at least 1KiB is needed",
                self.acceptor.max_request_size
            ));
        }
        if self.acceptor.max_pending < self.acceptor.max_request_size {
            return bad(format!(
                "acceptor.max_pending ({}) must be at least acceptor.max_request_size ({})",
                self.acceptor.max_pending, self.acceptor.max_request_size
            ));
        }
        if self.acceptor.max_in_flight < self.acceptor.max_request_size {
            return bad(format!(
                "acceptor.max_in_flight ({}) must be at least acceptor.max_request_size ({})",
                self.acceptor.max_in_flight, self.acceptor.max_request_size
            ));
        }
        if self.writer.flush_max_size > self.writer.max_buffer_size {
            return bad(format!(
                "writer.flush_max_size ({}) must not exceed writer.max_buffer_size ({})",
                self.writer.flush_max_size, self.writer.max_buffer_size
            ));
        }
        if self.writer.orphan_grace < Duration::from_secs(60) {
            return bad(format!(
                "writer.orphan_grace is {}; at least 1m is needed (an upload is registered within seconds)",
                humantime::format_duration(self.writer.orphan_grace)
            ));
        }
        if self.writer.flush_max_age.is_zero() {
            return bad("writer.flush_max_age must be greater than zero".into());
        }
        let c = &self.compactor;
        if c.interval.is_zero() || c.window.is_zero() || c.lease_ttl.is_zero() {
            return bad(
                "compactor.interval, compactor.window and compactor.lease_ttl must be greater than zero".into(),
            );
        }
        if c.min_files < 2 || c.max_files < c.min_files {
            return bad(format!(
                "compactor.min_files ({}) must be at least 2 and compactor.max_files ({}) at least min_files",
                c.min_files, c.max_files
            ));
        }
        if c.target_file_size.as_u64() < 1024 * 1024 {
            return bad(format!(
                "compactor.target_file_size is {}; at least 1MiB is needed",
                c.target_file_size
            ));
        }
        if self.wal.segment_size.as_u64() < 4096 {
            return bad(format!(
                "wal.segment_size is {}; at least 4KiB is needed",
                self.wal.segment_size
            ));
        }
        if self.discovery.heartbeat_interval.is_zero() {
            return bad("discovery.heartbeat_interval must be greater than zero".into());
        }
        if self.discovery.ttl <= self.discovery.heartbeat_interval {
            return bad(format!(
                "discovery.ttl ({}) must be longer than discovery.heartbeat_interval ({})",
                humantime::format_duration(self.discovery.ttl),
                humantime::format_duration(self.discovery.heartbeat_interval)
            ));
        }
        if let Some(url) = &self.catalog.url
            && !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return bad(format!("catalog.url {url:?} is neither sqlite:PATH nor postgres://..."));
        }
        if let Some(url) = &self.storage.url
            && !(url.starts_with("file://") || url.starts_with("s3://"))
        {
            return bad(format!(
                "storage.url {url:?} is neither file:///PATH nor s3://BUCKET[/PREFIX]"
            ));
        }
        if let Some(id) = &self.node_id
            && (id.is_empty() || id.len() > 253 || id.chars().any(|c| c.is_whitespace() || c == '/'))
        {
            return bad(format!(
                "node_id {id:?} must be 1 to 253 characters without spaces or '/'"
            ));
        }
        Ok(())
    }

    /// The WAL directory of a role.
    pub fn wal_dir(&self, role: &str) -> PathBuf {
        self.wal
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("wal"))
            .join(role)
    }

    /// The catalog URL, defaulting to SQLite under the data directory.
    pub fn catalog_url(&self) -> String {
        self.catalog
            .url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", self.data_dir.join("catalog.db").display()))
    }
}

/// The top-level keys of the configuration.
fn top_level_keys() -> Vec<String> {
    match serde_yaml_ng::to_value(Config::default()) {
        Ok(Value::Mapping(m)) => m.keys().filter_map(|k| k.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

/// Splits `SIGNALDB_*` variables into configuration overrides (`key.path`,
/// value) and the names of those that name no configuration key. The latter
/// are ignored, not fatal: Kubernetes injects `SIGNALDB_SERVICE_HOST` and
/// friends for a Service named `signaldb`.
pub fn env_overrides(env: impl IntoIterator<Item = (String, String)>) -> (Vec<(String, String)>, Vec<String>) {
    let top = top_level_keys();
    let mut keep = Vec::new();
    let mut ignored = Vec::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let key = rest.to_ascii_lowercase().replace("__", ".");
        let first = key.split('.').next().unwrap_or_default();
        if top.iter().any(|t| t == first) {
            keep.push((key, value));
        } else {
            ignored.push(name);
        }
    }
    ignored.sort();
    (keep, ignored)
}

/// Sets `key` (dotted path) in `tree` to `value` parsed as a YAML scalar.
fn set_path(tree: &mut Value, key: &str, value: &str) -> Result<(), ConfigError> {
    let fail = |reason: String| ConfigError::Override {
        key: key.to_owned(),
        value: value.to_owned(),
        reason,
    };
    let parsed: Value = serde_yaml_ng::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(fail("empty key segment".into()));
    }
    let mut node = tree;
    for (i, part) in parts.iter().enumerate() {
        let map = match node {
            Value::Mapping(m) => m,
            Value::Null => {
                *node = Value::Mapping(Mapping::new());
                match node {
                    Value::Mapping(m) => m,
                    _ => return Err(fail("internal error".into())),
                }
            }
            _ => return Err(fail(format!("{} is not a section", parts[..i].join(".")))),
        };
        let k = Value::String((*part).to_owned());
        if i + 1 == parts.len() {
            map.insert(k, parsed);
            return Ok(());
        }
        node = map.entry(k).or_insert(Value::Null);
    }
    Ok(())
}

/// `Duration` as a humantime string (`30s`, `1m 30s`), also accepting an integer of seconds.
mod humantime_serde_compat {
    use std::time::Duration;

    use std::fmt;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as 500ms, 30s or 5m, or a number of seconds")
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(n))
        }
        fn visit_str<E: de::Error>(self, t: &str) -> Result<Duration, E> {
            humantime::parse_duration(t)
                .map_err(|e| E::custom(format!("invalid duration {t:?}: {e} (write e.g. 500ms, 30s, 5m)")))
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(DurationVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_lists_every_default() {
        let text = include_str!("../../../examples/signaldb.yaml");
        assert_eq!(Config::from_yaml(text).unwrap(), Config::default());
        let regenerated = Config::default().to_yaml().unwrap();
        assert!(
            text.ends_with(&regenerated),
            "examples/signaldb.yaml is stale: run `signaldb check-config`"
        );
    }

    #[test]
    fn defaults_are_valid_and_round_trip() {
        let c = Config::default();
        c.validate().unwrap();
        let yaml = c.to_yaml().unwrap();
        assert_eq!(Config::from_yaml(&yaml).unwrap(), c);
    }

    #[test]
    fn file_then_env_then_flags() {
        let dir = std::env::temp_dir().join(format!("sdb-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("signaldb.yaml");
        std::fs::write(
            &path,
            "data_dir: /var/lib/signaldb\nwriter:\n  flush_max_age: 10s\n  flush_max_size: 8MiB\n",
        )
        .unwrap();
        let env = vec![
            ("SIGNALDB_WRITER__FLUSH_MAX_AGE".to_owned(), "5s".to_owned()),
            ("SIGNALDB_ACCEPTOR__REPLICATION_FACTOR".to_owned(), "2".to_owned()),
            ("HOME".to_owned(), "/root".to_owned()),
            ("SIGNALDB_SERVICE_HOST".to_owned(), "10.0.0.1".to_owned()),
        ];
        let (_, ignored) = env_overrides(env.clone());
        assert_eq!(ignored, vec!["SIGNALDB_SERVICE_HOST".to_owned()]);
        let flags = vec![("writer.flush_max_age".to_owned(), "2s".to_owned())];
        let c = Config::load(Some(&path), env, &flags).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/signaldb"));
        assert_eq!(c.writer.flush_max_age, Duration::from_secs(2));
        assert_eq!(c.writer.flush_max_size, ByteSize::mib(8));
        assert_eq!(c.acceptor.replication_factor, 2);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = Config::from_yaml("writer:\n  flush_max_age: soon\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid duration \"soon\""), "{e}");
        let e = Config::from_yaml("writr: {}\n").unwrap_err().to_string();
        assert!(e.contains("unknown field `writr`"), "{e}");
        let e = Config::from_yaml("acceptor:\n  replication_factor: 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("replication_factor must be at least 1"), "{e}");
        let e = Config::from_yaml("catalog:\n  url: mysql://x\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("neither sqlite"), "{e}");
        let e = Config::from_yaml("tenancy:\n  default_tenant: a/b\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("contains '/'"), "{e}");
        let e = Config::load(
            None,
            vec![],
            &[
                ("writer.flush_max_age".into(), "3s".into()),
                ("writer.flush_max_age.x".into(), "1".into()),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("is not a section"), "{e}");
        let e = Config::from_yaml("acceptor:\n  max_pending: 12 parsecs\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown unit"), "{e}");
    }
}
