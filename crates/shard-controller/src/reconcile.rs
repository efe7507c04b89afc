//! One reconcile of a Shard: decide ownership, build, read the primary, plan, apply, status.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, EvictParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use multigres_api::labels;
use multigres_api::{PoolType, RetentionAction, Shard, ShardStatus, multigres, naming};
use multigres_runtime::Context;
use multigres_runtime::conditions::{self, AVAILABLE, ConditionUpdate, PROGRESSING};
use multigres_runtime::error::{ErrorKind, ReconcileError};
use multigres_runtime::partition::{Decision, Partition, Synced};
use multigres_runtime::{once, pki};
use serde_json::json;

use crate::build::{self, Pool};
use crate::plan::{self, ObservedPod, PoolState, Primary, Reason};
use crate::topology::{TopologyPrimary, TopologyReader};

/// How long one eviction may wait for the pool's disruption budget before the reconcile moves on.
const EVICTION_WAIT: Duration = Duration::from_secs(5);

/// Pods per pool are looked up by name for indices below this (schema: replicas <= 100).
const MAX_INDEX: u32 = 256;

pub struct State {
    pub pods: Store<Pod>,
    pub pvcs: Store<PersistentVolumeClaim>,
    pub services: Store<Service>,
    pub pdbs: Store<PodDisruptionBudget>,
    /// Which buckets each child cache holds completely (empty when not partitioned).
    pub synced: Vec<Synced>,
    pub partition: Option<Partition>,
    pub topology: TopologyReader,
    pub identity: String,
    /// Create no pods for a Shard the pinned Multigres cannot serve (its multipooler would exit at
    /// start, over and over): the Shard says why instead.
    pub hold_unserved: bool,
    /// Roll slots and planned switchovers.
    pub handover: Handover,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Shard {0}: {1} {2} exists and is controlled by another object; rename or delete it")]
    NameTaken(String, &'static str, String),
    #[error("Shard {0}: {1}: {2}")]
    Kube(String, String, #[source] kube::Error),
    #[error("Shard {0}: reconcile exceeded its deadline of {1:?}")]
    Deadline(String, Duration),
    #[error("Shard {0}: {1}")]
    Tls(String, String),
}

impl ReconcileError for Error {
    fn metric_label(&self) -> &'static str {
        match self {
            Error::NameTaken(..) => "name_taken",
            Error::Kube(..) => "kube_api",
            Error::Deadline(..) => "deadline",
            Error::Tls(..) => "tls",
        }
    }
    fn deadline(object: String, after: Duration) -> Self {
        Error::Deadline(object, after)
    }
    fn kind(&self) -> ErrorKind {
        match self {
            Error::NameTaken(..) => ErrorKind::Invalid,
            _ => ErrorKind::Transient,
        }
    }
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

/// Entry point: acts only on Shards this replica may act on, bounded by the partition's deadline.
pub async fn reconcile(shard: Arc<Shard>, ctx: Arc<Context<State>>) -> Result<Action, Error> {
    let key = multigres_runtime::run::object_key(shard.as_ref());
    let deadline = match &ctx.state.partition {
        Some(partition) => {
            let synced: Vec<&Synced> = ctx.state.synced.iter().collect();
            match partition.decide_with(&key, &synced) {
                Decision::NotOwned => return Ok(Action::await_change()),
                Decision::Wait(d) => return Ok(Action::requeue(d)),
                Decision::Act => partition.action_deadline(),
            }
        }
        None => Duration::from_secs(60),
    };
    let _timer = ctx.metrics.reconcile_started();
    // These two lines are the replica's record of what it reconciled and when (tests check that
    // no two replicas ever reconcile one Shard at overlapping times).
    tracing::info!(
        "reconcile start shard={key} replica={} at_ms={}",
        ctx.state.identity,
        unix_ms()
    );
    let result = tokio::time::timeout(deadline, reconcile_owned(&shard, &ctx, &key)).await;
    tracing::info!(
        "reconcile end shard={key} replica={} at_ms={}",
        ctx.state.identity,
        unix_ms()
    );
    let action = result.map_err(|_| Error::Deadline(key.clone(), deadline))??;
    ctx.succeeded(shard.as_ref());
    Ok(action)
}

fn find<K>(store: &Store<K>, namespace: &str, name: &str) -> Option<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store.get(&ObjectRef::new(name).within(namespace))
}

pub(crate) fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn reconcile_owned(shard: &Shard, ctx: &Context<State>, key: &str) -> Result<Action, Error> {
    if shard.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = shard.namespace().unwrap_or_default();
    let kube_err = |what: String| {
        let key = key.to_string();
        move |e| Error::Kube(key, what, e)
    };
    let pools = build::pools(shard);

    // Services and PDBs first: pods need their Service for host names.
    for pool in &pools {
        let svc = build::service(shard, pool);
        let existing = find(&ctx.state.services, &ns, &pool.service);
        check_owner(existing.as_deref(), shard, key, "Service")?;
        ctx.applier
            .apply(existing.as_deref(), &svc)
            .await
            .map_err(kube_err(format!("applying Service {}", pool.service)))?;
        let pdb = build::pdb(shard, pool);
        let existing = find(&ctx.state.pdbs, &ns, &pdb.name_any());
        check_owner(existing.as_deref(), shard, key, "PodDisruptionBudget")?;
        ctx.applier
            .apply(existing.as_deref(), &pdb)
            .await
            .map_err(kube_err(format!(
                "applying PodDisruptionBudget {}",
                pdb.name_any()
            )))?;
    }
    // Observe the pods: by pool, including pools no longer in the spec (scaled to zero).
    let uid = shard.uid().unwrap_or_default();
    let owned_pods: Vec<Arc<Pod>> = ctx
        .state
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
        .filter(|p| {
            p.owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && o.uid == uid)
        })
        .collect();
    // A removed pool's Service (its pods' DNS names) and PDB stay until its last pod is gone.
    let keep: BTreeSet<String> = pools
        .iter()
        .map(|p| p.service.clone())
        .chain(owned_pods.iter().filter_map(|pod| {
            let pool = pod.labels().get(labels::POOL)?;
            Some(naming::pool_service(&shard.name_any(), pool))
        }))
        .collect();
    let mine = |o: &&Arc<Service>| o.namespace().as_deref() == Some(ns.as_str());
    let services: Vec<Arc<Service>> = ctx
        .state
        .services
        .state()
        .into_iter()
        .filter(|s| mine(&s))
        .collect();
    ctx.applier
        .prune(&ctx.events, shard, services.iter().map(Arc::as_ref), &keep)
        .await
        .map_err(kube_err("pruning Services".into()))?;
    let pdbs: Vec<Arc<PodDisruptionBudget>> = ctx
        .state
        .pdbs
        .state()
        .into_iter()
        .filter(|s| s.namespace().as_deref() == Some(ns.as_str()))
        .collect();
    ctx.applier
        .prune(&ctx.events, shard, pdbs.iter().map(Arc::as_ref), &keep)
        .await
        .map_err(kube_err("pruning PodDisruptionBudgets".into()))?;

    let mut states: Vec<PoolState> = Vec::new();
    let mut extra_pools: BTreeMap<String, bool> = BTreeMap::new();
    for pod in &owned_pods {
        let pool_id = pod.labels().get(labels::POOL).cloned().unwrap_or_default();
        if !pools.iter().any(|p| p.id == pool_id) {
            let replica = pod.labels().get(labels::POOL_TYPE).map(String::as_str)
                != Some(PoolType::ReadOnly.as_str());
            extra_pools.insert(pool_id, replica);
        }
    }
    for pool in &pools {
        let can_be_primary = build::can_be_primary(pool);
        states.push(observe_pool(
            shard,
            &owned_pods,
            &pool.id,
            pool.spec.replicas,
            can_be_primary,
            Some(pool),
        ));
    }
    for (id, replica) in &extra_pools {
        states.push(observe_pool(shard, &owned_pods, id, 0, *replica, None));
    }

    // The primary, from the topology; unknown when it cannot be read, when several records
    // claim it, or when its record traces to none of this shard's pods.
    let pod_names: Vec<String> = owned_pods.iter().map(|p| p.name_any()).collect();
    // Where the primary may be: the cells of the spec's replica pools, and of every replica-pool
    // pod that still exists (a pool removed from the spec may still hold it).
    let replica_pods: Vec<&Arc<Pod>> = owned_pods
        .iter()
        .filter(|p| {
            p.labels().get(labels::POOL_TYPE).map(String::as_str)
                != Some(PoolType::ReadOnly.as_str())
        })
        .collect();
    let cells: BTreeSet<String> = shard
        .spec
        .pools
        .iter()
        .filter(|p| p.pool_type == PoolType::Replica)
        .map(|p| p.cell.clone())
        .chain(
            replica_pods
                .iter()
                .filter_map(|p| p.labels().get(labels::CELL).cloned()),
        )
        .collect();
    let primary_record = match ctx.state.topology.primary(shard, &cells, &pod_names).await {
        Ok(found) => Some(found),
        Err(error) => {
            tracing::warn!(shard = key, %error, "topology unreachable; the primary is unknown");
            None
        }
    };
    let primary = match &primary_record {
        // No PRIMARY record while replica-pool pods exist: mid-election or not bootstrapped yet.
        // Any of them may become (or be) the primary, so nothing of theirs moves.
        Some(TopologyPrimary::None) if !replica_pods.is_empty() => {
            tracing::info!(
                shard = key,
                "no PRIMARY record while replica pods exist; the primary is unknown"
            );
            Primary::Unknown
        }
        Some(TopologyPrimary::None) => Primary::Known(None),
        Some(TopologyPrimary::One(p)) => match &p.pod {
            Some(pod) => Primary::Known(Some(pod.clone())),
            None => {
                tracing::warn!(shard = key, cell = %p.cell, "the PRIMARY record is none of this shard's pods; the primary is unknown");
                Primary::Unknown
            }
        },
        Some(TopologyPrimary::Conflict(keys)) => {
            tracing::warn!(
                shard = key,
                ?keys,
                "several pooler records claim PRIMARY; the primary is unknown"
            );
            Primary::Unknown
        }
        None => Primary::Unknown,
    };
    let mut plan = plan::plan(&states, &primary);
    let unserved = multigres::unserved_shard(&shard.spec.table_group, shard.spec.multigres_shard());
    if ctx.state.hold_unserved && !unserved.is_empty() && !plan.create.is_empty() {
        plan.create.clear();
        plan.progressing = !plan.delete.is_empty();
        plan.message = format!("pods held: {}", unserved.join("; "));
    }

    handover::pace_roll(shard, ctx, key, &mut plan).await;
    if let Some(pod) = plan.switchover.clone() {
        handover::switch_over(shard, ctx, key, &pod, &mut plan).await;
    }

    if !plan.create.is_empty() {
        shared_volumes(shard, ctx, key).await?;
    }
    for (p, index) in &plan.create {
        let pool = &pools[*p];
        let pod = build::pod(shard, pool, *index);
        let pvc = build::pvc(shard, pool, &pod.name_any());
        if find(&ctx.state.pvcs, &ns, &pvc.name_any()).is_none() {
            ctx.applier
                .apply(None, &pvc)
                .await
                .map_err(kube_err(format!(
                    "creating PersistentVolumeClaim {}",
                    pvc.name_any()
                )))?;
        }
        ctx.applier
            .apply_reported(&ctx.events, shard, None, &pod)
            .await
            .map_err(kube_err(format!("creating Pod {}", pod.name_any())))?;
    }
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let pvcs_api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    for (p, name, reason) in &plan.delete {
        // A failover may have made this pod the primary since the topology was read: look again
        // right before a pod that can hold the primary goes (not when the primary itself is meant to).
        if states[*p].can_be_primary && !plan.primary_without_standby {
            let now = ctx.state.topology.primary(shard, &cells, &pod_names).await;
            let elsewhere = matches!(&now, Ok(TopologyPrimary::One(r))
                if r.pod.as_ref().is_some_and(|primary| primary != name));
            if !elsewhere {
                tracing::info!(shard = key, pod = %name, "the primary moved or is unknown since it was read; the pod stays");
                plan.progressing = true;
                continue;
            }
        }
        tracing::info!(shard = key, pod = %name, ?reason, "evicting pod");
        if plan.primary_without_standby {
            let note = format!(
                "Replacing the primary {name} in place: no Ready standby can take over, writes stop until it is back"
            );
            ctx.events.warning(shard, "PrimaryRestart", &note).await;
        }
        // Through the Eviction API, so the pool's PodDisruptionBudget holds (a 429 means another
        // pod of the pool is down: wait), and only for the pod the plan looked at: a replacement
        // created meanwhile under the same name is not removed by mistake (409 on the uid).
        let seen = owned_pods.iter().find(|p| p.name_any() == *name);
        let params = EvictParams {
            delete_options: Some(delete_exactly(seen.and_then(|p| p.uid()))),
            ..Default::default()
        };
        // The client retries a 429 (budget exhausted) for minutes: give up early and look again.
        match tokio::time::timeout(EVICTION_WAIT, pods_api.evict(name, &params)).await {
            Ok(Ok(_)) => {}
            Ok(Err(kube::Error::Api(e))) if e.code == 404 => {}
            Ok(Err(kube::Error::Api(e))) if e.code == 409 || e.code == 429 => {
                tracing::info!(shard = key, pod = %name, code = e.code, "eviction refused for now");
                continue;
            }
            Ok(Err(e)) => return Err(kube_err(format!("evicting Pod {name}"))(e)),
            Err(_) => {
                tracing::info!(shard = key, pod = %name, "eviction not allowed yet (disruption budget)");
                continue;
            }
        }
        let note = match reason {
            Reason::Roll => format!("Replacing Pod {name} with the current spec"),
            Reason::ScaleDown => format!("Removing Pod {name} (scale-down)"),
        };
        ctx.events.normal(shard, "PodReplaced", &note).await;
        if *reason == Reason::ScaleDown
            && shard.spec.pvc_deletion_policy.when_scaled == RetentionAction::Delete
        {
            let pvc = naming::data_pvc(name);
            let claim_uid = find(&ctx.state.pvcs, &ns, &pvc).and_then(|c| c.uid());
            match pvcs_api.delete(&pvc, &delete_exactly(claim_uid)).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(kube_err(format!("deleting PVC {pvc}"))(e)),
            }
        }
    }

    claim_owners(shard, ctx, key).await?;

    let status = status(shard, &pools, &owned_pods, &plan, &primary_record);
    if shard.status.as_ref() != Some(&status) {
        let api: Api<Shard> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({
            "apiVersion": Shard::api_version(&()),
            "kind": Shard::kind(&()),
            "status": status,
        });
        api.patch_status(
            &shard.name_any(),
            &PatchParams::apply(ctx.applier.manager()).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(kube_err("writing status".into()))?;
    }
    let electing = plan.switchover.is_some()
        || (status.primary_cell.is_none()
            && status.ready_pods > 0
            && pools.iter().any(build::can_be_primary));
    Ok(Action::requeue(look_again_after(
        plan.progressing,
        electing,
    )))
}

/// Pod and claim events wake the controller while it works; the topology does not, so it looks
/// again: every second while an election is due (pods Ready, no primary recorded: the Shard is not
/// Available until it is), every 5 s while pods are being created or replaced, otherwise every
/// 30 s. Slower timers (2 s and 15 s) measured worse on a 200-Shard benchmark: 86.9 s against
/// 59.7 s to converge (docs/performance.md).
fn look_again_after(progressing: bool, electing: bool) -> Duration {
    if electing {
        Duration::from_secs(1)
    } else if progressing {
        Duration::from_secs(5)
    } else {
        Duration::from_secs(30)
    }
}

fn observe_pool(
    shard: &Shard,
    pods: &[Arc<Pod>],
    pool_id: &str,
    replicas: i32,
    can_be_primary: bool,
    pool: Option<&Pool>,
) -> PoolState {
    let shard_name = shard.name_any();
    let mut long_names = None;
    let observed = pods
        .iter()
        .filter(|p| p.labels().get(labels::POOL).map(String::as_str) == Some(pool_id))
        .filter_map(|p| {
            let name = p.name_any();
            let index = pod_index(&shard_name, pool_id, &name, &mut long_names)?;
            let outdated = match pool {
                Some(pool) => {
                    let desired = build::pod(shard, pool, index);
                    build::hash_of(&desired) != build::hash_of(p)
                }
                None => true,
            };
            Some(ObservedPod {
                name,
                index,
                outdated,
                ready: is_ready(p),
                terminating: p.meta().deletion_timestamp.is_some(),
            })
        })
        .collect();
    PoolState {
        id: pool_id.to_string(),
        can_be_primary,
        replicas: replicas.max(0) as u32,
        pods: observed,
    }
}

/// The index of a pool's pod from its name, or None for a name the pool never gives. A short name
/// ends in its index, checked by rebuilding it; a long one ends in a hash, so only then are the
/// names of every index built, once per pool (the CPU profile had the shard-controller spending
/// 7 % of its time building 256 names per pool and reconcile).
fn pod_index(
    shard: &str,
    pool_id: &str,
    name: &str,
    long_names: &mut Option<BTreeMap<String, u32>>,
) -> Option<u32> {
    let suffix = name.rsplit('-').next()?.parse::<u32>().ok();
    if let Some(i) = suffix.filter(|i| *i < MAX_INDEX)
        && naming::pool_pod(shard, pool_id, i) == name
    {
        return Some(i);
    }
    long_names
        .get_or_insert_with(|| {
            (0..MAX_INDEX)
                .map(|i| (naming::pool_pod(shard, pool_id, i), i))
                .collect()
        })
        .get(name)
        .copied()
}

fn check_owner<K: Resource>(
    existing: Option<&K>,
    shard: &Shard,
    key: &str,
    kind: &'static str,
) -> Result<(), Error> {
    match existing {
        Some(child) if multigres_runtime::apply::controlled_by_other(child, shard) => {
            Err(Error::NameTaken(
                key.to_string(),
                kind,
                child.meta().name.clone().unwrap_or_default(),
            ))
        }
        _ => Ok(()),
    }
}

mod handover;
mod shared;
mod status;

pub use handover::Handover;

use shared::{claim_owners, delete_exactly, shared_volumes};
use status::status;
