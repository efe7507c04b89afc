//! Reading serving state from the Multigres topology: where each cluster's global and cell
//! topologies live ([`targets`], pure), and one poll of them ([`Poller::poll`]): which shards have
//! a PRIMARY pooler record that is SERVING, per cell, and which shards have several records
//! claiming PRIMARY (contested: not serving, whatever the records say).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kube::ResourceExt;
use multigres_api::cluster::CellConfig;
use multigres_api::{Cell, GlobalTopologyRef, MultigresCluster, TableGroup, naming};
pub use multigres_topology::Location;
use multigres_topology::{
    Dialer, PoolerChange, PoolerRole, PoolerWatches, TopoClient, Transport, WatchKey,
    cell_root_on_global,
};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::aggregate::{ShardId, TopologyObservation};

/// Where one cluster's topology lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Targets {
    pub global: Location,
    /// By logical cell name.
    pub cells: BTreeMap<String, Location>,
    /// How the topology is dialed (as the children carry it).
    pub transport: Transport,
}

impl Targets {
    /// Whether the watch `key` follows one of these cells' topologies.
    pub fn follows(&self, key: &WatchKey) -> bool {
        key.transport == self.transport
            && self
                .cells
                .values()
                .any(|cell| cell.root == key.root && key.addresses.contains(&cell.address))
    }
}

/// The global topology of a cluster: as its children carry it (they were resolved with the
/// templates), else as the cluster's own spec says (exact unless a template sets the root path).
pub fn global_location(
    cluster: &MultigresCluster,
    cells: &[&Cell],
    table_groups: &[&TableGroup],
) -> Location {
    let from_child: Option<&GlobalTopologyRef> = cells
        .iter()
        .map(|c| &c.spec.global_topo_server)
        .chain(table_groups.iter().map(|t| &t.spec.global_topo_server))
        .next();
    if let Some(global) = from_child {
        return Location {
            address: global.address.clone(),
            root: global.root_path.clone(),
        };
    }
    let name = cluster.name_any();
    let namespace = cluster.namespace().unwrap_or_default();
    let block = cluster.spec.global_topo_server.clone().unwrap_or_default();
    let default_root = naming::default_root(&namespace, &name, "global");
    if let Some(external) = &block.external {
        return Location {
            address: external.address.clone(),
            root: external
                .root_path
                .clone()
                .or(block.root_path)
                .unwrap_or(default_root),
        };
    }
    let service = naming::topo_client_service(&naming::global_topo_server(&name));
    Location {
        address: naming::topo_address(&service, &namespace),
        root: block
            .root_path
            .or(block.managed_spec.and_then(|m| m.root_path))
            .unwrap_or(default_root),
    }
}

/// A cell's topology: as the Cell reports it, else as its spec (or the cluster's spec) says.
pub fn cell_location(
    cluster: &MultigresCluster,
    config: &CellConfig,
    cell: Option<&Cell>,
    global: &Location,
) -> Location {
    if let Some(reported) = cell.and_then(|c| c.status.as_ref()).map(|s| &s.topo_server)
        && let (Some(address), Some(root)) = (&reported.address, &reported.root_path)
    {
        return Location {
            address: address.clone(),
            root: root.clone(),
        };
    }
    let name = cluster.name_any();
    let namespace = cluster.namespace().unwrap_or_default();
    let default_root = naming::default_root(&namespace, &name, &config.name);
    if let Some(cell) = cell {
        let topo = &cell.spec.topo_server;
        if let Some(external) = &topo.external {
            return Location {
                address: external.address.clone(),
                root: external.root_path.clone().unwrap_or(default_root),
            };
        }
        if let Some(managed) = &topo.managed_spec {
            return local_managed(
                &name,
                &namespace,
                &config.name,
                managed.root_path.clone(),
                default_root,
            );
        }
        return on_global(global, &config.name);
    }
    match &config.spec.topo_server {
        Some(block) if block.external.is_some() => {
            let external = block.external.as_ref().expect("checked");
            Location {
                address: external.address.clone(),
                root: external
                    .root_path
                    .clone()
                    .or(block.root_path.clone())
                    .unwrap_or(default_root),
            }
        }
        Some(block) if block.deployment_template.is_some() || block.managed_spec.is_some() => {
            let root = block.root_path.clone().or(block
                .managed_spec
                .as_ref()
                .and_then(|m| m.root_path.clone()));
            local_managed(&name, &namespace, &config.name, root, default_root)
        }
        _ => on_global(global, &config.name),
    }
}

/// A managed local server: its client Service, and `root` or the cluster's default for the cell.
fn local_managed(
    cluster: &str,
    namespace: &str,
    cell: &str,
    root: Option<String>,
    default_root: String,
) -> Location {
    let service = naming::topo_client_service(&naming::local_topo_server(cluster, cell));
    Location {
        address: naming::topo_address(&service, namespace),
        root: root.unwrap_or(default_root),
    }
}

fn on_global(global: &Location, cell: &str) -> Location {
    Location {
        address: global.address.clone(),
        root: cell_root_on_global(&global.root, cell),
    }
}

/// Every topology location of one cluster.
pub fn targets(
    cluster: &MultigresCluster,
    cells: &[&Cell],
    table_groups: &[&TableGroup],
) -> Targets {
    let global = global_location(cluster, cells, table_groups);
    let transport = cells
        .iter()
        .map(|c| &c.spec.global_topo_server)
        .chain(table_groups.iter().map(|t| &t.spec.global_topo_server))
        .map(multigres_runtime::topology_tls::transport)
        .find(|t| *t != Transport::Plaintext)
        .unwrap_or(Transport::Plaintext);
    let name = cluster.name_any();
    let by_name: HashMap<String, &Cell> = cells.iter().map(|c| (c.name_any(), *c)).collect();
    let cells = cluster
        .spec
        .cells
        .iter()
        .map(|config| {
            let child = by_name.get(&naming::cell(&name, &config.name)).copied();
            (
                config.name.clone(),
                cell_location(cluster, config, child, &global),
            )
        })
        .collect();
    Targets {
        global,
        cells,
        transport,
    }
}

/// Polls topology servers, keeping one lazily connected client per address; pooler records come
/// from the topology watches once they are in sync (docs/performance.md, "Topology watch").
pub struct Poller {
    dialer: Dialer,
    watches: PoolerWatches,
}

impl Poller {
    /// The poller, and the pooler record changes its watches see: a change means the clusters
    /// whose cells it touches should be read again ([`Targets::follows`]) before the next tick.
    pub fn new(dialer: Dialer) -> (Self, UnboundedReceiver<PoolerChange>) {
        let (watches, changes) = PoolerWatches::new(multigres_topology::IDLE_AFTER);
        (Self { dialer, watches }, changes)
    }

    async fn client(&self, address: &str, transport: Transport) -> Option<TopoClient> {
        match self
            .dialer
            .client(std::slice::from_ref(&address.to_string()), transport)
            .await
        {
            Ok(client) => Some(client),
            Err(error) => {
                tracing::debug!(%address, %error, "cannot connect to topology");
                None
            }
        }
    }

    /// Reads one cluster's topology: global reachability and, per cell, the serving primaries.
    pub async fn poll(&mut self, targets: &Targets) -> TopologyObservation {
        let global = match self
            .client(&targets.global.address, targets.transport)
            .await
        {
            Some(client) => client.revision().await.is_ok(),
            None => false,
        };
        self.primaries(targets, Some(global)).await
    }

    /// Reads the serving primaries of one cluster's cells (from the watches once in sync), keeping
    /// `global_reachable` as last polled: what a pooler record change needs read again.
    pub async fn primaries(
        &mut self,
        targets: &Targets,
        global_reachable: Option<bool>,
    ) -> TopologyObservation {
        let mut observation = TopologyObservation {
            global_reachable,
            ..Default::default()
        };
        let mut reads = Vec::new();
        let watches = &self.watches;
        for (cell, location) in &targets.cells {
            let client = self.client(&location.address, targets.transport).await;
            let key = WatchKey {
                addresses: vec![location.address.clone()],
                transport: targets.transport,
                root: location.root.clone(),
            };
            reads.push(async move {
                let seen = match client {
                    Some(client) => read_primary_claims(watches, &client, &key).await,
                    None => None,
                };
                (cell.clone(), &location.address, seen)
            });
        }
        // Claimants by shard, as `<address><key>`: two cells sharing a root count a record once.
        let mut claimants: BTreeMap<ShardId, BTreeSet<String>> = BTreeMap::new();
        for (cell, address, seen) in futures::future::join_all(reads).await {
            for claim in seen.iter().flatten() {
                claimants
                    .entry(claim.shard.clone())
                    .or_default()
                    .insert(format!("{address}{}", claim.key));
            }
            let serving = seen.map(|claims| {
                claims
                    .into_iter()
                    .filter(|c| c.serving)
                    .map(|c| c.shard)
                    .collect()
            });
            observation.cells.insert(cell, serving);
        }
        observation.contested = claimants
            .into_iter()
            .filter(|(_, keys)| keys.len() > 1)
            .map(|(shard, _)| shard)
            .collect();
        // A client whose server went away reconnects by itself; one that never connected is retried
        // next poll because it was not cached.
        observation
    }
}

/// A pooler record that claims PRIMARY.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrimaryClaim {
    pub shard: ShardId,
    /// The record's key.
    pub key: String,
    /// Whether it serves (SERVING, neither stopping, shut down nor quarantined).
    pub serving: bool,
}

/// The records under one cell root that claim PRIMARY (`routing_state.role`, the deprecated
/// `type` only without it); `None` when the server did not answer.
pub async fn read_primary_claims(
    watches: &PoolerWatches,
    client: &TopoClient,
    key: &WatchKey,
) -> Option<Vec<PrimaryClaim>> {
    match watches.poolers(client, key).await {
        Ok((records, _)) => Some(
            records
                .iter()
                .filter(|r| r.role() == PoolerRole::Primary)
                .filter_map(|r| {
                    let k = r.pooler.shard_key.as_ref()?;
                    Some(PrimaryClaim {
                        shard: ShardId::new(&k.database, &k.table_group, &k.shard),
                        key: r.key.clone(),
                        serving: r.is_serving_primary(),
                    })
                })
                .collect(),
        ),
        Err(error) => {
            tracing::debug!(root = %key.root, %error, "cannot list poolers");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multigres_api::cluster::CellConfigSpec;
    use multigres_api::{ExternalTopoServer, MultigresClusterSpec, TopoServerConfig};

    fn cluster(spec: MultigresClusterSpec) -> MultigresCluster {
        let mut c = MultigresCluster::new("prod", spec);
        c.metadata.namespace = Some("ns".into());
        c
    }

    fn cell(name: &str, topo: Option<TopoServerConfig>) -> CellConfig {
        CellConfig {
            name: name.into(),
            spec: CellConfigSpec {
                topo_server: topo,
                ..Default::default()
            },
        }
    }

    #[test]
    fn cells_default_to_the_global_server_under_the_global_root() {
        let c = cluster(MultigresClusterSpec {
            cells: vec![cell("a", None)],
            ..Default::default()
        });
        let t = targets(&c, &[], &[]);
        assert_eq!(
            t.global,
            Location {
                address: "prod-global-client.ns.svc:2379".into(),
                root: "/multigres/ns/prod/global".into()
            }
        );
        assert_eq!(t.cells["a"].root, "/multigres/ns/prod/global/a");
        assert_eq!(t.cells["a"].address, t.global.address);
    }

    #[test]
    fn external_and_managed_cells() {
        let c = cluster(MultigresClusterSpec {
            global_topo_server: Some(TopoServerConfig {
                external: Some(ExternalTopoServer {
                    address: "etcd:2379".into(),
                    root_path: Some("/g".into()),
                    tls: None,
                }),
                ..Default::default()
            }),
            cells: vec![
                cell(
                    "x",
                    Some(TopoServerConfig {
                        external: Some(ExternalTopoServer {
                            address: "other:2379".into(),
                            root_path: None,
                            tls: None,
                        }),
                        ..Default::default()
                    }),
                ),
                cell(
                    "m",
                    Some(TopoServerConfig {
                        managed_spec: Some(Default::default()),
                        ..Default::default()
                    }),
                ),
            ],
            ..Default::default()
        });
        let t = targets(&c, &[], &[]);
        assert_eq!(t.global.address, "etcd:2379");
        assert_eq!(t.global.root, "/g");
        assert_eq!(t.cells["x"].address, "other:2379");
        assert_eq!(t.cells["x"].root, "/multigres/ns/prod/x");
        assert_eq!(t.cells["m"].address, "prod-m-client.ns.svc:2379");
        assert_eq!(t.cells["m"].root, "/multigres/ns/prod/m");
    }
}
