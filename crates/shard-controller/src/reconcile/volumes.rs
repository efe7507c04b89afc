//! Growing the pools' data claims to the size their template asks for (`crate::volumes` decides).
//! Only when a claim needs more room are StorageClasses read, so a settled Shard costs nothing.

use multigres_runtime::volumes::{self, StorageClasses, VolumePlan};

use super::*;

/// The Shard's `VolumesResized` condition: `(status, reason, message)`.
pub(super) type VolumeCondition = (bool, &'static str, String);

pub(super) use volumes::CONDITION;

/// Patches every claim the pools' plans grow; returns the condition, none while no pool sets a
/// size.
pub(super) async fn grow(
    shard: &Shard,
    ctx: &Ctx,
    pools: &[Pool],
) -> Result<Option<VolumeCondition>, ChildError> {
    let ns = shard.namespace().unwrap_or_default();
    let claims = ctx.state.pvcs.of(shard);
    let mut classes = StorageClasses::default();
    let mut total = VolumePlan::default();
    let mut wanted_text = Vec::new();
    for pool in pools {
        let Some(wanted) = volumes::requested(Some(&pool.spec.data_volume_claim_template)) else {
            continue;
        };
        wanted_text.push(wanted.0.clone());
        let selector = pool.selector();
        let mine: Vec<&PersistentVolumeClaim> = claims
            .iter()
            .map(Arc::as_ref)
            .filter(|c| selector.iter().all(|(k, v)| c.labels().get(k) == Some(v)))
            .collect();
        let needs_room = mine.iter().any(|c| {
            let current =
                volumes::requested(c.spec.as_ref()).and_then(multigres_api::quantity::bytes);
            current < multigres_api::quantity::bytes(wanted)
        });
        if needs_room {
            classes.learn(&ctx.client, &mine).await;
        }
        let planned = volumes::plan(Some(wanted), &mine, |class| classes.allows(class));
        tracing::debug!(pool = %pool.id, claims = mine.len(), ?planned, "volumes");
        total.extend(planned);
    }
    if wanted_text.is_empty() {
        return Ok(None);
    }
    volumes::grow(
        &ctx.client,
        &ctx.events,
        shard,
        &ns,
        &total,
        "shard-controller",
    )
    .await
    .map_err(|(claim, e)| {
        ChildError::kube(shard, format!("growing PersistentVolumeClaim {claim}"), e)
    })?;
    wanted_text.dedup();
    Ok(Some(volumes::condition(&total, &wanted_text.join(", "))))
}

/// A Warning Event when the condition turns to a refusal the user must act on.
pub(super) async fn warn_on_change(shard: &Shard, ctx: &Ctx, condition: &Option<VolumeCondition>) {
    let Some((false, reason, message)) = condition else {
        return;
    };
    if *reason == "Expanding" {
        return;
    }
    let before = shard
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == CONDITION))
        .map(|c| c.reason.as_str());
    if before != Some(*reason) {
        ctx.events.warning(shard, reason, message).await;
    }
}
