//! The cell controller: each Cell becomes a multigateway Deployment and Service, a multiorch
//! Deployment watching the databases the cell serves, and (when the Cell asks for one) a managed local
//! TopoServer owned by the Cell. The cell is registered in Multigres's global topology as a
//! `clustermetadata.Cell` record, pooler records of vanished pods are pruned, and the record is
//! removed again when the Cell is deleted (finalizer `multigres.com/cell-registration`).
//!
//! A reconcile reads top to bottom: [`build`] (pure) validates and makes the children and the record,
//! [`apply`] server-side applies the children against the watch caches, [`topology`] talks to etcd
//! (bounded by a short timeout), [`status`] computes the status from what was observed.

pub mod apply;
pub mod build;
pub mod error;
pub mod status;
pub mod topology;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::jiff::Timestamp;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::finalizer::{self, Event as Finalized};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use multigres_api::labels::{self, component};
use multigres_api::{Cell, TopoServer, naming};
use multigres_runtime::CommonArgs;
use multigres_runtime::client::namespaced_or_all as api;
use multigres_runtime::conditions::{self, ConditionUpdate};
use multigres_runtime::run::{self, Started};

use build::{CellTopology, TopologyKind};
pub use error::Error;
use multigres_runtime::caches::{self, CachesReady, child_watch};
use status::{Observed, TOPOLOGY_REGISTERED};
use topology::{Registration, Topology};

/// Name of the controller: its field manager, Event reporter and metric prefix.
pub const NAME: &str = "cell-controller";
/// Held on every Cell until its record is removed from the global topology.
pub const FINALIZER: &str = "multigres.com/cell-registration";

/// What every reconcile shares: the watch caches and the topology clients.
pub struct State {
    pub deployments: Store<Deployment>,
    pub services: Store<Service>,
    pub topo_servers: Store<TopoServer>,
    /// Shard-pool pods (metadata only), to tell live poolers from vanished ones.
    pub pods: Store<PartialObjectMeta<Pod>>,
    pub topology: Topology,
    /// Periodic re-check: re-registers a record someone removed and prunes poolers.
    pub resync: Duration,
    pub caches: CachesReady,
}

impl State {
    async fn ready(&self, within: Duration) -> bool {
        self.caches.wait(within).await
    }
}

pub type Ctx = multigres_runtime::Context<State>;

pub(crate) fn object_name(cell: &Cell) -> String {
    format!(
        "{}/{}",
        cell.namespace().unwrap_or_default(),
        cell.name_any()
    )
}

fn topo_server_ref(cell: &Cell, name: &str) -> ObjectRef<TopoServer> {
    ObjectRef::new(name).within(&cell.namespace().unwrap_or_default())
}

/// The TopoServer whose quorum the cell's topology depends on, if the operator manages it.
fn topo_server_of(ctx: &Ctx, cell: &Cell, topology: &CellTopology) -> Option<Arc<TopoServer>> {
    let name = match &topology.kind {
        TopologyKind::ManagedLocal(name) => name.clone(),
        TopologyKind::Global => {
            cell.spec.global_topo_server.client_service_name.as_ref()?;
            naming::global_topo_server(&build::cluster_of(cell)?)
        }
        TopologyKind::External => return None,
    };
    ctx.state.topo_servers.get(&topo_server_ref(cell, &name))
}

async fn apply_cell(cell: Arc<Cell>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if !ctx.state.ready(Duration::from_secs(30)).await {
        return Err(Error::CacheNotReady {
            object: object_name(&cell),
        });
    }
    let (topology, children) = match build::validated(&cell) {
        Ok(built) => built,
        Err(error) => {
            ctx.events
                .warning(cell.as_ref(), "InvalidSpec", &error.to_string())
                .await;
            return Err(error);
        }
    };
    apply::children(&ctx, &cell, &children).await?;

    let topo_server = topo_server_of(&ctx, &cell, &topology);
    let bound = ctx.state.topology.timeout() * 3;
    let registration = if !cell.spec.topology_reconciliation.register_cell {
        Registration::Disabled
    } else if let TopologyKind::ManagedLocal(name) = &topology.kind
        && !status::local_topo_server_available(topo_server.as_deref())
    {
        Registration::WaitingForTopoServer(name.clone())
    } else {
        tokio::time::timeout(bound, topology::register(&ctx, &topology))
            .await
            .unwrap_or_else(|_| Registration::Failed {
                unreachable: true,
                message: format!("the global topology did not answer within {bound:?}"),
            })
    };
    if let Registration::Registered { key, outcome } = &registration
        && *outcome != multigres_topology::WriteOutcome::Unchanged
    {
        tracing::info!(cell = %object_name(&cell), key, ?outcome, "cell registered");
        ctx.events
            .normal(
                cell.as_ref(),
                "Registered",
                &format!("Cell record {key}: {outcome:?}"),
            )
            .await;
    }
    let cell_topology_up = match &topology.kind {
        TopologyKind::ManagedLocal(_) => {
            status::local_topo_server_available(topo_server.as_deref())
        }
        _ => !registration.failed(),
    };
    if cell.spec.topology_reconciliation.prune_tablets && cell_topology_up {
        match tokio::time::timeout(bound, topology::prune_poolers(&ctx, &cell, &topology)).await {
            Ok(Ok(removed)) if !removed.is_empty() => {
                tracing::info!(cell = %object_name(&cell), ?removed, "pruned pooler records");
                ctx.events
                    .normal(
                        cell.as_ref(),
                        "PrunedPoolers",
                        &format!(
                            "Removed pooler records of pods that no longer exist: {}",
                            removed.join(", ")
                        ),
                    )
                    .await;
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::warn!(cell = %object_name(&cell), %error, "pooler pruning skipped")
            }
            Err(_) => tracing::warn!(cell = %object_name(&cell), "pooler pruning timed out"),
        }
    }

    let key = |name: String| ObjectRef::new(&name).within(&cell.namespace().unwrap_or_default());
    let gateway = ctx
        .state
        .deployments
        .get(&key(naming::gateway(&cell.name_any())));
    let multiorch = ctx
        .state
        .deployments
        .get(&key(naming::multiorch(&cell.name_any())));
    let observed = Observed {
        gateway: gateway.as_deref(),
        multiorch: multiorch.as_deref(),
        topo_server: topo_server.as_deref(),
        registration: &registration,
    };
    let status = status::compute(&cell, &topology, &observed, Timestamp::now());
    apply::status(&ctx, &cell, status).await?;
    if let Registration::Failed { message, .. } = registration {
        return Err(Error::Topology {
            object: object_name(&cell),
            message,
        });
    }
    ctx.succeeded(cell.as_ref());
    Ok(Action::requeue(ctx.state.resync))
}

/// Whether the managed global topology server is going away (its client Service is gone or being
/// deleted): then the record goes with it and there is nothing left to deregister from.
async fn global_topology_gone(ctx: &Ctx, cell: &Cell) -> bool {
    let Some(service) = &cell.spec.global_topo_server.client_service_name else {
        return false;
    };
    let api: Api<Service> =
        Api::namespaced(ctx.client.clone(), &cell.namespace().unwrap_or_default());
    match api.get_opt(service).await {
        Ok(None) => true,
        Ok(Some(svc)) => svc.metadata.deletion_timestamp.is_some(),
        Err(_) => false,
    }
}

async fn cleanup_cell(cell: Arc<Cell>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if !cell.spec.topology_reconciliation.register_cell {
        return Ok(Action::await_change());
    }
    // A Cell whose spec never validated was never registered.
    let Ok(topology) = build::topology(&cell) else {
        return Ok(Action::await_change());
    };
    let bound = ctx.state.topology.timeout() * 3;
    let result = tokio::time::timeout(bound, topology::deregister(&ctx, &topology))
        .await
        .unwrap_or_else(|_| {
            Err(multigres_topology::TopoError::Unreachable(format!(
                "no answer within {bound:?}"
            )))
        });
    match result {
        Ok(existed) => {
            tracing::info!(cell = %object_name(&cell), existed, "cell deregistered");
            Ok(Action::await_change())
        }
        Err(error) if error.is_unreachable() && global_topology_gone(&ctx, &cell).await => {
            ctx.events
                .normal(
                    cell.as_ref(),
                    "DeregistrationSkipped",
                    "The managed global topology server is being deleted; its records go with it",
                )
                .await;
            Ok(Action::await_change())
        }
        Err(error) => {
            let message = format!(
                "the Cell is being deleted, but its record could not be removed from the global \
                 topology at {}: {error}; retrying with backoff (the Cell stays until it succeeds, or \
                 remove the finalizer {FINALIZER} by hand)",
                topology.global_address
            );
            let mut status = cell.status.clone().unwrap_or_default();
            conditions::set(
                &mut status.conditions,
                ConditionUpdate::new(
                    TOPOLOGY_REGISTERED,
                    false,
                    "DeregistrationPending",
                    message.clone(),
                ),
                cell.metadata.generation,
                Timestamp::now(),
            );
            apply::status(&ctx, &cell, status).await?;
            Err(Error::Topology {
                object: object_name(&cell),
                message,
            })
        }
    }
}

/// One reconcile, bounded by the shared deadline (`multigres_runtime::run::within_deadline`).
pub async fn reconcile(cell: Arc<Cell>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let object = cell.clone();
    multigres_runtime::run::within_deadline(object.as_ref(), reconcile_unbounded(cell, ctx)).await
}

async fn reconcile_unbounded(cell: Arc<Cell>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started();
    let object = object_name(&cell);
    let api: Api<Cell> = Api::namespaced(ctx.client.clone(), &cell.namespace().unwrap_or_default());
    finalizer::finalizer(&api, FINALIZER, cell, |event| async {
        match event {
            Finalized::Apply(cell) => apply_cell(cell, ctx.clone()).await,
            Finalized::Cleanup(cell) => cleanup_cell(cell, ctx.clone()).await,
        }
    })
    .await
    .map_err(|error| match error {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer {
            object,
            message: other.to_string(),
        },
    })
}

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
    pub resync: Duration,
}

/// Runs the controller until shutdown.
pub async fn run(started: Started, args: &CommonArgs, settings: Settings) -> anyhow::Result<()> {
    let client = started.client.clone();
    let ns = args.watch_namespace.as_deref();
    let (deployments, deploy_stream) = child_watch(
        api::<Deployment>(&client, ns),
        &managed(&format!(
            "{} in ({},{})",
            labels::COMPONENT,
            component::MULTIGATEWAY,
            component::MULTIORCH
        )),
    );
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
            caches::store(topo_servers.clone()),
            caches::store(pods.clone()),
        ],
        started.readiness.clone(),
    );
    let ctx = started.context(State {
        deployments,
        services,
        topo_servers,
        pods,
        topology: Topology::new(settings.address_mapping, settings.topology_timeout),
        resync: settings.resync,
        caches,
    });
    let (cells, cell_stream) = caches::primary_watch(api::<Cell>(&client, ns));
    Controller::for_stream(cell_stream, cells)
        .with_config(ControllerConfig::default().concurrency(args.concurrency))
        .owns_stream(deploy_stream)
        .owns_stream(svc_stream)
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
