//! The samples under deploy/samples parse, round-trip, and resolve to what the CR definition shows.

use std::path::PathBuf;

use multigres_api::resolve::{Templates, defaults, resolve_cluster, shards};
use multigres_api::{DeploymentTemplate, MultigresCluster, TableGroup};
use serde::de::DeserializeOwned;
use serde_json::Value;

fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/samples")
}

fn documents(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(samples().join(path)).expect("sample exists");
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            serde_yaml::from_value::<Value>(
                serde_yaml::Value::deserialize(doc).expect("valid YAML"),
            )
            .expect("JSON-compatible")
        })
        .collect()
}

use serde::Deserialize;

fn typed<T: DeserializeOwned>(doc: &Value) -> T {
    serde_json::from_value(doc.clone()).expect("sample matches the typed API")
}

fn cluster() -> MultigresCluster {
    typed(&documents("multigrescluster.yaml")[0])
}

fn templates() -> Templates {
    [
        "deploymenttemplate-standard-ha.yaml",
        "deploymenttemplates-shard-pools.yaml",
    ]
    .iter()
    .flat_map(|f| documents(f))
    .map(|doc| typed::<DeploymentTemplate>(&doc))
    .map(|t| (t.metadata.name.clone().unwrap_or_default(), t.spec))
    .collect()
}

/// `expected` is contained in `actual`: every field it has, `actual` has with the same value.
fn assert_subset(expected: &Value, actual: &Value, path: &str) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (key, value) in e {
                let Some(found) = a.get(key) else {
                    panic!("{path}.{key} missing in {actual}")
                };
                assert_subset(value, found, &format!("{path}.{key}"));
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            assert_eq!(e.len(), a.len(), "{path}: list lengths differ");
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                assert_subset(ev, av, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(expected, actual, "{path}"),
    }
}

#[test]
fn user_samples_round_trip() {
    for file in [
        "multigrescluster.yaml",
        "deploymenttemplate-standard-ha.yaml",
        "deploymenttemplates-shard-pools.yaml",
    ] {
        for doc in documents(file) {
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            let again = match kind.as_str() {
                "MultigresCluster" => serde_json::to_value(typed::<MultigresCluster>(&doc)),
                "DeploymentTemplate" => serde_json::to_value(typed::<DeploymentTemplate>(&doc)),
                other => panic!("unexpected kind {other} in {file}"),
            }
            .expect("serializes");
            assert_subset(&doc, &again, &format!("{file}:{kind}"));
            assert_subset(&again, &doc, &format!("{file}:{kind} (reverse)"));
        }
    }
}

#[test]
fn resolution_is_deterministic() {
    let a = resolve_cluster(&cluster(), &templates()).expect("resolves");
    let b = resolve_cluster(&cluster(), &templates()).expect("resolves");
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}

#[test]
fn orders_tablegroup_and_shards_match_the_cr_definition() {
    let resolved = resolve_cluster(&cluster(), &templates()).expect("resolves");
    let orders = resolved
        .table_groups
        .iter()
        .find(|t| t.spec.table_group == "orders_tg")
        .expect("orders_tg resolved");
    let expected = &documents("children/tablegroup.yaml")[0];
    assert_subset(
        &expected["spec"],
        &serde_json::to_value(&orders.spec).unwrap(),
        "TableGroup.spec",
    );
    assert_subset(
        &expected["metadata"]["labels"],
        &serde_json::to_value(&orders.labels).unwrap(),
        "TableGroup.labels",
    );

    let table_group = TableGroup {
        metadata: kube::api::ObjectMeta {
            name: Some(orders.name.clone()),
            labels: Some(orders.labels.clone()),
            ..Default::default()
        },
        spec: orders.spec.clone(),
        status: None,
    };
    let children = shards(&table_group);
    assert_eq!(children.len(), 2);
    let expected_shard = &documents("children/shard.yaml")[0];
    assert_subset(
        &expected_shard["spec"],
        &serde_json::to_value(&children[0].spec).unwrap(),
        "Shard.spec",
    );
    assert_subset(
        &expected_shard["metadata"]["labels"],
        &serde_json::to_value(&children[0].labels).unwrap(),
        "Shard.labels",
    );
    assert!(children[0].name.starts_with(&orders.name) && children[0].name.ends_with("-0"));
}

#[test]
fn cells_and_topology_match_the_cr_definition() {
    let resolved = resolve_cluster(&cluster(), &templates()).expect("resolves");
    let east = resolved
        .cells
        .iter()
        .find(|c| c.spec.name == "us-east-1")
        .expect("us-east-1");
    assert_eq!(east.name, "example-multigres-cluster-us-east-1");
    let mut expected = documents("children/cell.yaml")[0]["spec"].clone();
    // The sample lists a third cell the cluster does not declare, and shows a template's limits before
    // the cluster's override of cpu: "2".
    expected.as_object_mut().unwrap().remove("allCells");
    expected["multigateway"]["resources"]["limits"]["cpu"] = "2".into();
    expected["globalTopoServer"]
        .as_object_mut()
        .unwrap()
        .remove("clientServiceName");
    assert_subset(
        &expected,
        &serde_json::to_value(&east.spec).unwrap(),
        "Cell.spec",
    );
    assert!(
        east.spec.topo_server.managed_spec.is_none() && east.spec.topo_server.external.is_none()
    );

    let west = resolved
        .cells
        .iter()
        .find(|c| c.spec.name == "us-west-2")
        .expect("us-west-2");
    let local = west
        .spec
        .topo_server
        .managed_spec
        .as_ref()
        .expect("us-west-2 has a managed local topo server");
    assert_eq!(local.root_path.as_deref(), Some("/multigres/us-west-2"));

    let global = resolved
        .global_topo_server
        .as_ref()
        .expect("global topo server is managed");
    assert_eq!(global.name, "example-multigres-cluster-global");
    let expected = &documents("children/toposerver.yaml")[0];
    assert_subset(
        &expected["spec"],
        &serde_json::to_value(&global.spec).unwrap(),
        "TopoServer.spec",
    );
    assert_eq!(
        resolved.global_topology.client_service_name.as_deref(),
        Some("example-multigres-cluster-global-client")
    );
}

#[test]
fn production_db_asks_for_fourteen_instances() {
    let resolved = resolve_cluster(&cluster(), &templates()).expect("resolves");
    let instances: i32 = resolved
        .table_groups
        .iter()
        .map(|tg| {
            tg.spec.partitioning.shards
                * tg.spec
                    .shard_template
                    .pools
                    .iter()
                    .map(|p| p.replicas)
                    .sum::<i32>()
        })
        .sum();
    assert_eq!(instances, 14);
}

#[test]
fn analytics_overrides_win_and_keep_the_rest_of_the_template() {
    let resolved = resolve_cluster(&cluster(), &templates()).expect("resolves");
    let analytics = resolved
        .table_groups
        .iter()
        .find(|t| t.spec.table_group == "analytics_tg")
        .unwrap();
    let pool = serde_json::to_value(&analytics.spec.shard_template.pools[0]).unwrap();
    assert_eq!(
        pool["dataVolumeClaimTemplate"]["resources"]["requests"]["storage"],
        "1000Gi"
    );
    assert_eq!(pool["postgres"]["resources"]["requests"]["cpu"], "4");
    assert_eq!(
        pool["postgres"]["resources"]["requests"]["memory"], "2Gi",
        "untouched by the override"
    );
    assert_eq!(pool["replicas"], 3);
}

#[test]
fn a_missing_template_names_the_field_and_template() {
    let mut templates = templates();
    templates.remove("orders-read-only");
    let err = resolve_cluster(&cluster(), &templates)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "spec.databases[0].spec.tablegroups[1].shardTemplate.pools[1].deploymentTemplate"
        ),
        "{err}"
    );
    assert!(err.contains("'orders-read-only'"), "{err}");
}

#[test]
fn a_template_without_the_section_is_refused() {
    let mut templates = templates();
    templates.get_mut("standard-ha").unwrap().multigateway = None;
    let err = resolve_cluster(&cluster(), &templates)
        .unwrap_err()
        .to_string();
    assert!(err.contains("has no 'multigateway' section"), "{err}");
}

#[test]
fn default_limits_never_sit_under_a_templates_larger_requests() {
    let resolved = resolve_cluster(&cluster(), &templates()).expect("resolves");
    let orders = resolved
        .table_groups
        .iter()
        .find(|t| t.spec.table_group == "orders_tg")
        .unwrap();
    let replica = serde_json::to_value(&orders.spec.shard_template.pools[0]).unwrap();
    assert_eq!(
        replica["postgres"]["resources"]["requests"]["memory"],
        "8Gi"
    );
    assert!(
        replica["postgres"]["resources"].get("limits").is_none(),
        "{replica}"
    );
}

#[test]
fn a_request_above_its_limit_is_refused_with_the_field() {
    let mut cluster = cluster();
    let pool = &mut cluster.spec.databases[0].spec.tablegroups[3]
        .shard_template
        .pools[0];
    pool.inline
        .postgres
        .as_mut()
        .unwrap()
        .resources
        .as_mut()
        .unwrap()
        .requests
        .as_mut()
        .unwrap()
        .insert(
            "memory".into(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("4Gi".into()),
        );
    let err = resolve_cluster(&cluster, &templates())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("spec.databases[0].spec.tablegroups[3].shardTemplate.pools[0]"),
        "{err}"
    );
    assert!(
        err.contains("memory request 4Gi is above its limit 2Gi"),
        "{err}"
    );
}

#[test]
fn every_shard_gets_the_postgres_exporter_unless_it_is_switched_off() {
    let resolved = resolve_cluster(&cluster(), &templates()).expect("resolves");
    for tg in &resolved.table_groups {
        let exporter = tg.spec.postgres_exporter.as_ref().expect("on by default");
        assert_eq!(exporter.image, defaults::POSTGRES_EXPORTER_IMAGE);
        assert!(exporter.resources.is_some());
    }
    let mut off = cluster();
    off.spec.observability = Some(
        serde_json::from_value(serde_json::json!({
            "postgresExporter": {"enabled": false}
        }))
        .unwrap(),
    );
    let resolved = resolve_cluster(&off, &templates()).expect("resolves");
    assert!(
        resolved
            .table_groups
            .iter()
            .all(|t| t.spec.postgres_exporter.is_none())
    );
}

#[test]
fn a_certificate_renewal_reaches_every_child_and_only_a_renewal_is_annotated() {
    let mut resolved = resolve_cluster(&cluster(), &templates()).unwrap();
    resolved.set_tls_revision(Some(3));
    let revisions: Vec<Option<i64>> = resolved
        .cells
        .iter()
        .map(|c| c.spec.tls.as_ref().and_then(|t| t.revision))
        .chain(
            resolved
                .table_groups
                .iter()
                .map(|t| t.spec.tls.as_ref().and_then(|t| t.revision)),
        )
        .collect();
    assert_eq!(revisions.len(), 6, "2 cells, 4 table groups");
    assert!(revisions.iter().all(|r| *r == Some(3)), "{revisions:?}");
    let tls = resolved.tls.clone().unwrap();
    assert_eq!(
        tls.revision_annotation(),
        Some((
            multigres_api::labels::TLS_REVISION.to_string(),
            "3".to_string()
        ))
    );
    // The first issuance (and none known) leaves the pods as they are.
    resolved.set_tls_revision(Some(1));
    assert_eq!(resolved.tls.as_ref().unwrap().revision_annotation(), None);
    resolved.set_tls_revision(None);
    assert_eq!(resolved.tls.as_ref().unwrap().revision_annotation(), None);
}
