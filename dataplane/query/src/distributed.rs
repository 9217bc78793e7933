//! Scans split across queriers with `datafusion-distributed`.
//!
//! Every querier runs a worker next to its Flight service (same port, its
//! own gRPC service) that executes plan fragments against SignalDB's
//! object store. The querier a search reaches is the coordinator: when the
//! search must read every file in range (its condition is not the whole
//! query, or it keeps the newest matches), the candidate scan of those
//! files is planned once and its file groups dealt out to the queriers in
//! [`Peers`], this one included; each reads its share with the same pushed
//! down predicates and sends back only the matching rows' ids and times.
//!
//! Every call between queriers carries the cluster token, so a worker
//! answers only its cluster.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_distributed::{
    ChannelResolver, DesiredTaskCountEvent, DesiredTaskCountEventResponse, DistributedExt, DistributedMetricsFormat,
    SessionStateBuilderExt, Worker, WorkerChannel, WorkerQueryContext, WorkerResolver, grpc,
    rewrite_distributed_plan_with_metrics,
};
use url::Url;

/// The queriers a scan may be split across, this one included; refreshed
/// from the catalog by the server.
#[derive(Debug, Default)]
pub struct Peers {
    urls: RwLock<Vec<Url>>,
}

impl Peers {
    /// Replaces the list (`http://host:port` of each querier).
    pub fn set(&self, mut urls: Vec<Url>) {
        urls.sort();
        urls.dedup();
        *self.urls.write().unwrap_or_else(std::sync::PoisonError::into_inner) = urls;
    }

    pub fn len(&self) -> usize {
        self.urls
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The resolver datafusion-distributed asks for workers.
#[derive(Debug, Clone)]
struct PeerList(Arc<Peers>);

impl WorkerResolver for PeerList {
    fn get_urls(&self) -> Result<Vec<Url>, DataFusionError> {
        Ok(self
            .0
            .urls
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone())
    }
}

/// Connections to other queriers' workers, each call carrying the cluster
/// token (coordinator to worker and worker to worker alike).
#[derive(Clone)]
struct TokenChannels {
    inner: grpc::DefaultChannelResolver,
    authorization: Option<http::HeaderValue>,
}

#[async_trait]
impl ChannelResolver for TokenChannels {
    async fn get_worker_client_for_url(&self, url: &Url) -> Result<Box<dyn WorkerChannel>, DataFusionError> {
        let channel = self.inner.get_channel(url).await?;
        let Some(authorization) = self.authorization.clone() else {
            return Ok(grpc::create_worker_client(channel));
        };
        let with_token = tower::ServiceExt::map_request(channel, move |mut r: http::Request<tonic::body::Body>| {
            r.headers_mut()
                .insert(http::header::AUTHORIZATION, authorization.clone());
            r
        });
        Ok(grpc::create_worker_client(grpc::BoxCloneSyncChannel::new(with_token)))
    }
}

/// This querier's part in split scans: its worker, its own URL, the peers
/// and how many files one task reads.
#[derive(Clone)]
pub(crate) struct Cluster {
    worker: Worker,
    self_url: Url,
    peers: Arc<Peers>,
    channels: TokenChannels,
    files_per_task: usize,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("self_url", &self.self_url)
            .field("peers", &self.peers)
            .field("files_per_task", &self.files_per_task)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// `runtime`: the runtime the worker reads with (SignalDB's object store
    /// under the engine's store URL); `authorization`: the header value
    /// (`Bearer <cluster token>`) calls carry; `self_url`: how the peers
    /// reach this querier.
    pub(crate) fn new(
        runtime: Arc<RuntimeEnv>,
        authorization: Option<&str>,
        self_url: Url,
        peers: Arc<Peers>,
        files_per_task: usize,
        on_task: Arc<dyn Fn() + Send + Sync>,
    ) -> Result<Self, DataFusionError> {
        let authorization = authorization
            .map(http::HeaderValue::from_str)
            .transpose()
            .map_err(|e| DataFusionError::Configuration(format!("cluster token: {e}")))?;
        let channels = TokenChannels {
            inner: grpc::DefaultChannelResolver::default(),
            authorization,
        };
        let worker = Worker::from_session_builder({
            let (runtime, channels) = (Arc::clone(&runtime), channels.clone());
            move |ctx: WorkerQueryContext| {
                // Once per task this worker runs.
                on_task();
                let (runtime, channels) = (Arc::clone(&runtime), channels.clone());
                async move {
                    let mut builder = ctx
                        .builder
                        .with_runtime_env(runtime)
                        .with_distributed_channel_resolver(channels);
                    if let Some(config) = builder.config().as_mut() {
                        crate::engine::scan_options(config);
                    }
                    Ok(builder.build())
                }
            }
        })
        .with_runtime_env(runtime);
        Ok(Self {
            worker,
            self_url,
            peers,
            channels,
            files_per_task: files_per_task.max(1),
        })
    }

    /// The worker's gRPC service, to serve next to the querier's Flight
    /// service (behind the same token check).
    pub(crate) fn worker_service(&self) -> impl WorkerServer {
        self.worker.clone().into_worker_server()
    }

    /// Whether a scan of `files` files is worth splitting: more than one
    /// task's worth of files and more than one querier.
    pub(crate) fn splits(&self, files: usize) -> bool {
        self.peers.len() > 1 && files > self.files_per_task
    }

    /// A session whose file scans are split across the peers, reading with
    /// `runtime` here.
    pub(crate) fn session(&self, config: SessionConfig, runtime: Arc<RuntimeEnv>) -> SessionContext {
        let files_per_task = self.files_per_task;
        let by_files = move |ev: DesiredTaskCountEvent<'_>| {
            let scan = ev.plan.downcast_ref::<DataSourceExec>()?;
            let files = scan.data_source().downcast_ref::<FileScanConfig>()?;
            let count: usize = files.file_groups.iter().map(|g| g.len()).sum();
            Some(Ok(DesiredTaskCountEventResponse::desired(
                count.div_ceil(files_per_task).max(1),
            )))
        };
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_distributed_planner()
            .with_distributed_worker_resolver(PeerList(Arc::clone(&self.peers)))
            .with_distributed_channel_resolver(self.channels.clone())
            .with_distributed_local_worker_context(self.worker.to_local_worker_context(self.self_url.clone()))
            .with_distributed_desired_task_count_handler(by_files)
            .build();
        SessionContext::new_with_state(state)
    }
}

/// How long a finished split scan waits for the workers' metrics.
const METRICS_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The bytes of Parquet every querier read for `plan`, once it has run:
/// the scans' `bytes_scanned`, collected from the workers. Workers whose
/// metrics do not come within [`METRICS_WAIT`] are left out (the answer is
/// already complete; only its count is short).
pub(crate) async fn bytes_scanned(plan: Arc<dyn ExecutionPlan>) -> Result<u64, DataFusionError> {
    let collected = rewrite_distributed_plan_with_metrics(Arc::clone(&plan), DistributedMetricsFormat::Aggregated);
    let plan = match tokio::time::timeout(METRICS_WAIT, collected).await {
        Ok(with_metrics) => with_metrics?,
        Err(_) => {
            tracing::debug!(
                "a split scan's workers sent no metrics in time; inspectedBytes counts this querier's reads"
            );
            plan
        }
    };
    let mut bytes = 0u64;
    plan.apply(|node| {
        if let Some(metrics) = node.metrics() {
            bytes += metrics
                .iter()
                .filter(|m| m.value().name() == "bytes_scanned")
                .map(|m| m.value().as_usize() as u64)
                .sum::<u64>();
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(bytes)
}

/// The worker service's type (a tonic service to add to a server),
/// nameable only through this trait.
pub trait WorkerServer:
    tower::Service<
        http::Request<tonic::body::Body>,
        Response = http::Response<tonic::body::Body>,
        Error = std::convert::Infallible,
        Future: Send + 'static,
    > + tonic::server::NamedService
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> WorkerServer for T where
    T: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
            Future: Send + 'static,
        > + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static
{
}
