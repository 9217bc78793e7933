//! The shared vocabulary of SignalDB: the typed `signaldb.yaml` schema, tenant
//! ids, role and capability names, default ports and size/duration types.
//!
//! This crate does no I/O beyond parsing text and depends on neither Arrow nor
//! any network stack, so both the data plane and the operator can use it: the
//! operator renders pod configuration from the very types the pods parse.

mod config;
mod size;
mod vocab;

pub use config::{
    AcceptorConfig, AdminConfig, CatalogConfig, ClusterConfig, CompactorConfig, Config, ConfigError, DiscoveryConfig,
    ENV_PREFIX, KubernetesDiscovery, LimitsConfig, QuerierConfig, RouterConfig, S3Config, StorageConfig, TenancyConfig,
    TenantLimits, TlsConfig, WalConfig, WriterConfig, env_overrides,
};
pub use size::{ByteSize, ParseByteSizeError};
pub use vocab::{Capability, ParseCapabilityError, ParseRoleError, Role, Signal, TenantId, TenantIdError, ports};
