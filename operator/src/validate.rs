//! The first stage of the pipeline: check what the schema cannot (or what an
//! older installed CRD may not), and parse the spec into typed values.
//!
//! A cluster that fails validation is left as it is: nothing is applied, and
//! status says `Degraded` with reason `InvalidSpec` and every problem found.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use kube::ResourceExt;

use crate::config::{self, RenderedConfig};
use crate::crd::{SignalDBCluster, WalSpec};
use crate::names::MAX_CLUSTER_NAME_LEN;
use crate::quantity::Quantity;

/// A spec field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Every problem found in a spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError(pub Vec<FieldError>);

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

/// A spec that passed validation, with its parsed values.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    /// The rendered `signaldb.yaml`.
    pub config: RenderedConfig,
    /// `spec.writer.drainTimeout`.
    pub drain_timeout: Duration,
}

/// Validates a cluster.
pub fn validate(cluster: &SignalDBCluster) -> Result<Validated, ValidationError> {
    let mut errors = Vec::new();
    let mut fail = |field: &str, reason: String| {
        errors.push(FieldError {
            field: field.to_owned(),
            reason,
        })
    };
    let spec = &cluster.spec;

    let name = cluster.name_any();
    if name.len() > MAX_CLUSTER_NAME_LEN {
        fail(
            "metadata.name",
            format!(
                "{name:?} is {} characters; at most {MAX_CLUSTER_NAME_LEN} fit in the names of its Services",
                name.len()
            ),
        );
    }
    if cluster.namespace().is_none() {
        fail("metadata.namespace", "is not set".to_owned());
    }

    match (&spec.catalog.postgres, &spec.catalog.managed) {
        (Some(_), Some(_)) | (None, None) => fail(
            "catalog",
            "set exactly one of catalog.postgres and catalog.managed".to_owned(),
        ),
        (_, Some(managed)) => check_size("catalog.managed.size", &managed.size, &mut fail),
        _ => {}
    }
    match (&spec.storage.s3, &spec.storage.filesystem) {
        (Some(_), Some(_)) | (None, None) => fail(
            "storage",
            "set exactly one of storage.s3 and storage.filesystem".to_owned(),
        ),
        _ => {}
    }

    for (field, wal) in [
        ("acceptor.wal.size", &spec.acceptor.wal),
        ("writer.wal.size", &spec.writer.wal),
        ("querier.wal.size", &spec.querier.wal),
    ] {
        check_wal(field, wal, &mut fail);
    }

    for (field, replicas, min) in [
        ("acceptor.replicas", spec.acceptor.replicas, 0),
        ("writer.replicas", spec.writer.replicas, 1),
        ("querier.replicas", spec.querier.replicas, 0),
        ("router.replicas", spec.router.replicas, 0),
    ] {
        if replicas < min {
            fail(field, format!("is {replicas}; at least {min} is needed"));
        }
    }

    if let Some(a) = &spec.writer.autoscaling {
        if a.min_replicas < 1 {
            fail("writer.autoscaling.minReplicas", "must be at least 1".to_owned());
        }
        if a.max_replicas < a.min_replicas {
            fail(
                "writer.autoscaling.maxReplicas",
                format!("({}) must be at least minReplicas ({})", a.max_replicas, a.min_replicas),
            );
        }
        if a.target_cpu_utilization_percentage.is_none() && a.target_memory_utilization_percentage.is_none() {
            fail(
                "writer.autoscaling",
                "needs targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage".to_owned(),
            );
        }
    }

    if let Some(tls) = &spec.tls
        && !is_dns_subdomain(&tls.secret_name)
    {
        fail(
            "tls.secretName",
            format!(
                "{:?} is not a Secret name: lowercase letters, digits, '-' and '.', at most 253 characters, each dot-separated part starting and ending with a letter or digit",
                tls.secret_name
            ),
        );
    }

    check_peers(
        "networkPolicy.ingressFrom",
        &spec.network_policy.ingress_from,
        &mut fail,
    );
    if let Some(peers) = &spec.network_policy.metrics_from {
        check_peers("networkPolicy.metricsFrom", peers, &mut fail);
    }

    let drain_timeout = match humantime::parse_duration(&spec.writer.drain_timeout) {
        Ok(d) if !d.is_zero() => d,
        Ok(_) => {
            fail("writer.drainTimeout", "must be longer than zero".to_owned());
            Duration::ZERO
        }
        Err(e) => {
            fail(
                "writer.drainTimeout",
                format!("{:?} is not a duration: {e}", spec.writer.drain_timeout),
            );
            Duration::ZERO
        }
    };

    let rendered = match config::render(spec) {
        Ok(r) => Some(r),
        Err(e) => {
            fail(&e.field, e.reason);
            None
        }
    };

    match rendered {
        Some(config) if errors.is_empty() => Ok(Validated { config, drain_timeout }),
        _ => Err(ValidationError(errors)),
    }
}

/// Whether `name` is a DNS subdomain name (RFC 1123), as the names of
/// Secrets and most other Kubernetes objects must be; the same rule as the
/// CRD's pattern (`crd::DNS_SUBDOMAIN_PATTERN`), checked again for an older
/// installed CRD.
pub fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            let bytes = label.as_bytes();
            let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
            bytes.first().is_some_and(alnum)
                && bytes.last().is_some_and(alnum)
                && bytes.iter().all(|b| alnum(b) || *b == b'-')
        })
}

fn check_wal(field: &str, wal: &WalSpec, fail: &mut impl FnMut(&str, String)) {
    check_size(field, &wal.size, fail);
    if let Some(class) = &wal.storage_class_name
        && class.is_empty()
    {
        fail(field, "storageClassName may not be empty".to_owned());
    }
}

/// What the API server would refuse in a NetworkPolicy peer, caught before
/// anything is applied.
fn check_peers(field: &str, peers: &[NetworkPolicyPeer], fail: &mut impl FnMut(&str, String)) {
    for (i, peer) in peers.iter().enumerate() {
        let field = format!("{field}[{i}]");
        let selects = peer.pod_selector.is_some() || peer.namespace_selector.is_some();
        match (&peer.ip_block, selects) {
            (None, false) => fail(
                &field,
                "names no peer: set podSelector, namespaceSelector or ipBlock".to_owned(),
            ),
            (Some(_), true) => fail(
                &field,
                "ipBlock cannot be combined with podSelector or namespaceSelector".to_owned(),
            ),
            (Some(block), false) => {
                let Some(net) = parse_cidr(&block.cidr) else {
                    fail(
                        &format!("{field}.ipBlock.cidr"),
                        format!("{:?} is not a CIDR such as 10.0.0.0/8", block.cidr),
                    );
                    continue;
                };
                for except in block.except.iter().flatten() {
                    match parse_cidr(except) {
                        Some(inner) if contains(net, inner) => {}
                        _ => fail(
                            &format!("{field}.ipBlock.except"),
                            format!("{except:?} is not a CIDR within {}", block.cidr),
                        ),
                    }
                }
            }
            (None, true) => {}
        }
    }
}

/// `10.0.0.0/8` or `fd00::/8` as (address, prefix length).
fn parse_cidr(cidr: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = cidr.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((addr, len))
}

/// Whether the network `inner` lies within `outer`.
fn contains(outer: (IpAddr, u8), inner: (IpAddr, u8)) -> bool {
    let bits = |a: IpAddr| match a {
        IpAddr::V4(v4) => u128::from(v4.to_bits()) << 96,
        IpAddr::V6(v6) => v6.to_bits(),
    };
    if outer.0.is_ipv4() != inner.0.is_ipv4() || inner.1 < outer.1 {
        return false;
    }
    // IPv4 addresses sit in the top 32 bits, so a prefix counts from the top
    // for both families.
    let mask = match outer.1 {
        0 => 0,
        len => u128::MAX << (128 - u32::from(len)),
    };
    bits(outer.0) & mask == bits(inner.0) & mask
}

fn check_size(field: &str, size: &str, fail: &mut impl FnMut(&str, String)) {
    match Quantity::parse(size) {
        Some(q) if !q.is_zero() => {}
        Some(_) => fail(field, "must be larger than zero".to_owned()),
        None => fail(field, format!("{size:?} is not a quantity such as 10Gi or 500Mi")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ManagedCatalogSpec;

    fn cluster(spec: serde_json::Value) -> SignalDBCluster {
        let mut c = SignalDBCluster::new("demo", serde_json::from_value(spec).unwrap());
        c.metadata.namespace = Some("ns".into());
        c
    }

    fn minimal() -> serde_json::Value {
        serde_json::json!({
            "catalog": {"managed": {}},
            "storage": {"filesystem": {"claimName": "shared"}},
        })
    }

    #[test]
    fn minimal_spec_is_valid() {
        let v = validate(&cluster(minimal())).unwrap();
        assert_eq!(v.drain_timeout, Duration::from_secs(15 * 60));
        assert!(v.config.yaml.contains("file:///var/lib/signaldb/objects"));
    }

    #[test]
    fn reports_every_problem() {
        let mut c = cluster(minimal());
        c.spec.catalog.postgres =
            Some(serde_json::from_value(serde_json::json!({"urlSecretRef": {"name": "pg"}})).unwrap());
        c.spec.catalog.managed = Some(ManagedCatalogSpec::default());
        c.spec.writer.wal.size = "lots".into();
        c.spec.acceptor.wal.size = "0".into();
        c.spec.writer.replicas = 0;
        c.spec.writer.drain_timeout = "soon".into();
        c.spec.writer.autoscaling =
            Some(serde_json::from_value(serde_json::json!({"minReplicas": 3, "maxReplicas": 2})).unwrap());
        c.spec.limits.max_request_size = Some("big".into());
        c.metadata.name = Some("x".repeat(50));
        let e = validate(&c).unwrap_err();
        let fields: Vec<&str> = e.0.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "metadata.name",
                "catalog",
                "acceptor.wal.size",
                "writer.wal.size",
                "writer.replicas",
                "writer.autoscaling.maxReplicas",
                "writer.autoscaling",
                "writer.drainTimeout",
                "limits.maxRequestSize",
            ]
        );
        let text = e.to_string();
        assert!(text.contains("\"lots\" is not a quantity"), "{text}");
        assert!(text.contains("must be larger than zero"), "{text}");
    }

    #[test]
    fn tls_secret_name_must_be_a_secret_name() {
        let mut c = cluster(minimal());
        for good in ["signaldb-tls", "a", "tls.example.com", "0-x.y9", &"a".repeat(253)] {
            c.spec.tls = Some(crate::crd::TlsSpec {
                secret_name: good.to_owned(),
            });
            assert!(validate(&c).is_ok(), "{good:?} refused");
        }
        for bad in [
            "",
            "Signaldb-TLS",
            "tls_cert",
            "-tls",
            "tls-",
            "a..b",
            ".a",
            "a.",
            "tls/x",
            &"a".repeat(254),
        ] {
            c.spec.tls = Some(crate::crd::TlsSpec {
                secret_name: bad.to_owned(),
            });
            let e = validate(&c).unwrap_err();
            let fields: Vec<&str> = e.0.iter().map(|f| f.field.as_str()).collect();
            assert_eq!(fields, ["tls.secretName"], "{bad:?}: {e}");
            assert!(e.to_string().contains("is not a Secret name"), "{e}");
        }
    }

    #[test]
    fn network_policy_peers_are_checked() {
        let mut c = cluster(minimal());
        c.spec.network_policy = serde_json::from_value(serde_json::json!({
            "ingressFrom": [
                {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                {"ipBlock": {"cidr": "fd00::/8"}},
                {"podSelector": {}},
                {},
                {"ipBlock": {"cidr": "10.0.0.0/33"}},
                {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}},
            ],
            "metricsFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}],
        }))
        .unwrap();
        let e = validate(&c).unwrap_err();
        let fields: Vec<&str> = e.0.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "networkPolicy.ingressFrom[3]",
                "networkPolicy.ingressFrom[4].ipBlock.cidr",
                "networkPolicy.ingressFrom[5].ipBlock.except",
                "networkPolicy.metricsFrom[0]",
            ],
            "{e}"
        );
        assert!(e.to_string().contains("names no peer"), "{e}");
        assert!(contains(
            parse_cidr("0.0.0.0/0").unwrap(),
            parse_cidr("1.2.3.4/32").unwrap()
        ));
        assert!(!contains(
            parse_cidr("10.0.0.0/16").unwrap(),
            parse_cidr("10.0.0.0/8").unwrap()
        ));
        assert!(!contains(
            parse_cidr("::/0").unwrap(),
            parse_cidr("10.0.0.0/8").unwrap()
        ));
    }
}
