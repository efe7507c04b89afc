use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
use multigres_api::MultigresClusterStatus;
use multigres_dataplane_sim::testing::{children, make_ready, sample_cluster};

use super::*;

fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ),
        observed_generation: None,
    }
}

fn pod(name: &str, owner: &str, ready: bool) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = Some(name.into());
    pod.metadata.labels = Some([(labels::OWNER.to_string(), owner.to_string())].into());
    pod.status = Some(PodStatus {
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            ..Default::default()
        }]),
        ..Default::default()
    });
    pod
}

/// The sample cluster (2 shards of `orders/default`), ready, but for shard 1 which rolls.
fn objects() -> Objects {
    let mut cluster = sample_cluster("ns", "c");
    cluster.status = Some(MultigresClusterStatus {
        conditions: vec![
            condition("Available", "True", "AllComponentsAvailable", ""),
            condition("Progressing", "True", "Rolling", "1 shard rolling"),
            condition("Degraded", "False", "AsExpected", ""),
        ],
        ..Default::default()
    });
    let mut tree = children(&cluster);
    make_ready(&mut tree);
    for tg in &mut tree.table_groups {
        let status = tg.status.as_mut().unwrap();
        status.conditions = vec![condition(
            "StaleShards",
            "False",
            "None",
            "every Shard is desired",
        )];
    }
    let mut shards = tree.shards;
    for (i, shard) in shards.iter_mut().enumerate() {
        let status = shard.status.as_mut().unwrap();
        if i == 0 {
            status.primary_cell = Some("a".into());
            status.last_switchover = Some(multigres_api::LastSwitchover {
                requested_at: "t1".into(),
                target: None,
                from: Some("p-1".into()),
                to: Some("p-0".into()),
                result: multigres_api::SwitchoverResult::Succeeded,
                message: "the primary moved from p-1 to p-0".into(),
                time: None,
            });
            status.last_backup = Some(multigres_api::LastBackup {
                backup_id: "20261202-101500F".into(),
                backup: "nightly-29427060".into(),
                completed_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    "2026-12-02T10:16:00Z".parse().unwrap(),
                ),
                size_bytes: Some(42),
            });
        } else {
            status.ready_pods -= 1;
            status.conditions = vec![
                condition("Available", "False", "PrimaryUnknown", "no primary yet"),
                condition("Progressing", "True", "Rolling", "replacing a pod"),
            ];
        }
    }
    let pods = vec![
        pod("s0-a", &shards[0].name_any(), true),
        pod("s1-a", &shards[1].name_any(), true),
        pod("s1-b", &shards[1].name_any(), false),
    ];
    Objects {
        cluster,
        topo_servers: tree.topo_servers,
        cells: tree.cells,
        table_groups: tree.table_groups,
        shards,
        pods,
    }
}

#[test]
fn the_tree_has_primaries_pods_not_ready_and_what_progresses() {
    let objects = objects();
    let tree = build(&objects);
    assert_eq!(tree.table_groups.len(), 1);
    let shards = &tree.table_groups[0].shards;
    assert_eq!(shards.len(), 2);
    let rolling = shards.iter().find(|s| !s.not_ready.is_empty()).unwrap();
    assert_eq!(rolling.not_ready, ["s1-b"]);
    assert_eq!(rolling.primary_cell, None);
    assert!(
        shards
            .iter()
            .any(|s| s.primary_cell.as_deref() == Some("a"))
    );

    let text = render(&tree);
    assert!(
        text.starts_with("MultigresCluster ns/c  Available=True Progressing=True Degraded=False"),
        "{text}"
    );
    assert!(
        text.contains("! Progressing Rolling: 1 shard rolling"),
        "{text}"
    );
    assert!(text.contains("primary in a  pods 4/4 ready"), "{text}");
    assert!(
        text.contains("primary in none known  pods 3/4 ready"),
        "{text}"
    );
    assert!(text.contains("not ready: s1-b"), "{text}");
    assert!(
        text.contains("switchover requested at t1: Succeeded p-1 → p-0"),
        "{text}"
    );
    assert!(
        text.contains(
            "last backup 20261202-101500F at 2026-12-02T10:16:00Z (Backup nightly-29427060)"
        ),
        "{text}"
    );
    assert!(text.contains("no completed backup"), "{text}");
    assert!(
        text.contains("! Available PrimaryUnknown: no primary yet"),
        "{text}"
    );
    assert!(text.contains("TableGroup orders/default"), "{text}");
    assert!(
        !text.contains("StaleShards"),
        "a healthy StaleShards=False is no news: {text}"
    );
    assert_eq!(tree.cells.len(), 2);

    let json = serde_json::to_value(&tree).unwrap();
    assert_eq!(json["name"], "c");
    assert_eq!(json["conditions"][1]["type"], "Progressing");
    assert_eq!(
        json["tableGroups"][0]["shards"].as_array().unwrap().len(),
        2
    );
}

#[test]
fn replication_shows_the_primary_pod_lagging_replicas_and_silent_poolers() {
    use crate::replication::{Answer, PoolerStatus, PrimaryStatus, StandbyStatus, assess};
    let objects = objects();
    let names: Vec<String> = objects.shards.iter().map(|s| s.name_any()).collect();
    let standby = |replay: &str| -> Answer {
        Ok(PoolerStatus {
            postgres_status: "POSTGRES_STATUS_STANDBY".into(),
            replication_status: Some(StandbyStatus {
                last_replay_lsn: replay.into(),
                wal_receiver_status: "streaming".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
    };
    let answers: BTreeMap<String, Answer> = [
        (
            "s0-a".to_string(),
            Ok(PoolerStatus {
                postgres_status: "POSTGRES_STATUS_PRIMARY".into(),
                primary_status: Some(PrimaryStatus {
                    lsn: "0/9000000".into(),
                }),
                ..Default::default()
            }),
        ),
        ("s0-b".to_string(), standby("0/8FFF000")),
        ("s0-c".to_string(), standby("0/1000000")),
        ("s0-d".to_string(), Err("unavailable: no route".into())),
    ]
    .into();
    let by_shard = BTreeMap::from([(names[0].clone(), assess(&answers, 16 << 20))]);
    let mut tree = build(&objects);
    attach_replication(&mut tree, Ok(by_shard));
    let text = render(&tree);
    assert!(
        text.contains(
            "primary pod s0-a at 0/9000000; standbys: s0-b 4.0 KiB behind, s0-c 128.0 MiB behind"
        ),
        "{text}"
    );
    assert!(
        text.contains("! lagging replica s0-c: 128.0 MiB behind the primary"),
        "{text}"
    );
    assert!(!text.contains("lagging replica s0-b"), "{text}");
    assert!(
        text.contains("! pooler of s0-d did not answer: unavailable: no route"),
        "{text}"
    );
    let json = serde_json::to_value(&tree).unwrap();
    let shard = &json["tableGroups"][0]["shards"][0];
    assert_eq!(shard["replication"]["primary"], "s0-a");
    assert_eq!(shard["replication"]["standbys"][1]["lagging"], true);
    assert_eq!(
        shard["replication"]["standbys"][1]["replayLagBytes"],
        0x800_0000
    );
    assert!(json["tableGroups"][0]["shards"][1]["replication"].is_null());

    let mut unknown = build(&objects);
    attach_replication(&mut unknown, Err("no Ready multiadmin pod of ns/c".into()));
    assert!(
        render(&unknown).contains("  replication not known: no Ready multiadmin pod of ns/c"),
        "{}",
        render(&unknown)
    );
}
