//! The image recipe, read as Docker reads it (no Docker engine runs here, so
//! it is not built in the test command): a builder stage, a small non-root
//! runtime stage with both binaries, and an entrypoint the operator's pods
//! rely on.

use crate::root;

/// Instructions of a Dockerfile: (keyword, arguments), with line
/// continuations joined and comments dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(body) = trimmed.strip_suffix('\\') {
            current.push_str(body);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (k, rest) = current.split_once(char::is_whitespace).unwrap_or((&current, ""));
        out.push((k.to_ascii_uppercase(), rest.trim().to_owned()));
        current.clear();
    }
    out
}

/// The instructions of each stage.
fn stages(ins: &[(String, String)]) -> Vec<Vec<(String, String)>> {
    let mut stages: Vec<Vec<(String, String)>> = Vec::new();
    for i in ins {
        if i.0 == "FROM" {
            stages.push(Vec::new());
        }
        if let Some(s) = stages.last_mut() {
            s.push(i.clone());
        }
    }
    stages
}

#[test]
fn multi_stage_non_root_image_with_both_binaries() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let stages = stages(&instructions(&text));
    assert!(stages.len() >= 2, "a builder stage and a runtime stage");
    let builder = &stages[0];
    let build = builder
        .iter()
        .find(|(k, a)| k == "RUN" && a.contains("cargo build"))
        .expect("the builder runs cargo build");
    for needle in ["--release", "--locked", "-p signaldb ", "-p signaldb-operator"] {
        assert!(build.1.contains(needle), "cargo build lacks {needle}: {}", build.1);
    }

    let runtime = stages.last().unwrap();
    let from = &runtime[0].1;
    assert!(
        !from.contains("rust"),
        "the runtime stage is not the Rust toolchain image: {from}"
    );
    let copy = runtime
        .iter()
        .find(|(k, a)| k == "COPY" && a.starts_with("--from="))
        .expect("the runtime copies from the builder");
    assert!(copy.1.contains("signaldb-operator") && copy.1.contains("/usr/local/bin"));
    assert!(copy.1.contains("/signaldb "), "{}", copy.1);
    let user = runtime.iter().rfind(|(k, _)| k == "USER").expect("a USER");
    let uid = user.1.split(':').next().unwrap();
    assert_eq!(uid, "65532", "the uid the operator's pods run as (runAsUser 65532)");
    let entry = runtime.iter().rfind(|(k, _)| k == "ENTRYPOINT").expect("an ENTRYPOINT");
    assert_eq!(
        entry.1, "[\"signaldb\"]",
        "data-plane pods pass only args: [<role>, --config, ...]"
    );
    let exposed = runtime.iter().find(|(k, _)| k == "EXPOSE").expect("EXPOSE").1.clone();
    for port in ["4317", "4318", "3200", "9091", "8080"] {
        assert!(exposed.split_whitespace().any(|p| p == port), "port {port} not exposed");
    }
}

#[test]
fn dockerignore_keeps_the_context_small_but_buildable() {
    let text = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    let patterns: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for p in ["target/", ".git/"] {
        assert!(patterns.contains(&p), "{p} is not ignored");
    }
    // Sources the build reads must stay in the context.
    for needed in ["dataplane", "operator", "e2e", "examples", "Cargo.toml", "Cargo.lock"] {
        assert!(
            !patterns.iter().any(|p| p.trim_end_matches('/') == needed),
            "{needed} is ignored but the build needs it"
        );
    }
}

#[test]
fn instructions_join_continuations_and_skip_comments() {
    let ins = instructions("# c\nFROM a AS b\nRUN x \\\n    && y\n\nuser 1:1\n");
    assert_eq!(
        ins,
        vec![
            ("FROM".to_owned(), "a AS b".to_owned()),
            ("RUN".to_owned(), "x  && y".to_owned()),
            ("USER".to_owned(), "1:1".to_owned())
        ]
    );
}
