//! Each pool's headless Service and PodDisruptionBudget, and what the pods of each pool are: index,
//! outdated or not, ready, terminating.

use super::*;

/// Services and PDBs first: pods need their Service for host names.
pub(super) async fn apply_services_and_budgets(
    shard: &Shard,
    ctx: &Ctx,
    pools: &[Pool],
) -> Result<(), ChildError> {
    for pool in pools {
        let state = &ctx.state;
        let service = build::service(shard, pool);
        ctx.applier
            .apply_owned(None, shard, &state.services, &service)
            .await?;
        let pdb = build::pdb(shard, pool);
        ctx.applier
            .apply_owned(None, shard, &state.pdbs, &pdb)
            .await?;
    }
    Ok(())
}

/// The shard's pods, from the cache.
pub(super) fn owned_pods(shard: &Shard, ctx: &Ctx) -> Vec<Arc<Pod>> {
    multigres_runtime::apply::controlled_children(&ctx.state.pods, shard)
}

/// A removed pool's Service (its pods' DNS names) and PDB stay until its last pod is gone.
pub(super) async fn prune_services_and_budgets(
    shard: &Shard,
    ctx: &Ctx,
    pools: &[Pool],
    owned_pods: &[Arc<Pod>],
) -> Result<(), ChildError> {
    let keep: BTreeSet<String> = pools
        .iter()
        .map(|p| p.service.clone())
        .chain(owned_pods.iter().filter_map(|pod| {
            let pool = pod.labels().get(labels::POOL)?;
            Some(naming::pool_service(&shard.name_any(), pool))
        }))
        .collect();
    let ns = shard.namespace();
    let services: Vec<Arc<Service>> = ctx
        .state
        .services
        .state()
        .into_iter()
        .filter(|s| s.namespace() == ns)
        .collect();
    ctx.applier
        .prune(&ctx.events, shard, services.iter().map(Arc::as_ref), &keep)
        .await
        .map_err(|e| ChildError::kube(shard, "pruning Services", e))?;
    let pdbs: Vec<Arc<PodDisruptionBudget>> = ctx
        .state
        .pdbs
        .state()
        .into_iter()
        .filter(|s| s.namespace() == ns)
        .collect();
    ctx.applier
        .prune(&ctx.events, shard, pdbs.iter().map(Arc::as_ref), &keep)
        .await
        .map_err(|e| ChildError::kube(shard, "pruning PodDisruptionBudgets", e))?;
    Ok(())
}

/// Every pool's pods, including pools no longer in the spec (scaled to zero), which keep their
/// pods' primary eligibility from the pod labels.
pub(super) fn observe(shard: &Shard, pools: &[Pool], owned_pods: &[Arc<Pod>]) -> Vec<PoolState> {
    let mut extra_pools: BTreeMap<String, bool> = BTreeMap::new();
    for pod in owned_pods {
        let pool_id = pod.labels().get(labels::POOL).cloned().unwrap_or_default();
        if !pools.iter().any(|p| p.id == pool_id) {
            let replica = pod.labels().get(labels::POOL_TYPE).map(String::as_str)
                != Some(PoolType::ReadOnly.as_str());
            extra_pools.insert(pool_id, replica);
        }
    }
    let in_spec = pools.iter().map(|pool| {
        let can_be_primary = build::can_be_primary(pool);
        let replicas = pool.spec.replicas;
        observe_pool(
            shard,
            owned_pods,
            &pool.id,
            replicas,
            can_be_primary,
            Some(pool),
        )
    });
    let removed = extra_pools
        .iter()
        .map(|(id, replica)| observe_pool(shard, owned_pods, id, 0, *replica, None));
    in_spec.chain(removed).collect()
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
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_indices_come_from_short_and_long_names() {
        let mut cache = None;
        let short = naming::pool_pod("shard-a", "main", 7);
        assert_eq!(pod_index("shard-a", "main", &short, &mut cache), Some(7));
        assert!(cache.is_none(), "a short name needs no table of names");
        assert_eq!(pod_index("shard-a", "other", &short, &mut None), None);
        // The table is per shard and pool, as in observe_pool.
        let mut cache = None;
        let shard = "s".repeat(60);
        let long = naming::pool_pod(&shard, "main", 42);
        assert!(!long.ends_with("-42"), "{long} should end in a hash");
        assert_eq!(pod_index(&shard, "main", &long, &mut cache), Some(42));
        assert_eq!(pod_index(&shard, "main", "unrelated-3", &mut cache), None);
    }
}
