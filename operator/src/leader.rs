//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several
//! operator replicas exactly one reconciles.
//!
//! The holder renews the lease every few seconds; another replica takes it
//! over once `renewTime + leaseDurationSeconds` has passed. Every write
//! carries the lease's `resourceVersion`, so two replicas racing for it
//! cannot both win. [`decide`] is the pure rule; [`LeaseLock`] applies it.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};

/// What to do about a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseAction {
    /// No lease yet: create it, holding it.
    Create,
    /// We hold it: renew.
    Renew,
    /// Its holder let it expire (or released it): take it over.
    TakeOver,
    /// Someone else holds it.
    Wait,
}

/// Decides what to do about a lease, as of `now`.
pub fn decide(lease: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> LeaseAction {
    let Some(spec) = lease else {
        return LeaseAction::Create;
    };
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == identity => LeaseAction::Renew,
        None | Some("") => LeaseAction::TakeOver,
        Some(_) => {
            let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15).max(1)));
            let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()).map(|t| t.0);
            match renewed.and_then(|r| r.checked_add(duration).ok()) {
                Some(expiry) if expiry > now => LeaseAction::Wait,
                _ => LeaseAction::TakeOver,
            }
        }
    }
}

/// One replica's handle on the lease.
#[derive(Clone)]
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

impl std::fmt::Debug for LeaseLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseLock")
            .field("name", &self.name)
            .field("identity", &self.identity)
            .field("duration", &self.duration)
            .finish_non_exhaustive()
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl LeaseLock {
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str, duration: Duration) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            duration,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    /// Acquires or renews the lease; `Ok(true)` if this replica holds it
    /// afterwards. Losing a race is `Ok(false)`, not an error.
    pub async fn try_acquire_or_renew(&self, now: Timestamp) -> Result<bool, kube::Error> {
        let existing = self.api.get_opt(&self.name).await?;
        let action = decide(existing.as_ref().and_then(|l| l.spec.as_ref()), &self.identity, now);
        let stamp = Some(MicroTime(now));
        let result = match (action, existing) {
            (LeaseAction::Wait, _) => return Ok(false),
            (LeaseAction::Create, _) | (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(self.duration_seconds()),
                        acquire_time: stamp.clone(),
                        renew_time: stamp,
                        lease_transitions: Some(0),
                        ..Default::default()
                    }),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            (LeaseAction::Renew, Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                spec.renew_time = stamp;
                spec.lease_duration_seconds = Some(self.duration_seconds());
                self.api.replace(&self.name, &PostParams::default(), &lease).await
            }
            (LeaseAction::TakeOver, Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                spec.holder_identity = Some(self.identity.clone());
                spec.acquire_time = stamp.clone();
                spec.renew_time = stamp;
                spec.lease_duration_seconds = Some(self.duration_seconds());
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                self.api.replace(&self.name, &PostParams::default(), &lease).await
            }
        };
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the lease up so that another replica takes over at once.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(()),
            Err(e) if is_conflict(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn held_by(holder: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(t(renewed))),
            ..Default::default()
        }
    }

    #[test]
    fn lease_rules() {
        assert_eq!(decide(None, "a", t(0)), LeaseAction::Create);
        assert_eq!(decide(Some(&held_by("a", 0)), "a", t(100)), LeaseAction::Renew);
        assert_eq!(decide(Some(&held_by("b", 0)), "a", t(14)), LeaseAction::Wait);
        assert_eq!(decide(Some(&held_by("b", 0)), "a", t(16)), LeaseAction::TakeOver);
        let released = LeaseSpec {
            holder_identity: None,
            ..held_by("b", 0)
        };
        assert_eq!(decide(Some(&released), "a", t(1)), LeaseAction::TakeOver);
        let never_renewed = LeaseSpec {
            renew_time: None,
            ..held_by("b", 0)
        };
        assert_eq!(decide(Some(&never_renewed), "a", t(1)), LeaseAction::TakeOver);
    }
}
