//! Applies a TopoServer's children (Services, then the PDB, then the StatefulSet) against the
//! controller's caches, and writes its status when it changed.

use std::fmt::Debug;

use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use multigres_api::{TopoServer, TopoServerStatus};
use multigres_runtime::apply::controlled_by_other;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::build::Children;
use crate::error::Error;
use crate::{Ctx, object_name};

async fn apply_one<K>(
    ctx: &Ctx,
    ts: &TopoServer,
    store: &Store<K>,
    desired: &K,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
    K: Resource<Scope = kube::core::NamespaceResourceScope>,
{
    let key = ObjectRef::new(&desired.name_any()).within(&ts.namespace().unwrap_or_default());
    let existing = store.get(&key);
    if let Some(existing) = &existing
        && controlled_by_other(existing.as_ref(), ts)
    {
        return Err(Error::NameConflict {
            object: object_name(ts),
            kind: K::kind(&()).into_owned(),
            name: desired.name_any(),
        });
    }
    ctx.applier
        .apply_reported(&ctx.events, ts, existing.as_deref(), desired)
        .await
        .map(|_| ())
        .map_err(|source| Error::Apply {
            object: object_name(ts),
            kind: K::kind(&()).into_owned(),
            name: desired.name_any(),
            source: Box::new(source),
        })
}

/// Services first (members need their DNS names), then the PDB, then the workload.
pub async fn children(ctx: &Ctx, ts: &TopoServer, children: &Children) -> Result<(), Error> {
    let stores = &ctx.state;
    apply_one(ctx, ts, &stores.services, &children.client_service).await?;
    apply_one(ctx, ts, &stores.services, &children.peer_service).await?;
    apply_one(ctx, ts, &stores.pdbs, &children.pdb).await?;
    apply_one(ctx, ts, &stores.statefulsets, &children.statefulset).await
}

/// Writes `status` by server-side apply, only when it differs from what the object already shows.
pub async fn status(ctx: &Ctx, ts: &TopoServer, status: TopoServerStatus) -> Result<(), Error> {
    if ts.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let api: Api<TopoServer> =
        Api::namespaced(ctx.client.clone(), &ts.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": TopoServer::api_version(&()),
        "kind": TopoServer::kind(&()),
        "status": status,
    });
    api.patch_status(
        &ts.name_any(),
        &PatchParams::apply(ctx.applier.manager()).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(|_| ())
    .map_err(|source| Error::Status {
        object: object_name(ts),
        source: Box::new(source),
    })
}
