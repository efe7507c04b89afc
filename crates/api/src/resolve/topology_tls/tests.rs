use super::*;
use crate::MultigresCluster;
use crate::resolve::{Templates, resolve_cluster};

/// Two cells, the second with its own managed etcd; `patch` edits the spec first.
fn resolved(patch: impl FnOnce(&mut serde_json::Value)) -> ResolvedCluster {
    let mut spec = serde_json::json!({
        "globalTopoServer": {"managedSpec": {}},
        "cells": [
            {"name": "a", "zone": "z-a"},
            {"name": "b", "zone": "z-b", "spec": {"topoServer": {"managedSpec": {}}}}
        ],
        "databases": [{"name": "postgres", "default": true, "spec": {"tablegroups": [
            {"name": "default", "default": true, "shardTemplate": {"pools": [
                {"type": "replica", "cell": "a", "replicas": 1}
            ]}}
        ]}}]
    });
    patch(&mut spec);
    let cluster: MultigresCluster = serde_json::from_value(serde_json::json!({
        "apiVersion": "multigres.com/v1alpha1", "kind": "MultigresCluster",
        "metadata": {"name": "c", "namespace": "ns"},
        "spec": spec
    }))
    .unwrap();
    resolve_cluster(&cluster, &Templates::default()).unwrap()
}

fn reason(tls: TopologyTls) -> &'static str {
    match tls {
        TopologyTls::On => "On",
        TopologyTls::Off { reason, .. } => reason,
    }
}

#[test]
fn a_new_managed_cluster_gets_tls_when_the_operator_holds_the_ca() {
    let cluster = resolved(|_| {});
    assert_eq!(cluster.topology_tls(true, None), TopologyTls::On);
    assert_eq!(reason(cluster.topology_tls(false, None)), "NoTopologyCA");
}

#[test]
fn an_existing_global_server_keeps_its_transport() {
    let cluster = resolved(|_| {});
    assert_eq!(
        reason(cluster.topology_tls(true, Some(false))),
        "CreatedPlaintext"
    );
    // Losing the CA later must not turn a TLS topology into a plaintext one.
    assert_eq!(cluster.topology_tls(false, Some(true)), TopologyTls::On);
}

#[test]
fn tls_off_or_an_external_server_keeps_the_topology_plaintext() {
    let off = resolved(|s| s["tls"] = serde_json::json!({"enabled": false}));
    assert_eq!(reason(off.topology_tls(true, Some(true))), "TLSDisabled");
    let global = resolved(|s| {
        s["globalTopoServer"] =
            serde_json::json!({"external": {"address": "etcd.example.com:2379"}})
    });
    let TopologyTls::Off { reason, message } = global.topology_tls(true, None) else {
        panic!("an external global topology stays plaintext")
    };
    assert_eq!(reason, "ExternalTopology");
    assert!(message.contains("etcd.example.com:2379"), "{message}");
    let cell = resolved(|s| {
        s["cells"][1]["spec"]["topoServer"] =
            serde_json::json!({"external": {"address": "etcd.example.com:2379"}})
    });
    let TopologyTls::Off { message, .. } = cell.topology_tls(true, None) else {
        panic!("an external cell topology keeps the cluster plaintext")
    };
    assert!(message.contains("cell b"), "{message}");
}

#[test]
fn turning_it_on_reaches_every_child_that_dials_or_serves() {
    let mut cluster = resolved(|_| {});
    cluster.set_topology_tls("c-topology-tls", "c-global-tls");
    let client = Some("c-topology-tls".to_string());
    assert_eq!(cluster.global_topology.tls_secret_name, client);
    assert_eq!(
        cluster.global_topo_server.as_ref().unwrap().spec.tls,
        Some(TopoServerTls {
            secret_name: "c-global-tls".into()
        })
    );
    assert_eq!(cluster.cells.len(), 2);
    assert!(
        cluster
            .cells
            .iter()
            .all(|c| c.spec.global_topo_server.tls_secret_name == client)
    );
    assert!(!cluster.table_groups.is_empty());
    assert!(
        cluster
            .table_groups
            .iter()
            .all(|t| t.spec.global_topo_server.tls_secret_name == client)
    );
}
