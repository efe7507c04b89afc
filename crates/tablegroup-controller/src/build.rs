//! Pure: the Shards a TableGroup asks for, and the status that follows from the Shards observed.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use multigres_api::{Shard, TableGroup, TableGroupStatus, multigres, resolve};
use multigres_runtime::apply::child_meta;
use multigres_runtime::conditions::{self, AVAILABLE, ConditionUpdate};

/// Condition type saying that Shards exist which the TableGroup no longer asks for.
pub const STALE_SHARDS: &str = "StaleShards";

/// The exact Shards to apply for `table_group`.
pub fn shards(table_group: &TableGroup) -> Vec<Shard> {
    resolve::shards(table_group)
        .into_iter()
        .map(|child| Shard {
            metadata: child_meta(table_group, &child.name, child.labels),
            spec: child.spec,
            status: None,
        })
        .collect()
}

/// The status from the desired Shards and the Shards this TableGroup controls.
pub fn status(
    table_group: &TableGroup,
    desired: &[Shard],
    existing: &[&Shard],
    now: Timestamp,
) -> TableGroupStatus {
    let previous = table_group.status.clone().unwrap_or_default();
    let generation = table_group.metadata.generation;
    let wanted: BTreeSet<String> = desired.iter().map(|s| s.name_any()).collect();
    let ready = existing
        .iter()
        .filter(|s| wanted.contains(&s.name_any()))
        .filter(|s| {
            s.status
                .as_ref()
                .is_some_and(|st| conditions::is_true(&st.conditions, AVAILABLE))
        })
        .count() as i32;
    let total = desired.len() as i32;
    let mut conds: Vec<Condition> = previous.conditions;
    let available = ready == total;
    conditions::set(
        &mut conds,
        ConditionUpdate::new(
            AVAILABLE,
            available,
            if available {
                "AllShardsAvailable"
            } else {
                "ShardsNotAvailable"
            },
            format!("{ready}/{total} shards available"),
        ),
        generation,
        now,
    );
    let (served, reason, message) = multigres::served_condition(&multigres::unserved(
        &table_group.spec.table_group,
        table_group.spec.partitioning.shards.max(0) as u32,
    ));
    conditions::set(
        &mut conds,
        ConditionUpdate::new(multigres::SERVED_CONDITION, served, reason, message),
        generation,
        now,
    );
    let stale: Vec<String> = existing
        .iter()
        .map(|s| s.name_any())
        .filter(|n| !wanted.contains(n))
        .collect();
    conditions::set(
        &mut conds,
        ConditionUpdate::new(
            STALE_SHARDS,
            !stale.is_empty(),
            if stale.is_empty() {
                "None"
            } else {
                "ShardsKept"
            },
            if stale.is_empty() {
                "every Shard is desired".to_string()
            } else {
                format!(
                    "Shards {} are no longer desired; kept because deleting a Shard deletes its data",
                    stale.join(", ")
                )
            },
        ),
        generation,
        now,
    );
    TableGroupStatus {
        observed_generation: generation,
        conditions: conds,
        shards: total,
        ready_shards: ready,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multigres_api::{
        CredentialsRef, GlobalTopologyRef, ShardImages, TableGroupSpec, cluster::Partitioning,
        tablegroup::ShardTemplate,
    };

    fn table_group(shards: i32) -> TableGroup {
        let mut tg = TableGroup::new(
            "c-db-tg-12345678",
            TableGroupSpec {
                database: "db".into(),
                table_group: "tg".into(),
                images: ShardImages::default(),
                partitioning: Partitioning { shards },
                shard_template: ShardTemplate { pools: vec![] },
                global_topo_server: GlobalTopologyRef::default(),
                credentials: CredentialsRef::named("s"),
                pvc_deletion_policy: Default::default(),
                postgres_exporter: None,
                tls: None,
                backup: None,
            },
        );
        tg.metadata.namespace = Some("ns".into());
        tg.metadata.uid = Some("uid-1".into());
        tg.metadata.generation = Some(3);
        tg
    }

    #[test]
    fn one_shard_per_partition_owned_by_the_tablegroup() {
        let tg = table_group(2);
        let shards = shards(&tg);
        assert_eq!(shards.len(), 2);
        assert_eq!(shards[1].spec.shard_name, "1");
        let owner = &shards[0].metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.uid, "uid-1");
        assert_eq!(owner.controller, Some(true));
    }

    #[test]
    fn status_counts_available_shards_and_reports_stale_ones() {
        let tg = table_group(2);
        let desired = shards(&tg);
        let mut ready = desired[0].clone();
        let mut st = multigres_api::ShardStatus::default();
        conditions::set(
            &mut st.conditions,
            ConditionUpdate::new(AVAILABLE, true, "r", "m"),
            Some(1),
            Timestamp::now(),
        );
        ready.status = Some(st);
        let mut stale = desired[1].clone();
        stale.metadata.name = Some("c-db-tg-12345678-7".into());
        let status = status(&tg, &desired, &[&ready, &stale], Timestamp::now());
        assert_eq!((status.shards, status.ready_shards), (2, 1));
        assert!(!conditions::is_true(&status.conditions, AVAILABLE));
        assert!(conditions::is_true(&status.conditions, STALE_SHARDS));
        assert_eq!(status.observed_generation, Some(3));
    }
}
