//! The cluster reconcile (dereference -> resolve -> build -> apply -> status) and the wiring of both
//! controllers of this binary: MultigresClusters, and the DeploymentTemplate lifecycle.

use multigres_runtime::caches::{self, CachesReady};
use multigres_runtime::client::namespaced_or_all as api;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use multigres_api::labels::{self, component};
use multigres_api::resolve::{ResolveError, resolve_cluster};
use multigres_api::{
    Cell, DeploymentTemplate, MultigresCluster, TableGroup, TopoServer, multigres,
};
use multigres_runtime::CommonArgs;
use multigres_runtime::conditions::DEGRADED;
use multigres_runtime::leader;
use multigres_runtime::run::{self, Started, object_key};
use multigres_status_aggregator::client::{self as aggregator_client, ClientTls};
use multigres_topology::{AddressMapping, TopoError};

use crate::aggregator::{self, StatusFeed};
use crate::apply::{self, Ctx, State};
use crate::build;
use crate::dereference::{self, Stores, by_name};
use crate::error::{Error, Result};
use crate::retention::{self, Retention};
use crate::status::{self, Blocked, ChildHealth, Findings, Observed, TOPOLOGY_REACHABLE, Topology};
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
    /// The status aggregator's gRPC endpoint (`http://host:port`, `https://host:port`, or
    /// `host:port`). Set: MultigresCluster status comes from it. Empty: the controller computes a
    /// simpler status from its own caches (fallback).
    #[arg(long, env = "MULTIGRES_STATUS_AGGREGATOR_ENDPOINT", default_value = "")]
    pub status_aggregator_endpoint: String,
    /// PEM CA of the aggregator's certificate: the channel uses TLS.
    #[arg(long, env = "MULTIGRES_STATUS_AGGREGATOR_CA")]
    pub status_aggregator_ca: Option<PathBuf>,
    /// PEM client certificate (with `--status-aggregator-key`), when the aggregator requires one.
    #[arg(long, env = "MULTIGRES_STATUS_AGGREGATOR_CERT")]
    pub status_aggregator_cert: Option<PathBuf>,
    /// PEM key of `--status-aggregator-cert`.
    #[arg(long, env = "MULTIGRES_STATUS_AGGREGATOR_KEY")]
    pub status_aggregator_key: Option<PathBuf>,
    /// Name to verify the aggregator's certificate against, when it differs from the endpoint's host.
    #[arg(long, env = "MULTIGRES_STATUS_AGGREGATOR_DOMAIN")]
    pub status_aggregator_domain: Option<String>,
}

impl Args {
    /// TLS towards the aggregator: on with `--status-aggregator-ca`; the other TLS flags need it.
    pub fn status_aggregator_tls(&self) -> anyhow::Result<Option<ClientTls>> {
        match &self.status_aggregator_ca {
            Some(ca) => Ok(Some(ClientTls::from_files(
                ca,
                self.status_aggregator_cert.as_deref(),
                self.status_aggregator_key.as_deref(),
                self.status_aggregator_domain.clone(),
            )?)),
            None if self.status_aggregator_cert.is_some()
                || self.status_aggregator_key.is_some()
                || self.status_aggregator_domain.is_some() =>
            {
                anyhow::bail!(
                    "--status-aggregator-cert, --status-aggregator-key and --status-aggregator-domain need --status-aggregator-ca"
                )
            }
            None => Ok(None),
        }
    }
}

/// One cluster reconcile.
/// One reconcile, bounded by the shared deadline (`multigres_runtime::run::within_deadline`).
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
    let object = format!("MultigresCluster {}", object_key(cluster.as_ref()));
    let stores = &ctx.state.stores;
    let now = status::now();
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
    observed.unserved = status::unserved(&resolved);
    let served = status::served_condition(&observed.unserved);
    if !served.status {
        warn_once(
            &ctx,
            &cluster,
            multigres::SERVED_CONDITION,
            served.reason.as_str(),
            &served.message,
        )
        .await;
    }
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
        let has_data = !dereference::existing(stores, &cluster)
            .table_groups
            .is_empty();
        observed.credentials = apply::credentials(&ctx, &cluster, secret, has_data).await?;
        if let Some(problem) = &observed.credentials {
            warn_once(
                &ctx,
                &cluster,
                status::CREDENTIALS_READY,
                "CredentialsMissing",
                problem,
            )
            .await;
        }
    }
    observed.refused = apply::children(&ctx, &cluster, &desired).await?;
    let existing = dereference::existing(stores, &cluster);
    let uid = cluster.uid().unwrap_or_default();
    let controlled = existing
        .table_groups
        .iter()
        .map(AsRef::as_ref)
        .filter(|tg| {
            tg.owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && o.uid == uid)
        });
    observed.retention = retention::retention(&cluster, controlled, &desired.names().table_groups);
    let retained = status::retained_condition(&observed.retention);
    if retained.status {
        warn_once(
            &ctx,
            &cluster,
            status::RETAINED,
            retained.reason.as_str(),
            &retained.message,
        )
        .await;
    }
    apply::prune(&ctx, &cluster, &existing, &desired, &observed.retention).await?;
    let (topology, foreign) = apply::topology(
        &ctx,
        &cluster,
        &resolved.global_topology.root_path,
        &resolved.global_topology.address,
        &desired,
        &observed.retention.databases(),
    )
    .await?;
    observed.refused.extend(foreign);
    if !observed.refused.is_empty() {
        let message = status::refused_message(&observed.refused);
        warn_once(&ctx, &cluster, DEGRADED, "ChildRefused", &message).await;
    }

    // status
    observed.children = health(stores, &cluster, &desired);
    observed.topology = topology.clone();
    write_status(&ctx, &cluster, &observed).await?;
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

/// A cache of `K` and the stream of its changes (the stream must be polled to fill the cache).
fn cached<K>(
    api: Api<K>,
    config: watcher::Config,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
    futures::future::BoxFuture<'static, ()>,
)
where
    K: caches::Cacheable,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, caches::cache_watch(api, config));
    let (stream, synced) = caches::tap(stream);
    (reader, stream, synced)
}

/// Runs both controllers until SIGTERM.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let mapping = AddressMapping::parse(&args.topology_address_map)?;
    let aggregator_tls = args.status_aggregator_tls()?;
    let started = run::start(NAME, &args.common, CRDS).await?;
    // With --leader-elect, a standby starts nothing (no watches, no status writer; ready: see
    // leader::run_if_enabled_until) until it leads; losing the Lease returns an error, so the process
    // exits non-zero and restarts clean.
    let (client, readiness, stop) = (
        started.client.clone(),
        started.readiness.clone(),
        started.shutdown(),
    );
    let work = lead(started, &args, mapping, aggregator_tls);
    leader::run_if_enabled_until(client, &args.common, NAME, &readiness, stop, work)
        .await?
        .unwrap_or(Ok(()))
}

/// Everything the leader runs: caches, the status writer and both controllers, until SIGTERM.
async fn lead(
    started: Started,
    args: &Args,
    mapping: AddressMapping,
    aggregator_tls: Option<ClientTls>,
) -> anyhow::Result<()> {
    let client = started.client.clone();
    let ns = args.common.watch_namespace.as_deref();
    let managed = format!("{}={}", labels::MANAGED_BY, labels::MANAGED_BY_VALUE);
    let multiadmin = format!("{managed},{}={}", labels::COMPONENT, component::MULTIADMIN);
    let global_topo = format!("{managed},{}=global", labels::TOPO_SCOPE);
    let all = watcher::Config::default;

    let (clusters, cluster_events, clusters_synced) =
        cached(api::<MultigresCluster>(&client, ns), all());
    let (templates, template_events, templates_synced) =
        cached(api::<DeploymentTemplate>(&client, ns), all());
    let (topo_servers, topo_events, topo_servers_synced) =
        cached(api::<TopoServer>(&client, ns), all().labels(&global_topo));
    let (cells, cell_events, cells_synced) =
        cached(api::<Cell>(&client, ns), all().labels(&managed));
    let (table_groups, tg_events, table_groups_synced) =
        cached(api::<TableGroup>(&client, ns), all().labels(&managed));
    let (deployments, deployment_events, deployments_synced) =
        cached(api::<Deployment>(&client, ns), all().labels(&multiadmin));
    let (services, service_events, services_synced) =
        cached(api::<Service>(&client, ns), all().labels(&multiadmin));
    // The template lifecycle keeps its own caches, so that what triggers it and what it reads are
    // the same view of the world.
    let (lifecycle_clusters, lifecycle_cluster_events, lifecycle_clusters_synced) =
        cached(api::<MultigresCluster>(&client, ns), all());
    let (lifecycle_templates, lifecycle_template_events, lifecycle_templates_synced) =
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
    let _caches = CachesReady::spawn(
        vec![
            clusters_synced,
            templates_synced,
            topo_servers_synced,
            cells_synced,
            table_groups_synced,
            deployments_synced,
            services_synced,
            lifecycle_clusters_synced,
            lifecycle_templates_synced,
        ],
        started.readiness.clone(),
    );

    let status_feed = if args.status_aggregator_endpoint.is_empty() {
        tracing::info!("no --status-aggregator-endpoint: computing cluster status from own caches");
        None
    } else {
        let events =
            aggregator_client::watch_all(&args.status_aggregator_endpoint, aggregator_tls, ns)?;
        let feed = Arc::new(StatusFeed::default());
        tokio::spawn(aggregator::subscribe(feed.clone(), events));
        tokio::spawn(aggregator::write_statuses(
            feed.clone(),
            clusters.clone(),
            client.clone(),
            NAME.to_string(),
        ));
        tracing::info!(endpoint = %args.status_aggregator_endpoint, "cluster status from the status aggregator");
        Some(feed)
    };

    let config = ControllerConfig::default().concurrency(args.common.concurrency);
    let ctx = started.context(
        State::new(stores, mapping.clone(), args.topology_timeout).with_status_feed(status_feed),
    );
    let template_clusters = clusters.clone();
    let cluster_controller =
        Controller::for_stream(caches::applied(cluster_events, &clusters), clusters)
            .with_config(config.clone())
            .owns_stream(caches::touched(topo_events, &topo_servers))
            .owns_stream(caches::touched(cell_events, &cells))
            .owns_stream(caches::touched(tg_events, &table_groups))
            .owns_stream(caches::touched(deployment_events, &deployments))
            .owns_stream(caches::touched(service_events, &services))
            // A template change re-reconciles every cluster that names it.
            .watches_stream(
                caches::touched(template_events, &templates),
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
        caches::applied(lifecycle_template_events, &lifecycle_templates),
        lifecycle_templates,
    )
    .with_config(config)
    // Any cluster change may add or drop a consumer of any template of its namespace.
    .watches_stream(
        caches::touched(lifecycle_cluster_events, &lifecycle_clusters),
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn the_aggregator_is_off_by_default_and_tls_needs_its_ca() {
        let args = Args::parse_from(["cluster-controller"]);
        assert!(args.status_aggregator_endpoint.is_empty());
        assert!(args.status_aggregator_tls().unwrap().is_none());

        let args = Args::parse_from([
            "cluster-controller",
            "--status-aggregator-endpoint=http://127.0.0.1:9500",
            "--status-aggregator-domain=status-aggregator.multigres-system.svc",
        ]);
        assert!(args.status_aggregator_tls().is_err());

        let dir = tempfile::tempdir().unwrap();
        for f in ["ca.pem", "tls.crt", "tls.key"] {
            std::fs::write(dir.path().join(f), format!("{f} pem")).unwrap();
        }
        let path = |f: &str| dir.path().join(f).display().to_string();
        let args = Args::parse_from([
            "cluster-controller".to_string(),
            "--status-aggregator-endpoint=status-aggregator:9500".into(),
            format!("--status-aggregator-ca={}", path("ca.pem")),
            format!("--status-aggregator-cert={}", path("tls.crt")),
            format!("--status-aggregator-key={}", path("tls.key")),
            "--status-aggregator-domain=status-aggregator.multigres-system.svc".into(),
        ]);
        let tls = args.status_aggregator_tls().unwrap().unwrap();
        assert_eq!(tls.ca_pem, b"ca.pem pem");
        assert_eq!(
            tls.identity,
            Some((b"tls.crt pem".to_vec(), b"tls.key pem".to_vec()))
        );
        assert_eq!(
            tls.domain.as_deref(),
            Some("status-aggregator.multigres-system.svc")
        );
    }
}
