//! Backups and ScheduledBackups against a real control plane, with a multiadmin stand-in that
//! answers as the real one does (tests/common/multiadmin.rs): a Backup waits for a serving replica
//! and says so, follows its job to the end and records it on the Shard, the cluster and the
//! backup-age metric; a failed job fails the Backup with an Event; a schedule creates Backups
//! named for their minute, and prunes its history.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use common::*;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use multigres_api::{
    Backup, BackupPhase, BackupSpec, BackupTarget, MultigresCluster, ScheduledBackup,
    ScheduledBackupSpec, Shard, labels, naming,
};
use multigres_e2e::wait_for;

/// The controller with its topology on a test etcd and multiadmin on a stand-in; the sample
/// cluster applied, and one Shard per table group given (made here, as the tablegroup controller
/// would).
async fn start(
    ns_prefix: &str,
    table_groups: &[&str],
) -> (
    Client,
    String,
    Running,
    std::sync::Arc<multiadmin::StandIn>,
    TestEtcd,
) {
    let cp = cp();
    setup().await;
    let client = cp.client();
    let ns = cp.namespace(ns_prefix).await.unwrap();
    let etcd = TestEtcd::start().await;
    let port = free_port();
    let stand_in = multiadmin::serve(format!("127.0.0.1:{port}").parse().unwrap());
    let topo = naming::topo_address(
        &naming::topo_client_service(&naming::global_topo_server(SAMPLE)),
        &ns,
    );
    let admin = naming::multiadmin_address(SAMPLE, &ns);
    let mapping = format!("{topo}={},{admin}=127.0.0.1:{port}", etcd.endpoint());
    let controller = start_controller(&ns, &mapping).await.unwrap();
    apply_templates(&client, &ns).await.unwrap();
    let mut cluster = sample_cluster(&ns);
    cluster.spec.backup =
        Some(serde_json::from_value(serde_json::json!({"retention": {"fullBackups": 2}})).unwrap());
    apply(&client, &cluster).await.unwrap();
    for tg in table_groups {
        let shard = shard(&ns, tg);
        Api::<Shard>::namespaced(client.clone(), &ns)
            .create(&PostParams::default(), &shard)
            .await
            .unwrap();
    }
    (client, ns, controller, stand_in, etcd)
}

fn shard(ns: &str, table_group: &str) -> Shard {
    let spec = serde_json::from_value(serde_json::json!({
        "database": "postgres", "tableGroup": table_group, "shardName": "0", "keyRange": "0-inf",
        "images": {"multipooler": "m", "postgres": "p"}, "pools": [],
        "globalTopoServer": {"address": "a:2379", "rootPath": "/r"},
        "credentials": {"secretName": "s"}
    }))
    .unwrap();
    let mut shard = Shard::new(&format!("{SAMPLE}-postgres-{table_group}-0"), spec);
    shard.metadata.namespace = Some(ns.into());
    shard.metadata.labels = Some(BTreeMap::from([
        (labels::CLUSTER.into(), SAMPLE.into()),
        (labels::MANAGED_BY.into(), labels::MANAGED_BY_VALUE.into()),
    ]));
    shard
}

/// The controller's write count once it has stopped growing (the tree's last status writes).
async fn settled_writes(controller: &Running) -> f64 {
    let mut last = controller.writes().await.unwrap();
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(750)).await;
        let now = controller.writes().await.unwrap();
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the controller kept writing: {last} writes");
}

fn target(table_group: Option<&str>) -> BackupTarget {
    BackupTarget {
        cluster: SAMPLE.into(),
        database: "postgres".into(),
        table_group: table_group.map(String::from),
        ..Default::default()
    }
}

async fn create_backup(client: &Client, ns: &str, name: &str, target: BackupTarget) -> Backup {
    let backup = Backup::new(name, BackupSpec { target });
    Api::<Backup>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &backup)
        .await
        .unwrap()
}

fn phase(b: &Backup) -> Option<BackupPhase> {
    b.status.as_ref()?.phase
}

fn condition_message(b: &Backup) -> String {
    b.status
        .as_ref()
        .and_then(|s| s.conditions.first())
        .map(|c| format!("{} {}", c.reason, c.message))
        .unwrap_or_default()
}

/// The reasons of the Events about `name`, once they include every one of `wanted`: an Event
/// is published right after the status write a test waits for, so it may trail it a little.
async fn event_reasons(client: &Client, ns: &str, name: &str, wanted: &[&str]) -> Vec<String> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let reasons: Vec<String> = Api::<Event>::namespaced(client.clone(), ns)
            .list(&ListParams::default())
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .filter_map(|e| e.reason)
            .collect();
        let all = wanted.iter().all(|w| reasons.iter().any(|r| r == w));
        if all || std::time::Instant::now() > deadline {
            return reasons;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_backup_waits_for_a_replica_then_is_recorded_on_the_shards_the_cluster_and_the_metric() {
    let (client, ns, controller, stand_in, _etcd) =
        start("backup-db", &["default", "orders"]).await;
    let backups = Api::<Backup>::namespaced(client.clone(), &ns);

    // No serving replica: multiadmin refuses, the Backup waits and says why.
    create_backup(&client, &ns, "first", target(None)).await;
    let waiting = wait_for(&backups, "first", WAIT, |b| {
        condition_message(b).contains("serving follower pooler not found")
    })
    .await
    .unwrap();
    assert_eq!(phase(&waiting), Some(BackupPhase::Pending));
    assert_eq!(
        waiting.status.as_ref().unwrap().shards.len(),
        2,
        "both table groups"
    );
    assert_eq!(stand_in.backup_calls.load(Ordering::SeqCst), 0);

    stand_in.replica_ready.store(true, Ordering::SeqCst);
    let done = wait_for(&backups, "first", WAIT, |b| {
        phase(b) == Some(BackupPhase::Completed)
    })
    .await
    .unwrap();
    let status = done.status.as_ref().unwrap();
    assert_eq!(status.size_bytes, Some(2 * multiadmin::BACKUP_SIZE as i64));
    assert_eq!(status.backup_id, None, "two shards: ids per shard");
    for part in &status.shards {
        assert!(
            part.backup_id.as_ref().is_some_and(|id| id.ends_with('F')),
            "{part:?}"
        );
        assert_eq!(
            part.stop_time.as_ref().map(|t| t.0.as_second()),
            Some(1_796_000_090)
        );
    }
    // The cluster's retention, applied to each shard right after the Backup completed.
    let mut expires = Vec::new();
    for _ in 0..100 {
        expires = stand_in.expires.lock().unwrap().clone();
        if expires.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    expires.sort();
    assert_eq!(
        expires,
        [
            ("default".to_string(), "2".to_string()),
            ("orders".into(), "2".into())
        ]
    );
    assert_eq!(
        stand_in.backup_calls.load(Ordering::SeqCst),
        2,
        "one job per shard, never repeated"
    );
    let wanted = ["BackupStarted", "BackupCompleted"];
    let reasons = event_reasons(&client, &ns, "first", &wanted).await;
    assert!(
        reasons.contains(&"BackupStarted".into()) && reasons.contains(&"BackupCompleted".into()),
        "{reasons:?}"
    );

    // Recorded on each Shard and on the cluster, beside the fields their controllers write.
    let shards = Api::<Shard>::namespaced(client.clone(), &ns);
    let orders = wait_for(&shards, &format!("{SAMPLE}-postgres-orders-0"), WAIT, |s| {
        s.status.as_ref().is_some_and(|s| s.last_backup.is_some())
    })
    .await
    .unwrap();
    let last = orders.status.unwrap().last_backup.unwrap();
    assert_eq!(last.backup, "first");
    let clusters = Api::<MultigresCluster>::namespaced(client.clone(), &ns);
    let cluster = wait_for(&clusters, SAMPLE, WAIT, |c| {
        c.status.as_ref().is_some_and(|s| s.last_backups.len() == 2)
    })
    .await
    .unwrap();
    let recorded = &cluster.status.unwrap().last_backups["postgres/orders/0-inf"];
    assert_eq!(recorded.backup_id, last.backup_id);
    // The cluster controller, once its tree is built, reconciles without removing or rewriting
    // them (a status compare that counted them would write on every reconcile, in a loop).
    let cluster = clusters.get(SAMPLE).await.unwrap();
    common::tree::wait_for_tree(&client, &ns, &common::tree::resolved(&ns, &cluster)).await;
    let before = settled_writes(&controller).await;
    clusters
        .patch(
            SAMPLE,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"annotations": {"touch": "1"}}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let cluster = clusters.get(SAMPLE).await.unwrap();
    assert_eq!(cluster.status.unwrap().last_backups.len(), 2);
    let after = controller.writes().await.unwrap();
    assert!(
        after == before,
        "a no-op cluster reconcile wrote {} times",
        after - before
    );

    let metric = controller
        .metric(
            "multigres_backup_last_completion_timestamp_seconds",
            "multigres_tablegroup=\"orders\"",
        )
        .await
        .unwrap();
    assert_eq!(metric, 1_796_000_090.0);
}

#[tokio::test]
async fn a_failed_job_or_a_missing_shard_is_said_on_the_backup() {
    let (client, ns, _controller, stand_in, _etcd) = start("backup-fail", &["default"]).await;
    let backups = Api::<Backup>::namespaced(client.clone(), &ns);
    stand_in.replica_ready.store(true, Ordering::SeqCst);
    stand_in.failing.lock().unwrap().push("default".into());
    create_backup(&client, &ns, "broken", target(Some("default"))).await;
    let failed = wait_for(&backups, "broken", WAIT, |b| {
        phase(b) == Some(BackupPhase::Failed)
    })
    .await
    .unwrap();
    assert!(
        condition_message(&failed).contains("BackupFailed"),
        "{}",
        condition_message(&failed)
    );
    assert!(condition_message(&failed).contains("exited with code 82"));
    let reasons = event_reasons(&client, &ns, "broken", &["BackupFailed"]).await;
    assert!(reasons.contains(&"BackupFailed".into()), "{reasons:?}");

    create_backup(&client, &ns, "nowhere", target(Some("missing"))).await;
    let waiting = wait_for(&backups, "nowhere", WAIT, |b| phase(b).is_some())
        .await
        .unwrap();
    assert_eq!(phase(&waiting), Some(BackupPhase::Pending));
    assert!(
        condition_message(&waiting).contains("table group \"missing\" (spec.tableGroup)"),
        "{}",
        condition_message(&waiting)
    );
    assert_eq!(stand_in.backup_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_schedule_creates_backups_for_its_minutes_and_prunes_its_history() {
    let (client, ns, _controller, stand_in, _etcd) = start("backup-schedule", &["default"]).await;
    stand_in.replica_ready.store(true, Ordering::SeqCst);
    let schedules = Api::<ScheduledBackup>::namespaced(client.clone(), &ns);
    let backups = Api::<Backup>::namespaced(client.clone(), &ns);
    let spec = ScheduledBackupSpec {
        schedule: "* * * * *".into(),
        suspend: false,
        successful_backups_history_limit: 1,
        failed_backups_history_limit: 1,
        starting_deadline_seconds: 300,
        backup: target(None),
    };
    let created = schedules
        .create(
            &PostParams::default(),
            &ScheduledBackup::new("every-minute", spec),
        )
        .await
        .unwrap();
    // A run is due at the next minute; it completes and is the schedule's last success.
    let schedule = wait_for(
        &schedules,
        "every-minute",
        std::time::Duration::from_secs(90),
        |s| {
            s.status
                .as_ref()
                .is_some_and(|s| s.last_successful_time.is_some())
        },
    )
    .await
    .unwrap();
    let status = schedule.status.unwrap();
    let at = status.last_schedule_time.unwrap().0;
    assert_eq!(at.as_second() % 60, 0, "runs on the minute");
    let name = format!("every-minute-{}", at.as_second() / 60);
    let backup = backups.get(&name).await.unwrap();
    assert_eq!(
        backup
            .labels()
            .get(labels::SCHEDULED_BACKUP)
            .map(String::as_str),
        Some("every-minute")
    );
    assert_eq!(backup.owner_references()[0].uid, created.uid().unwrap());
    assert!(status.next_schedule_time.unwrap().0 > at);

    // History: two older completed Backups of the schedule; only the newest completed one stays.
    for old in ["old-1", "old-2"] {
        let mut b = Backup::new(
            old,
            BackupSpec {
                target: target(None),
            },
        );
        b.metadata.owner_references = backup.metadata.owner_references.clone();
        backups.create(&PostParams::default(), &b).await.unwrap();
        backups
            .patch_status(
                old,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"status": {"phase": "Completed"}})),
            )
            .await
            .unwrap();
    }
    let mut waited = 0;
    loop {
        let names: Vec<String> = backups
            .list(&ListParams::default())
            .await
            .unwrap()
            .into_iter()
            .filter(|b| b.owner_references().first().map(|o| &o.uid) == created.uid().as_ref())
            .filter(|b| phase(b) == Some(BackupPhase::Completed))
            .map(|b| b.name_any())
            .collect();
        if names.len() == 1 {
            break;
        }
        waited += 1;
        assert!(waited < 120, "history not pruned to 1: {names:?}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }

    // Suspended: no new Backup, and the condition says why.
    schedules
        .patch(
            "every-minute",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"suspend": true}})),
        )
        .await
        .unwrap();
    let suspended = wait_for(&schedules, "every-minute", WAIT, |s| {
        s.status
            .as_ref()
            .is_some_and(|s| s.conditions.iter().any(|c| c.reason == "Suspended"))
    })
    .await
    .unwrap();
    assert!(
        suspended
            .status
            .unwrap()
            .conditions
            .iter()
            .any(|c| c.status == "False")
    );
}
