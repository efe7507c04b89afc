//! MultigresCluster status from the status aggregator (`--status-aggregator-endpoint`).
//!
//! One writer for status: [`StatusFeed`] holds the inputs of [`status::merge`] per cluster (the
//! aggregator's latest status, the reconcile's latest findings, whether the aggregator is
//! reachable), and [`write_statuses`] is the only task that writes `MultigresCluster.status`.
//! The subscription task ([`subscribe`]) and the reconciles only store their part and mark the
//! cluster dirty; the writer merges, compares with the cached status and writes on change. So the
//! two sources never race each other with stale copies.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::runtime::reflector::{ObjectRef, Store};
use multigres_api::{MultigresCluster, MultigresClusterStatus};
use multigres_runtime::apply::Applier;
use multigres_runtime::events::Events;
use multigres_status_api::client::StatusEvent;
use tokio::sync::Notify;

use crate::status::{self, AggregatorReach, Findings, Merge};

type Key = ObjectRef<MultigresCluster>;

/// How long a failed status write waits before it is tried again.
const RETRY: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Inner {
    aggregates: HashMap<Key, MultigresClusterStatus>,
    findings: HashMap<Key, Findings>,
    reach: AggregatorReach,
    /// Clusters whose aggregate arrived since the last (re)connect: at `Synced`, the others are
    /// gone (deleted while the stream was down).
    seen: HashSet<Key>,
    dirty: HashSet<Key>,
}

/// The shared inputs of the status writer.
#[derive(Default)]
pub struct StatusFeed {
    inner: Mutex<Inner>,
    wake: Notify,
}

impl StatusFeed {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The reconcile's findings for `cluster`; the writer merges them in.
    pub fn report(&self, cluster: Key, findings: Findings) {
        let mut inner = self.lock();
        inner.findings.insert(cluster.clone(), findings);
        inner.dirty.insert(cluster);
        drop(inner);
        self.wake.notify_one();
    }

    /// One event of the aggregator's stream.
    pub fn on_event(&self, event: StatusEvent) {
        let mut inner = self.lock();
        match event {
            StatusEvent::Status { cluster, status } => {
                inner.reach = AggregatorReach::Reachable;
                inner.seen.insert(cluster.clone());
                inner.aggregates.insert(cluster.clone(), status);
                inner.dirty.insert(cluster);
            }
            StatusEvent::Removed { cluster } => {
                inner.aggregates.remove(&cluster);
                inner.seen.remove(&cluster);
            }
            StatusEvent::Synced => {
                inner.reach = AggregatorReach::Reachable;
                let seen = std::mem::take(&mut inner.seen);
                inner.aggregates.retain(|k, _| seen.contains(k));
                inner.seen = seen;
                mark_all(&mut inner);
            }
            StatusEvent::Disconnected { error } => {
                inner.reach = AggregatorReach::Unreachable(error);
                inner.seen.clear();
                mark_all(&mut inner);
            }
        }
        drop(inner);
        self.wake.notify_one();
    }

    fn mark_dirty(&self, cluster: Key) {
        self.lock().dirty.insert(cluster);
        self.wake.notify_one();
    }

    /// The merge inputs of one cluster; `None` until its first reconcile reported (the writer
    /// does not guess whether the reconcile is blocked).
    fn inputs(
        &self,
        cluster: &Key,
    ) -> Option<(Option<MultigresClusterStatus>, Findings, AggregatorReach)> {
        let inner = self.lock();
        let findings = inner.findings.get(cluster)?.clone();
        Some((
            inner.aggregates.get(cluster).cloned(),
            findings,
            inner.reach.clone(),
        ))
    }

    /// A cluster that was reconciled and is no longer cached was deleted. Its aggregate is dropped
    /// by the aggregator's `Removed` (or at the next `Synced`), not here: an aggregate may arrive
    /// before the cluster cache has the cluster.
    fn forget(&self, cluster: &Key) {
        self.lock().findings.remove(cluster);
    }
}

fn mark_all(inner: &mut Inner) {
    let keys: Vec<Key> = inner.findings.keys().cloned().collect();
    inner.dirty.extend(keys);
}

/// Feeds the aggregator's events into `feed` until the stream ends (it never does on its own).
pub async fn subscribe(feed: Arc<StatusFeed>, events: impl Stream<Item = StatusEvent>) {
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        tracing::debug!(?event, "status aggregator event");
        feed.on_event(event);
    }
}

/// The only writer of `MultigresCluster.status` while the aggregator is on: for each dirty
/// cluster, merges its inputs and server-side applies the status (the applier's field manager) when it
/// differs from the cached one.
pub async fn write_statuses(
    feed: Arc<StatusFeed>,
    clusters: Store<MultigresCluster>,
    applier: Applier,
    events: Events,
) {
    loop {
        feed.wake.notified().await;
        let dirty = std::mem::take(&mut feed.lock().dirty);
        for key in dirty {
            let Some(cluster) = clusters.get(&key) else {
                feed.forget(&key);
                continue;
            };
            let Some((aggregate, findings, reach)) = feed.inputs(&key) else {
                continue;
            };
            let mut merged = status::merge(&Merge {
                generation: cluster.metadata.generation,
                previous: cluster.status.as_ref(),
                aggregate: aggregate.as_ref(),
                findings: &findings,
                reach: &reach,
                now: status::now(),
            });
            merged.last_backups.clear();
            let written = applier.apply_status_reported(
                &events,
                cluster.as_ref(),
                cluster.status.as_ref(),
                &merged,
                MultigresClusterStatus::WRITTEN_BY_BACKUPS,
            );
            match written.await {
                Ok(_) => continue,
                Err(kube::Error::Api(e)) if e.code == 404 => continue,
                Err(error) => {
                    tracing::warn!(cluster = %key, %error, "writing cluster status; retrying");
                    let feed = feed.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(RETRY).await;
                        feed.mark_dirty(key);
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Topology;

    fn key(name: &str) -> Key {
        ObjectRef::new(name).within("ns")
    }

    fn findings() -> Findings {
        Findings {
            blocked: None,
            topology: Topology::Registered,
            unserved: Vec::new(),
            retention: Default::default(),
            credentials: None,
            refused: Vec::new(),
            topology_tls: None,
        }
    }

    #[test]
    fn outages_mark_every_reported_cluster_and_synced_forgets_the_vanished() {
        let feed = StatusFeed::default();
        feed.report(key("a"), findings());
        feed.report(key("b"), findings());
        feed.lock().dirty.clear();
        for name in ["a", "gone"] {
            feed.on_event(StatusEvent::Status {
                cluster: key(name),
                status: MultigresClusterStatus::default(),
            });
        }
        feed.on_event(StatusEvent::Synced);
        assert_eq!(feed.lock().reach, AggregatorReach::Reachable);
        assert_eq!(feed.lock().dirty.len(), 3, "a, gone, and b at Synced");

        feed.lock().dirty.clear();
        feed.on_event(StatusEvent::Disconnected {
            error: "refused".into(),
        });
        let inner = feed.lock();
        assert_eq!(inner.reach, AggregatorReach::Unreachable("refused".into()));
        assert_eq!(inner.dirty, [key("a"), key("b")].into_iter().collect());
        assert_eq!(inner.aggregates.len(), 2, "kept through the outage");
        drop(inner);

        feed.on_event(StatusEvent::Status {
            cluster: key("a"),
            status: MultigresClusterStatus::default(),
        });
        feed.on_event(StatusEvent::Synced);
        let inner = feed.lock();
        assert!(inner.aggregates.contains_key(&key("a")));
        assert!(!inner.aggregates.contains_key(&key("gone")));
    }

    #[test]
    fn a_cluster_not_reconciled_yet_is_not_written() {
        let feed = StatusFeed::default();
        feed.on_event(StatusEvent::Status {
            cluster: key("a"),
            status: MultigresClusterStatus::default(),
        });
        assert!(feed.inputs(&key("a")).is_none());
        feed.report(key("a"), findings());
        assert!(feed.inputs(&key("a")).unwrap().0.is_some());
    }
}
