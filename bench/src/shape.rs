//! The generated load: N MultigresClusters of one shape, all using one DeploymentTemplate, and
//! what the operator should make of them (counts of Shards and pods, the managed topology servers).

use multigres_api::naming;
use serde_json::{Value, json};

/// The name of the DeploymentTemplate every generated cluster uses.
pub const TEMPLATE: &str = "bench";
/// The shard pools' postgres CPU request before and after the template edit.
pub const CPU_BEFORE: &str = "100m";
pub const CPU_AFTER: &str = "110m";

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Shape {
    pub clusters: u32,
    pub cells: u32,
    pub databases: u32,
    pub tablegroups: u32,
    pub shards: u32,
    /// Replicas of the one replica pool of each shard.
    pub pool_replicas: u32,
    /// Members of each cluster's managed global TopoServer.
    pub topo_replicas: u32,
}

impl Shape {
    pub fn shards_per_cluster(&self) -> u32 {
        self.databases * self.tablegroups * self.shards
    }

    pub fn total_shards(&self) -> u32 {
        self.clusters * self.shards_per_cluster()
    }

    /// Pods: pool pods, per cell a multigateway and a multiorch, one multiadmin, the etcd members.
    pub fn pods_per_cluster(&self) -> u32 {
        self.shards_per_cluster() * self.pool_replicas + self.cells * 2 + 1 + self.topo_replicas
    }

    pub fn total_pods(&self) -> u32 {
        self.clusters * self.pods_per_cluster()
    }

    pub fn cluster_name(&self, i: u32) -> String {
        format!("bench-{i:03}")
    }

    pub fn cluster_names(&self) -> Vec<String> {
        (0..self.clusters).map(|i| self.cluster_name(i)).collect()
    }

    /// The template: small components so that kwok's fake nodes take them all.
    pub fn template(&self, namespace: &str, cpu: &str) -> Value {
        let component = json!({
            "replicas": 1,
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}
        });
        json!({
            "apiVersion": "multigres.com/v1alpha1",
            "kind": "DeploymentTemplate",
            "metadata": {"name": TEMPLATE, "namespace": namespace},
            "spec": {
                "shardPool": {
                    "replicas": self.pool_replicas,
                    "dataVolumeClaimTemplate": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}}
                    },
                    "postgres": {"resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}},
                    "multipooler": {"resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}
                },
                "multiorch": component,
                "multigateway": component,
                "multiadmin": component,
                "managedTopoServer": {
                    "image": "quay.io/coreos/etcd:v3.5.17",
                    "replicas": self.topo_replicas,
                    "dataVolumeClaimTemplate": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}}
                    }
                }
            }
        })
    }

    pub fn cluster(&self, namespace: &str, i: u32) -> Value {
        let cells: Vec<String> = (0..self.cells).map(|c| format!("zone{c}")).collect();
        let cell_configs: Vec<Value> = cells
            .iter()
            .map(|c| {
                json!({"name": c, "spec": {
                    "multigateway": {"deploymentTemplate": TEMPLATE},
                    "multiorch": {"deploymentTemplate": TEMPLATE}
                }})
            })
            .collect();
        let databases: Vec<Value> = (0..self.databases)
            .map(|d| {
                let tablegroups: Vec<Value> = (0..self.tablegroups)
                    .map(|t| {
                        json!({
                            "name": format!("tg{t}"),
                            "partitioning": {"shards": self.shards},
                            "shardTemplate": {"pools": [{
                                "type": "replica",
                                "cell": cells[(t as usize) % cells.len()],
                                "deploymentTemplate": TEMPLATE
                            }]}
                        })
                    })
                    .collect();
                json!({"name": format!("db{d}"), "spec": {"tablegroups": tablegroups}})
            })
            .collect();
        json!({
            "apiVersion": "multigres.com/v1alpha1",
            "kind": "MultigresCluster",
            "metadata": {"name": self.cluster_name(i), "namespace": namespace},
            "spec": {
                "globalTopoServer": {"deploymentTemplate": TEMPLATE},
                "multiadmin": {"deploymentTemplate": TEMPLATE},
                "cells": cell_configs,
                "databases": databases
            }
        })
    }

    /// In-cluster addresses of the managed global TopoServers of the clusters in `namespace`, each
    /// mapped (for the controllers outside the cluster) to one shared etcd on loopback: the clusters'
    /// roots differ, so they can share it. Their multiadmin addresses map to the simulator's
    /// stand-in at `admin`, which tells the clusters apart by the address a request names.
    pub fn address_map(&self, namespace: &str, etcd: &str, admin: &str) -> Vec<String> {
        self.cluster_names()
            .iter()
            .flat_map(|c| {
                [
                    format!(
                        "{}={etcd}",
                        multigres_e2e::stack::topo_address(
                            namespace,
                            &naming::global_topo_server(c)
                        )
                    ),
                    format!("{}={admin}", naming::multiadmin_address(c, namespace)),
                ]
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multigres_api::{DeploymentTemplate, MultigresCluster};

    fn large() -> Shape {
        Shape {
            clusters: 50,
            cells: 1,
            databases: 1,
            tablegroups: 2,
            shards: 10,
            pool_replicas: 3,
            topo_replicas: 1,
        }
    }

    #[test]
    fn the_large_shape_is_a_thousand_shards_and_about_three_thousand_pods() {
        let s = large();
        assert_eq!(s.total_shards(), 1000);
        assert_eq!(s.total_pods(), 50 * (60 + 2 + 1 + 1));
    }

    #[test]
    fn generated_objects_parse_as_the_api_types() {
        let s = Shape {
            cells: 2,
            ..large()
        };
        let c: MultigresCluster = serde_json::from_value(s.cluster("ns", 7)).unwrap();
        assert_eq!(c.metadata.name.as_deref(), Some("bench-007"));
        assert_eq!(c.spec.cells.len(), 2);
        assert_eq!(c.spec.databases[0].spec.tablegroups.len(), 2);
        assert_eq!(
            c.spec.databases[0].spec.tablegroups[1].shard_template.pools[0].cell,
            "zone1"
        );
        let t: DeploymentTemplate = serde_json::from_value(s.template("ns", CPU_BEFORE)).unwrap();
        assert_eq!(t.spec.shard_pool.unwrap().replicas, Some(3));
    }

    #[test]
    fn every_cluster_gets_an_address_mapping() {
        let map = large().address_map("b", "127.0.0.1:1", "127.0.0.1:2");
        assert_eq!(map.len(), 100);
        let topo = map.iter().filter(|m| m.ends_with("=127.0.0.1:1")).count();
        let admin = map
            .iter()
            .filter(|m| m.contains("-multiadmin.b.svc:15990=127.0.0.1:2"))
            .count();
        assert_eq!((topo, admin), (50, 50));
    }
}
