//! The YAML users copy from `docs/gitops.md` parses, names what it must, and
//! carries the current health check.

use serde_json::Value;

use crate::root;

/// The ```yaml blocks of a Markdown file.
fn yaml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_start() == "```yaml" => current = Some(String::new()),
            Some(_) if line.trim_start() == "```" => blocks.extend(current.take()),
            Some(text) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    blocks
}

fn docs(name: &str) -> String {
    std::fs::read_to_string(root().join("docs").join(name)).unwrap()
}

#[test]
fn gitops_yaml_blocks_are_valid_and_complete() {
    let blocks = yaml_blocks(&docs("gitops.md"));
    assert!(blocks.len() >= 3, "found {} yaml blocks", blocks.len());
    let mut applications = Vec::new();
    let mut config_maps = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        for doc in serde_yaml_ng::Deserializer::from_str(b) {
            let v: Value =
                serde::Deserialize::deserialize(doc).unwrap_or_else(|e| panic!("yaml block {i} does not parse: {e}"));
            match v["kind"].as_str() {
                Some("Application") => applications.push(v),
                Some("ConfigMap") => config_maps.push(v),
                _ => {}
            }
        }
    }
    assert!(
        applications.len() >= 2,
        "an Application for the chart and one for a cluster"
    );
    for app in &applications {
        let name = &app["metadata"]["name"];
        assert_eq!(app["apiVersion"], "argoproj.io/v1alpha1", "{name}");
        assert!(app["spec"]["destination"].is_object(), "{name}: no destination");
        assert!(
            app["spec"]["source"].is_object() || app["spec"]["sources"].is_array(),
            "{name}: no source"
        );
    }
    let chart_app = applications
        .iter()
        .find(|a| a["spec"]["source"]["path"] == "charts/signaldb-operator")
        .expect("an Application installs charts/signaldb-operator");
    assert!(chart_app["spec"]["source"]["helm"].is_object());
    let ignores = applications
        .iter()
        .flat_map(|a| a["spec"]["ignoreDifferences"].as_array().cloned().unwrap_or_default())
        .collect::<Vec<_>>();
    assert!(
        ignores.iter().any(|i| i["group"] == "signaldb.io"
            && i["kind"] == "SignalDBCluster"
            && i["jsonPointers"]
                .as_array()
                .is_some_and(|p| p.contains(&Value::from("/spec/writer/replicas")))),
        "ignoreDifferences for autoscaled writer replicas: {ignores:?}"
    );
    // The argocd-cm example carries the health check as it is in the repository.
    let script =
        std::fs::read_to_string(root().join("argocd/resource_customizations/signaldb.io/SignalDBCluster/health.lua"))
            .unwrap();
    let inline = config_maps
        .iter()
        .find_map(|c| c["data"]["resource.customizations.health.signaldb.io_SignalDBCluster"].as_str())
        .expect("an argocd-cm example with the health check");
    assert_eq!(
        inline.trim_end(),
        script.trim_end(),
        "docs/gitops.md has an old health.lua"
    );
}

#[test]
fn markdown_yaml_blocks_are_found() {
    let md = "text\n```yaml\na: 1\n```\n```sh\nls\n```\n  ```yaml\nb: 2\n  ```\n";
    assert_eq!(yaml_blocks(md), vec!["a: 1\n".to_owned(), "b: 2\n".to_owned()]);
}
