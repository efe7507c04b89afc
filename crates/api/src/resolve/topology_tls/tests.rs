use super::*;
use crate::MultigresCluster;
use crate::resolve::{Templates, certificate_renewal, resolve_cluster};

/// Two cells, the second with its own managed etcd; `patch` edits the spec first.
fn resolve(patch: impl FnOnce(&mut serde_json::Value)) -> Result<ResolvedCluster, ResolveError> {
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
    resolve_cluster(&cluster, &Templates::default())
}

fn resolved(patch: impl FnOnce(&mut serde_json::Value)) -> ResolvedCluster {
    resolve(patch).unwrap()
}

fn reason(tls: TopologyTls) -> &'static str {
    match tls {
        TopologyTls::Managed => "Managed",
        TopologyTls::External { .. } => "External",
        TopologyTls::Off { reason, .. } => reason,
    }
}

fn external(secret: Option<&str>) -> serde_json::Value {
    let mut server = serde_json::json!({"address": "etcd.example.com:2379"});
    if let Some(secret) = secret {
        server["tls"] = serde_json::json!({"secretName": secret});
    }
    serde_json::json!({"external": server})
}

#[test]
fn a_new_managed_cluster_gets_tls_when_the_operator_holds_the_ca() {
    let cluster = resolved(|_| {});
    assert_eq!(cluster.topology_tls(true, None), TopologyTls::Managed);
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
    assert_eq!(
        cluster.topology_tls(false, Some(true)),
        TopologyTls::Managed
    );
    // Nor does turning spec.tls off: every pod and etcd member would be cut off at once.
    let off = resolved(|s| s["tls"] = serde_json::json!({"enabled": false}));
    assert_eq!(off.topology_tls(true, Some(true)), TopologyTls::Managed);
}

#[test]
fn tls_off_or_an_external_server_without_tls_keeps_the_topology_plaintext() {
    let off = resolved(|s| s["tls"] = serde_json::json!({"enabled": false}));
    assert_eq!(reason(off.topology_tls(true, None)), "TLSDisabled");
    let global = resolved(|s| s["globalTopoServer"] = external(None));
    let TopologyTls::Off { reason, message } = global.topology_tls(true, None) else {
        panic!("an external global topology without TLS stays plaintext")
    };
    assert_eq!(reason, "ExternalTopology");
    assert!(message.contains("etcd.example.com:2379"), "{message}");
    let cell = resolved(|s| s["cells"][1]["spec"]["topoServer"] = external(None));
    let TopologyTls::Off { message, .. } = cell.topology_tls(true, None) else {
        panic!("an external cell topology keeps the cluster plaintext")
    };
    assert!(message.contains("cell b"), "{message}");
}

#[test]
fn external_etcds_with_one_secret_are_dialed_with_it_whatever_spec_tls_says() {
    let mut cluster = resolved(|s| {
        s["tls"] = serde_json::json!({"enabled": false});
        s["globalTopoServer"] = external(Some("etcd-client"));
        s["cells"][1]["spec"]["topoServer"] = external(Some("etcd-client"));
    });
    let decision = cluster.resolve_topology_tls("c", false, None, certificate_renewal(None, 0, 60));
    assert_eq!(
        decision,
        TopologyTls::External {
            secret_name: "etcd-client".into()
        }
    );
    let client = Some("etcd-client".to_string());
    assert_eq!(cluster.global_topology.tls_secret_name, client);
    assert!(cluster.global_topo_server.is_none());
    assert!(
        cluster
            .cells
            .iter()
            .all(|c| c.spec.global_topo_server.tls_secret_name == client)
    );
    // The cell's own external server keeps the Secret in its spec, for the cell's record.
    let cell_tls = cluster.cells[1].spec.topo_server.external.as_ref().unwrap();
    assert_eq!(cell_tls.tls.as_ref().unwrap().secret_name, "etcd-client");
}

#[test]
fn external_tls_that_one_certificate_per_process_cannot_serve_is_refused_naming_the_field() {
    let invalid = |patch: fn(&mut serde_json::Value)| match resolve(patch) {
        Err(ResolveError::Invalid { field, message }) => (field, message),
        other => panic!("expected a refusal, got {other:?}"),
    };
    // Beside a managed cell server.
    let (field, message) = invalid(|s| s["globalTopoServer"] = external(Some("etcd-client")));
    assert_eq!(field, "spec.cells[1].spec.topoServer");
    assert!(
        message.contains("spec.globalTopoServer.external.tls"),
        "{message}"
    );
    // Beside a managed global server.
    let (field, _) = invalid(|s| s["cells"][1]["spec"]["topoServer"] = external(Some("x")));
    assert_eq!(field, "spec.globalTopoServer");
    // Another Secret, or none, on a second external server.
    let (field, message) = invalid(|s| {
        s["globalTopoServer"] = external(Some("etcd-client"));
        s["cells"][1]["spec"]["topoServer"] = external(Some("other"));
    });
    assert_eq!(
        field,
        "spec.cells[1].spec.topoServer.external.tls.secretName"
    );
    assert!(message.contains("\"etcd-client\""), "{message}");
    let (field, _) = invalid(|s| {
        s["globalTopoServer"] = external(Some("etcd-client"));
        s["cells"][1]["spec"]["topoServer"] = external(None);
    });
    assert_eq!(
        field,
        "spec.cells[1].spec.topoServer.external.tls.secretName"
    );
}

#[test]
fn turning_it_on_reaches_every_child_that_dials_or_serves() {
    let mut cluster = resolved(|_| {});
    cluster.set_topology_tls("c-topology-tls", Some("c-global-tls"));
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

#[test]
fn managed_certificates_are_named_for_their_expiry_down_to_the_cells_etcds() {
    let mut cluster = resolved(|_| {});
    let certificates = CertificateRenewal {
        not_after: Some(1_796_000_000),
        renew_at: 1_790_000_000,
    };
    cluster.resolve_topology_tls("c", true, None, certificates);
    assert_eq!(cluster.topology_renew_at, Some(1_790_000_000));
    let client = cluster.global_topology.tls_secret_name.clone().unwrap();
    assert_eq!(client, "c-topology-tls-1796000000");
    let global = cluster.global_topo_server.as_ref().unwrap();
    let member = &global.spec.tls.as_ref().unwrap().secret_name;
    assert_eq!(member, "c-global-tls-1796000000");
    for cell in &cluster.cells {
        assert_eq!(
            cell.spec.global_topo_server.tls_secret_name,
            Some(client.clone())
        );
    }

    let mut unnamed = resolved(|_| {});
    let unnamed_certificates = CertificateRenewal {
        not_after: None,
        ..certificates
    };
    unnamed.resolve_topology_tls("c", true, Some(true), unnamed_certificates);
    assert_eq!(
        unnamed.global_topology.tls_secret_name.as_deref(),
        Some("c-topology-tls"),
        "certificates from before renewal keep their names"
    );
}
