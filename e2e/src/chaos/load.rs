//! The load of a chaos run: N small clusters sharing one DeploymentTemplate, the edits made to
//! them, and the wait for every Shard of a namespace to settle.

use std::time::Duration;

use anyhow::{Result, bail};
use futures::StreamExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector;
use kube::runtime::watcher;
use kube::{Api, Client};
use multigres_api::{MultigresCluster, Shard};
use serde_json::{Value, json};

/// The DeploymentTemplate every chaos cluster uses.
pub const TEMPLATE: &str = "chaos";
/// Shards per cluster (one table group, so that they share a roll slot).
pub const SHARDS: u32 = 2;
/// Pods of each Shard's replica pool: a primary and a standby.
pub const POOL_REPLICAS: u32 = 2;

pub fn cluster_name(i: u32) -> String {
    format!("chaos-{i:02}")
}

/// The template; `cpu` is the shard pools' postgres request, which the edits change (a roll).
pub fn template(namespace: &str, cpu: &str) -> Value {
    let small = json!({"replicas": 1, "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}});
    let claim =
        json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}});
    json!({
        "apiVersion": "multigres.com/v1alpha1",
        "kind": "DeploymentTemplate",
        "metadata": {"name": TEMPLATE, "namespace": namespace},
        "spec": {
            "shardPool": {
                "replicas": POOL_REPLICAS,
                "dataVolumeClaimTemplate": claim,
                "postgres": {"resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}},
                "multipooler": {"resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}
            },
            "multiorch": small,
            "multigateway": small,
            "multiadmin": small,
            "managedTopoServer": {
                "image": "quay.io/coreos/etcd:v3.5.17",
                "replicas": 1,
                "dataVolumeClaimTemplate": claim
            }
        }
    })
}

/// A cluster: one cell, the `postgres` database's `default` table group in [`SHARDS`] shards.
/// `gateways` is the cell's multigateway count, which the edits change; `etcd` overrides the
/// global TopoServer's members (a value its TopoServer refuses once it exists: the bad spec).
pub fn cluster(namespace: &str, name: &str, gateways: u32, etcd: Option<u32>) -> Value {
    let mut global = json!({"deploymentTemplate": TEMPLATE});
    if let Some(members) = etcd {
        global["overrides"] = json!({"replicas": members});
    }
    json!({
        "apiVersion": "multigres.com/v1alpha1",
        "kind": "MultigresCluster",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "globalTopoServer": global,
            "multiadmin": {"deploymentTemplate": TEMPLATE},
            "cells": [{"name": "zone0", "spec": {
                "multigateway": {"deploymentTemplate": TEMPLATE, "overrides": {"replicas": gateways}},
                "multiorch": {"deploymentTemplate": TEMPLATE}
            }}],
            "databases": [{"name": "postgres", "spec": {"tablegroups": [{
                "name": "default",
                "partitioning": {"shards": SHARDS},
                "shardTemplate": {"pools": [{
                    "type": "replica", "cell": "zone0", "deploymentTemplate": TEMPLATE
                }]}
            }]}}]
        }
    })
}

/// Server-side applies `object` (a MultigresCluster or DeploymentTemplate) as the user would.
pub async fn apply(client: &Client, object: &Value) -> Result<()> {
    let kind = object["kind"].as_str().unwrap_or_default();
    let ns = object["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let plural = match kind {
        "MultigresCluster" => "multigresclusters",
        "DeploymentTemplate" => "deploymenttemplates",
        other => bail!("cannot apply a {other}"),
    };
    let resource = kube::discovery::ApiResource {
        group: "multigres.com".into(),
        version: "v1alpha1".into(),
        api_version: "multigres.com/v1alpha1".into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    api.patch(
        name,
        &PatchParams::apply("chaos-user").force(),
        &Patch::Apply(object),
    )
    .await?;
    Ok(())
}

/// A Shard that has settled: its generation observed, not progressing, all pods Ready and
/// current, and a primary.
pub fn settled(shard: &Shard) -> bool {
    let Some(status) = &shard.status else {
        return false;
    };
    let condition = |t: &str, s: &str| has(&status.conditions, t, s);
    status.observed_generation == shard.metadata.generation
        && condition("Progressing", "False")
        && condition("Available", "True")
        && status.primary_cell.is_some()
        && status.ready_pods == POOL_REPLICAS as i32
        && status.total_pods == POOL_REPLICAS as i32
}

fn has(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
    status: &str,
) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == status)
}

/// A MultigresCluster that has settled: its generation observed, Available, not Progressing, not
/// Degraded.
pub fn cluster_settled(cluster: &MultigresCluster) -> bool {
    let Some(status) = &cluster.status else {
        return false;
    };
    let condition = |t: &str, s: &str| has(&status.conditions, t, s);
    status.observed_generation == cluster.metadata.generation
        && condition("Available", "True")
        && condition("Progressing", "False")
        && condition("Degraded", "False")
}

/// Waits until every Shard and every MultigresCluster of the namespace has settled.
pub async fn wait_settled(
    client: &Client,
    namespace: &str,
    shards: usize,
    clusters: usize,
    timeout: Duration,
) -> Result<()> {
    let started = std::time::Instant::now();
    wait_all::<Shard>(client, namespace, shards, timeout, settled).await?;
    let left = timeout.saturating_sub(started.elapsed());
    wait_all::<MultigresCluster>(client, namespace, clusters, left, cluster_settled).await
}

/// Waits, on a watch, until the namespace holds `count` objects of `K` and `done` holds for each.
async fn wait_all<K>(
    client: &Client,
    namespace: &str,
    count: usize,
    timeout: Duration,
    done: fn(&K) -> bool,
) -> Result<()>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let settled = done;
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let (store, writer) = reflector::store();
    // Every event, InitDone included: the store is swapped in whole only when the list is done.
    let stream = reflector::reflector(
        writer,
        watcher::watcher(api, watcher::Config::default()).default_backoff(),
    );
    let mut stream = std::pin::pin!(stream);
    let check = || {
        let shards = store.state();
        shards.len() == count && shards.iter().all(|s| settled(s))
    };
    // Checked after every event the reflector applied (the store is complete from the first).
    let done = async {
        while stream.next().await.is_some() {
            if check() {
                return;
            }
        }
    };
    if tokio::time::timeout(timeout, done).await.is_err() {
        let unsettled: Vec<String> = store
            .state()
            .iter()
            .filter(|s| !settled(s))
            .map(|s| format!("{s:?}"))
            .collect();
        bail!(
            "{namespace}: {} of {count} {}, not settled after {timeout:?}: {unsettled:#?}",
            store.state().len(),
            K::kind(&())
        );
    }
    Ok(())
}
