//! The Argo CD health check for SignalDBCluster, run with Lua 5.1 (the
//! language version Argo CD's interpreter implements) on every case of its
//! `health_test.yaml`, the way Argo CD's own resource-customization tests
//! run: the object in the global `obj`, the script's returned table compared
//! by `status` and `message`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use mlua::{Lua, LuaSerdeExt, Table};
use serde_json::Value;

use crate::root;

fn dir() -> PathBuf {
    root().join("argocd/resource_customizations/signaldb.io/SignalDBCluster")
}

fn health(lua_source: &str, obj: &Value) -> (String, String) {
    let lua = Lua::new();
    let value = lua.to_value(obj).unwrap();
    lua.globals().set("obj", value).unwrap();
    let hs: Table = lua.load(lua_source).set_name("health.lua").eval().unwrap();
    (hs.get("status").unwrap(), hs.get("message").unwrap())
}

fn yaml(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_case_of_health_test_yaml_passes() {
    let script = std::fs::read_to_string(dir().join("health.lua")).unwrap();
    let tests = yaml(&dir().join("health_test.yaml"));
    let cases = tests["tests"].as_array().unwrap();
    let mut statuses = BTreeSet::new();
    let mut inputs = BTreeSet::new();
    for case in cases {
        let input = case["inputPath"].as_str().unwrap();
        let obj = yaml(&dir().join(input));
        assert_eq!(obj["kind"], "SignalDBCluster", "{input}");
        let want_status = case["healthStatus"]["status"].as_str().unwrap();
        let want_message = case["healthStatus"]["message"].as_str().unwrap();
        let (status, message) = health(&script, &obj);
        assert_eq!(
            (status.as_str(), message.as_str()),
            (want_status, want_message),
            "{input}"
        );
        statuses.insert(status);
        inputs.insert(input.to_owned());
    }
    let all: BTreeSet<String> = ["Healthy", "Progressing", "Degraded", "Suspended"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(statuses, all, "the cases cover every health status");
    // Every testdata file is a case.
    for entry in std::fs::read_dir(dir().join("testdata")).unwrap() {
        let name = format!("testdata/{}", entry.unwrap().file_name().to_string_lossy());
        assert!(inputs.contains(&name), "{name} is not used by health_test.yaml");
    }
}

#[test]
fn odd_objects_never_break_the_script() {
    let script = std::fs::read_to_string(dir().join("health.lua")).unwrap();
    let cases = [
        (serde_json::json!({}), "Progressing"),
        (
            serde_json::json!({"metadata": {"generation": 2}, "status": null}),
            "Progressing",
        ),
        (
            serde_json::json!({"metadata": {"generation": 2}, "status": {"observedGeneration": 2, "conditions": null}}),
            "Progressing",
        ),
        (
            serde_json::json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1,
                "conditions": [null, 3, {"type": "Ready", "status": "True"}]}}),
            "Healthy",
        ),
        (
            serde_json::json!({"spec": {"paused": true}, "status": "garbage"}),
            "Suspended",
        ),
    ];
    for (obj, want) in cases {
        assert_eq!(health(&script, &obj).0, want, "{obj}");
    }
}

#[test]
fn the_generation_rule_uses_whole_numbers_in_messages() {
    let script = std::fs::read_to_string(dir().join("health.lua")).unwrap();
    let obj = serde_json::json!({"metadata": {"generation": 12}, "status": {"observedGeneration": 11}});
    assert_eq!(
        health(&script, &obj),
        (
            "Progressing".to_owned(),
            "Waiting for the operator to observe generation 12".to_owned()
        )
    );
}
