//! A data-plane SIMULATOR for kwok-based tests and the demo. Not part of a real deployment.
//!
//! Under kwok no multipooler runs, so nothing would write Pooler records into the topology and
//! `servingWrites` / `primaryCell` could never become true. This simulator writes, for every Ready
//! pool pod (`app.kubernetes.io/component=shard-pool`), the record multipooler itself would write
//! (`<cellRoot>/poolers/multipooler-<cell>-<pod>/Pooler`): exactly one PRIMARY per shard (the
//! lowest-index ready pod of the shard's first replica pool, kept while it stays ready; another
//! ready replica-pool pod if that pool has none), REPLICA for the others, all SERVING. A pod that
//! stops being ready gets its record marked NOT_SERVING; records of pods that are gone are removed.
//! Everything downstream (the aggregator, the shard controller) reads these records through the
//! real topology path.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use multigres_api::labels::{self, component};
use multigres_api::{Cell, PoolType, Shard, naming};
use multigres_topology::pb::id::ComponentType;
use multigres_topology::{
    AddressMapping, Id, MultiPooler, PoolerServingStatus, PoolerType, ShardKey, TopoClient,
    cell_root_on_global,
};
use tokio::sync::Notify;

use crate::topology::Location;

/// Ports the simulated multipooler advertises (its `port_map`).
pub const SIM_GRPC_PORT: i32 = 15270;
pub const SIM_HTTP_PORT: i32 = 15200;
pub const SIM_POSTGRES_PORT: i32 = 5432;

/// A pool pod, as far as the simulator cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolPod {
    pub namespace: String,
    pub name: String,
    pub cluster: String,
    pub cell: String,
    pub database: String,
    pub table_group: String,
    pub shard: String,
    pub pool_type: PoolType,
    pub ready: bool,
    /// Name of the Shard resource the pod belongs to.
    pub shard_resource: String,
}

impl PoolPod {
    /// Reads a pod's labels and readiness; `None` for a pod without the pool labels.
    pub fn from_pod(pod: &Pod) -> Option<PoolPod> {
        let l = pod.labels();
        let get = |k: &str| l.get(k).cloned();
        let (cluster, cell, database, table_group, shard) = (
            get(labels::CLUSTER)?,
            get(labels::CELL)?,
            get(labels::DATABASE)?,
            get(labels::TABLEGROUP)?,
            get(labels::SHARD)?,
        );
        let pool_type = match l.get(labels::POOL_TYPE).map(String::as_str) {
            Some("readOnly") => PoolType::ReadOnly,
            _ => PoolType::Replica,
        };
        let ready = pod.metadata.deletion_timestamp.is_none()
            && pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let shard_resource = pod
            .owner_references()
            .iter()
            .find(|o| o.kind == "Shard")
            .map(|o| o.name.clone())
            .unwrap_or_else(|| {
                naming::shard(
                    &naming::table_group(&cluster, &database, &table_group),
                    &shard,
                )
            });
        Some(PoolPod {
            namespace: pod.namespace().unwrap_or_default(),
            name: pod.name_any(),
            cluster,
            cell,
            database,
            table_group,
            shard,
            pool_type,
            ready,
            shard_resource,
        })
    }

    fn index(&self) -> u32 {
        self.name
            .rsplit('-')
            .next()
            .and_then(|i| i.parse().ok())
            .unwrap_or(u32::MAX)
    }

    fn shard_ref(&self) -> (String, String) {
        (self.namespace.clone(), self.shard_resource.clone())
    }
}

/// `(namespace, Shard resource name)`.
pub type ShardRef = (String, String);

/// Picks one PRIMARY per shard among its ready replica-pool pods: the current one while it stays
/// ready, else the lowest-index ready pod in `first_replica_cell` (the shard's first replica pool),
/// else the lowest-index ready replica-pool pod anywhere.
pub fn choose_primaries(
    pods: &[PoolPod],
    first_replica_cell: &BTreeMap<ShardRef, String>,
    current: &BTreeMap<ShardRef, String>,
) -> BTreeMap<ShardRef, String> {
    let mut by_shard: BTreeMap<ShardRef, Vec<&PoolPod>> = BTreeMap::new();
    for pod in pods
        .iter()
        .filter(|p| p.ready && p.pool_type == PoolType::Replica)
    {
        by_shard.entry(pod.shard_ref()).or_default().push(pod);
    }
    let mut out = BTreeMap::new();
    for (shard, mut candidates) in by_shard {
        if let Some(kept) = current
            .get(&shard)
            .filter(|c| candidates.iter().any(|p| &p.name == *c))
        {
            out.insert(shard, kept.clone());
            continue;
        }
        let preferred = first_replica_cell.get(&shard);
        candidates.sort_by_key(|p| (Some(&p.cell) != preferred, p.index(), p.name.clone()));
        out.insert(shard, candidates[0].name.clone());
    }
    out
}

/// The record multipooler would write for `pod`.
pub fn pooler_record(pod: &PoolPod, primary: bool, hostname: &str) -> MultiPooler {
    let mut record = MultiPooler {
        id: Some(Id {
            component: ComponentType::Multipooler as i32,
            cell: pod.cell.clone(),
            name: pod.name.clone(),
        }),
        shard_key: Some(ShardKey {
            database: pod.database.clone(),
            table_group: pod.table_group.clone(),
            shard: pod.shard.clone(),
        }),
        hostname: hostname.to_string(),
        port_map: BTreeMap::from([
            ("grpc".to_string(), SIM_GRPC_PORT),
            ("http".to_string(), SIM_HTTP_PORT),
            ("postgres".to_string(), SIM_POSTGRES_PORT),
        ]),
        ..Default::default()
    };
    // Multigres has no separate read-only pooler type: read-only pools serve as REPLICA.
    record.set_type(if primary {
        PoolerType::Primary
    } else {
        PoolerType::Replica
    });
    record.set_serving_status(if pod.ready {
        PoolerServingStatus::Serving
    } else {
        PoolerServingStatus::NotServing
    });
    record
}

/// Where a pod's cell keeps its records: the Cell's reported topology, its spec, or the global
/// topology of the pod's Shard.
pub fn cell_location(shard: &Shard, cell: Option<&Cell>, cell_name: &str) -> Location {
    if let Some(cell) = cell {
        let reported = cell.status.as_ref().map(|s| &s.topo_server);
        if let Some(r) = reported
            && let (Some(address), Some(root)) = (&r.address, &r.root_path)
        {
            return Location {
                address: address.clone(),
                root: root.clone(),
            };
        }
        if let Some(external) = &cell.spec.topo_server.external
            && let Some(root) = &external.root_path
        {
            return Location {
                address: external.address.clone(),
                root: root.clone(),
            };
        }
    }
    let global = &shard.spec.global_topo_server;
    Location {
        address: global.address.clone(),
        root: cell_root_on_global(&global.root_path, cell_name),
    }
}

/// Everything to write in one pass.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Records by cell topology.
    pub records: BTreeMap<Location, Vec<MultiPooler>>,
    /// Pod names that may keep a record, by cell topology; any other record there is removed.
    pub live: BTreeMap<Location, HashSet<String>>,
}

/// Pure: the records for `pods`, given their Shards and Cells (by `(namespace, name)`).
pub fn plan(
    pods: &[PoolPod],
    shards: &BTreeMap<ShardRef, Arc<Shard>>,
    cells: &BTreeMap<(String, String), Arc<Cell>>,
    primaries: &BTreeMap<ShardRef, String>,
) -> Plan {
    let mut out = Plan::default();
    for pod in pods {
        let Some(shard) = shards.get(&pod.shard_ref()) else {
            continue; // no Shard yet: its topology is unknown
        };
        let cell = cells.get(&(pod.namespace.clone(), naming::cell(&pod.cluster, &pod.cell)));
        let location = cell_location(shard, cell.map(|c| c.as_ref()), &pod.cell);
        let primary = primaries.get(&pod.shard_ref()) == Some(&pod.name);
        let service = naming::pool_service(
            &pod.shard_resource,
            &naming::pool_id(pod.pool_type, &pod.cell),
        );
        let hostname = format!("{}.{service}.{}.svc.cluster.local", pod.name, pod.namespace);
        out.live
            .entry(location.clone())
            .or_default()
            .insert(pod.name.clone());
        out.records
            .entry(location)
            .or_default()
            .push(pooler_record(pod, primary, &hostname));
    }
    out
}

/// Runs the simulator until `shutdown`: watches pool pods, Shards and Cells (in `namespace` or
/// everywhere) and keeps the topology in step, on every change and every `resync`.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    mapping: AddressMapping,
    resync: Duration,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let changed = Arc::new(Notify::new());
    let pods_api: Api<Pod> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let shards_api: Api<Shard> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let cells_api: Api<Cell> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let pod_selector = format!("{}={}", labels::COMPONENT, component::SHARD_POOL);
    let (pods, pods_task) = watch(
        pods_api,
        watcher::Config::default().labels(&pod_selector),
        &changed,
    );
    let (shards, shards_task) = watch(shards_api, watcher::Config::default(), &changed);
    let (cells, cells_task) = watch(cells_api, watcher::Config::default(), &changed);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(pods_task);
    tasks.spawn(shards_task);
    tasks.spawn(cells_task);

    let work = async {
        let _ = pods.wait_until_ready().await;
        let _ = shards.wait_until_ready().await;
        let _ = cells.wait_until_ready().await;
        let mut clients: BTreeMap<String, TopoClient> = BTreeMap::new();
        let mut primaries = BTreeMap::new();
        let mut known_roots: BTreeSet<Location> = BTreeSet::new();
        loop {
            let pool_pods: Vec<PoolPod> = pods
                .state()
                .iter()
                .filter_map(|p| PoolPod::from_pod(p))
                .collect();
            let shard_map: BTreeMap<ShardRef, Arc<Shard>> = shards
                .state()
                .into_iter()
                .map(|s| ((s.namespace().unwrap_or_default(), s.name_any()), s))
                .collect();
            let cell_map: BTreeMap<(String, String), Arc<Cell>> = cells
                .state()
                .into_iter()
                .map(|c| ((c.namespace().unwrap_or_default(), c.name_any()), c))
                .collect();
            let first_replica_cell = shard_map
                .iter()
                .filter_map(|(k, s)| {
                    let pool = s
                        .spec
                        .pools
                        .iter()
                        .find(|p| p.pool_type == PoolType::Replica)?;
                    Some((k.clone(), pool.cell.clone()))
                })
                .collect();
            primaries = choose_primaries(&pool_pods, &first_replica_cell, &primaries);
            let plan = plan(&pool_pods, &shard_map, &cell_map, &primaries);
            known_roots.extend(plan.live.keys().cloned());
            for location in &known_roots {
                let client = match clients.get(&location.address) {
                    Some(c) => c.clone(),
                    None => match TopoClient::connect(
                        std::slice::from_ref(&location.address),
                        &mapping,
                        Duration::from_secs(3),
                    )
                    .await
                    {
                        Ok(c) => {
                            clients.insert(location.address.clone(), c.clone());
                            c
                        }
                        Err(error) => {
                            tracing::warn!(address = %location.address, %error, "cannot connect");
                            continue;
                        }
                    },
                };
                for record in plan.records.get(location).into_iter().flatten() {
                    if let Err(error) = client.write_pooler(&location.root, record).await {
                        tracing::warn!(root = %location.root, %error, "cannot write pooler record");
                    }
                }
                let live = plan.live.get(location).cloned().unwrap_or_default();
                match client.prune_poolers(&location.root, &live).await {
                    Ok(removed) if !removed.is_empty() => {
                        tracing::info!(?removed, "removed records of pods that are gone")
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(root = %location.root, %error, "cannot prune"),
                }
            }
            tokio::select! {
                _ = changed.notified() => tokio::time::sleep(Duration::from_millis(200)).await,
                _ = tokio::time::sleep(resync) => {}
            }
        }
    };
    tokio::select! {
        _ = work => {}
        _ = shutdown => {}
    }
    tasks.abort_all();
    Ok(())
}

fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    changed: &Arc<Notify>,
) -> (Store<K>, impl Future<Output = ()> + Send + 'static)
where
    K: multigres_runtime::caches::Cacheable,
{
    let (reader, writer) = reflector::store();
    let changed = changed.clone();
    let stream = reflector::reflector(writer, multigres_runtime::caches::cache_watch(api, config));
    let task = async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            if event.is_ok() {
                changed.notify_one();
            }
        }
    };
    (reader, task)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, cell: &str, pool_type: PoolType, ready: bool) -> PoolPod {
        PoolPod {
            namespace: "ns".into(),
            name: name.into(),
            cluster: "prod".into(),
            cell: cell.into(),
            database: "orders".into(),
            table_group: "default".into(),
            shard: "0".into(),
            pool_type,
            ready,
            shard_resource: "s".into(),
        }
    }

    fn key() -> ShardRef {
        ("ns".into(), "s".into())
    }

    #[test]
    fn one_primary_per_shard_in_the_first_replica_pool_and_stable() {
        let first = BTreeMap::from([(key(), "a".to_string())]);
        let pods = vec![
            pod("s-replica-b-0", "b", PoolType::Replica, true),
            pod("s-replica-a-1", "a", PoolType::Replica, true),
            pod("s-replica-a-0", "a", PoolType::Replica, false),
            pod("s-readonly-a-0", "a", PoolType::ReadOnly, true),
        ];
        let chosen = choose_primaries(&pods, &first, &BTreeMap::new());
        assert_eq!(chosen[&key()], "s-replica-a-1");
        // a-0 becomes ready: the primary stays where it is.
        let mut pods2 = pods.clone();
        pods2[2].ready = true;
        assert_eq!(
            choose_primaries(&pods2, &first, &chosen)[&key()],
            "s-replica-a-1"
        );
        // The primary loses readiness: the lowest-index ready pod of the first pool takes over.
        pods2[1].ready = false;
        assert_eq!(
            choose_primaries(&pods2, &first, &chosen)[&key()],
            "s-replica-a-0"
        );
        // No ready pod in the first pool: another replica pool's.
        pods2[2].ready = false;
        assert_eq!(
            choose_primaries(&pods2, &first, &chosen)[&key()],
            "s-replica-b-0"
        );
        // None ready at all: no primary.
        pods2[0].ready = false;
        assert!(choose_primaries(&pods2, &first, &chosen).is_empty());
    }

    #[test]
    fn records_look_like_multipoolers() {
        let p = pod("s-replica-a-0", "a", PoolType::Replica, true);
        let r = pooler_record(&p, true, "h");
        assert_eq!(r.r#type(), PoolerType::Primary);
        assert_eq!(r.serving_status(), PoolerServingStatus::Serving);
        let id = r.id.as_ref().unwrap();
        assert_eq!(
            (id.component(), id.cell.as_str(), id.name.as_str()),
            (ComponentType::Multipooler, "a", "s-replica-a-0")
        );
        assert_eq!(r.shard_key.as_ref().unwrap().shard, "0");
        assert_eq!(r.port_map["postgres"], 5432);
        multigres_topology::validate_pooler(&r).unwrap();
        let not_ready = pooler_record(&pod("x-1", "a", PoolType::ReadOnly, false), false, "h");
        assert_eq!(not_ready.r#type(), PoolerType::Replica);
        assert_eq!(not_ready.serving_status(), PoolerServingStatus::NotServing);
    }
}
