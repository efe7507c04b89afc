//! shard-controller: Shard -> pods, PVCs, headless Services and PDBs per pool. With `--partition`,
//! several replicas split the Shards between them (see docs/shard-controller.md).

use multigres_runtime::caches::{self, CachesReady};
use multigres_runtime::client::namespaced_or_all as api;
use std::time::Duration;

use clap::Parser;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use multigres_api::Shard;
use multigres_api::labels::{self, component};
use multigres_runtime::partition::{Partition, PartitionSettings, Synced};
use multigres_runtime::settings::parse_duration;
use multigres_runtime::slots::Slots;
use multigres_runtime::{CommonArgs, run};
use multigres_shard_controller::reconcile::{Handover, State, reconcile};
use multigres_shard_controller::topology::TopologyReader;
use multigres_shard_controller::trim;
use multigres_topology::AddressMapping;

const NAME: &str = "shard-controller";

#[derive(Parser)]
#[command(name = NAME, about = "Turns each Shard into Postgres + multipooler pods, per pool")]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Split Shards between replicas through membership Leases in --lease-namespace.
    #[arg(long, env = "MULTIGRES_PARTITION", default_value_t = false)]
    partition: bool,
    /// Dial-time rewrites of topology addresses, `from=to,...` (tests and demos; off when empty).
    #[arg(long, env = "MULTIGRES_TOPOLOGY_ADDRESS_MAP", default_value = "")]
    topology_address_map: String,
    /// Timeout of each topology call.
    #[arg(long, env = "MULTIGRES_TOPOLOGY_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    topology_timeout: Duration,
    /// Hold the pods of Shards the pinned Multigres cannot serve (table groups other than
    /// `default`, more than one shard): `false` when the images run a Multigres that serves them,
    /// or under a simulator.
    #[arg(long, env = "MULTIGRES_HOLD_UNSERVED_SHARDS", default_value_t = true, action = clap::ArgAction::Set)]
    hold_unserved_shards: bool,
    /// At most this many Shards of one table group roll at once (0: no limit). Slots are Leases
    /// in --lease-namespace, shared by every replica.
    #[arg(
        long,
        env = "MULTIGRES_MAX_ROLLING_SHARDS_PER_TABLE_GROUP",
        default_value_t = 1
    )]
    max_rolling_shards_per_table_group: u32,
    /// Timeout of a planned switchover call to multiadmin.
    #[arg(long, env = "MULTIGRES_SWITCHOVER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    switchover_timeout: Duration,
}

/// A roll slot whose Lease has not changed this long belongs to a holder that stopped: free.
const ROLL_SLOT_TTL: Duration = Duration::from_secs(60);

/// A child cache: narrowed to owned buckets when partitioned, each object passed through `trim`
/// before it is stored. Returns the store, a trigger stream mapping each child to its Shard, and
/// what the cache holds completely.
fn child_cache<K>(
    api: Api<K>,
    selector: &str,
    partition: Option<&Partition>,
    trim: fn(&mut K),
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    Option<Synced>,
)
where
    K: caches::Cacheable,
{
    let (store, writer) = reflector::store::<K>();
    let (events, synced) = match partition {
        Some(p) => {
            let (stream, synced) = p.watch_owned(api, selector);
            (stream.boxed(), Some(synced))
        }
        None => (
            caches::cache_watch(api, watcher::Config::default().labels(selector)).boxed(),
            None,
        ),
    };
    let stream = caches::touched(reflector::reflector(writer, events.modify(trim)), &store);
    (store, stream, synced)
}

fn shard_of<K: Resource>(child: K) -> Option<ObjectRef<Shard>> {
    let owner = child.labels().get(labels::OWNER)?.clone();
    Some(ObjectRef::new(&owner).within(&child.namespace()?))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = run::start(NAME, &args.common, &["shards.multigres.com"]).await?;
    let client = started.client.clone();
    let ns = args.common.watch_namespace.as_deref();
    let mapping = AddressMapping::parse(&args.topology_address_map)?;

    let partition = args.partition.then(|| {
        Partition::join(
            client.clone(),
            PartitionSettings {
                group: NAME.to_string(),
                identity: args.common.identity.clone(),
                namespace: args.common.lease_namespace.clone(),
                lease_duration: args.common.lease_duration,
            },
        )
    });
    // A topology call must end well within one reconcile's deadline.
    let topology_timeout = match &partition {
        Some(p) => args.topology_timeout.min(p.action_deadline() / 3),
        None => args.topology_timeout,
    };
    let selector = labels::selector(&labels::with(
        [(
            labels::MANAGED_BY.to_string(),
            labels::MANAGED_BY_VALUE.to_string(),
        )]
        .into(),
        labels::COMPONENT,
        component::SHARD_POOL,
    ));
    let p = partition.as_ref();
    let (pods, pod_events, s1) = child_cache(api::<Pod>(&client, ns), &selector, p, trim::pod);
    let (pvcs, pvc_events, s2) = child_cache(
        api::<PersistentVolumeClaim>(&client, ns),
        &selector,
        p,
        trim::claim,
    );
    // Services and PDBs are compared with what the controller would apply: kept whole.
    let (services, svc_events, s3) = child_cache(api::<Service>(&client, ns), &selector, p, |_| {});
    let (pdbs, pdb_events, s4) = child_cache(
        api::<PodDisruptionBudget>(&client, ns),
        &selector,
        p,
        |_| {},
    );
    let synced: Vec<Synced> = [s1, s2, s3, s4].into_iter().flatten().collect();

    let ctx = started.context(State {
        pods,
        pvcs,
        services,
        pdbs,
        synced,
        partition: partition.clone(),
        topology: TopologyReader::new(mapping.clone(), topology_timeout),
        identity: args.common.identity.clone(),
        hold_unserved: args.hold_unserved_shards,
        handover: Handover::new(
            Slots::new(
                client.clone(),
                &args.common.lease_namespace,
                args.max_rolling_shards_per_table_group,
                ROLL_SLOT_TTL,
            ),
            mapping,
            args.switchover_timeout,
        ),
    });

    let (shards, shard_writer) = reflector::store::<Shard>();
    let (shard_stream, shards_synced) = caches::tap(reflector::reflector(
        shard_writer,
        caches::cache_watch(api::<Shard>(&client, ns), watcher::Config::default()),
    ));
    let shard_events = caches::applied(shard_stream, &shards);
    let mut controller = Controller::for_stream(shard_events, shards.clone())
        .watches_stream(pod_events, shard_of)
        .watches_stream(pvc_events, shard_of)
        .watches_stream(svc_events, shard_of)
        .watches_stream(pdb_events, shard_of)
        .with_config(
            kube::runtime::controller::Config::default().concurrency(args.common.concurrency),
        )
        .graceful_shutdown_on(started.shutdown());
    if let Some(p) = &partition {
        controller = controller.reconcile_all_on(p.changes());
    }

    // Owned Shards, for the `owned_objects` gauge, recounted as the view and the Shards change.
    let metrics = ctx.metrics.clone();
    let counting = partition.clone();
    let store = shards.clone();
    let _caches = CachesReady::spawn(vec![shards_synced], started.readiness.clone());
    tokio::spawn(async move {
        loop {
            let owned = store
                .state()
                .iter()
                .filter(|s| {
                    counting
                        .as_ref()
                        .is_none_or(|p| p.owns(&run::object_key(s.as_ref())))
                })
                .count();
            metrics.owned.set(owned as i64);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });

    controller
        .run(reconcile, run::error_policy, ctx)
        .for_each(|_| std::future::ready(()))
        .await;
    if let Some(p) = partition {
        p.leave().await;
    }
    Ok(())
}
