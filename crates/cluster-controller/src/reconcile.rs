//! One MultigresCluster reconcile: dereference -> resolve (validate) -> build -> apply -> status.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use multigres_api::resolve::{self, ResolveError, ResolvedCluster, TopologyTls, resolve_cluster};
use multigres_api::{MultigresCluster, multigres};
use multigres_runtime::apply::controlled_by;
use multigres_runtime::conditions::DEGRADED;
use multigres_runtime::run::object_key;
use multigres_topology::TopoError;

use crate::apply::{self, Ctx};
use crate::build::{self, Desired};
use crate::certificates;
use crate::dereference::{self, Stores, by_name};
use crate::error::{Error, Result};
use crate::retention::{self, Retention};
use crate::status::{self, Blocked, ChildHealth, Findings, Observed, TOPOLOGY_REACHABLE, Topology};

/// How often an unchanged cluster is reconciled anyway (topology records re-checked).
pub(crate) const RESYNC: Duration = Duration::from_secs(300);

/// One cluster reconcile, bounded by the shared deadline.
pub async fn reconcile(cluster: Arc<MultigresCluster>, ctx: Arc<Ctx>) -> Result<Action> {
    let object = cluster.clone();
    multigres_runtime::run::within_deadline(object.as_ref(), reconcile_unbounded(cluster, ctx))
        .await
}

async fn reconcile_unbounded(cluster: Arc<MultigresCluster>, ctx: Arc<Ctx>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile_started();
    if cluster.meta().deletion_timestamp.is_some() {
        // Children go with the cluster through their owner references.
        return Ok(Action::await_change());
    }
    // Names of existing children are kept (`keep_table_group_names`): they must all be listed.
    if !ctx.state.caches_synced().await {
        return Err(Error::CacheNotReady);
    }
    let mut observed = Observed {
        generation: cluster.metadata.generation,
        previous: cluster.status.as_ref(),
        cell_count: cluster.spec.cells.len(),
        database_count: cluster.spec.databases.len(),
        children: Vec::new(),
        blocked: None,
        topology: Topology::NotChecked,
        unserved: Vec::new(),
        retention: Retention::default(),
        credentials: None,
        refused: Vec::new(),
        topology_tls: None,
        now: status::now(),
    };
    let (resolved, desired, issued) = resolve_and_build(&ctx, &cluster, &mut observed).await?;
    let topology = apply_tree(&ctx, &cluster, &resolved, &desired, &issued, &mut observed).await?;
    report(&ctx, &cluster, &resolved, &desired, observed, topology).await
}

fn object_of(cluster: &MultigresCluster) -> String {
    format!("MultigresCluster {}", object_key(cluster))
}

/// Dereference, resolve (validate) and build: nothing is applied unless the whole tree resolves and
/// every child's name is free. cert-manager's Certificate is read first: its revision goes into the
/// children, so a renewed certificate rolls the pods that mount it.
async fn resolve_and_build(
    ctx: &Ctx,
    cluster: &Arc<MultigresCluster>,
    observed: &mut Observed<'_>,
) -> Result<(ResolvedCluster, Desired, apply::IssuedCertificate)> {
    let object = object_of(cluster);
    let stores = &ctx.state.stores;
    let templates = dereference::templates(stores, cluster);
    let resolved = match resolve_cluster(cluster, &templates) {
        Ok(mut resolved) => {
            keep_table_group_names(&mut resolved, stores, cluster);
            resolved
        }
        Err(source) => {
            let reason = match source {
                ResolveError::MissingTemplate { .. } | ResolveError::MissingSection { .. } => {
                    "MissingTemplate"
                }
                ResolveError::Invalid { .. } => "InvalidReference",
            };
            observed.blocked = Some(Blocked {
                reason,
                message: format!("{object}: {source}"),
            });
            report_blocked(ctx, cluster, observed).await?;
            return Err(Error::Resolve { object, source });
        }
    };
    let issued = apply::issued_certificate(ctx, cluster).await?;
    let mut resolved = resolved;
    resolved.set_tls_revision(issued.revision());
    observed.topology_tls = Some(certificates::decide_topology_tls(
        ctx,
        cluster,
        &mut resolved,
    ));
    certificates::decide_cluster_certificate(ctx, cluster, &mut resolved);
    observed.unserved = status::unserved(&resolved);
    let served = status::served_condition(&observed.unserved);
    if !served.status {
        let (reason, message) = (served.reason.as_str(), &served.message);
        warn_once(ctx, cluster, multigres::SERVED_CONDITION, reason, message).await;
    }
    let desired = build::desired(cluster, &resolved, &ctx.state.operator_namespace);
    let taken = apply::conflicts(stores, cluster, &desired);
    if !taken.is_empty() {
        let message = format!(
            "{object}: {} already controlled by another object; rename the cluster or remove them",
            taken.join(", ")
        );
        observed.blocked = Some(Blocked {
            reason: "NameConflict",
            message: message.clone(),
        });
        report_blocked(ctx, cluster, observed).await?;
        return Err(Error::NameConflict(message));
    }
    Ok((resolved, desired, issued))
}

/// The cluster's TableGroups keep the names they were created with.
fn keep_table_group_names(
    resolved: &mut ResolvedCluster,
    stores: &Stores,
    cluster: &MultigresCluster,
) {
    let existing = dereference::existing(stores, cluster).table_groups;
    let existing: Vec<(String, &str, &str)> = existing
        .iter()
        .filter(|t| controlled_by(t.as_ref(), cluster))
        .map(|t| {
            (
                t.name_any(),
                t.spec.database.as_str(),
                t.spec.table_group.as_str(),
            )
        })
        .collect();
    let existing: Vec<(&str, &str, &str)> = existing
        .iter()
        .map(|(n, d, t)| (n.as_str(), *d, *t))
        .collect();
    resolve::keep_existing_names(&mut resolved.table_groups, &existing);
}

/// Apply: the credentials Secret, the children, what is retained and pruned, the topology records.
/// Returns what the global topology answered.
async fn apply_tree(
    ctx: &Ctx,
    cluster: &Arc<MultigresCluster>,
    resolved: &ResolvedCluster,
    desired: &Desired,
    issued: &apply::IssuedCertificate,
    observed: &mut Observed<'_>,
) -> Result<Topology> {
    let stores = &ctx.state.stores;
    if let Some(secret) = &desired.credentials_secret {
        let has_data = !dereference::existing(stores, cluster)
            .table_groups
            .is_empty();
        observed.credentials = apply::credentials(ctx, cluster, secret, has_data).await?;
        if let Some(problem) = &observed.credentials {
            let condition = status::CREDENTIALS_READY;
            warn_once(ctx, cluster, condition, "CredentialsMissing", problem).await;
        }
    }
    if let Some(secret) = &desired.tls_secret {
        apply::tls(ctx, cluster, secret).await?;
    }
    // External etcds are dialed with the user's Secret; only the managed ones need ours.
    if let (Some(TopologyTls::Managed), Some(secret)) = (
        &observed.topology_tls,
        &resolved.global_topology.tls_secret_name,
    ) {
        apply::topology_tls(ctx, cluster, secret).await?;
    }
    observed.refused = apply::children(ctx, cluster, desired).await?;
    if let Some(certificate) = &desired.certificate {
        observed
            .refused
            .extend(apply::certificate(ctx, cluster, certificate, issued).await?);
    }
    observed
        .refused
        .extend(crate::monitoring::apply(ctx, cluster).await?);
    let existing = dereference::existing(stores, cluster);
    let controlled = existing
        .table_groups
        .iter()
        .map(AsRef::as_ref)
        .filter(|tg| controlled_by(*tg, cluster.as_ref()));
    observed.retention = retention::retention(cluster, controlled, &desired.names().table_groups);
    let retained = status::retained_condition(&observed.retention);
    if retained.status {
        let (reason, message) = (retained.reason.as_str(), &retained.message);
        warn_once(ctx, cluster, status::RETAINED, reason, message).await;
    }
    apply::prune(ctx, cluster, &existing, desired, &observed.retention).await?;
    let retained_databases = observed.retention.databases();
    let (topology, foreign) = apply::topology(
        ctx,
        cluster,
        &resolved.global_topology,
        desired,
        &retained_databases,
    )
    .await?;
    observed.refused.extend(foreign);
    if !observed.refused.is_empty() {
        let message = status::refused_message(&observed.refused);
        warn_once(ctx, cluster, DEGRADED, "ChildRefused", &message).await;
    }
    Ok(topology)
}

/// Status from what was observed; an unreachable topology is an error (retried with backoff).
async fn report(
    ctx: &Ctx,
    cluster: &Arc<MultigresCluster>,
    resolved: &ResolvedCluster,
    desired: &Desired,
    mut observed: Observed<'_>,
    topology: Topology,
) -> Result<Action> {
    observed.children = health(&ctx.state.stores, cluster, desired);
    observed.topology = topology.clone();
    write_status(ctx, cluster, &observed).await?;
    if let Topology::Unreachable(message) = topology {
        let object = object_of(cluster);
        if was_reachable(cluster) {
            let address = &resolved.global_topology.address;
            let note = format!("{object}: global topology at {address}: {message}");
            ctx.events
                .warning(cluster.as_ref(), "TopologyUnreachable", &note)
                .await;
        }
        return Err(Error::Topology {
            object,
            source: TopoError::Unreachable(message),
        });
    }
    ctx.succeeded(cluster.as_ref());
    Ok(Action::requeue(certificates::next_reconcile(resolved)))
}

/// With the aggregator on, hands the findings to the status writer (the one writer of status);
/// otherwise computes the fallback status and writes it.
async fn write_status(
    ctx: &Ctx,
    cluster: &MultigresCluster,
    observed: &Observed<'_>,
) -> Result<()> {
    match &ctx.state.status_feed {
        Some(feed) => {
            feed.report(
                ObjectRef::from_obj(cluster),
                Findings {
                    blocked: observed.blocked.clone(),
                    topology: observed.topology.clone(),
                    unserved: observed.unserved.clone(),
                    retention: observed.retention.clone(),
                    credentials: observed.credentials.clone(),
                    refused: observed.refused.clone(),
                    topology_tls: observed.topology_tls.clone(),
                },
            );
            Ok(())
        }
        None => apply::status(ctx, cluster, &status::compute(observed)).await,
    }
}

/// A Warning Event for `message`, unless condition `type_` already says it.
async fn warn_once(
    ctx: &Ctx,
    cluster: &MultigresCluster,
    type_: &str,
    reason: &str,
    message: &str,
) {
    let written = cluster
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_));
    if written.is_none_or(|c| c.message != message) {
        ctx.events.warning(cluster, reason, message).await;
    }
}

fn was_reachable(cluster: &MultigresCluster) -> bool {
    cluster.status.as_ref().is_none_or(|s| {
        !s.conditions
            .iter()
            .any(|c| c.type_ == TOPOLOGY_REACHABLE && c.status == "False")
    })
}

/// Writes the blocked status and, when the problem is new, a Warning Event naming it.
async fn report_blocked(
    ctx: &Ctx,
    cluster: &MultigresCluster,
    observed: &Observed<'_>,
) -> Result<()> {
    let Some(blocked) = &observed.blocked else {
        return Ok(());
    };
    let already = cluster.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == DEGRADED && c.status == "True" && c.message == blocked.message)
    });
    if !already {
        ctx.events
            .warning(cluster, blocked.reason, &blocked.message)
            .await;
    }
    write_status(ctx, cluster, observed).await
}

/// The observed health of every desired child that reports one.
fn health(
    stores: &Stores,
    cluster: &MultigresCluster,
    desired: &build::Desired,
) -> Vec<ChildHealth> {
    let ns = cluster.namespace().unwrap_or_default();
    let mut out = Vec::new();
    let missing = |kind, name: String| ChildHealth {
        kind,
        name,
        available: None,
    };
    if let Some(t) = &desired.topo_server {
        out.push(
            by_name(&stores.topo_servers, &ns, &t.name_any()).map_or_else(
                || missing("TopoServer", t.name_any()),
                |o| ChildHealth::topo_server(&o),
            ),
        );
    }
    let d = &desired.multiadmin_deployment;
    out.push(
        by_name(&stores.deployments, &ns, &d.name_any()).map_or_else(
            || missing("Deployment", d.name_any()),
            |o| ChildHealth::deployment(&o),
        ),
    );
    for c in &desired.cells {
        out.push(
            by_name(&stores.cells, &ns, &c.name_any())
                .map_or_else(|| missing("Cell", c.name_any()), |o| ChildHealth::cell(&o)),
        );
    }
    for t in &desired.table_groups {
        out.push(
            by_name(&stores.table_groups, &ns, &t.name_any()).map_or_else(
                || missing("TableGroup", t.name_any()),
                |o| ChildHealth::table_group(&o),
            ),
        );
    }
    out
}
