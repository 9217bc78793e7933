//! The reconciler: validate -> drain decision -> build -> apply -> status.
//!
//! Each stage but apply is a pure function tested on its own; this module
//! strings them together with the API calls, and emits Kubernetes events on
//! transitions. A round that finds everything as it should be makes no API
//! writes at all: children are compared before they are applied, and status
//! is written only when it differs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::Value;
use signaldb_config::Role;
use tracing::{debug, info, warn};

use crate::apply::Applier;
use crate::build::{self, BuildInputs, Kind};
use crate::crd::{ScaleDownStatus, SignalDBCluster, SignalDBClusterStatus};
use crate::drain::{self, DrainAction, DrainDecision, DrainEvent, DrainInputs};
use crate::drain_client::{ClusterToken, DrainClient, WriterTarget, ensure_draining};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::names::{CATALOG_PASSWORD_KEY, CLUSTER_TOKEN_KEY, COMPONENT_CATALOG, MANAGER, Names};
use crate::status::{self, DEGRADED, Outcome, PROGRESSING, READY, Reconciled, RoleObservation, StatusInputs};
use crate::validate::validate;

/// The current time; replaceable in tests.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// How often things happen.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How soon to look again while a writer drain is in progress.
    pub drain_poll: Duration,
    /// How soon to look again when nothing is in progress (the controller
    /// also reacts to every change of the cluster and its children).
    pub resync: Duration,
    /// How soon to retry after an error.
    pub retry: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            drain_poll: Duration::from_secs(5),
            resync: Duration::from_secs(300),
            retry: Duration::from_secs(15),
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub drain: Arc<dyn DrainClient>,
    pub clock: Clock,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    /// The namespace the operator's pods run in, when known: the clusters'
    /// NetworkPolicies admit drain calls from operator pods there only.
    pub operator_namespace: Option<String>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("drain", &self.drain)
            .field("settings", &self.settings)
            .field("operator_namespace", &self.operator_namespace)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context with the system clock; `instance` names this operator
    /// replica in events.
    pub fn new(client: Client, drain: Arc<dyn DrainClient>, metrics: Arc<Metrics>, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: MANAGER.to_owned(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            drain,
            clock: Arc::new(Timestamp::now),
            metrics,
            settings: Settings::default(),
            operator_namespace: None,
        }
    }

    /// The same context with another clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The same context with other settings.
    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// The same context for an operator running in `namespace`.
    pub fn with_operator_namespace(mut self, namespace: Option<String>) -> Self {
        self.operator_namespace = namespace;
        self
    }
}

/// Reconciles one cluster (the `kube::runtime::Controller` callback).
pub async fn reconcile(cluster: Arc<SignalDBCluster>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let result = reconcile_cluster(&cluster, &ctx).await;
    ctx.metrics
        .reconciled(started.elapsed(), result.as_ref().err().map(Error::metric_label));
    result
}

/// What to do after a failed reconcile (the controller's error policy).
pub fn error_policy(cluster: Arc<SignalDBCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(
        cluster = %cluster.name_any(),
        namespace = cluster.namespace().unwrap_or_default(),
        %error,
        "reconcile failed; retrying"
    );
    Action::requeue(ctx.settings.retry)
}

async fn reconcile_cluster(cluster: &SignalDBCluster, ctx: &Context) -> Result<Action> {
    let namespace = cluster
        .namespace()
        .ok_or(Error::MissingMetadata("metadata.namespace"))?;
    let name = cluster.name_any();
    if cluster.meta().deletion_timestamp.is_some() {
        // Children are owned: the garbage collector removes them.
        debug!(%name, %namespace, "being deleted; nothing to do");
        return Ok(Action::await_change());
    }
    let api: Api<SignalDBCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut old_status = cluster.status.clone().unwrap_or_default();
    let now = Time((ctx.clock)());
    let generation = cluster.meta().generation;

    if cluster.spec.paused {
        let new = status::compute(&StatusInputs {
            generation,
            old: &old_status,
            now: &now,
            outcome: Outcome::Paused,
        });
        write_status(&api, &name, &old_status, &new).await?;
        announce_conditions(ctx, cluster, &old_status, &new).await;
        return Ok(Action::await_change());
    }

    let validated = match validate(cluster) {
        Ok(v) => v,
        Err(e) => {
            warn!(%name, %namespace, error = %e, "invalid spec; nothing is applied");
            let new = status::compute(&StatusInputs {
                generation,
                old: &old_status,
                now: &now,
                outcome: Outcome::Invalid(&e),
            });
            write_status(&api, &name, &old_status, &new).await?;
            announce_conditions(ctx, cluster, &old_status, &new).await;
            return Ok(Action::await_change());
        }
    };
    let names = Names::new(&name);

    if cluster.spec.catalog.managed.is_some() {
        ensure_catalog_secret(ctx, cluster, &namespace, &names).await?;
    } else {
        remove_catalog_secret(ctx, cluster, &namespace, &names).await?;
    }
    let token = ensure_cluster_token(ctx, cluster, &namespace, &names).await?;

    // The scale-down protocol, for writers and acceptors alike.
    let round = DrainRound {
        ctx,
        cluster,
        namespace: &namespace,
        names: &names,
        validated: &validated,
        token: &token,
    };
    let decision = round.decide(Role::Writer, &old_status).await?;
    if decision.state.as_ref() != old_status.writer.scale_down.as_ref() {
        // Persist before acting: a restarted operator must know which
        // writers were told to drain.
        persist_scale_down(&api, &name, Role::Writer, decision.state.as_ref()).await?;
        old_status.writer.scale_down = decision.state.clone();
    }
    round.act(Role::Writer, &decision).await?;
    let acceptors = round.decide(Role::Acceptor, &old_status).await?;
    if acceptors.state.as_ref() != old_status.acceptor.scale_down.as_ref() {
        persist_scale_down(&api, &name, Role::Acceptor, acceptors.state.as_ref()).await?;
        old_status.acceptor.scale_down = acceptors.state.clone();
    }
    round.act(Role::Acceptor, &acceptors).await?;

    // Build and apply.
    let desired = build::build(&BuildInputs {
        cluster,
        validated: &validated,
        writer_replicas: decision.replicas,
        acceptor_replicas: acceptors.replicas,
        operator_namespace: ctx.operator_namespace.as_deref(),
    })?;
    let uid = cluster
        .meta()
        .uid
        .clone()
        .ok_or(Error::MissingMetadata("metadata.uid"))?;
    let applier = Applier::new(ctx.client.clone(), &namespace, names.clone(), &uid);
    let applied = applier.apply(&desired).await?;
    for key in &applied.written {
        ctx.metrics.applied(key.kind.as_str());
    }
    for key in &applied.deleted {
        ctx.metrics.deleted(key.kind.as_str());
    }
    if applied.wrote() {
        let mut changed: Vec<String> = applied
            .written
            .iter()
            .map(|k| format!("{}/{}", k.kind.as_str(), k.name))
            .collect();
        changed.extend(
            applied
                .deleted
                .iter()
                .map(|k| format!("deleted {}/{}", k.kind.as_str(), k.name)),
        );
        changed.extend(
            applied
                .expanded_claims
                .iter()
                .map(|c| format!("expanded PersistentVolumeClaim/{c}")),
        );
        info!(%name, %namespace, changes = %changed.join(", "), "applied");
        publish(ctx, cluster, EventType::Normal, "Applied", "Apply", &changed.join(", ")).await;
    }

    // Status from what was applied.
    let sts = |role: Role| applied.get::<StatefulSet>(Kind::StatefulSet, &names.role(role));
    let deployment = |role: Role| applied.get::<Deployment>(Kind::Deployment, &names.role(role));
    let mut writer = RoleObservation::of_stateful_set(sts(Role::Writer).as_ref());
    writer.replicas = decision.replicas;
    let mut acceptor = RoleObservation::of_stateful_set(sts(Role::Acceptor).as_ref());
    acceptor.replicas = acceptors.replicas;
    let writer_selector = names.selector(Role::Writer.as_str());
    let new = status::compute(&StatusInputs {
        generation,
        old: &old_status,
        now: &now,
        outcome: Outcome::Reconciled(Reconciled {
            acceptor,
            writer,
            querier: RoleObservation::of_stateful_set(sts(Role::Querier).as_ref()),
            router: RoleObservation::of_deployment(deployment(Role::Router).as_ref()),
            compactor: RoleObservation::of_deployment(deployment(Role::Compactor).as_ref()),
            writer_selector: &writer_selector,
            scale_down: decision.state.as_ref(),
            acceptor_scale_down: acceptors.state.as_ref(),
            config_hash: &validated.config.hash,
            problems: &applied.problems,
            pending: !applied.pending.is_empty(),
        }),
    });
    write_status(&api, &name, &old_status, &new).await?;
    announce_conditions(ctx, cluster, &old_status, &new).await;

    if decision.in_progress() || !applied.pending.is_empty() {
        Ok(Action::requeue(ctx.settings.drain_poll))
    } else {
        Ok(Action::requeue(ctx.settings.resync))
    }
}

/// One reconcile's view for the scale-down protocol of a role.
struct DrainRound<'a> {
    ctx: &'a Context,
    cluster: &'a SignalDBCluster,
    namespace: &'a str,
    names: &'a Names,
    validated: &'a crate::validate::Validated,
    token: &'a ClusterToken,
}

impl DrainRound<'_> {
    /// Probes the pods of `role`'s scale-down in progress and decides.
    async fn decide(&self, role: Role, old_status: &SignalDBClusterStatus) -> Result<DrainDecision> {
        let sts_api: Api<StatefulSet> = Api::namespaced(self.ctx.client.clone(), self.namespace);
        let sts = self.names.role(role);
        let current = sts_api
            .get_opt(&sts)
            .await
            .map_err(|source| {
                Error::kube(
                    "read",
                    &build::ChildKey {
                        kind: Kind::StatefulSet,
                        name: sts.clone(),
                    },
                    source,
                )
            })?
            // A StatefulSet being recreated (for a larger volume) still
            // counts: its pods keep running.
            .and_then(|s| s.spec.and_then(|s| s.replicas));
        let (desired, state) = match role {
            Role::Acceptor => (
                self.cluster.spec.acceptor.replicas,
                old_status.acceptor.scale_down.as_ref(),
            ),
            _ => (self.cluster.spec.writer.replicas, old_status.writer.scale_down.as_ref()),
        };
        let mut probes = BTreeMap::new();
        if let Some(state) = state {
            let targets = self.targets(role, &state.draining).await?;
            // Concurrently: an unreachable pod costs one timeout, not one each.
            let results = futures::future::join_all(
                targets
                    .iter()
                    .map(|target| async move { (target, ensure_draining(self.ctx.drain.as_ref(), target).await) }),
            )
            .await;
            for (target, probe) in results {
                debug!(pod = %target.pod, ?probe, "drain probe");
                probes.insert(target.ordinal, probe);
            }
        }
        Ok(drain::decide(&DrainInputs {
            desired,
            current,
            state,
            probes: &probes,
            now: (self.ctx.clock)(),
            timeout: self.validated.drain_timeout,
            noun: role.as_str(),
        }))
    }

    /// The pods of `role` with some ordinals, with their IPs.
    async fn targets(&self, role: Role, ordinals: &[i32]) -> Result<Vec<WriterTarget>> {
        let pods: Api<Pod> = Api::namespaced(self.ctx.client.clone(), self.namespace);
        let list = pods
            .list(&ListParams::default().labels(&self.names.selector(role.as_str())))
            .await
            .map_err(|source| Error::WriterPods {
                name: self.names.cluster().to_owned(),
                source: Box::new(source),
            })?;
        let ips: BTreeMap<String, Option<String>> = list
            .items
            .into_iter()
            .map(|p| {
                let ip = p.status.and_then(|s| s.pod_ip);
                (p.metadata.name.unwrap_or_default(), ip)
            })
            .collect();
        Ok(ordinals
            .iter()
            .map(|o| {
                let pod = self.names.pod(role, *o);
                WriterTarget {
                    role,
                    ordinal: *o,
                    ip: ips.get(&pod).cloned().flatten(),
                    pod,
                    token: Some(self.token.clone()),
                }
            })
            .collect())
    }

    /// Sends drain requests and restarts drained pods that stay, then
    /// announces the transition.
    async fn act(&self, role: Role, decision: &DrainDecision) -> Result<()> {
        let ctx = self.ctx;
        let starts: Vec<i32> = decision
            .actions
            .iter()
            .filter_map(|a| match a {
                DrainAction::StartDrain(o) => Some(*o),
                DrainAction::Restart(_) => None,
            })
            .collect();
        if !starts.is_empty() {
            for target in self.targets(role, &starts).await? {
                // A failure here is seen by the next round's probe.
                if let Err(e) = ctx.drain.start(&target).await {
                    warn!(pod = %target.pod, error = %e, "could not start draining; will retry");
                }
            }
        }
        let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), self.namespace);
        for action in &decision.actions {
            if let DrainAction::Restart(ordinal) = action {
                let pod = self.names.pod(role, *ordinal);
                match pods.delete(&pod, &DeleteParams::default()).await {
                    Ok(_) => info!(%pod, "restarted a drained {role} that stays"),
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(source) => {
                        return Err(Error::RestartPod {
                            pod,
                            source: Box::new(source),
                        });
                    }
                }
            }
        }
        let Some(event) = &decision.event else {
            return Ok(());
        };
        let (type_, reason, note, metric) = match event {
            DrainEvent::Started { from, to } => (
                EventType::Normal,
                "ScaleDownStarted",
                format!(
                    "draining {role}(s) {} before scaling {role}s from {from} to {to}",
                    drain::leaving(*to, *from)
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "started",
            ),
            DrainEvent::Completed { from, to } => (
                EventType::Normal,
                "ScaleDownCompleted",
                format!("{role}s drained; scaled from {from} to {to}"),
                "completed",
            ),
            DrainEvent::Cancelled { replicas } => (
                EventType::Normal,
                "ScaleDownCancelled",
                format!("{role} replicas went back up to {replicas}; drained {role}s restarted"),
                "cancelled",
            ),
            DrainEvent::Failed { reason, message } => (
                EventType::Warning,
                reason.as_str(),
                format!("{role} scale-down stopped, replicas left as they are: {message}"),
                "failed",
            ),
        };
        ctx.metrics.scale_down(metric);
        info!(cluster = %self.names.cluster(), reason, %note, "{role} scale-down");
        let action = match role {
            Role::Acceptor => "ScaleAcceptors",
            _ => "ScaleWriters",
        };
        publish(ctx, self.cluster, type_, reason, action, &note).await;
        Ok(())
    }
}

/// Creates the managed catalog's password Secret once.
async fn ensure_catalog_secret(ctx: &Context, cluster: &SignalDBCluster, namespace: &str, names: &Names) -> Result<()> {
    let secret = GeneratedSecret {
        name: names.catalog(),
        key: CATALOG_PASSWORD_KEY,
        component: Some(COMPONENT_CATALOG),
        what: "the managed catalog's password",
    };
    ensure_generated_secret(ctx, cluster, namespace, names, secret)
        .await
        .map(drop)
}

/// Creates the cluster token Secret once; returns the token.
async fn ensure_cluster_token(
    ctx: &Context,
    cluster: &SignalDBCluster,
    namespace: &str,
    names: &Names,
) -> Result<ClusterToken> {
    let secret = GeneratedSecret {
        name: names.cluster_token(),
        key: CLUSTER_TOKEN_KEY,
        component: None,
        what: "the cluster token",
    };
    ensure_generated_secret(ctx, cluster, namespace, names, secret)
        .await
        .map(ClusterToken::new)
}

/// A Secret holding one random value the operator makes.
struct GeneratedSecret {
    name: String,
    key: &'static str,
    component: Option<&'static str>,
    what: &'static str,
}

/// Creates `secret` with a random 32-character value unless it exists;
/// returns the value it holds. Never overwrites: pods may hold the value.
async fn ensure_generated_secret(
    ctx: &Context,
    cluster: &SignalDBCluster,
    namespace: &str,
    names: &Names,
    secret: GeneratedSecret,
) -> Result<String> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let secret_error = |source: kube::Error| Error::Secret {
        name: secret.name.clone(),
        source: Box::new(source),
    };
    let held = |s: &Secret| -> Option<String> {
        let from_data = s
            .data
            .as_ref()
            .and_then(|d| d.get(secret.key))
            .and_then(|v| String::from_utf8(v.0.clone()).ok());
        from_data.or_else(|| s.string_data.as_ref().and_then(|d| d.get(secret.key)).cloned())
    };
    if let Some(existing) = api.get_opt(&secret.name).await.map_err(secret_error)? {
        return held(&existing).ok_or_else(|| Error::SecretKeyMissing {
            name: secret.name.clone(),
            key: secret.key,
        });
    }
    let value: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    let mut owner = cluster
        .controller_owner_ref(&())
        .ok_or(Error::MissingMetadata("metadata.uid"))?;
    owner.block_owner_deletion = Some(true);
    let object = Secret {
        metadata: ObjectMeta {
            name: Some(secret.name.clone()),
            namespace: Some(namespace.to_owned()),
            labels: Some(names.labels(secret.component)),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([(secret.key.to_owned(), value.clone())])),
        type_: Some("Opaque".to_owned()),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => {
            info!(secret = %secret.name, "created {}", secret.what);
            Ok(value)
        }
        // Created meanwhile (by another round): use that one.
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let existing = api.get(&secret.name).await.map_err(secret_error)?;
            held(&existing).ok_or_else(|| Error::SecretKeyMissing {
                name: secret.name.clone(),
                key: secret.key,
            })
        }
        Err(source) => Err(secret_error(source)),
    }
}

/// Deletes the managed catalog's password once the cluster uses an external
/// catalog: the database it protected is deleted with its StatefulSet.
async fn remove_catalog_secret(ctx: &Context, cluster: &SignalDBCluster, namespace: &str, names: &Names) -> Result<()> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let secret_name = names.catalog();
    let existing = api.get_opt(&secret_name).await.map_err(|source| Error::Secret {
        name: secret_name.clone(),
        source: Box::new(source),
    })?;
    let uid = cluster.meta().uid.as_deref();
    let ours = existing.is_some_and(|s| {
        s.metadata
            .owner_references
            .is_some_and(|refs| refs.iter().any(|r| Some(r.uid.as_str()) == uid))
    });
    if !ours {
        return Ok(());
    }
    match api.delete(&secret_name, &DeleteParams::default()).await {
        Ok(_) => {
            info!(secret = %secret_name, "deleted the managed catalog's password");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(source) => Err(Error::Secret {
            name: secret_name,
            source: Box::new(source),
        }),
    }
}

/// `status.writer.scaleDown` alone, written before acting on it.
async fn persist_scale_down(
    api: &Api<SignalDBCluster>,
    name: &str,
    role: Role,
    state: Option<&ScaleDownStatus>,
) -> Result<()> {
    let value = match state {
        Some(s) => serde_json::to_value(s).map_err(|source| Error::Serialize {
            what: format!("status.{role}.scaleDown"),
            source,
        })?,
        None => Value::Null,
    };
    let patch = serde_json::json!({"status": {role.as_str(): {"scaleDown": value}}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| Error::Status {
            name: name.to_owned(),
            source: Box::new(source),
        })?;
    Ok(())
}

/// The status as a merge patch that also clears what is unset.
fn status_patch(status: &SignalDBClusterStatus) -> Result<Value> {
    let mut value = serde_json::to_value(status).map_err(|source| Error::Serialize {
        what: "status".to_owned(),
        source,
    })?;
    if let Some(map) = value.as_object_mut() {
        for key in ["observedGeneration", "configHash"] {
            map.entry(key).or_insert(Value::Null);
        }
        map.entry("conditions").or_insert_with(|| Value::Array(Vec::new()));
        for role in ["writer", "acceptor"] {
            if let Some(status) = map.get_mut(role).and_then(Value::as_object_mut) {
                status.entry("scaleDown").or_insert(Value::Null);
            }
        }
    }
    Ok(serde_json::json!({ "status": value }))
}

/// Writes status if it changed.
async fn write_status(
    api: &Api<SignalDBCluster>,
    name: &str,
    old: &SignalDBClusterStatus,
    new: &SignalDBClusterStatus,
) -> Result<()> {
    if old == new {
        return Ok(());
    }
    let patch = status_patch(new)?;
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| Error::Status {
            name: name.to_owned(),
            source: Box::new(source),
        })?;
    Ok(())
}

/// Publishes an event; a failure is logged, never fatal.
async fn publish(ctx: &Context, cluster: &SignalDBCluster, type_: EventType, reason: &str, action: &str, note: &str) {
    let mut note = note.to_owned();
    if note.len() > 1000 {
        let mut cut = 1000;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
        note.push('…');
    }
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &cluster.object_ref(&())).await {
        warn!(cluster = %cluster.name_any(), error = %e, reason, "could not publish an event");
    }
}

/// Publishes events for condition transitions.
async fn announce_conditions(
    ctx: &Context,
    cluster: &SignalDBCluster,
    old: &SignalDBClusterStatus,
    new: &SignalDBClusterStatus,
) {
    let pair = |type_: &str| {
        (
            status::condition(old, type_).map(|c| (c.status.clone(), c.reason.clone())),
            status::condition(new, type_),
        )
    };
    if let (was, Some(now)) = pair(READY) {
        let was_ready = was.as_ref().is_some_and(|(s, _)| s == "True");
        if now.status == "True" && !was_ready {
            publish(ctx, cluster, EventType::Normal, "Ready", "Reconcile", &now.message).await;
        } else if now.status != "True" && was_ready {
            publish(ctx, cluster, EventType::Warning, "NotReady", "Reconcile", &now.message).await;
        }
    }
    if let (was, Some(now)) = pair(DEGRADED) {
        let was_degraded = was.as_ref().is_some_and(|(s, _)| s == "True");
        let same_reason = was.as_ref().is_some_and(|(_, r)| *r == now.reason);
        if now.status == "True" && !(was_degraded && same_reason) {
            publish(ctx, cluster, EventType::Warning, &now.reason, "Reconcile", &now.message).await;
        } else if now.status != "True" && was_degraded {
            publish(
                ctx,
                cluster,
                EventType::Normal,
                "Recovered",
                "Reconcile",
                "no longer degraded",
            )
            .await;
        }
    }
    if let (was, Some(now)) = pair(PROGRESSING) {
        let was_paused = was.as_ref().is_some_and(|(_, r)| r == "Paused");
        let paused = now.reason == "Paused";
        if paused && !was_paused {
            publish(ctx, cluster, EventType::Normal, "Paused", "Reconcile", &now.message).await;
        } else if was_paused && !paused {
            publish(
                ctx,
                cluster,
                EventType::Normal,
                "Resumed",
                "Reconcile",
                "spec.paused is false again",
            )
            .await;
        }
    }
}
