//! The last stage of the pipeline: status, computed from what was applied.
//!
//! Conditions follow the Kubernetes conventions: `Ready`, `Progressing` and
//! `Degraded`, each with a `PascalCase` reason. A condition keeps its
//! `lastTransitionTime` while its status stays the same, so a round that
//! changes nothing computes exactly the status already stored, and no write
//! follows.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use signaldb_config::Role;

use crate::apply::Problem;
use crate::crd::{AcceptorStatus, RoleStatus, ScaleDownPhase, ScaleDownStatus, SignalDBClusterStatus, WriterStatus};
use crate::drain::FailureReason;
use crate::validate::ValidationError;

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";

/// What a role's workload reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoleObservation {
    /// Pods asked for.
    pub replicas: i32,
    /// Pods ready.
    pub ready: i32,
    /// The controller has seen the latest spec and every pod runs it.
    pub rolled_out: bool,
}

impl RoleObservation {
    pub fn of_stateful_set(sts: Option<&StatefulSet>) -> Self {
        let Some(sts) = sts else {
            return Self::default();
        };
        let replicas = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let status = sts.status.as_ref();
        let ready = status.and_then(|s| s.ready_replicas).unwrap_or(0);
        let seen = status
            .and_then(|s| s.observed_generation)
            .zip(sts.metadata.generation)
            .is_some_and(|(seen, generation)| seen >= generation);
        let updated = status.and_then(|s| s.updated_replicas).unwrap_or(0);
        let revisions_match =
            status.is_some_and(|s| s.update_revision.is_none() || s.current_revision == s.update_revision);
        Self {
            replicas,
            ready,
            rolled_out: seen && (replicas == 0 || (updated >= replicas && revisions_match)),
        }
    }

    pub fn of_deployment(deployment: Option<&Deployment>) -> Self {
        let Some(d) = deployment else {
            return Self::default();
        };
        let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let status = d.status.as_ref();
        let ready = status.and_then(|s| s.ready_replicas).unwrap_or(0);
        let seen = status
            .and_then(|s| s.observed_generation)
            .zip(d.metadata.generation)
            .is_some_and(|(seen, generation)| seen >= generation);
        let updated = status.and_then(|s| s.updated_replicas).unwrap_or(0);
        let total = status.and_then(|s| s.replicas).unwrap_or(0);
        Self {
            replicas,
            ready,
            rolled_out: seen && updated >= replicas && total <= replicas,
        }
    }

    fn status(self) -> RoleStatus {
        RoleStatus {
            replicas: self.replicas,
            ready_replicas: self.ready,
        }
    }
}

/// What the reconcile did.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// `spec.paused`.
    Paused,
    /// The spec failed validation; nothing was applied.
    Invalid(&'a ValidationError),
    /// Children were applied.
    Reconciled(Reconciled<'a>),
}

/// Observations after applying.
#[derive(Debug, Clone, Copy)]
pub struct Reconciled<'a> {
    pub acceptor: RoleObservation,
    pub writer: RoleObservation,
    pub querier: RoleObservation,
    pub router: RoleObservation,
    pub compactor: RoleObservation,
    /// Label selector of the writer pods.
    pub writer_selector: &'a str,
    pub scale_down: Option<&'a ScaleDownStatus>,
    /// The acceptor scale-down in progress, if any.
    pub acceptor_scale_down: Option<&'a ScaleDownStatus>,
    pub config_hash: &'a str,
    /// Children that could not be applied.
    pub problems: &'a [Problem],
    /// Children waiting to be applied again (e.g. a StatefulSet being
    /// recreated for a larger WAL).
    pub pending: bool,
}

/// Inputs of [`compute`].
#[derive(Debug, Clone, Copy)]
pub struct StatusInputs<'a> {
    pub generation: Option<i64>,
    pub old: &'a SignalDBClusterStatus,
    pub now: &'a Time,
    pub outcome: Outcome<'a>,
}

/// Sets a condition, keeping its transition time if its status is unchanged.
fn set(
    conditions: &mut Vec<Condition>,
    inputs: &StatusInputs<'_>,
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
) {
    let last = conditions
        .iter()
        .find(|c| c.type_ == type_)
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone());
    let condition = Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: inputs.generation,
        last_transition_time: last.unwrap_or_else(|| inputs.now.clone()),
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => *c = condition,
        None => conditions.push(condition),
    }
}

/// Sets a condition only if it is not there yet.
fn set_if_absent(conditions: &mut Vec<Condition>, inputs: &StatusInputs<'_>, type_: &str, reason: &str, message: &str) {
    if !conditions.iter().any(|c| c.type_ == type_) {
        set(conditions, inputs, type_, "Unknown", reason, message.to_owned());
    }
}

fn order(conditions: &mut [Condition]) {
    let rank = |t: &str| match t {
        READY => 0,
        PROGRESSING => 1,
        DEGRADED => 2,
        _ => 3,
    };
    conditions.sort_by_key(|c| rank(&c.type_));
}

/// The status a reconcile should leave.
pub fn compute(inputs: &StatusInputs<'_>) -> SignalDBClusterStatus {
    let mut status = inputs.old.clone();
    status.observed_generation = inputs.generation;
    let mut conditions = std::mem::take(&mut status.conditions);
    match inputs.outcome {
        Outcome::Paused => {
            let message = "spec.paused is true: the operator changes nothing";
            set(
                &mut conditions,
                inputs,
                PROGRESSING,
                "False",
                "Paused",
                message.to_owned(),
            );
            set_if_absent(&mut conditions, inputs, READY, "Paused", message);
            set_if_absent(&mut conditions, inputs, DEGRADED, "Paused", message);
        }
        Outcome::Invalid(e) => {
            let message = format!("invalid spec, nothing is applied: {e}");
            set(
                &mut conditions,
                inputs,
                DEGRADED,
                "True",
                "InvalidSpec",
                message.clone(),
            );
            set(
                &mut conditions,
                inputs,
                PROGRESSING,
                "False",
                "InvalidSpec",
                message.clone(),
            );
            set_if_absent(&mut conditions, inputs, READY, "InvalidSpec", &message);
        }
        Outcome::Reconciled(r) => {
            status.acceptor = AcceptorStatus {
                replicas: r.acceptor.replicas,
                ready_replicas: r.acceptor.ready,
                scale_down: r.acceptor_scale_down.cloned(),
            };
            status.querier = r.querier.status();
            status.router = r.router.status();
            status.compactor = r.compactor.status();
            status.writer = WriterStatus {
                replicas: r.writer.replicas,
                ready_replicas: r.writer.ready,
                selector: r.writer_selector.to_owned(),
                scale_down: r.scale_down.cloned(),
            };
            status.config_hash = Some(r.config_hash.to_owned());

            let roles = [
                (Role::Acceptor, r.acceptor),
                (Role::Writer, r.writer),
                (Role::Querier, r.querier),
                (Role::Router, r.router),
                (Role::Compactor, r.compactor),
            ];
            let counts = roles
                .iter()
                .map(|(role, o)| format!("{role} {}/{}", o.ready, o.replicas))
                .collect::<Vec<_>>()
                .join(", ");
            if roles.iter().all(|(_, o)| o.ready >= o.replicas) {
                set(
                    &mut conditions,
                    inputs,
                    READY,
                    "True",
                    "AllReplicasReady",
                    format!("ready: {counts}"),
                );
            } else {
                set(
                    &mut conditions,
                    inputs,
                    READY,
                    "False",
                    "ReplicasNotReady",
                    format!("ready: {counts}"),
                );
            }

            let rolling: Vec<String> = roles
                .iter()
                .filter(|(_, o)| !o.rolled_out)
                .map(|(role, _)| role.to_string())
                .collect();
            let draining = [r.scale_down, r.acceptor_scale_down]
                .into_iter()
                .flatten()
                .find(|s| s.phase == ScaleDownPhase::Draining);
            match draining {
                Some(s) => set(
                    &mut conditions,
                    inputs,
                    PROGRESSING,
                    "True",
                    "ScalingDown",
                    s.message.clone().unwrap_or_default(),
                ),
                _ if r.pending => set(
                    &mut conditions,
                    inputs,
                    PROGRESSING,
                    "True",
                    "Recreating",
                    "recreating a StatefulSet with a larger volume claim template".to_owned(),
                ),
                _ if !rolling.is_empty() => set(
                    &mut conditions,
                    inputs,
                    PROGRESSING,
                    "True",
                    "RollingOut",
                    format!("waiting for {} to roll out", rolling.join(", ")),
                ),
                _ => set(
                    &mut conditions,
                    inputs,
                    PROGRESSING,
                    "False",
                    "UpToDate",
                    "every child matches the spec".to_owned(),
                ),
            }

            let failure = [(Role::Writer, r.scale_down), (Role::Acceptor, r.acceptor_scale_down)]
                .into_iter()
                .find_map(|(role, s)| s.filter(|s| s.phase == ScaleDownPhase::Failed).map(|s| (role, s)));
            if let Some((role, f)) = failure {
                let reason = match f.reason.as_deref() {
                    Some("DrainTimedOut") => FailureReason::DrainTimedOut,
                    _ => FailureReason::DrainFailed,
                };
                set(
                    &mut conditions,
                    inputs,
                    DEGRADED,
                    "True",
                    reason.as_str(),
                    format!(
                        "{role} scale-down from {} to {} stopped, replicas left as they are: {}",
                        f.from_replicas,
                        f.to_replicas,
                        f.message.as_deref().unwrap_or_default()
                    ),
                );
            } else if let Some(first) = r.problems.first() {
                let message = r
                    .problems
                    .iter()
                    .map(|p| p.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                set(&mut conditions, inputs, DEGRADED, "True", first.reason, message);
            } else {
                set(
                    &mut conditions,
                    inputs,
                    DEGRADED,
                    "False",
                    "AsExpected",
                    "nothing is wrong".to_owned(),
                );
            }
        }
    }
    order(&mut conditions);
    status.conditions = conditions;
    status
}

/// The condition of a type, if present.
pub fn condition<'a>(status: &'a SignalDBClusterStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(1_700_000_000 + secs).unwrap())
    }

    fn ready(n: i32) -> RoleObservation {
        RoleObservation {
            replicas: n,
            ready: n,
            rolled_out: true,
        }
    }

    fn reconciled<'a>(writer: RoleObservation, problems: &'a [Problem]) -> Outcome<'a> {
        Outcome::Reconciled(Reconciled {
            acceptor: ready(1),
            writer,
            querier: ready(1),
            router: ready(1),
            compactor: ready(1),
            writer_selector: "sel",
            scale_down: None,
            acceptor_scale_down: None,
            config_hash: "abc",
            problems,
            pending: false,
        })
    }

    fn get<'a>(s: &'a SignalDBClusterStatus, t: &str) -> (&'a str, &'a str) {
        let c = condition(s, t).unwrap();
        (c.status.as_str(), c.reason.as_str())
    }

    #[test]
    fn healthy_cluster_is_ready_and_stable() {
        let old = SignalDBClusterStatus::default();
        let now = at(0);
        let s1 = compute(&StatusInputs {
            generation: Some(3),
            old: &old,
            now: &now,
            outcome: reconciled(ready(3), &[]),
        });
        assert_eq!(s1.observed_generation, Some(3));
        assert_eq!(get(&s1, READY), ("True", "AllReplicasReady"));
        assert_eq!(get(&s1, PROGRESSING), ("False", "UpToDate"));
        assert_eq!(get(&s1, DEGRADED), ("False", "AsExpected"));
        assert_eq!(s1.writer.replicas, 3);
        assert_eq!(s1.writer.selector, "sel");
        assert_eq!(s1.config_hash.as_deref(), Some("abc"));
        let types: Vec<&str> = s1.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [READY, PROGRESSING, DEGRADED]);

        // The same observations later: the very same status (no write).
        let later = at(60);
        let s2 = compute(&StatusInputs {
            generation: Some(3),
            old: &s1,
            now: &later,
            outcome: reconciled(ready(3), &[]),
        });
        assert_eq!(s2, s1);
    }

    #[test]
    fn transitions_move_the_transition_time() {
        let now = at(0);
        let s1 = compute(&StatusInputs {
            generation: Some(1),
            old: &SignalDBClusterStatus::default(),
            now: &now,
            outcome: reconciled(
                RoleObservation {
                    replicas: 2,
                    ready: 1,
                    rolled_out: false,
                },
                &[],
            ),
        });
        assert_eq!(get(&s1, READY), ("False", "ReplicasNotReady"));
        assert_eq!(get(&s1, PROGRESSING), ("True", "RollingOut"));
        assert_eq!(
            condition(&s1, READY).unwrap().message,
            "ready: acceptor 1/1, writer 1/2, querier 1/1, router 1/1, compactor 1/1"
        );
        let later = at(30);
        let s2 = compute(&StatusInputs {
            generation: Some(1),
            old: &s1,
            now: &later,
            outcome: reconciled(ready(2), &[]),
        });
        assert_eq!(get(&s2, READY), ("True", "AllReplicasReady"));
        assert_eq!(condition(&s2, READY).unwrap().last_transition_time, later);
        assert_eq!(condition(&s2, DEGRADED).unwrap().last_transition_time, now);
    }

    #[test]
    fn problems_invalid_specs_and_pauses_are_reported() {
        let now = at(0);
        let problems = [Problem {
            reason: "WalShrinkRefused",
            message: "cannot shrink".into(),
        }];
        let s = compute(&StatusInputs {
            generation: Some(2),
            old: &SignalDBClusterStatus::default(),
            now: &now,
            outcome: reconciled(ready(1), &problems),
        });
        assert_eq!(get(&s, DEGRADED), ("True", "WalShrinkRefused"));

        let invalid = ValidationError(vec![crate::validate::FieldError {
            field: "writer.wal.size".into(),
            reason: "bad".into(),
        }]);
        let s2 = compute(&StatusInputs {
            generation: Some(3),
            old: &s,
            now: &now,
            outcome: Outcome::Invalid(&invalid),
        });
        assert_eq!(get(&s2, DEGRADED), ("True", "InvalidSpec"));
        assert_eq!(get(&s2, PROGRESSING), ("False", "InvalidSpec"));
        // Readiness is about the pods, which still run.
        assert_eq!(get(&s2, READY), ("True", "AllReplicasReady"));
        assert_eq!(s2.observed_generation, Some(3));
        assert!(
            condition(&s2, DEGRADED)
                .unwrap()
                .message
                .contains("writer.wal.size: bad")
        );

        let s3 = compute(&StatusInputs {
            generation: Some(4),
            old: &SignalDBClusterStatus::default(),
            now: &now,
            outcome: Outcome::Paused,
        });
        assert_eq!(get(&s3, PROGRESSING), ("False", "Paused"));
        assert_eq!(get(&s3, READY), ("Unknown", "Paused"));
    }

    #[test]
    fn drain_phases_show_in_conditions() {
        let now = at(0);
        let mut scale_down = ScaleDownStatus {
            phase: ScaleDownPhase::Draining,
            from_replicas: 3,
            to_replicas: 2,
            draining: vec![2],
            started_at: now.clone(),
            reason: None,
            message: Some("draining writer(s) 2".into()),
        };
        let outcome = |s: &ScaleDownStatus| -> SignalDBClusterStatus {
            compute(&StatusInputs {
                generation: Some(1),
                old: &SignalDBClusterStatus::default(),
                now: &now,
                outcome: Outcome::Reconciled(Reconciled {
                    acceptor: ready(1),
                    writer: ready(3),
                    querier: ready(1),
                    router: ready(1),
                    compactor: ready(1),
                    writer_selector: "sel",
                    scale_down: Some(s),
                    acceptor_scale_down: None,
                    config_hash: "abc",
                    problems: &[],
                    pending: false,
                }),
            })
        };
        let s = outcome(&scale_down);
        assert_eq!(get(&s, PROGRESSING), ("True", "ScalingDown"));
        assert_eq!(s.writer.scale_down.as_ref(), Some(&scale_down));
        scale_down.phase = ScaleDownPhase::Failed;
        scale_down.reason = Some("DrainTimedOut".into());
        scale_down.message = Some("timed out after 10m".into());
        let s = outcome(&scale_down);
        assert_eq!(get(&s, DEGRADED), ("True", "DrainTimedOut"));
        assert_eq!(
            condition(&s, DEGRADED).unwrap().message,
            "writer scale-down from 3 to 2 stopped, replicas left as they are: timed out after 10m"
        );
    }
}
