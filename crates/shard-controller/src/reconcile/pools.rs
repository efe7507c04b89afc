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
            .apply_owned(None, shard, &state.services.store, &service)
            .await?;
        let pdb = build::pdb(shard, pool);
        ctx.applier
            .apply_owned(None, shard, &state.pdbs.store, &pdb)
            .await?;
    }
    Ok(())
}

/// The shard's pods, from the cache.
pub(super) fn owned_pods(shard: &Shard, ctx: &Ctx) -> Vec<Arc<Pod>> {
    let cached = ctx
        .state
        .pods
        .of(shard)
        .into_iter()
        .filter(|pod| multigres_runtime::apply::controlled_by(pod.as_ref(), shard))
        .collect();
    ctx.state.evictions.overlay(cached)
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
    let services = ctx.state.services.of(shard);
    ctx.applier
        .prune(&ctx.events, shard, services.iter().map(Arc::as_ref), &keep)
        .await
        .map_err(|e| ChildError::kube(shard, "pruning Services", e))?;
    let pdbs = ctx.state.pdbs.of(shard);
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
    let mut earlier_names = None;
    let observed = pods
        .iter()
        .filter(|p| p.labels().get(labels::POOL).map(String::as_str) == Some(pool_id))
        .filter_map(|p| {
            let name = p.name_any();
            let index = pod_index(&shard_name, pool_id, &name, &mut earlier_names)?;
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

/// The index of a pool's pod from its name, or None for a name the pool never gives. A name ends in
/// its index, checked by rebuilding it; an earlier, hashed name ends in a hash, so only then are
/// the earlier names of every index built, once per pool (the CPU profile had the shard-controller
/// spending 7 % of its time building 256 names per pool and reconcile).
fn pod_index(
    shard: &str,
    pool_id: &str,
    name: &str,
    earlier_names: &mut Option<BTreeMap<String, u32>>,
) -> Option<u32> {
    let suffix = name.rsplit('-').next()?.parse::<u32>().ok();
    if let Some(i) = suffix.filter(|i| *i < MAX_INDEX)
        && naming::pool_pod(shard, pool_id, i) == name
    {
        return Some(i);
    }
    earlier_pod_names(shard, pool_id, earlier_names)
        .get(name)
        .copied()
}

fn earlier_pod_names<'a>(
    shard: &str,
    pool_id: &str,
    cache: &'a mut Option<BTreeMap<String, u32>>,
) -> &'a BTreeMap<String, u32> {
    cache.get_or_insert_with(|| {
        (0..MAX_INDEX)
            .map(|i| (naming::pool_pod_hashed(shard, pool_id, i), i))
            .filter(|(name, i)| *name != naming::pool_pod(shard, pool_id, *i))
            .collect()
    })
}

/// A pool whose pods, or claims when it has no pods, carry the earlier names keeps them: a pod under
/// a new name would start on a new, empty claim (docs/operations.md "Names").
pub(super) fn keep_earlier_names(
    shard: &str,
    pools: &mut [Pool],
    pod_names: &[(String, String)],
    claim_names: &[(String, String)],
) {
    for pool in pools {
        let of_pool = |names: &[(String, String)]| -> Vec<String> {
            names
                .iter()
                .filter(|(id, _)| *id == pool.id)
                .map(|(_, name)| name.clone())
                .collect()
        };
        let pods = of_pool(pod_names);
        let mut cache = None;
        pool.earlier_names = if !pods.is_empty() {
            pods.iter().any(|name| {
                let readable = name
                    .rsplit('-')
                    .next()
                    .and_then(|i| i.parse::<u32>().ok())
                    .is_some_and(|i| naming::pool_pod(shard, &pool.id, i) == *name);
                !readable && earlier_pod_names(shard, &pool.id, &mut cache).contains_key(name)
            })
        } else {
            let claims = of_pool(claim_names);
            !claims.is_empty()
                && earlier_pod_names(shard, &pool.id, &mut cache)
                    .keys()
                    .any(|pod| claims.contains(&naming::data_pvc(pod)))
        };
    }
}

/// (pool id, name) of what a pool label marks as the shard's.
pub(super) fn pool_members<'a, K: ResourceExt + 'a>(
    shard: &Shard,
    objects: impl IntoIterator<Item = &'a K>,
) -> Vec<(String, String)> {
    let (ns, owner) = (shard.namespace(), shard.name_any());
    objects
        .into_iter()
        .filter(|o| o.namespace() == ns && o.labels().get(labels::OWNER) == Some(&owner))
        .filter_map(|o| Some((o.labels().get(labels::POOL)?.clone(), o.name_any())))
        .collect()
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
        assert!(long.ends_with("-main-42"), "{long} keeps pool and index");
        assert_eq!(pod_index(&shard, "main", &long, &mut cache), Some(42));
        assert!(cache.is_none(), "a readable name needs no table of names");
        let earlier = naming::pool_pod_hashed(&shard, "main", 42);
        assert!(!earlier.ends_with("-42"), "{earlier} should end in a hash");
        assert_eq!(pod_index(&shard, "main", &earlier, &mut cache), Some(42));
        assert_eq!(pod_index(&shard, "main", "unrelated-3", &mut cache), None);
    }

    #[test]
    fn pools_with_earlier_names_keep_them() {
        let shard = "s".repeat(60);
        let pool = |id: &str| Pool {
            id: id.into(),
            spec: serde_json::from_value(serde_json::json!({
                "type": "replica", "cell": "a", "replicas": 2, "dataVolumeClaimTemplate": {}
            }))
            .unwrap(),
            service: String::new(),
            labels: BTreeMap::new(),
            earlier_names: false,
            pgbackrest_secret: String::new(),
        };
        let earlier = |i| naming::pool_pod_hashed(&shard, "old", i);
        let pods = vec![("old".to_string(), earlier(0))];
        let claims = vec![
            (
                "gone".to_string(),
                naming::data_pvc(&naming::pool_pod_hashed(&shard, "gone", 1)),
            ),
            (
                "new".to_string(),
                naming::data_pvc(&naming::pool_pod(&shard, "new", 0)),
            ),
        ];
        let mut pools = vec![pool("old"), pool("gone"), pool("new"), pool("empty")];
        keep_earlier_names(&shard, &mut pools, &pods, &claims);
        let kept: Vec<bool> = pools.iter().map(|p| p.earlier_names).collect();
        assert_eq!(kept, [true, true, false, false]);
        assert_eq!(
            pools[0].pod_name(&shard, 1),
            naming::pool_pod_hashed(&shard, "old", 1)
        );
    }
}
