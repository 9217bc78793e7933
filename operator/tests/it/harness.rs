//! An in-memory Kubernetes API (kube-fake-client) with the operator's
//! context, a recording of every write, a settable clock and scripted
//! writers.

use std::sync::{Arc, Mutex};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Client, Resource, ResourceExt};
use kube_fake_client::{ClientBuilder, interceptor};
use serde::de::DeserializeOwned;
use serde_json::Value;
use signaldb_operator::crd::SignalDBCluster;
use signaldb_operator::drain_client::FakeDrainClient;
use signaldb_operator::metrics::Metrics;
use signaldb_operator::reconcile::{Context, reconcile};

pub(crate) const NS: &str = "default";
pub(crate) const UID: &str = "6f1c2a9e-0000-4000-8000-00000000abcd";

/// A SignalDBCluster as a user would write it, with the metadata the API
/// server adds.
pub(crate) fn cluster(name: &str, spec: Value) -> SignalDBCluster {
    let mut c = SignalDBCluster::new(name, serde_json::from_value(spec).unwrap());
    c.metadata.namespace = Some(NS.into());
    c.metadata.uid = Some(UID.into());
    c.metadata.generation = Some(1);
    c
}

/// The smallest useful spec.
pub(crate) fn minimal() -> Value {
    serde_json::json!({
        "catalog": {"managed": {}},
        "storage": {"filesystem": {"claimName": "demo-objects"}},
    })
}

pub(crate) struct Harness {
    pub(crate) client: Client,
    pub(crate) name: String,
    writes: Arc<Mutex<Vec<String>>>,
    pub(crate) drain: FakeDrainClient,
    now: Arc<Mutex<Timestamp>>,
    pub(crate) ctx: Arc<Context>,
}

fn describe(object: &Value, fallback: &str) -> String {
    let name = object["metadata"]["name"].as_str().unwrap_or(fallback);
    match object["kind"].as_str() {
        Some(kind) => format!("{kind}/{name}"),
        None => name.to_owned(),
    }
}

impl Harness {
    pub(crate) async fn new(cluster: SignalDBCluster) -> Self {
        let writes = Arc::new(Mutex::new(Vec::new()));
        let record = |writes: &Arc<Mutex<Vec<String>>>| {
            let w = Arc::clone(writes);
            move |entry: String| w.lock().unwrap().push(entry)
        };
        let (c, p, d, s, u, r) = (
            record(&writes),
            record(&writes),
            record(&writes),
            record(&writes),
            record(&writes),
            record(&writes),
        );
        let funcs = interceptor::Funcs::new()
            .create(move |ctx| {
                c(format!("create {}", describe(ctx.object, "?")));
                Ok(None)
            })
            .patch(move |ctx| {
                p(format!("patch {}", describe(ctx.patch, ctx.name)));
                Ok(None)
            })
            .delete(move |ctx| {
                d(format!("delete {}", ctx.name));
                Ok(None)
            })
            .patch_status(move |ctx| {
                s(format!("status {}", ctx.name));
                Ok(None)
            })
            .update(move |ctx| {
                u(format!("update {}", describe(ctx.object, "?")));
                Ok(None)
            })
            .replace(move |ctx| {
                r(format!("replace {}", describe(ctx.object, ctx.name)));
                Ok(None)
            });
        let name = cluster.name_any();
        let client = ClientBuilder::new()
            .with_resource::<SignalDBCluster>()
            .with_status_subresource::<SignalDBCluster>()
            .with_status_subresource::<StatefulSet>()
            .with_status_subresource::<Deployment>()
            .with_object(cluster)
            .with_interceptor_funcs(funcs)
            .build()
            .await
            .unwrap();
        let drain = FakeDrainClient::new();
        let now = Arc::new(Mutex::new(Timestamp::from_second(1_800_000_000).unwrap()));
        let clock_now = Arc::clone(&now);
        let ctx = Context::new(
            client.clone(),
            Arc::new(drain.clone()),
            Metrics::shared(),
            Some("test".into()),
        )
        .with_clock(Arc::new(move || *clock_now.lock().unwrap()))
        .with_operator_namespace(Some("signaldb-system".into()));
        Self {
            client,
            name,
            writes,
            drain,
            now,
            ctx: Arc::new(ctx),
        }
    }

    pub(crate) fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        Api::namespaced(self.client.clone(), NS)
    }

    pub(crate) async fn cluster(&self) -> SignalDBCluster {
        self.api::<SignalDBCluster>().get(&self.name).await.unwrap()
    }

    /// One reconcile of the stored cluster.
    pub(crate) async fn reconcile(&self) -> Action {
        let cluster = self.cluster().await;
        reconcile(Arc::new(cluster), Arc::clone(&self.ctx)).await.unwrap()
    }

    /// Writes since the last call, events left out.
    pub(crate) fn take_writes(&self) -> Vec<String> {
        let mut w = self.writes.lock().unwrap();
        let out = w
            .iter()
            .filter(|e| !e.starts_with("create Event/") && !e.starts_with("patch Event/"))
            .cloned()
            .collect();
        w.clear();
        out
    }

    /// Changes the spec as `kubectl edit` would.
    pub(crate) async fn edit(&self, spec_patch: Value) {
        self.api::<SignalDBCluster>()
            .patch(
                &self.name,
                &PatchParams::default(),
                &Patch::Merge(&serde_json::json!({ "spec": spec_patch })),
            )
            .await
            .unwrap();
    }

    pub(crate) fn advance(&self, seconds: i64) {
        let mut now = self.now.lock().unwrap();
        *now = now.checked_add(SignedDuration::from_secs(seconds)).unwrap();
    }

    /// Marks every StatefulSet and the router Deployment as fully rolled out
    /// and ready, as their controllers would.
    pub(crate) async fn make_ready(&self) {
        let sts: Api<StatefulSet> = self.api();
        for s in sts.list(&ListParams::default()).await.unwrap().items {
            let replicas = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let status = serde_json::json!({"status": {
                "replicas": replicas, "readyReplicas": replicas, "updatedReplicas": replicas,
                "currentReplicas": replicas, "observedGeneration": s.metadata.generation,
                "availableReplicas": replicas,
            }});
            sts.patch_status(&s.name_any(), &PatchParams::default(), &Patch::Merge(&status))
                .await
                .unwrap();
        }
        let deployments: Api<Deployment> = self.api();
        for d in deployments.list(&ListParams::default()).await.unwrap().items {
            let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let status = serde_json::json!({"status": {
                "replicas": replicas, "readyReplicas": replicas, "updatedReplicas": replicas,
                "observedGeneration": d.metadata.generation, "availableReplicas": replicas,
            }});
            deployments
                .patch_status(&d.name_any(), &PatchParams::default(), &Patch::Merge(&status))
                .await
                .unwrap();
        }
        self.take_writes();
    }

    /// Reasons of the events published about the cluster, in order.
    pub(crate) async fn event_reasons(&self) -> Vec<String> {
        let events: Api<k8s_openapi::api::events::v1::Event> = self.api();
        let mut list = events.list(&ListParams::default()).await.unwrap().items;
        list.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
        list.into_iter().filter_map(|e| e.reason).collect()
    }
}
