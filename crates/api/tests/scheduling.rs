//! Scheduling knobs and logging travel from templates, inline fields, overrides and `spec.logging`
//! to the children: maps merge by key, lists replace, the component's own setting wins, and what is
//! unset leaves the children's specs as they were.

use multigres_api::resolve::{Templates, local_topo_server, resolve_cluster};
use multigres_api::{Cell, DeploymentTemplateSpec, LogFormat, LogLevel, MultigresCluster};
use serde_json::{Value, json};

fn cluster(spec: Value) -> MultigresCluster {
    serde_json::from_value(json!({
        "apiVersion": "multigres.com/v1alpha1",
        "kind": "MultigresCluster",
        "metadata": {"name": "prod", "namespace": "ns"},
        "spec": spec,
    }))
    .expect("a MultigresCluster")
}

fn base() -> Value {
    json!({
        "cells": [{"name": "a", "spec": {"placement": {"zone": "z1"}}}],
        "databases": [{"name": "app", "spec": {"tablegroups": [{
            "name": "default",
            "shardTemplate": {"pools": [{"type": "replica", "cell": "a"}]}
        }]}}]
    })
}

fn template(value: Value) -> Templates {
    let spec: DeploymentTemplateSpec = serde_json::from_value(value).expect("a template");
    Templates::from([("t".to_string(), spec)])
}

fn toleration(key: &str) -> Value {
    json!({"key": key, "operator": "Exists"})
}

#[test]
fn maps_merge_by_key_and_lists_replace_across_template_and_overrides() {
    let templates = template(json!({
        "multigateway": {
            "podLabels": {"team": "db", "tier": "template"},
            "tolerations": [toleration("from-template")],
            "nodeSelector": {"disk": "ssd"},
            "priorityClassName": "high"
        },
        "shardPool": {
            "podAnnotations": {"backup": "daily"},
            "topologySpreadConstraints": [{"topologyKey": "rack", "maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}]
        }
    }));
    let mut spec = base();
    spec["cells"][0]["spec"]["multigateway"] = json!({
        "deploymentTemplate": "t",
        "overrides": {"podLabels": {"tier": "override"}, "tolerations": [toleration("from-override")]}
    });
    spec["databases"][0]["spec"]["tablegroups"][0]["shardTemplate"]["pools"][0] = json!({
        "type": "replica", "cell": "a", "deploymentTemplate": "t",
        "overrides": {"podAnnotations": {"owner": "me"}}
    });
    let resolved = resolve_cluster(&cluster(spec), &templates).expect("resolves");

    let gateway = &resolved.cells[0].spec.multigateway.scheduling;
    let labels = gateway.pod_labels.clone().unwrap();
    assert_eq!(labels["team"], "db");
    assert_eq!(labels["tier"], "override");
    let tolerations = gateway.tolerations.clone().unwrap();
    assert_eq!(tolerations.len(), 1, "a list replaces: {tolerations:?}");
    assert_eq!(tolerations[0].key.as_deref(), Some("from-override"));
    assert_eq!(gateway.node_selector.clone().unwrap()["disk"], "ssd");
    assert_eq!(gateway.priority_class_name.as_deref(), Some("high"));

    let pool = &resolved.table_groups[0].spec.shard_template.pools[0].scheduling;
    let annotations = pool.pod_annotations.clone().unwrap();
    assert_eq!(
        (
            annotations["backup"].as_str(),
            annotations["owner"].as_str()
        ),
        ("daily", "me")
    );
    let spread = pool.topology_spread_constraints.clone().unwrap();
    assert_eq!(spread[0].topology_key, "rack");
}

#[test]
fn cluster_logging_is_the_default_and_components_win() {
    let templates = template(json!({"multiorch": {"logFormat": "json"}}));
    let mut spec = base();
    spec["logging"] = json!({"logLevel": "warn", "logFormat": "text"});
    spec["cells"][0]["spec"]["multigateway"] = json!({"logLevel": "debug"});
    spec["cells"][0]["spec"]["multiorch"] = json!({"deploymentTemplate": "t"});
    spec["databases"][0]["spec"]["tablegroups"][0]["shardTemplate"]["pools"][0]["multipooler"] =
        json!({"logLevel": "error"});
    let resolved = resolve_cluster(&cluster(spec), &templates).expect("resolves");

    let cell = &resolved.cells[0].spec;
    assert_eq!(cell.multigateway.logging.log_level, Some(LogLevel::Debug));
    assert_eq!(cell.multigateway.logging.log_format, Some(LogFormat::Text));
    assert_eq!(cell.multiorch.logging.log_level, Some(LogLevel::Warn));
    assert_eq!(
        cell.multiorch.logging.log_format,
        Some(LogFormat::Json),
        "the template wins over the cluster's default"
    );
    assert_eq!(
        resolved.multiadmin.spec.logging.log_level,
        Some(LogLevel::Warn)
    );
    let pool = &resolved.table_groups[0].spec.shard_template.pools[0];
    assert_eq!(pool.multipooler.logging.log_level, Some(LogLevel::Error));
    assert_eq!(pool.multipooler.logging.log_format, Some(LogFormat::Text));
    assert_eq!(pool.postgres.logging.log_level, Some(LogLevel::Warn));
    assert!(
        pool.postgres.resources.is_some(),
        "the default resources stay: logging sets no resources"
    );
}

#[test]
fn unset_knobs_leave_the_children_specs_as_they_were() {
    let resolved = resolve_cluster(&cluster(base()), &Templates::new()).expect("resolves");
    let cell = serde_json::to_value(&resolved.cells[0].spec).unwrap();
    let pool =
        serde_json::to_value(&resolved.table_groups[0].spec.shard_template.pools[0]).unwrap();
    let topo = serde_json::to_value(&resolved.global_topo_server.unwrap().spec).unwrap();
    let text = [cell, pool, topo]
        .iter()
        .map(Value::to_string)
        .collect::<String>();
    for key in [
        "topologySpreadConstraints",
        "priorityClassName",
        "podLabels",
        "podAnnotations",
        "nodeSelector\":{\"",
        "logLevel",
        "logFormat",
    ] {
        assert!(!text.contains(key), "{key} appears unset: {text}");
    }
}

#[test]
fn topology_servers_carry_their_scheduling() {
    let templates = template(json!({"managedTopoServer": {"priorityClassName": "critical"}}));
    let mut spec = base();
    spec["globalTopoServer"] = json!({
        "deploymentTemplate": "t",
        "overrides": {"podLabels": {"team": "db"}}
    });
    spec["cells"][0]["spec"]["topoServer"] =
        json!({"managedSpec": {"replicas": 1, "tolerations": [toleration("etcd")]}});
    let resolved = resolve_cluster(&cluster(spec), &templates).expect("resolves");
    let global = resolved.global_topo_server.unwrap().spec.scheduling;
    assert_eq!(global.priority_class_name.as_deref(), Some("critical"));
    assert_eq!(global.pod_labels.unwrap()["team"], "db");

    let child = &resolved.cells[0];
    let mut cell = Cell::new(&child.name, child.spec.clone());
    cell.metadata.labels = Some(child.labels.clone());
    let local = local_topo_server(&cell).expect("a local server");
    let tolerations = local.spec.scheduling.tolerations.unwrap();
    assert_eq!(tolerations[0].key.as_deref(), Some("etcd"));
}
