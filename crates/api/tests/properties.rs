//! Property tests: names stay valid and distinct; overrides win; untouched template fields survive.

use std::collections::BTreeSet;

use multigres_api::naming::{self, MAX_LABEL, MAX_STATEFULSET};
use multigres_api::resolve::merge::{merge_into, merge_layers};
use multigres_api::{ComponentSpec, PoolType};
use proptest::prelude::*;
use serde_json::json;

fn is_dns_label(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn cluster_name() -> impl Strategy<Value = String> {
    "[a-z]([-a-z0-9]{0,61}[a-z0-9])?"
}
fn cell_name() -> impl Strategy<Value = String> {
    "[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?"
}
/// A database or table group name as the CRD admits it.
fn identifier() -> impl Strategy<Value = String> {
    "[a-z]([a-z0-9_]{0,61}[a-z0-9])?"
}

proptest! {
    #[test]
    fn child_names_are_valid(cluster in cluster_name(), cell in cell_name(), db in identifier(), tg in identifier(), shard in 0u32..256, index in 0u32..100) {
        let table_group = naming::table_group(&cluster, &db, &tg);
        let shard = naming::shard(&table_group, &shard.to_string());
        let pool = naming::pool_id(PoolType::ReadOnly, &cell);
        let cell_resource = naming::cell(&cluster, &cell);
        for (name, max) in [
            (naming::global_topo_server(&cluster), MAX_STATEFULSET),
            (naming::local_topo_server(&cluster, &cell), MAX_STATEFULSET),
            (naming::topo_client_service(&naming::global_topo_server(&cluster)), MAX_LABEL),
            (naming::gateway(&cell_resource), MAX_LABEL),
            (naming::multiorch(&cell_resource), MAX_LABEL),
            (naming::multiadmin(&cluster), MAX_LABEL),
            (table_group.clone(), MAX_LABEL),
            (shard.clone(), MAX_LABEL),
            (naming::pool_service(&shard, &pool), MAX_LABEL),
            (naming::pool_pod(&shard, &pool, index), MAX_LABEL),
            (naming::data_pvc(&naming::pool_pod(&shard, &pool, index)), MAX_LABEL),
            (naming::table_group_hashed(&cluster, &db, &tg), MAX_LABEL),
            (naming::pool_pod_hashed(&shard, &pool, index), MAX_LABEL),
        ] {
            prop_assert!(is_dns_label(&name, max), "{name} (max {max})");
        }
    }

    #[test]
    fn tablegroup_names_are_distinct(cluster in cluster_name(), pairs in proptest::collection::btree_set((identifier(), identifier()), 1..20)) {
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(db, tg)| (db.as_str(), tg.as_str())).collect();
        let names: BTreeSet<String> = naming::table_groups(&cluster, &pairs).into_iter().collect();
        prop_assert_eq!(names.len(), pairs.len());
    }

    #[test]
    fn cell_names_are_distinct(cluster in cluster_name(), cells in proptest::collection::btree_set(cell_name(), 1..16)) {
        let names: BTreeSet<String> = cells.iter().map(|c| naming::cell(&cluster, c)).collect();
        prop_assert_eq!(names.len(), cells.len());
        let pods: BTreeSet<String> = cells.iter().map(|c| naming::pool_pod("s", &naming::pool_id(PoolType::Replica, c), 0)).collect();
        prop_assert_eq!(pods.len(), cells.len());
    }

    #[test]
    fn overrides_win_and_untouched_fields_survive(base_replicas in 0i32..50, over_replicas in proptest::option::of(0i32..50), cpu in "[1-9][0-9]{0,2}m", mem in "[1-9][0-9]{0,2}Mi") {
        let template = json!({"replicas": base_replicas, "resources": {"requests": {"cpu": "100m", "memory": mem.clone()}}});
        let overrides = json!({"replicas": over_replicas, "resources": {"requests": {"cpu": cpu.clone()}}});
        let merged: ComponentSpec = merge_layers(&[template, overrides]).unwrap();
        prop_assert_eq!(merged.replicas, Some(over_replicas.unwrap_or(base_replicas)));
        let requests = merged.resources.unwrap().requests.unwrap();
        prop_assert_eq!(&requests["cpu"].0, &cpu);
        prop_assert_eq!(&requests["memory"].0, &mem);
    }

    #[test]
    fn merging_an_empty_layer_changes_nothing(replicas in 0i32..50) {
        let mut value = json!({"replicas": replicas, "resources": {"limits": {"cpu": "1"}}});
        let before = value.clone();
        merge_into(&mut value, &json!({}));
        prop_assert_eq!(value, before);
    }
}

/// A label value Kubernetes accepts: at most 63 characters, alphanumeric at both ends, `-_.` inside.
fn is_label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && value
                .chars()
                .last()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
}

/// A valid cluster spec: up to 3 cells, up to 3 databases of up to 3 table groups, pools in
/// declared cells.
fn cluster_spec() -> impl Strategy<Value = (String, serde_json::Value)> {
    let cells = proptest::collection::btree_set(cell_name(), 1..4);
    let databases = proptest::collection::btree_map(
        identifier(),
        proptest::collection::btree_map(identifier(), (1i32..4, any::<bool>()), 1..4),
        1..4,
    );
    (cluster_name(), cells, databases).prop_map(|(cluster, cells, databases)| {
        let cells: Vec<String> = cells.into_iter().collect();
        let dbs: Vec<serde_json::Value> = databases
            .into_iter()
            .map(|(db, tgs)| {
                let tgs: Vec<serde_json::Value> = tgs
                    .into_iter()
                    .enumerate()
                    .map(|(i, (tg, (shards, local)))| {
                        let cell = &cells[i % cells.len()];
                        let mut pools = vec![json!({"type": "replica", "cell": cell, "replicas": 2})];
                        if local {
                            pools.push(json!({"type": "readOnly", "cell": cells[0], "replicas": 1}));
                        }
                        json!({"name": tg, "partitioning": {"shards": shards}, "shardTemplate": {"pools": pools}})
                    })
                    .collect();
                json!({"name": db, "spec": {"tablegroups": tgs}})
            })
            .collect();
        let cells: Vec<serde_json::Value> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    json!({"name": c, "spec": {"topoServer": {"managedSpec": {"replicas": 1}}}})
                } else {
                    json!({"name": c})
                }
            })
            .collect();
        (cluster, json!({"cells": cells, "databases": dbs}))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every name and label value derived from a valid spec is one Kubernetes accepts, and so is
    /// what multipooler registers (`<cell>_<service-id>`, a Postgres application name).
    #[test]
    fn everything_derived_from_a_valid_spec_is_valid((cluster, spec) in cluster_spec()) {
        let object: multigres_api::MultigresCluster = serde_json::from_value(json!({
            "apiVersion": "multigres.com/v1alpha1", "kind": "MultigresCluster",
            "metadata": {"name": cluster, "namespace": "ns"}, "spec": spec
        })).unwrap();
        let resolved = multigres_api::resolve::resolve_cluster(&object, &Default::default()).unwrap();
        let mut names: Vec<(String, usize)> = Vec::new();
        let mut labels: Vec<BTreeSet<(String, String)>> = Vec::new();
        for cell in &resolved.cells {
            names.push((cell.name.clone(), MAX_LABEL));
            names.push((naming::gateway(&cell.name), MAX_LABEL));
            names.push((naming::multiorch(&cell.name), MAX_LABEL));
            labels.push(cell.labels.clone().into_iter().collect());
        }
        if let Some(topo) = &resolved.global_topo_server {
            names.push((topo.name.clone(), MAX_STATEFULSET));
            labels.push(topo.labels.clone().into_iter().collect());
        }
        for tg in &resolved.table_groups {
            names.push((tg.name.clone(), MAX_LABEL));
            labels.push(tg.labels.clone().into_iter().collect());
            let mut table_group = multigres_api::TableGroup::new(&tg.name, tg.spec.clone());
            table_group.metadata.labels = Some(tg.labels.clone());
            for shard in multigres_api::resolve::shards(&table_group) {
                names.push((shard.name.clone(), MAX_LABEL));
                names.push((naming::backup_pvc(&shard.name), MAX_LABEL));
                names.push((naming::pgbackrest_tls_secret(&shard.name), MAX_LABEL));
                labels.push(shard.labels.clone().into_iter().collect());
                prop_assert!(!shard.spec.multigres_shard().is_empty());
                for pool in &shard.spec.pools {
                    let id = naming::pool_id(pool.pool_type, &pool.cell);
                    names.push((naming::pool_service(&shard.name, &id), MAX_LABEL));
                    for i in 0..pool.replicas.max(0) as u32 {
                        let pod = naming::pool_pod(&shard.name, &id, i);
                        let app = format!("{}_{}", pool.cell, multigres_api::multigres::pooler_service_id(&pod));
                        prop_assert!(app.len() <= 63, "{app}");
                        names.push((naming::data_pvc(&pod), MAX_LABEL));
                        names.push((pod, MAX_LABEL));
                    }
                }
            }
        }
        for (name, max) in &names {
            prop_assert!(is_dns_label(name, *max), "{name} (max {max})");
        }
        for set in &labels {
            for (key, value) in set {
                prop_assert!(is_label_value(value), "label {key}={value:?}");
            }
        }
    }
}
