//! tablegroup-controller: TableGroup -> Shards.

use clap::Parser;
use futures::StreamExt;
use kube::runtime::reflector;
use kube::runtime::{Controller, watcher};
use multigres_api::labels::{self, component};
use multigres_api::{Shard, TableGroup};
use multigres_runtime::caches::{self, CachesReady};
use multigres_runtime::client::namespaced_or_all as api;
use multigres_runtime::{CommonArgs, leader, run};
use multigres_tablegroup_controller::reconcile::{State, reconcile};

const NAME: &str = "tablegroup-controller";

#[derive(Parser)]
#[command(name = NAME, about = "Turns each TableGroup into one Shard per partition")]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = run::start(
        NAME,
        &args.common,
        &["tablegroups.multigres.com", "shards.multigres.com"],
    )
    .await?;
    let client = started.client.clone();
    let ns = args.common.watch_namespace.as_deref();
    let selector = labels::selector(&labels::with(
        [(
            labels::MANAGED_BY.to_string(),
            labels::MANAGED_BY_VALUE.to_string(),
        )]
        .into(),
        labels::COMPONENT,
        component::SHARD,
    ));
    let (shards, writer) = reflector::store::<Shard>();
    let shard_stream = reflector::reflector(
        writer,
        caches::cache_watch(
            api::<Shard>(&client, ns),
            watcher::Config::default().labels(&selector),
        ),
    );
    let shard_stream = caches::applied(shard_stream, &shards);
    let ctx = started.context(State {
        shards: shards.clone(),
    });
    let (table_groups, table_group_stream) = caches::primary_watch(api::<TableGroup>(&client, ns));
    let readiness = started.readiness.clone();
    let shutdown = started.shutdown();
    let concurrency = args.common.concurrency;
    let work = async move {
        let controller = Controller::for_stream(table_group_stream, table_groups)
            .owns_stream(shard_stream)
            .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
            .graceful_shutdown_on(shutdown);
        let _caches = CachesReady::spawn(vec![caches::store(shards.clone())], readiness);
        controller
            .run(reconcile, run::error_policy, ctx)
            .for_each(|_| std::future::ready(()))
            .await;
    };
    // A standby is ready and stops on SIGTERM (see leader::run_if_enabled_until).
    leader::run_if_enabled_until(
        started.client.clone(),
        &args.common,
        NAME,
        &started.readiness,
        started.shutdown(),
        work,
    )
    .await?;
    Ok(())
}
