//! The operator's own Prometheus metrics, served on `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

fn label(key: &str, value: &str) -> Labels {
    vec![(key.to_owned(), value.to_owned())]
}

/// Counters and histograms of the controller.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    duration: Histogram,
    applied: Family<Labels, Counter>,
    deleted: Family<Labels, Counter>,
    scale_downs: Family<Labels, Counter>,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("signaldb_operator");
        let reconciles = Family::<Labels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles of SignalDBClusters, by result (ok, error)",
            reconciles.clone(),
        );
        let errors = Family::<Labels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Failed reconciles, by kind of error",
            errors.clone(),
        );
        let duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register("reconcile_duration_seconds", "Time a reconcile takes", duration.clone());
        let applied = Family::<Labels, Counter>::default();
        registry.register(
            "children_applied",
            "Children created or changed with server-side apply, by kind",
            applied.clone(),
        );
        let deleted = Family::<Labels, Counter>::default();
        registry.register(
            "children_deleted",
            "Children deleted because they were no longer wanted, by kind",
            deleted.clone(),
        );
        let scale_downs = Family::<Labels, Counter>::default();
        registry.register(
            "writer_scale_downs",
            "Writer scale-down transitions, by event (started, completed, cancelled, failed)",
            scale_downs.clone(),
        );
        let leader = Gauge::default();
        registry.register("leader", "1 while this replica holds the leader lease", leader.clone());
        Self {
            registry,
            reconciles,
            errors,
            duration,
            applied,
            deleted,
            scale_downs,
            leader,
        }
    }

    pub fn shared() -> Arc<Self> {
        Arc::new(Self::new())
    }

    /// Records a finished reconcile.
    pub fn reconciled(&self, took: Duration, error: Option<&'static str>) {
        self.duration.observe(took.as_secs_f64());
        let result = if error.is_some() { "error" } else { "ok" };
        self.reconciles.get_or_create(&label("result", result)).inc();
        if let Some(e) = error {
            self.errors.get_or_create(&label("error", e)).inc();
        }
    }

    pub fn applied(&self, kind: &str) {
        self.applied.get_or_create(&label("kind", kind)).inc();
    }

    pub fn deleted(&self, kind: &str) {
        self.deleted.get_or_create(&label("kind", kind)).inc();
    }

    pub fn scale_down(&self, event: &str) {
        self.scale_downs.get_or_create(&label("event", event)).inc();
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_counters() {
        let m = Metrics::new();
        m.reconciled(Duration::from_millis(12), None);
        m.reconciled(Duration::from_millis(40), Some("kube"));
        m.applied("StatefulSet");
        m.scale_down("started");
        m.set_leader(true);
        let text = m.encode();
        for needle in [
            "signaldb_operator_reconciles_total{result=\"ok\"} 1",
            "signaldb_operator_reconciles_total{result=\"error\"} 1",
            "signaldb_operator_reconcile_errors_total{error=\"kube\"} 1",
            "signaldb_operator_reconcile_duration_seconds_count 2",
            "signaldb_operator_children_applied_total{kind=\"StatefulSet\"} 1",
            "signaldb_operator_writer_scale_downs_total{event=\"started\"} 1",
            "signaldb_operator_leader 1",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }
}
