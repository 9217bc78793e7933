//! Names and labels of the objects a `SignalDBCluster` owns.
//!
//! Every child is named `<cluster>-<part>` and carries the recommended
//! `app.kubernetes.io/*` labels, so `kubectl get all -l
//! app.kubernetes.io/instance=<cluster>` shows a whole cluster and the
//! operator can find the children it no longer wants.

use std::collections::BTreeMap;

use signaldb_config::Role;

/// The field manager of every server-side apply, and the `managed-by` label.
pub const MANAGER: &str = "signaldb-operator";

/// `app.kubernetes.io/name` of every child.
pub const APP_NAME: &str = "signaldb";

pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_PART_OF: &str = "app.kubernetes.io/part-of";
pub const LABEL_VERSION: &str = "app.kubernetes.io/version";

/// Pod-template annotation holding the hash of the rendered `signaldb.yaml`;
/// a new hash rolls the pods.
pub const ANNOTATION_CONFIG_HASH: &str = "signaldb.io/config-hash";

/// Component label of the operator-run PostgreSQL.
pub const COMPONENT_CATALOG: &str = "catalog";

/// The label (key, value) every operator pod carries: the Helm chart's
/// selector label. The clusters' NetworkPolicies admit the operator's drain
/// calls from pods with it.
pub const OPERATOR_POD_LABEL: (&str, &str) = (LABEL_NAME, "signaldb-operator");

/// The label Kubernetes puts on every namespace with its name.
pub const LABEL_NAMESPACE_NAME: &str = "kubernetes.io/metadata.name";

/// Key of the generated password in the managed catalog's Secret.
pub const CATALOG_PASSWORD_KEY: &str = "password";

/// Key of the cluster token in its Secret.
pub const CLUSTER_TOKEN_KEY: &str = "token";

/// Key of the PEM certificate chain in a `kubernetes.io/tls` Secret (as
/// cert-manager writes it).
pub const TLS_CERT_KEY: &str = "tls.crt";

/// Key of the PEM private key in a `kubernetes.io/tls` Secret.
pub const TLS_PRIVATE_KEY_KEY: &str = "tls.key";

/// Database, user of the managed catalog.
pub const CATALOG_DB: &str = "signaldb";

/// Names of one cluster's children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    cluster: String,
}

impl Names {
    pub fn new(cluster: impl Into<String>) -> Self {
        Self {
            cluster: cluster.into(),
        }
    }

    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// StatefulSet or Deployment of a role, and its client Service.
    pub fn role(&self, role: Role) -> String {
        format!("{}-{}", self.cluster, role.as_str())
    }

    /// Headless Service of a role (the StatefulSet's `serviceName`).
    pub fn headless(&self, role: Role) -> String {
        format!("{}-{}-headless", self.cluster, role.as_str())
    }

    /// Pod name of a StatefulSet ordinal.
    pub fn pod(&self, role: Role, ordinal: i32) -> String {
        format!("{}-{ordinal}", self.role(role))
    }

    /// ConfigMap holding `signaldb.yaml`.
    pub fn config(&self) -> String {
        format!("{}-config", self.cluster)
    }

    /// ServiceAccount, Role and RoleBinding of the pods.
    pub fn service_account(&self) -> String {
        self.cluster.clone()
    }

    /// NetworkPolicy of a component's pods (a role, or the managed catalog).
    pub fn network_policy(&self, component: &str) -> String {
        format!("{}-{component}", self.cluster)
    }

    /// HorizontalPodAutoscaler of the writers.
    pub fn writer_hpa(&self) -> String {
        format!("{}-writer", self.cluster)
    }

    /// StatefulSet, Service and Secret of the managed catalog.
    pub fn catalog(&self) -> String {
        format!("{}-catalog", self.cluster)
    }

    /// The Secret holding the cluster token: role-to-role trust, and what
    /// the operator presents to start a writer's drain.
    pub fn cluster_token(&self) -> String {
        format!("{}-cluster-token", self.cluster)
    }

    /// Labels that select every child of this cluster.
    pub fn instance_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_NAME.to_owned(), APP_NAME.to_owned()),
            (LABEL_INSTANCE.to_owned(), self.cluster.clone()),
        ])
    }

    /// Label selector (string form) of every child of this cluster.
    pub fn instance_selector(&self) -> String {
        selector_string(&self.instance_labels())
    }

    /// Labels selecting the pods of one component.
    pub fn selector_labels(&self, component: &str) -> BTreeMap<String, String> {
        let mut labels = self.instance_labels();
        labels.insert(LABEL_COMPONENT.to_owned(), component.to_owned());
        labels
    }

    /// Label selector (string form) of one component's pods.
    pub fn selector(&self, component: &str) -> String {
        selector_string(&self.selector_labels(component))
    }

    /// Labels of a child object belonging to `component` (or to the whole
    /// cluster when `None`).
    pub fn labels(&self, component: Option<&str>) -> BTreeMap<String, String> {
        let mut labels = match component {
            Some(c) => self.selector_labels(c),
            None => self.instance_labels(),
        };
        labels.insert(LABEL_MANAGED_BY.to_owned(), MANAGER.to_owned());
        labels.insert(LABEL_PART_OF.to_owned(), APP_NAME.to_owned());
        labels
    }
}

/// `k1=v1,k2=v2`, in key order.
pub fn selector_string(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The longest child-name suffix: `-acceptor-headless`. Service names are
/// DNS labels (63 characters), so cluster names may be at most this long.
pub const MAX_CLUSTER_NAME_LEN: usize = 63 - "-acceptor-headless".len();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_selectors() {
        let n = Names::new("demo");
        assert_eq!(n.role(Role::Writer), "demo-writer");
        assert_eq!(n.headless(Role::Acceptor), "demo-acceptor-headless");
        assert_eq!(n.pod(Role::Writer, 2), "demo-writer-2");
        assert_eq!(
            n.selector("writer"),
            "app.kubernetes.io/component=writer,app.kubernetes.io/instance=demo,app.kubernetes.io/name=signaldb"
        );
        assert_eq!(MAX_CLUSTER_NAME_LEN, 45);
        let l = n.labels(None);
        assert_eq!(l.get(LABEL_MANAGED_BY).map(String::as_str), Some(MANAGER));
        assert!(!l.contains_key(LABEL_COMPONENT));
    }
}
