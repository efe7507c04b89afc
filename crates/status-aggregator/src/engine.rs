//! The moving parts around [`aggregate`]: read-only watch caches of clusters and their children,
//! the topology and controller-health pollers, and the loop that recomputes every cluster's
//! aggregate after any change (debounced) and publishes it to the [`Hub`] (which drops snapshots
//! equal to the last one, so nothing is sent when nothing changed).

use multigres_runtime::client::namespaced_or_all as api;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Future, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use multigres_api::labels::{self, component};
use multigres_api::{Cell, MultigresCluster, Shard, TableGroup, TopoServer, naming};
use multigres_topology::AddressMapping;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::aggregate::{ClusterInputs, ControllerHealth, TopologyObservation, aggregate};
use crate::health::HealthPoller;
use crate::server::{ClusterKey, Hub, Snapshot};
use crate::topology::{Poller, targets};

/// The CRDs the aggregator reads; it waits for them at start.
pub const CRDS: [&str; 5] = [
    "multigresclusters.multigres.com",
    "toposervers.multigres.com",
    "cells.multigres.com",
    "tablegroups.multigres.com",
    "shards.multigres.com",
];

/// How the engine runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Watch only this namespace.
    pub namespace: Option<String>,
    pub address_mapping: AddressMapping,
    /// The client certificate for topologies that speak TLS (`--topology-ca-dir`).
    pub topology_tls: multigres_topology::ClientIdentities,
    pub topology_interval: Duration,
    /// `name -> host:port` of each controller's gRPC health endpoint.
    pub controller_health: BTreeMap<String, String>,
    pub health_interval: Duration,
    /// Changes closer together than this are aggregated once.
    pub debounce: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            namespace: None,
            address_mapping: AddressMapping::off(),
            topology_tls: Default::default(),
            topology_interval: Duration::from_secs(2),
            controller_health: BTreeMap::new(),
            health_interval: Duration::from_secs(5),
            debounce: Duration::from_millis(100),
        }
    }
}

/// The read-only caches.
#[derive(Clone)]
pub struct Caches {
    pub clusters: Store<MultigresCluster>,
    pub topo_servers: Store<TopoServer>,
    pub cells: Store<Cell>,
    pub table_groups: Store<TableGroup>,
    pub shards: Store<Shard>,
    pub deployments: Store<Deployment>,
}

impl Caches {
    async fn wait_until_ready(&self) {
        let _ = self.clusters.wait_until_ready().await;
        tracing::debug!("MultigresCluster cache synced");
        let _ = self.topo_servers.wait_until_ready().await;
        tracing::debug!("TopoServer cache synced");
        let _ = self.cells.wait_until_ready().await;
        tracing::debug!("Cell cache synced");
        let _ = self.table_groups.wait_until_ready().await;
        tracing::debug!("TableGroup cache synced");
        let _ = self.shards.wait_until_ready().await;
        tracing::debug!("Shard cache synced");
        let _ = self.deployments.wait_until_ready().await;
        tracing::debug!("Deployment cache synced");
    }
}

/// What the pollers saw last, shared with the recompute loop.
#[derive(Default)]
struct Observations {
    topology: Mutex<BTreeMap<ClusterKey, TopologyObservation>>,
    controllers: Mutex<BTreeMap<String, ControllerHealth>>,
}

/// A reflector whose every event (apply, delete, resync) wakes the recompute loop.
fn cache<K>(
    api: Api<K>,
    config: watcher::Config,
    changed: Arc<Notify>,
) -> (Store<K>, impl Future<Output = ()> + Send + 'static)
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let kind = K::kind(&K::DynamicType::default()).to_string();
    let stream = reflector::reflector(writer, multigres_runtime::caches::cache_watch(api, config));
    let task = async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => changed.notify_one(),
                Err(error) => tracing::warn!(%kind, %error, "watch failed; retrying"),
            }
        }
    };
    (reader, task)
}

/// Starts the caches; the returned futures drive them.
fn caches(
    client: &Client,
    namespace: Option<&str>,
    changed: &Arc<Notify>,
) -> (Caches, Vec<futures::future::BoxFuture<'static, ()>>) {
    // Children are found by the cluster label; the multiadmin Deployment also by its component.
    let children = || watcher::Config::default().labels(labels::CLUSTER);
    let admin = watcher::Config::default().labels(&format!(
        "{}={},{}",
        labels::COMPONENT,
        component::MULTIADMIN,
        labels::CLUSTER
    ));
    let (clusters, t1) = cache(
        api(client, namespace),
        watcher::Config::default(),
        changed.clone(),
    );
    let (topo_servers, t2) = cache(api(client, namespace), children(), changed.clone());
    let (cells, t3) = cache(api(client, namespace), children(), changed.clone());
    let (table_groups, t4) = cache(api(client, namespace), children(), changed.clone());
    let (shards, t5) = cache(api(client, namespace), children(), changed.clone());
    let (deployments, t6) = cache(api(client, namespace), admin, changed.clone());
    let caches = Caches {
        clusters,
        topo_servers,
        cells,
        table_groups,
        shards,
        deployments,
    };
    let tasks = vec![
        Box::pin(t1) as _,
        Box::pin(t2) as _,
        Box::pin(t3) as _,
        Box::pin(t4) as _,
        Box::pin(t5) as _,
        Box::pin(t6) as _,
    ];
    (caches, tasks)
}

/// Children of one cluster, grouped by `(namespace, multigres.com/cluster)`.
fn group<K: Resource>(objects: Vec<Arc<K>>) -> BTreeMap<ClusterKey, Vec<Arc<K>>> {
    let mut out: BTreeMap<ClusterKey, Vec<Arc<K>>> = BTreeMap::new();
    for object in objects {
        let Some(cluster) = object.labels().get(labels::CLUSTER).cloned() else {
            continue;
        };
        let key = (object.namespace().unwrap_or_default(), cluster);
        out.entry(key).or_default().push(object);
    }
    out
}

/// Every cluster's aggregate from the caches and the last observations.
fn compute(
    caches: &Caches,
    observations: &Observations,
    previous: Option<&Snapshot>,
    now: Timestamp,
) -> Snapshot {
    let mut topo_servers = group(caches.topo_servers.state());
    let mut cells = group(caches.cells.state());
    let mut table_groups = group(caches.table_groups.state());
    let mut shards = group(caches.shards.state());
    let mut deployments = group(caches.deployments.state());
    let topology = observations.topology.lock().expect("poisoned").clone();
    let controllers = observations.controllers.lock().expect("poisoned").clone();
    let mut snapshot = Snapshot::new();
    for cluster in caches.clusters.state() {
        let key = (cluster.namespace().unwrap_or_default(), cluster.name_any());
        let admin_name = naming::multiadmin(&key.1);
        let inputs = ClusterInputs {
            topo_servers: topo_servers.remove(&key).unwrap_or_default(),
            cells: cells.remove(&key).unwrap_or_default(),
            table_groups: table_groups.remove(&key).unwrap_or_default(),
            shards: shards.remove(&key).unwrap_or_default(),
            multiadmin: deployments
                .remove(&key)
                .unwrap_or_default()
                .into_iter()
                .find(|d| d.name_any() == admin_name),
            topology: topology.get(&key).cloned().unwrap_or_default(),
            controllers: controllers.clone(),
            previous: previous
                .and_then(|p| p.get(&key).cloned())
                .or_else(|| cluster.status.clone()),
            now,
            cluster,
        };
        snapshot.insert(key, aggregate(&inputs));
    }
    snapshot
}

/// Runs caches, pollers and the recompute loop until `shutdown`, publishing to `hub`. Calls
/// `on_ready` once the caches have synced and the first snapshot is published. Dropping the hub on
/// return ends every open stream.
pub async fn run(
    client: Client,
    settings: Settings,
    hub: Hub,
    on_ready: impl FnOnce() + Send,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let changed = Arc::new(Notify::new());
    let (caches, tasks) = caches(&client, settings.namespace.as_deref(), &changed);
    let observations = Arc::new(Observations::default());
    let mut background = tokio::task::JoinSet::new();
    for task in tasks {
        background.spawn(task);
    }
    background.spawn(poll_topology(
        caches.clone(),
        observations.clone(),
        changed.clone(),
        settings.clone(),
    ));
    if !settings.controller_health.is_empty() {
        background.spawn(poll_health(
            HealthPoller::new(
                &settings.controller_health,
                settings.health_interval.min(Duration::from_secs(3)),
            )?,
            observations.clone(),
            changed.clone(),
            settings.health_interval,
        ));
    }

    let recompute = async {
        caches.wait_until_ready().await;
        let snapshot = compute(&caches, &observations, None, Timestamp::now());
        hub.publish(snapshot);
        tracing::info!("caches synced; serving aggregates");
        on_ready();
        loop {
            changed.notified().await;
            tokio::time::sleep(settings.debounce).await;
            let previous = hub.current();
            let snapshot = compute(
                &caches,
                &observations,
                previous.as_deref(),
                Timestamp::now(),
            );
            if hub.publish(snapshot) {
                tracing::debug!("aggregate changed");
            }
        }
    };
    tokio::select! {
        _ = recompute => {}
        _ = shutdown => {}
    }
    background.abort_all();
    drop(hub);
    Ok(())
}

/// How long a pooler record change waits for the rest of its burst (an election rewrites several
/// records) before the clusters it touches are read again.
const CHANGE_SETTLE: Duration = Duration::from_millis(50);

/// Reads every cluster's topology on each tick of `topology_interval`, and, between ticks, the
/// clusters whose pooler records the watches saw change: a new primary reaches the aggregate
/// within milliseconds instead of up to a whole interval later.
async fn poll_topology(
    caches: Caches,
    observations: Arc<Observations>,
    changed: Arc<Notify>,
    settings: Settings,
) {
    let timeout = settings.topology_interval.clamp(
        Duration::from_millis(500),
        multigres_topology::DEFAULT_TIMEOUT,
    );
    let (mut poller, mut changes) = Poller::new(multigres_topology::Dialer::new(
        settings.address_mapping.clone(),
        timeout,
        settings.topology_tls.clone(),
    ));
    // No wait for the caches here: a Store's readiness wakes only one waiter (kube's DelayedInit
    // keeps a single waker), and the recompute loop is that waiter. Before the caches sync this
    // simply polls nothing.
    let mut interval = tokio::time::interval(settings.topology_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let touched = tokio::select! {
            _ = interval.tick() => None,
            Some(first) = changes.recv() => {
                tokio::time::sleep(CHANGE_SETTLE).await;
                let mut touched = HashSet::from([first.watch]);
                while let Ok(change) = changes.try_recv() {
                    touched.insert(change.watch);
                }
                Some(touched)
            }
        };
        let cells = group(caches.cells.state());
        let table_groups = group(caches.table_groups.state());
        let last = observations.topology.lock().expect("poisoned").clone();
        let mut seen = match touched {
            None => BTreeMap::new(),
            Some(_) => last.clone(),
        };
        for cluster in caches.clusters.state() {
            let key = (cluster.namespace().unwrap_or_default(), cluster.name_any());
            let cells: Vec<&Cell> = cells
                .get(&key)
                .into_iter()
                .flatten()
                .map(|c| c.as_ref())
                .collect();
            let tgs: Vec<&TableGroup> = table_groups
                .get(&key)
                .into_iter()
                .flatten()
                .map(|t| t.as_ref())
                .collect();
            let targets = targets(&cluster, &cells, &tgs);
            let observation = match &touched {
                None => poller.poll(&targets).await,
                Some(watches) if watches.iter().any(|w| targets.follows(w)) => {
                    let reachable = last.get(&key).and_then(|o| o.global_reachable);
                    poller.primaries(&targets, reachable).await
                }
                Some(_) => continue,
            };
            seen.insert(key, observation);
        }
        let mut current = observations.topology.lock().expect("poisoned");
        if *current != seen {
            *current = seen;
            changed.notify_one();
        }
    }
}

async fn poll_health(
    poller: HealthPoller,
    observations: Arc<Observations>,
    changed: Arc<Notify>,
    every: Duration,
) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let seen = poller.poll().await;
        let mut current = observations.controllers.lock().expect("poisoned");
        if *current != seen {
            *current = seen;
            changed.notify_one();
        }
    }
}
