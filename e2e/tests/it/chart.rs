//! The Helm chart, linted and rendered by the real `helm` (the test command
//! installs it with `scripts/install-helm.sh`), and the rendered manifests
//! checked: kinds, RBAC against what the operator uses, image, probes, CRD.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};
use signaldb_operator::build::{Child, Plan, plan};
use signaldb_operator::crd::SignalDBCluster;
use signaldb_operator::crdgen::crd_yaml;
use signaldb_operator::rbac::{LEADER_ELECTION_RULES, NAMESPACED_RULES, triples};

use crate::root;

fn chart() -> PathBuf {
    root().join("charts/signaldb-operator")
}

/// The helm binary: `SIGNALDB_HELM`, else `helm` on PATH. Missing helm fails
/// the test with what to do; it is never skipped.
fn helm() -> PathBuf {
    let helm = std::env::var_os("SIGNALDB_HELM").map_or_else(|| PathBuf::from("helm"), PathBuf::from);
    let ok = Command::new(&helm)
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "cannot run helm ({}): run `scripts/install-helm.sh` (scripts/test.sh does) and set SIGNALDB_HELM, or put helm on PATH",
        helm.display()
    );
    helm
}

fn run_helm(args: &[&str]) -> Result<String, String> {
    let out = Command::new(helm()).args(args).output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `helm template` with extra arguments, parsed into objects.
fn render(extra: &[&str]) -> Vec<Value> {
    let chart = chart();
    let mut args = vec![
        "template",
        "sdb-op",
        chart.to_str().unwrap(),
        "--namespace",
        "signaldb-system",
    ];
    args.extend_from_slice(extra);
    let text = run_helm(&args).unwrap_or_else(|e| panic!("helm template {extra:?} failed: {e}"));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn kinds(objs: &[Value]) -> BTreeSet<String> {
    objs.iter().map(|o| o["kind"].as_str().unwrap().to_owned()).collect()
}

fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {:?}", kinds(objs)))
}

/// (group, resource, verb) triples of a Role or ClusterRole.
fn role_triples(role: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for rule in role["rules"].as_array().unwrap() {
        for g in rule["apiGroups"].as_array().unwrap() {
            for r in rule["resources"].as_array().unwrap() {
                for v in rule["verbs"].as_array().unwrap() {
                    out.push((
                        g.as_str().unwrap().to_owned(),
                        r.as_str().unwrap().to_owned(),
                        v.as_str().unwrap().to_owned(),
                    ));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn yaml_file(rel: &str) -> Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(chart().join(rel)).unwrap()).unwrap()
}

/// Numbers as f64, so that `1000` and `1000.0` compare equal (Helm's YAML
/// round trip writes integers for the generator's floats).
fn numbers_as_f64(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(a) => Value::Array(a.iter().map(numbers_as_f64).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), numbers_as_f64(v))).collect()),
        other => other.clone(),
    }
}

#[test]
fn lint_strict_passes_with_default_and_production_values() {
    let chart = chart();
    let chart = chart.to_str().unwrap();
    run_helm(&["lint", "--strict", chart]).unwrap();
    let prod = format!("{chart}/values-production.yaml");
    run_helm(&["lint", "--strict", chart, "-f", &prod]).unwrap();
}

#[test]
fn default_render_has_every_object_with_image_probes_and_security() {
    let objs = render(&[]);
    assert_eq!(
        kinds(&objs),
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "Deployment",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    );
    let values = yaml_file("values.yaml");
    let chart_meta = yaml_file("Chart.yaml");
    let d = find(&objs, "Deployment", "sdb-op-signaldb-operator");
    assert_eq!(d["metadata"]["namespace"], "signaldb-system");
    assert_eq!(d["spec"]["replicas"], 1);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "sdb-op-signaldb-operator");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let c = &pod["containers"][0];
    assert_eq!(
        c["image"],
        format!(
            "{}:{}",
            values["image"]["repository"].as_str().unwrap(),
            chart_meta["appVersion"].as_str().unwrap()
        )
    );
    assert_eq!(c["command"], json!(["signaldb-operator"]));
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "run");
    assert!(args.contains(&"--leader-election=true"));
    assert!(args.contains(&"--http-addr=0.0.0.0:8080"));
    assert!(args.contains(&"--lease-name=sdb-op-signaldb-operator"));
    assert_eq!(
        c["ports"][0],
        json!({"name": "http-metrics", "containerPort": 8080, "protocol": "TCP"})
    );
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        assert_eq!(c[probe]["httpGet"]["path"], "/healthz", "{probe}");
        assert_eq!(c[probe]["httpGet"]["port"], "http-metrics", "{probe}");
    }
    assert!(c["resources"]["requests"]["cpu"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    let env: Vec<&str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(env.contains(&"POD_NAME") && env.contains(&"POD_NAMESPACE"));
    assert!(
        !env.contains(&"SIGNALDB_OPERATOR_NAMESPACE"),
        "default watches every namespace"
    );

    let svc = find(&objs, "Service", "sdb-op-signaldb-operator-metrics");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http-metrics");
    assert_eq!(
        svc["spec"]["selector"], d["spec"]["selector"]["matchLabels"],
        "the metrics Service selects the operator pods"
    );
    let labels = &d["spec"]["template"]["metadata"]["labels"];
    for (k, v) in d["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&labels[k], v);
    }
}

#[test]
fn rbac_grants_exactly_what_the_operator_uses() {
    let objs = render(&[]);
    let cluster_role = find(&objs, "ClusterRole", "sdb-op-signaldb-operator");
    assert_eq!(role_triples(cluster_role), triples(NAMESPACED_RULES));
    let lease = find(&objs, "Role", "sdb-op-signaldb-operator-leader-election");
    assert_eq!(lease["metadata"]["namespace"], "signaldb-system");
    assert_eq!(role_triples(lease), triples(LEADER_ELECTION_RULES));
    for (kind, name) in [
        ("ClusterRoleBinding", "sdb-op-signaldb-operator"),
        ("RoleBinding", "sdb-op-signaldb-operator-leader-election"),
    ] {
        let b = find(&objs, kind, name);
        assert_eq!(
            b["subjects"],
            json!([{"kind": "ServiceAccount", "name": "sdb-op-signaldb-operator", "namespace": "signaldb-system"}])
        );
    }
    for o in &objs {
        if let Some(rules) = o["rules"].as_array() {
            for r in rules {
                for field in ["apiGroups", "resources", "verbs"] {
                    assert!(!r[field].as_array().unwrap().contains(&json!("*")), "wildcard in {r}");
                }
            }
        }
    }
}

#[test]
fn namespace_scoped_mode_has_no_cluster_wide_permissions() {
    let objs = render(&["--set", "watchNamespace=team-a"]);
    let k = kinds(&objs);
    assert!(!k.contains("ClusterRole") && !k.contains("ClusterRoleBinding"), "{k:?}");
    let role = find(&objs, "Role", "sdb-op-signaldb-operator");
    assert_eq!(role["metadata"]["namespace"], "team-a");
    assert_eq!(role_triples(role), triples(NAMESPACED_RULES));
    let binding = find(&objs, "RoleBinding", "sdb-op-signaldb-operator");
    assert_eq!(binding["metadata"]["namespace"], "team-a");
    assert_eq!(binding["subjects"][0]["namespace"], "signaldb-system");
    let d = find(&objs, "Deployment", "sdb-op-signaldb-operator");
    let env = &d["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .unwrap()
            .contains(&json!({"name": "SIGNALDB_OPERATOR_NAMESPACE", "value": "team-a"}))
    );
}

#[test]
fn the_pods_role_the_operator_builds_is_within_what_it_holds() {
    // RBAC refuses to let the operator grant more than it holds: every rule
    // of the Role it builds for the pods must be in its own rules.
    let text = std::fs::read_to_string(root().join("examples/cluster.yaml")).unwrap();
    let mut cluster: Option<SignalDBCluster> = None;
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let v: Value = serde::Deserialize::deserialize(doc).unwrap();
        if v["kind"] == "SignalDBCluster" {
            cluster = Some(serde_json::from_value(v).unwrap());
        }
    }
    let mut cluster = cluster.unwrap();
    cluster.metadata.namespace = Some("ns".into());
    cluster.metadata.uid = Some("uid-1".into());
    let Plan::Apply(desired) = plan(&cluster).unwrap() else {
        panic!("the example does not plan");
    };
    let held: BTreeSet<_> = triples(NAMESPACED_RULES).into_iter().collect();
    let mut roles = 0;
    for child in desired.values() {
        if let Child::Role(role) = child {
            roles += 1;
            let v = serde_json::to_value(role).unwrap();
            for t in role_triples(&v) {
                assert!(
                    held.contains(&t),
                    "the pods' Role grants {t:?}, which the operator does not hold"
                );
            }
        }
    }
    assert_eq!(roles, 1);
}

#[test]
fn the_crd_is_the_generated_one_upgraded_with_the_chart_and_kept() {
    let objs = render(&[]);
    let crd = find(&objs, "CustomResourceDefinition", "signaldbclusters.signaldb.io");
    let generated: Value = serde_yaml_ng::from_str(&crd_yaml().unwrap()).unwrap();
    assert_eq!(numbers_as_f64(&crd["spec"]), numbers_as_f64(&generated["spec"]));
    let annotations = &crd["metadata"]["annotations"];
    assert_eq!(annotations["helm.sh/resource-policy"], "keep");
    assert_eq!(annotations["argocd.argoproj.io/sync-wave"], "-1");
    assert_eq!(
        annotations["argocd.argoproj.io/sync-options"],
        "ServerSideApply=true,Prune=false"
    );
    assert_eq!(crd["metadata"]["labels"]["app.kubernetes.io/name"], "signaldb-operator");

    let not_kept = render(&["--set", "crds.keep=false"]);
    let crd = find(&not_kept, "CustomResourceDefinition", "signaldbclusters.signaldb.io");
    assert!(crd["metadata"]["annotations"].get("helm.sh/resource-policy").is_none());
    assert_eq!(
        crd["metadata"]["annotations"]["argocd.argoproj.io/sync-options"],
        "ServerSideApply=true"
    );
    let none = render(&["--set", "crds.install=false"]);
    assert!(!kinds(&none).contains("CustomResourceDefinition"));
}

#[test]
fn production_values_render_ha_with_monitoring() {
    let prod = chart().join("values-production.yaml");
    let objs = render(&["-f", prod.to_str().unwrap()]);
    let k = kinds(&objs);
    assert!(
        k.contains("ServiceMonitor") && k.contains("PodDisruptionBudget"),
        "{k:?}"
    );
    let d = find(&objs, "Deployment", "sdb-op-signaldb-operator");
    assert_eq!(d["spec"]["replicas"], 2);
    let pod = &d["spec"]["template"]["spec"];
    assert!(pod["affinity"]["podAntiAffinity"].is_object());
    assert!(
        pod["containers"][0]["args"]
            .as_array()
            .unwrap()
            .contains(&json!("--leader-election=true"))
    );
    let sm = find(&objs, "ServiceMonitor", "sdb-op-signaldb-operator");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "http-metrics");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(
        sm["spec"]["selector"]["matchLabels"],
        d["spec"]["selector"]["matchLabels"]
    );
    let pdb = find(&objs, "PodDisruptionBudget", "sdb-op-signaldb-operator");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
}

#[test]
fn bad_values_are_refused_with_a_clear_message() {
    let chart = chart();
    let chart = chart.to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&["--set", "replicas=3"], "additional properties 'replicas' not allowed"),
        (&["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
        (&["--set", "watchNamespace=Team_A"], "/watchNamespace"),
        (
            &["--set", "replicaCount=2", "--set", "leaderElection.enabled=false"],
            "replicaCount > 1 needs leaderElection.enabled",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["template", "x", chart];
        args.extend_from_slice(extra);
        let err = run_helm(&args).expect_err(&format!("helm accepted {extra:?}"));
        assert!(err.contains(expected), "{extra:?}: {err}");
    }
}
