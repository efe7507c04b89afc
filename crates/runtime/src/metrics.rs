//! Prometheus metrics every controller exports: reconciles, failures by reason, durations, reconciles
//! in flight, API requests by verb, and objects owned (for partitioned controllers).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::Instant;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::client::RequestCounter;

type Labels = Vec<(String, String)>;

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    controller: String,
    reconciles: Family<Labels, Counter>,
    failures: Family<Labels, Counter>,
    duration: Family<Labels, Histogram>,
    in_flight: Gauge<i64, AtomicI64>,
    pub owned: Gauge<i64, AtomicI64>,
    pub requests: RequestCounter,
    /// Per shard (`multigres_namespace`, `_cluster`, `_database`, `_tablegroup`, `_shard`): when its newest backup
    /// completed. Only the backup controller sets it; alerts read `time() - ` it.
    pub backup_completed: Family<Labels, Gauge<f64, AtomicU64>>,
}

impl Metrics {
    pub fn new(controller: &str) -> Self {
        let mut registry = Registry::with_prefix("multigres");
        let reconciles = Family::<Labels, Counter>::default();
        let failures = Family::<Labels, Counter>::default();
        let duration = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
        });
        let in_flight = Gauge::<i64, AtomicI64>::default();
        let owned = Gauge::<i64, AtomicI64>::default();
        let requests = RequestCounter::default();
        let backup_completed = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Reconciles that failed, by error",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration",
            duration.clone(),
        );
        registry.register(
            "reconciles_in_flight",
            "Reconciles running now",
            in_flight.clone(),
        );
        registry.register(
            "owned_objects",
            "Objects this replica is responsible for",
            owned.clone(),
        );
        registry.register(
            "kube_requests",
            "Requests to the Kubernetes API, by verb",
            requests.clone(),
        );
        registry.register(
            "backup_last_completion_timestamp_seconds",
            "When each shard's newest backup completed (Unix seconds)",
            backup_completed.clone(),
        );
        Self {
            registry: Arc::new(registry),
            controller: controller.to_string(),
            reconciles,
            failures,
            duration,
            in_flight,
            owned,
            requests,
            backup_completed,
        }
    }

    fn labels(&self) -> Labels {
        vec![("controller".to_string(), self.controller.clone())]
    }

    /// Starts timing one reconcile; the guard records it when dropped.
    pub fn reconcile_started(&self) -> ReconcileTimer {
        self.reconciles.get_or_create(&self.labels()).inc();
        self.in_flight.inc();
        let started = Instant::now();
        ReconcileTimer {
            metrics: self.clone(),
            started,
            liveness_id: crate::liveness::liveness().reconcile_started(started),
        }
    }

    pub fn reconcile_failed(&self, reason: &str) {
        let mut labels = self.labels();
        labels.push(("error".to_string(), reason.to_string()));
        self.failures.get_or_create(&labels).inc();
    }

    /// Total API requests sent so far, split into (reads, writes).
    pub fn request_totals(&self) -> (u64, u64) {
        let mut totals = (0, 0);
        for verb in [
            "get", "list", "watch", "create", "update", "patch", "delete", "other",
        ] {
            let count = self
                .requests
                .get_or_create(&vec![("verb".to_string(), verb.to_string())])
                .get();
            if crate::client::is_write(verb) {
                totals.1 += count
            } else {
                totals.0 += count
            }
        }
        totals
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

pub struct ReconcileTimer {
    metrics: Metrics,
    started: Instant,
    liveness_id: u64,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        crate::liveness::liveness().reconcile_ended(self.liveness_id);
        self.metrics.in_flight.dec();
        self.metrics
            .duration
            .get_or_create(&self.metrics.labels())
            .observe(self.started.elapsed().as_secs_f64());
    }
}
