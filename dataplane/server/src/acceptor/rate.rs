//! Per-tenant ingestion rates: a token bucket of bytes per tenant
//! (`limits.*.ingestion_rate`, `ingestion_burst`), so one tenant sending
//! past its rate is refused with when to retry while the others keep
//! theirs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use signaldb_config::{LimitsConfig, TenantId};

/// Buckets kept before full (idle) ones are forgotten.
const MAX_BUCKETS: usize = 10_000;

/// Why a tenant's request is not taken now.
#[derive(Debug, Clone, PartialEq)]
pub enum RateRefusal {
    /// Over the rate: retry after this long.
    Later { retry_after: Duration, rate: u64 },
    /// Larger than the burst: never fits.
    TooLarge { burst: u64 },
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The tenants' buckets.
#[derive(Debug)]
pub struct Rates {
    limits: LimitsConfig,
    buckets: Mutex<HashMap<TenantId, Bucket>>,
}

impl Rates {
    pub fn new(limits: LimitsConfig) -> Self {
        Self {
            limits,
            buckets: Mutex::default(),
        }
    }

    /// Takes `bytes` from `tenant`'s bucket, or says why not.
    pub fn take(&self, tenant: &TenantId, bytes: usize) -> Result<(), RateRefusal> {
        self.take_at(tenant, bytes, Instant::now())
    }

    fn take_at(&self, tenant: &TenantId, bytes: usize, now: Instant) -> Result<(), RateRefusal> {
        let limits = self.limits.of(tenant);
        let rate = limits.ingestion_rate.as_u64();
        if rate == 0 {
            return Ok(());
        }
        let burst = limits.ingestion_burst.as_u64().max(1);
        let bytes = bytes as f64;
        if bytes > burst as f64 {
            return Err(RateRefusal::TooLarge { burst });
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(tenant) {
            // Forget the buckets that have refilled: they hold nothing.
            buckets.retain(|_, b| (b.tokens + now.duration_since(b.at).as_secs_f64() * rate as f64) < burst as f64);
        }
        let bucket = buckets.entry(tenant.clone()).or_insert(Bucket {
            tokens: burst as f64,
            at: now,
        });
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * rate as f64;
        bucket.tokens = (bucket.tokens + refill).min(burst as f64);
        bucket.at = now;
        if bucket.tokens >= bytes {
            bucket.tokens -= bytes;
            return Ok(());
        }
        let wait = (bytes - bucket.tokens) / rate as f64;
        Err(RateRefusal::Later {
            retry_after: Duration::from_secs_f64(wait).max(Duration::from_millis(1)),
            rate,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use signaldb_config::{ByteSize, TenantLimits};

    use super::*;

    fn rates() -> Rates {
        let mut limits = LimitsConfig {
            defaults: TenantLimits {
                ingestion_rate: ByteSize(1000),
                ingestion_burst: ByteSize(2000),
                ..TenantLimits::default()
            },
            ..LimitsConfig::default()
        };
        limits.overrides.insert(
            TenantId::new("free").unwrap(),
            TenantLimits {
                ingestion_rate: ByteSize(0),
                ingestion_burst: ByteSize(0),
                ..TenantLimits::default()
            },
        );
        Rates::new(limits)
    }

    #[test]
    fn a_tenant_gets_its_burst_then_its_rate() {
        let r = rates();
        let t = TenantId::new("a").unwrap();
        let t0 = Instant::now();
        r.take_at(&t, 1500, t0).unwrap();
        r.take_at(&t, 500, t0).unwrap();
        let Err(RateRefusal::Later { retry_after, rate }) = r.take_at(&t, 500, t0) else {
            panic!("over the burst");
        };
        assert_eq!(rate, 1000);
        assert_eq!(retry_after, Duration::from_millis(500));
        // Half a second later, 500 bytes have come back.
        r.take_at(&t, 500, t0 + Duration::from_millis(500)).unwrap();
        assert!(r.take_at(&t, 1, t0 + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn tenants_have_buckets_of_their_own_and_overrides() {
        let r = rates();
        let t0 = Instant::now();
        let (a, b, free) = (
            TenantId::new("a").unwrap(),
            TenantId::new("b").unwrap(),
            TenantId::new("free").unwrap(),
        );
        r.take_at(&a, 2000, t0).unwrap();
        assert!(r.take_at(&a, 1, t0).is_err());
        r.take_at(&b, 2000, t0).unwrap();
        for _ in 0..100 {
            r.take_at(&free, 1_000_000, t0).unwrap();
        }
        assert_eq!(r.take_at(&a, 2001, t0), Err(RateRefusal::TooLarge { burst: 2000 }));
    }
}
