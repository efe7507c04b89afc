//! The topo controller: each TopoServer (global, owned by a MultigresCluster, or local, owned by a
//! Cell) becomes an etcd StatefulSet, a client and a headless peer Service and a PodDisruptionBudget
//! that keeps a quorum. Its status reports members ready and whether a quorum is (`Available`).
//!
//! A reconcile reads top to bottom: [`build`] (pure) makes the children, [`apply`] server-side applies
//! them against the watch caches (no write when nothing changed), [`status`] computes the status from
//! the observed StatefulSet, which is written only when it changed. PVCs are never deleted.

pub mod apply;
pub mod build;
pub mod error;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::Controller;
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use multigres_api::TopoServer;
use multigres_api::labels::{self, component};
use multigres_runtime::CommonArgs;
use multigres_runtime::client::namespaced_or_all as api;
use multigres_runtime::run::{self, Started};

use multigres_runtime::caches::{self, CachesReady, child_watch};

pub use error::Error;

/// Name of the controller: its field manager, Event reporter and metric prefix.
pub const NAME: &str = "topo-controller";

/// Caches of the children, filled by the controller's watches.
pub struct Stores {
    pub statefulsets: Store<StatefulSet>,
    pub services: Store<Service>,
    pub pdbs: Store<PodDisruptionBudget>,
    pub caches: CachesReady,
}

impl Stores {
    async fn ready(&self, within: Duration) -> bool {
        self.caches.wait(within).await
    }
}

pub type Ctx = multigres_runtime::Context<Stores>;

pub(crate) fn object_name(ts: &TopoServer) -> String {
    format!("{}/{}", ts.namespace().unwrap_or_default(), ts.name_any())
}

/// Periodic re-check, a backstop for missed events.
const RESYNC: Duration = Duration::from_secs(300);

/// One reconcile, bounded by the shared deadline (`multigres_runtime::run::within_deadline`).
pub async fn reconcile(ts: Arc<TopoServer>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let object = ts.clone();
    multigres_runtime::run::within_deadline(object.as_ref(), reconcile_unbounded(ts, ctx)).await
}

async fn reconcile_unbounded(ts: Arc<TopoServer>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started();
    if ts.meta().deletion_timestamp.is_some() {
        // Garbage collection removes the children; the PVCs stay (retention policy Retain).
        return Ok(Action::await_change());
    }
    if !ctx.state.ready(Duration::from_secs(30)).await {
        return Err(Error::CacheNotReady {
            object: object_name(&ts),
        });
    }
    let children = build::children(&ts);
    apply::children(&ctx, &ts, &children).await?;
    let key = ObjectRef::new(&ts.name_any()).within(&ts.namespace().unwrap_or_default());
    let observed = ctx.state.statefulsets.get(&key);
    let status = status::compute(&ts, observed.as_deref(), Timestamp::now());
    apply::status(&ctx, &ts, status).await?;
    ctx.succeeded(ts.as_ref());
    Ok(Action::requeue(RESYNC))
}

/// Runs the controller until shutdown.
pub async fn run(started: Started, args: &CommonArgs) -> anyhow::Result<()> {
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
    let ctx = started.context(Stores {
        statefulsets,
        services,
        pdbs,
        caches,
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
