//! `signaldb tenants` and `signaldb keys`: tenants and their API keys in the
//! catalog the configuration names.

use std::fmt::Write as _;
use std::sync::Arc;

use signaldb_catalog::{ApiKeyRecord, Catalog};
use signaldb_config::{Config, TenantId};

use crate::api_keys::new_key;

/// What to do.
#[derive(Debug, Clone)]
pub enum Manage {
    /// Records a tenant.
    CreateTenant(String),
    /// Lists the tenants.
    ListTenants,
    /// Makes an API key for a tenant, labelled with a name.
    CreateKey { tenant: String, name: String },
    /// Lists the API keys, of one tenant or all.
    ListKeys { tenant: Option<String> },
    /// Revokes an API key by id.
    RevokeKey(String),
}

/// Runs `what` against the catalog of `config`; returns what to print on
/// standard output. A made key is printed alone, on one line, so scripts
/// can capture it.
pub async fn run(config: &Config, what: Manage) -> Result<String, String> {
    let catalog: Arc<dyn Catalog> = Arc::new(
        signaldb_catalog::connect(&config.catalog_url(), 1)
            .await
            .map_err(|e| e.to_string())?,
    );
    let tenant = |id: &str| TenantId::new(id).map_err(|e| format!("tenant {id:?}: {e}"));
    let now = crate::now_ms();
    let mut out = String::new();
    match what {
        Manage::CreateTenant(id) => {
            catalog
                .ensure_tenant(&tenant(&id)?, now)
                .await
                .map_err(|e| e.to_string())?;
            let _ = writeln!(out, "{id}");
        }
        Manage::ListTenants => {
            for t in catalog.list_tenants().await.map_err(|e| e.to_string())? {
                let _ = writeln!(out, "{t}");
            }
        }
        Manage::CreateKey { tenant: id, name } => {
            let made = new_key(tenant(&id)?, &name, now);
            catalog.create_api_key(&made.record).await.map_err(|e| e.to_string())?;
            let _ = writeln!(out, "{}", made.key);
        }
        Manage::ListKeys { tenant: id } => {
            let t = id.as_deref().map(tenant).transpose()?;
            let keys = catalog.list_api_keys(t.as_ref()).await.map_err(|e| e.to_string())?;
            out.push_str(&key_table(&keys));
        }
        Manage::RevokeKey(id) => {
            catalog.revoke_api_key(&id, now).await.map_err(|e| e.to_string())?;
            let _ = writeln!(
                out,
                "revoked {id}; running processes refuse it within tenancy.api_key_cache_ttl ({})",
                humantime::format_duration(config.tenancy.api_key_cache_ttl)
            );
        }
    }
    Ok(out)
}

/// Keys as a table: id, tenant, name, created, revoked (UTC).
fn key_table(keys: &[ApiKeyRecord]) -> String {
    let time = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(|| ms.to_string())
    };
    let rows: Vec<[String; 5]> = keys
        .iter()
        .map(|k| {
            [
                k.id.clone(),
                k.tenant.to_string(),
                k.name.clone(),
                time(k.created_at_ms),
                k.revoked_at_ms.map(time).unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let header = ["ID", "TENANT", "NAME", "CREATED", "REVOKED"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row.iter().zip(widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}
