//! The second stage of the pipeline: the objects a cluster should have, as
//! pure functions of the validated spec. Nothing here talks to the API
//! server, so golden files under `testdata/` pin the output.
//!
//! Children come back in a [`Desired`] map ordered by kind, then name, so the
//! output (and the order of applies) is stable.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, ExecAction, HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile,
    SecretKeySelector, SecretVolumeSource, SecurityContext, Service, ServiceAccount, ServicePort, ServiceSpec, Volume,
    VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec as NetworkPolicyObjectSpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role as RbacRole, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use signaldb_config::{Role, ports};

use crate::config::{CONFIG_DIR, CONFIG_FILE, DATA_DIR, OBJECTS_DIR, TLS_DIR, WAL_DIR};
use crate::crd::{PodSpecOptions, SignalDBCluster, SignalDBClusterSpec, WalSpec};
use crate::names::{
    ANNOTATION_CONFIG_HASH, CATALOG_DB, CATALOG_PASSWORD_KEY, COMPONENT_CATALOG, LABEL_NAMESPACE_NAME, Names,
    OPERATOR_POD_LABEL,
};
use crate::validate::Validated;

/// Kinds of children, in the order they are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    ServiceAccount,
    Role,
    RoleBinding,
    NetworkPolicy,
    ConfigMap,
    Service,
    StatefulSet,
    Deployment,
    PodDisruptionBudget,
    HorizontalPodAutoscaler,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::ServiceAccount,
        Kind::Role,
        Kind::RoleBinding,
        Kind::NetworkPolicy,
        Kind::ConfigMap,
        Kind::Service,
        Kind::StatefulSet,
        Kind::Deployment,
        Kind::PodDisruptionBudget,
        Kind::HorizontalPodAutoscaler,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ServiceAccount => "ServiceAccount",
            Kind::Role => "Role",
            Kind::RoleBinding => "RoleBinding",
            Kind::NetworkPolicy => "NetworkPolicy",
            Kind::ConfigMap => "ConfigMap",
            Kind::Service => "Service",
            Kind::StatefulSet => "StatefulSet",
            Kind::Deployment => "Deployment",
            Kind::PodDisruptionBudget => "PodDisruptionBudget",
            Kind::HorizontalPodAutoscaler => "HorizontalPodAutoscaler",
        }
    }
}

/// Identifies a child within its cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChildKey {
    pub kind: Kind,
    pub name: String,
}

/// A child object, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum Child {
    ServiceAccount(ServiceAccount),
    Role(RbacRole),
    RoleBinding(RoleBinding),
    NetworkPolicy(NetworkPolicy),
    ConfigMap(ConfigMap),
    Service(Service),
    StatefulSet(StatefulSet),
    Deployment(Deployment),
    PodDisruptionBudget(PodDisruptionBudget),
    HorizontalPodAutoscaler(HorizontalPodAutoscaler),
}

impl Child {
    pub fn kind(&self) -> Kind {
        match self {
            Child::ServiceAccount(_) => Kind::ServiceAccount,
            Child::Role(_) => Kind::Role,
            Child::RoleBinding(_) => Kind::RoleBinding,
            Child::NetworkPolicy(_) => Kind::NetworkPolicy,
            Child::ConfigMap(_) => Kind::ConfigMap,
            Child::Service(_) => Kind::Service,
            Child::StatefulSet(_) => Kind::StatefulSet,
            Child::Deployment(_) => Kind::Deployment,
            Child::PodDisruptionBudget(_) => Kind::PodDisruptionBudget,
            Child::HorizontalPodAutoscaler(_) => Kind::HorizontalPodAutoscaler,
        }
    }

    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Child::ServiceAccount(o) => o.meta(),
            Child::Role(o) => o.meta(),
            Child::RoleBinding(o) => o.meta(),
            Child::NetworkPolicy(o) => o.meta(),
            Child::ConfigMap(o) => o.meta(),
            Child::Service(o) => o.meta(),
            Child::StatefulSet(o) => o.meta(),
            Child::Deployment(o) => o.meta(),
            Child::PodDisruptionBudget(o) => o.meta(),
            Child::HorizontalPodAutoscaler(o) => o.meta(),
        }
    }

    pub fn name(&self) -> String {
        self.meta().name.clone().unwrap_or_default()
    }

    pub fn key(&self) -> ChildKey {
        ChildKey {
            kind: self.kind(),
            name: self.name(),
        }
    }

    /// The object as JSON (with `apiVersion` and `kind`).
    pub fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(self)
    }
}

/// Serialises as the object itself, with `apiVersion` and `kind`.
impl Serialize for Child {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Child::ServiceAccount(o) => o.serialize(serializer),
            Child::Role(o) => o.serialize(serializer),
            Child::RoleBinding(o) => o.serialize(serializer),
            Child::NetworkPolicy(o) => o.serialize(serializer),
            Child::ConfigMap(o) => o.serialize(serializer),
            Child::Service(o) => o.serialize(serializer),
            Child::StatefulSet(o) => o.serialize(serializer),
            Child::Deployment(o) => o.serialize(serializer),
            Child::PodDisruptionBudget(o) => o.serialize(serializer),
            Child::HorizontalPodAutoscaler(o) => o.serialize(serializer),
        }
    }
}

/// Every child a cluster should have.
pub type Desired = BTreeMap<ChildKey, Child>;

/// Why the desired objects could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    #[error("the SignalDBCluster has no {0}; it must come from the API server")]
    MissingMetadata(&'static str),
}

/// What the builders need besides the cluster itself.
#[derive(Debug, Clone, Copy)]
pub struct BuildInputs<'a> {
    pub cluster: &'a SignalDBCluster,
    pub validated: &'a Validated,
    /// Writer replicas the StatefulSet should have now: `spec.writer.replicas`,
    /// except during a scale-down, when the leaving writers stay until drained.
    pub writer_replicas: i32,
    /// Acceptor replicas (the spec's, or more while leaving acceptors drain).
    pub acceptor_replicas: i32,
    /// The namespace the operator runs in, when known: the NetworkPolicies
    /// admit its drain calls from there only (else from operator pods in any
    /// namespace).
    pub operator_namespace: Option<&'a str>,
}

/// Builds every child of a cluster.
pub fn build(inputs: &BuildInputs<'_>) -> Result<Desired, BuildError> {
    let cluster = inputs.cluster;
    let namespace = cluster
        .namespace()
        .ok_or(BuildError::MissingMetadata("metadata.namespace"))?;
    if cluster.meta().uid.is_none() {
        return Err(BuildError::MissingMetadata("metadata.uid"));
    }
    let mut owner = cluster
        .controller_owner_ref(&())
        .ok_or(BuildError::MissingMetadata("metadata.uid"))?;
    // Foreground deletion of the cluster waits for its children.
    owner.block_owner_deletion = Some(true);
    let b = Builder {
        spec: &cluster.spec,
        names: Names::new(cluster.name_any()),
        namespace,
        owner,
        config_hash: &inputs.validated.config.hash,
        operator_namespace: inputs.operator_namespace,
    };

    let mut children = vec![
        Child::ServiceAccount(b.service_account()),
        Child::Role(b.rbac_role()),
        Child::RoleBinding(b.role_binding()),
        Child::ConfigMap(b.config_map(&inputs.validated.config.yaml)),
    ];
    for role in Role::ALL {
        children.push(Child::Service(b.headless_service(role)));
        children.push(Child::Service(b.client_service(role)));
        children.push(Child::PodDisruptionBudget(b.pdb(role.as_str())));
    }
    let spec = &cluster.spec;
    children.push(Child::StatefulSet(b.stateful_set(
        Role::Acceptor,
        inputs.acceptor_replicas,
        &spec.acceptor.wal,
        &spec.acceptor.pod,
    )));
    children.push(Child::StatefulSet(b.stateful_set(
        Role::Writer,
        inputs.writer_replicas,
        &spec.writer.wal,
        &spec.writer.pod,
    )));
    children.push(Child::StatefulSet(b.stateful_set(
        Role::Querier,
        spec.querier.replicas,
        &spec.querier.wal,
        &spec.querier.pod,
    )));
    children.push(Child::Deployment(b.deployment(
        Role::Router,
        spec.router.replicas,
        &spec.router.pod,
    )));
    children.push(Child::Deployment(b.deployment(
        Role::Compactor,
        spec.compactor.replicas,
        &spec.compactor.pod,
    )));
    if spec.writer.autoscaling.is_some() {
        children.push(Child::HorizontalPodAutoscaler(b.writer_hpa()));
    }
    if spec.catalog.managed.is_some() {
        children.push(Child::Service(b.catalog_service()));
        children.push(Child::StatefulSet(b.catalog_stateful_set()));
    }
    if spec.network_policy.enabled {
        for role in Role::ALL.into_iter().chain([Role::Compactor]) {
            children.push(Child::NetworkPolicy(b.role_network_policy(role)));
        }
        if spec.catalog.managed.is_some() {
            children.push(Child::NetworkPolicy(b.catalog_network_policy()));
        }
    }
    Ok(children.into_iter().map(|c| (c.key(), c)).collect())
}

/// What the operator would apply for a cluster, before any scale-down is
/// taken into account (writer replicas as in the spec): the golden files
/// under `testdata/` pin this.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// `spec.paused`: nothing is applied.
    Paused,
    /// The spec is invalid: nothing is applied.
    Invalid(crate::validate::ValidationError),
    /// These objects are applied.
    Apply(Desired),
}

/// Plans a cluster (see [`Plan`]) for an operator whose namespace is not
/// known (see [`plan_for`]).
pub fn plan(cluster: &SignalDBCluster) -> Result<Plan, BuildError> {
    plan_for(cluster, None)
}

/// Plans a cluster (see [`Plan`]) for an operator running in
/// `operator_namespace`.
pub fn plan_for(cluster: &SignalDBCluster, operator_namespace: Option<&str>) -> Result<Plan, BuildError> {
    if cluster.spec.paused {
        return Ok(Plan::Paused);
    }
    let validated = match crate::validate::validate(cluster) {
        Ok(v) => v,
        Err(e) => return Ok(Plan::Invalid(e)),
    };
    build(&BuildInputs {
        cluster,
        validated: &validated,
        writer_replicas: cluster.spec.writer.replicas,
        acceptor_replicas: cluster.spec.acceptor.replicas,
        operator_namespace,
    })
    .map(Plan::Apply)
}

impl Plan {
    /// The plan as text: a multi-document YAML stream of the objects, or a
    /// comment saying why there are none.
    pub fn to_text(&self) -> Result<String, serde_yaml_ng::Error> {
        match self {
            Plan::Paused => Ok("# spec.paused is true: the operator applies nothing.\n".to_owned()),
            Plan::Invalid(e) => Ok(format!("# invalid spec, nothing is applied: {e}\n")),
            Plan::Apply(desired) => to_yaml(desired),
        }
    }
}

/// Renders desired objects as a multi-document YAML stream (golden files,
/// `--dry-run` style output).
pub fn to_yaml(desired: &Desired) -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::new();
    for child in desired.values() {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(child)?);
    }
    Ok(out)
}

struct Builder<'a> {
    spec: &'a SignalDBClusterSpec,
    names: Names,
    namespace: String,
    owner: OwnerReference,
    config_hash: &'a str,
    operator_namespace: Option<&'a str>,
}

fn s(v: &str) -> String {
    v.to_owned()
}

fn port(name: &str, number: u16) -> (String, i32) {
    (name.to_owned(), i32::from(number))
}

/// Named ports of a role, without the admin port.
fn role_ports(role: Role) -> Vec<(String, i32)> {
    match role {
        Role::Acceptor => vec![port("otlp-grpc", ports::OTLP_GRPC), port("otlp-http", ports::OTLP_HTTP)],
        Role::Writer => vec![port("flight", ports::WRITER_FLIGHT)],
        Role::Querier => vec![port("flight", ports::QUERIER_FLIGHT)],
        Role::Router => vec![
            port("http", ports::ROUTER_HTTP),
            port("flight-sql", ports::ROUTER_FLIGHT_SQL),
        ],
        Role::Compactor => Vec::new(),
    }
}

const ADMIN_PORT_NAME: &str = "admin";

/// Port of the managed catalog's PostgreSQL.
const CATALOG_PORT: u16 = 5432;

/// The TCP ports of a NetworkPolicy rule.
fn policy_ports(numbers: &[u16]) -> Vec<NetworkPolicyPort> {
    numbers
        .iter()
        .map(|n| NetworkPolicyPort {
            port: Some(IntOrString::Int(i32::from(*n))),
            protocol: Some(s("TCP")),
            ..Default::default()
        })
        .collect()
}

/// A rule admitting `ports` from `from`, or from anywhere when `from` is
/// `None`. Never a rule with an empty `from`, which Kubernetes reads as
/// "from anywhere".
fn ingress_rule(ports: &[u16], from: Option<Vec<NetworkPolicyPeer>>) -> Option<NetworkPolicyIngressRule> {
    if from.as_ref().is_some_and(Vec::is_empty) {
        return None;
    }
    Some(NetworkPolicyIngressRule {
        from,
        ports: Some(policy_ports(ports)),
    })
}

/// The ports a role serves to clients outside the cluster (none for writers
/// and queriers, which only the cluster's own pods call).
fn client_ports(role: Role) -> &'static [u16] {
    match role {
        Role::Acceptor => &[ports::OTLP_GRPC, ports::OTLP_HTTP],
        Role::Router => &[ports::ROUTER_HTTP, ports::ROUTER_FLIGHT_SQL],
        Role::Writer | Role::Querier | Role::Compactor => &[],
    }
}

/// `appProtocol` of the client ports when they speak TLS. All four carry
/// HTTP over TLS (gRPC is HTTP/2), so `https`, the IANA name. It also
/// overrides the router port's name `http`, which meshes such as Istio would
/// otherwise take for plain HTTP. Without TLS no `appProtocol` is set.
const TLS_APP_PROTOCOL: &str = "https";

/// Mode of the files of the TLS Secret: the pods' group (`fsGroup`) reads
/// the private key, nobody else.
const TLS_FILE_MODE: i32 = 0o440;

/// The ports a role serves to the cluster's other roles: Flight.
fn internal_ports(role: Role) -> &'static [u16] {
    match role {
        Role::Writer => &[ports::WRITER_FLIGHT],
        Role::Querier => &[ports::QUERIER_FLIGHT],
        Role::Acceptor | Role::Router | Role::Compactor => &[],
    }
}

fn env_value(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn env_field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: Some(s("v1")),
                field_path: path.to_owned(),
            }),
            ..Default::default()
        }),
    }
}

fn env_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_owned(),
                key: key.to_owned(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
    }
}

/// A probe of the admin port, which is plain HTTP even with `spec.tls`
/// (TLS covers the client ports only).
fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String(s(ADMIN_PORT_NAME)),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

/// Seconds a role gets between SIGTERM and SIGKILL: writers flush their
/// buffers, acceptors finish deliveries.
fn grace_seconds(role: Role) -> i64 {
    match role {
        Role::Writer => 300,
        Role::Acceptor => 120,
        Role::Querier | Role::Router => 30,
        // Stopping mid-job is safe (the swap is one transaction); a little
        // time lets a job about to finish do so.
        Role::Compactor => 60,
    }
}

/// Whether a role reads or writes object storage.
fn uses_storage(role: Role) -> bool {
    matches!(role, Role::Writer | Role::Querier | Role::Compactor)
}

impl Builder<'_> {
    fn meta(&self, name: String, component: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.names.labels(component)),
            owner_references: Some(vec![self.owner.clone()]),
            ..Default::default()
        }
    }

    fn service_account(&self) -> ServiceAccount {
        ServiceAccount {
            metadata: self.meta(self.names.service_account(), None),
            ..Default::default()
        }
    }

    /// The pods watch the EndpointSlices of the headless Services to route
    /// around pods that are not ready.
    fn rbac_role(&self) -> RbacRole {
        RbacRole {
            metadata: self.meta(self.names.service_account(), None),
            rules: Some(vec![PolicyRule {
                api_groups: Some(vec![s("discovery.k8s.io")]),
                resources: Some(vec![s("endpointslices")]),
                verbs: vec![s("get"), s("list"), s("watch")],
                ..Default::default()
            }]),
        }
    }

    fn role_binding(&self) -> RoleBinding {
        RoleBinding {
            metadata: self.meta(self.names.service_account(), None),
            role_ref: RoleRef {
                api_group: Some(s("rbac.authorization.k8s.io")),
                kind: s("Role"),
                name: self.names.service_account(),
            },
            subjects: Some(vec![Subject {
                kind: s("ServiceAccount"),
                name: self.names.service_account(),
                namespace: Some(self.namespace.clone()),
                ..Default::default()
            }]),
        }
    }

    fn config_map(&self, yaml: &str) -> ConfigMap {
        ConfigMap {
            metadata: self.meta(self.names.config(), None),
            data: Some(BTreeMap::from([(s(CONFIG_FILE), yaml.to_owned())])),
            ..Default::default()
        }
    }

    fn service_ports(ports: Vec<(String, i32)>) -> Vec<ServicePort> {
        ports
            .into_iter()
            .map(|(name, number)| ServicePort {
                name: Some(name.clone()),
                port: number,
                target_port: Some(IntOrString::String(name)),
                protocol: Some(s("TCP")),
                ..Default::default()
            })
            .collect()
    }

    /// The `spec.tls` Secret, for the roles that serve clients (acceptors
    /// and routers); `None` for the others, or without TLS.
    fn tls_secret(&self, role: Role) -> Option<&str> {
        let tls = self.spec.tls.as_ref()?;
        (!client_ports(role).is_empty()).then_some(tls.secret_name.as_str())
    }

    /// A role's Service ports; with TLS, the client ports say so in
    /// `appProtocol` (the admin port stays plain HTTP, as the probes use it).
    fn role_service_ports(&self, role: Role, ports: Vec<(String, i32)>) -> Vec<ServicePort> {
        let mut out = Self::service_ports(ports);
        if self.tls_secret(role).is_some() {
            for p in &mut out {
                if client_ports(role).iter().any(|n| i32::from(*n) == p.port) {
                    p.app_protocol = Some(s(TLS_APP_PROTOCOL));
                }
            }
        }
        out
    }

    /// Gives every pod a stable DNS name and publishes its readiness in
    /// EndpointSlices, which the data plane watches for routing.
    fn headless_service(&self, role: Role) -> Service {
        let mut ports = role_ports(role);
        ports.push(port(ADMIN_PORT_NAME, ports::ADMIN_HTTP));
        Service {
            metadata: self.meta(self.names.headless(role), Some(role.as_str())),
            spec: Some(ServiceSpec {
                cluster_ip: Some(s("None")),
                selector: Some(self.names.selector_labels(role.as_str())),
                ports: Some(self.role_service_ports(role, ports)),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The address clients use (OTLP senders for the acceptor, Grafana for the
    /// router).
    fn client_service(&self, role: Role) -> Service {
        Service {
            metadata: self.meta(self.names.role(role), Some(role.as_str())),
            spec: Some(ServiceSpec {
                type_: Some(s("ClusterIP")),
                selector: Some(self.names.selector_labels(role.as_str())),
                ports: Some(self.role_service_ports(role, role_ports(role))),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Pods of this cluster (every role and the managed catalog), in its
    /// namespace.
    fn cluster_peer(&self) -> NetworkPolicyPeer {
        NetworkPolicyPeer {
            pod_selector: Some(LabelSelector {
                match_labels: Some(self.names.instance_labels()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The operator's pods: in its own namespace when known, else in any.
    fn operator_peer(&self) -> NetworkPolicyPeer {
        let (key, value) = OPERATOR_POD_LABEL;
        NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: self
                    .operator_namespace
                    .map(|ns| BTreeMap::from([(s(LABEL_NAMESPACE_NAME), ns.to_owned())])),
                ..Default::default()
            }),
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(s(key), s(value))])),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Who scrapes `/metrics`: `networkPolicy.metricsFrom`, else every pod
    /// in the namespace.
    fn metrics_peers(&self) -> Vec<NetworkPolicyPeer> {
        match &self.spec.network_policy.metrics_from {
            Some(peers) => peers.clone(),
            None => vec![NetworkPolicyPeer {
                pod_selector: Some(LabelSelector::default()),
                ..Default::default()
            }],
        }
    }

    fn network_policy(&self, component: &str, ingress: Vec<NetworkPolicyIngressRule>) -> NetworkPolicy {
        NetworkPolicy {
            metadata: self.meta(self.names.network_policy(component), Some(component)),
            spec: Some(NetworkPolicyObjectSpec {
                pod_selector: Some(LabelSelector {
                    match_labels: Some(self.names.selector_labels(component)),
                    ..Default::default()
                }),
                policy_types: Some(vec![s("Ingress")]),
                ingress: Some(ingress),
                ..Default::default()
            }),
        }
    }

    /// What a role's pods admit: client ports (acceptors, routers) from
    /// `networkPolicy.ingressFrom` or anywhere; Flight (writers, queriers)
    /// from the cluster's pods; the admin port from the cluster's pods, the
    /// metrics peers and, on writers and acceptors, the operator (drains).
    fn role_network_policy(&self, role: Role) -> NetworkPolicy {
        let np = &self.spec.network_policy;
        let mut rules = Vec::new();
        let client = client_ports(role);
        if !client.is_empty() {
            let from = (!np.ingress_from.is_empty()).then(|| np.ingress_from.clone());
            rules.extend(ingress_rule(client, from));
        }
        let internal = internal_ports(role);
        if !internal.is_empty() {
            rules.extend(ingress_rule(internal, Some(vec![self.cluster_peer()])));
        }
        let mut admin_from = vec![self.cluster_peer()];
        // Drains: the operator calls leaving writers and acceptors.
        if matches!(role, Role::Writer | Role::Acceptor) {
            admin_from.push(self.operator_peer());
        }
        admin_from.extend(self.metrics_peers());
        rules.extend(ingress_rule(&[ports::ADMIN_HTTP], Some(admin_from)));
        self.network_policy(role.as_str(), rules)
    }

    /// The managed catalog admits PostgreSQL from the cluster's pods only.
    fn catalog_network_policy(&self) -> NetworkPolicy {
        let rules = ingress_rule(&[CATALOG_PORT], Some(vec![self.cluster_peer()]));
        self.network_policy(COMPONENT_CATALOG, rules.into_iter().collect())
    }

    fn pdb(&self, component: &str) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: self.meta(format!("{}-{component}", self.names.cluster()), Some(component)),
            spec: Some(PodDisruptionBudgetSpec {
                max_unavailable: Some(IntOrString::Int(1)),
                selector: Some(LabelSelector {
                    match_labels: Some(self.names.selector_labels(component)),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn catalog_url_env(&self) -> Vec<EnvVar> {
        let spec = &self.spec.catalog;
        if let Some(pg) = &spec.postgres {
            vec![env_secret(
                "SIGNALDB_CATALOG__URL",
                &pg.url_secret_ref.name,
                &pg.url_secret_ref.key,
            )]
        } else if spec.managed.is_some() {
            let host = format!("{}.{}.svc", self.names.catalog(), self.namespace);
            vec![
                env_secret("CATALOG_PASSWORD", &self.names.catalog(), CATALOG_PASSWORD_KEY),
                env_value(
                    "SIGNALDB_CATALOG__URL",
                    format!("postgres://{CATALOG_DB}:$(CATALOG_PASSWORD)@{host}:{CATALOG_PORT}/{CATALOG_DB}"),
                ),
            ]
        } else {
            Vec::new()
        }
    }

    fn container_env(&self, role: Role, pod: &PodSpecOptions) -> Vec<EnvVar> {
        let mut env = vec![
            env_field("POD_NAME", "metadata.name"),
            env_field("POD_NAMESPACE", "metadata.namespace"),
            env_field("SIGNALDB_NODE_ID", "metadata.name"),
        ];
        // Writers and queriers tell others where to reach them: their
        // stable pod DNS name under the headless Service.
        let advertise = match role {
            Role::Writer => Some(("SIGNALDB_WRITER__ADVERTISE_ADDR", ports::WRITER_FLIGHT)),
            Role::Querier => Some(("SIGNALDB_QUERIER__ADVERTISE_ADDR", ports::QUERIER_FLIGHT)),
            Role::Acceptor | Role::Router | Role::Compactor => None,
        };
        if let Some((name, port)) = advertise {
            env.push(env_value(
                name,
                format!("$(POD_NAME).{}.$(POD_NAMESPACE).svc:{port}", self.names.headless(role)),
            ));
        }
        // Every role follows the writers' and queriers' EndpointSlices, so a
        // pod that stops being ready leaves routing at once (the namespace
        // comes from POD_NAMESPACE).
        env.push(env_value(
            "SIGNALDB_DISCOVERY__KUBERNETES__WRITER_SERVICE",
            self.names.headless(Role::Writer),
        ));
        env.push(env_value(
            "SIGNALDB_DISCOVERY__KUBERNETES__QUERIER_SERVICE",
            self.names.headless(Role::Querier),
        ));
        env.extend(self.catalog_url_env());
        if uses_storage(role)
            && let Some(creds) = self
                .spec
                .storage
                .s3
                .as_ref()
                .and_then(|s3| s3.credentials_secret_ref.as_ref())
        {
            env.push(env_secret(
                "SIGNALDB_STORAGE__S3__ACCESS_KEY_ID",
                &creds.name,
                &creds.access_key_id_key,
            ));
            env.push(env_secret(
                "SIGNALDB_STORAGE__S3__SECRET_ACCESS_KEY",
                &creds.name,
                &creds.secret_access_key_key,
            ));
        }
        env.extend(pod.env.iter().cloned());
        env
    }

    fn container(&self, role: Role, pod: &PodSpecOptions, stateful: bool) -> Container {
        let mut ports = role_ports(role);
        ports.push(port(ADMIN_PORT_NAME, ports::ADMIN_HTTP));
        let mut mounts = vec![
            VolumeMount {
                name: s("config"),
                mount_path: s(CONFIG_DIR),
                read_only: Some(true),
                ..Default::default()
            },
            VolumeMount {
                name: s("data"),
                mount_path: s(DATA_DIR),
                ..Default::default()
            },
            VolumeMount {
                name: s("tmp"),
                mount_path: s("/tmp"),
                ..Default::default()
            },
        ];
        mounts.push(VolumeMount {
            name: s("cluster-token"),
            mount_path: s(crate::config::CLUSTER_TOKEN_DIR),
            read_only: Some(true),
            ..Default::default()
        });
        // The whole Secret, never a `subPath` (which would not see renewals).
        if self.tls_secret(role).is_some() {
            mounts.push(VolumeMount {
                name: s("tls"),
                mount_path: s(TLS_DIR),
                read_only: Some(true),
                ..Default::default()
            });
        }
        if stateful {
            mounts.push(VolumeMount {
                name: s("wal"),
                mount_path: s(WAL_DIR),
                ..Default::default()
            });
        }
        if uses_storage(role)
            && let Some(fs) = &self.spec.storage.filesystem
        {
            mounts.push(VolumeMount {
                name: s("objects"),
                mount_path: s(OBJECTS_DIR),
                sub_path: fs.sub_path.clone(),
                ..Default::default()
            });
        }
        Container {
            name: s(role.as_str()),
            image: Some(self.spec.image.clone()),
            image_pull_policy: self.spec.image_pull_policy.map(|p| s(p.as_str())),
            args: Some(vec![
                s(role.as_str()),
                s("--config"),
                format!("{CONFIG_DIR}/{CONFIG_FILE}"),
            ]),
            env: Some(self.container_env(role, pod)),
            ports: Some(
                ports
                    .into_iter()
                    .map(|(name, number)| ContainerPort {
                        name: Some(name),
                        container_port: number,
                        protocol: Some(s("TCP")),
                        ..Default::default()
                    })
                    .collect(),
            ),
            resources: pod.resources.clone(),
            readiness_probe: Some(http_probe("/ready", 5, 3)),
            liveness_probe: Some(http_probe("/live", 10, 6)),
            // Replaying a long WAL may take a while: no liveness kill before
            // the process has come up once.
            startup_probe: Some(http_probe("/live", 5, 120)),
            volume_mounts: Some(mounts),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(true),
                capabilities: Some(Capabilities {
                    drop: Some(vec![s("ALL")]),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod_template(&self, role: Role, pod: &PodSpecOptions, stateful: bool) -> PodTemplateSpec {
        let mut annotations = pod.pod_annotations.clone();
        annotations.insert(s(ANNOTATION_CONFIG_HASH), self.config_hash.to_owned());
        let labels = self.names.labels(Some(role.as_str()));
        let mut volumes = vec![
            Volume {
                name: s("config"),
                config_map: Some(ConfigMapVolumeSource {
                    name: self.names.config(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Volume {
                name: s("data"),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            },
            Volume {
                name: s("tmp"),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            },
            Volume {
                name: s("cluster-token"),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(self.names.cluster_token()),
                    default_mode: Some(0o444),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ];
        if let Some(secret) = self.tls_secret(role) {
            volumes.push(Volume {
                name: s("tls"),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(secret.to_owned()),
                    default_mode: Some(TLS_FILE_MODE),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        if uses_storage(role)
            && let Some(fs) = &self.spec.storage.filesystem
        {
            volumes.push(Volume {
                name: s("objects"),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: fs.claim_name.clone(),
                    read_only: Some(false),
                }),
                ..Default::default()
            });
        }
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(labels),
                annotations: Some(annotations),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                service_account_name: Some(self.names.service_account()),
                containers: vec![self.container(role, pod, stateful)],
                volumes: Some(volumes),
                affinity: pod.affinity.clone(),
                tolerations: (!pod.tolerations.is_empty()).then(|| pod.tolerations.clone()),
                node_selector: (!pod.node_selector.is_empty()).then(|| pod.node_selector.clone()),
                image_pull_secrets: (!self.spec.image_pull_secrets.is_empty())
                    .then(|| self.spec.image_pull_secrets.clone()),
                termination_grace_period_seconds: Some(grace_seconds(role)),
                security_context: Some(PodSecurityContext {
                    run_as_non_root: Some(true),
                    run_as_user: Some(65532),
                    run_as_group: Some(65532),
                    fs_group: Some(65532),
                    fs_group_change_policy: Some(s("OnRootMismatch")),
                    seccomp_profile: Some(SeccompProfile {
                        type_: s("RuntimeDefault"),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }
    }

    fn volume_claim(&self, name: &str, component: &str, wal: &WalSpec) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                labels: Some(self.names.selector_labels(component)),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec![s("ReadWriteOnce")]),
                storage_class_name: wal.storage_class_name.clone(),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(s("storage"), Quantity(wal.size.clone()))])),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn stateful_set(&self, role: Role, replicas: i32, wal: &WalSpec, pod: &PodSpecOptions) -> StatefulSet {
        StatefulSet {
            metadata: self.meta(self.names.role(role), Some(role.as_str())),
            spec: Some(StatefulSetSpec {
                replicas: Some(replicas),
                service_name: Some(self.names.headless(role)),
                selector: LabelSelector {
                    match_labels: Some(self.names.selector_labels(role.as_str())),
                    ..Default::default()
                },
                // Pods do not depend on each other's start order.
                pod_management_policy: Some(s("Parallel")),
                update_strategy: Some(StatefulSetUpdateStrategy {
                    type_: Some(s("RollingUpdate")),
                    ..Default::default()
                }),
                // A WAL may hold acknowledged data that is not stored yet:
                // claims outlive their pods and the cluster.
                persistent_volume_claim_retention_policy: Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(s("Retain")),
                    when_scaled: Some(s("Retain")),
                }),
                template: self.pod_template(role, pod, true),
                volume_claim_templates: Some(vec![self.volume_claim("wal", role.as_str(), wal)]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The Deployment of a role without volumes of its own (routers,
    /// compactors).
    fn deployment(&self, role: Role, replicas: i32, pod: &PodSpecOptions) -> Deployment {
        Deployment {
            metadata: self.meta(self.names.role(role), Some(role.as_str())),
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                selector: LabelSelector {
                    match_labels: Some(self.names.selector_labels(role.as_str())),
                    ..Default::default()
                },
                template: self.pod_template(role, pod, false),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Scales this SignalDBCluster (not the StatefulSet) so that every
    /// scale-down goes through the drain protocol.
    fn writer_hpa(&self) -> HorizontalPodAutoscaler {
        let mut metrics = Vec::new();
        let Some(a) = &self.spec.writer.autoscaling else {
            return HorizontalPodAutoscaler::default();
        };
        for (resource, target) in [
            ("cpu", a.target_cpu_utilization_percentage),
            ("memory", a.target_memory_utilization_percentage),
        ] {
            if let Some(target) = target {
                metrics.push(MetricSpec {
                    type_: s("Resource"),
                    resource: Some(ResourceMetricSource {
                        name: s(resource),
                        target: MetricTarget {
                            type_: s("Utilization"),
                            average_utilization: Some(target),
                            ..Default::default()
                        },
                    }),
                    ..Default::default()
                });
            }
        }
        HorizontalPodAutoscaler {
            metadata: self.meta(self.names.writer_hpa(), Some(Role::Writer.as_str())),
            spec: HorizontalPodAutoscalerSpec {
                scale_target_ref: CrossVersionObjectReference {
                    api_version: Some(self.owner.api_version.clone()),
                    kind: self.owner.kind.clone(),
                    name: self.names.cluster().to_owned(),
                },
                min_replicas: Some(a.min_replicas),
                max_replicas: a.max_replicas,
                metrics: Some(metrics),
                // One writer at a time: each leaving writer is drained first.
                behavior: Some(HorizontalPodAutoscalerBehavior {
                    scale_down: Some(HPAScalingRules {
                        stabilization_window_seconds: Some(a.scale_down_stabilization_seconds),
                        policies: Some(vec![HPAScalingPolicy {
                            type_: s("Pods"),
                            value: 1,
                            period_seconds: 300,
                        }]),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }
    }

    fn catalog_service(&self) -> Service {
        Service {
            metadata: self.meta(self.names.catalog(), Some(COMPONENT_CATALOG)),
            spec: Some(ServiceSpec {
                type_: Some(s("ClusterIP")),
                selector: Some(self.names.selector_labels(COMPONENT_CATALOG)),
                ports: Some(Self::service_ports(vec![(s("postgres"), i32::from(CATALOG_PORT))])),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A single PostgreSQL for trials: no replication, no backups.
    fn catalog_stateful_set(&self) -> StatefulSet {
        let Some(m) = &self.spec.catalog.managed else {
            return StatefulSet::default();
        };
        let data = WalSpec {
            size: m.size.clone(),
            storage_class_name: m.storage_class_name.clone(),
        };
        let labels = self.names.labels(Some(COMPONENT_CATALOG));
        let ready = Probe {
            exec: Some(ExecAction {
                command: Some(vec![s("pg_isready"), s("-U"), s(CATALOG_DB), s("-d"), s(CATALOG_DB)]),
            }),
            period_seconds: Some(5),
            failure_threshold: Some(3),
            ..Default::default()
        };
        let container = Container {
            name: s("postgres"),
            image: Some(m.image.clone()),
            image_pull_policy: self.spec.image_pull_policy.map(|p| s(p.as_str())),
            env: Some(vec![
                env_value("POSTGRES_USER", CATALOG_DB),
                env_value("POSTGRES_DB", CATALOG_DB),
                env_secret("POSTGRES_PASSWORD", &self.names.catalog(), CATALOG_PASSWORD_KEY),
                env_value("PGDATA", "/var/lib/postgresql/data/pgdata"),
            ]),
            ports: Some(vec![ContainerPort {
                name: Some(s("postgres")),
                container_port: i32::from(CATALOG_PORT),
                protocol: Some(s("TCP")),
                ..Default::default()
            }]),
            resources: m.resources.clone(),
            readiness_probe: Some(ready.clone()),
            liveness_probe: Some(Probe {
                period_seconds: Some(10),
                failure_threshold: Some(6),
                initial_delay_seconds: Some(30),
                ..ready
            }),
            volume_mounts: Some(vec![VolumeMount {
                name: s("data"),
                mount_path: s("/var/lib/postgresql/data"),
                ..Default::default()
            }]),
            ..Default::default()
        };
        StatefulSet {
            metadata: self.meta(self.names.catalog(), Some(COMPONENT_CATALOG)),
            spec: Some(StatefulSetSpec {
                replicas: Some(1),
                service_name: Some(self.names.catalog()),
                selector: LabelSelector {
                    match_labels: Some(self.names.selector_labels(COMPONENT_CATALOG)),
                    ..Default::default()
                },
                // A trial database: its data goes with it, together with
                // the Secret holding its password.
                persistent_volume_claim_retention_policy: Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(s("Delete")),
                    when_scaled: Some(s("Retain")),
                }),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![container],
                        image_pull_secrets: (!self.spec.image_pull_secrets.is_empty())
                            .then(|| self.spec.image_pull_secrets.clone()),
                        termination_grace_period_seconds: Some(60),
                        ..Default::default()
                    }),
                },
                volume_claim_templates: Some(vec![self.volume_claim("data", COMPONENT_CATALOG, &data)]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// The WAL size a StatefulSet's claim template asks for.
pub fn claim_template_size(sts: &StatefulSet) -> Option<String> {
    sts.spec
        .as_ref()?
        .volume_claim_templates
        .as_ref()?
        .first()?
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
        .map(|q| q.0.clone())
}

/// The StorageClass a StatefulSet's claim template asks for.
pub fn claim_template_class(sts: &StatefulSet) -> Option<String> {
    sts.spec
        .as_ref()?
        .volume_claim_templates
        .as_ref()?
        .first()?
        .spec
        .as_ref()?
        .storage_class_name
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::validate;

    fn cluster() -> SignalDBCluster {
        let mut c = SignalDBCluster::new(
            "demo",
            serde_json::from_value(serde_json::json!({
                "catalog": {"managed": {}},
                "storage": {"filesystem": {"claimName": "shared"}},
                "writer": {"replicas": 3},
            }))
            .unwrap(),
        );
        c.metadata.namespace = Some("ns".into());
        c.metadata.uid = Some("uid-1".into());
        c
    }

    fn desired(c: &SignalDBCluster, writers: i32) -> Desired {
        let v = validate(c).unwrap();
        build(&BuildInputs {
            cluster: c,
            validated: &v,
            writer_replicas: writers,
            acceptor_replicas: c.spec.acceptor.replicas,
            operator_namespace: Some("signaldb-system"),
        })
        .unwrap()
    }

    #[test]
    fn every_child_is_owned_and_labelled() {
        let d = desired(&cluster(), 3);
        // Common, per service role (two Services and a PDB), StatefulSets,
        // Deployments (router, compactor), managed catalog, NetworkPolicies.
        assert_eq!(d.len(), 4 + 4 * 3 + 3 + 2 + 2 + 6);
        for child in d.values() {
            let m = child.meta();
            let owners = m.owner_references.as_ref().unwrap();
            assert_eq!(owners.len(), 1);
            assert_eq!(owners[0].kind, "SignalDBCluster");
            assert_eq!(owners[0].uid, "uid-1");
            assert_eq!(owners[0].controller, Some(true));
            assert_eq!(m.namespace.as_deref(), Some("ns"));
            let labels = m.labels.as_ref().unwrap();
            assert_eq!(labels[crate::names::LABEL_INSTANCE], "demo");
            assert_eq!(labels[crate::names::LABEL_MANAGED_BY], crate::names::MANAGER);
        }
    }

    #[test]
    fn writer_replicas_come_from_the_input() {
        let d = desired(&cluster(), 5);
        let key = ChildKey {
            kind: Kind::StatefulSet,
            name: "demo-writer".into(),
        };
        let Child::StatefulSet(sts) = &d[&key] else {
            panic!("not a StatefulSet")
        };
        assert_eq!(sts.spec.as_ref().unwrap().replicas, Some(5));
        assert_eq!(claim_template_size(sts).as_deref(), Some("10Gi"));
        assert_eq!(claim_template_class(sts), None);
    }

    #[test]
    fn config_change_changes_pod_templates_only_through_the_hash() {
        let a = cluster();
        let mut b = cluster();
        b.spec.limits.max_request_size = Some("4MiB".into());
        let (da, db) = (desired(&a, 3), desired(&b, 3));
        let changed: Vec<&ChildKey> = da
            .iter()
            .filter(|(k, v)| db.get(*k) != Some(*v))
            .map(|(k, _)| k)
            .collect();
        let names: Vec<String> = changed
            .iter()
            .map(|k| format!("{}/{}", k.kind.as_str(), k.name))
            .collect();
        assert_eq!(
            names,
            [
                "ConfigMap/demo-config",
                "StatefulSet/demo-acceptor",
                "StatefulSet/demo-querier",
                "StatefulSet/demo-writer",
                "Deployment/demo-compactor",
                "Deployment/demo-router",
            ]
        );
    }

    fn with_tls() -> SignalDBCluster {
        let mut c = cluster();
        c.spec.tls = Some(crate::crd::TlsSpec {
            secret_name: "demo-tls".into(),
        });
        c.spec.tenancy.api_keys = true;
        c
    }

    fn pod_spec(d: &Desired, role: Role) -> &PodSpec {
        let kind = match role {
            Role::Router | Role::Compactor => Kind::Deployment,
            Role::Acceptor | Role::Writer | Role::Querier => Kind::StatefulSet,
        };
        let key = ChildKey {
            kind,
            name: format!("demo-{}", role.as_str()),
        };
        let template = match &d[&key] {
            Child::StatefulSet(o) => &o.spec.as_ref().unwrap().template,
            Child::Deployment(o) => &o.spec.as_ref().unwrap().template,
            other => panic!("not a workload: {other:?}"),
        };
        template.spec.as_ref().unwrap()
    }

    fn config_of(d: &Desired) -> signaldb_config::Config {
        let key = ChildKey {
            kind: Kind::ConfigMap,
            name: "demo-config".into(),
        };
        let Child::ConfigMap(cm) = &d[&key] else {
            panic!("not a ConfigMap")
        };
        signaldb_config::Config::from_yaml(&cm.data.as_ref().unwrap()[CONFIG_FILE]).unwrap()
    }

    #[test]
    fn tls_secret_is_mounted_whole_on_acceptors_and_routers_only() {
        let d = desired(&with_tls(), 3);
        for role in Role::ALL {
            let pod = pod_spec(&d, role);
            let volume = pod.volumes.as_ref().unwrap().iter().find(|v| v.name == "tls");
            let container = &pod.containers[0];
            let mount = container
                .volume_mounts
                .as_ref()
                .unwrap()
                .iter()
                .find(|m| m.name == "tls");
            if matches!(role, Role::Acceptor | Role::Router) {
                let secret = volume.unwrap().secret.as_ref().unwrap();
                assert_eq!(secret.secret_name.as_deref(), Some("demo-tls"));
                assert_eq!(secret.items, None, "the whole Secret, so renewals arrive");
                assert_eq!(secret.default_mode, Some(0o440));
                assert_eq!(secret.optional, None, "pods wait for the Secret");
                let mount = mount.unwrap();
                assert_eq!(mount.mount_path, "/var/run/signaldb/tls");
                assert_eq!(mount.read_only, Some(true));
                assert_eq!(mount.sub_path, None, "a subPath mount never sees a renewal");
                assert_eq!(mount.sub_path_expr, None);
            } else {
                assert!(volume.is_none(), "{role:?} has the TLS volume");
                assert!(mount.is_none(), "{role:?} mounts the TLS Secret");
            }
            // The probes keep talking plain HTTP to the admin port, which
            // TLS does not cover.
            for probe in [
                &container.readiness_probe,
                &container.liveness_probe,
                &container.startup_probe,
            ] {
                let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
                assert_eq!(get.port, IntOrString::String(s(ADMIN_PORT_NAME)));
                assert_eq!(get.scheme, None);
            }
        }
        // The one signaldb.yaml names the Secret's files where they are
        // mounted; only acceptors and routers load them.
        let config = config_of(&d);
        assert_eq!(
            config.tls.cert_file,
            Some(std::path::PathBuf::from("/var/run/signaldb/tls/tls.crt"))
        );
        assert_eq!(
            config.tls.key_file,
            Some(std::path::PathBuf::from("/var/run/signaldb/tls/tls.key"))
        );
        assert!(config.tenancy.api_keys);
    }

    #[test]
    fn tls_client_ports_say_https() {
        for (c, tls) in [(with_tls(), true), (cluster(), false)] {
            let d = desired(&c, 3);
            for role in Role::ALL {
                for name in [
                    format!("demo-{}", role.as_str()),
                    format!("demo-{}-headless", role.as_str()),
                ] {
                    let key = ChildKey {
                        kind: Kind::Service,
                        name: name.clone(),
                    };
                    let Child::Service(svc) = &d[&key] else {
                        panic!("not a Service")
                    };
                    for p in svc.spec.as_ref().unwrap().ports.as_ref().unwrap() {
                        let client = client_ports(role).iter().any(|n| i32::from(*n) == p.port);
                        assert_eq!(
                            p.app_protocol.as_deref(),
                            (tls && client).then_some("https"),
                            "{name} port {}",
                            p.port
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn tls_changes_acceptors_routers_and_the_config_only() {
        let (plain, tls) = (desired(&cluster(), 3), desired(&with_tls(), 3));
        assert_eq!(plain.keys().collect::<Vec<_>>(), tls.keys().collect::<Vec<_>>());
        let changed: Vec<String> = plain
            .iter()
            .filter(|(k, v)| tls.get(*k) != Some(*v))
            .map(|(k, _)| format!("{}/{}", k.kind.as_str(), k.name))
            .collect();
        assert_eq!(
            changed,
            [
                "ConfigMap/demo-config",
                "Service/demo-acceptor",
                "Service/demo-acceptor-headless",
                "Service/demo-router",
                "Service/demo-router-headless",
                "StatefulSet/demo-acceptor",
                "StatefulSet/demo-querier",
                "StatefulSet/demo-writer",
                "Deployment/demo-compactor",
                "Deployment/demo-router",
            ]
        );
        // Writers and queriers only through the configuration hash.
        let tls_hash = validate(&with_tls()).unwrap().config.hash;
        for name in ["demo-writer", "demo-querier"] {
            let key = ChildKey {
                kind: Kind::StatefulSet,
                name: name.into(),
            };
            let (Child::StatefulSet(a), Child::StatefulSet(b)) = (&plain[&key], &tls[&key]) else {
                panic!("not StatefulSets")
            };
            let mut a = a.clone();
            a.spec
                .as_mut()
                .unwrap()
                .template
                .metadata
                .as_mut()
                .unwrap()
                .annotations
                .as_mut()
                .unwrap()
                .insert(s(ANNOTATION_CONFIG_HASH), tls_hash.clone());
            assert_eq!(&a, b, "{name}");
        }
    }

    #[test]
    fn without_tls_nothing_is_mounted_or_rendered() {
        let d = desired(&cluster(), 3);
        let text = to_yaml(&d).unwrap();
        for absent in [
            "appProtocol",
            "/var/run/signaldb/tls",
            "name: tls",
            "api_keys",
            "cert_file",
        ] {
            assert!(!text.contains(absent), "{absent:?} without spec.tls");
        }
        let config = config_of(&d);
        assert_eq!(config.tls, signaldb_config::TlsConfig::default());
        assert!(!config.tenancy.api_keys);
    }

    #[test]
    fn missing_uid_is_an_error() {
        let mut c = cluster();
        c.metadata.uid = None;
        let v = validate(&c).unwrap();
        let e = build(&BuildInputs {
            cluster: &c,
            validated: &v,
            writer_replicas: 1,
            acceptor_replicas: 1,
            operator_namespace: None,
        })
        .unwrap_err();
        assert_eq!(e, BuildError::MissingMetadata("metadata.uid"));
    }

    fn policy(d: &Desired, component: &str) -> serde_json::Value {
        let key = ChildKey {
            kind: Kind::NetworkPolicy,
            name: format!("demo-{component}"),
        };
        let Child::NetworkPolicy(np) = &d[&key] else {
            panic!("not a NetworkPolicy")
        };
        serde_json::to_value(np).unwrap()
    }

    /// The rules of a policy as (ports, peers), `None` peers meaning anyone.
    fn rules(np: &serde_json::Value) -> Vec<(Vec<i64>, Option<Vec<serde_json::Value>>)> {
        np["spec"]["ingress"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let ports = r["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| {
                        assert_eq!(p["protocol"], "TCP");
                        p["port"].as_i64().unwrap()
                    })
                    .collect();
                let from = r.get("from").map(|f| {
                    let peers = f.as_array().unwrap().clone();
                    assert!(!peers.is_empty(), "an empty `from` admits anyone: {r}");
                    peers
                });
                (ports, from)
            })
            .collect()
    }

    fn same_cluster() -> serde_json::Value {
        serde_json::json!({"podSelector": {"matchLabels": {
            "app.kubernetes.io/instance": "demo", "app.kubernetes.io/name": "signaldb",
        }}})
    }

    fn whole_namespace() -> serde_json::Value {
        serde_json::json!({"podSelector": {}})
    }

    #[test]
    fn network_policies_admit_clients_to_acceptors_and_routers_only() {
        use serde_json::json;
        let d = desired(&cluster(), 3);
        for (component, selected) in [
            ("acceptor", "acceptor"),
            ("writer", "writer"),
            ("querier", "querier"),
            ("router", "router"),
            ("catalog", "catalog"),
        ] {
            let np = policy(&d, component);
            assert_eq!(np["apiVersion"], "networking.k8s.io/v1");
            assert_eq!(np["spec"]["policyTypes"], json!(["Ingress"]));
            assert_eq!(
                np["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"],
                selected
            );
            assert_eq!(
                np["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"],
                "demo"
            );
        }
        let operator = json!({
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "signaldb-system"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "signaldb-operator"}},
        });
        assert_eq!(
            rules(&policy(&d, "acceptor")),
            [
                (vec![4317, 4318], None),
                (
                    vec![9091],
                    Some(vec![same_cluster(), operator.clone(), whole_namespace()])
                ),
            ]
        );
        assert_eq!(
            rules(&policy(&d, "router")),
            [
                (vec![3200, 50053], None),
                (vec![9091], Some(vec![same_cluster(), whole_namespace()])),
            ]
        );
        assert_eq!(
            rules(&policy(&d, "writer")),
            [
                (vec![50051], Some(vec![same_cluster()])),
                (vec![9091], Some(vec![same_cluster(), operator, whole_namespace()])),
            ]
        );
        assert_eq!(
            rules(&policy(&d, "querier")),
            [
                (vec![50052], Some(vec![same_cluster()])),
                (vec![9091], Some(vec![same_cluster(), whole_namespace()])),
            ]
        );
        assert_eq!(
            rules(&policy(&d, "catalog")),
            [(vec![5432], Some(vec![same_cluster()]))]
        );
    }

    #[test]
    fn network_policy_peers_are_configurable() {
        use serde_json::json;
        let mut c = cluster();
        let lb = json!({"ipBlock": {"cidr": "10.0.0.0/8"}});
        let monitoring = json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}});
        c.spec.network_policy = serde_json::from_value(json!({
            "ingressFrom": [lb],
            "metricsFrom": [monitoring],
        }))
        .unwrap();
        let d = desired(&c, 1);
        let acceptor = rules(&policy(&d, "acceptor"));
        assert_eq!(acceptor[0], (vec![4317, 4318], Some(vec![lb.clone()])));
        let admin = acceptor[1].1.clone().unwrap();
        assert_eq!(
            (admin.len(), &admin[0], &admin[2]),
            (3, &same_cluster(), &monitoring),
            "the cluster, the operator (drains), the metrics peers"
        );
        assert_eq!(rules(&policy(&d, "router"))[0], (vec![3200, 50053], Some(vec![lb])));

        // No metrics peers: the admin port is the cluster's (and, on writers,
        // the operator's) alone, never open to anyone.
        c.spec.network_policy.metrics_from = Some(Vec::new());
        let d = desired(&c, 1);
        assert_eq!(
            rules(&policy(&d, "querier")),
            [
                (vec![50052], Some(vec![same_cluster()])),
                (vec![9091], Some(vec![same_cluster()])),
            ]
        );
        let writer = rules(&policy(&d, "writer"));
        assert_eq!(writer[1].1.as_ref().unwrap().len(), 2, "{writer:?}");

        // An operator outside any known namespace: operator pods anywhere.
        let v = validate(&c).unwrap();
        let d = build(&BuildInputs {
            cluster: &c,
            validated: &v,
            writer_replicas: 1,
            acceptor_replicas: 1,
            operator_namespace: None,
        })
        .unwrap();
        assert_eq!(
            rules(&policy(&d, "writer"))[1].1.as_ref().unwrap()[1],
            json!({
                "namespaceSelector": {},
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "signaldb-operator"}},
            })
        );
    }

    #[test]
    fn disabled_network_policy_renders_none() {
        let mut c = cluster();
        c.spec.network_policy.enabled = false;
        let d = desired(&c, 3);
        assert!(d.keys().all(|k| k.kind != Kind::NetworkPolicy));
        assert_eq!(d.len(), 4 + 4 * 3 + 3 + 2 + 2);
        // No managed catalog: no catalog policy.
        let mut c = cluster();
        c.spec.catalog =
            serde_json::from_value(serde_json::json!({"postgres": {"urlSecretRef": {"name": "pg"}}})).unwrap();
        let d = desired(&c, 3);
        let policies: Vec<&str> = d
            .keys()
            .filter(|k| k.kind == Kind::NetworkPolicy)
            .map(|k| k.name.as_str())
            .collect();
        assert_eq!(
            policies,
            [
                "demo-acceptor",
                "demo-compactor",
                "demo-querier",
                "demo-router",
                "demo-writer"
            ]
        );
    }
}
