//! One Cell reconcile, behind the registration finalizer: validate and build (pure, [`build`]), apply
//! the children against the watch caches, register the cell and prune vanished poolers in the
//! topology (bounded by a short timeout), then the status, written only when it changed. A deleted
//! Cell's record is removed from the global topology before the finalizer goes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, Event as Finalized};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use multigres_api::{Cell, CellStatus, TopoServer, naming};
use multigres_runtime::conditions::{self, ConditionUpdate};
use multigres_runtime::error::{ChildError, Failure, object_name};
use multigres_runtime::run::within_deadline;

use crate::build::{self, CellTopology, Children, TopologyKind};
use crate::status::{self, Observed, TOPOLOGY_REGISTERED};
use crate::topology::{self, Registration};
use crate::{Ctx, FINALIZER};

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

async fn apply_cell(cell: Arc<Cell>, ctx: Arc<Ctx>) -> Result<Action, ChildError> {
    if !ctx.state.caches.wait(Duration::from_secs(30)).await {
        return Err(ChildError::new(cell.as_ref(), Failure::CacheNotReady));
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
    apply_children(&ctx, &cell, &children).await?;

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
        tracing::info!(cell = %object_name(cell.as_ref()), key, ?outcome, "cell registered");
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
                tracing::info!(cell = %object_name(cell.as_ref()), ?removed, "pruned pooler records");
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
                tracing::warn!(cell = %object_name(cell.as_ref()), %error, "pooler pruning skipped")
            }
            Err(_) => {
                tracing::warn!(cell = %object_name(cell.as_ref()), "pooler pruning timed out")
            }
        }
    }

    // What was just applied, as the cache holds it (its status).
    let observed_of = |built: &Deployment| {
        let key = ObjectRef::from_obj(built);
        ctx.state.deployments.get(&key)
    };
    let gateway = observed_of(&children.gateway);
    let multiorch = observed_of(&children.multiorch);
    let observed = Observed {
        gateway: gateway.as_deref(),
        multiorch: multiorch.as_deref(),
        topo_server: topo_server.as_deref(),
        registration: &registration,
    };
    let status = status::compute(&cell, &topology, &observed, Timestamp::now());
    write_status(&ctx, &cell, status).await?;
    if let Registration::Failed { message, .. } = registration {
        return Err(ChildError::new(cell.as_ref(), Failure::Topology(message)));
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

async fn cleanup_cell(cell: Arc<Cell>, ctx: Arc<Ctx>) -> Result<Action, ChildError> {
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
            tracing::info!(cell = %object_name(cell.as_ref()), existed, "cell deregistered");
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
            write_status(&ctx, &cell, status).await?;
            Err(ChildError::new(cell.as_ref(), Failure::Topology(message)))
        }
    }
}

/// One reconcile, bounded by the shared deadline.
pub async fn reconcile(cell: Arc<Cell>, ctx: Arc<Ctx>) -> Result<Action, ChildError> {
    let object = cell.clone();
    within_deadline(object.as_ref(), reconcile_unbounded(cell, ctx)).await
}

async fn reconcile_unbounded(cell: Arc<Cell>, ctx: Arc<Ctx>) -> Result<Action, ChildError> {
    let _timer = ctx.metrics.reconcile_started();
    let object = cell.clone();
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
        other => ChildError::new(object.as_ref(), Failure::Finalizer(other.to_string())),
    })
}

/// The gateway Service, the local TopoServer (a cell that stopped asking for one has it deleted;
/// its PVCs stay), the disruption budgets, then the Deployments.
async fn apply_children(ctx: &Ctx, cell: &Cell, children: &Children) -> Result<(), ChildError> {
    let applier = &ctx.applier;
    let events = ctx.events.children(conditions::of(cell.status.as_ref()));
    let stores = &ctx.state;
    applier
        .apply_owned(
            Some(events),
            cell,
            &stores.services,
            &children.gateway_service,
        )
        .await?;
    let mut keep = BTreeSet::new();
    if let Some(ts) = &children.local_topo_server {
        applier
            .apply_owned(Some(events), cell, &stores.topo_servers, ts)
            .await?;
        keep.insert(ts.name_any());
    }
    // A cell that stopped asking for a managed TopoServer: delete it (its PVCs stay).
    let namespace = cell.namespace();
    let cached = stores.topo_servers.state();
    let same_namespace: Vec<&TopoServer> = cached
        .iter()
        .filter(|t| t.metadata.namespace == namespace)
        .map(|t| t.as_ref())
        .collect();
    ctx.applier
        .prune(&ctx.events, cell, same_namespace, &keep)
        .await
        .map_err(|source| ChildError::kube(cell, "pruning TopoServers", source))?;
    for pdb in [&children.gateway_pdb, &children.multiorch_pdb] {
        applier.apply_owned(None, cell, &stores.pdbs, pdb).await?;
    }
    applier
        .apply_owned(Some(events), cell, &stores.deployments, &children.gateway)
        .await?;
    applier
        .apply_owned(Some(events), cell, &stores.deployments, &children.multiorch)
        .await?;
    Ok(())
}

/// Writes `status` when it differs from what the Cell already shows.
async fn write_status(ctx: &Ctx, cell: &Cell, status: CellStatus) -> Result<(), ChildError> {
    ctx.applier
        .apply_status_reported(&ctx.events, cell, cell.status.as_ref(), &status, &[])
        .await
        .map_err(|e| ChildError::new(cell, Failure::Status(Box::new(e))))?;
    Ok(())
}
