//! The process around the reconciler: leader election against the
//! in-memory API, and the command line.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube_fake_client::ClientBuilder;
use signaldb_operator::leader::LeaseLock;

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

#[tokio::test]
async fn one_replica_leads_and_another_takes_over_when_it_stops_renewing() {
    let client = ClientBuilder::new().build().await.unwrap();
    let lease = |id: &str| LeaseLock::new(client.clone(), "ops", "signaldb-operator", id, Duration::from_secs(15));
    let (a, b) = (lease("a"), lease("b"));

    assert!(a.try_acquire_or_renew(t(0)).await.unwrap());
    assert!(!b.try_acquire_or_renew(t(1)).await.unwrap());
    assert!(a.try_acquire_or_renew(t(5)).await.unwrap());
    // Renewed at 5: valid until 20.
    assert!(!b.try_acquire_or_renew(t(19)).await.unwrap());
    // a stopped renewing: b takes over, and a learns it lost.
    assert!(b.try_acquire_or_renew(t(21)).await.unwrap());
    assert!(!a.try_acquire_or_renew(t(22)).await.unwrap());

    let stored = Api::<Lease>::namespaced(client.clone(), "ops")
        .get("signaldb-operator")
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(stored.holder_identity.as_deref(), Some("b"));
    assert_eq!(stored.lease_transitions, Some(1));
    assert_eq!(stored.lease_duration_seconds, Some(15));

    // Releasing hands over at once.
    b.release().await.unwrap();
    assert!(a.try_acquire_or_renew(t(23)).await.unwrap());
    // Releasing a lease one does not hold changes nothing.
    b.release().await.unwrap();
    assert!(a.try_acquire_or_renew(t(24)).await.unwrap());
}

#[test]
fn run_without_a_cluster_fails_with_a_clear_message() {
    let home = std::env::temp_dir().join(format!("sdb-op-home-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signaldb-operator"))
        .args(["run", "--http-addr", "127.0.0.1:0"])
        .env("HOME", &home)
        .env("KUBECONFIG", home.join("missing-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot connect to Kubernetes"), "{stderr}");
    std::fs::remove_dir_all(home).unwrap();
}

#[test]
fn the_command_line_documents_its_options() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signaldb-operator"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--namespace",
        "--http-addr",
        "--leader-election",
        "--lease-name",
        "--drain-poll-interval",
        "--log-format",
    ] {
        assert!(help.contains(flag), "{flag} missing from\n{help}");
    }
}
