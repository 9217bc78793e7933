//! The checked-in CRD is what `signaldb-operator crd` prints, and the schema
//! has what `kubectl explain`, `kubectl scale` and the HPA need.

use kube::CustomResourceExt;
use serde_json::Value;
use signaldb_operator::crd::SignalDBCluster;
use signaldb_operator::crdgen::{CRD_FILE, crd_yaml};

use crate::{update_golden, workspace_root};

/// Where the generated CRD is checked in: `crds/` for `kubectl apply`, and the
/// Helm chart's `files/crds/` (the chart templates it, so upgrades upgrade it).
const CRD_DIRS: &[&str] = &["crds", "charts/signaldb-operator/files/crds"];

#[test]
fn checked_in_crd_matches_the_generator() {
    let generated = crd_yaml().unwrap();
    for dir in CRD_DIRS {
        let path = workspace_root().join(dir).join(CRD_FILE);
        if update_golden() {
            std::fs::write(&path, &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "{} differs from `signaldb-operator crd`: run `cargo run -p signaldb-operator -- crd > {dir}/{CRD_FILE}` (or UPDATE_GOLDEN=1 cargo test -p signaldb-operator)",
            path.display()
        );
    }
}

#[test]
fn the_binary_prints_the_crd() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signaldb-operator"))
        .arg("crd")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), crd_yaml().unwrap());
}

fn crd_json() -> Value {
    serde_json::to_value(SignalDBCluster::crd()).unwrap()
}

#[test]
fn names_scope_and_subresources() {
    let crd = crd_json();
    let spec = &crd["spec"];
    assert_eq!(spec["group"], "signaldb.io");
    assert_eq!(spec["scope"], "Namespaced");
    assert_eq!(spec["names"]["kind"], "SignalDBCluster");
    assert_eq!(spec["names"]["shortNames"], serde_json::json!(["sdb"]));
    let version = &spec["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert_eq!(version["served"], true);
    assert_eq!(version["storage"], true);
    assert_eq!(version["subresources"]["status"], serde_json::json!({}));
    assert_eq!(
        version["subresources"]["scale"],
        serde_json::json!({
            "specReplicasPath": ".spec.writer.replicas",
            "statusReplicasPath": ".status.writer.replicas",
            "labelSelectorPath": ".status.writer.selector",
        })
    );
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        [
            "Ready",
            "Writers",
            "Ready Writers",
            "Scale-down",
            "Reason",
            "Paused",
            "Age"
        ]
    );
}

/// Walks our part of the schema (not the embedded Kubernetes types, which
/// bring their own descriptions) and collects fields without a description.
fn undocumented(schema: &Value, path: &str, out: &mut Vec<String>) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, child) in props {
        let child_path = format!("{path}.{name}");
        let described = child
            .get("description")
            .and_then(Value::as_str)
            .is_some_and(|d| !d.trim().is_empty());
        if !described {
            out.push(child_path.clone());
        }
        // Embedded Kubernetes types: documented upstream.
        if [
            "resources",
            "affinity",
            "tolerations",
            "env",
            "imagePullSecrets",
            "conditions",
        ]
        .contains(&name.as_str())
        {
            continue;
        }
        undocumented(child, &child_path, out);
        if let Some(items) = child.get("items") {
            undocumented(items, &format!("{child_path}[]"), out);
        }
    }
}

#[test]
fn every_field_has_a_description() {
    let crd = crd_json();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let mut missing = Vec::new();
    for part in ["spec", "status"] {
        undocumented(&schema["properties"][part], part, &mut missing);
    }
    assert!(missing.is_empty(), "fields without a description: {missing:?}");
}

#[test]
fn cross_field_rules_are_cel() {
    let crd = crd_json();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let rules = |v: &Value| -> Vec<String> {
        v["x-kubernetes-validations"]
            .as_array()
            .map(|a| a.iter().map(|r| r["rule"].as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    };
    assert_eq!(
        rules(&spec["properties"]["catalog"]),
        ["has(self.postgres) != has(self.managed)"]
    );
    assert_eq!(
        rules(&spec["properties"]["storage"]),
        ["has(self.s3) != has(self.filesystem)"]
    );
    assert_eq!(
        rules(&spec["properties"]["writer"]["properties"]["autoscaling"]),
        [
            "self.maxReplicas >= self.minReplicas",
            "has(self.targetCPUUtilizationPercentage) || has(self.targetMemoryUtilizationPercentage)"
        ]
    );
    // Defaults the API server fills in.
    let writer = &spec["properties"]["writer"]["properties"];
    assert_eq!(writer["replicas"]["default"], 1);
    assert_eq!(writer["replicas"]["minimum"], 1.0);
    assert_eq!(writer["drainTimeout"]["default"], "15m");
    assert_eq!(writer["wal"]["default"]["size"], "10Gi");
}

/// `signaldb-operator run` against an API server that does not answer, over
/// HTTPS: it keeps running and reports the connection error (this test
/// binary is built with both rustls providers enabled, as a whole-workspace
/// build is; the operator must pick one instead of panicking).
#[test]
fn run_survives_an_unreachable_api_server() {
    let dir = std::env::temp_dir().join(format!("signaldb-operator-kc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_signaldb-operator"))
        .args(["run", "--leader-election=false", "--http-addr", "127.0.0.1:0"])
        .env("KUBECONFIG", &kubeconfig)
        .env("SIGNALDB_OPERATOR_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let still_running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(still_running, "the operator exited: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("Connect"), "the connection error is reported: {stderr}");
}
