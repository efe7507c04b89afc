//! The cell in Multigres's topology: its `Cell` record in the global topology (create by transaction,
//! update by compare on the mod revision, both done by `multigres-topology`), removal of the record
//! on deletion, and pruning of pooler records whose pods are gone.
//!
//! Every call is bounded by the topology timeout, so an unreachable server costs one reconcile slot a
//! few seconds and never blocks other cells; the caller retries with backoff.

use std::collections::HashSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use multigres_api::Cell;
use multigres_api::labels::{self, component};
use multigres_api::multigres::pooler_service_id;
use multigres_topology::{Dialer, LivePoolers, TopoClient, TopoError, Transport, WriteOutcome};

use crate::Ctx;
use crate::build::{CellTopology, cluster_of};

/// Topology clients (one per server, dropped after a failure so the next attempt dials afresh).
pub struct Topology {
    dialer: Dialer,
}

impl Topology {
    pub fn new(dialer: Dialer) -> Self {
        Self { dialer }
    }

    pub fn timeout(&self) -> Duration {
        self.dialer.timeout()
    }

    /// Runs `op` with a client for `addresses`, forgetting the client when the server is unreachable.
    async fn with<T, F, Fut>(
        &self,
        addresses: &[String],
        transport: Transport,
        op: F,
    ) -> Result<T, TopoError>
    where
        F: FnOnce(TopoClient) -> Fut,
        Fut: Future<Output = Result<T, TopoError>>,
    {
        let result = match self.dialer.client(addresses, transport).await {
            Ok(client) => op(client).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &result
            && e.is_unreachable()
        {
            self.dialer.forget(addresses, transport);
        }
        result
    }
}

/// What registration did this reconcile.
#[derive(Clone, Debug, PartialEq)]
pub enum Registration {
    /// `topologyReconciliation.registerCell` is false.
    Disabled,
    /// The cell's managed local TopoServer has no quorum yet; registering it would point Multigres at
    /// a server that does not answer.
    WaitingForTopoServer(String),
    Registered {
        key: String,
        outcome: WriteOutcome,
    },
    Failed {
        unreachable: bool,
        message: String,
    },
}

impl Registration {
    pub fn failed(&self) -> bool {
        matches!(self, Registration::Failed { .. })
    }
}

fn global_addresses(topology: &CellTopology) -> Vec<String> {
    vec![topology.global_address.clone()]
}

/// Writes the Cell record into the global topology.
pub async fn register(ctx: &Ctx, topology: &CellTopology) -> Registration {
    let record = topology.record.clone();
    let root = topology.global_root.clone();
    let result = ctx
        .state
        .topology
        .with(
            &global_addresses(topology),
            topology.transport,
            |client| async move { client.register_cell(&root, &record).await },
        )
        .await;
    match result {
        Ok(outcome) => Registration::Registered {
            key: multigres_topology::cell_key(&topology.global_root, &topology.record.name),
            outcome,
        },
        Err(e) => Registration::Failed {
            unreachable: e.is_unreachable(),
            message: format!(
                "could not write the Cell record to the global topology at {}: {e}",
                topology.global_address
            ),
        },
    }
}

/// Removes the Cell record from the global topology. `Ok(existed)`.
pub async fn deregister(ctx: &Ctx, topology: &CellTopology) -> Result<bool, TopoError> {
    let name = topology.record.name.clone();
    let root = topology.global_root.clone();
    ctx.state
        .topology
        .with(
            &global_addresses(topology),
            topology.transport,
            |client| async move { client.deregister_cell(&root, &name).await },
        )
        .await
}

/// The label selector of the cell's shard-pool pods.
fn pod_selector(cell: &Cell) -> String {
    let mut selector = format!(
        "{}={},{}={}",
        labels::COMPONENT,
        component::SHARD_POOL,
        labels::CELL,
        cell.spec.name
    );
    if let Some(cluster) = cluster_of(cell) {
        selector.push_str(&format!(",{}={cluster}", labels::CLUSTER));
    }
    selector
}

/// The pooler identities of `pods`: each pod's multipooler service id and its name (which starts
/// its hostname).
fn live_poolers<'a>(pods: impl IntoIterator<Item = &'a PartialObjectMeta<Pod>>) -> LivePoolers {
    let hosts: HashSet<String> = pods.into_iter().map(|p| p.name_any()).collect();
    LivePoolers {
        service_ids: hosts.iter().map(|p| pooler_service_id(p)).collect(),
        hosts,
    }
}

/// Removes pooler records under the cell's root whose pods no longer exist. Candidates come from the
/// pod cache; before anything is deleted, a fresh complete pod listing from the API server confirms
/// them, and if that listing fails nothing is pruned. Returns the removed keys.
pub async fn prune_poolers(
    ctx: &Ctx,
    cell: &Cell,
    topology: &CellTopology,
) -> Result<Vec<String>, String> {
    let namespace = cell.namespace().unwrap_or_default();
    let cluster = cluster_of(cell);
    let addresses = topology.record.server_addresses.clone();
    let root = topology.record.root.clone();
    let records = ctx
        .state
        .topology
        .with(&addresses, topology.transport, |client| {
            let root = root.clone();
            async move { client.list_poolers(&root).await }
        })
        .await
        .map_err(|e| format!("listing pooler records under {root}: {e}"))?;
    // One cache lookup per record, not a scan of every pod in the namespace per reconcile: the
    // Cell reconciles on every pool-pod event, and the scan was a quarter of its CPU at 1,000 Shards.
    let of_cell = |p: &PartialObjectMeta<Pod>| {
        p.labels().get(labels::CELL) == Some(&cell.spec.name)
            && cluster
                .as_ref()
                .is_none_or(|c| p.labels().get(labels::CLUSTER) == Some(c))
    };
    let in_cache = |name: &str| {
        ctx.state
            .pods
            .get(&ObjectRef::new(name).within(&namespace))
            .is_some_and(|p| of_cell(&p))
    };
    // A record whose hostname does not name a cached pod may still be traced by its service id;
    // the service ids of the cell's cached pods are computed only then.
    let mut cached_ids: Option<HashSet<String>> = None;
    let stale = records.iter().any(|r| {
        if in_cache(r.host_label()) || in_cache(&r.pooler.hostname) {
            return false;
        }
        let ids = cached_ids.get_or_insert_with(|| {
            ctx.state
                .pods
                .state()
                .iter()
                .filter(|p| p.namespace().as_deref() == Some(namespace.as_str()) && of_cell(p))
                .map(|p| pooler_service_id(&p.name_any()))
                .collect()
        });
        !ids.contains(r.name())
    });
    if !stale {
        return Ok(Vec::new());
    }
    // Confirm against the API server: the cache may lag behind a pod that was just created.
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let listed = pods
        .list_metadata(&ListParams::default().labels(&pod_selector(cell)))
        .await
        .map_err(|e| {
            format!("listing pods to confirm stale pooler records (nothing pruned): {e}")
        })?;
    let live = live_poolers(listed.items.iter());
    ctx.state
        .topology
        .with(&addresses, topology.transport, |client| async move {
            client.prune_poolers(&root, &live).await
        })
        .await
        .map_err(|e| format!("pruning pooler records: {e}"))
}
