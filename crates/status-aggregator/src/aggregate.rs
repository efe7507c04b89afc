//! The aggregation itself: from a cluster, its children, what the topology said and how the
//! controllers feel, the exact `MultigresClusterStatus` the CR definition shows. Pure: no I/O, no
//! clock (the caller passes `now`), so every field is unit-tested from fixed inputs.
//!
//! Children are matched by the names `multigres_api::naming` gives them, computed from the
//! cluster's spec; a child that should exist and does not is reported by name in `Progressing`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use multigres_api::cluster::{
    CellSummary, DatabaseSummary, EtcdSummary, GlobalTopoServerStatus, MultiAdminSummary,
};
use multigres_api::multigres::multigres_shard_id;
use multigres_api::{
    Cell, MultigresCluster, MultigresClusterStatus, PoolType, Shard, TableGroup, TopoServer,
    Tristate, naming,
};
use multigres_runtime::conditions::{self, AVAILABLE, ConditionUpdate, DEGRADED, PROGRESSING};

/// The conditions this service owns on a MultigresCluster. Others (e.g. the cluster controller's
/// `StatusAggregatorReachable`) are never produced or carried over here.
pub const OWNED_CONDITIONS: [&str; 3] = [AVAILABLE, DEGRADED, PROGRESSING];

/// How many names a condition message lists before it says "and N more".
const MAX_LISTED: usize = 5;

/// A shard as the topology names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId {
    pub database: String,
    pub table_group: String,
    pub shard: String,
}

impl ShardId {
    pub fn new(database: &str, table_group: &str, shard: &str) -> Self {
        Self {
            database: database.into(),
            table_group: table_group.into(),
            shard: shard.into(),
        }
    }
}

impl std::fmt::Display for ShardId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.database, self.table_group, self.shard)
    }
}

/// What the last topology poll of one cluster saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopologyObservation {
    /// Whether the global topology server answered; `None` before the first poll.
    pub global_reachable: Option<bool>,
    /// Per cell (logical name): the shards with a PRIMARY, SERVING pooler record in the cell's
    /// topology; `None` when that topology did not answer. A cell missing from the map has not been
    /// polled yet (its address is not known yet), which counts as unknown too.
    pub cells: BTreeMap<String, Option<BTreeSet<ShardId>>>,
    /// Shards with several pooler records claiming PRIMARY (over every cell that answered): the
    /// primary is ambiguous, so the shard does not count as serving writes.
    pub contested: BTreeSet<ShardId>,
}

/// Health of one controller, from its `grpc.health.v1` endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ControllerHealth {
    /// Not polled yet.
    #[default]
    Unknown,
    Serving,
    NotServing,
    /// The endpoint did not answer (the text says why).
    Unreachable(String),
}

/// Everything [`aggregate`] looks at for one cluster.
#[derive(Clone, Debug)]
pub struct ClusterInputs {
    pub cluster: Arc<MultigresCluster>,
    /// TopoServers labelled with this cluster (global and local).
    pub topo_servers: Vec<Arc<TopoServer>>,
    /// Cells labelled with this cluster.
    pub cells: Vec<Arc<Cell>>,
    /// TableGroups labelled with this cluster.
    pub table_groups: Vec<Arc<TableGroup>>,
    /// Shards labelled with this cluster.
    pub shards: Vec<Arc<Shard>>,
    /// The multiadmin Deployment, if it exists.
    pub multiadmin: Option<Arc<Deployment>>,
    pub topology: TopologyObservation,
    /// By controller name.
    pub controllers: BTreeMap<String, ControllerHealth>,
    /// The last aggregate of this cluster (or its current `.status`): keeps condition transition
    /// times and the last fully observed generation.
    pub previous: Option<MultigresClusterStatus>,
    pub now: Timestamp,
}

/// What was found out about the children while summarising them; becomes `Progressing`.
#[derive(Default)]
struct Progress {
    missing: Vec<String>,
    stale: Vec<String>,
    not_ready: Vec<String>,
}

impl Progress {
    /// Records a child that must exist: missing, not yet at its generation, or seen. Returns the
    /// child when it exists.
    fn child<'a, K: kube::Resource>(
        &mut self,
        what: String,
        found: Option<&'a K>,
        observed_generation: impl Fn(&K) -> Option<i64>,
    ) -> Option<&'a K> {
        match found {
            None => self.missing.push(what),
            Some(obj) => {
                let generation = obj.meta().generation;
                if generation.is_some() && observed_generation(obj) != generation {
                    self.stale.push(what);
                }
            }
        }
        found
    }
}

/// The aggregate status of one cluster.
pub fn aggregate(inputs: &ClusterInputs) -> MultigresClusterStatus {
    let cluster = inputs.cluster.as_ref();
    let name = cluster.name_any();
    let spec = &cluster.spec;
    let generation = cluster.metadata.generation;
    let mut progress = Progress::default();

    let topo_servers: BTreeMap<String, &TopoServer> = inputs
        .topo_servers
        .iter()
        .map(|t| (t.name_any(), t.as_ref()))
        .collect();
    let cells: BTreeMap<String, &Cell> = inputs
        .cells
        .iter()
        .map(|c| (c.name_any(), c.as_ref()))
        .collect();
    // By (database, table group): a TableGroup keeps the name it was created with, which may not
    // be the one this version would give it.
    let table_groups: BTreeMap<(&str, &str), &TableGroup> = inputs
        .table_groups
        .iter()
        .map(|t| {
            (
                (t.spec.database.as_str(), t.spec.table_group.as_str()),
                t.as_ref(),
            )
        })
        .collect();
    let shards: BTreeMap<String, &Shard> = inputs
        .shards
        .iter()
        .map(|s| (s.name_any(), s.as_ref()))
        .collect();

    // Global topology server.
    let external_global = spec
        .global_topo_server
        .as_ref()
        .is_some_and(|b| b.external.is_some());
    let global_available = if external_global {
        reachable(inputs.topology.global_reachable)
    } else {
        let ts_name = naming::global_topo_server(&name);
        let found = progress.child(
            format!("TopoServer {ts_name}"),
            topo_servers.get(&ts_name).copied(),
            |t| t.status.as_ref().and_then(|s| s.observed_generation),
        );
        topo_server_available(found, &mut progress)
    };

    // Cells.
    let mut cell_summaries = BTreeMap::new();
    for config in &spec.cells {
        let cell_name = naming::cell(&name, &config.name);
        let found = progress.child(
            format!("Cell {cell_name}"),
            cells.get(&cell_name).copied(),
            |c| c.status.as_ref().and_then(|s| s.observed_generation),
        );
        let block = config.spec.topo_server.as_ref();
        let external_local = block.is_some_and(|b| b.external.is_some());
        let managed_local = !external_local
            && block.is_some_and(|b| b.deployment_template.is_some() || b.managed_spec.is_some());
        let local_topo = managed_local.then(|| {
            let ts_name = naming::local_topo_server(&name, &config.name);
            let found = progress.child(
                format!("TopoServer {ts_name}"),
                topo_servers.get(&ts_name).copied(),
                |t| t.status.as_ref().and_then(|s| s.observed_generation),
            );
            topo_server_available(found, &mut progress)
        });
        let summary = match found {
            None => CellSummary {
                gateway_available: Tristate::False,
                multiorch_available: Tristate::False,
                topo_server_available: local_topo.unwrap_or(Tristate::Unknown),
            },
            Some(cell) => {
                let status = cell.status.clone().unwrap_or_default();
                let reported = cell.status.is_some();
                if reported && status.gateway_ready_replicas < status.gateway_replicas {
                    progress.not_ready.push(format!(
                        "Cell {cell_name}: {}/{} multigateway pods ready",
                        status.gateway_ready_replicas, status.gateway_replicas
                    ));
                }
                if reported && status.multiorch_available != Tristate::True {
                    progress
                        .not_ready
                        .push(format!("Cell {cell_name}: multiorch not available"));
                }
                let topo = status
                    .topo_server
                    .available
                    .or(local_topo)
                    .unwrap_or_else(|| {
                        if external_local {
                            reachable(inputs.topology.cells.get(&config.name).map(Option::is_some))
                        } else {
                            global_available
                        }
                    });
                CellSummary {
                    gateway_available: if reported {
                        (status.gateway_ready_replicas >= 1).into()
                    } else {
                        Tristate::Unknown
                    },
                    multiorch_available: if reported {
                        status.multiorch_available
                    } else {
                        Tristate::Unknown
                    },
                    topo_server_available: topo,
                }
            }
        };
        cell_summaries.insert(config.name.clone(), summary);
    }

    // Databases, their TableGroups and Shards.
    let mut database_summaries = BTreeMap::new();
    let mut serving_gaps: Vec<String> = Vec::new();
    for db in &spec.databases {
        let mut summary = DatabaseSummary::default();
        let mut serving = Vec::new();
        for tg in &db.spec.tablegroups {
            let cached = table_groups
                .get(&(db.name.as_str(), tg.name.as_str()))
                .copied();
            let tg_name = cached.map_or_else(
                || naming::table_group(&name, &db.name, &tg.name),
                |t| t.name_any(),
            );
            let found = progress.child(format!("TableGroup {tg_name}"), cached, |t| {
                t.status.as_ref().and_then(|s| s.observed_generation)
            });
            let per_shard: i32 = match found {
                Some(table_group) => table_group
                    .spec
                    .shard_template
                    .pools
                    .iter()
                    .map(|p| p.replicas.max(0))
                    .sum(),
                None => 0,
            };
            let shard_count = found.map_or(tg.partitioning.shards, |t| t.spec.partitioning.shards);
            summary.desired_instances += per_shard * shard_count.max(0);
            let primary_cells: BTreeSet<&str> = tg
                .shard_template
                .pools
                .iter()
                .filter(|p| p.pool_type == PoolType::Replica)
                .map(|p| p.cell.as_str())
                .collect();
            for index in 0..tg.partitioning.shards.max(0) {
                let shard_name = index.to_string();
                let shard_resource = naming::shard(&tg_name, &shard_name);
                let found = progress.child(
                    format!("Shard {shard_resource}"),
                    shards.get(&shard_resource).copied(),
                    |s| s.status.as_ref().and_then(|s| s.observed_generation),
                );
                if let Some(shard) = found {
                    let ready = shard.status.as_ref().map_or(0, |s| s.ready_pods);
                    let desired: i32 = shard.spec.pools.iter().map(|p| p.replicas.max(0)).sum();
                    summary.ready_instances += ready;
                    if ready < desired {
                        progress.not_ready.push(format!(
                            "Shard {shard_resource}: {ready}/{desired} pods ready"
                        ));
                    }
                }
                let id = ShardId::new(
                    &db.name,
                    &tg.name,
                    &multigres_shard_id(&shard_name, tg.partitioning.shards.max(0) as u32),
                );
                let state = shard_serving(&inputs.topology, &id, &primary_cells);
                if state != Tristate::True {
                    serving_gaps.push(match state {
                        Tristate::False if inputs.topology.contested.contains(&id) => {
                            format!("shard {id}: several poolers claim PRIMARY")
                        }
                        Tristate::False => format!("shard {id} has no serving PRIMARY"),
                        _ => format!("shard {id}: topology unreachable"),
                    });
                }
                serving.push(state);
            }
        }
        summary.serving_writes = all_of(&serving);
        database_summaries.insert(db.name.clone(), summary);
    }

    // multiadmin.
    let admin_name = naming::multiadmin(&name);
    let admin = progress.child(
        format!("Deployment {admin_name}"),
        inputs.multiadmin.as_deref(),
        |d| d.status.as_ref().and_then(|s| s.observed_generation),
    );
    let admin_available = match admin {
        None => Tristate::False,
        Some(deployment) => match &deployment.status {
            None => Tristate::Unknown,
            Some(status) => {
                let available = status.available_replicas.unwrap_or(0);
                let wanted = deployment
                    .spec
                    .as_ref()
                    .and_then(|s| s.replicas)
                    .unwrap_or(1);
                if available < wanted {
                    progress.not_ready.push(format!(
                        "Deployment {admin_name}: {available}/{wanted} pods available"
                    ));
                }
                (available >= 1).into()
            }
        },
    };

    // Conditions.
    let previous = inputs.previous.as_ref();
    let mut conds: Vec<Condition> = previous
        .map(|p| p.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| OWNED_CONDITIONS.contains(&c.type_.as_str()))
        .collect();

    // Databases first: not serving writes is what a user most needs to read.
    let mut unavailable = serving_gaps;
    note(&mut unavailable, global_available, "global topology server");
    for (cell, s) in &cell_summaries {
        note(
            &mut unavailable,
            s.gateway_available,
            &format!("cell {cell} multigateway"),
        );
        note(
            &mut unavailable,
            s.multiorch_available,
            &format!("cell {cell} multiorch"),
        );
        note(
            &mut unavailable,
            s.topo_server_available,
            &format!("cell {cell} topology server"),
        );
    }
    note(&mut unavailable, admin_available, "multiadmin");
    for db in database_summaries.keys() {
        if db_has_no_shards(spec, db) {
            unavailable.push(format!("database {db} has no shards"));
        }
    }
    let available = if unavailable.is_empty() {
        ConditionUpdate::new(
            AVAILABLE,
            true,
            "AllComponentsAvailable",
            "every component is available and every database serves writes",
        )
    } else {
        ConditionUpdate::new(
            AVAILABLE,
            false,
            "ComponentsUnavailable",
            format!("not available: {}", list(&unavailable)),
        )
    };

    let progressing = if !progress.missing.is_empty() {
        ConditionUpdate::new(
            PROGRESSING,
            true,
            "ChildrenMissing",
            progress_message(&progress),
        )
    } else if !progress.stale.is_empty() {
        ConditionUpdate::new(
            PROGRESSING,
            true,
            "ChildrenUpdating",
            progress_message(&progress),
        )
    } else if !progress.not_ready.is_empty() {
        ConditionUpdate::new(
            PROGRESSING,
            true,
            "PodsNotReady",
            progress_message(&progress),
        )
    } else {
        ConditionUpdate::new(
            PROGRESSING,
            false,
            "Reconciled",
            "every child exists, is at its generation and ready",
        )
    };

    let mut degraded_reasons = Vec::new();
    for (controller, health) in &inputs.controllers {
        match health {
            ControllerHealth::NotServing => {
                degraded_reasons.push(format!("controller {controller} is not serving"))
            }
            ControllerHealth::Unreachable(why) => {
                degraded_reasons.push(format!("controller {controller} is unreachable ({why})"))
            }
            ControllerHealth::Unknown | ControllerHealth::Serving => {}
        }
    }
    if inputs.topology.global_reachable == Some(false) {
        degraded_reasons.push("global topology server unreachable".into());
    }
    for (cell, seen) in &inputs.topology.cells {
        if seen.is_none() {
            degraded_reasons.push(format!("topology of cell {cell} unreachable"));
        }
    }
    let degraded = if degraded_reasons.is_empty() {
        ConditionUpdate::new(
            DEGRADED,
            false,
            "AsExpected",
            "every controller is serving and the topology answers",
        )
    } else {
        ConditionUpdate::new(DEGRADED, true, "Impaired", list(&degraded_reasons))
    };
    for update in [available, degraded, progressing] {
        conditions::set(&mut conds, update, generation, inputs.now);
    }

    let fully_observed = progress.missing.is_empty() && progress.stale.is_empty();
    let observed_generation = if fully_observed {
        generation
    } else {
        previous.and_then(|p| p.observed_generation)
    };

    let desired: i32 = database_summaries
        .values()
        .map(|d| d.desired_instances)
        .sum();
    let ready: i32 = database_summaries.values().map(|d| d.ready_instances).sum();
    MultigresClusterStatus {
        observed_generation,
        global_topo_server: Some(GlobalTopoServerStatus {
            etcd: EtcdSummary {
                available: global_available,
            },
        }),
        conditions: conds,
        cells: cell_summaries,
        databases: database_summaries,
        multiadmin: Some(MultiAdminSummary {
            available: admin_available,
            service_name: admin_name,
        }),
        cell_count: Some(spec.cells.len() as i32),
        database_count: Some(spec.databases.len() as i32),
        ready_instances_summary: Some(format!("{ready}/{desired}")),
        // The backup controller's part of the status.
        last_backups: Default::default(),
    }
}

fn db_has_no_shards(spec: &multigres_api::MultigresClusterSpec, db: &str) -> bool {
    spec.databases
        .iter()
        .find(|d| d.name == db)
        .is_some_and(|d| d.spec.tablegroups.iter().all(|t| t.partitioning.shards < 1))
}

/// From a reachability observation: answered, did not answer, or not asked yet.
fn reachable(seen: Option<bool>) -> Tristate {
    match seen {
        Some(true) => Tristate::True,
        Some(false) => Tristate::False,
        None => Tristate::Unknown,
    }
}

/// A TopoServer's `Available` condition; missing server: False; no condition yet: Unknown.
fn topo_server_available(found: Option<&TopoServer>, progress: &mut Progress) -> Tristate {
    let Some(server) = found else {
        return Tristate::False;
    };
    let Some(status) = &server.status else {
        return Tristate::Unknown;
    };
    if status.ready_replicas < server.spec.replicas {
        progress.not_ready.push(format!(
            "TopoServer {}: {}/{} members ready",
            server.name_any(),
            status.ready_replicas,
            server.spec.replicas
        ));
    }
    match status.conditions.iter().find(|c| c.type_ == AVAILABLE) {
        Some(c) if c.status == "True" => Tristate::True,
        Some(c) if c.status == "False" => Tristate::False,
        _ => Tristate::Unknown,
    }
}

/// Whether one shard has a serving PRIMARY: not when several records claim PRIMARY; seen in any
/// cell; definitely not when every cell that can hold its primary answered without one; unknown
/// otherwise.
fn shard_serving(
    topology: &TopologyObservation,
    id: &ShardId,
    primary_cells: &BTreeSet<&str>,
) -> Tristate {
    if topology.contested.contains(id) {
        return Tristate::False;
    }
    let seen_anywhere = topology
        .cells
        .values()
        .flatten()
        .any(|primaries| primaries.contains(id));
    if seen_anywhere {
        return Tristate::True;
    }
    let all_answered = primary_cells
        .iter()
        .all(|cell| matches!(topology.cells.get(*cell), Some(Some(_))));
    if all_answered {
        Tristate::False
    } else {
        Tristate::Unknown
    }
}

/// True when all are True (and there is at least one), False when any is False, else Unknown.
fn all_of(states: &[Tristate]) -> Tristate {
    if states.is_empty() || states.contains(&Tristate::False) {
        Tristate::False
    } else if states.iter().all(|s| *s == Tristate::True) {
        Tristate::True
    } else {
        Tristate::Unknown
    }
}

fn note(out: &mut Vec<String>, state: Tristate, what: &str) {
    match state {
        Tristate::True => {}
        Tristate::False => out.push(what.to_string()),
        Tristate::Unknown => out.push(format!("{what} (unknown)")),
    }
}

fn list(items: &[String]) -> String {
    let mut text = items
        .iter()
        .take(MAX_LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if items.len() > MAX_LISTED {
        text.push_str(&format!("; and {} more", items.len() - MAX_LISTED));
    }
    text
}

fn progress_message(progress: &Progress) -> String {
    let mut parts = Vec::new();
    if !progress.missing.is_empty() {
        parts.push(format!("missing: {}", list(&progress.missing)));
    }
    if !progress.stale.is_empty() {
        parts.push(format!(
            "not yet at their generation: {}",
            list(&progress.stale)
        ));
    }
    if !progress.not_ready.is_empty() {
        parts.push(format!("not ready: {}", list(&progress.not_ready)));
    }
    parts.join(". ")
}

#[cfg(test)]
mod tests;
