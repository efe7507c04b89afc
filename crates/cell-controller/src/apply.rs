//! Applies a Cell's children against the controller's caches (Service, local TopoServer, then the
//! Deployments), removes a local TopoServer it no longer asks for, and writes its status when it
//! changed.

use std::collections::BTreeSet;
use std::fmt::Debug;

use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use multigres_api::{Cell, CellStatus, TopoServer};
use multigres_runtime::apply::controlled_by_other;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::build::Children;
use crate::error::Error;
use crate::{Ctx, object_name};

async fn apply_one<K>(ctx: &Ctx, cell: &Cell, store: &Store<K>, desired: &K) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
    K: Resource<Scope = kube::core::NamespaceResourceScope>,
{
    let key = ObjectRef::new(&desired.name_any()).within(&cell.namespace().unwrap_or_default());
    let existing = store.get(&key);
    if let Some(existing) = &existing
        && controlled_by_other(existing.as_ref(), cell)
    {
        return Err(Error::NameConflict {
            object: object_name(cell),
            kind: K::kind(&()).into_owned(),
            name: desired.name_any(),
        });
    }
    ctx.applier
        .apply_reported(&ctx.events, cell, existing.as_deref(), desired)
        .await
        .map(|_| ())
        .map_err(|source| Error::Apply {
            object: object_name(cell),
            kind: K::kind(&()).into_owned(),
            name: desired.name_any(),
            source: Box::new(source),
        })
}

pub async fn children(ctx: &Ctx, cell: &Cell, children: &Children) -> Result<(), Error> {
    let stores = &ctx.state;
    apply_one(ctx, cell, &stores.services, &children.gateway_service).await?;
    let mut keep = BTreeSet::new();
    if let Some(ts) = &children.local_topo_server {
        apply_one(ctx, cell, &stores.topo_servers, ts).await?;
        keep.insert(ts.name_any());
    }
    // A cell that stopped asking for a managed TopoServer: delete it (its PVCs stay).
    let namespace = cell.namespace();
    let cached = stores.topo_servers.state();
    let same_namespace: Vec<&TopoServer> = cached
        .iter()
        .filter(|t| t.metadata.namespace == namespace)
        .map(|t| t.as_ref())
        .collect();
    ctx.applier
        .prune(&ctx.events, cell, same_namespace, &keep)
        .await
        .map_err(|source| Error::Apply {
            object: object_name(cell),
            kind: "TopoServer".into(),
            name: "(prune)".into(),
            source: Box::new(source),
        })?;
    apply_one(ctx, cell, &stores.deployments, &children.gateway).await?;
    apply_one(ctx, cell, &stores.deployments, &children.multiorch).await
}

/// Writes `status` by server-side apply, only when it differs from what the object already shows.
pub async fn status(ctx: &Ctx, cell: &Cell, status: CellStatus) -> Result<(), Error> {
    if cell.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let api: Api<Cell> = Api::namespaced(ctx.client.clone(), &cell.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": Cell::api_version(&()),
        "kind": Cell::kind(&()),
        "status": status,
    });
    api.patch_status(
        &cell.name_any(),
        &PatchParams::apply(ctx.applier.manager()).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(|_| ())
    .map_err(|source| Error::Status {
        object: object_name(cell),
        source: Box::new(source),
    })
}
