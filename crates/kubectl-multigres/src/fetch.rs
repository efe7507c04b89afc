//! Reading one cluster and its children (by the `multigres.com/cluster` label) from the API server,
//! and its poolers' replication from multiadmin.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::{Client, Resource, ResourceExt};
use multigres_api::MultigresCluster;
use multigres_api::labels::{self, component};
use multigres_api::multigres::MULTIADMIN_HTTP_PORT;
use serde::de::DeserializeOwned;

use crate::replication::{self, Answer, PoolerStatusResponse, ShardReplication};
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

/// Where `status` asks multiadmin about the poolers.
#[derive(Clone, Debug)]
pub enum AdminRoute {
    /// A port-forward to a Ready multiadmin pod of the cluster (its HTTP port).
    PortForward,
    /// A base URL: `http://localhost:15000` behind the user's own port-forward, or any prefix
    /// that serves multiadmin's `/api/v1`.
    Url(String),
}

/// Each Shard's replication (by Shard name), from multiadmin's `GetPoolerStatus` for every pool
/// pod. Fails only when multiadmin cannot be reached at all; a pooler that does not answer is
/// reported on its Shard.
pub async fn replication(
    client: &Client,
    objects: &Objects,
    route: &AdminRoute,
    max_lag_bytes: u64,
) -> Result<BTreeMap<String, ShardReplication>> {
    let namespace = objects.cluster.namespace().unwrap_or_default();
    let base = match route {
        AdminRoute::Url(url) => url.trim_end_matches('/').to_string(),
        AdminRoute::PortForward => {
            let pod = multiadmin_pod(client, &namespace, &objects.cluster.name_any()).await?;
            let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
            let port = crate::forward::open(pods, pod, MULTIADMIN_HTTP_PORT as u16).await?;
            format!("http://127.0.0.1:{port}")
        }
    };
    let uri: http::Uri = base
        .parse()
        .with_context(|| format!("multiadmin URL {base:?}"))?;
    let admin =
        Client::try_from(kube::Config::new(uri)).context("an HTTP client for multiadmin")?;
    // One question first: a multiadmin that cannot be reached at all fails fast, not once per pod.
    let mut pods = objects.pods.iter();
    let mut answers = Vec::new();
    if let Some(first) = pods.next() {
        let answer = pooler_status(&admin, first)
            .await
            .map_err(|e| anyhow::anyhow!("multiadmin at {base}: {e}"))?;
        answers.push(answered(first, answer));
    }
    let asks = pods.map(|pod| {
        let admin = admin.clone();
        async move {
            let answer = pooler_status(&admin, pod).await;
            answered(pod, answer.unwrap_or_else(|e| Err(e.to_string())))
        }
    });
    answers.extend(
        futures::stream::iter(asks)
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await,
    );
    let mut by_shard: BTreeMap<String, BTreeMap<String, Answer>> = BTreeMap::new();
    for (shard, pod, answer) in answers {
        by_shard
            .entry(shard.unwrap_or_default())
            .or_default()
            .insert(pod, answer);
    }
    Ok(by_shard
        .into_iter()
        .map(|(shard, answers)| (shard, replication::assess(&answers, max_lag_bytes)))
        .collect())
}

fn answered(pod: &Pod, answer: Answer) -> (Option<String>, String, Answer) {
    (
        pod.labels().get(labels::OWNER).cloned(),
        pod.name_any(),
        answer,
    )
}

/// `GET /api/v1/poolers/{cell}/{name}/status` for one pool pod (its pooler registers as
/// `<cell>/<service id>`): the pooler's answer or multiadmin's error for it, or, outside, an
/// error reaching multiadmin at all.
async fn pooler_status(admin: &Client, pod: &Pod) -> Result<Answer, kube::Error> {
    let cell = pod.labels().get(labels::CELL).cloned().unwrap_or_default();
    let id = multigres_api::multigres::pooler_service_id(&pod.name_any());
    let request = http::Request::get(format!("/api/v1/poolers/{cell}/{id}/status"))
        .body(Vec::new())
        .map_err(kube::Error::HttpError)?;
    let Ok(text) = tokio::time::timeout(ASK_TIMEOUT, admin.request_text(request)).await else {
        return Ok(Err(format!("no answer in {}s", ASK_TIMEOUT.as_secs())));
    };
    match text {
        Ok(text) => Ok(serde_json::from_str::<PoolerStatusResponse>(&text)
            .map(|r| r.status)
            .map_err(|e| format!("unreadable answer: {e}"))),
        Err(kube::Error::Api(status)) => Ok(Err(format!("{} {}", status.code, status.message))),
        Err(other) => Err(other),
    }
}

const ASK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

async fn multiadmin_pod(client: &Client, namespace: &str, cluster: &str) -> Result<String> {
    let selector = format!(
        "{}={cluster},{}={}",
        labels::CLUSTER,
        labels::COMPONENT,
        component::MULTIADMIN
    );
    let pods: Vec<Pod> = list(client, namespace, &selector).await?;
    pods.iter()
        .find(|p| multigres_runtime::pods::is_ready(p))
        .map(|p| p.name_any())
        .with_context(|| format!("no Ready multiadmin pod of {namespace}/{cluster}"))
}
