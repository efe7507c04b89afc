//! Test support: the children a MultigresCluster would have, as the controllers would create them
//! (names, labels and specs from `multigres_api::resolve`), with settable statuses. Used by this
//! crate's unit and integration tests, which create children directly instead of running the
//! controllers.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStatus};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, ObjectMeta, Time};
use kube::ResourceExt;
use multigres_api::resolve::{self, Templates};
use multigres_api::{
    Cell, CellStatus, MultigresCluster, Shard, ShardStatus, TableGroup, TableGroupStatus,
    TopoServer, TopoServerStatus, Tristate,
};

/// Every child of one cluster.
#[derive(Clone, Debug)]
pub struct Children {
    pub topo_servers: Vec<TopoServer>,
    pub cells: Vec<Cell>,
    pub table_groups: Vec<TableGroup>,
    pub shards: Vec<Shard>,
    pub multiadmin: Deployment,
}

fn meta(cluster: &MultigresCluster, name: &str, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: cluster.namespace(),
        labels: Some(labels),
        generation: Some(1),
        ..Default::default()
    }
}

/// The children of `cluster` (resolved without templates), without statuses.
pub fn children(cluster: &MultigresCluster) -> Children {
    let resolved = resolve::resolve_cluster(cluster, &Templates::new()).expect("cluster resolves");
    let mut topo_servers: Vec<TopoServer> = resolved
        .global_topo_server
        .iter()
        .map(|c| TopoServer {
            metadata: meta(cluster, &c.name, c.labels.clone()),
            spec: c.spec.clone(),
            status: None,
        })
        .collect();
    let cells: Vec<Cell> = resolved
        .cells
        .iter()
        .map(|c| Cell {
            metadata: meta(cluster, &c.name, c.labels.clone()),
            spec: c.spec.clone(),
            status: None,
        })
        .collect();
    for cell in &cells {
        if let Some(local) = resolve::local_topo_server(cell) {
            topo_servers.push(TopoServer {
                metadata: meta(cluster, &local.name, local.labels.clone()),
                spec: local.spec,
                status: None,
            });
        }
    }
    let table_groups: Vec<TableGroup> = resolved
        .table_groups
        .iter()
        .map(|c| TableGroup {
            metadata: meta(cluster, &c.name, c.labels.clone()),
            spec: c.spec.clone(),
            status: None,
        })
        .collect();
    let shards = table_groups
        .iter()
        .flat_map(resolve::shards)
        .map(|c| Shard {
            metadata: meta(cluster, &c.name, c.labels.clone()),
            spec: c.spec,
            status: None,
        })
        .collect();
    let admin = &resolved.multiadmin;
    let multiadmin = Deployment {
        metadata: meta(cluster, &admin.name, admin.labels.clone()),
        spec: Some(DeploymentSpec {
            replicas: Some(admin.spec.replicas),
            selector: LabelSelector {
                match_labels: Some(admin.labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(admin.labels.clone()),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "multiadmin".into(),
                        image: Some(admin.image.clone()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    };
    Children {
        topo_servers,
        cells,
        table_groups,
        shards,
        multiadmin,
    }
}

pub fn available_condition(available: bool) -> Condition {
    Condition {
        type_: "Available".into(),
        status: if available { "True" } else { "False" }.into(),
        reason: "Test".into(),
        message: String::new(),
        last_transition_time: Time(Default::default()),
        observed_generation: Some(1),
    }
}

/// Sets every child's status to "at its generation and fully ready".
pub fn make_ready(children: &mut Children) {
    for ts in &mut children.topo_servers {
        ts.status = Some(TopoServerStatus {
            observed_generation: ts.metadata.generation,
            conditions: vec![available_condition(true)],
            replicas: ts.spec.replicas,
            ready_replicas: ts.spec.replicas,
            ..Default::default()
        });
    }
    for cell in &mut children.cells {
        let replicas = cell.spec.multigateway.replicas;
        cell.status = Some(CellStatus {
            observed_generation: cell.metadata.generation,
            gateway_replicas: replicas,
            gateway_ready_replicas: replicas,
            multiorch_available: Tristate::True,
            ..Default::default()
        });
    }
    for tg in &mut children.table_groups {
        tg.status = Some(TableGroupStatus {
            observed_generation: tg.metadata.generation,
            shards: tg.spec.partitioning.shards,
            ready_shards: tg.spec.partitioning.shards,
            ..Default::default()
        });
    }
    for shard in &mut children.shards {
        let pods: i32 = shard.spec.pools.iter().map(|p| p.replicas).sum();
        shard.status = Some(ShardStatus {
            observed_generation: shard.metadata.generation,
            total_pods: pods,
            ready_pods: pods,
            ..Default::default()
        });
    }
    let replicas = children
        .multiadmin
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    children.multiadmin.status = Some(DeploymentStatus {
        observed_generation: children.multiadmin.metadata.generation,
        replicas: Some(replicas),
        ready_replicas: Some(replicas),
        available_replicas: Some(replicas),
        ..Default::default()
    });
}

/// A cluster with two cells (`a` on the global topology, `b` with its own managed etcd) and one
/// database `orders` with tablegroup `default`: 2 shards x (3 replica in `a` + 1 readOnly in `b`).
pub fn sample_cluster(namespace: &str, name: &str) -> MultigresCluster {
    let mut cluster: MultigresCluster =
        serde_json::from_str(&sample_json(namespace, name)).expect("valid sample cluster");
    cluster.metadata.generation = Some(1);
    cluster
}

fn sample_json(namespace: &str, name: &str) -> String {
    format!(
        r#"{{
  "apiVersion": "multigres.com/v1alpha1",
  "kind": "MultigresCluster",
  "metadata": {{"name": "{name}", "namespace": "{namespace}"}},
  "spec": {{
    "cells": [
      {{"name": "a"}},
      {{"name": "b", "spec": {{"topoServer": {{"managedSpec": {{"replicas": 1}}}}}}}}
    ],
    "databases": [{{
      "name": "orders",
      "spec": {{"tablegroups": [{{
        "name": "default",
        "partitioning": {{"shards": 2}},
        "shardTemplate": {{"pools": [
          {{"type": "replica", "cell": "a", "replicas": 3}},
          {{"type": "readOnly", "cell": "b", "replicas": 1}}
        ]}}
      }}]}}
    }}]
  }}
}}"#
    )
}
