//! The cluster reconcile (dereference -> resolve -> build -> apply -> status) and the wiring of both
//! controllers of this binary: MultigresClusters, and the DeploymentTemplate lifecycle.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use multigres_api::labels::{self, component};
use multigres_api::resolve::{ResolveError, resolve_cluster};
use multigres_api::{Cell, DeploymentTemplate, MultigresCluster, TableGroup, TopoServer};
use multigres_runtime::CommonArgs;
use multigres_runtime::conditions::DEGRADED;
use multigres_runtime::run::{self, object_key};
use multigres_topology::{AddressMapping, TopoError};
use serde::de::DeserializeOwned;

use crate::apply::{self, Ctx, State};
use crate::build;
use crate::dereference::{self, Stores, by_name};
use crate::error::{Error, Result};
use crate::status::{self, Blocked, ChildHealth, Observed, TOPOLOGY_REACHABLE, Topology};
use crate::templates;

/// The controller's name: its field manager, Event reporter and metrics label.
pub const NAME: &str = "cluster-controller";

/// CRDs that must be established before the controller starts.
pub const CRDS: &[&str] = &[
    "multigresclusters.multigres.com",
    "deploymenttemplates.multigres.com",
    "toposervers.multigres.com",
    "cells.multigres.com",
    "tablegroups.multigres.com",
];

/// How often an unchanged cluster is reconciled anyway (topology records re-checked).
const RESYNC: Duration = Duration::from_secs(300);

#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "cluster-controller",
    version,
    about = "Reconciles MultigresClusters into their children and DeploymentTemplate consumers."
)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Rewrites topology addresses before dialing (`svc:2379=127.0.0.1:23790,...`): for an operator
    /// running outside the cluster (tests, demo). Empty means off.
    #[arg(long, env = "MULTIGRES_TOPOLOGY_ADDRESS_MAP", default_value = "")]
    pub topology_address_map: String,
    /// Deadline of every topology call.
    #[arg(long, env = "MULTIGRES_TOPOLOGY_TIMEOUT", default_value = "3s", value_parser = multigres_runtime::settings::parse_duration)]
    pub topology_timeout: Duration,
}

/// One cluster reconcile.
pub async fn reconcile(cluster: Arc<MultigresCluster>, ctx: Arc<Ctx>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile_started();
    if cluster.meta().deletion_timestamp.is_some() {
        // Children go with the cluster through their owner references.
        return Ok(Action::await_change());
    }
    let object = format!("MultigresCluster {}", object_key(cluster.as_ref()));
    let stores = &ctx.state.stores;
    let now = now();
    let mut observed = Observed {
        generation: cluster.metadata.generation,
        previous: cluster.status.as_ref(),
        cell_count: cluster.spec.cells.len(),
        database_count: cluster.spec.databases.len(),
        children: Vec::new(),
        blocked: None,
        topology: Topology::NotChecked,
        now,
    };

    // dereference + resolve (validate): nothing is applied unless the whole tree resolves.
    let templates = dereference::templates(stores, &cluster);
    let resolved = match resolve_cluster(&cluster, &templates) {
        Ok(resolved) => resolved,
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
            report_blocked(&ctx, &cluster, &observed).await?;
            return Err(Error::Resolve { object, source });
        }
    };
    let desired = build::desired(&cluster, &resolved);
    let taken = apply::conflicts(stores, &cluster, &desired);
    if !taken.is_empty() {
        let message = format!(
            "{object}: {} already controlled by another object; rename the cluster or remove them",
            taken.join(", ")
        );
        observed.blocked = Some(Blocked {
            reason: "NameConflict",
            message: message.clone(),
        });
        report_blocked(&ctx, &cluster, &observed).await?;
        return Err(Error::NameConflict(message));
    }

    // apply
    if let Some(secret) = &desired.credentials_secret {
        apply::credentials(&ctx, &cluster, secret).await?;
    }
    apply::children(&ctx, &cluster, &desired).await?;
    let existing = dereference::existing(stores, &cluster);
    apply::prune(&ctx, &cluster, &existing, &desired).await?;
    let topology = apply::topology(
        &ctx,
        &cluster,
        &resolved.global_topology.root_path,
        &resolved.global_topology.address,
        &desired,
    )
    .await?;

    // status
    observed.children = health(stores, &cluster, &desired);
    observed.topology = topology.clone();
    let status = status::compute(&observed);
    apply::status(&ctx, &cluster, &status).await?;
    if let Topology::Unreachable(message) = topology {
        if was_reachable(&cluster) {
            ctx.events
                .warning(
                    cluster.as_ref(),
                    "TopologyUnreachable",
                    &format!(
                        "{object}: global topology at {}: {message}",
                        resolved.global_topology.address
                    ),
                )
                .await;
        }
        return Err(Error::Topology {
            object,
            source: TopoError::Unreachable(message),
        });
    }
    ctx.succeeded(cluster.as_ref());
    Ok(Action::requeue(RESYNC))
}

/// Seconds precision, as the API server stores condition times: a status computed twice compares
/// equal to what was written.
fn now() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second()).unwrap_or(now)
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
    apply::status(ctx, cluster, &status::compute(observed)).await
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

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A cache of `K` and the stream of its changes (the stream must be polled to fill the cache).
fn cached<K>(
    api: Api<K>,
    config: watcher::Config,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config).default_backoff());
    (reader, stream)
}

/// Runs both controllers until SIGTERM.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let mapping = AddressMapping::parse(&args.topology_address_map)?;
    let started = run::start(NAME, &args.common, CRDS).await?;
    let client = started.client.clone();
    let ns = args.common.watch_namespace.as_deref();
    let managed = format!("{}={}", labels::MANAGED_BY, labels::MANAGED_BY_VALUE);
    let multiadmin = format!("{managed},{}={}", labels::COMPONENT, component::MULTIADMIN);
    let global_topo = format!("{managed},{}=global", labels::TOPO_SCOPE);
    let all = watcher::Config::default;

    let (clusters, cluster_events) = cached(api::<MultigresCluster>(&client, ns), all());
    let (templates, template_events) = cached(api::<DeploymentTemplate>(&client, ns), all());
    let (topo_servers, topo_events) =
        cached(api::<TopoServer>(&client, ns), all().labels(&global_topo));
    let (cells, cell_events) = cached(api::<Cell>(&client, ns), all().labels(&managed));
    let (table_groups, tg_events) = cached(api::<TableGroup>(&client, ns), all().labels(&managed));
    let (deployments, deployment_events) =
        cached(api::<Deployment>(&client, ns), all().labels(&multiadmin));
    let (services, service_events) = cached(api::<Service>(&client, ns), all().labels(&multiadmin));
    // The template lifecycle keeps its own caches, so that what triggers it and what it reads are
    // the same view of the world.
    let (lifecycle_clusters, lifecycle_cluster_events) =
        cached(api::<MultigresCluster>(&client, ns), all());
    let (lifecycle_templates, lifecycle_template_events) =
        cached(api::<DeploymentTemplate>(&client, ns), all());

    let stores = Stores {
        clusters: clusters.clone(),
        templates: templates.clone(),
        topo_servers: topo_servers.clone(),
        cells: cells.clone(),
        table_groups: table_groups.clone(),
        deployments: deployments.clone(),
        services: services.clone(),
    };
    let lifecycle_stores = Stores {
        clusters: lifecycle_clusters.clone(),
        templates: lifecycle_templates.clone(),
        ..stores.clone()
    };
    {
        let readiness = started.readiness.clone();
        let all_stores = [stores.clone(), lifecycle_stores.clone()];
        tokio::spawn(async move {
            for s in &all_stores {
                // Polled again and again: a store's readiness wakes only its most recent waiter, and
                // the controllers wait on the same stores.
                macro_rules! ready {
                    ($store:expr) => {
                        while tokio::time::timeout(
                            Duration::from_millis(200),
                            $store.wait_until_ready(),
                        )
                        .await
                        .is_err()
                        {}
                    };
                }
                ready!(s.clusters);
                ready!(s.templates);
                ready!(s.topo_servers);
                ready!(s.cells);
                ready!(s.table_groups);
                ready!(s.deployments);
                ready!(s.services);
            }
            tracing::info!("caches synced");
            readiness.set_ready(true);
        });
    }

    let config = ControllerConfig::default().concurrency(args.common.concurrency);
    let ctx = started.context(State::new(stores, mapping.clone(), args.topology_timeout));
    let template_clusters = clusters.clone();
    let cluster_controller = Controller::for_stream(cluster_events.applied_objects(), clusters)
        .with_config(config.clone())
        .owns_stream(topo_events.touched_objects())
        .owns_stream(cell_events.touched_objects())
        .owns_stream(tg_events.touched_objects())
        .owns_stream(deployment_events.touched_objects())
        .owns_stream(service_events.touched_objects())
        // A template change re-reconciles every cluster that names it.
        .watches_stream(
            template_events.touched_objects(),
            move |template: DeploymentTemplate| {
                dereference::consumers_of(&template_clusters, &template)
                    .into_iter()
                    .map(|c| ObjectRef::from_obj(c.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(started.shutdown())
        .run(reconcile, run::error_policy, ctx)
        .for_each(|_| futures::future::ready(()));

    let lifecycle_ctx =
        started.context(State::new(lifecycle_stores, mapping, args.topology_timeout));
    let namespace_templates = lifecycle_templates.clone();
    let template_controller = Controller::for_stream(
        lifecycle_template_events.applied_objects(),
        lifecycle_templates,
    )
    .with_config(config)
    // Any cluster change may add or drop a consumer of any template of its namespace.
    .watches_stream(
        lifecycle_cluster_events.touched_objects(),
        move |cluster: MultigresCluster| {
            let namespace = cluster.namespace();
            namespace_templates
                .state()
                .into_iter()
                .filter(|t| t.namespace() == namespace)
                .map(|t| ObjectRef::from_obj(t.as_ref()))
                .collect::<Vec<_>>()
        },
    )
    .graceful_shutdown_on(started.shutdown())
    .run(templates::reconcile, run::error_policy, lifecycle_ctx)
    .for_each(|_| futures::future::ready(()));

    tokio::join!(cluster_controller, template_controller);
    tracing::info!("stopped");
    Ok(())
}
