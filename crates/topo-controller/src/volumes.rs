//! Growing the etcd members' claims. A StatefulSet's claim template cannot change, so the one it
//! was created with stays, and a larger `dataVolumeClaimTemplate` is written to the members'
//! claims (`data-<statefulset>-<ordinal>`) directly, where their StorageClass allows expansion
//! (`multigres_runtime::volumes` decides). The claims are read only while the TopoServer asks for
//! another size than the StatefulSet's template holds.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::ResourceExt;
use kube::api::Api;
use multigres_api::{TopoServer, quantity};
use multigres_runtime::error::ChildError;
use multigres_runtime::volumes::{self, StorageClasses};

use crate::Ctx;
use crate::build::DATA_VOLUME;

/// `(status, reason, message)` of the TopoServer's `VolumesResized` condition, or `None` while the
/// size asked for is the one the StatefulSet was created with.
pub type VolumeCondition = Option<(bool, &'static str, String)>;

/// The size the StatefulSet's claim template holds.
pub fn template_size(statefulset: &StatefulSet) -> Option<u128> {
    let template = statefulset
        .spec
        .as_ref()?
        .volume_claim_templates
        .as_ref()?
        .first()?;
    volumes::requested(template.spec.as_ref()).and_then(quantity::bytes)
}

pub async fn grow(
    ts: &TopoServer,
    ctx: &Ctx,
    existing: Option<&StatefulSet>,
) -> Result<VolumeCondition, ChildError> {
    let Some(existing) = existing else {
        return Ok(None);
    };
    let Some(wanted) = volumes::requested(Some(&ts.spec.data_volume_claim_template)) else {
        return Ok(None);
    };
    if quantity::bytes(wanted) == template_size(existing) {
        return Ok(None);
    }
    let ns = ts.namespace().unwrap_or_default();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let mut claims = Vec::new();
    for ordinal in 0..ts.spec.replicas.max(0) {
        let name = format!("{DATA_VOLUME}-{}-{ordinal}", existing.name_any());
        if let Some(claim) = api
            .get_opt(&name)
            .await
            .map_err(|e| ChildError::kube(ts, format!("reading PersistentVolumeClaim {name}"), e))?
        {
            claims.push(claim);
        }
    }
    let refs: Vec<&PersistentVolumeClaim> = claims.iter().collect();
    let mut classes = StorageClasses::default();
    classes.learn(&ctx.client, &refs).await;
    let plan = volumes::plan(Some(wanted), &refs, |class| classes.allows(class));
    volumes::grow(&ctx.client, &ctx.events, ts, &ns, &plan, "topo-controller")
        .await
        .map_err(|(claim, e)| {
            ChildError::kube(ts, format!("growing PersistentVolumeClaim {claim}"), e)
        })?;
    Ok(Some(volumes::condition(&plan, &wanted.0)))
}
