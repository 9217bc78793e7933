//! The third stage of the pipeline: make the cluster's children match the
//! desired objects, with server-side apply under one field manager, and
//! without a single write when they already match.
//!
//! A child is left alone when the object in the API server carries the hash
//! of the desired object (annotation `signaldb.io/applied-hash`) *and* still
//! holds every desired value (so an edit by hand is undone). Any other
//! difference is applied; because the operator owns its fields, a field it
//! stopped setting is removed by the API server.
//!
//! StatefulSet claim templates cannot be changed in place. When a role's
//! `wal.size` grows, the existing claims are expanded and the StatefulSet is
//! recreated around its running pods (deleted with `propagationPolicy:
//! Orphan`, then applied again). Shrinking, or changing the StorageClass, is
//! refused and reported.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role as RbacRole, RoleBinding};
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::Value;

use crate::build::{Child, ChildKey, Desired, Kind, claim_template_class, claim_template_size};
use crate::config::config_hash;
use crate::error::{Error, Result};
use crate::names::{LABEL_MANAGED_BY, MANAGER, Names};
use crate::quantity::{Quantity, same_quantity};

/// Annotation with the hash of the desired object last applied.
pub const ANNOTATION_APPLIED_HASH: &str = "signaldb.io/applied-hash";

/// A problem that kept one child from being applied; the rest are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `PascalCase` reason for the `Degraded` condition.
    pub reason: &'static str,
    pub message: String,
}

/// What applying did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Every desired child as the API server has it now.
    pub objects: BTreeMap<ChildKey, Value>,
    /// Children created or changed.
    pub written: Vec<ChildKey>,
    /// Children deleted because they are no longer wanted.
    pub deleted: Vec<ChildKey>,
    /// Claims expanded because `wal.size` grew.
    pub expanded_claims: Vec<String>,
    /// Children that could not be applied.
    pub problems: Vec<Problem>,
    /// Children waiting for an old object to go; apply again soon.
    pub pending: Vec<ChildKey>,
}

impl Applied {
    /// The observed object of a child, typed.
    pub fn get<K: serde::de::DeserializeOwned>(&self, kind: Kind, name: &str) -> Option<K> {
        let key = ChildKey {
            kind,
            name: name.to_owned(),
        };
        serde_json::from_value(self.objects.get(&key)?.clone()).ok()
    }

    /// Whether anything was written.
    pub fn wrote(&self) -> bool {
        !(self.written.is_empty() && self.deleted.is_empty() && self.expanded_claims.is_empty())
    }
}

/// The API resource of a kind.
pub fn api_resource(kind: Kind) -> ApiResource {
    match kind {
        Kind::ServiceAccount => ApiResource::erase::<ServiceAccount>(&()),
        Kind::Role => ApiResource::erase::<RbacRole>(&()),
        Kind::RoleBinding => ApiResource::erase::<RoleBinding>(&()),
        Kind::NetworkPolicy => ApiResource::erase::<NetworkPolicy>(&()),
        Kind::ConfigMap => ApiResource::erase::<ConfigMap>(&()),
        Kind::Service => ApiResource::erase::<Service>(&()),
        Kind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
        Kind::Deployment => ApiResource::erase::<Deployment>(&()),
        Kind::PodDisruptionBudget => ApiResource::erase::<PodDisruptionBudget>(&()),
        Kind::HorizontalPodAutoscaler => ApiResource::erase::<HorizontalPodAutoscaler>(&()),
    }
}

/// Whether every value of `desired` is in `actual`. Objects may have more
/// keys in `actual` (defaults the API server fills in); lists must have the
/// same length; quantities compare by value (`1024Mi` is `1Gi`).
pub fn is_subset(desired: &Value, actual: &Value) -> bool {
    match (desired, actual) {
        (Value::Object(d), Value::Object(a)) => d.iter().all(|(k, dv)| a.get(k).is_some_and(|av| is_subset(dv, av))),
        (Value::Array(d), Value::Array(a)) => d.len() == a.len() && d.iter().zip(a).all(|(dv, av)| is_subset(dv, av)),
        (Value::String(d), Value::String(a)) => d == a || same_quantity(d, a),
        (Value::Number(d), Value::Number(a)) => match (d.as_i64(), a.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => d.as_f64() == a.as_f64(),
        },
        (d, a) => d == a,
    }
}

/// The desired object with its applied-hash annotation.
fn with_hash(child: &Child) -> Result<(Value, String)> {
    let mut body = child.to_json().map_err(|source| Error::Serialize {
        what: format!("{} {}", child.kind().as_str(), child.name()),
        source,
    })?;
    let hash = config_hash(&body.to_string());
    if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Some(a) = annotations.as_object_mut() {
            a.insert(ANNOTATION_APPLIED_HASH.to_owned(), Value::String(hash.clone()));
        }
    }
    Ok((body, hash))
}

fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.get("metadata")?.get("annotations")?.get(key)?.as_str()
}

fn owned_by(object: &DynamicObject, uid: &str) -> bool {
    object
        .metadata
        .owner_references
        .as_ref()
        .is_some_and(|refs| refs.iter().any(|r| r.uid == uid))
}

/// Applies children of one cluster.
#[derive(Clone)]
pub struct Applier {
    client: Client,
    namespace: String,
    names: Names,
    owner_uid: String,
}

impl std::fmt::Debug for Applier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier")
            .field("namespace", &self.namespace)
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl Applier {
    pub fn new(client: Client, namespace: &str, names: Names, owner_uid: &str) -> Self {
        Self {
            client,
            namespace: namespace.to_owned(),
            names,
            owner_uid: owner_uid.to_owned(),
        }
    }

    fn api(&self, kind: Kind) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.namespace, &api_resource(kind))
    }

    /// Applies every desired child and deletes the ones no longer desired.
    pub async fn apply(&self, desired: &Desired) -> Result<Applied> {
        let mut out = Applied::default();
        for (key, child) in desired {
            self.apply_one(key, child, &mut out).await?;
        }
        self.delete_unwanted(desired, &mut out).await?;
        Ok(out)
    }

    async fn apply_one(&self, key: &ChildKey, child: &Child, out: &mut Applied) -> Result<()> {
        let api = self.api(key.kind);
        let (body, hash) = with_hash(child)?;
        let existing = api
            .get_opt(&key.name)
            .await
            .map_err(|source| Error::kube("read", key, source))?;
        let existing = match existing {
            Some(e) => Some(serde_json::to_value(&e).map_err(|source| Error::Serialize {
                what: format!("{} {}", key.kind.as_str(), key.name),
                source,
            })?),
            None => None,
        };

        if let (Child::StatefulSet(sts), Some(current)) = (child, &existing) {
            match self.claim_template_change(key, sts, current, out).await? {
                TemplateChange::None => {}
                TemplateChange::Refused => {
                    out.objects.insert(key.clone(), current.clone());
                    return Ok(());
                }
                TemplateChange::Recreate => {
                    // The pods stay; the next round creates the StatefulSet
                    // again (with the new template) once this one is gone.
                    api.delete(&key.name, &DeleteParams::orphan())
                        .await
                        .map_err(|source| Error::kube("delete", key, source))?;
                    out.objects.insert(key.clone(), current.clone());
                    out.deleted.push(key.clone());
                    out.pending.push(key.clone());
                    return Ok(());
                }
            }
        }

        if let Some(current) = &existing
            && current
                .get("metadata")
                .and_then(|m| m.get("deletionTimestamp"))
                .is_some()
        {
            // Still being deleted (e.g. orphaned for a claim-template
            // change): apply once it is gone.
            out.objects.insert(key.clone(), current.clone());
            out.pending.push(key.clone());
            return Ok(());
        }

        if let Some(current) = &existing
            && annotation(current, ANNOTATION_APPLIED_HASH) == Some(hash.as_str())
            && is_subset(&body, current)
        {
            out.objects.insert(key.clone(), current.clone());
            return Ok(());
        }
        let applied = self.patch(&api, key, &body).await?;
        out.objects.insert(key.clone(), applied);
        out.written.push(key.clone());
        Ok(())
    }

    async fn patch(&self, api: &Api<DynamicObject>, key: &ChildKey, body: &Value) -> Result<Value> {
        let params = PatchParams::apply(MANAGER).force();
        let applied = api
            .patch(&key.name, &params, &Patch::Apply(body))
            .await
            .map_err(|source| Error::kube("apply", key, source))?;
        serde_json::to_value(&applied).map_err(|source| Error::Serialize {
            what: format!("{} {}", key.kind.as_str(), key.name),
            source,
        })
    }

    /// Compares the claim template of a StatefulSet with the existing one,
    /// expanding claims when the size grew.
    async fn claim_template_change(
        &self,
        key: &ChildKey,
        desired: &StatefulSet,
        current: &Value,
        out: &mut Applied,
    ) -> Result<TemplateChange> {
        let Ok(current) = serde_json::from_value::<StatefulSet>(current.clone()) else {
            return Ok(TemplateChange::None);
        };
        let (Some(want), Some(have)) = (claim_template_size(desired), claim_template_size(&current)) else {
            return Ok(TemplateChange::None);
        };
        let (want_class, have_class) = (claim_template_class(desired), claim_template_class(&current));
        if want_class != have_class {
            out.problems.push(Problem {
                reason: "StorageClassImmutable",
                message: format!(
                    "StatefulSet {}: claims exist with StorageClass {}; changing it to {} needs new volumes and is not done automatically",
                    key.name,
                    have_class.as_deref().unwrap_or("(default)"),
                    want_class.as_deref().unwrap_or("(default)")
                ),
            });
            return Ok(TemplateChange::Refused);
        }
        let order = Quantity::parse(&want)
            .zip(Quantity::parse(&have))
            .and_then(|(w, h)| w.compare(h));
        match order {
            Some(std::cmp::Ordering::Equal) | None => Ok(TemplateChange::None),
            Some(std::cmp::Ordering::Less) => {
                out.problems.push(Problem {
                    reason: "WalShrinkRefused",
                    message: format!(
                        "StatefulSet {}: volumes cannot shrink from {have} to {want}; set the size back to at least {have}",
                        key.name
                    ),
                });
                Ok(TemplateChange::Refused)
            }
            Some(std::cmp::Ordering::Greater) => {
                self.expand_claims(desired, &want, out).await?;
                Ok(TemplateChange::Recreate)
            }
        }
    }

    /// Grows every claim of a StatefulSet's template to `size`.
    async fn expand_claims(&self, sts: &StatefulSet, size: &str, out: &mut Applied) -> Result<()> {
        let Some(selector) = sts
            .spec
            .as_ref()
            .and_then(|s| s.volume_claim_templates.as_ref())
            .and_then(|t| t.first())
            .and_then(|t| t.metadata.labels.as_ref())
        else {
            return Ok(());
        };
        let selector = crate::names::selector_string(selector);
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &self.namespace);
        let key = ChildKey {
            kind: Kind::StatefulSet,
            name: sts.metadata.name.clone().unwrap_or_default(),
        };
        let claims = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|source| Error::kube("list claims of", &key, source))?;
        let want = Quantity::parse(size);
        for claim in claims.items {
            let name = claim.metadata.name.clone().unwrap_or_default();
            let have = claim
                .spec
                .as_ref()
                .and_then(|s| s.resources.as_ref())
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("storage"))
                .and_then(|q| Quantity::parse(&q.0));
            let smaller = match (want, have) {
                (Some(w), Some(h)) => w.compare(h) == Some(std::cmp::Ordering::Greater),
                _ => false,
            };
            if smaller {
                let patch = serde_json::json!({
                    "spec": {"resources": {"requests": {"storage": size}}}
                });
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(|source| {
                        Error::kube(
                            "expand",
                            &ChildKey {
                                kind: Kind::StatefulSet,
                                name: format!("claim {name}"),
                            },
                            source,
                        )
                    })?;
                out.expanded_claims.push(name);
            }
        }
        Ok(())
    }

    /// Deletes children this cluster owns that are no longer desired (the
    /// HPA when autoscaling is turned off, the managed catalog when an
    /// external one is configured, the NetworkPolicies when
    /// `networkPolicy.enabled` is false).
    async fn delete_unwanted(&self, desired: &Desired, out: &mut Applied) -> Result<()> {
        let selector = format!("{},{LABEL_MANAGED_BY}={MANAGER}", self.names.instance_selector());
        for kind in Kind::ALL {
            let api = self.api(kind);
            let list = api
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|source| {
                    Error::kube(
                        "list",
                        &ChildKey {
                            kind,
                            name: selector.clone(),
                        },
                        source,
                    )
                })?;
            for object in list.items {
                let key = ChildKey {
                    kind,
                    name: object.metadata.name.clone().unwrap_or_default(),
                };
                if desired.contains_key(&key) || !owned_by(&object, &self.owner_uid) {
                    continue;
                }
                api.delete(&key.name, &DeleteParams::background())
                    .await
                    .map_err(|source| Error::kube("delete", &key, source))?;
                out.deleted.push(key);
            }
        }
        Ok(())
    }
}

enum TemplateChange {
    None,
    Refused,
    Recreate,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_ignores_server_defaults_but_not_changes() {
        let desired = json!({"spec": {"replicas": 3, "ports": [{"port": 80}], "mem": "1Gi"}});
        let actual = json!({
            "spec": {"replicas": 3, "ports": [{"port": 80, "protocol": "TCP"}], "mem": "1024Mi", "x": 1},
            "status": {}
        });
        assert!(is_subset(&desired, &actual));
        assert!(!is_subset(&json!({"spec": {"replicas": 2}}), &actual));
        assert!(!is_subset(
            &json!({"spec": {"ports": [{"port": 80}, {"port": 81}]}}),
            &actual
        ));
        assert!(!is_subset(&json!({"spec": {"missing": true}}), &actual));
        assert!(is_subset(&json!({"n": 1}), &json!({"n": 1.0})));
    }

    #[test]
    fn hash_annotation_is_added_and_stable() {
        let child = Child::ConfigMap(ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some("c".into()),
                ..Default::default()
            },
            ..Default::default()
        });
        let (a, h1) = with_hash(&child).unwrap();
        let (_, h2) = with_hash(&child).unwrap();
        assert_eq!(h1, h2);
        assert_eq!(annotation(&a, ANNOTATION_APPLIED_HASH), Some(h1.as_str()));
        assert_eq!(a["kind"], "ConfigMap");
    }
}
