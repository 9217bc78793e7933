//! Safe scale-down of writers and acceptors, as a pure state machine.
//!
//! Written for writers (below); acceptors go the same way, with
//! `status.acceptor.scaleDown`: a draining acceptor refuses new requests
//! and delivers its WAL, and reports `done` once the WAL is empty.
//!
//! When `spec.writer.replicas` drops below what the writer StatefulSet has,
//! the writers that would go (the highest ordinals) are told to drain: they
//! leave routing, refuse new data and flush their buffers and WALs to
//! storage. Only when every leaving writer reports `done` does the operator
//! shrink the StatefulSet. A drain that fails or times out leaves the
//! replicas as they are and the cluster `Degraded`.
//!
//! The state lives in the resource's status (`status.writer.scaleDown`), so a
//! restarted operator resumes where the last one stopped. [`decide`] takes
//! everything it needs as arguments (desired and current replicas, the state,
//! what each draining writer reported, the clock and the timeout) and
//! returns what to do, so every path is unit-tested below.
//!
//! The reconciler's part, each round:
//! 1. for every ordinal in `state.draining`, ask the writer for its drain
//!    status (re-sending `POST /drain` to a writer that does not report
//!    draining, e.g. after a restart) and pass the results as `probes`;
//! 2. call [`decide`];
//! 3. persist the new state in status *before* acting, so that a crash
//!    between the two never leaves a writer draining without a record;
//! 4. send `POST /drain` to [`DrainAction::StartDrain`] ordinals and restart
//!    the pods of [`DrainAction::Restart`] ordinals (a drained writer that
//!    stays, because the scale-down was cancelled or reduced; restarting it
//!    clears its draining flag, and it has nothing left to lose).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::crd::{ScaleDownPhase, ScaleDownStatus};

/// What a writer answers on `GET /drain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriterDrainStatus {
    pub draining: bool,
    pub buffered_bytes: u64,
    pub wal_pending_bytes: u64,
    /// Draining, and nothing is buffered or pending.
    pub done: bool,
}

/// What the operator learnt about one draining writer this round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The writer answered.
    Status(WriterDrainStatus),
    /// The writer could not be reached (no pod IP yet, connection refused,
    /// a 5xx). Tolerated until the timeout.
    Unreachable(String),
    /// The writer refused to drain or answered nonsense. Fails the
    /// scale-down at once.
    Failed(String),
}

/// Something the reconciler must do after persisting the new state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DrainAction {
    /// `POST /drain` to this writer ordinal.
    StartDrain(i32),
    /// Delete this writer's pod so that it comes back without the draining
    /// flag (it has been drained, so nothing is lost).
    Restart(i32),
}

/// A transition worth a Kubernetes event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrainEvent {
    Started { from: i32, to: i32 },
    Completed { from: i32, to: i32 },
    Cancelled { replicas: i32 },
    Failed { reason: FailureReason, message: String },
}

/// Why a scale-down failed; the reason of the `Degraded` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    DrainFailed,
    DrainTimedOut,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::DrainFailed => "DrainFailed",
            FailureReason::DrainTimedOut => "DrainTimedOut",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The inputs of one decision.
#[derive(Debug, Clone, Copy)]
pub struct DrainInputs<'a> {
    /// The role's `spec.*.replicas`.
    pub desired: i32,
    /// `spec.replicas` of the role's StatefulSet; `None` before it exists.
    pub current: Option<i32>,
    /// The role's `status.*.scaleDown` as last persisted.
    pub state: Option<&'a ScaleDownStatus>,
    /// What each ordinal of `state.draining` reported this round.
    pub probes: &'a BTreeMap<i32, Probe>,
    pub now: Timestamp,
    /// `spec.writer.drainTimeout`.
    pub timeout: Duration,
    /// What the leaving pods are, for messages: `writer` or `acceptor`.
    pub noun: &'static str,
}

/// The outcome of one decision.
#[derive(Debug, Clone, PartialEq)]
pub struct DrainDecision {
    /// Replicas the StatefulSet should have now.
    pub replicas: i32,
    /// The state to persist (`None`: no scale-down in progress).
    pub state: Option<ScaleDownStatus>,
    /// What to do once the state is persisted, in order.
    pub actions: Vec<DrainAction>,
    /// A transition to announce.
    pub event: Option<DrainEvent>,
}

impl DrainDecision {
    /// Whether the operator should look again soon.
    pub fn in_progress(&self) -> bool {
        self.state.as_ref().is_some_and(|s| s.phase == ScaleDownPhase::Draining)
    }

    /// The reason of a failed scale-down, if it failed.
    pub fn failure(&self) -> Option<(FailureReason, &str)> {
        let state = self.state.as_ref()?;
        if state.phase != ScaleDownPhase::Failed {
            return None;
        }
        let message = state.message.as_deref().unwrap_or_default();
        let reason = match state.reason.as_deref() {
            Some("DrainTimedOut") => FailureReason::DrainTimedOut,
            _ => FailureReason::DrainFailed,
        };
        Some((reason, message))
    }
}

/// The ordinals a scale-down from `current` to `desired` removes.
pub fn leaving(desired: i32, current: i32) -> Vec<i32> {
    (desired.max(0)..current).collect()
}

fn list(ordinals: &[i32]) -> String {
    ordinals.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

fn progress(noun: &str, state: &ScaleDownStatus, done: usize) -> String {
    format!(
        "draining {noun}(s) {} before scaling from {} to {}: {done} of {} done",
        list(&state.draining),
        state.from_replicas,
        state.to_replicas,
        state.draining.len()
    )
}

/// Decides what to do about writer replicas this round.
pub fn decide(inputs: &DrainInputs<'_>) -> DrainDecision {
    let desired = inputs.desired;
    let current = inputs.current.unwrap_or(desired);

    // No scale-down, or the scale-down was cancelled by a scale-up.
    if desired >= current {
        let Some(state) = inputs.state else {
            return DrainDecision {
                replicas: desired,
                state: None,
                actions: Vec::new(),
                event: None,
            };
        };
        return DrainDecision {
            replicas: desired,
            state: None,
            actions: state
                .draining
                .iter()
                .filter(|o| **o < current)
                .map(|o| DrainAction::Restart(*o))
                .collect(),
            event: Some(DrainEvent::Cancelled { replicas: desired }),
        };
    }

    let leaving = leaving(desired, current);
    let Some(old) = inputs.state else {
        // A new scale-down.
        let mut state = ScaleDownStatus {
            phase: ScaleDownPhase::Draining,
            from_replicas: current,
            to_replicas: desired,
            draining: leaving.clone(),
            started_at: Time(inputs.now),
            reason: None,
            message: None,
        };
        state.message = Some(progress(inputs.noun, &state, 0));
        return DrainDecision {
            replicas: current,
            state: Some(state),
            actions: leaving.iter().map(|o| DrainAction::StartDrain(*o)).collect(),
            event: Some(DrainEvent::Started {
                from: current,
                to: desired,
            }),
        };
    };

    // A scale-down in progress; the target may have moved.
    let mut actions: Vec<DrainAction> = old
        .draining
        .iter()
        .filter(|o| **o < desired)
        .map(|o| DrainAction::Restart(*o))
        .collect();
    let added: Vec<i32> = leaving.iter().copied().filter(|o| !old.draining.contains(o)).collect();
    actions.extend(added.iter().map(|o| DrainAction::StartDrain(*o)));

    let mut state = ScaleDownStatus {
        phase: old.phase,
        from_replicas: current,
        to_replicas: desired,
        draining: leaving.clone(),
        started_at: old.started_at.clone(),
        reason: old.reason.clone(),
        message: old.message.clone(),
    };
    let mut event = None;
    if !added.is_empty() {
        // More writers to drain: they get a full timeout, and an earlier
        // failure is retried.
        state.phase = ScaleDownPhase::Draining;
        state.started_at = Time(inputs.now);
        state.reason = None;
        event = Some(DrainEvent::Started {
            from: current,
            to: desired,
        });
    } else if old.to_replicas != desired {
        event = Some(DrainEvent::Started {
            from: current,
            to: desired,
        });
    }

    // What the writers told to drain (and still leaving) report.
    let noun = inputs.noun;
    let mut done = 0;
    let mut failure: Option<String> = None;
    let mut waiting: Vec<String> = Vec::new();
    for ordinal in leaving.iter().filter(|o| !added.contains(o)) {
        match inputs.probes.get(ordinal) {
            Some(Probe::Status(s)) if s.draining && s.done => done += 1,
            Some(Probe::Status(s)) => waiting.push(format!(
                "{noun} {ordinal}: {} bytes buffered, {} bytes in its WAL{}",
                s.buffered_bytes,
                s.wal_pending_bytes,
                if s.draining { "" } else { ", not draining" }
            )),
            Some(Probe::Failed(reason)) => {
                if failure.is_none() {
                    failure = Some(format!("{noun} {ordinal}: {reason}"));
                }
            }
            Some(Probe::Unreachable(reason)) => waiting.push(format!("{noun} {ordinal}: unreachable ({reason})")),
            None => waiting.push(format!("{noun} {ordinal}: no report")),
        }
    }

    if added.is_empty() && done == leaving.len() {
        // Every leaving writer is empty: shrink.
        return DrainDecision {
            replicas: desired,
            state: None,
            actions,
            event: Some(DrainEvent::Completed {
                from: current,
                to: desired,
            }),
        };
    }

    if state.phase == ScaleDownPhase::Draining {
        let elapsed = inputs.now.duration_since(state.started_at.0).unsigned_abs();
        let failed = if let Some(reason) = failure {
            Some((FailureReason::DrainFailed, format!("drain failed: {reason}")))
        } else if elapsed > inputs.timeout {
            Some((
                FailureReason::DrainTimedOut,
                format!(
                    "timed out after {}: {}",
                    humantime::format_duration(inputs.timeout),
                    waiting.join("; ")
                ),
            ))
        } else {
            None
        };
        match failed {
            Some((reason, message)) => {
                state.phase = ScaleDownPhase::Failed;
                state.reason = Some(reason.as_str().to_owned());
                state.message = Some(message.clone());
                event = Some(DrainEvent::Failed { reason, message });
            }
            None => state.message = Some(progress(inputs.noun, &state, done)),
        }
    }

    DrainDecision {
        replicas: current,
        state: Some(state),
        actions,
        event,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(600);

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn status(draining: bool, buffered: u64, pending: u64) -> Probe {
        Probe::Status(WriterDrainStatus {
            draining,
            buffered_bytes: buffered,
            wal_pending_bytes: pending,
            done: draining && buffered == 0 && pending == 0,
        })
    }

    fn run(
        desired: i32,
        current: Option<i32>,
        state: Option<&ScaleDownStatus>,
        probes: &[(i32, Probe)],
        now: i64,
    ) -> DrainDecision {
        let probes: BTreeMap<i32, Probe> = probes.iter().cloned().collect();
        decide(&DrainInputs {
            desired,
            current,
            state,
            probes: &probes,
            now: t(now),
            timeout: TIMEOUT,
            noun: "writer",
        })
    }

    #[test]
    fn steady_state_and_scale_up_do_nothing_special() {
        for (desired, current) in [(3, Some(3)), (3, None), (5, Some(3))] {
            let d = run(desired, current, None, &[], 0);
            assert_eq!(d.replicas, desired);
            assert_eq!(d.state, None);
            assert!(d.actions.is_empty());
            assert_eq!(d.event, None);
            assert!(!d.in_progress());
        }
    }

    #[test]
    fn scale_down_succeeds_after_every_leaving_writer_is_empty() {
        // 5 -> 3: writers 3 and 4 are told to drain; replicas stay at 5.
        let d1 = run(3, Some(5), None, &[], 0);
        assert_eq!(d1.replicas, 5);
        assert_eq!(d1.actions, [DrainAction::StartDrain(3), DrainAction::StartDrain(4)]);
        assert_eq!(d1.event, Some(DrainEvent::Started { from: 5, to: 3 }));
        let s1 = d1.state.clone().unwrap();
        assert_eq!(s1.phase, ScaleDownPhase::Draining);
        assert_eq!(s1.draining, [3, 4]);
        assert_eq!(s1.started_at, Time(t(0)));
        assert!(d1.in_progress());

        // One writer is still flushing.
        let d2 = run(
            3,
            Some(5),
            Some(&s1),
            &[(3, status(true, 0, 0)), (4, status(true, 100, 20))],
            30,
        );
        assert_eq!(d2.replicas, 5);
        assert!(d2.actions.is_empty());
        assert_eq!(d2.event, None);
        let s2 = d2.state.clone().unwrap();
        assert_eq!(s2.phase, ScaleDownPhase::Draining);
        assert_eq!(
            s2.message.as_deref(),
            Some("draining writer(s) 3, 4 before scaling from 5 to 3: 1 of 2 done")
        );

        // Both are empty: shrink, forget the state.
        let d3 = run(
            3,
            Some(5),
            Some(&s2),
            &[(3, status(true, 0, 0)), (4, status(true, 0, 0))],
            60,
        );
        assert_eq!(d3.replicas, 3);
        assert_eq!(d3.state, None);
        assert!(d3.actions.is_empty());
        assert_eq!(d3.event, Some(DrainEvent::Completed { from: 5, to: 3 }));

        // The next round sees the shrunk StatefulSet: steady.
        let d4 = run(3, Some(3), None, &[], 61);
        assert_eq!((d4.replicas, d4.state, d4.event), (3, None, None));
    }

    #[test]
    fn a_writer_that_refuses_fails_the_scale_down_and_keeps_replicas() {
        let s = run(2, Some(3), None, &[], 0).state.unwrap();
        let d = run(
            2,
            Some(3),
            Some(&s),
            &[(2, Probe::Failed("POST /drain answered 404".into()))],
            5,
        );
        assert_eq!(d.replicas, 3);
        let state = d.state.clone().unwrap();
        assert_eq!(state.phase, ScaleDownPhase::Failed);
        assert_eq!(
            d.failure(),
            Some((
                FailureReason::DrainFailed,
                "drain failed: writer 2: POST /drain answered 404"
            ))
        );
        assert!(matches!(
            d.event,
            Some(DrainEvent::Failed {
                reason: FailureReason::DrainFailed,
                ..
            })
        ));
        assert!(!d.in_progress());

        // Failed is sticky: no new event, replicas unchanged.
        let again = run(2, Some(3), Some(&state), &[(2, Probe::Failed("still 404".into()))], 500);
        assert_eq!(again.replicas, 3);
        assert_eq!(again.event, None);
        assert_eq!(again.state.as_ref().unwrap().message, state.message);

        // ... until the writer does report empty after all: then shrink.
        let healed = run(2, Some(3), Some(&state), &[(2, status(true, 0, 0))], 900);
        assert_eq!(healed.replicas, 2);
        assert_eq!(healed.state, None);
    }

    #[test]
    fn a_drain_that_takes_too_long_times_out() {
        let s = run(1, Some(2), None, &[], 0).state.unwrap();
        // Unreachable is tolerated before the timeout.
        let d = run(
            1,
            Some(2),
            Some(&s),
            &[(1, Probe::Unreachable("connection refused".into()))],
            599,
        );
        assert_eq!(d.state.as_ref().unwrap().phase, ScaleDownPhase::Draining);
        assert_eq!(d.event, None);

        let d = run(1, Some(2), Some(&s), &[(1, status(true, 4096, 512))], 601);
        assert_eq!(d.replicas, 2);
        let (reason, message) = d.failure().unwrap();
        assert_eq!(reason, FailureReason::DrainTimedOut);
        assert_eq!(
            message,
            "timed out after 10m: writer 1: 4096 bytes buffered, 512 bytes in its WAL"
        );
        assert!(matches!(
            d.event,
            Some(DrainEvent::Failed {
                reason: FailureReason::DrainTimedOut,
                ..
            })
        ));
    }

    #[test]
    fn scale_up_during_a_drain_cancels_it_and_restarts_drained_writers() {
        let s = run(2, Some(4), None, &[], 0).state.unwrap();
        assert_eq!(s.draining, [2, 3]);

        // Back to 4: both drained writers stay, so they are restarted.
        let d = run(4, Some(4), Some(&s), &[(2, status(true, 0, 0))], 10);
        assert_eq!(d.replicas, 4);
        assert_eq!(d.state, None);
        assert_eq!(d.actions, [DrainAction::Restart(2), DrainAction::Restart(3)]);
        assert_eq!(d.event, Some(DrainEvent::Cancelled { replicas: 4 }));

        // Up to 6 from the middle of a drain: same, and the set grows.
        let d = run(6, Some(4), Some(&s), &[], 10);
        assert_eq!(d.replicas, 6);
        assert_eq!(d.actions, [DrainAction::Restart(2), DrainAction::Restart(3)]);

        // Part-way up, 4 -> 2 becomes 4 -> 3: writer 2 stays and is
        // restarted, writer 3 keeps draining.
        let d = run(3, Some(4), Some(&s), &[(3, status(true, 10, 0))], 10);
        assert_eq!(d.replicas, 4);
        assert_eq!(d.actions, [DrainAction::Restart(2)]);
        let st = d.state.unwrap();
        assert_eq!(st.draining, [3]);
        assert_eq!(st.to_replicas, 3);
        assert_eq!(st.started_at, s.started_at);
        assert_eq!(d.event, Some(DrainEvent::Started { from: 4, to: 3 }));
    }

    #[test]
    fn further_scale_down_during_a_drain_adds_writers_with_a_fresh_timeout() {
        let s = run(3, Some(4), None, &[], 0).state.unwrap();
        let d = run(2, Some(4), Some(&s), &[(3, status(true, 0, 0))], 300);
        assert_eq!(d.replicas, 4);
        assert_eq!(d.actions, [DrainAction::StartDrain(2)]);
        let st = d.state.unwrap();
        assert_eq!(st.draining, [2, 3]);
        assert_eq!(st.started_at, Time(t(300)));
        assert_eq!(st.phase, ScaleDownPhase::Draining);

        // A failed scale-down is retried when the target drops further.
        let mut failed = s.clone();
        failed.phase = ScaleDownPhase::Failed;
        let d = run(2, Some(4), Some(&failed), &[], 700);
        assert_eq!(d.state.unwrap().phase, ScaleDownPhase::Draining);
    }

    #[test]
    fn a_restarted_operator_resumes_from_the_persisted_state() {
        // The first operator started the drain and persisted its state...
        let persisted = run(1, Some(3), None, &[], 0).state.unwrap();
        let yaml = serde_yaml_ng::to_string(&persisted).unwrap();
        // ... and died. The new one reads it back from status.
        let resumed: ScaleDownStatus = serde_yaml_ng::from_str(&yaml).unwrap();
        assert_eq!(resumed, persisted);

        // It does not start over (no new StartDrain, no new event) ...
        let d = run(
            1,
            Some(3),
            Some(&resumed),
            &[(1, status(true, 5, 0)), (2, status(true, 0, 0))],
            120,
        );
        assert!(d.actions.is_empty());
        assert_eq!(d.event, None);
        assert_eq!(d.state.as_ref().unwrap().started_at, Time(t(0)));
        // ... and the original clock still bounds the drain.
        let d = run(1, Some(3), Some(&resumed), &[(1, status(true, 5, 0))], 601);
        assert_eq!(d.failure().unwrap().0, FailureReason::DrainTimedOut);
        // It finishes the job.
        let d = run(
            1,
            Some(3),
            Some(&resumed),
            &[(1, status(true, 0, 0)), (2, status(true, 0, 0))],
            130,
        );
        assert_eq!(d.replicas, 1);
        assert_eq!(d.event, Some(DrainEvent::Completed { from: 3, to: 1 }));
    }

    #[test]
    fn a_writer_that_forgot_it_was_draining_is_not_done() {
        // E.g. the pod restarted: it reports draining=false and nothing
        // buffered. That is not "drained": the reconciler re-sends POST
        // /drain, and the scale-down waits.
        let s = run(1, Some(2), None, &[], 0).state.unwrap();
        let d = run(1, Some(2), Some(&s), &[(1, status(false, 0, 0))], 10);
        assert_eq!(d.replicas, 2);
        assert!(d.in_progress());
    }

    #[test]
    fn exhaustive_small_cases_never_shrink_below_an_undrained_writer() {
        let probes_for = |kind: u8, ordinals: &[i32]| -> Vec<(i32, Probe)> {
            ordinals
                .iter()
                .map(|o| {
                    let p = match kind {
                        0 => status(true, 0, 0),
                        1 => status(true, 1, 0),
                        2 => status(false, 0, 0),
                        3 => Probe::Unreachable("x".into()),
                        _ => Probe::Failed("y".into()),
                    };
                    (*o, p)
                })
                .collect()
        };
        for current in 1..=4 {
            for desired in 1..=4 {
                for start_target in 1..current {
                    let state = run(start_target, Some(current), None, &[], 0).state;
                    for kind in 0..5u8 {
                        for now in [1, 10_000] {
                            let drained = state.as_ref().map(|s| s.draining.clone()).unwrap_or_default();
                            let probes = probes_for(kind, &drained);
                            let d = run(desired, Some(current), state.as_ref(), &probes, now);
                            if d.replicas < current {
                                // Shrinking is only allowed when every
                                // removed ordinal reported done.
                                assert_eq!(kind, 0, "{current}->{desired} kind {kind}");
                                for o in leaving(d.replicas, current) {
                                    assert!(drained.contains(&o));
                                }
                                assert_eq!(d.replicas, desired);
                            }
                            assert!(d.replicas >= desired.min(current));
                            if desired >= current {
                                assert_eq!(d.state, None);
                            }
                        }
                    }
                }
            }
        }
    }
}
