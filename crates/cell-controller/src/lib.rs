//! The cell controller: each Cell becomes a multigateway Deployment and Service, a multiorch
//! Deployment watching the databases the cell serves, and (when the Cell asks for one) a managed local
//! TopoServer owned by the Cell. The cell is registered in Multigres's global topology as a
//! `clustermetadata.Cell` record, pooler records of vanished pods are pruned, and the record is
//! removed again when the Cell is deleted (finalizer `multigres.com/cell-registration`).
//!
//! A reconcile ([`reconcile`]) reads top to bottom: [`build`] (pure) validates and makes the
//! children and the record, which are server-side applied against the watch caches, [`topology`]
//! talks to etcd (bounded by a short timeout), [`status`] computes the status from what was observed.

pub mod build;
pub mod reconcile;
pub mod status;
pub mod topology;

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Config as ControllerConfig;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use multigres_api::labels::{self, component};
use multigres_api::{Cell, TopoServer, naming};
use multigres_runtime::CommonArgs;
use multigres_runtime::caches::{self, CachesReady, child_watch};
use multigres_runtime::client::namespaced_or_all as api;
use multigres_runtime::run::{self, Started};

pub use reconcile::reconcile;
use topology::Topology;

/// Name of the controller: its field manager, Event reporter and metric prefix.
pub const NAME: &str = "cell-controller";
/// CRDs that must be established before the controller starts.
pub const CRDS: &[&str] = &["cells.multigres.com", "toposervers.multigres.com"];
/// Held on every Cell until its record is removed from the global topology.
pub const FINALIZER: &str = "multigres.com/cell-registration";

/// What every reconcile shares: the watch caches and the topology clients.
pub struct State {
    pub deployments: Store<Deployment>,
    pub services: Store<Service>,
    pub pdbs: Store<PodDisruptionBudget>,
    pub topo_servers: Store<TopoServer>,
    /// Shard-pool pods (metadata only), to tell live poolers from vanished ones.
    pub pods: Store<PartialObjectMeta<Pod>>,
    pub topology: Topology,
    /// Periodic re-check: re-registers a record someone removed and prunes poolers.
    pub resync: Duration,
    pub caches: CachesReady,
}

pub type Ctx = multigres_runtime::Context<State>;

fn managed(component_selector: &str) -> String {
    format!(
        "{}={},{component_selector}",
        labels::MANAGED_BY,
        labels::MANAGED_BY_VALUE
    )
}

/// The Cell a shard-pool pod belongs to, from its cluster and cell labels.
fn cell_of_pod(pod: PartialObjectMeta<Pod>) -> Option<ObjectRef<Cell>> {
    let cluster = pod.labels().get(labels::CLUSTER)?;
    let cell = pod.labels().get(labels::CELL)?;
    Some(ObjectRef::new(&naming::cell(cluster, cell)).within(&pod.namespace()?))
}

/// Settings of the cell controller beyond the common ones.
pub struct Settings {
    pub address_mapping: multigres_topology::AddressMapping,
    pub topology_timeout: Duration,
    /// The client certificate for topologies that speak TLS (`--topology-ca-dir`).
    pub topology_tls: multigres_topology::ClientIdentities,
    pub resync: Duration,
}

/// Runs the controller until shutdown.
pub async fn run(started: Started, args: &CommonArgs, settings: Settings) -> anyhow::Result<()> {
    if !settings.address_mapping.is_off() {
        tracing::info!(mapping = %settings.address_mapping, "topology address mapping is on");
    }
    let client = started.client.clone();
    let ns = args.watch_namespace.as_deref();
    let gateway_and_orch = managed(&format!(
        "{} in ({},{})",
        labels::COMPONENT,
        component::MULTIGATEWAY,
        component::MULTIORCH
    ));
    let (deployments, deploy_stream) =
        child_watch(api::<Deployment>(&client, ns), &gateway_and_orch);
    let (pdbs, pdb_stream) =
        child_watch(api::<PodDisruptionBudget>(&client, ns), &gateway_and_orch);
    let (services, svc_stream) = child_watch(
        api::<Service>(&client, ns),
        &managed(&format!(
            "{}={}",
            labels::COMPONENT,
            component::MULTIGATEWAY
        )),
    );
    let (topo_servers, ts_stream) = child_watch(
        api::<TopoServer>(&client, ns),
        &managed(&format!("{}={}", labels::COMPONENT, component::TOPO_SERVER)),
    );
    let (pods, pod_writer) = reflector::store();
    let pod_stream = caches::cache_watch(
        api::<PartialObjectMeta<Pod>>(&client, ns),
        watcher::Config::default().labels(&format!(
            "{}={}",
            labels::COMPONENT,
            component::SHARD_POOL
        )),
    )
    .reflect(pod_writer);
    let pod_stream = caches::touched(pod_stream, &pods);
    let caches = CachesReady::spawn(
        vec![
            caches::store(deployments.clone()),
            caches::store(services.clone()),
            caches::store(pdbs.clone()),
            caches::store(topo_servers.clone()),
            caches::store(pods.clone()),
        ],
        started.readiness.clone(),
    );
    let ctx = started.context(State {
        deployments,
        services,
        pdbs,
        topo_servers,
        pods,
        topology: Topology::new(multigres_topology::Dialer::new(
            settings.address_mapping,
            settings.topology_timeout,
            settings.topology_tls,
        )),
        resync: settings.resync,
        caches,
    });
    let (cells, cell_stream) = caches::primary_watch(api::<Cell>(&client, ns));
    Controller::for_stream(cell_stream, cells)
        .with_config(ControllerConfig::default().concurrency(args.concurrency))
        .owns_stream(deploy_stream)
        .owns_stream(svc_stream)
        .owns_stream(pdb_stream)
        .owns_stream(ts_stream)
        .watches_stream(pod_stream, cell_of_pod)
        .graceful_shutdown_on(started.shutdown())
        .run(reconcile, run::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "controller event");
            }
        })
        .await;
    Ok(())
}
