//! Writer scale-down through the drain protocol, end to end against the
//! in-memory API and scripted writers.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use serde_json::json;
use signaldb_operator::crd::{ScaleDownPhase, SignalDBClusterStatus};
use signaldb_operator::drain_client::{DrainError, FakeCall, FakeWriter};
use signaldb_operator::metrics::Metrics;
use signaldb_operator::reconcile::{Context, reconcile};
use signaldb_operator::status::{DEGRADED, PROGRESSING, condition};

use crate::harness::{Harness, cluster, minimal};

async fn replicas_in_sts(h: &Harness, name: &str) -> i32 {
    h.api::<StatefulSet>()
        .get(name)
        .await
        .unwrap()
        .spec
        .unwrap()
        .replicas
        .unwrap()
}

async fn writers_in_sts(h: &Harness) -> i32 {
    replicas_in_sts(h, "demo-writer").await
}

async fn status(h: &Harness) -> SignalDBClusterStatus {
    h.cluster().await.status.unwrap()
}

fn reason(s: &SignalDBClusterStatus, t: &str) -> String {
    let c = condition(s, t).unwrap();
    format!("{}/{}", c.status, c.reason)
}

/// A cluster with three ready writers holding data, drain timeout 10m.
async fn three_writers() -> Harness {
    let mut spec = minimal();
    spec["writer"] = json!({"replicas": 3, "drainTimeout": "10m"});
    let h = Harness::new(cluster("demo", spec)).await;
    for ordinal in 0..3 {
        h.drain.holding(ordinal, 1000, 200);
    }
    h.reconcile().await;
    h.make_ready().await;
    h.reconcile().await;
    h.take_writes();
    assert_eq!(writers_in_sts(&h).await, 3);
    h
}

#[tokio::test]
async fn scale_down_drains_then_shrinks() {
    let h = three_writers().await;
    // `kubectl scale sdb demo --replicas=1` (or the HPA) lowers the spec.
    h.edit(json!({"writer": {"replicas": 1}})).await;
    h.take_writes();

    let action = h.reconcile().await;
    assert_eq!(
        action,
        kube::runtime::controller::Action::requeue(h.ctx.settings.drain_poll)
    );
    // Leaving writers 1 and 2 are told to drain; the StatefulSet keeps 3.
    assert_eq!(writers_in_sts(&h).await, 3);
    assert!(h.drain.writer(1).unwrap().draining);
    assert!(h.drain.writer(2).unwrap().draining);
    assert!(!h.drain.writer(0).unwrap().draining);
    let s = status(&h).await;
    let sd = s.writer.scale_down.clone().unwrap();
    assert_eq!(sd.phase, ScaleDownPhase::Draining);
    assert_eq!(
        (sd.from_replicas, sd.to_replicas, sd.draining.clone()),
        (3, 1, vec![1, 2])
    );
    assert_eq!(s.writer.replicas, 3, "the /scale status shows the pods that still run");
    assert_eq!(reason(&s, PROGRESSING), "True/ScalingDown");

    // Writer 1 is empty, writer 2 still flushing: wait.
    h.drain.flush(1);
    h.advance(30);
    h.reconcile().await;
    assert_eq!(writers_in_sts(&h).await, 3);
    assert_eq!(
        status(&h).await.writer.scale_down.unwrap().message.as_deref(),
        Some("draining writer(s) 1, 2 before scaling from 3 to 1: 1 of 2 done")
    );

    // Both empty: shrink.
    h.drain.flush(2);
    h.advance(30);
    h.take_writes();
    h.reconcile().await;
    let writes = h.take_writes();
    assert!(
        writes.contains(&"patch StatefulSet/demo-writer".to_owned()),
        "{writes:?}"
    );
    assert_eq!(writers_in_sts(&h).await, 1);
    let s = status(&h).await;
    assert_eq!(s.writer.scale_down, None);
    assert_eq!(s.writer.replicas, 1);
    assert_eq!(reason(&s, DEGRADED), "False/AsExpected");
    let events = h.event_reasons().await;
    assert!(events.contains(&"ScaleDownStarted".to_owned()), "{events:?}");
    assert!(events.contains(&"ScaleDownCompleted".to_owned()), "{events:?}");

    // Settled: nothing more to write.
    h.make_ready().await;
    h.reconcile().await;
    h.take_writes();
    h.reconcile().await;
    assert_eq!(h.take_writes(), Vec::<String>::new());
}

#[tokio::test]
async fn a_failed_drain_keeps_the_replicas_and_degrades() {
    let h = three_writers().await;
    h.drain.set(
        2,
        FakeWriter {
            error: Some(DrainError::Refused("POST /drain answered 404 Not Found".into())),
            ..FakeWriter::default()
        },
    );
    h.edit(json!({"writer": {"replicas": 2}})).await;
    h.reconcile().await;
    h.advance(5);
    h.reconcile().await;
    assert_eq!(writers_in_sts(&h).await, 3);
    let s = status(&h).await;
    let sd = s.writer.scale_down.clone().unwrap();
    assert_eq!(sd.phase, ScaleDownPhase::Failed);
    assert_eq!(sd.reason.as_deref(), Some("DrainFailed"));
    assert_eq!(reason(&s, DEGRADED), "True/DrainFailed");
    let message = &condition(&s, DEGRADED).unwrap().message;
    assert!(message.contains("writer 2: POST /drain answered 404"), "{message}");
    assert!(h.event_reasons().await.contains(&"DrainFailed".to_owned()));

    // Sticky: later rounds change nothing.
    h.take_writes();
    h.advance(60);
    h.reconcile().await;
    assert_eq!(h.take_writes(), Vec::<String>::new());
    assert_eq!(writers_in_sts(&h).await, 3);
}

#[tokio::test]
async fn a_drain_that_never_finishes_times_out() {
    let h = three_writers().await;
    h.edit(json!({"writer": {"replicas": 2}})).await;
    h.reconcile().await;
    h.advance(9 * 60);
    h.reconcile().await;
    assert_eq!(
        status(&h).await.writer.scale_down.unwrap().phase,
        ScaleDownPhase::Draining
    );
    h.advance(2 * 60);
    h.reconcile().await;
    assert_eq!(writers_in_sts(&h).await, 3);
    let s = status(&h).await;
    assert_eq!(reason(&s, DEGRADED), "True/DrainTimedOut");
    let message = &condition(&s, DEGRADED).unwrap().message;
    assert!(
        message.contains("timed out after 10m: writer 2: 1000 bytes buffered, 200 bytes in its WAL"),
        "{message}"
    );
    assert!(h.event_reasons().await.contains(&"DrainTimedOut".to_owned()));
}

#[tokio::test]
async fn scaling_up_during_a_drain_cancels_it() {
    let h = three_writers().await;
    h.edit(json!({"writer": {"replicas": 1}})).await;
    h.reconcile().await;
    assert!(h.drain.writer(2).unwrap().draining);

    h.edit(json!({"writer": {"replicas": 4}})).await;
    h.take_writes();
    h.reconcile().await;
    let writes = h.take_writes();
    // The drained writers that stay are restarted (their pods deleted; here
    // there are none to delete), and the StatefulSet grows.
    assert!(writes.contains(&"delete demo-writer-1".to_owned()), "{writes:?}");
    assert!(writes.contains(&"delete demo-writer-2".to_owned()), "{writes:?}");
    assert_eq!(writers_in_sts(&h).await, 4);
    let s = status(&h).await;
    assert_eq!(s.writer.scale_down, None);
    assert!(h.event_reasons().await.contains(&"ScaleDownCancelled".to_owned()));
}

#[tokio::test]
async fn a_restarted_operator_resumes_the_drain() {
    let h = three_writers().await;
    h.edit(json!({"writer": {"replicas": 2}})).await;
    h.reconcile().await;
    let started = status(&h).await.writer.scale_down.unwrap();
    assert_eq!(started.draining, [2]);

    // A new operator process: fresh context and metrics, same API state and
    // the same writers (still draining, since they were told so).
    let fresh = Arc::new(
        Context::new(h.client.clone(), Arc::new(h.drain.clone()), Metrics::shared(), None)
            .with_clock(Arc::clone(&h.ctx.clock)),
    );
    let calls_before = h.drain.calls().len();
    h.drain.flush(2);
    h.advance(20);
    let cluster = Arc::new(h.cluster().await);
    reconcile(cluster, fresh).await.unwrap();
    // It only asked for the status: no second POST /drain.
    assert_eq!(h.drain.calls()[calls_before..], [FakeCall::Status(2)]);
    assert_eq!(writers_in_sts(&h).await, 2);
    assert_eq!(status(&h).await.writer.scale_down, None);
}

#[tokio::test]
async fn a_writer_that_restarted_mid_drain_is_told_again() {
    let h = three_writers().await;
    h.edit(json!({"writer": {"replicas": 2}})).await;
    h.reconcile().await;
    // The pod restarted and forgot it was draining.
    h.drain.restart(2);
    h.advance(5);
    h.reconcile().await;
    assert!(h.drain.writer(2).unwrap().draining);
    assert_eq!(writers_in_sts(&h).await, 3);
    h.drain.flush(2);
    h.advance(5);
    h.reconcile().await;
    assert_eq!(writers_in_sts(&h).await, 2);
}

async fn acceptors_in_sts(h: &Harness) -> i32 {
    replicas_in_sts(h, "demo-acceptor").await
}

/// Acceptors leave the same way: the leaving ones are told to drain (they
/// refuse new requests and deliver their WALs), and the StatefulSet
/// shrinks only once every one reports an empty WAL, so no acknowledged
/// request stays behind on a claim nobody reads.
#[tokio::test]
async fn acceptor_scale_down_waits_for_their_wals_to_be_delivered() {
    let mut spec = minimal();
    spec["acceptor"] = json!({"replicas": 3});
    let h = Harness::new(cluster("demo", spec)).await;
    for ordinal in 0..3 {
        h.drain.acceptor_holding(ordinal, 4096);
    }
    h.reconcile().await;
    h.make_ready().await;
    h.reconcile().await;
    h.take_writes();
    assert_eq!(acceptors_in_sts(&h).await, 3);

    h.edit(json!({"acceptor": {"replicas": 2}})).await;
    h.reconcile().await;
    assert_eq!(
        acceptors_in_sts(&h).await,
        3,
        "acceptor 2 still holds undelivered requests"
    );
    assert!(h.drain.acceptor(2).unwrap().draining);
    assert!(!h.drain.acceptor(1).unwrap().draining);
    let s = status(&h).await;
    let sd = s.acceptor.scale_down.clone().unwrap();
    assert_eq!(sd.phase, ScaleDownPhase::Draining);
    assert_eq!((sd.from_replicas, sd.to_replicas, sd.draining.clone()), (3, 2, vec![2]));
    assert_eq!(s.acceptor.replicas, 3);
    assert_eq!(s.writer.scale_down, None, "writers are not touched");
    assert_eq!(reason(&s, PROGRESSING), "True/ScalingDown");
    assert_eq!(
        sd.message.as_deref(),
        Some("draining acceptor(s) 2 before scaling from 3 to 2: 0 of 1 done")
    );

    // Its WAL delivered: the StatefulSet shrinks.
    h.drain.deliver(2);
    h.advance(30);
    h.reconcile().await;
    assert_eq!(acceptors_in_sts(&h).await, 2);
    let s = status(&h).await;
    assert_eq!(s.acceptor.scale_down, None);
    assert_eq!(s.acceptor.replicas, 2);
    assert!(
        h.drain.calls().contains(&FakeCall::AcceptorStart(2)),
        "{:?}",
        h.drain.calls()
    );
}

/// An acceptor that cannot deliver (writers down) holds the scale-down
/// until the drain timeout; then the cluster is Degraded and keeps the
/// acceptor, with its WAL, rather than strand what it acknowledged.
#[tokio::test]
async fn an_acceptor_that_cannot_deliver_keeps_its_pod() {
    let mut spec = minimal();
    spec["acceptor"] = json!({"replicas": 2});
    spec["writer"] = json!({"drainTimeout": "10m"});
    let h = Harness::new(cluster("demo", spec)).await;
    for ordinal in 0..2 {
        h.drain.acceptor_holding(ordinal, 4096);
    }
    h.reconcile().await;
    h.make_ready().await;
    h.reconcile().await;
    h.edit(json!({"acceptor": {"replicas": 1}})).await;
    h.reconcile().await;
    h.advance(11 * 60);
    h.reconcile().await;
    assert_eq!(acceptors_in_sts(&h).await, 2);
    let s = status(&h).await;
    assert_eq!(s.acceptor.scale_down.as_ref().unwrap().phase, ScaleDownPhase::Failed);
    assert_eq!(reason(&s, DEGRADED), "True/DrainTimedOut");
    assert!(
        condition(&s, DEGRADED)
            .unwrap()
            .message
            .starts_with("acceptor scale-down")
    );
}
