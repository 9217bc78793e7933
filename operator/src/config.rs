//! Renders each pod's `signaldb.yaml` from the spec, with the data plane's
//! own configuration types (`signaldb_config::Config`): what the operator
//! writes is exactly what the pods parse, and is validated the same way.
//!
//! Only keys that differ from the data plane's defaults are written, so the
//! ConfigMap stays short and a new data-plane default reaches the pods
//! without an operator release.

use std::path::PathBuf;

use serde_yaml_ng::{Mapping, Value};
use sha2::{Digest, Sha256};
use signaldb_config::{ByteSize, Config, TenantId};

use crate::crd::SignalDBClusterSpec;

/// Data directory of every pod (an `emptyDir`).
pub const DATA_DIR: &str = "/var/lib/signaldb";
/// WAL directory of every stateful pod (its persistent volume).
pub const WAL_DIR: &str = "/var/lib/signaldb/wal";
/// Mount point of the shared volume of `storage.filesystem`.
pub const OBJECTS_DIR: &str = "/var/lib/signaldb/objects";
/// Directory of the mounted ConfigMap.
pub const CONFIG_DIR: &str = "/etc/signaldb";
/// Where pods mount the cluster token Secret (read-only).
pub const CLUSTER_TOKEN_DIR: &str = "/var/run/signaldb/cluster-token";
/// Where acceptor and router pods mount the `spec.tls` Secret (read-only,
/// the whole volume, so that a renewed certificate reaches running pods).
pub const TLS_DIR: &str = "/var/run/signaldb/tls";
/// File name of the configuration in the ConfigMap.
pub const CONFIG_FILE: &str = "signaldb.yaml";

/// Keys the operator sets itself (per pod, through the environment, or
/// because the pod layout depends on them); `configOverrides` may not set
/// them.
pub const OPERATOR_OWNED_KEYS: &[&str] = &[
    "node_id",
    "data_dir",
    "wal.dir",
    "catalog.url",
    "storage.url",
    "storage.s3.access_key_id",
    "storage.s3.secret_access_key",
    "acceptor.grpc_addr",
    "acceptor.http_addr",
    "writer.flight_addr",
    "writer.advertise_addr",
    "querier.flight_addr",
    "querier.advertise_addr",
    "router.http_addr",
    "router.flight_sql_addr",
    "admin.addr",
    "discovery.kubernetes",
    "cluster.token_file",
    "tls.cert_file",
    "tls.key_file",
];

/// What to use instead of an operator-owned key, where the spec has a field
/// for it.
fn owned_key_hint(key: &str) -> &'static str {
    match key {
        "tls.cert_file" | "tls.key_file" => " (set spec.tls.secretName)",
        _ => "",
    }
}

/// The rendered configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedConfig {
    /// The typed configuration the pods will load (before their per-pod
    /// environment overrides).
    pub config: Config,
    /// The `signaldb.yaml` text: the keys that differ from the defaults.
    pub yaml: String,
    /// First 16 hex digits of the SHA-256 of `yaml`.
    pub hash: String,
}

/// Why a configuration could not be rendered. `field` names the spec field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {reason}")]
pub struct RenderError {
    pub field: String,
    pub reason: String,
}

fn err(field: &str, reason: impl Into<String>) -> RenderError {
    RenderError {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

fn duration(field: &str, value: &str) -> Result<std::time::Duration, RenderError> {
    humantime::parse_duration(value.trim())
        .map_err(|e| err(field, format!("{value:?} is not a duration such as 14d or 720h: {e}")))
}

fn byte_size(field: &str, value: Option<&String>) -> Result<Option<ByteSize>, RenderError> {
    value
        .map(|v| v.parse::<ByteSize>().map_err(|e| err(field, e.to_string())))
        .transpose()
}

/// Renders the configuration of a cluster.
pub fn render(spec: &SignalDBClusterSpec) -> Result<RenderedConfig, RenderError> {
    let mut c = Config {
        data_dir: PathBuf::from(DATA_DIR),
        ..Config::default()
    };
    c.wal.dir = Some(PathBuf::from(WAL_DIR));
    c.cluster.token_file = Some(PathBuf::from(format!(
        "{CLUSTER_TOKEN_DIR}/{}",
        crate::names::CLUSTER_TOKEN_KEY
    )));

    if let Some(pg) = &spec.catalog.postgres
        && let Some(max) = pg.max_connections
    {
        c.catalog.max_connections = max;
    }

    if let Some(s3) = &spec.storage.s3 {
        c.storage.url = Some(match &s3.prefix {
            Some(prefix) => format!("s3://{}/{prefix}", s3.bucket),
            None => format!("s3://{}", s3.bucket),
        });
        c.storage.s3.endpoint = s3.endpoint.clone();
        c.storage.s3.region = s3.region.clone();
        c.storage.s3.path_style = s3.path_style;
        c.storage.s3.allow_http = s3.endpoint.as_deref().is_some_and(|e| e.starts_with("http://"));
    } else if spec.storage.filesystem.is_some() {
        c.storage.url = Some(format!("file://{OBJECTS_DIR}"));
    }

    c.acceptor.replication_factor = spec.writer.replication_factor;
    let limits = &spec.limits;
    if let Some(v) = byte_size("limits.maxRequestSize", limits.max_request_size.as_ref())? {
        c.acceptor.max_request_size = v;
    }
    if let Some(v) = byte_size("limits.maxPending", limits.max_pending.as_ref())? {
        c.acceptor.max_pending = v;
    }
    if let Some(v) = byte_size("limits.maxAttributeValueSize", limits.max_attribute_value_size.as_ref())? {
        c.acceptor.max_attribute_value_size = v;
    }
    if let Some(v) = byte_size("limits.writerMaxBufferSize", limits.writer_max_buffer_size.as_ref())? {
        c.writer.max_buffer_size = v;
    }
    if let Some(v) = &limits.retention {
        c.limits.defaults.retention = duration("limits.retention", v)?;
    }

    c.tenancy.multi_tenant = spec.tenancy.multi_tenant;
    c.tenancy.default_tenant =
        TenantId::new(spec.tenancy.default_tenant.clone()).map_err(|e| err("tenancy.defaultTenant", e.to_string()))?;
    c.tenancy.api_keys = spec.tenancy.api_keys;

    // One file for every role: writers and queriers serve no client port and
    // never load these files (nor mount the Secret); acceptors and routers
    // find them where the Secret is mounted.
    if spec.tls.is_some() {
        c.tls.cert_file = Some(PathBuf::from(format!("{TLS_DIR}/{}", crate::names::TLS_CERT_KEY)));
        c.tls.key_file = Some(PathBuf::from(format!(
            "{TLS_DIR}/{}",
            crate::names::TLS_PRIVATE_KEY_KEY
        )));
    }

    let mut tree =
        serde_yaml_ng::to_value(&c).map_err(|e| err("spec", format!("cannot serialise the configuration: {e}")))?;
    if let Some(overrides) = &spec.config_overrides {
        let overrides: Value =
            serde_json::from_value(overrides.clone()).map_err(|e| err("configOverrides", e.to_string()))?;
        let Value::Mapping(map) = overrides else {
            return Err(err("configOverrides", "must be an object"));
        };
        for key in OPERATOR_OWNED_KEYS {
            if has_path(&map, key) {
                return Err(err(
                    "configOverrides",
                    format!(
                        "{key} is set by the operator and may not be overridden{}",
                        owned_key_hint(key)
                    ),
                ));
            }
        }
        merge(&mut tree, Value::Mapping(map));
    }
    let full =
        serde_yaml_ng::to_string(&tree).map_err(|e| err("spec", format!("cannot serialise the configuration: {e}")))?;
    let mut config = Config::from_yaml(&full).map_err(|e| err("configOverrides", e.to_string()))?;
    // After the overrides: a listed tenant's other limits are the defaults
    // as overridden (or its own override's, if `configOverrides` has one).
    for (tenant, v) in &spec.limits.tenant_retention {
        let field = format!("limits.tenantRetention.{tenant}");
        let id = TenantId::new(tenant.clone()).map_err(|e| err(&field, e.to_string()))?;
        let retention = duration(&field, v)?;
        let defaults = config.limits.defaults.clone();
        config.limits.overrides.entry(id).or_insert(defaults).retention = retention;
    }

    let defaults = serde_yaml_ng::to_value(Config::default())
        .map_err(|e| err("spec", format!("cannot serialise the defaults: {e}")))?;
    let ours = serde_yaml_ng::to_value(&config)
        .map_err(|e| err("spec", format!("cannot serialise the configuration: {e}")))?;
    let minimal = prune_defaults(&ours, &defaults).unwrap_or(Value::Mapping(Mapping::new()));
    let yaml = serde_yaml_ng::to_string(&minimal)
        .map_err(|e| err("spec", format!("cannot serialise the configuration: {e}")))?;
    // The pods must read back exactly this configuration.
    let reparsed = Config::from_yaml(&yaml).map_err(|e| err("spec", e.to_string()))?;
    if reparsed != config {
        return Err(err(
            "spec",
            "the rendered signaldb.yaml does not read back as the same configuration",
        ));
    }
    let hash = config_hash(&yaml);
    Ok(RenderedConfig { config, yaml, hash })
}

/// First 16 hex digits of the SHA-256 of the text.
pub fn config_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(&digest[..8])
}

fn has_path(map: &Mapping, dotted: &str) -> bool {
    let mut node = map;
    let parts: Vec<&str> = dotted.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        match node.get(*part) {
            None => return false,
            Some(v) if i + 1 == parts.len() => return !v.is_null(),
            Some(Value::Mapping(m)) => node = m,
            Some(_) => return true,
        }
    }
    false
}

/// Deep-merges `over` into `base`: mappings key by key, anything else replaced.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// `value` without what equals `default`; `None` when nothing is left.
fn prune_defaults(value: &Value, default: &Value) -> Option<Value> {
    match (value, default) {
        (Value::Mapping(v), Value::Mapping(d)) => {
            let mut out = Mapping::new();
            for (k, child) in v {
                let kept = match d.get(k) {
                    Some(dchild) => prune_defaults(child, dchild),
                    None => Some(child.clone()),
                };
                if let Some(kept) = kept {
                    out.insert(k.clone(), kept);
                }
            }
            (!out.is_empty()).then_some(Value::Mapping(out))
        }
        (v, d) if v == d => None,
        (v, _) => Some(v.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{CatalogSpec, FilesystemStorageSpec, StorageSpec};

    fn spec() -> SignalDBClusterSpec {
        serde_json::from_value(serde_json::json!({
            "catalog": {"managed": {}},
            "storage": {"s3": {"bucket": "traces", "endpoint": "http://minio:9000", "pathStyle": true}},
        }))
        .unwrap()
    }

    #[test]
    fn renders_only_what_differs_and_reads_back() {
        let r = render(&spec()).unwrap();
        assert_eq!(
            r.yaml,
            "data_dir: /var/lib/signaldb\nwal:\n  dir: /var/lib/signaldb/wal\nstorage:\n  url: s3://traces\n  s3:\n    endpoint: http://minio:9000\n    path_style: true\n    allow_http: true\ncluster:\n  token_file: /var/run/signaldb/cluster-token/token\n"
        );
        assert_eq!(Config::from_yaml(&r.yaml).unwrap(), r.config);
        assert_eq!(r.hash.len(), 16);
        assert_eq!(r.hash, config_hash(&r.yaml));
    }

    #[test]
    fn limits_tenancy_and_overrides() {
        let mut s = spec();
        s.limits.max_request_size = Some("4MiB".into());
        s.limits.writer_max_buffer_size = Some("1GiB".into());
        s.limits.retention = Some("30d".into());
        s.writer.replication_factor = 2;
        s.tenancy.multi_tenant = true;
        s.config_overrides = Some(serde_json::json!({"writer": {"flush_max_age": "10s"}}));
        let r = render(&s).unwrap();
        assert_eq!(r.config.acceptor.max_request_size, ByteSize::mib(4));
        assert_eq!(r.config.writer.max_buffer_size, ByteSize::mib(1024));
        assert_eq!(
            r.config.limits.defaults.retention,
            std::time::Duration::from_secs(30 * 24 * 3600)
        );
        let mut bad = spec();
        bad.limits.retention = Some("a month".into());
        let e = render(&bad).unwrap_err().to_string();
        assert!(e.contains("limits.retention") && e.contains("not a duration"), "{e}");
        assert_eq!(r.config.acceptor.replication_factor, 2);
        assert!(r.config.tenancy.multi_tenant);
        assert_eq!(r.config.writer.flush_max_age, std::time::Duration::from_secs(10));
        assert_ne!(r.hash, render(&spec()).unwrap().hash);
    }

    /// `tenantRetention` gives listed tenants their own retention; their
    /// other limits are the cluster's, `configOverrides` included.
    #[test]
    fn retention_per_tenant() {
        let day = std::time::Duration::from_secs(24 * 3600);
        let mut s = spec();
        s.limits.retention = Some("30d".into());
        s.limits.tenant_retention = [
            ("acme".to_owned(), "90d".to_owned()),
            ("trial".to_owned(), "1d".to_owned()),
        ]
        .into_iter()
        .collect();
        s.config_overrides = Some(serde_json::json!({"limits": {"defaults": {"ingestion_rate": "1MiB"}}}));
        let r = render(&s).unwrap();
        let acme = TenantId::new("acme").unwrap();
        assert_eq!(r.config.limits.of(&acme).retention, day * 90);
        assert_eq!(r.config.limits.of(&TenantId::new("trial").unwrap()).retention, day);
        assert_eq!(r.config.limits.of(&TenantId::new("other").unwrap()).retention, day * 30);
        assert_eq!(r.config.limits.of(&acme).ingestion_rate, ByteSize::mib(1));
        // Written where the pods read it.
        assert_eq!(Config::from_yaml(&r.yaml).unwrap(), r.config);

        let mut bad = spec();
        bad.limits.tenant_retention = [("acme".to_owned(), "a month".to_owned())].into_iter().collect();
        let e = render(&bad).unwrap_err().to_string();
        assert!(
            e.contains("limits.tenantRetention.acme") && e.contains("not a duration"),
            "{e}"
        );
        bad.limits.tenant_retention = [("no/slash".to_owned(), "1d".to_owned())].into_iter().collect();
        let e = render(&bad).unwrap_err().to_string();
        assert!(e.contains("limits.tenantRetention.no/slash"), "{e}");
    }

    #[test]
    fn tls_and_api_keys() {
        let mut s = spec();
        s.tls = Some(crate::crd::TlsSpec {
            secret_name: "signaldb-tls".into(),
        });
        s.tenancy.api_keys = true;
        let r = render(&s).unwrap();
        assert_eq!(
            r.config.tls.cert_file.as_deref(),
            Some(std::path::Path::new("/var/run/signaldb/tls/tls.crt"))
        );
        assert_eq!(
            r.config.tls.key_file.as_deref(),
            Some(std::path::Path::new("/var/run/signaldb/tls/tls.key"))
        );
        assert!(r.config.tenancy.api_keys);
        assert!(r.yaml.contains("tenancy:\n  api_keys: true\n"), "{}", r.yaml);
        assert!(
            r.yaml.contains(
                "tls:\n  cert_file: /var/run/signaldb/tls/tls.crt\n  key_file: /var/run/signaldb/tls/tls.key\n"
            ),
            "{}",
            r.yaml
        );
        // The reload interval stays the data plane's, and may be overridden.
        assert!(!r.yaml.contains("reload_interval"), "{}", r.yaml);
        s.config_overrides = Some(serde_json::json!({"tls": {"reload_interval": "1m"}}));
        let r = render(&s).unwrap();
        assert_eq!(r.config.tls.reload_interval, std::time::Duration::from_secs(60));

        // Without them nothing is written.
        let r = render(&spec()).unwrap();
        assert_eq!(r.config.tls, signaldb_config::TlsConfig::default());
        assert!(!r.config.tenancy.api_keys);
        assert!(!r.yaml.contains("tls") && !r.yaml.contains("api_keys"), "{}", r.yaml);

        // The same configuration as the old `configOverrides` way: no rollout
        // when a cluster moves to the field.
        let mut old = spec();
        old.config_overrides = Some(serde_json::json!({"tenancy": {"api_keys": true}}));
        let mut new = spec();
        new.tenancy.api_keys = true;
        assert_eq!(render(&old).unwrap().hash, render(&new).unwrap().hash);
    }

    #[test]
    fn tls_files_are_the_operators() {
        for key in ["cert_file", "key_file"] {
            let mut s = spec();
            let tls = serde_json::Map::from_iter([(key.to_owned(), serde_json::json!("/etc/certs/x.pem"))]);
            s.config_overrides = Some(serde_json::json!({"tls": tls}));
            let e = render(&s).unwrap_err();
            assert_eq!(e.field, "configOverrides");
            assert!(e.reason.contains(&format!("tls.{key} is set by the operator")), "{e}");
            assert!(e.reason.contains("spec.tls.secretName"), "{e}");
        }
    }

    #[test]
    fn refuses_bad_input() {
        let mut s = spec();
        s.config_overrides = Some(serde_json::json!({"writr": {}}));
        let e = render(&s).unwrap_err();
        assert_eq!(e.field, "configOverrides");
        assert!(e.reason.contains("unknown field `writr`"), "{e}");

        s.config_overrides = Some(serde_json::json!({"admin": {"addr": "0.0.0.0:1"}}));
        assert!(
            render(&s)
                .unwrap_err()
                .reason
                .contains("admin.addr is set by the operator")
        );

        s.config_overrides = Some(serde_json::json!(["x"]));
        assert!(render(&s).unwrap_err().reason.contains("must be an object"));

        let mut s = spec();
        s.limits.max_pending = Some("1KiB".into());
        let e = render(&s).unwrap_err();
        assert!(e.reason.contains("max_pending"), "{e}");

        let mut s = spec();
        s.limits.max_request_size = Some("12 parsecs".into());
        assert_eq!(render(&s).unwrap_err().field, "limits.maxRequestSize");

        let mut s = spec();
        s.tenancy.default_tenant = "..".into();
        assert_eq!(render(&s).unwrap_err().field, "tenancy.defaultTenant");
    }

    #[test]
    fn filesystem_storage_and_postgres_pool() {
        let s = SignalDBClusterSpec {
            catalog: CatalogSpec {
                postgres: Some(
                    serde_json::from_value(serde_json::json!({"urlSecretRef": {"name": "pg"}, "maxConnections": 20}))
                        .unwrap(),
                ),
                managed: None,
            },
            storage: StorageSpec {
                s3: None,
                filesystem: Some(FilesystemStorageSpec {
                    claim_name: "shared".into(),
                    sub_path: None,
                }),
            },
            ..spec()
        };
        let r = render(&s).unwrap();
        assert_eq!(
            r.config.storage.url.as_deref(),
            Some("file:///var/lib/signaldb/objects")
        );
        assert_eq!(r.config.catalog.max_connections, 20);
    }
}
