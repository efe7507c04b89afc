//! The cluster-controller: turns a MultigresCluster into its read-only children (global TopoServer,
//! Cells, TableGroups, the multiadmin Deployment and Service, a credentials Secret), registers its
//! databases in the global topology, and keeps every DeploymentTemplate's consumers exact. With the
//! Prometheus operator installed, each cluster also gets a PodMonitor and a PrometheusRule
//! ([`monitoring`]).
//!
//! Read in reconcile order ([`reconcile`]): [`dereference`], [`build`] (after
//! `multigres_api::resolve`), [`apply`], [`status`]; [`templates`] is the DeploymentTemplate
//! lifecycle; [`aggregator`] writes status from the status aggregator; [`backups`] runs Backups
//! and ScheduledBackups; [`run`] wires it together.

pub mod aggregator;
pub mod apply;
pub mod backups;
pub mod build;
pub mod certificates;
pub mod dereference;
pub mod error;
pub mod monitoring;
pub mod reconcile;
pub mod renewals;
pub mod retention;
pub mod status;
pub mod templates;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use multigres_api::labels::{self, component};
use multigres_api::{Cell, DeploymentTemplate, MultigresCluster, TableGroup, TopoServer};
use multigres_runtime::CommonArgs;
use multigres_runtime::apply::Applier;
use multigres_runtime::caches::{self, CachesReady};
use multigres_runtime::client::namespaced_or_all as api;
use multigres_runtime::run::{self, Started};
use multigres_status_api::client::{self as aggregator_client, ClientTls};
use multigres_topology::{AddressMapping, Dialer};

use aggregator::StatusFeed;
use apply::State;
use dereference::Stores;
pub use reconcile::reconcile;

/// The controller's name: its field manager, Event reporter and metrics label.
pub const NAME: &str = "cluster-controller";

/// CRDs that must be established before the controller starts.
pub const CRDS: &[&str] = &[
    "multigresclusters.multigres.com",
    "deploymenttemplates.multigres.com",
    "toposervers.multigres.com",
    "cells.multigres.com",
    "tablegroups.multigres.com",
    "backups.multigres.com",
    "scheduledbackups.multigres.com",
];

/// Settings of the cluster controller beyond the common ones.
pub struct Settings {
    pub address_mapping: AddressMapping,
    /// Deadline of every topology call.
    pub topology_timeout: Duration,
    /// The operator's topology CA and its client certificate (`--topology-ca-dir`).
    pub topology_tls: multigres_runtime::topology_tls::TopologyCredentials,
    /// Where MultigresCluster status comes from; None: computed from the controller's own caches.
    pub status_aggregator: Option<StatusAggregator>,
    /// How long the certificates it issues from the operator's CA (the topology's and each
    /// cluster's own) are valid (`--topology-certificate-validity`).
    pub certificate_validity: Duration,
}

/// The status aggregator's gRPC endpoint, and TLS towards it.
pub struct StatusAggregator {
    pub endpoint: String,
    pub tls: Option<ClientTls>,
}

/// A cache of `K` and the stream of its changes (the stream must be polled to fill the cache).
pub(crate) fn cached<K>(
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

/// Runs both controllers (caches, the status writer) until SIGTERM.
pub async fn run(started: Started, args: &CommonArgs, settings: Settings) -> anyhow::Result<()> {
    let client = started.client.clone();
    let mapping = settings.address_mapping;
    let backup_mapping = mapping.clone();
    let topology_ca = settings.topology_tls.authority.clone();
    let topology_client = settings.topology_tls.clients;
    let ns = args.watch_namespace.as_deref();
    let managed = format!("{}={}", labels::MANAGED_BY, labels::MANAGED_BY_VALUE);
    let multiadmin = format!("{managed},{}={}", labels::COMPONENT, component::MULTIADMIN);
    let services_of_cluster = format!(
        "{managed},{} in ({},{})",
        labels::COMPONENT,
        component::MULTIADMIN,
        component::CLUSTER_GATEWAYS
    );
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
    let (services, service_events, services_synced) = cached(
        api::<Service>(&client, ns),
        all().labels(&services_of_cluster),
    );
    let network_policy_labels = format!(
        "{managed},{}={}",
        labels::COMPONENT,
        component::NETWORK_POLICY
    );
    let (network_policies, network_policy_events, network_policies_synced) = cached(
        api::<NetworkPolicy>(&client, ns),
        all().labels(&network_policy_labels),
    );
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
        network_policies: network_policies.clone(),
    };
    let lifecycle_stores = Stores {
        clusters: lifecycle_clusters.clone(),
        templates: lifecycle_templates.clone(),
        ..stores.clone()
    };
    let caches_ready = CachesReady::spawn(
        vec![
            clusters_synced,
            templates_synced,
            topo_servers_synced,
            cells_synced,
            table_groups_synced,
            deployments_synced,
            services_synced,
            network_policies_synced,
            lifecycle_clusters_synced,
            lifecycle_templates_synced,
        ],
        started.readiness.clone(),
    );

    let status_feed = match settings.status_aggregator {
        None => {
            tracing::info!(
                "no --status-aggregator-endpoint: computing cluster status from own caches"
            );
            None
        }
        Some(StatusAggregator { endpoint, tls }) => {
            let events = aggregator_client::watch_all(&endpoint, tls, ns)?;
            let feed = Arc::new(StatusFeed::default());
            tokio::spawn(aggregator::subscribe(feed.clone(), events));
            tokio::spawn(aggregator::write_statuses(
                feed.clone(),
                clusters.clone(),
                Applier::new(client.clone(), NAME),
                started.events(),
            ));
            tracing::info!(%endpoint, "cluster status from the status aggregator");
            Some(feed)
        }
    };

    // The PodMonitor and PrometheusRule kinds come and go with the Prometheus operator: a change
    // re-reconciles every cluster.
    let served = Arc::new(monitoring::Served::default());
    let (monitoring_changed, monitoring_changes) = futures::channel::mpsc::unbounded();
    tokio::spawn(monitoring::rediscover(
        client.clone(),
        served.clone(),
        monitoring_changed,
    ));

    let config = ControllerConfig::default().concurrency(args.concurrency);
    let ctx = started.context(
        State::new(
            stores,
            Dialer::new(
                mapping.clone(),
                settings.topology_timeout,
                topology_client.clone(),
            ),
            topology_ca.clone(),
            args.lease_namespace.clone(),
        )
        .with_caches(caches_ready.clone())
        .with_certificate_validity(settings.certificate_validity)
        .with_status_feed(status_feed)
        .with_monitoring(served),
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
            .owns_stream(caches::touched(network_policy_events, &network_policies))
            .owns_stream(renewals::certificates(client.clone(), ns.map(String::from)))
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
            .reconcile_all_on(monitoring_changes)
            .graceful_shutdown_on(started.shutdown())
            .run(reconcile, run::error_policy, ctx)
            .for_each(|_| futures::future::ready(()));

    let lifecycle_ctx = started.context(
        State::new(
            lifecycle_stores,
            Dialer::new(mapping, settings.topology_timeout, topology_client),
            topology_ca,
            args.lease_namespace.clone(),
        )
        .with_caches(caches_ready),
    );
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

    let backups = backups::run(&started, args, backup_mapping, settings.topology_timeout);
    tokio::join!(cluster_controller, template_controller, backups);
    tracing::info!("stopped");
    Ok(())
}
