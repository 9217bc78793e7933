//! Service discovery through the catalog's registry: registration with
//! heartbeats, and the consistent-hash ring of live writers that acceptors
//! route traces over. In Kubernetes the registry is filtered by the role
//! Services' EndpointSlices ([`crate::endpoints`]).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use signaldb_catalog::{Catalog, ServiceRecord};
use signaldb_config::{Capability, Role};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::endpoints::{Readiness, Use};
use crate::now_ms;

/// Registers `svc` and keeps its heartbeat going until `shutdown` fires, then
/// deregisters it. Registration failures are retried: a catalog that is down
/// at start must not keep a role from serving what it already holds.
pub async fn run_registration(
    catalog: Arc<dyn Catalog>,
    mut svc: ServiceRecord,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut registered = false;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
        let now = now_ms();
        let result = if registered {
            catalog.heartbeat(&svc.id, now).await
        } else {
            svc.last_heartbeat_ms = now;
            catalog.register_service(&svc).await
        };
        match result {
            Ok(()) => {
                if !registered {
                    info!(id = %svc.id, role = %svc.role, address = %svc.address, "registered in the catalog");
                }
                registered = true;
            }
            Err(signaldb_catalog::Error::NotFound { .. }) => {
                warn!(id = %svc.id, "registration expired; registering again");
                registered = false;
            }
            Err(e) => warn!(id = %svc.id, error = %e, "catalog heartbeat failed"),
        }
    }
    if let Err(e) = catalog.deregister_service(&svc.id).await {
        warn!(id = %svc.id, error = %e, "deregistering failed; the entry expires after the TTL");
    }
}

/// Builds the registry entry of a role.
pub fn service_record(id: String, role: Role, address: String, capabilities: Vec<Capability>) -> ServiceRecord {
    let now = now_ms();
    ServiceRecord {
        id,
        role,
        address,
        capabilities,
        draining: false,
        started_at_ms: now,
        last_heartbeat_ms: now,
    }
}

/// A writer that can receive data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterEndpoint {
    pub id: String,
    pub address: String,
}

/// Consistent-hash ring over writers: each writer owns [`VNODES`] points, a
/// key belongs to the first writer clockwise from its hash, and its replicas
/// to the next distinct writers. Adding or removing one writer moves about
/// 1/n of the keys.
#[derive(Debug, Default, Clone)]
pub struct Ring {
    points: Vec<(u64, usize)>,
    writers: Vec<WriterEndpoint>,
}

const VNODES: u32 = 64;

impl Ring {
    pub fn new(mut writers: Vec<WriterEndpoint>) -> Self {
        writers.sort_by(|a, b| a.id.cmp(&b.id));
        writers.dedup_by(|a, b| a.id == b.id);
        let mut points = Vec::with_capacity(writers.len() * VNODES as usize);
        for (i, w) in writers.iter().enumerate() {
            for v in 0..VNODES {
                let mut key = w.id.as_bytes().to_vec();
                key.extend_from_slice(&v.to_le_bytes());
                points.push((hash64(&key), i));
            }
        }
        points.sort_unstable();
        Self { points, writers }
    }

    pub fn is_empty(&self) -> bool {
        self.writers.is_empty()
    }

    pub fn len(&self) -> usize {
        self.writers.len()
    }

    pub fn writers(&self) -> &[WriterEndpoint] {
        &self.writers
    }

    /// Index (into [`Ring::writers`]) of the owner of `key`.
    pub fn owner(&self, key: u64) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let at = self.points.partition_point(|(h, _)| *h < key);
        Some(self.points[at % self.points.len()].1)
    }

    /// Up to `n` distinct writers for `key`, owner first.
    pub fn replicas(&self, key: u64, n: usize) -> Vec<&WriterEndpoint> {
        let mut out: Vec<usize> = Vec::with_capacity(n);
        if self.points.is_empty() {
            return Vec::new();
        }
        let start = self.points.partition_point(|(h, _)| *h < key);
        for k in 0..self.points.len() {
            if out.len() >= n.min(self.writers.len()) {
                break;
            }
            let w = self.points[(start + k) % self.points.len()].1;
            if !out.contains(&w) {
                out.push(w);
            }
        }
        out.into_iter().map(|i| &self.writers[i]).collect()
    }
}

/// The routing key of a trace of a tenant.
pub fn trace_key(tenant: &str, trace_id: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    for b in tenant.as_bytes().iter().chain([0xffu8].iter()).chain(trace_id) {
        h = (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME);
    }
    mix(h)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// A stable 64-bit hash (FNV-1a with a final avalanche), identical on every
/// build and platform, so every acceptor computes the same routes.
pub fn hash64(bytes: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME);
    }
    mix(h)
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The live, non-draining writers, refreshed from the catalog.
#[derive(Debug, Clone)]
pub struct WriterDirectory {
    catalog: Arc<dyn Catalog>,
    ttl: Duration,
    ring: Arc<RwLock<Arc<Ring>>>,
    readiness: Option<Readiness>,
}

impl WriterDirectory {
    pub fn new(catalog: Arc<dyn Catalog>, ttl: Duration) -> Self {
        Self {
            catalog,
            ttl,
            ring: Arc::new(RwLock::new(Arc::new(Ring::default()))),
            readiness: None,
        }
    }

    /// Also drops writers whose pods the EndpointSlices say are not ready,
    /// and refreshes as soon as they change.
    pub fn with_readiness(mut self, readiness: Option<Readiness>) -> Self {
        self.readiness = readiness;
        self
    }

    /// The current ring.
    pub fn ring(&self) -> Arc<Ring> {
        match self.ring.read() {
            Ok(r) => Arc::clone(&r),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Reads the registry now.
    pub async fn refresh(&self) -> Result<Arc<Ring>, signaldb_catalog::Error> {
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let services = self
            .catalog
            .live_services(Capability::Storage, now_ms(), ttl_ms)
            .await?;
        let services = match &self.readiness {
            Some(r) => r.filter(Role::Writer, services, Use::Route),
            None => services,
        };
        let writers: Vec<WriterEndpoint> = services
            .into_iter()
            .filter(|s| !s.draining)
            .map(|s| WriterEndpoint {
                id: s.id,
                address: s.address,
            })
            .collect();
        let ring = Arc::new(Ring::new(writers));
        let changed = {
            let mut guard = match self.ring.write() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            let changed = guard.writers() != ring.writers();
            *guard = Arc::clone(&ring);
            changed
        };
        if changed {
            info!(writers = ?ring.writers().iter().map(|w| &w.id).collect::<Vec<_>>(), "writer set changed");
        }
        Ok(ring)
    }

    /// Refreshes every `every` until shutdown.
    pub async fn run(self, every: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut readiness = self.readiness.clone();
        loop {
            if let Err(e) = self.refresh().await {
                debug!(error = %e, "refreshing writers from the catalog failed");
            }
            let pods_changed = async {
                match readiness.as_mut() {
                    Some(r) => r.changed().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = pods_changed => {}
                _ = shutdown.changed() => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(n: usize) -> Ring {
        Ring::new(
            (0..n)
                .map(|i| WriterEndpoint {
                    id: format!("w{i}"),
                    address: format!("a{i}"),
                })
                .collect(),
        )
    }

    #[test]
    fn replicas_are_distinct_and_stable() {
        let r = ring(3);
        for k in 0..1000u64 {
            let key = hash64(&k.to_le_bytes());
            let reps = r.replicas(key, 2);
            assert_eq!(reps.len(), 2);
            assert_ne!(reps[0].id, reps[1].id);
            assert_eq!(r.writers()[r.owner(key).unwrap()].id, reps[0].id);
        }
        assert_eq!(r.replicas(1, 5).len(), 3);
        assert!(Ring::default().replicas(1, 1).is_empty());
    }

    #[test]
    fn adding_a_writer_moves_few_keys() {
        let (a, b) = (ring(4), ring(5));
        let moved = (0..10_000u64)
            .filter(|k| {
                let key = hash64(&k.to_le_bytes());
                a.writers()[a.owner(key).unwrap()].id != b.writers()[b.owner(key).unwrap()].id
            })
            .count();
        // Ideal is 1/5 of the keys; allow for vnode variance.
        assert!(moved < 3_500, "{moved} of 10000 keys moved");
        assert!(moved > 500, "{moved} of 10000 keys moved");
    }

    #[test]
    fn trace_keys_depend_on_tenant() {
        assert_ne!(trace_key("a", &[1; 16]), trace_key("b", &[1; 16]));
        assert_eq!(trace_key("a", &[1; 16]), trace_key("a", &[1; 16]));
    }
}
