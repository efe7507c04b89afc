//! Reading one cluster and its children (by the `multigres.com/cluster` label) from the API server.

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::{Client, Resource};
use multigres_api::MultigresCluster;
use multigres_api::labels::{self, component};
use serde::de::DeserializeOwned;

use crate::tree::Objects;

async fn list<K>(client: &Client, namespace: &str, selector: &str) -> Result<Vec<K>>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let mut items = api
        .list(&ListParams::default().labels(selector))
        .await
        .with_context(|| format!("listing {} in {namespace}", K::plural(&())))?
        .items;
    items.sort_by_key(|o| o.meta().name.clone());
    Ok(items)
}

pub async fn cluster(client: &Client, namespace: &str, name: &str) -> Result<Objects> {
    let clusters: Api<MultigresCluster> = Api::namespaced(client.clone(), namespace);
    let cluster = clusters
        .get(name)
        .await
        .with_context(|| format!("MultigresCluster {namespace}/{name}"))?;
    let of_cluster = format!("{}={name}", labels::CLUSTER);
    let pods = format!(
        "{of_cluster},{}={}",
        labels::COMPONENT,
        component::SHARD_POOL
    );
    Ok(Objects {
        cluster,
        topo_servers: list(client, namespace, &of_cluster).await?,
        cells: list(client, namespace, &of_cluster).await?,
        table_groups: list(client, namespace, &of_cluster).await?,
        shards: list(client, namespace, &of_cluster).await?,
        pods: list::<Pod>(client, namespace, &pods).await?,
    })
}
