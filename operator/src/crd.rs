//! The `SignalDBCluster` custom resource (`signaldb.io/v1alpha1`).
//!
//! Every field carries a doc comment: it becomes the description that
//! `kubectl explain` shows. Defaults live in serde attributes so that the
//! generated schema, the API server and this code agree on them. Rules that
//! span fields are CEL `x-kubernetes-validations`; rules the schema cannot
//! express are checked by [`crate::validate`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, EnvVar, LocalObjectReference, ResourceRequirements, Toleration};
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of the custom resource.
pub const GROUP: &str = "signaldb.io";
/// API version of the custom resource.
pub const VERSION: &str = "v1alpha1";

/// The spec of a SignalDB cluster: acceptors, writers, queriers and routers
/// sharing one catalog and one object store.
// Each `printcolumn(...)` repeats `type_ = ...`, which the lint mistakes for
// duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "signaldb.io",
    version = "v1alpha1",
    kind = "SignalDBCluster",
    plural = "signaldbclusters",
    singular = "signaldbcluster",
    shortname = "sdb",
    category = "signaldb",
    namespaced,
    status = "SignalDBClusterStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "A SignalDB cluster: OTLP acceptors, writers that store Parquet on object storage, queriers and Tempo-compatible routers, run by the signaldb-operator.",
    scale(
        spec_replicas_path = ".spec.writer.replicas",
        status_replicas_path = ".status.writer.replicas",
        label_selector_path = ".status.writer.selector"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        description = "Whether every role has all its replicas ready",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Writers",
        type_ = "integer",
        description = "Writer replicas asked for",
        json_path = ".spec.writer.replicas"
    ),
    printcolumn(
        name = "Ready Writers",
        type_ = "integer",
        description = "Writer replicas ready",
        json_path = ".status.writer.readyReplicas"
    ),
    printcolumn(
        name = "Scale-down",
        type_ = "string",
        description = "Phase of a writer scale-down in progress",
        json_path = ".status.writer.scaleDown.phase"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        description = "Why the cluster is not ready",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = 1
    ),
    printcolumn(
        name = "Paused",
        type_ = "boolean",
        description = "Reconciliation is paused",
        json_path = ".spec.paused",
        priority = 1
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
/// Desired state of a SignalDB cluster.
pub struct SignalDBClusterSpec {
    /// Container image of the `signaldb` binary, used by every role.
    #[serde(default = "default_image")]
    #[schemars(length(min = 1))]
    pub image: String,

    /// When the kubelet pulls the image: Always, IfNotPresent or Never.
    /// Default: Kubernetes' own (Always for `:latest`, else IfNotPresent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pull_policy_schema")]
    pub image_pull_policy: Option<ImagePullPolicy>,

    /// Secrets holding registry credentials for the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,

    /// Where the catalog (the index of stored files and the service registry)
    /// lives: an external PostgreSQL, or one the operator runs.
    pub catalog: CatalogSpec,

    /// Where Parquet files are stored: an S3 bucket, or a shared volume.
    pub storage: StorageSpec,

    /// OTLP intake (gRPC 4317, HTTP 4318). Acceptors write every request to
    /// their WAL before acknowledging it and deliver it to writers. Every
    /// scale-down drains the leaving acceptors first: they refuse new
    /// requests (clients retry on the others) and deliver their WALs, so no
    /// acknowledged request stays behind on a volume nobody reads (bounded
    /// by `writer.drainTimeout`).
    #[serde(default)]
    pub acceptor: AcceptorSpec,

    /// Writers buffer data, flush Parquet to storage and serve unflushed data
    /// to queriers. Scaled through the `/scale` subresource; every scale-down
    /// drains the leaving writers first.
    #[serde(default)]
    pub writer: WriterSpec,

    /// Queriers execute queries over stored files and writer buffers.
    #[serde(default)]
    pub querier: QuerierSpec,

    /// Routers serve the Tempo HTTP API (3200) and Flight SQL (50053).
    #[serde(default)]
    pub router: RouterSpec,

    /// Compactors merge the small files writers flush into large files
    /// sorted by trace id, drop duplicate spans (replicas, replays), and
    /// delete the objects of replaced and expired files once no query can
    /// still read them. Several share the work through leases in the
    /// catalog; one is enough for most clusters. Tune them with
    /// `configOverrides.compactor` (`target_file_size`, `window`, ...).
    #[serde(default)]
    pub compactor: CompactorSpec,

    /// Tenancy: whether requests must name their tenant, and whether they
    /// must carry an API key.
    #[serde(default)]
    pub tenancy: TenancySpec,

    /// TLS on the ports clients reach: OTLP gRPC 4317 and HTTP 4318 on
    /// acceptors, the Tempo API 3200 and Flight SQL 50053 on routers. Unset:
    /// plain TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,

    /// Limits that protect the cluster from oversized or excessive input.
    #[serde(default)]
    pub limits: LimitsSpec,

    /// NetworkPolicies that admit client traffic (OTLP, the Tempo API, Flight
    /// SQL) to acceptors and routers only, and keep writers, queriers and
    /// the managed catalog reachable from the cluster's own pods (and the
    /// operator) alone. On by default; they take effect where the network
    /// plugin enforces NetworkPolicies.
    #[serde(default)]
    pub network_policy: NetworkPolicySpec,

    /// Extra `signaldb.yaml` keys, merged over what the operator renders (for
    /// example `{"writer": {"flush_max_age": "10s"}}`). Checked against the
    /// data plane's configuration schema before anything is applied; unknown
    /// keys are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub config_overrides: Option<serde_json::Value>,

    /// Stop reconciling: the operator changes nothing until this is false
    /// again. Pods keep running as they are.
    #[serde(default)]
    pub paused: bool,
}

impl Default for SignalDBClusterSpec {
    fn default() -> Self {
        Self {
            image: default_image(),
            image_pull_policy: None,
            image_pull_secrets: Vec::new(),
            catalog: CatalogSpec::default(),
            storage: StorageSpec::default(),
            acceptor: AcceptorSpec::default(),
            writer: WriterSpec::default(),
            querier: QuerierSpec::default(),
            router: RouterSpec::default(),
            compactor: CompactorSpec::default(),
            tenancy: TenancySpec::default(),
            tls: None,
            limits: LimitsSpec::default(),
            network_policy: NetworkPolicySpec::default(),
            config_overrides: None,
            paused: false,
        }
    }
}

/// The operator's own version, which is also the default image tag.
pub const OPERATOR_VERSION: &str = env!("CARGO_PKG_VERSION");

fn default_image() -> String {
    format!("ghcr.io/signaldb/signaldb:{OPERATOR_VERSION}")
}

/// When the kubelet pulls an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ImagePullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl ImagePullPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ImagePullPolicy::Always => "Always",
            ImagePullPolicy::IfNotPresent => "IfNotPresent",
            ImagePullPolicy::Never => "Never",
        }
    }
}

/// The catalog: exactly one of `postgres` and `managed`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.postgres) != has(self.managed)",
    "message": "set exactly one of catalog.postgres and catalog.managed"
}]))]
pub struct CatalogSpec {
    /// An external PostgreSQL, for production.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresCatalogSpec>,

    /// A single-instance PostgreSQL run by the operator, for trials and tests.
    /// It has no replication and no backups: use `postgres` in production.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedCatalogSpec>,
}

/// An external PostgreSQL catalog.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostgresCatalogSpec {
    /// The key of a Secret in this namespace holding the connection URL,
    /// `postgres://USER:PASSWORD@HOST:PORT/DB`.
    pub url_secret_ref: SecretKeyRef,

    /// Largest number of pooled connections per pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_connections: Option<u32>,
}

/// A key of a Secret in the cluster's namespace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret.
    #[serde(default = "default_url_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_url_key() -> String {
    "url".to_owned()
}

/// A PostgreSQL run by the operator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedCatalogSpec {
    /// PostgreSQL container image.
    #[serde(default = "default_postgres_image")]
    #[schemars(length(min = 1))]
    pub image: String,

    /// Size of the PostgreSQL data volume.
    #[serde(default = "default_postgres_size")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"))]
    pub size: String,

    /// StorageClass of the data volume. Default: the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,

    /// CPU and memory of the PostgreSQL container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl Default for ManagedCatalogSpec {
    fn default() -> Self {
        Self {
            image: default_postgres_image(),
            size: default_postgres_size(),
            storage_class_name: None,
            resources: None,
        }
    }
}

fn default_postgres_image() -> String {
    "postgres:17-alpine".to_owned()
}

fn default_postgres_size() -> String {
    "1Gi".to_owned()
}

/// Object storage: exactly one of `s3` and `filesystem`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.s3) != has(self.filesystem)",
    "message": "set exactly one of storage.s3 and storage.filesystem"
}]))]
pub struct StorageSpec {
    /// An S3 bucket or an S3-compatible server (MinIO, Ceph, R2, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3StorageSpec>,

    /// A volume shared by writers and queriers (a ReadWriteMany claim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<FilesystemStorageSpec>,
}

/// S3 storage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3StorageSpec {
    /// Bucket name.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$"))]
    pub bucket: String,

    /// Key prefix inside the bucket, without leading or trailing `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[^/].*[^/]$|^[^/]$"))]
    pub prefix: Option<String>,

    /// Endpoint of an S3-compatible server, e.g. `http://minio:9000`. Default:
    /// AWS. An `http://` endpoint allows plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s/]+(/.*)?$"))]
    pub endpoint: Option<String>,

    /// Region of the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,

    /// Use path-style requests (`endpoint/bucket/key`), as most S3-compatible
    /// servers need.
    #[serde(default)]
    pub path_style: bool,

    /// A Secret with the access key id and secret access key. Without it,
    /// pods use their ambient credentials (e.g. a workload identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<S3CredentialsRef>,
}

/// Where the S3 credentials are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3CredentialsRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key holding the access key id.
    #[serde(default = "default_access_key_id_key")]
    #[schemars(length(min = 1))]
    pub access_key_id_key: String,
    /// Key holding the secret access key.
    #[serde(default = "default_secret_access_key_key")]
    #[schemars(length(min = 1))]
    pub secret_access_key_key: String,
}

fn default_access_key_id_key() -> String {
    "AWS_ACCESS_KEY_ID".to_owned()
}

fn default_secret_access_key_key() -> String {
    "AWS_SECRET_ACCESS_KEY".to_owned()
}

/// Storage on a shared volume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FilesystemStorageSpec {
    /// A PersistentVolumeClaim in this namespace that every writer and querier
    /// can mount at once (access mode ReadWriteMany, or ReadWriteOnce on a
    /// single node).
    #[schemars(length(min = 1, max = 253))]
    pub claim_name: String,

    /// Directory inside the volume. Default: its root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[^/].*$"))]
    pub sub_path: Option<String>,
}

/// Settings every role's pods share.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodSpecOptions {
    /// CPU and memory requests and limits of the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Scheduling constraints. The operator adds none of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// Taints the pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    /// Node labels the pods must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Extra environment variables of the container. `SIGNALDB_<KEY>` with
    /// `__` between levels overrides a configuration key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,

    /// Extra annotations of the pods (for example for a service mesh).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,
}

/// A persistent volume per pod, for a role's WAL.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalSpec {
    /// Size of each pod's volume. Growing it expands the existing claims
    /// (the StorageClass must allow expansion); shrinking is refused.
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"))]
    pub size: String,

    /// StorageClass of the volumes. Default: the cluster's default class.
    /// Fixed once the claims exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

impl WalSpec {
    fn sized(size: &str) -> Self {
        Self {
            size: size.to_owned(),
            storage_class_name: None,
        }
    }
}

/// Acceptors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcceptorSpec {
    /// Number of acceptor pods.
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,

    /// The acceptor WAL volume of each pod.
    #[serde(default = "default_acceptor_wal")]
    pub wal: WalSpec,

    #[serde(flatten)]
    pub pod: PodSpecOptions,
}

impl Default for AcceptorSpec {
    fn default() -> Self {
        Self {
            replicas: 1,
            wal: default_acceptor_wal(),
            pod: PodSpecOptions::default(),
        }
    }
}

fn default_acceptor_wal() -> WalSpec {
    WalSpec::sized("5Gi")
}

/// Writers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WriterSpec {
    /// Number of writer pods. Set by `kubectl scale` and by the autoscaler
    /// when `autoscaling` is on. Lowering it drains the leaving writers
    /// before their pods go.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 1000))]
    pub replicas: i32,

    /// How many writers receive each trace.
    #[serde(default = "one_u8")]
    #[schemars(range(min = 1, max = 5))]
    pub replication_factor: u8,

    /// The writer WAL volume of each pod.
    #[serde(default = "default_writer_wal")]
    pub wal: WalSpec,

    /// Scale writers on CPU (and memory) use: the operator runs a
    /// HorizontalPodAutoscaler that scales this SignalDBCluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,

    /// Longest a scale-down may wait for leaving writers to flush, or
    /// leaving acceptors to deliver their WALs (e.g. `10m`, `1h30m`). Past
    /// it the scale-down stops and the cluster reports `Degraded`.
    #[serde(default = "default_drain_timeout")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"))]
    pub drain_timeout: String,

    #[serde(flatten)]
    pub pod: PodSpecOptions,
}

impl Default for WriterSpec {
    fn default() -> Self {
        Self {
            replicas: 1,
            replication_factor: 1,
            wal: default_writer_wal(),
            autoscaling: None,
            drain_timeout: default_drain_timeout(),
            pod: PodSpecOptions::default(),
        }
    }
}

fn default_writer_wal() -> WalSpec {
    WalSpec::sized("10Gi")
}

fn default_drain_timeout() -> String {
    "15m".to_owned()
}

/// Writer autoscaling.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.maxReplicas >= self.minReplicas",
        "message": "writer.autoscaling.maxReplicas must be at least minReplicas"
    },
    {
        "rule": "has(self.targetCPUUtilizationPercentage) || has(self.targetMemoryUtilizationPercentage)",
        "message": "writer.autoscaling needs a CPU or a memory target"
    }
]))]
pub struct AutoscalingSpec {
    /// Fewest writers.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: i32,

    /// Most writers.
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,

    /// Average CPU use, in percent of the CPU request, to aim for. Needs CPU
    /// requests in `writer.resources`.
    #[serde(
        default,
        rename = "targetCPUUtilizationPercentage",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: Option<i32>,

    /// Average memory use, in percent of the memory request, to aim for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub target_memory_utilization_percentage: Option<i32>,

    /// How long the autoscaler waits before acting on a lower recommendation,
    /// in seconds. Each scale-down drains writers, so the default is generous.
    #[serde(default = "default_stabilization")]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_down_stabilization_seconds: i32,
}

fn default_stabilization() -> i32 {
    600
}

/// Queriers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuerierSpec {
    /// Number of querier pods.
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,

    /// The scratch volume of each querier pod (its data directory: spill
    /// files and caches).
    #[serde(default = "default_querier_wal")]
    pub wal: WalSpec,

    #[serde(flatten)]
    pub pod: PodSpecOptions,
}

impl Default for QuerierSpec {
    fn default() -> Self {
        Self {
            replicas: 1,
            wal: default_querier_wal(),
            pod: PodSpecOptions::default(),
        }
    }
}

fn default_querier_wal() -> WalSpec {
    WalSpec::sized("5Gi")
}

/// Routers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouterSpec {
    /// Number of router pods.
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,

    #[serde(flatten)]
    pub pod: PodSpecOptions,
}

impl Default for RouterSpec {
    fn default() -> Self {
        Self {
            replicas: 1,
            pod: PodSpecOptions::default(),
        }
    }
}

/// Compactors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompactorSpec {
    /// Number of compactor pods. 0 stops compaction (files then stay as
    /// writers flushed them, and replaced or expired objects are deleted by
    /// the writers alone).
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,

    #[serde(flatten)]
    pub pod: PodSpecOptions,
}

impl Default for CompactorSpec {
    fn default() -> Self {
        Self {
            replicas: 1,
            pod: PodSpecOptions::default(),
        }
    }
}

fn one() -> i32 {
    1
}

fn one_u8() -> u8 {
    1
}

/// Tenancy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenancySpec {
    /// Require the `X-Scope-OrgID` header on every request; requests without
    /// it are refused.
    #[serde(default)]
    pub multi_tenant: bool,

    /// Tenant of requests without `X-Scope-OrgID` when `multiTenant` is off.
    #[serde(default = "default_tenant")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9!\-_.*'()]{1,150}$"))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self != '.' && self != '..'",
        "message": "tenancy.defaultTenant may not be '.' or '..'"
    }]))]
    pub default_tenant: String,

    /// Require an API key (`Authorization: Bearer <key>`) on OTLP, the Tempo
    /// API and Flight SQL; the key decides the tenant. Make keys with
    /// `signaldb keys create --tenant T` against the cluster's catalog.
    /// Without TLS (`spec.tls`) keys travel in clear text.
    #[serde(default)]
    pub api_keys: bool,
}

impl Default for TenancySpec {
    fn default() -> Self {
        Self {
            multi_tenant: false,
            default_tenant: default_tenant(),
            api_keys: false,
        }
    }
}

/// A DNS subdomain name (RFC 1123), as Kubernetes requires of a Secret's
/// name; at most 253 characters.
pub const DNS_SUBDOMAIN_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// TLS on the client ports of acceptors and routers: they then speak TLS
/// only. Role-to-role ports and the admin port 9091 (probes, `/metrics`,
/// drains) stay plain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// A Secret in this namespace of type `kubernetes.io/tls`: the PEM
    /// certificate chain (leaf first) in `tls.crt` and its private key in
    /// `tls.key`, as cert-manager writes the Secret named by a Certificate's
    /// `secretName`. Acceptor and router pods mount the whole Secret
    /// read-only at `/var/run/signaldb/tls`; a renewed certificate reaches
    /// the running pods (the kubelet refreshes the files within a minute or
    /// two) and is presented to new connections without a restart. Pods wait
    /// in ContainerCreating until the Secret exists.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub secret_name: String,
}

fn default_tenant() -> String {
    signaldb_config::TenantId::DEFAULT.to_owned()
}

/// Sizes are written `1048576`, `512KiB`, `64MiB` or `2GiB`.
const BYTE_SIZE_PATTERN: &str = r"^[0-9]+ ?([kKmMgGtT](i?[bB])?|[bB])?$";

/// Input limits. Unset values keep the data plane's defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitsSpec {
    /// Largest OTLP request accepted, after decompression (data plane
    /// default 16MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = BYTE_SIZE_PATTERN))]
    pub max_request_size: Option<String>,

    /// Acknowledged bytes an acceptor may hold for writers before it answers
    /// 429 (default 256MiB). At least `maxRequestSize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = BYTE_SIZE_PATTERN))]
    pub max_pending: Option<String>,

    /// Longer string and bytes attribute values are truncated (default 64KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = BYTE_SIZE_PATTERN))]
    pub max_attribute_value_size: Option<String>,

    /// A writer refuses new data while its buffer holds this much (default
    /// 512MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = BYTE_SIZE_PATTERN))]
    pub writer_max_buffer_size: Option<String>,

    /// How long spans are kept, as a duration such as `30d` or `720h`
    /// (default 14 days, as Tempo's `block_retention`; `0s` keeps them
    /// forever). Files whose spans all ended longer ago are removed from
    /// the catalog, then from storage. `tenantRetention` sets it per
    /// tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub retention: Option<String>,

    /// Retention of single tenants, by tenant id, in the same form as
    /// `retention` (for example `{acme: 90d, trial: 1d}`); tenants not
    /// listed keep `retention`. A listed tenant's other limits stay the
    /// cluster's.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tenant_retention: std::collections::BTreeMap<String, String>,
}

/// A duration in humantime's form: numbers with units, such as `14d`,
/// `720h` or `1h 30m`.
const DURATION_PATTERN: &str = r"^([0-9]+ ?[a-zA-Z]+ ?)+$";

/// Which traffic the cluster's NetworkPolicies admit. Every policy admits
/// ingress only (egress is not restricted), and the kubelet's probes always
/// pass (Kubernetes admits traffic from a pod's own node).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Render one NetworkPolicy per role (and one for the managed catalog).
    /// Turning it off deletes them: every port of every pod is then open to
    /// whatever the namespace's other policies allow.
    #[serde(default = "yes")]
    pub enabled: bool,

    /// Who may reach the client ports: OTLP gRPC 4317 and HTTP 4318 on
    /// acceptors, the Tempo API 3200 and Flight SQL 50053 on routers. Empty
    /// (the default): anyone. Otherwise only these peers (pods, namespaces,
    /// or `ipBlock`s for traffic from outside the Kubernetes cluster, such as
    /// a load balancer's source addresses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress_from: Vec<NetworkPolicyPeer>,

    /// Who may reach every role's admin port 9091 (`/metrics`, `/ready`,
    /// `/live`) besides the cluster's own pods (and, on writers, the
    /// operator, for drains). Unset: every pod in the cluster's namespace.
    /// Set it to admit a Prometheus in another namespace, e.g.
    /// `[{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name:
    /// monitoring}}}]`; `[]` admits nobody else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_from: Option<Vec<NetworkPolicyPeer>>,
}

impl Default for NetworkPolicySpec {
    fn default() -> Self {
        Self {
            enabled: true,
            ingress_from: Vec::new(),
            metrics_from: None,
        }
    }
}

fn yes() -> bool {
    true
}

fn pull_policy_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "enum": ["Always", "IfNotPresent", "Never"],
    })
}

fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// What the operator observed and did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignalDBClusterStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready`, `Progressing` and `Degraded`, each with a reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// Acceptor pods, and the scale-down in progress.
    #[serde(default)]
    pub acceptor: AcceptorStatus,

    /// Writer pods, and the scale-down in progress.
    #[serde(default)]
    pub writer: WriterStatus,

    /// Querier pods.
    #[serde(default)]
    pub querier: RoleStatus,

    /// Router pods.
    #[serde(default)]
    pub router: RoleStatus,

    /// Compactor pods.
    #[serde(default)]
    pub compactor: RoleStatus,

    /// Hash of the rendered `signaldb.yaml` the pods run with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
}

/// Replica counts of a role.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleStatus {
    /// Pods the role's workload asks for.
    #[serde(default)]
    pub replicas: i32,
    /// Pods ready.
    #[serde(default)]
    pub ready_replicas: i32,
}

/// Replica counts of the acceptors.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcceptorStatus {
    /// Acceptor pods the StatefulSet asks for. During a scale-down this
    /// stays at the old count until the leaving acceptors have delivered
    /// their WALs.
    #[serde(default)]
    pub replicas: i32,
    /// Acceptor pods ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// The scale-down in progress, if any: the leaving acceptors refuse new
    /// requests and deliver what their WALs hold before their pods go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<ScaleDownStatus>,
}

/// Replica counts of the writers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WriterStatus {
    /// Writer pods the StatefulSet asks for. During a scale-down this stays
    /// at the old count until the leaving writers are drained.
    #[serde(default)]
    pub replicas: i32,
    /// Writer pods ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Label selector of the writer pods (for the `/scale` subresource).
    #[serde(default)]
    pub selector: String,
    /// The scale-down in progress, if any. Kept here so that a restarted
    /// operator resumes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<ScaleDownStatus>,
}

/// A writer scale-down.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleDownStatus {
    /// `Draining` while the leaving writers flush, `Failed` when a drain
    /// failed or timed out (the replicas stay as they are).
    pub phase: ScaleDownPhase,
    /// Writer replicas when the scale-down started.
    pub from_replicas: i32,
    /// Writer replicas after it.
    pub to_replicas: i32,
    /// Ordinals of the writers told to drain.
    #[serde(default)]
    pub draining: Vec<i32>,
    /// When the first writer was told to drain.
    pub started_at: Time,
    /// Why the scale-down failed: `DrainFailed` (a writer refused or
    /// answered an error) or `DrainTimedOut`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Progress, or what went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Phase of a writer scale-down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ScaleDownPhase {
    /// The leaving writers are flushing their buffers and WALs.
    Draining,
    /// A drain failed or timed out; replicas were left as they are.
    Failed,
}

impl ScaleDownPhase {
    /// The spelling in status.
    pub fn as_str(self) -> &'static str {
        match self {
            ScaleDownPhase::Draining => "Draining",
            ScaleDownPhase::Failed => "Failed",
        }
    }
}
