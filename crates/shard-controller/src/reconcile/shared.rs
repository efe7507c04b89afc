//! What a reconcile writes besides pods: the objects every pool pod shares (created once) and
//! the owner references of the shard's claims, plus deletes that apply only to the object looked at.

use super::*;

/// What every pool pod mounts besides its own data volume: the shard's backup repository, its
/// pg_hba template ConfigMap, its pgBackRest TLS Secret and each pool's parameters ConfigMap, each
/// created once, before the first pod that needs them.
pub(super) async fn shared_volumes(
    shard: &Shard,
    ctx: &Ctx,
    pools: &[Pool],
) -> Result<(), ChildError> {
    let ns = shard.namespace().unwrap_or_default();
    let backups = build::backup_pvc(shard);
    if build::filesystem_repository(shard)
        && find(&ctx.state.pvcs.store, &ns, &backups.name_any()).is_none()
    {
        ctx.applier
            .apply(None, &backups)
            .await
            .map_err(|e| ChildError::kube(shard, format!("creating {}", backups.name_any()), e))?;
    }
    let hba = build::pg_hba_config_map_name(shard);
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    once::create_once(&config_maps, &hba, || {
        Ok::<_, kube::Error>(build::pg_hba_config_map(shard))
    })
    .await
    .map_err(|e| ChildError::kube(shard, format!("creating ConfigMap {hba}"), e))?;
    for pool in pools {
        let name = build::pg_conf_config_map_name(shard, pool);
        once::create_once(&config_maps, &name, || {
            Ok::<_, kube::Error>(build::pg_conf_config_map(shard, pool))
        })
        .await
        .map_err(|e| ChildError::kube(shard, format!("creating ConfigMap {name}"), e))?;
    }
    let Some(name) = pools.first().map(|p| p.pgbackrest_secret.clone()) else {
        return Ok(());
    };
    let created = ctx
        .state
        .secrets
        .issue_once(&ctx.client, shard, &name, || {
            let tls = ctx.state.pgbackrest.issue(shard, &name)?;
            Ok(build::pgbackrest_secret(shard, &name, &tls))
        })
        .await?;
    if created {
        let what = "pgBackRest TLS certificates";
        ctx.events.secret_created(shard, &name, what).await;
    }
    Ok(())
}

/// Keeps the owner reference of every claim of the shard in line with `pvcDeletionPolicy.whenDeleted`
/// as it is now: owned (deleted with the Shard) only under `Delete`. A policy flipped to `Retain`
/// takes effect on claims created before, so deleting the cluster no longer deletes them.
pub(super) async fn claim_owners(shard: &Shard, ctx: &Ctx) -> Result<(), ChildError> {
    let ns = shard.namespace().unwrap_or_default();
    let uid = shard.uid().unwrap_or_default();
    let owned_by_policy = shard.spec.pvc_deletion_policy.when_deleted == RetentionAction::Delete;
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    for claim in ctx.state.pvcs.of(shard) {
        let refs = claim.owner_references();
        if refs.iter().any(|o| o.uid == uid) == owned_by_policy {
            continue;
        }
        let mut next: Vec<_> = refs.iter().filter(|o| o.uid != uid).cloned().collect();
        if owned_by_policy {
            next.extend(multigres_runtime::apply::controller_ref(shard));
        }
        let patch = json!({"metadata": {"uid": claim.uid(), "ownerReferences": next}});
        api.patch(
            &claim.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|e| ChildError::kube(shard, format!("owner of {}", claim.name_any()), e))?;
        let what = if owned_by_policy {
            "now deleted with"
        } else {
            "now kept after"
        };
        ctx.events
            .normal(
                shard,
                "ClaimPolicy",
                &format!(
                    "PersistentVolumeClaim {} is {what} the Shard (pvcDeletionPolicy.whenDeleted)",
                    claim.name_any()
                ),
            )
            .await;
    }
    Ok(())
}

/// Delete parameters that apply only to the object with `uid`.
pub(super) fn delete_exactly(uid: Option<String>) -> DeleteParams {
    DeleteParams {
        preconditions: uid.map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..Default::default()
    }
}
