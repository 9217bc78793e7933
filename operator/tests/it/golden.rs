//! Golden tests of the pure builders: `testdata/<case>/input.yaml` (a
//! SignalDBCluster as the API server hands it over) planned into
//! `testdata/<case>/expected.yaml`, for an operator installed in
//! `signaldb-system`. Set `UPDATE_GOLDEN=1` to rewrite the expected files,
//! then review the diff.

use signaldb_operator::build::plan_for;
use signaldb_operator::crd::SignalDBCluster;

use crate::{crate_root, update_golden};

fn golden(case: &str) {
    let dir = crate_root().join("testdata").join(case);
    let input = std::fs::read_to_string(dir.join("input.yaml")).unwrap();
    let cluster: SignalDBCluster = serde_yaml_ng::from_str(&input).unwrap();
    let actual = plan_for(&cluster, Some("signaldb-system")).unwrap().to_text().unwrap();
    let path = dir.join("expected.yaml");
    if update_golden() {
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "testdata/{case}/expected.yaml differs from the builders' output from line {}:\nexpected: {:?}\nactual:   {:?}\n(rerun with UPDATE_GOLDEN=1 and review the diff)",
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first),
        );
    }
}

#[test]
fn minimal() {
    golden("minimal");
}

#[test]
fn production() {
    golden("production");
}

#[test]
fn autoscaling() {
    golden("autoscaling");
}

#[test]
fn network_policy() {
    golden("network-policy");
}

#[test]
fn tls() {
    golden("tls");
}

#[test]
fn paused() {
    golden("paused");
}
