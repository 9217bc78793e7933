//! `signaldb-operator run`: the process around the reconciler.
//!
//! It serves `/metrics` and `/healthz`, waits to become leader (a Lease),
//! then runs a `kube::runtime::Controller` over SignalDBClusters (in every
//! namespace, or in one) and the children it owns, until SIGTERM/SIGINT or
//! until it loses the lease. Logs are structured (`--log-format json`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Controller;
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::sync::watch;
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

use crate::crd::SignalDBCluster;
use crate::drain_client::HttpDrainClient;
use crate::leader::LeaseLock;
use crate::metrics::Metrics;
use crate::names::{LABEL_MANAGED_BY, MANAGER};
use crate::reconcile::{Context, Settings, error_policy, reconcile};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (write e.g. 5s, 2m)"))
}

/// Options of `signaldb-operator run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Watch SignalDBClusters in this namespace only (default: every
    /// namespace; the operator then needs cluster-wide permissions).
    #[arg(long, env = "SIGNALDB_OPERATOR_NAMESPACE")]
    pub namespace: Option<String>,

    /// Address of `/metrics` and `/healthz`.
    #[arg(long, env = "SIGNALDB_OPERATOR_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// Elect a leader among operator replicas with a Lease; only the leader
    /// reconciles. Turn off only when a single replica runs.
    #[arg(
        long,
        env = "SIGNALDB_OPERATOR_LEADER_ELECTION",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub leader_election: bool,

    /// Name of the Lease.
    #[arg(long, default_value = "signaldb-operator")]
    pub lease_name: String,

    /// Namespace of the Lease (default: the operator pod's namespace, from
    /// POD_NAMESPACE, else the watched namespace, else `default`).
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// The namespace the operator's pods run in (default: POD_NAMESPACE).
    /// The clusters' NetworkPolicies admit drain calls to writers from pods
    /// labelled `app.kubernetes.io/name=signaldb-operator` in this namespace;
    /// unset, from such pods in any namespace.
    #[arg(long, env = "POD_NAMESPACE")]
    pub operator_namespace: Option<String>,

    /// This replica's name in the Lease and in events (default: the pod
    /// name from POD_NAME, else the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// How long a lease is valid without renewal.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,

    /// How often the leader renews its lease.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub lease_renew_interval: Duration,

    /// How often to poll writers while a scale-down drains them.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub drain_poll_interval: Duration,

    /// How often every cluster is reconciled even without changes.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub resync_interval: Duration,

    /// Log format.
    #[arg(long, env = "SIGNALDB_OPERATOR_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("SIGNALDB_OPERATOR_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,kube=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if let Err(e) = result {
        eprintln!("signaldb-operator: cannot set up logging: {e}");
    }
}

/// Makes `ring` the process's TLS crypto provider for the Kubernetes client.
/// A build of the whole workspace (tests included) enables both of rustls's
/// providers, and rustls then refuses to pick one by itself.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Runs the operator until a signal or a lost lease; the process's exit code.
pub fn main(args: RunArgs) -> ExitCode {
    init_logging(args.log_format);
    install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "signaldb-operator stopped");
            ExitCode::FAILURE
        }
    }
}

/// Why the operator stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot connect to Kubernetes: {0}")]
    Connect(#[source] kube::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("lost the leader lease; exiting so that another replica takes over")]
    LostLease,
}

/// Resolves on SIGTERM or SIGINT.
async fn termination() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            warn!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

fn default_identity() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("signaldb-operator-{}", std::process::id()))
}

async fn run(args: RunArgs) -> Result<(), RunError> {
    info!(version = crate::crd::OPERATOR_VERSION, namespace = ?args.namespace, "signaldb-operator starting");
    let client = Client::try_default().await.map_err(RunError::Connect)?;
    let metrics = Metrics::shared();

    // Stop everything on a signal.
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        termination().await;
        info!("termination signal: shutting down");
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .map_err(|source| RunError::Listen {
            addr: args.http_addr,
            source,
        })?;
    info!(addr = %args.http_addr, "serving /metrics and /healthz");
    let server_metrics = Arc::clone(&metrics);
    let server_stop = stopped(stop_rx.clone());
    tokio::spawn(async move {
        if let Err(e) = crate::server::serve(listener, server_metrics, server_stop).await {
            error!(error = %e, "the HTTP server failed");
        }
    });

    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let lease_namespace = args
        .lease_namespace
        .clone()
        .or_else(|| args.namespace.clone())
        .unwrap_or_else(|| "default".to_owned());
    let lock = LeaseLock::new(
        client.clone(),
        &lease_namespace,
        &args.lease_name,
        &identity,
        args.lease_duration,
    );
    let (lost_tx, lost_rx) = watch::channel(false);
    if args.leader_election {
        info!(lease = %args.lease_name, namespace = %lease_namespace, %identity, "waiting to become leader");
        let mut stop = stop_rx.clone();
        loop {
            match lock.try_acquire_or_renew(Timestamp::now()).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => warn!(error = %e, "cannot read or take the lease"),
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return Ok(()),
                () = tokio::time::sleep(args.lease_renew_interval) => {}
            }
        }
        info!(%identity, "became leader");
        metrics.set_leader(true);
        let renew_lock = lock.clone();
        let (renew_every, valid_for) = (args.lease_renew_interval, args.lease_duration);
        let renew_metrics = Arc::clone(&metrics);
        let mut renew_stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut last_renewal = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    _ = renew_stop.wait_for(|s| *s) => return,
                    () = tokio::time::sleep(renew_every) => {}
                }
                match renew_lock.try_acquire_or_renew(Timestamp::now()).await {
                    Ok(true) => last_renewal = tokio::time::Instant::now(),
                    Ok(false) => {
                        warn!("another replica holds the lease now");
                        break;
                    }
                    Err(e) if last_renewal.elapsed() < valid_for => {
                        warn!(error = %e, "cannot renew the lease; retrying");
                    }
                    Err(e) => {
                        warn!(error = %e, "could not renew the lease in time");
                        break;
                    }
                }
            }
            renew_metrics.set_leader(false);
            let _ = lost_tx.send(true);
        });
    } else {
        metrics.set_leader(true);
    }

    let clusters: Api<SignalDBCluster> = match &args.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    fn owned<K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>>(
        client: &Client,
        namespace: Option<&String>,
    ) -> Api<K>
    where
        K::DynamicType: Default,
    {
        match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let children = watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGER}"));
    let ns = args.namespace.as_ref();
    let ctx = Arc::new(
        Context::new(
            client.clone(),
            Arc::new(HttpDrainClient::default()),
            Arc::clone(&metrics),
            Some(identity.clone()),
        )
        .with_settings(Settings {
            drain_poll: args.drain_poll_interval,
            resync: args.resync_interval,
            ..Settings::default()
        })
        .with_operator_namespace(args.operator_namespace.clone()),
    );
    let shutdown_stop = stopped(stop_rx.clone());
    let shutdown_lost = stopped(lost_rx.clone());
    Controller::new(clusters, watcher::Config::default())
        .owns(owned::<StatefulSet>(&client, ns), children.clone())
        .owns(owned::<Deployment>(&client, ns), children.clone())
        .owns(owned::<Service>(&client, ns), children.clone())
        .owns(owned::<ConfigMap>(&client, ns), children.clone())
        .owns(owned::<NetworkPolicy>(&client, ns), children)
        .graceful_shutdown_on(async move {
            tokio::select! {
                () = shutdown_stop => {},
                () = shutdown_lost => {},
            }
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(cluster = %object.name, namespace = ?object.namespace, "reconciled"),
                Err(e) => warn!(error = %e, "controller"),
            }
        })
        .await;

    if *lost_rx.borrow() {
        return Err(RunError::LostLease);
    }
    if args.leader_election {
        match lock.release().await {
            Ok(()) => info!("released the lease"),
            Err(e) => warn!(error = %e, "cannot release the lease"),
        }
    }
    info!("signaldb-operator stopped");
    Ok(())
}
