//! Wiring: turns a [`Config`] and a set of roles into running servers, and
//! stops them in an order that loses nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use signaldb_catalog::Catalog;
use signaldb_config::{Capability, Config, Role};
use signaldb_wal::{Wal, WalOptions};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::{info, warn};

use crate::acceptor::grpc::OtlpGrpc;
use crate::acceptor::{Acceptor, Delivery, pending_from_wal};
use crate::auth::{ClusterToken, RequireToken};
use crate::discovery::{WriterDirectory, run_registration, service_record};
use crate::flight::FlightPool;
use crate::metrics::Metrics;
use crate::writer::Writer;
use crate::writer::service::WriterFlight;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("creating data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("node id file {path}: {source}")]
    NodeId { path: String, source: std::io::Error },
    #[error("catalog: {0}")]
    Catalog(#[from] signaldb_catalog::Error),
    #[error("storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
    #[error("opening the {role} WAL: {source}")]
    Wal { role: Role, source: signaldb_wal::Error },
    #[error("setting up the query engine: {0}")]
    Query(String),
    #[error(transparent)]
    ClusterToken(#[from] crate::auth::TokenError),
    #[error("restoring the writer buffer from its WAL: {0}")]
    Restore(String),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("binding {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Which roles this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub acceptor: bool,
    pub writer: bool,
    pub querier: bool,
    pub router: bool,
    pub compactor: bool,
}

impl Roles {
    pub const ALL: Roles = Roles {
        acceptor: true,
        writer: true,
        querier: true,
        router: true,
        compactor: true,
    };
    pub const ACCEPTOR: Roles = Roles {
        acceptor: true,
        writer: false,
        querier: false,
        router: false,
        compactor: false,
    };
    pub const WRITER: Roles = Roles {
        acceptor: false,
        writer: true,
        querier: false,
        router: false,
        compactor: false,
    };
    pub const QUERIER: Roles = Roles {
        acceptor: false,
        writer: false,
        querier: true,
        router: false,
        compactor: false,
    };
    pub const ROUTER: Roles = Roles {
        acceptor: false,
        writer: false,
        querier: false,
        router: true,
        compactor: false,
    };
    pub const COMPACTOR: Roles = Roles {
        acceptor: false,
        writer: false,
        querier: false,
        router: false,
        compactor: true,
    };
}

/// The bound addresses of a running process.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Endpoints {
    pub node_id: String,
    pub admin: Option<SocketAddr>,
    pub otlp_grpc: Option<SocketAddr>,
    pub otlp_http: Option<SocketAddr>,
    pub writer_flight: Option<SocketAddr>,
    pub querier_flight: Option<SocketAddr>,
    pub router_http: Option<SocketAddr>,
    pub router_flight_sql: Option<SocketAddr>,
}

/// A started process. Call [`Running::shutdown`] to stop it cleanly.
#[derive(Debug)]
pub struct Running {
    pub endpoints: Endpoints,
    pub metrics: Metrics,
    writer: Option<Writer>,
    acceptor_stop: watch::Sender<bool>,
    writer_stop: watch::Sender<bool>,
    admin_stop: watch::Sender<bool>,
    acceptor_tasks: Vec<JoinHandle<()>>,
    writer_tasks: Vec<JoinHandle<()>>,
    flusher_stop: watch::Sender<bool>,
    flusher_task: Option<JoinHandle<()>>,
    delivery_stop: watch::Sender<bool>,
    delivery_tasks: Vec<JoinHandle<()>>,
    query_stop: watch::Sender<bool>,
    query_tasks: Vec<JoinHandle<()>>,
    admin_task: Option<JoinHandle<()>>,
    acceptor_wal: Option<Wal>,
    writer_wal: Option<Wal>,
}

impl Running {
    /// The writer of this process, if it runs one.
    pub fn writer(&self) -> Option<&Writer> {
        self.writer.as_ref()
    }

    /// Stops intake, lets deliveries finish (bounded), flushes the writer,
    /// deregisters, closes the WALs.
    pub async fn shutdown(self) {
        info!("shutting down");
        let _ = self.query_stop.send(true);
        for t in self.query_tasks {
            let _ = t.await;
        }
        let _ = self.acceptor_stop.send(true);
        for t in self.acceptor_tasks {
            let _ = t.await;
        }
        let _ = self.delivery_stop.send(true);
        for t in self.delivery_tasks {
            let _ = t.await;
        }
        if let Some(w) = &self.acceptor_wal {
            w.close().await;
        }
        let _ = self.writer_stop.send(true);
        for t in self.writer_tasks {
            let _ = t.await;
        }
        let _ = self.flusher_stop.send(true);
        if let Some(t) = self.flusher_task {
            let _ = t.await;
        }
        if let Some(w) = &self.writer_wal {
            w.close().await;
        }
        let _ = self.admin_stop.send(true);
        if let Some(t) = self.admin_task {
            let _ = t.await;
        }
        info!("stopped");
    }
}

/// The node id: configured, or kept in `<data_dir>/node-id` (made once).
fn node_id(config: &Config) -> Result<String, StartError> {
    if let Some(id) = &config.node_id {
        return Ok(id.clone());
    }
    let path = config.data_dir.join("node-id");
    let err = |source| StartError::NodeId {
        path: path.display().to_string(),
        source,
    };
    let create = || -> Result<String, StartError> {
        let id = format!("node-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &id).map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)?;
        Ok(id)
    };
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        Ok(_) => create(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(),
        Err(e) => Err(err(e)),
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { what, addr, source })
}

fn local_addr(l: &TcpListener) -> Option<SocketAddr> {
    l.local_addr().ok()
}

/// Replaces an unspecified IP with loopback, for advertising a listen address.
fn reachable(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port()).to_string()
    } else {
        addr.to_string()
    }
}

fn open_wal(
    config: &Config,
    role: Role,
    max_pending: u64,
    metrics: &Metrics,
) -> Result<(Wal, signaldb_wal::Replay), StartError> {
    let dir = config.wal_dir(role.as_str());
    let (wal, replay) = Wal::open(WalOptions {
        dir,
        segment_size: config.wal.segment_size.as_u64(),
        max_pending_bytes: max_pending,
    })
    .map_err(|source| StartError::Wal { role, source })?;
    let label = match role {
        Role::Acceptor => "acceptor",
        _ => "writer",
    };
    metrics.record_replay(label, &replay.stats);
    let s = &replay.stats;
    if s.corrupt_records > 0 || s.truncated_bytes > 0 || s.empty_segments > 0 {
        warn!(role = %role, corrupt_records = s.corrupt_records, truncated_bytes = s.truncated_bytes,
              empty_segments = s.empty_segments, "WAL damage found and skipped at start");
    }
    info!(role = %role, records = s.records, segments = s.segments, "WAL replayed");
    Ok((wal, replay))
}

/// The cluster token: from `cluster.token_file`, else random for the
/// all-in-one process, else none (a role run alone; warned about).
fn cluster_token(config: &Config, roles: Roles) -> Result<Option<ClusterToken>, StartError> {
    if let Some(path) = &config.cluster.token_file {
        return Ok(Some(ClusterToken::from_file(path)?));
    }
    if roles == Roles::ALL {
        return Ok(Some(ClusterToken::random()));
    }
    if roles.writer || roles.querier {
        warn!(
            "no cluster.token_file: anyone who reaches this process's Flight or admin ports can write, read or \
             drain it as if they were another SignalDB role"
        );
    }
    Ok(None)
}

/// Starts `roles` per `config`.
pub async fn start(config: Config, roles: Roles) -> Result<Running, StartError> {
    crate::install_crypto_provider();
    let metrics = Metrics::new();
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let node = node_id(&config)?;
    let cluster_token = cluster_token(&config, roles)?;
    let catalog: Arc<dyn Catalog> =
        Arc::new(signaldb_catalog::connect(&config.catalog_url(), config.catalog.max_connections).await?);
    // Who external requests act as: their API key's tenant, or their X-Scope-OrgID.
    let tenants = crate::api_keys::Tenants::new(config.tenancy.clone(), Arc::clone(&catalog));
    let ready = Arc::new(AtomicBool::new(false));
    let (acceptor_stop, acceptor_rx) = watch::channel(false);
    let (writer_stop, writer_rx) = watch::channel(false);
    let (admin_stop, admin_rx) = watch::channel(false);
    // The flusher stops after the writer's Flight server, so its final flush
    // sees every put that was acknowledged.
    let (flusher_stop, flusher_rx) = watch::channel(false);
    // Delivery stops after the OTLP servers, so every request they
    // acknowledged is handed on (or stays in the WAL past the grace period).
    let (delivery_stop, delivery_rx) = watch::channel(false);
    let mut delivery_tasks = Vec::new();
    let mut flusher_task = None;
    let (query_stop, query_rx) = watch::channel(false);
    let mut query_tasks = Vec::new();
    let mut endpoints = Endpoints {
        node_id: node.clone(),
        ..Default::default()
    };
    let mut writer_tasks = Vec::new();
    let mut acceptor_tasks = Vec::new();
    let heartbeat = config.discovery.heartbeat_interval;
    // TLS on the listeners clients reach, when configured; its files are
    // checked for renewals until the query roles stop.
    let tls = match (&config.tls.cert_file, &config.tls.key_file) {
        (Some(cert), Some(key)) if roles.acceptor || roles.router => {
            let tls = crate::tls::Tls::from_files(cert, key)?;
            query_tasks.push(tokio::spawn(
                tls.clone().watch(config.tls.reload_interval, query_rx.clone()),
            ));
            Some(tls)
        }
        _ => None,
    };

    // In Kubernetes, the role Services' EndpointSlices filter the registry.
    let readiness = match &config.discovery.kubernetes {
        Some(k) => crate::endpoints::Readiness::start(k, admin_rx.clone()).await,
        None => None,
    };

    // Writer first, so that an all-in-one acceptor finds it at once.
    let mut writer = None;
    let mut writer_wal = None;
    if roles.writer {
        let store = crate::storage::open(&config)?;
        let (wal, replay) = open_wal(&config, Role::Writer, u64::MAX, &metrics)?;
        let id = format!("{node}-writer");
        writer_tasks.push(tokio::spawn(collect_orphans(
            Arc::clone(&store),
            Arc::clone(&catalog),
            config.writer.orphan_grace,
            metrics.writer_orphans_deleted.clone(),
            writer_rx.clone(),
        )));
        writer_tasks.push(tokio::spawn(crate::retention::run(
            Arc::clone(&store),
            Arc::clone(&catalog),
            config.limits.clone(),
            metrics.writer_files_expired.clone(),
            writer_rx.clone(),
        )));
        let w = Writer::new(
            id.clone(),
            wal.clone(),
            Arc::clone(&catalog),
            store,
            crate::storage::local_root(&config),
            config.writer.clone(),
            metrics.clone(),
        );
        let restored = w
            .restore(replay.entries)
            .await
            .map_err(|e| StartError::Restore(e.to_string()))?;
        if restored > 0 {
            info!(batches = restored, "writer buffer restored from the WAL");
        }
        let listener = bind("writer Flight", config.writer.flight_addr).await?;
        let bound = local_addr(&listener);
        endpoints.writer_flight = bound;
        let advertise = config
            .writer
            .advertise_addr
            .clone()
            .or(bound.map(reachable))
            .unwrap_or_default();
        let svc = service_record(id, Role::Writer, advertise, vec![Capability::Storage]);
        catalog.register_service(&svc).await?;
        let flight = tonic::service::interceptor::InterceptedService::new(
            WriterFlight::new(w.clone()).into_server(),
            RequireToken::new(cluster_token.clone()),
        );
        writer_tasks.push(spawn_server(
            "writer Flight server",
            tonic::transport::Server::builder()
                .add_service(flight)
                .serve_with_incoming_shutdown(incoming(listener), stopped(writer_rx.clone())),
        ));
        writer_tasks.push(tokio::spawn(run_registration(
            Arc::clone(&catalog),
            svc,
            heartbeat,
            writer_rx.clone(),
        )));
        flusher_task = Some(tokio::spawn(w.clone().run_flusher(flusher_rx)));
        writer = Some(w);
        writer_wal = Some(wal);
    }

    let mut acceptor_wal = None;
    let mut acceptor_handle = None;
    if roles.acceptor {
        let (wal, replay) = open_wal(&config, Role::Acceptor, config.acceptor.max_pending.as_u64(), &metrics)?;
        let id = format!("{node}-acceptor");
        let directory =
            WriterDirectory::new(Arc::clone(&catalog), config.discovery.ttl).with_readiness(readiness.clone());
        let _ = directory.refresh().await;
        let (tx, rx) = mpsc::unbounded_channel();
        for entry in replay.entries {
            match pending_from_wal(entry.seq, &entry.payload) {
                Ok(p) => {
                    let _ = tx.send(p);
                }
                Err(e) => {
                    warn!(error = %e, "skipping unreadable acceptor WAL record");
                    metrics.record_skipped("acceptor");
                    wal.mark_done(&[entry.seq]);
                }
            }
        }
        let delivery = Delivery {
            source: id.clone(),
            wal: wal.clone(),
            writers: directory.clone(),
            pool: FlightPool::new(cluster_token.clone()),
            metrics: metrics.clone(),
            replication_factor: usize::from(config.acceptor.replication_factor),
            max_backoff: config.acceptor.max_retry_backoff,
            max_delivering: config.acceptor.max_delivering.as_usize(),
            shutdown_grace: Duration::from_secs(10),
        };
        delivery_tasks.push(tokio::spawn(delivery.run(rx, delivery_rx.clone())));
        delivery_tasks.push(tokio::spawn(
            directory.run(Duration::from_secs(2).min(heartbeat), delivery_rx),
        ));
        let acceptor = Acceptor::new(
            wal.clone(),
            config.acceptor.clone(),
            tenants.clone(),
            config.limits.clone(),
            metrics.clone(),
            tx,
        );
        acceptor_handle = Some(acceptor.clone());

        let grpc_listener = bind("OTLP gRPC", config.acceptor.grpc_addr).await?;
        endpoints.otlp_grpc = local_addr(&grpc_listener);
        let grpc = OtlpGrpc::new(acceptor.clone());
        let admission = crate::acceptor::admission::GrpcAdmissionLayer {
            in_flight: acceptor.in_flight().clone(),
            // The message limit plus gRPC's 5-byte frame header.
            max_body: config.acceptor.max_request_size.as_usize().saturating_add(5),
            metrics: metrics.clone(),
        };
        let otlp = tonic::transport::Server::builder()
            .layer(admission)
            .add_service(grpc.clone().trace_service())
            .add_service(grpc.clone().logs_service())
            .add_service(grpc.metrics_service());
        acceptor_tasks.push(match &tls {
            Some(tls) => spawn_server(
                "OTLP gRPC server",
                otlp.serve_with_incoming_shutdown(
                    tls.listen(grpc_listener, "OTLP gRPC").into_stream(),
                    stopped(acceptor_rx.clone()),
                ),
            ),
            None => spawn_server(
                "OTLP gRPC server",
                otlp.serve_with_incoming_shutdown(incoming(grpc_listener), stopped(acceptor_rx.clone())),
            ),
        });

        let http_listener = bind("OTLP HTTP", config.acceptor.http_addr).await?;
        endpoints.otlp_http = local_addr(&http_listener);
        let app = crate::acceptor::http::router(acceptor);
        acceptor_tasks.push(spawn_http(
            "OTLP HTTP server",
            http_listener,
            tls.as_ref(),
            app,
            acceptor_rx.clone(),
        ));
        let address = endpoints.otlp_grpc.map(reachable).unwrap_or_default();
        let svc = service_record(id, Role::Acceptor, address, vec![Capability::TraceIngestion]);
        acceptor_tasks.push(tokio::spawn(run_registration(
            Arc::clone(&catalog),
            svc,
            heartbeat,
            acceptor_rx,
        )));
        acceptor_wal = Some(wal);
    }

    if roles.querier {
        let store = crate::storage::open(&config)?;
        let buffers = crate::querier::WriterBuffers {
            catalog: Arc::clone(&catalog),
            pool: FlightPool::new(cluster_token.clone()),
            ttl: config.discovery.ttl,
            timeout: config.querier.buffer_timeout,
            readiness: readiness.clone(),
        };
        let listener = bind("querier Flight", config.querier.flight_addr).await?;
        let bound = local_addr(&listener);
        endpoints.querier_flight = bound;
        let advertise = config
            .querier
            .advertise_addr
            .clone()
            .or(bound.map(reachable))
            .unwrap_or_default();
        // The queriers a search's file scans may be split across.
        let peers = Arc::new(signaldb_query::Peers::default());
        let self_url = url::Url::parse(&format!("http://{advertise}"))
            .map_err(|e| StartError::Query(format!("querier address {advertise:?}: {e}")))?;
        let engine = signaldb_query::QueryEngine::new(Arc::clone(&catalog), store, Arc::new(buffers))
            .and_then(|e| e.with_memory_limit(config.querier.memory_limit.as_usize()))
            .map_err(|e| StartError::Query(e.to_string()))?
            .with_timeout(config.querier.query_timeout)
            .with_index_cache(config.querier.index_cache_size.as_usize())
            .with_cpu_runtime(query_runtime(config.querier.cpu_threads)?)
            .with_cluster(
                Arc::clone(&peers),
                cluster_token.as_ref().map(ClusterToken::bearer).as_deref(),
                self_url,
                config.querier.files_per_task,
                {
                    let tasks = metrics.querier_scan_tasks.clone();
                    Arc::new(move || {
                        tasks.inc();
                    })
                },
            )
            .map_err(|e| StartError::Query(e.to_string()))?;
        query_tasks.push(tokio::spawn(refresh_peers(
            Arc::clone(&catalog),
            peers,
            config.discovery.ttl,
            query_rx.clone(),
        )));
        let worker = engine.worker_service();
        let svc = service_record(
            format!("{node}-querier"),
            Role::Querier,
            advertise,
            vec![Capability::QueryExecution],
        );
        catalog.register_service(&svc).await?;
        // File indexes loaded ahead of the lookups that need them.
        {
            let engine = engine.clone();
            let stop = query_rx.clone();
            query_tasks.push(tokio::spawn(async move {
                // Loading indexes decodes footers: query work, on the query runtime.
                let warming = engine.clone();
                let ran = engine
                    .run(async move {
                        warming.warm_indexes(INDEX_WARM_INTERVAL, stop).await;
                        Ok(())
                    })
                    .await;
                if let Err(e) = ran {
                    tracing::error!(error = %e, "loading file indexes ahead of queries stopped");
                }
            }));
        }
        let flight = crate::querier::QuerierFlight::new(
            engine,
            crate::querier::QuerierLimits {
                lookback: config.querier.default_lookback,
                max_search_duration: config.querier.max_search_duration,
                max_running: config.querier.max_concurrent_queries,
            },
            config.limits.clone(),
        )
        .into_server();
        let flight =
            tonic::service::interceptor::InterceptedService::new(flight, RequireToken::new(cluster_token.clone()));
        // Peers' shares of split scans, on the same port, behind the same token.
        let worker = worker
            .map(|w| tonic::service::interceptor::InterceptedService::new(w, RequireToken::new(cluster_token.clone())));
        query_tasks.push(spawn_server(
            "querier Flight server",
            tonic::transport::Server::builder()
                .add_service(flight)
                .add_optional_service(worker)
                .serve_with_incoming_shutdown(incoming(listener), stopped(query_rx.clone())),
        ));
        query_tasks.push(tokio::spawn(run_registration(
            Arc::clone(&catalog),
            svc,
            heartbeat,
            query_rx.clone(),
        )));
    }

    if roles.compactor {
        let compactor = crate::compactor::Compactor::new(
            format!("{node}-compactor"),
            crate::storage::open(&config)?,
            Arc::clone(&catalog),
            crate::storage::local_root(&config),
            config.compactor.clone(),
            metrics.clone(),
        );
        query_tasks.push(tokio::spawn(compactor.run(query_rx.clone())));
    }

    if roles.router {
        let queriers = crate::router::QuerierClient::new(
            Arc::clone(&catalog),
            FlightPool::new(cluster_token.clone()),
            config.discovery.ttl,
        )
        .with_readiness(readiness.clone());
        let backend = Arc::new(crate::router::QuerierBackend::new(queriers.clone()));
        let app = crate::router::with_api_keys(
            signaldb_tempo::router(backend, config.tenancy.clone(), build_info()),
            tenants.clone(),
        );
        let http_listener = bind("router HTTP", config.router.http_addr).await?;
        endpoints.router_http = local_addr(&http_listener);
        query_tasks.push(spawn_http(
            "router HTTP server",
            http_listener,
            tls.as_ref(),
            app,
            query_rx.clone(),
        ));
        let sql_listener = bind("router Flight SQL", config.router.flight_sql_addr).await?;
        endpoints.router_flight_sql = local_addr(&sql_listener);
        let flight_sql = crate::router::flight_sql::FlightSql::new(queriers, tenants.clone()).into_server();
        let sql = tonic::transport::Server::builder().add_service(flight_sql);
        query_tasks.push(match &tls {
            Some(tls) => spawn_server(
                "router Flight SQL server",
                sql.serve_with_incoming_shutdown(
                    tls.listen(sql_listener, "Flight SQL").into_stream(),
                    stopped(query_rx.clone()),
                ),
            ),
            None => spawn_server(
                "router Flight SQL server",
                sql.serve_with_incoming_shutdown(incoming(sql_listener), stopped(query_rx.clone())),
            ),
        });
        let address = endpoints.router_http.map(reachable).unwrap_or_default();
        let svc = service_record(
            format!("{node}-router"),
            Role::Router,
            address,
            vec![Capability::Routing],
        );
        query_tasks.push(tokio::spawn(run_registration(
            Arc::clone(&catalog),
            svc,
            heartbeat,
            query_rx.clone(),
        )));
    }

    let admin_listener = bind("admin HTTP", config.admin.addr).await?;
    endpoints.admin = local_addr(&admin_listener);
    let admin = crate::admin::router(crate::admin::AdminState {
        metrics: metrics.clone(),
        ready: Arc::clone(&ready),
        writer: writer.clone(),
        acceptor: acceptor_handle,
        catalog: Arc::clone(&catalog),
        token: cluster_token.clone(),
    });
    let admin_task = spawn_server(
        "admin HTTP server",
        axum::serve(no_delay(admin_listener), admin).with_graceful_shutdown(stopped(admin_rx)),
    );
    ready.store(true, Ordering::Release);
    info!(?endpoints, "SignalDB started");
    Ok(Running {
        endpoints,
        metrics,
        writer,
        acceptor_stop,
        writer_stop,
        admin_stop,
        acceptor_tasks,
        writer_tasks,
        flusher_stop,
        flusher_task,
        delivery_stop,
        delivery_tasks,
        query_stop,
        query_tasks,
        admin_task: Some(admin_task),
        acceptor_wal,
        writer_wal,
    })
}

/// Accepted gRPC connections with Nagle's algorithm off: a small answer
/// goes out at once instead of waiting for the peer's delayed ACK (about
/// 40 ms per exchange, which was most of a trace-by-id's latency).
fn incoming(
    listener: TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> + Send + 'static {
    use futures::StreamExt;
    TcpListenerStream::new(listener).map(|conn| {
        if let Ok(c) = &conn {
            let _ = c.set_nodelay(true);
        }
        conn
    })
}

/// An HTTP listener whose connections have Nagle's algorithm off (see
/// [`incoming`]).
fn no_delay(listener: TcpListener) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = SocketAddr> {
    use axum::serve::ListenerExt;
    listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    })
}

/// Deletes orphan Parquet objects now and then every `grace`, until
/// `stop` fires.
async fn collect_orphans(
    store: Arc<dyn object_store::ObjectStore>,
    catalog: Arc<dyn Catalog>,
    grace: Duration,
    deleted: prometheus_client::metrics::counter::Counter,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match crate::orphans::collect(&store, &catalog, grace, chrono::Utc::now()).await {
            Ok(found) => {
                deleted.inc_by(found.deleted);
                if found.deleted > 0 {
                    info!(
                        deleted = found.deleted,
                        bytes = found.bytes,
                        "orphan Parquet objects deleted"
                    );
                }
            }
            Err(e) => warn!(error = %e, "orphan collection failed; retried later"),
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(grace) => {}
        }
    }
}

/// Serves `app` on `listener` until `stop` fires: over TLS when the
/// process has a certificate, plain TCP (without Nagle's delay) otherwise.
fn spawn_http(
    what: &'static str,
    listener: TcpListener,
    tls: Option<&crate::tls::Tls>,
    app: axum::Router,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    match tls {
        Some(tls) => spawn_server(
            what,
            axum::serve(tls.listen(listener, what), app).with_graceful_shutdown(stopped(stop)),
        ),
        None => spawn_server(
            what,
            axum::serve(no_delay(listener), app).with_graceful_shutdown(stopped(stop)),
        ),
    }
}

/// Resolves when `stop` fires (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.changed().await;
}

/// How often the querier loads the indexes of newly registered files.
const INDEX_WARM_INTERVAL: Duration = Duration::from_secs(1);

/// Runs a server (`serve`, which ends after its shutdown signal and its open
/// requests) as a task, logging why it failed if it did.
/// Keeps `peers` to the live queriers in the catalog, as `http://address`.
async fn refresh_peers(
    catalog: Arc<dyn Catalog>,
    peers: Arc<signaldb_query::Peers>,
    ttl: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    loop {
        match catalog
            .live_services(Capability::QueryExecution, crate::now_ms(), ttl_ms)
            .await
        {
            Ok(queriers) => peers.set(
                queriers
                    .iter()
                    .filter_map(|q| url::Url::parse(&format!("http://{}", q.address)).ok())
                    .collect(),
            ),
            Err(e) => tracing::warn!(error = %e, "listing the queriers for split scans failed; retried"),
        }
        tokio::select! {
            _ = tokio::time::sleep(PEER_REFRESH_INTERVAL) => {}
            _ = stop.changed() => return,
        }
    }
}

/// How often a querier lists its peers.
const PEER_REFRESH_INTERVAL: Duration = Duration::from_secs(2);

/// The runtime queries run on: `threads` workers, or one per core.
fn query_runtime(threads: usize) -> Result<signaldb_query::CpuRuntime, StartError> {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        n => n,
    };
    signaldb_query::CpuRuntime::new(threads).map_err(|e| StartError::Query(format!("starting the query runtime: {e}")))
}

fn spawn_server<S, E>(what: &'static str, serve: S) -> JoinHandle<()>
where
    S: std::future::IntoFuture<Output = Result<(), E>>,
    S::IntoFuture: Send + 'static,
    E: std::fmt::Display,
{
    let serve = serve.into_future();
    tokio::spawn(async move {
        if let Err(e) = serve.await {
            warn!(error = %e, "{what} failed");
        }
    })
}

/// What `/api/status/buildinfo` reports.
pub fn build_info() -> signaldb_tempo::BuildInfo {
    signaldb_tempo::BuildInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        revision: option_env!("SIGNALDB_GIT_REVISION").unwrap_or("unknown").to_owned(),
        branch: option_env!("SIGNALDB_GIT_BRANCH").unwrap_or("unknown").to_owned(),
        build_user: "signaldb".to_owned(),
        build_date: option_env!("SIGNALDB_BUILD_DATE").unwrap_or("unknown").to_owned(),
        go_version: format!("rust (signaldb {})", env!("CARGO_PKG_VERSION")),
    }
}
