//! Every SignalDBCluster manifest under `examples/` (and every golden input)
//! is valid against the CRD's OpenAPI schema, passes the operator's own
//! validation, and plans to a set of objects.

use std::path::Path;

use kube::CustomResourceExt;
use serde::Deserialize;
use serde_json::Value;
use signaldb_operator::build::{Plan, plan};
use signaldb_operator::crd::SignalDBCluster;
use signaldb_operator::validate::{is_dns_subdomain, validate};

use crate::{crate_root, workspace_root};

fn open_api_schema() -> Value {
    let crd = serde_json::to_value(SignalDBCluster::crd()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn schema_validator() -> jsonschema::Validator {
    jsonschema::draft4::new(&open_api_schema()).unwrap()
}

/// The CEL `x-kubernetes-validations` the API server would run, with the
/// schema's defaults applied first, as the API server does.
fn cel_errors(doc: &Value) -> Vec<String> {
    match kube_cel::validate(&open_api_schema(), doc, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .as_slice()
            .iter()
            .map(|e| format!("{}: {} ({})", e.field_path, e.message, e.rule))
            .collect(),
    }
}

/// The documents of a YAML file that are SignalDBClusters.
fn clusters_in(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| v["kind"] == "SignalDBCluster")
        .collect()
}

fn schema_errors(validator: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    validator
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn check(validator: &jsonschema::Validator, path: &Path, doc: &Value) {
    assert_eq!(doc["apiVersion"], "signaldb.io/v1alpha1", "{}", path.display());
    let errors = schema_errors(validator, doc);
    assert!(errors.is_empty(), "{}: {errors:?}", path.display());
    let errors = cel_errors(doc);
    assert!(errors.is_empty(), "{}: {errors:?}", path.display());
    let mut cluster: SignalDBCluster =
        serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    cluster.metadata.namespace.get_or_insert_with(|| "default".into());
    cluster.metadata.uid.get_or_insert_with(|| "uid".into());
    if let Err(e) = validate(&cluster) {
        panic!("{}: {e}", path.display());
    }
    let planned = plan(&cluster).unwrap();
    if !cluster.spec.paused {
        assert!(matches!(planned, Plan::Apply(ref d) if !d.is_empty()));
    }
}

#[test]
fn examples_are_valid_clusters() {
    let validator = schema_validator();
    let dir = workspace_root().join("examples");
    let mut checked = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    entries.sort();
    for path in entries {
        for doc in clusters_in(&path) {
            check(&validator, &path, &doc);
            checked.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    for required in ["cluster.yaml", "cluster-production.yaml"] {
        assert!(
            checked.iter().any(|c| c == required),
            "examples/{required} holds no SignalDBCluster (checked {checked:?})"
        );
    }
}

#[test]
fn golden_inputs_are_valid_clusters() {
    let validator = schema_validator();
    let mut n = 0;
    for entry in std::fs::read_dir(crate_root().join("testdata")).unwrap() {
        let path = entry.unwrap().path().join("input.yaml");
        if path.exists() {
            for doc in clusters_in(&path) {
                check(&validator, &path, &doc);
                n += 1;
            }
        }
    }
    assert!(n >= 4, "only {n} golden inputs");
}

#[test]
fn the_schema_refuses_broken_manifests() {
    let validator = schema_validator();
    let base = serde_json::json!({
        "apiVersion": "signaldb.io/v1alpha1",
        "kind": "SignalDBCluster",
        "metadata": {"name": "x"},
        "spec": {
            "catalog": {"managed": {}},
            "storage": {"s3": {"bucket": "traces"}},
        }
    });
    assert!(schema_errors(&validator, &base).is_empty());
    let broken = [
        ("/spec/storage", serde_json::json!(null)),
        ("/spec/storage/s3/bucket", serde_json::json!("Not A Bucket")),
        ("/spec/writer", serde_json::json!({"replicas": 0})),
        ("/spec/writer", serde_json::json!({"wal": {"size": "lots"}})),
        ("/spec/writer", serde_json::json!({"drainTimeout": "soon"})),
        ("/spec/writer", serde_json::json!({"autoscaling": {"minReplicas": 1}})),
        ("/spec/limits", serde_json::json!({"maxRequestSize": "12 parsecs"})),
        ("/spec/imagePullPolicy", serde_json::json!("Sometimes")),
        ("/spec/tenancy", serde_json::json!({"defaultTenant": "a/b"})),
        ("/spec/tenancy", serde_json::json!({"apiKeys": "yes"})),
        ("/spec/tls", serde_json::json!({})),
        ("/spec/tls", serde_json::json!({"secretName": ""})),
        ("/spec/tls", serde_json::json!({"secretName": "My_Cert"})),
    ];
    for (pointer, value) in broken {
        let mut doc = base.clone();
        if value.is_null() {
            doc["spec"].as_object_mut().unwrap().remove("storage");
        } else {
            set(&mut doc, pointer, value.clone());
        }
        assert!(
            !schema_errors(&validator, &doc).is_empty(),
            "{pointer} = {value} was accepted"
        );
    }
}

/// The schema's pattern for `tls.secretName` and the operator's own check
/// (for an older installed CRD) accept the same names.
#[test]
fn tls_secret_name_schema_and_operator_agree() {
    let validator = schema_validator();
    let long = "a".repeat(253);
    let too_long = "a".repeat(254);
    for name in [
        "signaldb-tls",
        "a",
        "0",
        "a.b",
        "x.y-z.q9",
        long.as_str(),
        "",
        "A",
        "a_b",
        "-a",
        "a-",
        "a..b",
        ".a",
        "a.",
        "a.-b",
        "a-.b",
        "tls/x",
        "é",
        too_long.as_str(),
    ] {
        let doc = serde_json::json!({
            "apiVersion": "signaldb.io/v1alpha1",
            "kind": "SignalDBCluster",
            "metadata": {"name": "x"},
            "spec": {
                "catalog": {"managed": {}},
                "storage": {"s3": {"bucket": "traces"}},
                "tls": {"secretName": name},
            }
        });
        assert_eq!(
            schema_errors(&validator, &doc).is_empty(),
            is_dns_subdomain(name),
            "{name:?}"
        );
    }
}

/// Sets the value at a JSON pointer, creating objects on the way.
fn set(doc: &mut Value, pointer: &str, value: Value) {
    let mut node = doc;
    for key in pointer.trim_start_matches('/').split('/') {
        node = node
            .as_object_mut()
            .unwrap()
            .entry(key.to_owned())
            .or_insert_with(|| serde_json::json!({}));
    }
    *node = value;
}

#[test]
fn cel_rules_compile_and_refuse_what_spans_fields() {
    let compiled = kube_cel::compile_schema(&open_api_schema());
    assert!(!compiled.has_errors(), "{:?}", compiled.compilation_errors());
    let base = serde_json::json!({
        "apiVersion": "signaldb.io/v1alpha1",
        "kind": "SignalDBCluster",
        "metadata": {"name": "x"},
        "spec": {
            "catalog": {"managed": {}},
            "storage": {"s3": {"bucket": "traces"}},
        }
    });
    assert_eq!(cel_errors(&base), Vec::<String>::new());
    let cases = [
        ("/spec/catalog", serde_json::json!({})),
        (
            "/spec/catalog",
            serde_json::json!({"managed": {}, "postgres": {"urlSecretRef": {"name": "pg"}}}),
        ),
        ("/spec/storage", serde_json::json!({})),
        (
            "/spec/storage",
            serde_json::json!({"s3": {"bucket": "b"}, "filesystem": {"claimName": "c"}}),
        ),
        (
            "/spec/writer",
            serde_json::json!({"autoscaling": {"minReplicas": 3, "maxReplicas": 2, "targetCPUUtilizationPercentage": 50}}),
        ),
        ("/spec/writer", serde_json::json!({"autoscaling": {"maxReplicas": 2}})),
        ("/spec/tenancy", serde_json::json!({"defaultTenant": ".."})),
    ];
    for (pointer, value) in cases {
        let mut doc = base.clone();
        set(&mut doc, pointer, value.clone());
        assert!(!cel_errors(&doc).is_empty(), "{pointer} = {value} passed the CEL rules");
    }
}
