//! One reconcile of a Shard, as a pipeline: decide ownership, build the pools, apply their Services
//! and budgets, observe the pods, read the primary, plan, pace the roll and move the primary, act,
//! then the status, written only when it changed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod};
use kube::api::{DeleteParams, EvictParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use multigres_api::labels;
use multigres_api::{PoolType, RetentionAction, Shard, ShardStatus, multigres, naming};
use multigres_runtime::conditions::{self, AVAILABLE, ConditionUpdate, PROGRESSING};
use multigres_runtime::error::{ChildError, Failure};
use multigres_runtime::once;
use multigres_runtime::partition::{Decision, Synced};
use multigres_runtime::pods::is_ready;
use serde_json::json;

use crate::Ctx;
use crate::build::{self, Pool};
use crate::plan::{self, ObservedPod, Plan, PoolState, Primary, Reason};
use crate::topology::TopologyPrimary;

mod act;
mod handover;
mod pg_confs;
mod pools;
mod primary;
mod requested;
mod shared;
mod status;
mod volumes;

pub use handover::Handover;
pub use requested::SWITCHOVER_CONDITION;

use primary::PrimaryView;
use shared::{claim_owners, delete_exactly, shared_volumes};
use status::status;

/// How long one eviction may wait for the pool's disruption budget before the reconcile moves on.
const EVICTION_WAIT: Duration = Duration::from_secs(5);

/// How long a reconcile waits for the child caches to list before it tries again.
const CACHE_WAIT: Duration = Duration::from_secs(10);

/// Pods per pool are looked up by name for indices below this (schema: replicas <= 100).
const MAX_INDEX: u32 = 256;

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

/// Entry point: acts only on Shards this replica may act on, bounded by the partition's deadline.
pub async fn reconcile(shard: Arc<Shard>, ctx: Arc<Ctx>) -> Result<Action, ChildError> {
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
        None => {
            // Names of existing pods and claims are kept: they must all be listed first.
            if !ctx.state.caches.wait(CACHE_WAIT).await {
                return Ok(Action::requeue(Duration::from_secs(1)));
            }
            multigres_runtime::run::RECONCILE_DEADLINE
        }
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
    let action =
        result.map_err(|_| ChildError::new(shard.as_ref(), Failure::Deadline(deadline)))??;
    ctx.succeeded(shard.as_ref());
    Ok(action)
}

fn find<K>(store: &Store<K>, namespace: &str, name: &str) -> Option<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store.get(&ObjectRef::new(name).within(namespace))
}

async fn reconcile_owned(shard: &Shard, ctx: &Ctx, key: &str) -> Result<Action, ChildError> {
    if shard.meta().deletion_timestamp.is_some() {
        pg_confs::forget(shard, ctx);
        ctx.state.topology.forget(shard);
        ctx.state.status_pace.forget(key);
        ctx.state.planned.settled(key);
        ctx.state.pgbackrest.forget(shard);
        return Ok(Action::await_change());
    }
    let owned_pods = pools::owned_pods(shard, ctx);
    let mut pools = build::pools(shard);
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let pgbackrest = ctx.state.pgbackrest.decide(shard, &owned_pods, now);
    for pool in &mut pools {
        pool.pgbackrest_secret = pgbackrest.secret.clone();
    }
    let claims = ctx.state.pvcs.of(shard);
    pools::keep_earlier_names(
        &shard.name_any(),
        &mut pools,
        &pools::pool_members(shard, owned_pods.iter().map(Arc::as_ref)),
        &pools::pool_members(shard, claims.iter().map(Arc::as_ref)),
    );
    pools::apply_services_and_budgets(shard, ctx, &pools).await?;
    pools::prune_services_and_budgets(shard, ctx, &pools, &owned_pods).await?;
    let states = pools::observe(shard, &pools, &owned_pods);
    let view = primary::read(shard, ctx, key, &owned_pods).await;

    let mut plan = plan::plan(&states, &view.primary);
    let unserved = multigres::unserved_shard(&shard.spec.table_group, shard.spec.multigres_shard());
    if ctx.state.hold_unserved && !unserved.is_empty() && !plan.create.is_empty() {
        plan.create.clear();
        plan.progressing = !plan.delete.is_empty();
        plan.message = format!("pods held: {}", unserved.join("; "));
    }
    let requested = requested::handle(shard, ctx, key, &states, &view.primary, &mut plan).await?;
    handover::pace_roll(shard, ctx, key, &mut plan).await;
    if let Some(pod) = plan.switchover.clone() {
        handover::switch_over(shard, ctx, key, &pod, &mut plan).await;
    }

    // What this process wrote moments ago, if the cache has not caught up with it yet: a pod
    // created right after a roll began is part of the roll, not a repair to report.
    let current = ctx.state.status_pace.current(key, shard.status.as_ref());
    act::create_pods(shard, ctx, &pools, &plan, current.as_ref()).await?;
    act::remove_pods(shard, ctx, key, &states, &owned_pods, &view, &mut plan).await?;
    if !plan.progressing {
        pg_confs::prune(shard, ctx, &pools, &owned_pods).await?;
    }
    claim_owners(shard, ctx).await?;
    let volumes = volumes::grow(shard, ctx, &pools).await?;
    volumes::warn_on_change(shard, ctx, &volumes).await;

    let observed = status::Observed {
        pools: &pools,
        pods: &owned_pods,
        plan: &plan,
        primary: &view.record,
        requested: &requested,
        volumes: &volumes,
    };
    let status = status(shard, current.as_ref(), observed);
    // A roll, an edit being applied or a requested switchover turns availability on purpose.
    let edited = shard
        .status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .is_some_and(|seen| Some(seen) != shard.metadata.generation);
    let planned = plan.rolling || requested.under_way || edited;
    ctx.state.planned.observe(key, planned);
    let unchanged = multigres_runtime::apply::status_equal_beside(
        current.as_ref(),
        &status,
        ShardStatus::WRITTEN_BY_BACKUPS,
    );
    let held = if unchanged {
        ctx.state.status_pace.unchanged(key);
        None
    } else {
        let progress_only = status::progress_only(current.as_ref(), &status);
        ctx.state.status_pace.hold(key, progress_only)
    };
    if held.is_none() && !unchanged {
        let wrote = ctx
            .applier
            .apply_status_beside(
                shard,
                current.as_ref(),
                &status,
                ShardStatus::WRITTEN_BY_BACKUPS,
            )
            .await
            .map_err(|e| ChildError::new(shard, Failure::Status(Box::new(e))))?;
        if wrote {
            tracing::info!(shard = key, status = %status::summary(&status), "status written");
            ctx.state.status_pace.wrote(key, &status);
            if !ctx.state.planned.quiet(key) {
                let before = conditions::of(current.as_ref());
                ctx.events
                    .availability(shard, before, &status.conditions)
                    .await;
            }
        }
    }
    if !planned && conditions::is_true(&status.conditions, AVAILABLE) {
        ctx.state.planned.settled(key);
    }
    let electing = plan.switchover.is_some()
        || requested.under_way
        || (status.primary_cell.is_none()
            && status.ready_pods > 0
            && pools.iter().any(build::can_be_primary));
    let mut look_again = look_again_after(plan.progressing, electing, view.watched);
    if let Some(renew_at) = pgbackrest.renew_at {
        look_again = look_again.min(Duration::from_secs((renew_at - now).max(1) as u64));
    }
    Ok(Action::requeue(
        held.map_or(look_again, |h| h.min(look_again)),
    ))
}

/// Pod and claim events wake the controller while it works, and so does the topology while its
/// watch is in sync (`watched`); the timer is then a safety net: 10 s while an election is due,
/// 5 s while pods are being created or replaced (the roll's pacing), otherwise 5 minutes.
/// Without the watch it looks again every second while an election is due (pods Ready, no
/// primary recorded: the Shard is not Available until it is), every 5 s while progressing,
/// otherwise every 30 s. Slower polling (2 s and 15 s) measured worse on a 200-Shard benchmark:
/// 86.9 s against 59.7 s to converge (docs/performance.md).
fn look_again_after(progressing: bool, electing: bool, watched: bool) -> Duration {
    match (electing, progressing, watched) {
        (true, _, false) => Duration::from_secs(1),
        (true, _, true) => Duration::from_secs(10),
        (false, true, _) => Duration::from_secs(5),
        (false, false, false) => Duration::from_secs(30),
        (false, false, true) => Duration::from_secs(300),
    }
}
