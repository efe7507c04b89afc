//! The tablegroup controller: a TableGroup becomes one Shard per partition.
//!
//! Shards are never deleted by this controller: decreasing `partitioning.shards` is refused by the
//! schema, and a Shard that is no longer desired (an edit that bypassed the schema) is left in place
//! and reported in the `StaleShards` condition, because deleting it would delete data.
//!
//! A reconcile ([`reconcile`]): [`build`] (pure) makes the Shards and the status; they are
//! server-side applied against the Shard cache.

pub mod build;
pub mod reconcile;

use futures::StreamExt;
use kube::runtime::controller::Config as ControllerConfig;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{Controller, watcher};
use multigres_api::labels::{self, component};
use multigres_api::{Shard, TableGroup};
use multigres_runtime::CommonArgs;
use multigres_runtime::caches::{self, CachesReady};
use multigres_runtime::client::namespaced_or_all as api;
use multigres_runtime::run::{self, Started};

pub use reconcile::reconcile;

/// Name of the controller: its field manager, Event reporter and metric prefix.
pub const NAME: &str = "tablegroup-controller";

/// CRDs that must be established before the controller starts.
pub const CRDS: &[&str] = &["tablegroups.multigres.com", "shards.multigres.com"];

/// The cache every reconcile reads.
pub struct State {
    pub shards: Store<Shard>,
    /// TableGroups whose Shards change (a roll, an edit): no Event per availability turn.
    pub planned: multigres_runtime::events::PlannedChanges,
}

pub type Ctx = multigres_runtime::Context<State>;

/// Runs the controller until shutdown.
pub async fn run(started: Started, args: &CommonArgs) -> anyhow::Result<()> {
    let client = started.client.clone();
    let ns = args.watch_namespace.as_deref();
    let selector = format!(
        "{}={},{}={}",
        labels::MANAGED_BY,
        labels::MANAGED_BY_VALUE,
        labels::COMPONENT,
        component::SHARD
    );
    let (shards, writer) = reflector::store::<Shard>();
    let shard_stream = reflector::reflector(
        writer,
        caches::cache_watch(
            api::<Shard>(&client, ns),
            watcher::Config::default().labels(&selector),
        ),
    );
    let shard_stream = caches::applied(shard_stream, &shards);
    let _caches = CachesReady::spawn(
        vec![caches::store(shards.clone())],
        started.readiness.clone(),
    );
    let ctx = started.context(State {
        shards,
        planned: Default::default(),
    });
    let (table_groups, table_group_stream) = caches::primary_watch(api::<TableGroup>(&client, ns));
    Controller::for_stream(table_group_stream, table_groups)
        .owns_stream(shard_stream)
        .with_config(ControllerConfig::default().concurrency(args.concurrency))
        .graceful_shutdown_on(started.shutdown())
        .run(reconcile, run::error_policy, ctx)
        .for_each(|_| std::future::ready(()))
        .await;
    Ok(())
}
