//! The Kubernetes permissions the operator uses, one rule per call site
//! group. The Helm chart grants exactly these (a test renders the chart and
//! compares), so the operator's ServiceAccount can do what the code does and
//! nothing more.

/// One RBAC rule: an API group, resources and verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub api_group: &'static str,
    pub resources: &'static [&'static str],
    pub verbs: &'static [&'static str],
    /// Why the operator needs it.
    pub why: &'static str,
}

/// Verbs for the children the operator applies with server-side apply: apply
/// is a PATCH that creates missing objects (so `create` too); `list` and
/// `watch` feed the controller and the cleanup of children no longer wanted.
const CHILD_VERBS: &[&str] = &["get", "list", "watch", "create", "patch", "delete"];

/// What the operator needs in every namespace it watches.
pub const NAMESPACED_RULES: &[Rule] = &[
    Rule {
        api_group: "signaldb.io",
        resources: &["signaldbclusters"],
        verbs: &["get", "list", "watch"],
        why: "the controller watches SignalDBClusters",
    },
    Rule {
        api_group: "signaldb.io",
        resources: &["signaldbclusters/status"],
        verbs: &["get", "patch", "update"],
        why: "status, and the scale-down record kept in status",
    },
    Rule {
        api_group: "",
        resources: &["configmaps", "services", "serviceaccounts"],
        verbs: CHILD_VERBS,
        why: "children: config, Services, the pods' ServiceAccount",
    },
    Rule {
        api_group: "apps",
        resources: &["statefulsets", "deployments"],
        verbs: CHILD_VERBS,
        why: "children: role workloads (StatefulSets are deleted with orphan propagation to grow claims)",
    },
    Rule {
        api_group: "policy",
        resources: &["poddisruptionbudgets"],
        verbs: CHILD_VERBS,
        why: "children: one PodDisruptionBudget per role",
    },
    Rule {
        api_group: "autoscaling",
        resources: &["horizontalpodautoscalers"],
        verbs: CHILD_VERBS,
        why: "children: the writer HPA when autoscaling is on",
    },
    Rule {
        api_group: "networking.k8s.io",
        resources: &["networkpolicies"],
        verbs: CHILD_VERBS,
        why: "children: one NetworkPolicy per role (and the managed catalog) unless networkPolicy.enabled is false",
    },
    Rule {
        api_group: "rbac.authorization.k8s.io",
        resources: &["roles", "rolebindings"],
        verbs: CHILD_VERBS,
        why: "children: the pods' Role and RoleBinding",
    },
    Rule {
        api_group: "discovery.k8s.io",
        resources: &["endpointslices"],
        verbs: &["get", "list", "watch"],
        why: "held so that the operator may grant it to the pods' Role (RBAC forbids granting more than one holds)",
    },
    Rule {
        api_group: "",
        resources: &["secrets"],
        verbs: &["get", "create", "delete"],
        why: "the managed catalog's generated password and the cluster token (made once, read to start drains)",
    },
    Rule {
        api_group: "",
        resources: &["persistentvolumeclaims"],
        verbs: &["get", "list", "patch"],
        why: "expanding WAL claims when wal.size grows",
    },
    Rule {
        api_group: "",
        resources: &["pods"],
        verbs: &["get", "list", "delete"],
        why: "finding writer pods to drain, restarting a drained writer that stays",
    },
    Rule {
        api_group: "events.k8s.io",
        resources: &["events"],
        verbs: &["create", "patch"],
        why: "events on SignalDBClusters",
    },
];

/// What the operator needs in its own namespace for leader election.
pub const LEADER_ELECTION_RULES: &[Rule] = &[Rule {
    api_group: "coordination.k8s.io",
    resources: &["leases"],
    verbs: &["get", "create", "update"],
    why: "the leader Lease",
}];

/// Every (group, resource, verb) that `rules` grant, sorted.
pub fn triples(rules: &[Rule]) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = rules
        .iter()
        .flat_map(|r| {
            r.resources.iter().flat_map(move |res| {
                r.verbs
                    .iter()
                    .map(move |v| (r.api_group.to_owned(), (*res).to_owned(), (*v).to_owned()))
            })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_wildcards_and_no_escalation_verbs() {
        for (group, resource, verb) in triples(NAMESPACED_RULES)
            .into_iter()
            .chain(triples(LEADER_ELECTION_RULES))
        {
            assert_ne!(group, "*");
            assert_ne!(resource, "*");
            assert!(
                !["*", "escalate", "bind", "impersonate"].contains(&verb.as_str()),
                "{group}/{resource}: {verb}"
            );
        }
        assert!(triples(NAMESPACED_RULES).contains(&("signaldb.io".into(), "signaldbclusters".into(), "watch".into())));
    }
}
