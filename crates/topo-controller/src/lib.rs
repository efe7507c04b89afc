//! The topo controller: each TopoServer (global, owned by a MultigresCluster, or local, owned by a
//! Cell) becomes an etcd StatefulSet, a client and a headless peer Service and a PodDisruptionBudget
//! that keeps a quorum. Its status reports members ready and whether a quorum is (`Available`).
//!
//! A reconcile ([`reconcile`]) reads top to bottom: [`build`] (pure) makes the children, which are
//! server-side applied against the watch caches (no write when nothing changed); [`status`] computes
//! the status from the observed StatefulSet, written only when it changed. PVCs are never deleted.

pub mod build;
pub mod reconcile;
pub mod status;
pub mod volumes;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::Controller;
use kube::runtime::controller::Config as ControllerConfig;
use kube::runtime::reflector::Store;
use multigres_api::TopoServer;
use multigres_api::labels::{self, component};
use std::sync::Arc;

use multigres_runtime::CommonArgs;
use multigres_runtime::caches::{self, CachesReady, child_watch};
use multigres_runtime::client::namespaced_or_all as api;
use multigres_runtime::pki::Authority;
use multigres_runtime::run::{self, Started};

pub use reconcile::reconcile;

/// Name of the controller: its field manager, Event reporter and metric prefix.
pub const NAME: &str = "topo-controller";

/// CRDs that must be established before the controller starts.
pub const CRDS: &[&str] = &["toposervers.multigres.com"];

/// Caches of the children, filled by the controller's watches.
pub struct State {
    pub statefulsets: Store<StatefulSet>,
    pub services: Store<Service>,
    pub pdbs: Store<PodDisruptionBudget>,
    pub caches: CachesReady,
    /// The operator's topology CA, which signs the members' certificates of TopoServers that
    /// speak TLS (`--topology-ca-dir`).
    pub topology_ca: Option<Arc<Authority>>,
    /// The member certificate Secrets it creates, known without reading them.
    pub secrets: multigres_runtime::once::Secrets,
}

pub type Ctx = multigres_runtime::Context<State>;
/// Runs the controller until shutdown.
pub async fn run(
    started: Started,
    args: &CommonArgs,
    topology_ca: Option<Arc<Authority>>,
) -> anyhow::Result<()> {
    let client = started.client.clone();
    let ns = args.watch_namespace.as_deref();
    let selector = format!(
        "{}={},{}={}",
        labels::MANAGED_BY,
        labels::MANAGED_BY_VALUE,
        labels::COMPONENT,
        component::TOPO_SERVER
    );
    let (statefulsets, sts_stream) = child_watch(api::<StatefulSet>(&client, ns), &selector);
    let (services, svc_stream) = child_watch(api::<Service>(&client, ns), &selector);
    let (pdbs, pdb_stream) = child_watch(api::<PodDisruptionBudget>(&client, ns), &selector);
    let caches = CachesReady::spawn(
        vec![
            caches::store(statefulsets.clone()),
            caches::store(services.clone()),
            caches::store(pdbs.clone()),
        ],
        started.readiness.clone(),
    );
    let ctx = started.context(State {
        statefulsets,
        services,
        pdbs,
        caches,
        topology_ca,
        secrets: Default::default(),
    });
    let (topo_servers, topo_server_stream) = caches::primary_watch(api::<TopoServer>(&client, ns));
    Controller::for_stream(topo_server_stream, topo_servers)
        .with_config(ControllerConfig::default().concurrency(args.concurrency))
        .owns_stream(sts_stream)
        .owns_stream(svc_stream)
        .owns_stream(pdb_stream)
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
