//! The `signaldb-e2e` binary fails clearly when the cluster cannot be
//! reached (and never panics on TLS set-up).

#[test]
fn an_unreachable_cluster_is_a_clear_failure() {
    let dir = std::env::temp_dir().join(format!("signaldb-e2e-kc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signaldb-e2e"))
        .args(["--image", "signaldb:e2e", "--mode", "control-plane", "--timeout", "5s"])
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("cannot create namespace signaldb-e2e"),
        "the error names the step: {stderr}"
    );
}

#[test]
fn a_missing_kubeconfig_is_named() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signaldb-e2e"))
        .args(["--image", "x", "--kubeconfig", "/nonexistent/kubeconfig"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot read kubeconfig /nonexistent/kubeconfig"),
        "{stderr}"
    );
}
