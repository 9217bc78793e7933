//! Kubernetes EndpointSlice discovery (`discovery.kubernetes`).
//!
//! The catalog's registry says which services exist and where; heartbeats
//! take `discovery.ttl` to notice a dead one. In Kubernetes the role
//! Services' EndpointSlices say within a second or two which pods are ready.
//! This module follows the slices of the writer and querier headless
//! Services and filters the registry with them: a writer or querier whose pod
//! is not ready, or gone, leaves routing at once. Until the first list of a
//! Service has arrived (or when the API server cannot be reached) nothing is
//! filtered: routing falls back to the catalog alone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch_stream};
use kube::{Api, Client, ResourceExt};
use signaldb_catalog::ServiceRecord;
use signaldb_config::{KubernetesDiscovery, Role};
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// Label the EndpointSlice controller puts on every slice of a Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Pods of one Service, by name, as its slices list them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodStates {
    /// Ready and not terminating: may take new work.
    pub routable: BTreeSet<String>,
    /// Serving (ready, terminating or not): may still answer reads.
    pub serving: BTreeSet<String>,
}

/// The pod name of an endpoint: its target reference, else its hostname.
fn pod_name(e: &k8s_openapi::api::discovery::v1::Endpoint) -> Option<String> {
    e.target_ref
        .as_ref()
        .filter(|r| r.kind.as_deref().is_none_or(|k| k == "Pod"))
        .and_then(|r| r.name.clone())
        .or_else(|| e.hostname.clone())
}

/// What the slices of one Service say about its pods. Kubernetes reads a
/// missing `ready` or `serving` as true and a missing `terminating` as false;
/// `serving` is preferred because `ready` stays true on Services that publish
/// not-ready addresses.
pub fn pod_states<'a>(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> PodStates {
    let mut out = PodStates::default();
    for slice in slices {
        for e in slice.endpoints.iter().flatten() {
            let Some(name) = pod_name(e) else {
                continue;
            };
            let c = e.conditions.as_ref();
            let serving = c.and_then(|c| c.serving.or(c.ready)).unwrap_or(true);
            let terminating = c.and_then(|c| c.terminating).unwrap_or(false);
            if serving {
                out.serving.insert(name.clone());
                if !terminating {
                    out.routable.insert(name);
                }
            }
        }
    }
    out
}

/// The slices of one Service, kept up to date from watch events.
#[derive(Debug, Default)]
pub struct SliceSet {
    slices: BTreeMap<String, EndpointSlice>,
    /// Slices of a relist in progress.
    relisting: Option<BTreeMap<String, EndpointSlice>>,
    synced: bool,
}

impl SliceSet {
    /// Applies one watch event; true when the pod states may have changed.
    pub fn apply(&mut self, event: Event<EndpointSlice>) -> bool {
        match event {
            Event::Init => {
                self.relisting = Some(BTreeMap::new());
                false
            }
            Event::InitApply(s) => {
                if let Some(r) = self.relisting.as_mut() {
                    r.insert(s.name_any(), s);
                }
                false
            }
            Event::InitDone => {
                if let Some(r) = self.relisting.take() {
                    self.slices = r;
                }
                self.synced = true;
                true
            }
            Event::Apply(s) => {
                self.slices.insert(s.name_any(), s);
                true
            }
            Event::Delete(s) => {
                self.slices.remove(&s.name_any());
                true
            }
        }
    }

    /// The pod states, once the first full list has arrived.
    pub fn states(&self) -> Option<PodStates> {
        self.synced.then(|| pod_states(self.slices.values()))
    }
}

/// The node id of a registered service: its id without the role suffix the
/// server adds (`<node>-writer`); the operator makes node ids pod names.
fn node_of(service: &ServiceRecord) -> &str {
    let suffix = format!("-{}", service.role);
    service.id.strip_suffix(suffix.as_str()).unwrap_or(&service.id)
}

/// What to keep of the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// New work (acceptors to writers, routers to queriers): routable pods.
    Route,
    /// Reads of what a pod holds (queriers to writers): serving pods.
    Read,
}

/// Keeps the services whose pods `states` allows for `use_`.
pub fn filter(services: Vec<ServiceRecord>, states: &PodStates, use_: Use) -> Vec<ServiceRecord> {
    let allowed = match use_ {
        Use::Route => &states.routable,
        Use::Read => &states.serving,
    };
    services.into_iter().filter(|s| allowed.contains(node_of(s))).collect()
}

/// The live view of the writer and querier pods.
#[derive(Debug, Clone)]
pub struct Readiness {
    states: Arc<RwLock<BTreeMap<Role, PodStates>>>,
    changes: watch::Receiver<u64>,
}

impl Readiness {
    /// Starts following the configured Services; `None` when none is
    /// configured. Runs until `shutdown`.
    pub async fn start(config: &KubernetesDiscovery, shutdown: watch::Receiver<bool>) -> Option<Readiness> {
        let services: Vec<(Role, String)> = [
            (Role::Writer, config.writer_service.clone()),
            (Role::Querier, config.querier_service.clone()),
        ]
        .into_iter()
        .filter_map(|(role, s)| s.filter(|s| !s.is_empty()).map(|s| (role, s)))
        .collect();
        if services.is_empty() {
            return None;
        }
        let namespace = config
            .namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .or_else(|| {
                std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                    .ok()
                    .map(|s| s.trim().to_owned())
            })
            .unwrap_or_else(|| "default".to_owned());
        let (tx, rx) = watch::channel(0u64);
        let readiness = Readiness {
            states: Arc::new(RwLock::new(BTreeMap::new())),
            changes: rx,
        };
        let client = match Client::try_default().await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "discovery.kubernetes is set but no Kubernetes client can be made; routing uses the catalog alone");
                return Some(readiness);
            }
        };
        let tx = Arc::new(tx);
        for (role, service) in services {
            let api: Api<EndpointSlice> = Api::namespaced(client.clone(), &namespace);
            let cfg = watcher::Config::default().labels(&format!("{SERVICE_NAME_LABEL}={service}"));
            let states = Arc::clone(&readiness.states);
            let tx = Arc::clone(&tx);
            let mut stop = shutdown.clone();
            info!(%role, %service, %namespace, "following EndpointSlices");
            tokio::spawn(async move {
                let mut set = SliceSet::default();
                let mut stream = std::pin::pin!(watch_stream(api, cfg).default_backoff());
                loop {
                    let next = tokio::select! {
                        n = stream.next() => n,
                        _ = stop.changed() => break,
                    };
                    match next {
                        Some(Ok(event)) => {
                            if set.apply(event)
                                && let Some(now) = set.states()
                            {
                                let changed = {
                                    let mut guard = match states.write() {
                                        Ok(g) => g,
                                        Err(p) => p.into_inner(),
                                    };
                                    guard.insert(role, now.clone()) != Some(now)
                                };
                                if changed {
                                    tx.send_modify(|v| *v += 1);
                                }
                            }
                        }
                        Some(Err(e)) => debug!(%role, error = %e, "EndpointSlice watch error; retrying"),
                        None => break,
                    }
                }
            });
        }
        Some(readiness)
    }

    /// A readiness fed by hand (tests, and callers that watch elsewhere).
    pub fn fixed(states: BTreeMap<Role, PodStates>) -> Readiness {
        let (_tx, rx) = watch::channel(0);
        Readiness {
            states: Arc::new(RwLock::new(states)),
            changes: rx,
        }
    }

    /// Filters `services` of `role` by their pods, when the slices of that
    /// role are known; otherwise returns them all.
    pub fn filter(&self, role: Role, services: Vec<ServiceRecord>, use_: Use) -> Vec<ServiceRecord> {
        let guard = match self.states.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let Some(states) = guard.get(&role) else {
            return services;
        };
        let registered = services.len();
        let kept = filter(services, states, use_);
        if kept.is_empty() && registered > 0 && !states.routable.is_empty() {
            // Ready pods exist, yet no registered service is one of them:
            // node ids are not pod names (the operator sets SIGNALDB_NODE_ID).
            warn!(%role, registered, ready_pods = ?states.routable,
                  "no registered service matches a ready pod; node ids must be the pod names");
        }
        kept
    }

    /// Resolves when the pod states change (or the watchers stop).
    pub async fn changed(&mut self) {
        if self.changes.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};
    use kube::api::ObjectMeta;
    use signaldb_config::Capability;

    use super::*;

    fn endpoint(pod: &str, ready: Option<bool>, serving: Option<bool>, terminating: Option<bool>) -> Endpoint {
        Endpoint {
            addresses: vec!["10.0.0.1".into()],
            conditions: Some(EndpointConditions {
                ready,
                serving,
                terminating,
            }),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                name: Some(pod.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn slice(name: &str, endpoints: Vec<Endpoint>) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: Some(endpoints),
            ports: None,
        }
    }

    fn writer(node: &str) -> ServiceRecord {
        ServiceRecord {
            id: format!("{node}-writer"),
            role: Role::Writer,
            address: format!("{node}:50051"),
            capabilities: vec![Capability::Storage],
            draining: false,
            started_at_ms: 0,
            last_heartbeat_ms: 0,
        }
    }

    #[test]
    fn conditions_follow_kubernetes_defaults() {
        let s = slice(
            "w-1",
            vec![
                endpoint("w-0", Some(true), Some(true), Some(false)),
                endpoint("w-1", Some(false), Some(false), None),
                // Ready stays true when not-ready addresses are published; serving tells.
                endpoint("w-2", Some(true), Some(false), None),
                endpoint("w-3", None, None, None),
                endpoint("w-4", Some(false), Some(true), Some(true)),
            ],
        );
        let states = pod_states([&s]);
        assert_eq!(
            states.routable,
            ["w-0", "w-3"].iter().map(|s| s.to_string()).collect::<BTreeSet<_>>()
        );
        assert_eq!(
            states.serving,
            ["w-0", "w-3", "w-4"]
                .iter()
                .map(|s| s.to_string())
                .collect::<BTreeSet<_>>()
        );
    }

    #[test]
    fn the_set_follows_relists_applies_and_deletes() {
        let mut set = SliceSet::default();
        assert_eq!(set.states(), None, "nothing is known before the first list");
        assert!(!set.apply(Event::Init));
        assert!(!set.apply(Event::InitApply(slice(
            "a",
            vec![endpoint("w-0", Some(true), None, None)]
        ))));
        assert_eq!(set.states(), None);
        assert!(set.apply(Event::InitDone));
        assert_eq!(set.states().unwrap().routable.len(), 1);
        set.apply(Event::Apply(slice("b", vec![endpoint("w-1", Some(true), None, None)])));
        assert_eq!(set.states().unwrap().routable.len(), 2);
        set.apply(Event::Delete(slice("a", vec![])));
        let now = set.states().unwrap();
        assert!(now.routable.contains("w-1") && !now.routable.contains("w-0"));
        // A relist replaces everything, but only once it is complete.
        set.apply(Event::Init);
        set.apply(Event::InitApply(slice(
            "c",
            vec![endpoint("w-2", Some(true), None, None)],
        )));
        assert!(set.states().unwrap().routable.contains("w-1"));
        set.apply(Event::InitDone);
        let now = set.states().unwrap();
        assert_eq!(now.routable.iter().collect::<Vec<_>>(), vec!["w-2"]);
    }

    #[test]
    fn filtering_keeps_pods_that_may_work() {
        let states = PodStates {
            routable: ["w-0"].iter().map(|s| s.to_string()).collect(),
            serving: ["w-0", "w-1"].iter().map(|s| s.to_string()).collect(),
        };
        let all = vec![writer("w-0"), writer("w-1"), writer("w-2")];
        let ids = |v: Vec<ServiceRecord>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(ids(filter(all.clone(), &states, Use::Route)), vec!["w-0-writer"]);
        assert_eq!(
            ids(filter(all.clone(), &states, Use::Read)),
            vec!["w-0-writer", "w-1-writer"]
        );
        let readiness = Readiness::fixed(BTreeMap::from([(Role::Writer, states)]));
        assert_eq!(readiness.filter(Role::Writer, all.clone(), Use::Route).len(), 1);
        assert_eq!(
            readiness.filter(Role::Querier, all, Use::Route).len(),
            3,
            "roles whose slices are unknown are not filtered"
        );
    }
}
