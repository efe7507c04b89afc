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
fn identifier() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,62}"
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
        ] {
            prop_assert!(is_dns_label(&name, max), "{name} (max {max})");
        }
    }

    #[test]
    fn tablegroup_names_are_distinct(cluster in cluster_name(), pairs in proptest::collection::btree_set((identifier(), identifier()), 1..20)) {
        let names: BTreeSet<String> = pairs.iter().map(|(db, tg)| naming::table_group(&cluster, db, tg)).collect();
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
