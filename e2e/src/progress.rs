//! What the demo prints while a cluster converges, and the test for "converged".

use std::path::Path;

use anyhow::Result;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::ListParams;
use kube::{Api, Client};
use multigres_api::{Cell, MultigresCluster, Shard, TableGroup, TopoServer};

use crate::charts;

/// The condition a converged cluster has.
pub const AVAILABLE: &str = "Available";

pub fn condition<'a>(cluster: &'a MultigresCluster, type_: &str) -> Option<&'a str> {
    cluster
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

pub fn is_available(cluster: &MultigresCluster) -> bool {
    condition(cluster, AVAILABLE) == Some("True")
}

/// One line: children per kind, ready workloads and pods, bound claims, the cluster's conditions.
pub async fn summary(client: &Client, namespace: &str, cluster: &str) -> Result<String> {
    let lp = ListParams::default();
    let count = |n: usize| n.to_string();
    let topo = Api::<TopoServer>::namespaced(client.clone(), namespace)
        .list(&lp)
        .await?;
    let cells = Api::<Cell>::namespaced(client.clone(), namespace)
        .list(&lp)
        .await?;
    let tgs = Api::<TableGroup>::namespaced(client.clone(), namespace)
        .list(&lp)
        .await?;
    let shards = Api::<Shard>::namespaced(client.clone(), namespace)
        .list(&lp)
        .await?;
    let deps = Api::<Deployment>::namespaced(client.clone(), namespace)
        .list(&lp)
        .await?;
    let sts = Api::<StatefulSet>::namespaced(client.clone(), namespace)
        .list(&lp)
        .await?;
    let pods = Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&lp)
        .await?;
    let pvcs = Api::<PersistentVolumeClaim>::namespaced(client.clone(), namespace)
        .list(&lp)
        .await?;
    let ready_deps = deps
        .items
        .iter()
        .filter(|d| {
            let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            d.status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0)
                >= want
        })
        .count();
    let ready_sts = sts
        .items
        .iter()
        .filter(|d| {
            let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            d.status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0)
                >= want
        })
        .count();
    let ready_pods = pods
        .items
        .iter()
        .filter(|p| multigres_runtime::pods::is_ready(p))
        .count();
    let bound = pvcs
        .items
        .iter()
        .filter(|c| c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"))
        .count();
    let conditions = match Api::<MultigresCluster>::namespaced(client.clone(), namespace)
        .get_opt(cluster)
        .await?
        .and_then(|c| c.status)
    {
        Some(status) if !status.conditions.is_empty() => status
            .conditions
            .iter()
            .map(|c| format!("{}={}", c.type_, c.status))
            .collect::<Vec<_>>()
            .join(" "),
        _ => "no status yet".into(),
    };
    Ok(format!(
        "topo {} cells {} tablegroups {} shards {} | deploy {}/{} sts {}/{} pods {}/{} pvc {}/{} | {}",
        count(topo.items.len()),
        count(cells.items.len()),
        count(tgs.items.len()),
        count(shards.items.len()),
        ready_deps,
        deps.items.len(),
        ready_sts,
        sts.items.len(),
        ready_pods,
        pods.items.len(),
        bound,
        pvcs.items.len(),
        conditions
    ))
}

/// `kubectl get` of every kind in the namespace, then the cluster's status as YAML.
pub fn tree(kubectl: &Path, kubeconfig: &Path, namespace: &str, cluster: &str) -> Result<String> {
    let kinds = "mgc,mgcell,mgtopo,mgtg,mgshard,deploy,sts,pods,pvc";
    let mut out = charts::run(
        kubectl,
        &["get", kinds, "-n", namespace, "-o", "wide"],
        Some(kubeconfig),
    )?;
    out.push('\n');
    out.push_str(
        &charts::run(
            kubectl,
            &[
                "get",
                "multigrescluster",
                cluster,
                "-n",
                namespace,
                "-o",
                "jsonpath={.status}",
            ],
            Some(kubeconfig),
        )
        .map(|json| status_yaml(&json))?,
    );
    Ok(out)
}

fn status_yaml(json: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(v) => format!(
            "status:\n{}",
            indent(&serde_yaml::to_string(&v).unwrap_or_default())
        ),
        Err(_) => format!("status: {json}\n"),
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}
