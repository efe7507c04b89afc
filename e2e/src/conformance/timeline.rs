//! When the API server saw each generated object, relative to the MultigresCluster: where the
//! time from apply to running pods goes (creation timestamps have one-second resolution).

use anyhow::Result;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::ListParams;
use kube::{Api, Client, Resource};
use multigres_api::{Cell, MultigresCluster, Shard, TableGroup, TopoServer};
use serde::de::DeserializeOwned;

/// Seconds since the epoch of the newest object of kind `K` in `ns`, and how many there are.
async fn newest<K>(admin: &Client, ns: &str) -> Result<(usize, Option<i64>)>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let list = Api::<K>::namespaced(admin.clone(), ns)
        .list(&ListParams::default())
        .await?;
    let newest = list
        .iter()
        .filter_map(|o| {
            o.meta()
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_second())
        })
        .max();
    Ok((list.items.len(), newest))
}

/// One line: `kind xN +Ss` for each kind, the offset of its newest object.
pub async fn line(admin: &Client, ns: &str) -> Result<String> {
    let (_, Some(start)) = newest::<MultigresCluster>(admin, ns).await? else {
        return Ok("no MultigresCluster".into());
    };
    let kinds = [
        ("TopoServer", newest::<TopoServer>(admin, ns).await?),
        ("Cell", newest::<Cell>(admin, ns).await?),
        ("TableGroup", newest::<TableGroup>(admin, ns).await?),
        ("Shard", newest::<Shard>(admin, ns).await?),
        ("Secret", newest::<Secret>(admin, ns).await?),
        ("Deployment", newest::<Deployment>(admin, ns).await?),
        ("Pod", newest::<Pod>(admin, ns).await?),
    ];
    Ok(kinds
        .iter()
        .map(|(kind, (n, t))| match t {
            Some(t) => format!("{kind} x{n} +{}s", t - start),
            None => format!("{kind} x0"),
        })
        .collect::<Vec<_>>()
        .join(", "))
}
