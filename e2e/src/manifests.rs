//! The objects the suite applies, derived from the checked-in examples.

use serde_json::{Value, json};

/// Kubernetes `kind` of the cluster resource.
pub const CLUSTER_KIND: &str = "SignalDBCluster";

/// Parses a multi-document YAML file (such as `examples/cluster.yaml`) into
/// objects, places every one in `namespace`, and points each
/// SignalDBCluster at `image` with `pull_policy`.
pub fn cluster_manifests(yaml: &str, namespace: &str, image: &str, pull_policy: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(yaml).enumerate() {
        let value: Value = serde::Deserialize::deserialize(doc).map_err(|e| format!("document {i}: {e}"))?;
        if value.is_null() {
            continue;
        }
        let mut value = value;
        let obj = value
            .as_object_mut()
            .ok_or_else(|| format!("document {i} is not a mapping"))?;
        if !obj.contains_key("kind") || !obj.contains_key("apiVersion") {
            return Err(format!("document {i} has no kind or apiVersion"));
        }
        let meta = obj
            .entry("metadata")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or_else(|| format!("document {i}: metadata is not a mapping"))?;
        meta.insert("namespace".into(), json!(namespace));
        if obj.get("kind").and_then(Value::as_str) == Some(CLUSTER_KIND) {
            let spec = obj
                .entry("spec")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .ok_or_else(|| format!("document {i}: spec is not a mapping"))?;
            spec.insert("image".into(), json!(image));
            spec.insert("imagePullPolicy".into(), json!(pull_policy));
        }
        out.push(value);
    }
    if !out
        .iter()
        .any(|o| o.get("kind").and_then(Value::as_str) == Some(CLUSTER_KIND))
    {
        return Err(format!("no {CLUSTER_KIND} in the file"));
    }
    Ok(out)
}

/// The SignalDBCluster among `objects`.
pub fn the_cluster(objects: &[Value]) -> Option<&Value> {
    objects
        .iter()
        .find(|o| o.get("kind").and_then(Value::as_str) == Some(CLUSTER_KIND))
}

/// A `kubectl apply -f -` body for `objects` (a List).
pub fn as_list(objects: &[Value]) -> Value {
    json!({ "apiVersion": "v1", "kind": "List", "items": objects })
}

/// A merge patch that turns on writer autoscaling between `min` and `max`,
/// acting at once on lower recommendations (so the suite need not wait the
/// default ten minutes).
pub fn autoscaling_patch(min: i32, max: i32) -> Value {
    json!({ "spec": { "writer": { "autoscaling": {
        "minReplicas": min,
        "maxReplicas": max,
        "targetCPUUtilizationPercentage": 80,
        "scaleDownStabilizationSeconds": 0,
    }}}})
}

/// A merge patch that turns writer autoscaling off.
pub fn no_autoscaling_patch() -> Value {
    json!({ "spec": { "writer": { "autoscaling": null } } })
}

/// A SignalDBCluster the API server must refuse, and a piece of the error.
#[derive(Debug, Clone)]
pub struct InvalidCase {
    pub name: &'static str,
    pub object: Value,
    pub error_contains: &'static str,
}

/// Variants of `cluster` that the CRD's schema and CEL rules refuse.
pub fn invalid_clusters(cluster: &Value) -> Vec<InvalidCase> {
    let with = |name: &'static str, error_contains: &'static str, edit: &dyn Fn(&mut Value)| {
        let mut object = cluster.clone();
        object["metadata"]["name"] = json!(format!("invalid-{name}"));
        edit(&mut object);
        InvalidCase {
            name,
            object,
            error_contains,
        }
    };
    vec![
        with("negative-replicas", "spec.writer.replicas", &|o| {
            o["spec"]["writer"] = json!({ "replicas": -1 });
        }),
        with("replicas-not-a-number", "spec.acceptor.replicas", &|o| {
            o["spec"]["acceptor"] = json!({ "replicas": "three" });
        }),
        with(
            "two-catalogs",
            "set exactly one of catalog.postgres and catalog.managed",
            &|o| {
                o["spec"]["catalog"] = json!({ "managed": {}, "postgres": { "urlSecretRef": { "name": "pg" } } });
            },
        ),
        with(
            "autoscaling-max-below-min",
            "maxReplicas must be at least minReplicas",
            &|o| {
                o["spec"]["writer"] = json!({ "autoscaling": { "minReplicas": 3, "maxReplicas": 2,
                                            "targetCPUUtilizationPercentage": 80 } });
            },
        ),
        with("unknown-field", "unknown field", &|o| {
            o["spec"]["writer"] = json!({ "replicaCount": 2 });
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "# a comment\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: objects\n---\napiVersion: signaldb.io/v1alpha1\nkind: SignalDBCluster\nmetadata:\n  name: demo\nspec:\n  catalog:\n    managed: {}\n---\n";

    #[test]
    fn manifests_land_in_the_namespace_with_the_image() {
        let objs = cluster_manifests(EXAMPLE, "e2e-1", "signaldb:e2e", "IfNotPresent").unwrap();
        assert_eq!(objs.len(), 2);
        assert!(objs.iter().all(|o| o["metadata"]["namespace"] == "e2e-1"));
        let c = the_cluster(&objs).unwrap();
        assert_eq!(c["spec"]["image"], "signaldb:e2e");
        assert_eq!(c["spec"]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c["spec"]["catalog"]["managed"], json!({}));
        assert!(objs[0]["spec"].is_null(), "only the cluster gets an image");
        assert_eq!(as_list(&objs)["items"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn files_without_a_cluster_or_kind_are_refused() {
        let no_cluster = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n";
        assert!(
            cluster_manifests(no_cluster, "n", "i", "Never")
                .unwrap_err()
                .contains("no SignalDBCluster")
        );
        assert!(
            cluster_manifests("metadata: {}\n", "n", "i", "Never")
                .unwrap_err()
                .contains("no kind")
        );
        assert!(
            cluster_manifests("- a\n", "n", "i", "Never")
                .unwrap_err()
                .contains("not a mapping")
        );
    }

    #[test]
    fn the_checked_in_example_is_usable() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/cluster.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        let objs = cluster_manifests(&text, "ns", "img:1", "Never").unwrap();
        assert_eq!(the_cluster(&objs).unwrap()["metadata"]["name"], "demo");
    }

    #[test]
    fn invalid_cases_are_renamed_variants() {
        let objs = cluster_manifests(EXAMPLE, "ns", "i", "Never").unwrap();
        let cases = invalid_clusters(the_cluster(&objs).unwrap());
        assert!(cases.len() >= 5);
        for c in &cases {
            assert_eq!(c.object["metadata"]["name"], format!("invalid-{}", c.name));
            assert_eq!(c.object["metadata"]["namespace"], "ns");
            assert_eq!(c.object["kind"], CLUSTER_KIND);
        }
    }

    #[test]
    fn autoscaling_patches() {
        let p = autoscaling_patch(2, 3);
        assert_eq!(p["spec"]["writer"]["autoscaling"]["minReplicas"], 2);
        assert_eq!(p["spec"]["writer"]["autoscaling"]["scaleDownStabilizationSeconds"], 0);
        assert!(no_autoscaling_patch()["spec"]["writer"]["autoscaling"].is_null());
    }
}
