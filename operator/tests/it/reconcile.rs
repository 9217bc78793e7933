//! The reconciler against an in-memory Kubernetes API.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::json;
use signaldb_operator::names::ANNOTATION_CONFIG_HASH;
use signaldb_operator::status::{DEGRADED, PROGRESSING, READY, condition};

use crate::harness::{Harness, UID, cluster, minimal};

fn owned(meta: &ObjectMeta) -> bool {
    meta.owner_references.as_ref().is_some_and(|refs| {
        refs.len() == 1 && refs[0].uid == UID && refs[0].kind == "SignalDBCluster" && refs[0].controller == Some(true)
    })
}

async fn names_of<K>(h: &Harness) -> BTreeSet<String>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    h.api::<K>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|o| {
            assert!(owned(o.meta()), "{} is not owned: {:?}", o.name_any(), o.meta());
            o.name_any()
        })
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

fn cond(h: &signaldb_operator::crd::SignalDBClusterStatus, t: &str) -> (String, String) {
    let c = condition(h, t).unwrap();
    (c.status.clone(), c.reason.clone())
}

#[tokio::test]
async fn first_reconcile_creates_every_child_with_owner_references() {
    let h = Harness::new(cluster("demo", minimal())).await;
    h.reconcile().await;

    assert_eq!(names_of::<ServiceAccount>(&h).await, set(&["demo"]));
    assert_eq!(names_of::<Role>(&h).await, set(&["demo"]));
    assert_eq!(names_of::<RoleBinding>(&h).await, set(&["demo"]));
    assert_eq!(names_of::<ConfigMap>(&h).await, set(&["demo-config"]));
    assert_eq!(
        names_of::<Service>(&h).await,
        set(&[
            "demo-acceptor",
            "demo-acceptor-headless",
            "demo-catalog",
            "demo-querier",
            "demo-querier-headless",
            "demo-router",
            "demo-router-headless",
            "demo-writer",
            "demo-writer-headless",
        ])
    );
    assert_eq!(
        names_of::<StatefulSet>(&h).await,
        set(&["demo-acceptor", "demo-catalog", "demo-querier", "demo-writer"])
    );
    assert_eq!(
        names_of::<Deployment>(&h).await,
        set(&["demo-compactor", "demo-router"])
    );
    assert_eq!(
        names_of::<PodDisruptionBudget>(&h).await,
        set(&["demo-acceptor", "demo-querier", "demo-router", "demo-writer"])
    );
    assert!(names_of::<HorizontalPodAutoscaler>(&h).await.is_empty());
    assert_eq!(
        names_of::<NetworkPolicy>(&h).await,
        set(&[
            "demo-acceptor",
            "demo-catalog",
            "demo-compactor",
            "demo-querier",
            "demo-router",
            "demo-writer"
        ])
    );
    // The managed catalog's password and the cluster token, made once.
    assert_eq!(
        names_of::<Secret>(&h).await,
        set(&["demo-catalog", "demo-cluster-token"])
    );
    let value = cluster_token(&h).await;
    assert_eq!(value.len(), 32, "a random token");
    h.reconcile().await;
    assert_eq!(cluster_token(&h).await, value, "never regenerated");

    // The ConfigMap is the data plane's config; pods carry its hash.
    let cm = h.api::<ConfigMap>().get("demo-config").await.unwrap();
    let yaml = &cm.data.unwrap()["signaldb.yaml"];
    let parsed = signaldb_config::Config::from_yaml(yaml).unwrap();
    assert_eq!(parsed.storage.url.as_deref(), Some("file:///var/lib/signaldb/objects"));
    let writer = h.api::<StatefulSet>().get("demo-writer").await.unwrap();
    let annotations = writer.spec.unwrap().template.metadata.unwrap().annotations.unwrap();

    let c = h.cluster().await;
    let status = c.status.unwrap();
    assert_eq!(status.observed_generation, c.metadata.generation);
    assert_eq!(annotations.get(ANNOTATION_CONFIG_HASH), status.config_hash.as_ref());
    assert_eq!(status.writer.replicas, 1);
    assert_eq!(
        status.writer.selector,
        "app.kubernetes.io/component=writer,app.kubernetes.io/instance=demo,app.kubernetes.io/name=signaldb"
    );
    assert_eq!(cond(&status, READY), ("False".into(), "ReplicasNotReady".into()));
    assert_eq!(cond(&status, PROGRESSING), ("True".into(), "RollingOut".into()));
    assert_eq!(cond(&status, DEGRADED), ("False".into(), "AsExpected".into()));
    assert_eq!(h.event_reasons().await, ["Applied"]);
}

#[tokio::test]
async fn a_second_reconcile_writes_nothing() {
    let h = Harness::new(cluster("demo", minimal())).await;
    h.reconcile().await;
    let first = h.take_writes();
    assert!(first.len() > 20, "{first:?}");
    h.reconcile().await;
    assert_eq!(h.take_writes(), Vec::<String>::new());

    // Nor once the pods are ready and status says so.
    h.make_ready().await;
    h.reconcile().await;
    assert_eq!(h.take_writes(), ["status demo"]);
    let status = h.cluster().await.status.unwrap();
    assert_eq!(cond(&status, READY), ("True".into(), "AllReplicasReady".into()));
    assert_eq!(cond(&status, PROGRESSING), ("False".into(), "UpToDate".into()));
    h.reconcile().await;
    h.reconcile().await;
    assert_eq!(h.take_writes(), Vec::<String>::new());
    assert_eq!(h.event_reasons().await, ["Applied", "Ready"]);
}

#[tokio::test]
async fn a_spec_change_touches_only_what_changed() {
    let h = Harness::new(cluster("demo", minimal())).await;
    h.reconcile().await;
    h.make_ready().await;
    h.reconcile().await;
    h.take_writes();

    // More routers: the Deployment and status (observedGeneration) only.
    h.edit(json!({"router": {"replicas": 3}})).await;
    h.take_writes();
    h.reconcile().await;
    assert_eq!(h.take_writes(), ["patch Deployment/demo-router", "status demo"]);

    // A configuration change: the ConfigMap, and every pod template through
    // the config hash.
    let before = h.cluster().await.status.unwrap().config_hash;
    h.edit(json!({"limits": {"maxRequestSize": "4MiB"}})).await;
    h.take_writes();
    h.reconcile().await;
    assert_eq!(
        h.take_writes(),
        [
            "patch ConfigMap/demo-config",
            "patch StatefulSet/demo-acceptor",
            "patch StatefulSet/demo-querier",
            "patch StatefulSet/demo-writer",
            "patch Deployment/demo-compactor",
            "patch Deployment/demo-router",
            "status demo",
        ]
    );
    let after = h.cluster().await.status.unwrap();
    assert_ne!(after.config_hash, before);
    let writer = h.api::<StatefulSet>().get("demo-writer").await.unwrap();
    let hash = writer.spec.unwrap().template.metadata.unwrap().annotations.unwrap()[ANNOTATION_CONFIG_HASH].clone();
    assert_eq!(Some(hash), after.config_hash);
    assert_eq!(after.observed_generation, h.cluster().await.metadata.generation);
}

/// Names of the volumes of a StatefulSet's pod template.
async fn volumes_of(h: &Harness, name: &str) -> Vec<String> {
    let sts = h.api::<StatefulSet>().get(name).await.unwrap();
    let pod = sts.spec.unwrap().template.spec.unwrap();
    pod.volumes.unwrap_or_default().into_iter().map(|v| v.name).collect()
}

/// `appProtocol` of a Service's ports.
async fn app_protocols(h: &Harness, name: &str) -> Vec<Option<String>> {
    let svc = h.api::<Service>().get(name).await.unwrap();
    svc.spec
        .unwrap()
        .ports
        .unwrap()
        .into_iter()
        .map(|p| p.app_protocol)
        .collect()
}

#[tokio::test]
async fn tls_goes_on_and_off_with_the_spec() {
    let h = Harness::new(cluster("demo", minimal())).await;
    h.reconcile().await;
    h.make_ready().await;
    h.reconcile().await;
    h.take_writes();

    h.edit(json!({"tls": {"secretName": "demo-tls"}, "tenancy": {"apiKeys": true}}))
        .await;
    h.take_writes();
    h.reconcile().await;
    assert_eq!(
        h.take_writes(),
        [
            "patch ConfigMap/demo-config",
            "patch Service/demo-acceptor",
            "patch Service/demo-acceptor-headless",
            "patch Service/demo-router",
            "patch Service/demo-router-headless",
            "patch StatefulSet/demo-acceptor",
            "patch StatefulSet/demo-querier",
            "patch StatefulSet/demo-writer",
            "patch Deployment/demo-compactor",
            "patch Deployment/demo-router",
            "status demo",
        ]
    );
    assert!(volumes_of(&h, "demo-acceptor").await.contains(&"tls".to_owned()));
    assert!(!volumes_of(&h, "demo-writer").await.contains(&"tls".to_owned()));
    let https = Some("https".to_owned());
    assert_eq!(app_protocols(&h, "demo-router").await, [https.clone(), https.clone()]);
    assert_eq!(
        app_protocols(&h, "demo-acceptor-headless").await,
        [https.clone(), https, None]
    );
    let config = h.api::<ConfigMap>().get("demo-config").await.unwrap();
    let yaml = &config.data.unwrap()["signaldb.yaml"];
    assert!(yaml.contains("cert_file: /var/run/signaldb/tls/tls.crt"), "{yaml}");
    assert!(yaml.contains("api_keys: true"), "{yaml}");

    // Off again: the volume, its mount, appProtocol and the keys go.
    h.edit(json!({"tls": null, "tenancy": {"apiKeys": false}})).await;
    h.reconcile().await;
    assert!(!volumes_of(&h, "demo-acceptor").await.contains(&"tls".to_owned()));
    let sts = h.api::<StatefulSet>().get("demo-acceptor").await.unwrap();
    let mounts = sts.spec.unwrap().template.spec.unwrap().containers[0]
        .volume_mounts
        .clone()
        .unwrap();
    assert!(mounts.iter().all(|m| m.name != "tls"), "{mounts:?}");
    assert_eq!(app_protocols(&h, "demo-router").await, [None, None]);
    let config = h.api::<ConfigMap>().get("demo-config").await.unwrap();
    let yaml = &config.data.unwrap()["signaldb.yaml"];
    assert!(!yaml.contains("tls") && !yaml.contains("api_keys"), "{yaml}");
}

#[tokio::test]
async fn an_edit_by_hand_is_undone() {
    // Queriers hold nothing to lose: their StatefulSet goes straight back.
    // (Writers and acceptors scaled up by hand are drained back down.)
    let h = Harness::new(cluster("demo", minimal())).await;
    h.reconcile().await;
    let sts = h.api::<StatefulSet>();
    sts.patch(
        "demo-querier",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&json!({"spec": {"replicas": 7}})),
    )
    .await
    .unwrap();
    h.take_writes();
    h.reconcile().await;
    assert_eq!(h.take_writes(), ["patch StatefulSet/demo-querier"]);
    let replicas = sts.get("demo-querier").await.unwrap().spec.unwrap().replicas;
    assert_eq!(replicas, Some(1));
}

#[tokio::test]
async fn children_no_longer_wanted_are_deleted() {
    let mut spec = minimal();
    spec["writer"] = json!({"autoscaling": {"maxReplicas": 4, "targetCPUUtilizationPercentage": 70}});
    let h = Harness::new(cluster("demo", spec)).await;
    h.reconcile().await;
    let hpa = h.api::<HorizontalPodAutoscaler>().get("demo-writer").await.unwrap();
    let target = hpa.spec.scale_target_ref;
    assert_eq!(
        (target.kind.as_str(), target.name.as_str()),
        ("SignalDBCluster", "demo")
    );
    h.take_writes();

    // Autoscaling off, external catalog: the HPA and the managed PostgreSQL go.
    h.api::<Secret>()
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "pg"}, "stringData": {"url": "postgres://u:p@db/signaldb"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    h.edit(json!({
        "writer": {"autoscaling": null},
        "catalog": {"managed": null, "postgres": {"urlSecretRef": {"name": "pg"}}},
    }))
    .await;
    h.take_writes();
    h.reconcile().await;
    let writes = h.take_writes();
    for expected in [
        "delete demo-writer",
        "delete demo-catalog",
        "patch StatefulSet/demo-writer",
    ] {
        assert!(writes.iter().any(|w| w == expected), "{expected} not in {writes:?}");
    }
    assert!(names_of::<HorizontalPodAutoscaler>(&h).await.is_empty());
    assert_eq!(
        names_of::<StatefulSet>(&h).await,
        set(&["demo-acceptor", "demo-querier", "demo-writer"])
    );
    assert!(!names_of::<Service>(&h).await.contains("demo-catalog"));
    // The managed catalog's password went with its database.
    let mut secrets: Vec<String> = h
        .api::<Secret>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    secrets.sort();
    assert_eq!(secrets, ["demo-cluster-token", "pg"]);
    // The pods now take the catalog URL from the user's Secret.
    let writer = h.api::<StatefulSet>().get("demo-writer").await.unwrap();
    let env = writer.spec.unwrap().template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap();
    let url = env.iter().find(|e| e.name == "SIGNALDB_CATALOG__URL").unwrap();
    assert_eq!(
        url.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap().name,
        "pg"
    );
    h.reconcile().await;
    assert_eq!(h.take_writes(), Vec::<String>::new());
}

#[tokio::test]
async fn paused_clusters_are_left_alone() {
    let mut spec = minimal();
    spec["paused"] = json!(true);
    let h = Harness::new(cluster("demo", spec)).await;
    h.reconcile().await;
    assert_eq!(h.take_writes(), ["status demo"]);
    let status = h.cluster().await.status.unwrap();
    assert_eq!(cond(&status, PROGRESSING), ("False".into(), "Paused".into()));
    assert!(names_of::<StatefulSet>(&h).await.is_empty());
    h.reconcile().await;
    assert_eq!(h.take_writes(), Vec::<String>::new());

    // Resuming applies everything.
    h.edit(json!({"paused": false})).await;
    h.take_writes();
    h.reconcile().await;
    assert!(h.take_writes().len() > 20);
    assert_eq!(h.event_reasons().await, ["Paused", "Applied", "Resumed"]);
}

#[tokio::test]
async fn invalid_specs_are_reported_and_nothing_is_applied() {
    let mut spec = minimal();
    spec["writer"] = json!({"wal": {"size": "lots"}});
    spec["configOverrides"] = json!({"admin": {"addr": "0.0.0.0:1"}});
    let h = Harness::new(cluster("demo", spec)).await;
    h.reconcile().await;
    assert_eq!(h.take_writes(), ["status demo"]);
    let status = h.cluster().await.status.unwrap();
    assert_eq!(cond(&status, DEGRADED), ("True".into(), "InvalidSpec".into()));
    let message = &condition(&status, DEGRADED).unwrap().message;
    assert!(message.contains("writer.wal.size"), "{message}");
    assert!(message.contains("admin.addr is set by the operator"), "{message}");
    assert!(names_of::<StatefulSet>(&h).await.is_empty());
    assert_eq!(h.event_reasons().await, ["InvalidSpec"]);
    h.reconcile().await;
    assert_eq!(h.take_writes(), Vec::<String>::new());
}

#[tokio::test]
async fn growing_the_wal_expands_claims_and_recreates_the_stateful_set() {
    let h = Harness::new(cluster("demo", minimal())).await;
    h.reconcile().await;
    // The claim the StatefulSet controller would have made for writer 0.
    let claims = h.api::<PersistentVolumeClaim>();
    claims
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "wal-demo-writer-0", "labels": {
                    "app.kubernetes.io/component": "writer",
                    "app.kubernetes.io/instance": "demo",
                    "app.kubernetes.io/name": "signaldb",
                }},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    h.edit(json!({"writer": {"wal": {"size": "20Gi"}}})).await;
    h.take_writes();

    h.reconcile().await;
    let writes = h.take_writes();
    assert!(writes.contains(&"patch wal-demo-writer-0".to_owned()), "{writes:?}");
    assert!(writes.contains(&"delete demo-writer".to_owned()), "{writes:?}");
    let claim = claims.get("wal-demo-writer-0").await.unwrap();
    assert_eq!(
        claim.spec.unwrap().resources.unwrap().requests.unwrap()["storage"].0,
        "20Gi"
    );
    let status = h.cluster().await.status.unwrap();
    assert_eq!(cond(&status, PROGRESSING), ("True".into(), "Recreating".into()));

    // The next round creates the StatefulSet with the larger template.
    h.reconcile().await;
    assert!(h.take_writes().contains(&"patch StatefulSet/demo-writer".to_owned()));
    let sts = h.api::<StatefulSet>().get("demo-writer").await.unwrap();
    assert_eq!(
        signaldb_operator::build::claim_template_size(&sts).as_deref(),
        Some("20Gi")
    );

    // Shrinking is refused and reported; the StatefulSet stays.
    h.edit(json!({"writer": {"wal": {"size": "5Gi"}}})).await;
    h.take_writes();
    h.reconcile().await;
    let writes = h.take_writes();
    assert!(!writes.iter().any(|w| w.contains("demo-writer")), "{writes:?}");
    let status = h.cluster().await.status.unwrap();
    assert_eq!(cond(&status, DEGRADED), ("True".into(), "WalShrinkRefused".into()));
}

#[tokio::test]
async fn deletion_is_clean() {
    let h = Harness::new(cluster("demo", minimal())).await;
    h.reconcile().await;
    h.take_writes();

    // Every child (and the Secret) is owned by the cluster, so the garbage
    // collector removes them with it; nothing is left unowned.
    let all_owned = names_of::<ServiceAccount>(&h).await.len()
        + names_of::<Role>(&h).await.len()
        + names_of::<RoleBinding>(&h).await.len()
        + names_of::<ConfigMap>(&h).await.len()
        + names_of::<Service>(&h).await.len()
        + names_of::<StatefulSet>(&h).await.len()
        + names_of::<Deployment>(&h).await.len()
        + names_of::<PodDisruptionBudget>(&h).await.len()
        + names_of::<NetworkPolicy>(&h).await.len()
        + names_of::<Secret>(&h).await.len();
    assert_eq!(all_owned, 3 + 1 + 9 + 4 + 2 + 4 + 6 + 2);

    // A cluster being deleted is not reconciled again: no writes, no
    // recreated children.
    let mut dying = h.cluster().await;
    dying.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    signaldb_operator::reconcile::reconcile(std::sync::Arc::new(dying), std::sync::Arc::clone(&h.ctx))
        .await
        .unwrap();
    assert_eq!(h.take_writes(), Vec::<String>::new());

    h.api::<signaldb_operator::crd::SignalDBCluster>()
        .delete("demo", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        h.api::<signaldb_operator::crd::SignalDBCluster>()
            .get_opt("demo")
            .await
            .unwrap()
            .is_none()
    );
}

/// The (ports, peers) of each ingress rule of a NetworkPolicy.
async fn policy_rules(h: &Harness, name: &str) -> Vec<(Vec<i32>, Option<serde_json::Value>)> {
    let np = h.api::<NetworkPolicy>().get(name).await.unwrap();
    np.spec
        .unwrap()
        .ingress
        .unwrap()
        .into_iter()
        .map(|r| {
            let ports = r
                .ports
                .unwrap()
                .into_iter()
                .map(|p| match p.port.unwrap() {
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => n,
                    other => panic!("a named port: {other:?}"),
                })
                .collect();
            (ports, r.from.map(|f| serde_json::to_value(f).unwrap()))
        })
        .collect()
}

#[tokio::test]
async fn network_policies_follow_the_spec_and_go_when_disabled() {
    let h = Harness::new(cluster("demo", minimal())).await;
    h.reconcile().await;
    h.make_ready().await;
    h.reconcile().await;
    h.take_writes();

    // OTLP from anyone; the writers' Flight from the cluster's pods only,
    // their admin port also from the operator and the namespace (metrics).
    let same_cluster = json!({"podSelector": {"matchLabels": {
        "app.kubernetes.io/instance": "demo", "app.kubernetes.io/name": "signaldb",
    }}});
    let operator = json!({
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "signaldb-system"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "signaldb-operator"}},
    });
    let namespace = json!({"podSelector": {}});
    assert_eq!(policy_rules(&h, "demo-acceptor").await[0], (vec![4317, 4318], None));
    assert_eq!(
        policy_rules(&h, "demo-writer").await,
        [
            (vec![50051], Some(json!([same_cluster]))),
            (vec![9091], Some(json!([same_cluster, operator, namespace]))),
        ]
    );

    // Peers for the client ports: only the acceptor and router policies change.
    let lb = json!({"ipBlock": {"cidr": "203.0.113.0/24"}});
    h.edit(json!({"networkPolicy": {"ingressFrom": [lb]}})).await;
    h.take_writes();
    h.reconcile().await;
    assert_eq!(
        h.take_writes(),
        [
            "patch NetworkPolicy/demo-acceptor",
            "patch NetworkPolicy/demo-router",
            "status demo"
        ]
    );
    assert_eq!(
        policy_rules(&h, "demo-router").await[0],
        (vec![3200, 50053], Some(json!([lb])))
    );

    // Off: every policy is deleted, nothing else is touched.
    h.edit(json!({"networkPolicy": {"enabled": false}})).await;
    h.take_writes();
    h.reconcile().await;
    let writes = h.take_writes();
    assert_eq!(writes.len(), 7, "{writes:?}");
    assert!(
        writes
            .iter()
            .all(|w| w.starts_with("delete demo-") || w == "status demo"),
        "{writes:?}"
    );
    assert!(names_of::<NetworkPolicy>(&h).await.is_empty());
    assert_eq!(names_of::<StatefulSet>(&h).await.len(), 4);
    h.reconcile().await;
    assert_eq!(h.take_writes(), Vec::<String>::new());

    // On again: they come back.
    h.edit(json!({"networkPolicy": {"enabled": true}})).await;
    h.reconcile().await;
    assert_eq!(names_of::<NetworkPolicy>(&h).await.len(), 6);
}

/// The value in the cluster token Secret, as written or as stored.
async fn cluster_token(h: &Harness) -> String {
    let secret = h.api::<Secret>().get("demo-cluster-token").await.unwrap();
    match secret.string_data.unwrap_or_default().remove("token") {
        Some(v) => v,
        None => String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap(),
    }
}
