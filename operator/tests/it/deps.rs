//! The operator never pulls in the data plane's heavy dependencies.

#[test]
fn no_arrow_parquet_or_datafusion_in_the_dependency_tree() {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-p",
            "signaldb-operator",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    assert!(tree.contains("signaldb-config"), "unexpected tree:\n{tree}");
    assert!(tree.contains("kube "), "unexpected tree:\n{tree}");
    let forbidden: Vec<&str> = tree
        .lines()
        .filter(|line| {
            let name = line.split_whitespace().next().unwrap_or_default();
            name == "arrow"
                || name.starts_with("arrow-")
                || name == "parquet"
                || name == "datafusion"
                || name.starts_with("datafusion-")
                || name == "openssl-sys"
                || name == "aws-lc-sys"
        })
        .collect();
    assert!(forbidden.is_empty(), "forbidden dependencies: {forbidden:?}");
}
