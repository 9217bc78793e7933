//! Tenants authenticated by API keys (`tenancy.api_keys`).
//!
//! A key is `sdb_<id>_<secret>`: 16 hex digits of public id, then 256 random
//! bits in hex. The catalog keeps the id, the key's tenant and the SHA-256
//! of the secret, never the secret: a copy of the catalog lets nobody act
//! as a tenant. The secret is random, not chosen by a person, so one fast
//! hash is enough; comparing the hashes takes the same time wherever they
//! differ.
//!
//! Clients send the key as `Authorization: Bearer <key>` (OTLP exporters'
//! `headers`, Grafana's data source "Authorization header") or, on Flight
//! SQL, as the password of basic auth (as ADBC and JDBC send it). With keys
//! on, the key decides the tenant: an `X-Scope-OrgID` naming another tenant
//! is refused with 403, and one naming the key's own tenant is accepted.
//! Looked-up keys are trusted for `tenancy.api_key_cache_ttl`, so a revoked
//! key stops working within that time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use signaldb_catalog::{ApiKeyRecord, Catalog};
use signaldb_config::{TenancyConfig, TenantId};

/// What every key starts with.
pub const KEY_PREFIX: &str = "sdb_";
const ID_HEX: usize = 16;
const SECRET_HEX: usize = 64;
/// Cached lookups at most; past it the cache starts over.
const MAX_CACHED: usize = 10_000;

/// A key made by [`new_key`]: the whole key (shown once, to give to the
/// client) and what the catalog keeps.
#[derive(Debug)]
pub struct NewKey {
    pub key: String,
    pub record: ApiKeyRecord,
}

/// Makes a key for `tenant`, labelled `name`.
pub fn new_key(tenant: TenantId, name: &str, now_ms: i64) -> NewKey {
    let mut id = [0u8; ID_HEX / 2];
    let mut secret = [0u8; SECRET_HEX / 2];
    rand::rng().fill_bytes(&mut id);
    rand::rng().fill_bytes(&mut secret);
    let (id, secret) = (hex::encode(id), hex::encode(secret));
    NewKey {
        key: format!("{KEY_PREFIX}{id}_{secret}"),
        record: ApiKeyRecord {
            id,
            tenant,
            secret_sha256: sha256_hex(&secret),
            name: name.to_owned(),
            created_at_ms: now_ms,
            revoked_at_ms: None,
        },
    }
}

fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The id and secret of a well-formed key.
fn parse_key(key: &str) -> Option<(&str, &str)> {
    let (id, secret) = key.strip_prefix(KEY_PREFIX)?.split_once('_')?;
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id, ID_HEX) && hex(secret, SECRET_HEX)).then_some((id, secret))
}

/// Whether `a` and `b` are equal, in time independent of where they differ.
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a request gets no tenant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No usable credentials: HTTP 401, gRPC `UNAUTHENTICATED`.
    #[error("{0}")]
    Unauthenticated(String),
    /// Valid credentials for another tenant: HTTP 403, gRPC `PERMISSION_DENIED`.
    #[error("{0}")]
    Forbidden(String),
    /// The catalog could not be asked: HTTP 503, gRPC `UNAVAILABLE`.
    #[error("{0}")]
    Unavailable(String),
}

/// Resolves the tenant of an external request from its `Authorization` and
/// `X-Scope-OrgID` values. Cheap to clone.
#[derive(Clone)]
pub struct Tenants {
    inner: Arc<Inner>,
}

struct Inner {
    tenancy: TenancyConfig,
    catalog: Option<Arc<dyn Catalog>>,
    cache: Mutex<HashMap<String, (Instant, Option<ApiKeyRecord>)>>,
}

impl std::fmt::Debug for Tenants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenants")
            .field("api_keys", &self.inner.catalog.is_some())
            .finish_non_exhaustive()
    }
}

impl Tenants {
    /// Keys looked up in `catalog` when `tenancy.api_keys` is on; the
    /// `X-Scope-OrgID` header alone otherwise.
    pub fn new(tenancy: TenancyConfig, catalog: Arc<dyn Catalog>) -> Self {
        let catalog = tenancy.api_keys.then_some(catalog);
        Self {
            inner: Arc::new(Inner {
                tenancy,
                catalog,
                cache: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Whether requests need an API key.
    pub fn keys_required(&self) -> bool {
        self.inner.catalog.is_some()
    }

    /// The tenant of a request: `authorization` is its `Authorization`
    /// value, `org_id` its `X-Scope-OrgID` (`Err(())` when either is not
    /// text).
    pub async fn resolve(
        &self,
        authorization: Option<Result<&str, ()>>,
        org_id: Option<Result<&str, ()>>,
    ) -> Result<TenantId, AuthError> {
        let org_id = match org_id {
            Some(Ok(v)) if !v.trim().is_empty() => {
                Some(TenantId::new(v.trim()).map_err(|e| AuthError::Unauthenticated(format!("X-Scope-OrgID: {e}")))?)
            }
            Some(Err(())) => {
                return Err(AuthError::Unauthenticated("X-Scope-OrgID is not visible ASCII".into()));
            }
            _ => None,
        };
        let Some(catalog) = &self.inner.catalog else {
            return match org_id {
                Some(t) => Ok(t),
                None if self.inner.tenancy.multi_tenant => Err(AuthError::Unauthenticated(
                    "no org id: the X-Scope-OrgID header is required".into(),
                )),
                None => Ok(self.inner.tenancy.default_tenant.clone()),
            };
        };
        let key = match authorization {
            None => {
                return Err(AuthError::Unauthenticated(
                    "an API key is required: send Authorization: Bearer <key>".into(),
                ));
            }
            Some(Err(())) => return Err(AuthError::Unauthenticated("Authorization is not valid text".into())),
            Some(Ok(value)) => presented_key(value)?,
        };
        let record = self.key(catalog, &key).await?;
        match org_id {
            Some(asked) if asked != record.tenant => Err(AuthError::Forbidden(format!(
                "this API key acts as tenant {}; X-Scope-OrgID {asked} is not allowed",
                record.tenant
            ))),
            _ => Ok(record.tenant),
        }
    }

    /// The valid record of `key`.
    async fn key(&self, catalog: &Arc<dyn Catalog>, key: &str) -> Result<ApiKeyRecord, AuthError> {
        let invalid = || AuthError::Unauthenticated("invalid API key".into());
        let (id, secret) = parse_key(key).ok_or_else(invalid)?;
        let ttl: Duration = self.inner.tenancy.api_key_cache_ttl;
        let cached = {
            let cache = self
                .inner
                .cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            cache
                .get(id)
                .filter(|(at, _)| at.elapsed() < ttl)
                .map(|(_, record)| record.clone())
        };
        let record = match cached {
            Some(record) => record,
            None => {
                let record = catalog
                    .api_key(id)
                    .await
                    .map_err(|e| AuthError::Unavailable(format!("checking the API key: {e}")))?;
                let mut cache = self
                    .inner
                    .cache
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
                cache.insert(id.to_owned(), (Instant::now(), record.clone()));
                record
            }
        };
        let record = record.ok_or_else(invalid)?;
        if !same_bytes(sha256_hex(secret).as_bytes(), record.secret_sha256.as_bytes()) {
            return Err(invalid());
        }
        if record.revoked_at_ms.is_some() {
            return Err(AuthError::Unauthenticated("this API key has been revoked".into()));
        }
        Ok(record)
    }
}

/// The `Bearer <key>` value that carries the key of `authorization`
/// (bearer, or basic with the key as the password).
pub fn bearer_of(authorization: &str) -> Result<String, tonic::Status> {
    presented_key(authorization)
        .map(|key| format!("Bearer {key}"))
        .map_err(|e| tonic::Status::unauthenticated(e.to_string()))
}

/// The key in an `Authorization` value: `Bearer <key>`, or `Basic` with the
/// key as the password (the user name is not checked).
fn presented_key(value: &str) -> Result<String, AuthError> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(rest.to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or_else(|| AuthError::Unauthenticated("malformed basic credentials".into()))?;
        let (_, password) = decoded
            .split_once(':')
            .ok_or_else(|| AuthError::Unauthenticated("malformed basic credentials".into()))?;
        return Ok(password.to_owned());
    }
    Err(AuthError::Unauthenticated(
        "Authorization must be Bearer <API key> (or basic auth with the key as the password)".into(),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ok(v: &str) -> Option<Result<&str, ()>> {
        Some(Ok(v))
    }

    async fn catalog() -> Arc<dyn Catalog> {
        Arc::new(signaldb_catalog::connect("sqlite::memory:", 1).await.unwrap())
    }

    fn tenancy(api_keys: bool, ttl: Duration) -> TenancyConfig {
        TenancyConfig {
            api_keys,
            api_key_cache_ttl: ttl,
            ..TenancyConfig::default()
        }
    }

    #[test]
    fn keys_are_random_and_hashed() {
        let t = TenantId::new("acme").unwrap();
        let (a, b) = (new_key(t.clone(), "one", 1), new_key(t, "two", 2));
        assert_ne!(a.key, b.key);
        let (id, secret) = parse_key(&a.key).unwrap();
        assert_eq!(id, a.record.id);
        assert_eq!(a.record.secret_sha256, sha256_hex(secret));
        assert!(!a.record.secret_sha256.contains(secret));
        for bad in [
            "",
            "sdb_",
            "sdb_abc_def",
            "xyz_0123456789abcdef_00",
            &a.key[..a.key.len() - 1],
        ] {
            assert_eq!(parse_key(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn without_keys_the_header_decides() {
        let tenants = Tenants::new(tenancy(false, Duration::ZERO), catalog().await);
        assert_eq!(tenants.resolve(None, Some(Ok("a"))).await.unwrap().as_str(), "a");
        assert_eq!(tenants.resolve(None, None).await.unwrap().as_str(), "single-tenant");
        assert!(matches!(
            tenants.resolve(None, Some(Err(()))).await,
            Err(AuthError::Unauthenticated(_))
        ));
    }

    #[tokio::test]
    async fn a_key_decides_the_tenant() {
        let catalog = catalog().await;
        let tenants = Tenants::new(tenancy(true, Duration::from_secs(60)), Arc::clone(&catalog));
        let acme = new_key(TenantId::new("acme").unwrap(), "ci", 1);
        catalog.create_api_key(&acme.record).await.unwrap();
        let bearer = format!("Bearer {}", acme.key);

        assert_eq!(tenants.resolve(ok(&bearer), None).await.unwrap().as_str(), "acme");
        assert_eq!(tenants.resolve(ok(&bearer), ok("acme")).await.unwrap().as_str(), "acme");
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("anyone:{}", acme.key))
        );
        assert_eq!(tenants.resolve(ok(&basic), None).await.unwrap().as_str(), "acme");

        let err = tenants.resolve(ok(&bearer), ok("other")).await.unwrap_err();
        assert_eq!(
            err,
            AuthError::Forbidden("this API key acts as tenant acme; X-Scope-OrgID other is not allowed".into())
        );
        for (auth, why) in [
            (None, "an API key is required: send Authorization: Bearer <key>"),
            (Some(Err(())), "Authorization is not valid text"),
            (ok("Bearer nope"), "invalid API key"),
            (
                ok("Token abc"),
                "Authorization must be Bearer <API key> (or basic auth with the key as the password)",
            ),
        ] {
            assert_eq!(
                tenants.resolve(auth, ok("acme")).await.unwrap_err(),
                AuthError::Unauthenticated(why.into())
            );
        }
        // The right id with a wrong secret.
        let forged = format!("Bearer {KEY_PREFIX}{}_{}", acme.record.id, "0".repeat(SECRET_HEX));
        assert_eq!(
            tenants.resolve(ok(&forged), None).await.unwrap_err(),
            AuthError::Unauthenticated("invalid API key".into())
        );
    }

    #[tokio::test]
    async fn revocation_takes_effect_after_the_cache_ttl() {
        let catalog = catalog().await;
        let ttl = Duration::from_millis(200);
        let tenants = Tenants::new(tenancy(true, ttl), Arc::clone(&catalog));
        let key = new_key(TenantId::new("acme").unwrap(), "", 1);
        catalog.create_api_key(&key.record).await.unwrap();
        let bearer = format!("Bearer {}", key.key);
        assert!(tenants.resolve(Some(Ok(&bearer)), None).await.is_ok());
        catalog.revoke_api_key(&key.record.id, 2).await.unwrap();
        // Trusted from the cache until the TTL passes, then refused.
        assert!(tenants.resolve(Some(Ok(&bearer)), None).await.is_ok());
        tokio::time::sleep(ttl).await;
        assert_eq!(
            tenants.resolve(Some(Ok(&bearer)), None).await.unwrap_err(),
            AuthError::Unauthenticated("this API key has been revoked".into())
        );
    }
}
