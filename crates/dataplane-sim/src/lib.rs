//! A data-plane SIMULATOR for kwok-based tests and the demo. Not part of a real deployment.
//!
//! Under kwok no multipooler runs, so nothing would write Pooler records into the topology and
//! `servingWrites` / `primaryCell` could never become true. For every pool pod
//! (`app.kubernetes.io/component=shard-pool`) this simulator writes the record the pinned
//! multipooler, started with that pod's flags, would publish, field by field (docs/testing.md
//! compares them): the same key (`<cellRoot>/poolers/multipooler-<cell>-<service id>/Pooler`),
//! ID, shard key, hostname and port map. Exactly one ready replica-pool pod per shard is PRIMARY
//! (the lowest-index ready pod of the shard's first replica pool, kept while it stays ready;
//! another ready replica-pool pod if that pool has none), with a rule whose term grows with each
//! change of primary; the other ready pods are REPLICA. Ready pods are ACTIVE and SERVING; pods
//! not ready yet are STARTING and DISABLED; terminating pods are SHUTDOWN. Records of pods that
//! are gone are removed. Everything downstream (the aggregator, the shard and cell controllers)
//! reads these records through the real topology path.

mod admin;
mod admin_rest;
mod flags;
mod pool_pod;
pub mod testing;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use multigres_api::labels::{self, component};
use multigres_api::multigres::pooler_service_id;
use multigres_api::{Cell, PoolType, Shard, naming};
use multigres_runtime::topology_tls::transport;
use multigres_topology::pb::id::ComponentType;
use multigres_topology::{
    Dialer, Id, LivePoolers, Location, MultiPooler, PoolerLifecycle, PoolerLifecycleStatus,
    PoolerRecord, PoolerServingStatus, PoolerType, RoutingRole, RoutingState, RuleNumber, ShardKey,
    Transport, cell_root_on_global,
};
use tokio::sync::Notify;

pub use admin::Handovers;
pub use admin_rest::REPLAY_LAG_BYTES;
pub use flags::PoolerFlags;
pub use pool_pod::{PoolPod, PoolPods, ShardRef, choose_primaries};

/// The role the simulator gives a ready pooler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimRole {
    /// The shard's primary since the simulator's `term`-th choice of primary for the shard.
    Primary {
        term: i64,
    },
    Replica,
}

/// The record the pinned multipooler would publish for `pod`, serving shard `multigres_shard`
/// (its `--shard`), in `role` once ready.
pub fn pooler_record(pod: &PoolPod, multigres_shard: &str, role: SimRole) -> MultiPooler {
    use PoolerLifecycleStatus::{LifecycleActive, LifecycleShutdown, LifecycleStarting};
    // What multipooler publishes in each phase: shut down (no routing state), starting (not
    // serving yet, a replica until promoted), active.
    let (lifecycle, reason, serving, role) = if pod.terminating {
        (
            LifecycleShutdown,
            "pooler shutdown",
            PoolerServingStatus::Disabled,
            None,
        )
    } else if !pod.ready {
        (
            LifecycleStarting,
            "process starting",
            PoolerServingStatus::Disabled,
            Some(SimRole::Replica),
        )
    } else {
        (
            LifecycleActive,
            "pooler active",
            PoolerServingStatus::Serving,
            Some(role),
        )
    };
    // The deprecated type is derived from the routing role, as multipooler does.
    let (routing_state, pooler_type) = match role {
        None => (None, PoolerType::Unknown),
        Some(SimRole::Primary { term }) => (
            Some(RoutingState {
                role: RoutingRole::Primary.into(),
                rule: Some(RuleNumber {
                    coordinator_term: term,
                    leader_subterm: 0,
                }),
            }),
            PoolerType::Primary,
        ),
        Some(SimRole::Replica) => (
            Some(RoutingState {
                role: RoutingRole::Replica.into(),
                rule: None,
            }),
            PoolerType::Replica,
        ),
    };
    let flags = &pod.flags;
    #[allow(deprecated)] // multipooler still publishes the deprecated type
    MultiPooler {
        id: Some(Id {
            component: ComponentType::Multipooler.into(),
            cell: pod.cell.clone(),
            name: pooler_service_id(&pod.name),
        }),
        shard_key: Some(ShardKey {
            database: pod.database.clone(),
            table_group: pod.table_group.clone(),
            shard: multigres_shard.to_string(),
        }),
        key_range: None,
        r#type: pooler_type.into(),
        serving_status: serving.into(),
        hostname: flags.hostname.clone(),
        port_map: BTreeMap::from([
            ("grpc".to_string(), flags.grpc_port),
            ("http".to_string(), flags.http_port),
            ("postgres".to_string(), flags.pg_port),
            ("pgbackrest".to_string(), flags.pgbackrest_port),
        ]),
        pooler_dir: flags.pooler_dir.clone(),
        pg_data_dir: flags.pg_data_dir.clone(),
        lifecycle_status: Some(PoolerLifecycle {
            status: lifecycle.into(),
            reason: reason.to_string(),
            updated: pod.since,
        }),
        routing_state,
    }
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

/// How each known topology address is dialed: as its cluster's children say (the global server,
/// and every cell's own server); an address missing here is plaintext.
pub fn transports<'a>(
    shards: impl Iterator<Item = &'a Arc<Shard>>,
    cells: impl Iterator<Item = &'a Arc<Cell>>,
) -> BTreeMap<String, Transport> {
    let global = shards.map(|s| {
        let global = &s.spec.global_topo_server;
        (global.address.clone(), transport(global))
    });
    let cells = cells.flat_map(|c| {
        let global = &c.spec.global_topo_server;
        let reported = c
            .status
            .as_ref()
            .and_then(|s| s.topo_server.address.clone());
        reported
            .into_iter()
            .flat_map(|a| a.split(',').map(str::to_string).collect::<Vec<_>>())
            .chain(std::iter::once(global.address.clone()))
            .map(move |a| (a, transport(global)))
    });
    global.chain(cells).collect()
}

/// Everything to write in one pass.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Records by cell topology.
    pub records: BTreeMap<Location, Vec<MultiPooler>>,
    /// The poolers that may keep a record, by cell topology; any other record there is removed.
    pub live: BTreeMap<Location, LivePoolers>,
}

/// Pure: the records for `pods`, given their Shards and Cells (by `(namespace, name)`) and each
/// shard's primary with the term it was chosen in.
pub fn plan(
    pods: &[PoolPod],
    shards: &BTreeMap<ShardRef, Arc<Shard>>,
    cells: &BTreeMap<(String, String), Arc<Cell>>,
    primaries: &BTreeMap<ShardRef, (String, i64)>,
) -> Plan {
    let mut out = Plan::default();
    for pod in pods {
        let Some(shard) = shards.get(&pod.shard_ref()) else {
            continue; // no Shard yet: its topology is unknown
        };
        let cell = cells.get(&(pod.namespace.clone(), naming::cell(&pod.cluster, &pod.cell)));
        let location = cell_location(shard, cell.map(|c| c.as_ref()), &pod.cell);
        let role = match primaries.get(&pod.shard_ref()) {
            Some((name, term)) if *name == pod.name => SimRole::Primary { term: *term },
            _ => SimRole::Replica,
        };
        let live = out.live.entry(location.clone()).or_default();
        live.service_ids.insert(pooler_service_id(&pod.name));
        live.hosts.insert(pod.name.clone());
        out.records.entry(location).or_default().push(pooler_record(
            pod,
            shard.spec.multigres_shard(),
            role,
        ));
    }
    out
}

/// The records of `desired` that differ from what the topology under `root` holds (`written`).
pub fn changed_records<'a>(
    root: &str,
    desired: &'a [MultiPooler],
    written: &[PoolerRecord],
) -> Vec<&'a MultiPooler> {
    let held: HashMap<&str, &MultiPooler> = written
        .iter()
        .map(|r| (r.key.as_str(), &r.pooler))
        .collect();
    desired
        .iter()
        .filter(|record| {
            let Some(id) = record.id.as_ref() else {
                return true; // refused by write_pooler, with its reason
            };
            let key = multigres_topology::pooler_key(root, &id.cell, &id.name);
            held.get(key.as_str()) != Some(record)
        })
        .collect()
}

/// Runs the simulator until `shutdown`: watches pool pods, Shards and Cells (in `namespace` or
/// everywhere) and keeps the topology in step, on every change and every `resync`. With
/// `admin_addr`, it also stands in for multiadmin's `SwitchPrimary` there (see [`admin`]).
pub async fn run(
    client: Client,
    namespace: Option<String>,
    dialer: Dialer,
    resync: Duration,
    admin_addr: Option<std::net::SocketAddr>,
    admin_http_addr: Option<std::net::SocketAddr>,
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
    let handovers = Arc::new(std::sync::Mutex::new(Handovers::default()));
    if let Some(addr) = admin_addr {
        let serving = admin::serve(
            addr,
            pods.clone(),
            shards.clone(),
            handovers.clone(),
            changed.clone(),
        );
        tasks.spawn(async move {
            if let Err(error) = serving.await {
                tracing::error!(%error, "SIMULATION: the multiadmin stand-in stopped");
            }
        });
    }

    if let Some(addr) = admin_http_addr {
        let serving = admin_rest::serve(addr, pods.clone(), handovers.clone());
        tasks.spawn(async move {
            if let Err(error) = serving.await {
                tracing::error!(%error, "SIMULATION: the multiadmin REST stand-in stopped");
            }
        });
    }

    let kube = client.clone();
    let work = async {
        let _ = pods.wait_until_ready().await;
        let _ = shards.wait_until_ready().await;
        let _ = cells.wait_until_ready().await;
        // Per shard: its last primary and the term it was chosen in (a new primary, a higher
        // term), kept while the shard has none so that the next one outranks it.
        let mut terms: BTreeMap<ShardRef, (String, i64)> = BTreeMap::new();
        let mut known_roots: BTreeSet<Location> = BTreeSet::new();
        let mut read_pods = PoolPods::default();
        loop {
            let pass = std::time::Instant::now();
            let mut writes = 0usize;
            let pool_pods = read_pods.read(&pods.state());
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
            let primaries = {
                let mut handovers = handovers.lock().expect("handovers");
                let live_shards: BTreeSet<ShardRef> = shard_map
                    .iter()
                    .filter(|(_, s)| s.metadata.deletion_timestamp.is_none())
                    .map(|(k, _)| k.clone())
                    .collect();
                handovers.observe(&pool_pods, &live_shards);
                handovers.elect(&pool_pods, &first_replica_cell)
            };
            let mut newly_elected = Vec::new();
            let chosen: BTreeMap<ShardRef, (String, i64)> = primaries
                .iter()
                .map(|(shard, pod)| {
                    let (last, term) = terms.get(shard).cloned().unwrap_or_default();
                    // A re-election (not a shard's first): the one a deletion can race.
                    if last != *pod && !last.is_empty() {
                        newly_elected.push((shard.clone(), pod.clone()));
                    }
                    let term = if last == *pod { term } else { term + 1 };
                    terms.insert(shard.clone(), (pod.clone(), term));
                    (shard.clone(), (pod.clone(), term))
                })
                .collect();
            let plan = plan(&pool_pods, &shard_map, &cell_map, &chosen);
            known_roots.extend(plan.live.keys().cloned());
            let transports = transports(shard_map.values(), cell_map.values());
            for location in &known_roots {
                let addresses = std::slice::from_ref(&location.address);
                let client = match dialer
                    .client(
                        addresses,
                        transports
                            .get(&location.address)
                            .copied()
                            .unwrap_or(Transport::Plaintext),
                    )
                    .await
                {
                    Ok(c) => c,
                    Err(error) => {
                        tracing::warn!(address = %location.address, %error, "cannot connect");
                        continue;
                    }
                };
                // One listing per root, and writes only for records that differ: a read per
                // record made each pass at 1,000 Shards take seconds, and every Shard waited for
                // its primary behind them (docs/performance.md, "The simulator's passes").
                let written = match client.list_poolers(&location.root).await {
                    Ok(records) => records,
                    Err(error) => {
                        tracing::warn!(root = %location.root, %error, "cannot list pooler records");
                        continue;
                    }
                };
                let live = plan.live.get(location).cloned().unwrap_or_default();
                let records = plan.records.get(location).map(Vec::as_slice).unwrap_or(&[]);
                for record in changed_records(&location.root, records, &written) {
                    writes += 1;
                    if let Err(error) = client.write_pooler(&location.root, record).await {
                        tracing::warn!(root = %location.root, %error, "cannot write pooler record");
                    }
                }
                if written.iter().all(|r| live.names(&r.pooler)) {
                    continue;
                }
                match client.prune_poolers(&location.root, &live).await {
                    Ok(removed) if !removed.is_empty() => {
                        tracing::info!(?removed, "removed records of pods that are gone")
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(root = %location.root, %error, "cannot prune"),
                }
            }
            for (shard, pod) in newly_elected {
                let uid = pool_pods
                    .iter()
                    .find(|p| p.shard_ref() == shard && p.name == pod)
                    .map(|p| p.uid.as_str())
                    .unwrap_or_default();
                if admin::going_already(&kube, &shard.0, &pod, uid).await {
                    tracing::info!(
                        shard = %format!("{}/{}", shard.0, shard.1),
                        %pod,
                        "SIMULATION: elected a pod whose deletion had begun (the pod cache lagged)"
                    );
                    let mut handovers = handovers.lock().expect("handovers");
                    handovers.elected_while_going.insert((shard, pod));
                }
            }
            if pass.elapsed() > Duration::from_millis(500) {
                let ms = pass.elapsed().as_millis() as u64;
                tracing::info!(
                    ms,
                    writes,
                    pods = pool_pods.len(),
                    "SIMULATION: a slow pass"
                );
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
    use multigres_topology::prost_types;

    pub(crate) fn pod(name: &str, cell: &str, pool_type: PoolType, ready: bool) -> PoolPod {
        PoolPod {
            namespace: "ns".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            cluster: "prod".into(),
            cell: cell.into(),
            database: "orders".into(),
            table_group: "default".into(),
            shard: "0".into(),
            pool_type,
            ready,
            terminating: false,
            since: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            shard_resource: "s".into(),
            flags: PoolerFlags {
                hostname: format!("{name}.s-replica-{cell}"),
                grpc_port: 15201,
                http_port: 15101,
                pg_port: 5432,
                pgbackrest_port: 8432,
                pooler_dir: "/var/lib/pooler".into(),
                pg_data_dir: "/var/lib/pooler/pg_data".into(),
            },
        }
    }

    pub(crate) fn key() -> ShardRef {
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
    fn only_records_that_differ_from_the_topology_are_written() {
        let root = "/topo/a";
        let p = |name: &str| {
            pooler_record(
                &pod(name, "a", PoolType::Replica, true),
                "0-inf",
                SimRole::Replica,
            )
        };
        let desired = vec![p("s-replica-a-0"), p("s-replica-a-1"), p("s-replica-a-2")];
        let held = |record: &MultiPooler| {
            let id = record.id.as_ref().unwrap();
            PoolerRecord {
                key: multigres_topology::pooler_key(root, &id.cell, &id.name),
                mod_revision: 1,
                pooler: record.clone(),
            }
        };
        let mut promoted = desired[1].clone();
        promoted.routing_state = Some(RoutingState {
            role: RoutingRole::Primary.into(),
            ..Default::default()
        });
        // a-0 as written, a-1 written with another role, a-2 missing.
        let written = vec![held(&desired[0]), held(&promoted)];
        let names = |records: Vec<&MultiPooler>| -> Vec<String> {
            records.iter().map(|r| r.hostname.clone()).collect()
        };
        assert_eq!(
            names(changed_records(root, &desired, &written)),
            ["s-replica-a-1.s-replica-a", "s-replica-a-2.s-replica-a"]
        );
        let all: Vec<PoolerRecord> = desired.iter().map(held).collect();
        assert!(changed_records(root, &desired, &all).is_empty());
        assert_eq!(
            changed_records("/topo/b", &desired, &all).len(),
            3,
            "a record under another root is not this root's"
        );
    }

    #[test]
    #[allow(deprecated)] // the deprecated type is part of what multipooler publishes
    fn records_look_like_multipoolers() {
        let p = pod("s-replica-a-0", "a", PoolType::Replica, true);
        let r = pooler_record(&p, "0-inf", SimRole::Primary { term: 2 });
        let id = r.id.as_ref().unwrap();
        assert_eq!(
            (id.component(), id.cell.as_str(), id.name.as_str()),
            (
                ComponentType::Multipooler,
                "a",
                pooler_service_id("s-replica-a-0").as_str()
            )
        );
        let shard = r.shard_key.as_ref().unwrap();
        assert_eq!(
            (
                shard.database.as_str(),
                shard.table_group.as_str(),
                shard.shard.as_str()
            ),
            ("orders", "default", "0-inf")
        );
        assert_eq!(r.hostname, "s-replica-a-0.s-replica-a");
        assert_eq!(
            r.port_map.keys().collect::<Vec<_>>(),
            ["grpc", "http", "pgbackrest", "postgres"]
        );
        assert_eq!(r.port_map["grpc"], 15201);
        assert_eq!(r.pg_data_dir, "/var/lib/pooler/pg_data");
        let routing = r.routing_state.as_ref().unwrap();
        assert_eq!(routing.role(), RoutingRole::Primary);
        assert_eq!(routing.rule.as_ref().unwrap().coordinator_term, 2);
        assert_eq!(r.r#type(), PoolerType::Primary);
        assert_eq!(r.serving_status(), PoolerServingStatus::Serving);
        let lifecycle = r.lifecycle_status.as_ref().unwrap();
        assert_eq!(lifecycle.status(), PoolerLifecycleStatus::LifecycleActive);
        assert_eq!(lifecycle.updated, p.since);
        multigres_topology::validate_pooler(&r).unwrap();
        let record = |pooler| multigres_topology::PoolerRecord {
            key: String::new(),
            mod_revision: 0,
            pooler,
        };
        assert!(record(r.clone()).is_serving_primary());

        // A replica publishes its role without a rule.
        let replica = pooler_record(&p, "0-inf", SimRole::Replica);
        assert_eq!(
            replica.routing_state.as_ref().unwrap().role(),
            RoutingRole::Replica
        );
        assert_eq!(replica.routing_state.as_ref().unwrap().rule, None);
        assert_eq!(replica.r#type(), PoolerType::Replica);

        // Not ready yet: starting, not serving, a replica whatever it was chosen as.
        let starting = pod("x-1", "a", PoolType::ReadOnly, false);
        let starting = pooler_record(&starting, "0-inf", SimRole::Primary { term: 1 });
        assert_eq!(starting.r#type(), PoolerType::Replica);
        assert_eq!(starting.serving_status(), PoolerServingStatus::Disabled);
        assert_eq!(
            starting.lifecycle_status.as_ref().unwrap().status(),
            PoolerLifecycleStatus::LifecycleStarting
        );

        // Terminating: shut down, no routing state, type UNKNOWN.
        let mut gone = pod("s-replica-a-0", "a", PoolType::Replica, false);
        gone.terminating = true;
        let gone = pooler_record(&gone, "0-inf", SimRole::Primary { term: 2 });
        assert_eq!(gone.routing_state, None);
        assert_eq!(gone.r#type(), PoolerType::Unknown);
        assert!(!record(gone).is_serving_primary());
    }
}
