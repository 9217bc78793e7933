//! Pure checks on objects as the API server returns them (JSON). The
//! scenario fetches; these decide.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::wait::Poll;

/// A condition of an object's status: (status, reason, message).
pub fn condition<'a>(obj: &'a Value, type_: &str) -> Option<(&'a str, &'a str, &'a str)> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
        .map(|c| {
            let field = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("");
            (field("status"), field("reason"), field("message"))
        })
}

fn generation(obj: &Value) -> (Option<i64>, Option<i64>) {
    (
        obj.pointer("/metadata/generation").and_then(Value::as_i64),
        obj.pointer("/status/observedGeneration").and_then(Value::as_i64),
    )
}

/// The operator has seen the latest spec and written its conditions.
pub fn observed(obj: &Value) -> Poll<()> {
    match generation(obj) {
        (Some(g), Some(o)) if o >= g => {
            if ["Ready", "Progressing", "Degraded"]
                .iter()
                .all(|t| condition(obj, t).is_some())
            {
                Poll::Done(())
            } else {
                Poll::NotYet(format!("generation {g} observed, but conditions are missing"))
            }
        }
        (g, o) => Poll::NotYet(format!("generation {g:?}, observed {o:?}")),
    }
}

/// The cluster is observed at its latest generation, Ready and not Degraded.
pub fn ready(obj: &Value) -> Poll<()> {
    if let Poll::NotYet(why) = observed(obj) {
        return Poll::NotYet(why);
    }
    let summary = |t: &str| match condition(obj, t) {
        Some((s, r, m)) => format!("{t}={s} ({r}: {m})"),
        None => format!("{t} missing"),
    };
    let is = |t: &str, s: &str| condition(obj, t).is_some_and(|c| c.0 == s);
    if is("Degraded", "True") {
        return Poll::NotYet(summary("Degraded"));
    }
    if is("Ready", "True") && !is("Progressing", "True") {
        Poll::Done(())
    } else {
        Poll::NotYet(format!("{}; {}", summary("Ready"), summary("Progressing")))
    }
}

/// What the cluster says about its writers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterState {
    pub spec_replicas: i64,
    pub replicas: i64,
    pub ready_replicas: i64,
    /// `status.writer.scaleDown.phase`, while a scale-down is recorded.
    pub scale_down: Option<String>,
    /// The ordinals of the writers a recorded scale-down drains
    /// (`status.writer.scaleDown.draining`): recorded when the scale-down
    /// starts, whether or not those writers can be reached.
    pub draining: Vec<i64>,
}

pub fn writer_state(obj: &Value) -> WriterState {
    let int = |p: &str| obj.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    WriterState {
        spec_replicas: int("/spec/writer/replicas"),
        replicas: int("/status/writer/replicas"),
        ready_replicas: int("/status/writer/readyReplicas"),
        scale_down: obj
            .pointer("/status/writer/scaleDown/phase")
            .and_then(Value::as_str)
            .map(str::to_owned),
        draining: obj
            .pointer("/status/writer/scaleDown/draining")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default(),
    }
}

/// The writers settled at `n`: asked for, running and ready, no scale-down
/// recorded, and the cluster Ready.
pub fn writers_settled(obj: &Value, n: i64) -> Poll<()> {
    let w = writer_state(obj);
    if w.spec_replicas == n && w.replicas == n && w.ready_replicas == n && w.scale_down.is_none() {
        ready(obj)
    } else {
        Poll::NotYet(format!("{w:?}"))
    }
}

/// Why `child` is not properly owned by the cluster with `uid`, if it is not:
/// a controller owner reference to that SignalDBCluster that blocks its
/// owner's deletion (so foreground deletion waits for it).
pub fn ownership_problem(child: &Value, uid: &str) -> Option<String> {
    let name = child.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?");
    let kind = child.get("kind").and_then(Value::as_str).unwrap_or("?");
    let refs = child
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(r) = refs.iter().find(|r| r.get("uid").and_then(Value::as_str) == Some(uid)) else {
        return Some(format!(
            "{kind} {name} has no owner reference to the cluster (uid {uid})"
        ));
    };
    let field = |k: &str| r.get(k).cloned().unwrap_or(Value::Null);
    if field("kind") != "SignalDBCluster" || field("apiVersion") != "signaldb.io/v1alpha1" {
        return Some(format!(
            "{kind} {name}: owner reference names {} {}",
            field("apiVersion"),
            field("kind")
        ));
    }
    if field("controller") != Value::Bool(true) {
        return Some(format!("{kind} {name}: owner reference is not the controller"));
    }
    if field("blockOwnerDeletion") != Value::Bool(true) {
        return Some(format!("{kind} {name}: owner reference does not block owner deletion"));
    }
    None
}

/// Span ids (hex) in `sent` that are not in `got`, sorted.
pub fn missing<'a>(sent: &'a BTreeSet<String>, got: &'a BTreeSet<String>) -> Vec<&'a str> {
    sent.difference(got).map(String::as_str).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cluster(generation: i64, observed: Option<i64>, conditions: Value) -> Value {
        let mut status = json!({ "conditions": conditions, "writer": { "replicas": 2, "readyReplicas": 2 } });
        if let Some(o) = observed {
            status["observedGeneration"] = json!(o);
        }
        json!({
            "apiVersion": "signaldb.io/v1alpha1",
            "kind": "SignalDBCluster",
            "metadata": { "name": "demo", "generation": generation, "uid": "u-1" },
            "spec": { "writer": { "replicas": 2 } },
            "status": status,
        })
    }

    fn conds(ready: &str, progressing: &str, degraded: &str) -> Value {
        json!([
            { "type": "Ready", "status": ready, "reason": "R", "message": "ready: writer 1/2" },
            { "type": "Progressing", "status": progressing, "reason": "P", "message": "rolling" },
            { "type": "Degraded", "status": degraded, "reason": "D", "message": "bad" },
        ])
    }

    #[test]
    fn ready_needs_the_latest_generation() {
        let stale = cluster(3, Some(2), conds("True", "False", "False"));
        assert_eq!(
            ready(&stale),
            Poll::NotYet("generation Some(3), observed Some(2)".into())
        );
        let fresh = cluster(3, Some(3), conds("True", "False", "False"));
        assert_eq!(ready(&fresh), Poll::Done(()));
        let unseen = cluster(1, None, json!([]));
        assert!(matches!(ready(&unseen), Poll::NotYet(_)));
    }

    #[test]
    fn ready_is_not_degraded_and_not_progressing() {
        let degraded = cluster(1, Some(1), conds("True", "False", "True"));
        assert_eq!(ready(&degraded), Poll::NotYet("Degraded=True (D: bad)".into()));
        let rolling = cluster(1, Some(1), conds("True", "True", "False"));
        assert_eq!(
            ready(&rolling),
            Poll::NotYet("Ready=True (R: ready: writer 1/2); Progressing=True (P: rolling)".into())
        );
        let not_ready = cluster(1, Some(1), conds("False", "False", "False"));
        assert!(matches!(ready(&not_ready), Poll::NotYet(m) if m.starts_with("Ready=False")));
    }

    #[test]
    fn observed_needs_every_condition() {
        let partial = cluster(1, Some(1), json!([{ "type": "Ready", "status": "False" }]));
        assert!(matches!(observed(&partial), Poll::NotYet(m) if m.contains("conditions are missing")));
        assert_eq!(
            observed(&cluster(1, Some(1), conds("False", "True", "False"))),
            Poll::Done(())
        );
    }

    #[test]
    fn writer_state_and_settling() {
        let mut c = cluster(2, Some(2), conds("True", "False", "False"));
        assert_eq!(writers_settled(&c, 2), Poll::Done(()));
        assert!(matches!(writers_settled(&c, 1), Poll::NotYet(_)));
        c["spec"]["writer"]["replicas"] = json!(1);
        // The status as the operator writes it (its own type, serialised).
        let scale_down = signaldb_operator::crd::ScaleDownStatus {
            phase: signaldb_operator::crd::ScaleDownPhase::Draining,
            from_replicas: 3,
            to_replicas: 1,
            draining: vec![1, 2],
            started_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()),
            reason: None,
            message: Some("draining writer(s) 1, 2".into()),
        };
        c["status"]["writer"]["scaleDown"] = serde_json::to_value(&scale_down).unwrap();
        let w = writer_state(&c);
        assert_eq!(w.scale_down.as_deref(), Some("Draining"));
        assert_eq!(w.draining, vec![1, 2]);
        assert!(matches!(writers_settled(&c, 1), Poll::NotYet(_)));
    }

    #[test]
    fn ownership_needs_a_blocking_controller_reference() {
        let owned =
            |r: Value| json!({ "kind": "ConfigMap", "metadata": { "name": "demo-config", "ownerReferences": [r] } });
        let good = json!({ "apiVersion": "signaldb.io/v1alpha1", "kind": "SignalDBCluster", "name": "demo",
                           "uid": "u-1", "controller": true, "blockOwnerDeletion": true });
        assert_eq!(ownership_problem(&owned(good.clone()), "u-1"), None);
        let mut no_block = good.clone();
        no_block["blockOwnerDeletion"] = json!(false);
        assert!(
            ownership_problem(&owned(no_block), "u-1")
                .unwrap()
                .contains("does not block")
        );
        let mut not_controller = good.clone();
        not_controller.as_object_mut().unwrap().remove("controller");
        assert!(
            ownership_problem(&owned(not_controller), "u-1")
                .unwrap()
                .contains("not the controller")
        );
        assert!(
            ownership_problem(&owned(good), "u-2")
                .unwrap()
                .contains("no owner reference")
        );
        let orphan = json!({ "kind": "Service", "metadata": { "name": "x" } });
        assert!(ownership_problem(&orphan, "u-1").is_some());
    }

    #[test]
    fn missing_lists_what_was_not_read_back() {
        let sent: BTreeSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let got: BTreeSet<String> = ["a", "c", "z"].iter().map(|s| s.to_string()).collect();
        assert_eq!(missing(&sent, &got), vec!["b"]);
        assert!(missing(&sent, &sent).is_empty());
    }
}
