//! Carrying out a plan: new pods (with their claims and the volumes every pod shares), and pods
//! that go, through the Eviction API, each only if it is still the pod the plan looked at.

use super::*;

pub(super) async fn create_pods(
    shard: &Shard,
    ctx: &Ctx,
    pools: &[Pool],
    plan: &Plan,
    status: Option<&ShardStatus>,
) -> Result<(), ChildError> {
    if plan.create.is_empty() {
        return Ok(());
    }
    shared_volumes(shard, ctx, pools).await?;
    let ns = shard.namespace().unwrap_or_default();
    let conditions = conditions::of(status);
    let events = ctx.events.children(conditions);
    for (p, index) in &plan.create {
        let pool = &pools[*p];
        let pod = build::pod(shard, pool, *index);
        let pvc = build::pvc(shard, pool, &pod.name_any());
        if find(&ctx.state.pvcs.store, &ns, &pvc.name_any()).is_none() {
            let action = format!("creating PersistentVolumeClaim {}", pvc.name_any());
            ctx.applier
                .apply(None, &pvc)
                .await
                .map_err(|e| ChildError::kube(shard, action, e))?;
        }
        ctx.applier
            .apply_reported(events, shard, None, &pod)
            .await
            .map_err(|e| ChildError::kube(shard, format!("creating Pod {}", pod.name_any()), e))?;
    }
    Ok(())
}

/// Evicts the plan's pods. A pod that can hold the primary goes only if the topology, read again
/// right now, names another pod primary (unless the plan replaces a primary with no standby).
pub(super) async fn remove_pods(
    shard: &Shard,
    ctx: &Ctx,
    key: &str,
    states: &[PoolState],
    owned_pods: &[Arc<Pod>],
    view: &PrimaryView,
    plan: &mut Plan,
) -> Result<(), ChildError> {
    let ns = shard.namespace().unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let pvcs_api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    for (p, name, reason) in plan.delete.clone() {
        if states[p].can_be_primary
            && !plan.primary_without_standby
            && !view.elsewhere_now(shard, ctx, &name).await
        {
            tracing::info!(shard = key, pod = %name, "the primary moved or is unknown since it was read; the pod stays");
            plan.progressing = true;
            continue;
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
        let seen = owned_pods.iter().find(|p| p.name_any() == name);
        let params = EvictParams {
            delete_options: Some(delete_exactly(seen.and_then(|p| p.uid()))),
            ..Default::default()
        };
        // The client retries a 429 (budget exhausted) for minutes: give up early and look again.
        let evicted = match tokio::time::timeout(EVICTION_WAIT, pods_api.evict(&name, &params))
            .await
        {
            Ok(Ok(_)) => {
                if let Some(uid) = seen.and_then(|p| p.uid()) {
                    ctx.state.evictions.record(&uid);
                }
                true
            }
            // Gone already: removed by someone else, nothing to report.
            Ok(Err(kube::Error::Api(e))) if e.code == 404 => false,
            Ok(Err(kube::Error::Api(e))) if e.code == 409 || e.code == 429 => {
                tracing::info!(shard = key, pod = %name, code = e.code, "eviction refused for now");
                continue;
            }
            Ok(Err(e)) => return Err(ChildError::kube(shard, format!("evicting Pod {name}"), e)),
            Err(_) => {
                tracing::info!(shard = key, pod = %name, "eviction not allowed yet (disruption budget)");
                continue;
            }
        };
        if evicted {
            let note = match reason {
                Reason::Roll => format!("Replacing Pod {name} with the current spec"),
                Reason::ScaleDown => format!("Removing Pod {name} (scale-down)"),
            };
            match seen {
                Some(pod) => {
                    let pod = pod.as_ref();
                    ctx.events
                        .about_child(shard, pod, "PodReplaced", &note)
                        .await
                }
                None => ctx.events.normal(shard, "PodReplaced", &note).await,
            }
        }
        if reason == Reason::ScaleDown
            && shard.spec.pvc_deletion_policy.when_scaled == RetentionAction::Delete
        {
            let pvc = naming::data_pvc(&name);
            let claim_uid = find(&ctx.state.pvcs.store, &ns, &pvc).and_then(|c| c.uid());
            match pvcs_api.delete(&pvc, &delete_exactly(claim_uid)).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(ChildError::kube(shard, format!("deleting PVC {pvc}"), e)),
            }
        }
    }
    Ok(())
}
