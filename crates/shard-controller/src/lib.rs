//! The shard controller: a Shard becomes, per pool, Postgres + multipooler pods managed directly
//! (not StatefulSets, see docs/shard-controller.md), a data PVC per pod, a headless Service and a
//! PodDisruptionBudget. Pods roll one at a time per pool, read-only and replica members before the
//! primary, which is read from the topology. Several replicas split the Shards between them.
//!
//! A reconcile ([`reconcile`]) reads top to bottom: [`build`] (pure) makes the pool objects and pods,
//! [`plan`] (pure) decides what to create and remove from what is observed and from the primary
//! read through [`topology`]; the reconcile carries the plan out and writes the status.

pub mod build;
pub mod certificates;
pub mod evictions;
pub mod plan;
pub mod reconcile;
pub mod switchover;
pub mod topology;
pub mod trim;

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use multigres_api::Shard;
use multigres_api::labels::{self, component};
use multigres_runtime::CommonArgs;
use multigres_runtime::caches::{self, CachesReady};
use multigres_runtime::client::namespaced_or_all as api;
use multigres_runtime::index::LabelIndex;
use multigres_runtime::partition::{Partition, PartitionSettings, Synced};
use multigres_runtime::run::{self, Started};
use multigres_runtime::slots::Slots;
use multigres_topology::AddressMapping;

pub use reconcile::{Handover, reconcile};
use topology::TopologyReader;

/// Name of the controller: its field manager, Event reporter and metric prefix.
pub const NAME: &str = "shard-controller";

/// CRDs that must be established before the controller starts.
pub const CRDS: &[&str] = &["shards.multigres.com"];

/// What every reconcile shares: the child caches, the partition, the topology reader.
pub struct State {
    pub pods: Children<Pod>,
    pub pvcs: Children<PersistentVolumeClaim>,
    pub services: Children<Service>,
    pub pdbs: Children<PodDisruptionBudget>,
    /// Which buckets each child cache holds completely (empty when not partitioned).
    pub synced: Vec<Synced>,
    /// Not partitioned: every child cache has listed once. Before that a pool's earlier claims
    /// may be unlisted, and pods built then would take new names and new, empty claims.
    pub caches: CachesReady,
    pub partition: Option<Partition>,
    pub topology: TopologyReader,
    pub identity: String,
    /// Create no pods for a Shard the pinned Multigres cannot serve (its multipooler would exit at
    /// start, over and over): the Shard says why instead.
    pub hold_unserved: bool,
    /// Roll slots and planned switchovers.
    pub handover: Handover,
    /// Progress-only status writes wait a little (docs/performance.md, "Status writes").
    pub status_pace: multigres_runtime::status_pace::StatusPace<multigres_api::ShardStatus>,
    /// Shards in a roll, an edit or a requested switchover: no Event per availability turn.
    pub planned: multigres_runtime::events::PlannedChanges,
    /// The pgBackRest TLS Secrets it creates, known without reading them.
    pub secrets: multigres_runtime::once::Secrets,
    /// What renews the pgBackRest certificates (`certificates`).
    pub pgbackrest: crate::certificates::PgBackRest,
    /// Pods it evicted that the pod cache may still show running.
    pub evictions: crate::evictions::Evictions,
    /// Per Shard uid: the pools' parameters ConfigMaps it last pruned around (old ones deleted).
    pub pruned_pg_confs:
        std::sync::Mutex<std::collections::HashMap<String, std::collections::BTreeSet<String>>>,
}

pub type Ctx = multigres_runtime::Context<State>;

/// Settings of the shard controller beyond the common ones.
pub struct Settings {
    /// Split Shards between replicas through membership Leases.
    pub partition: bool,
    pub address_mapping: AddressMapping,
    pub topology_timeout: Duration,
    /// The client certificate for topologies that speak TLS (`--topology-ca-dir`).
    pub topology_tls: multigres_topology::ClientIdentities,
    /// The topology CA, from which each Shard's pgBackRest CA is derived; none: pgBackRest
    /// certificates from a throw-away CA, never renewed.
    pub authority: Option<std::sync::Arc<multigres_runtime::pki::Authority>>,
    /// How long the pgBackRest certificates from `authority` are valid.
    pub certificate_validity: Duration,
    pub hold_unserved_shards: bool,
    pub max_rolling_shards_per_table_group: u32,
    pub switchover_timeout: Duration,
}

/// A roll slot whose Lease has not changed this long belongs to a holder that stopped: free.
const ROLL_SLOT_TTL: Duration = Duration::from_secs(60);

/// A child cache: narrowed to owned buckets when partitioned, each object passed through `trim`
/// before it is stored. Returns the cache, a trigger stream mapping each child to its Shard, and
/// what the cache holds completely.
fn child_cache<K>(
    api: Api<K>,
    selector: &str,
    partition: Option<&Partition>,
    trim: fn(&mut K),
) -> (
    Children<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    ChildSynced,
)
where
    K: caches::Cacheable,
{
    let (store, writer) = reflector::store::<K>();
    let (events, synced) = match partition {
        Some(p) => {
            let (stream, synced) = p.watch_owned(api, selector);
            (stream.boxed(), ChildSynced::Buckets(synced))
        }
        None => {
            let watch = caches::cache_watch(api, watcher::Config::default().labels(selector));
            let (stream, listed) = caches::tap(watch);
            (stream.boxed(), ChildSynced::Listed(listed))
        }
    };
    let by_owner = LabelIndex::new(labels::OWNER);
    let indexing = by_owner.clone();
    let events = events.modify(trim).inspect(move |event| {
        if let Ok(event) = event {
            indexing.observe(event);
        }
    });
    let stream = caches::touched(reflector::reflector(writer, events), &store);
    (Children { store, by_owner }, stream, synced)
}

/// A child cache and its objects by owning Shard (`multigres.com/owner`, which every child
/// carries): a reconcile reads only its own Shard's children.
pub struct Children<K: caches::Cacheable> {
    pub store: Store<K>,
    by_owner: LabelIndex<K>,
}

impl<K: caches::Cacheable> Children<K> {
    /// The children of `shard` (by label; callers that act on them check the controller
    /// reference too).
    pub fn of(&self, shard: &Shard) -> Vec<Arc<K>> {
        let ns = shard.meta().namespace.as_deref().unwrap_or_default();
        self.by_owner.get(&self.store, ns, &shard.name_any())
    }
}

/// When a child cache is complete: per bucket when partitioned, else once it has listed.
enum ChildSynced {
    Buckets(Synced),
    Listed(futures::future::BoxFuture<'static, ()>),
}

fn shard_of<K: Resource>(child: K) -> Option<ObjectRef<Shard>> {
    let owner = child.labels().get(labels::OWNER)?.clone();
    Some(ObjectRef::new(&owner).within(&child.namespace()?))
}

/// Runs the controller until shutdown.
pub async fn run(started: Started, args: &CommonArgs, settings: Settings) -> anyhow::Result<()> {
    let client = started.client.clone();
    let ns = args.watch_namespace.as_deref();
    let partition = settings.partition.then(|| {
        Partition::join(
            client.clone(),
            PartitionSettings {
                group: NAME.to_string(),
                identity: args.identity.clone(),
                namespace: args.lease_namespace.clone(),
                lease_duration: args.lease_duration,
            },
        )
    });
    // A topology call must end well within one reconcile's deadline.
    let topology_timeout = match &partition {
        Some(p) => settings.topology_timeout.min(p.action_deadline() / 3),
        None => settings.topology_timeout,
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
    let (mut synced, mut listed) = (Vec::new(), Vec::new());
    for child in [s1, s2, s3, s4] {
        match child {
            ChildSynced::Buckets(s) => synced.push(s),
            ChildSynced::Listed(l) => listed.push(l),
        }
    }

    let (topology, topology_changes) = TopologyReader::new(multigres_topology::Dialer::new(
        settings.address_mapping.clone(),
        topology_timeout,
        settings.topology_tls.clone(),
    ));
    let (shards, shard_writer) = reflector::store::<Shard>();
    let (shard_stream, shards_synced) = caches::tap(reflector::reflector(
        shard_writer,
        caches::cache_watch(api::<Shard>(&client, ns), watcher::Config::default()),
    ));
    listed.push(shards_synced);
    let caches = CachesReady::spawn(listed, started.readiness.clone());
    let ctx = started.context(State {
        pods,
        pvcs,
        services,
        pdbs,
        synced,
        caches,
        partition: partition.clone(),
        topology,
        identity: args.identity.clone(),
        hold_unserved: settings.hold_unserved_shards,
        handover: Handover::new(
            Slots::new(
                client.clone(),
                &args.lease_namespace,
                settings.max_rolling_shards_per_table_group,
                ROLL_SLOT_TTL,
            ),
            settings.address_mapping,
            settings.switchover_timeout,
        ),
        status_pace: Default::default(),
        planned: Default::default(),
        secrets: Default::default(),
        pgbackrest: crate::certificates::PgBackRest::new(
            settings.authority.clone(),
            settings.certificate_validity,
        ),
        evictions: Default::default(),
        pruned_pg_confs: Default::default(),
    });

    let shard_events = caches::applied(shard_stream, &shards);
    let mut controller = Controller::for_stream(shard_events, shards.clone())
        .watches_stream(pod_events, shard_of)
        .watches_stream(pvc_events, shard_of)
        .watches_stream(svc_events, shard_of)
        .watches_stream(pdb_events, shard_of)
        .with_config(kube::runtime::controller::Config::default().concurrency(args.concurrency))
        .graceful_shutdown_on(started.shutdown());
    if let Some(p) = &partition {
        controller = controller.reconcile_all_on(p.changes());
    }
    // A pooler record written or removed wakes the Shards that read it (no polling).
    let (waking, store) = (ctx.clone(), shards.clone());
    let topology_wakes = futures::stream::unfold(topology_changes, |mut changes| async move {
        changes.recv().await.map(|change| (change, changes))
    })
    .flat_map(move |change| {
        futures::stream::iter(waking.state.topology.shards_to_wake(&change, &store))
    });
    controller = controller.reconcile_on(topology_wakes);

    // Owned Shards, for the `owned_objects` gauge, recounted as the view and the Shards change.
    let metrics = ctx.metrics.clone();
    let counting = partition.clone();
    let store = shards.clone();
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
