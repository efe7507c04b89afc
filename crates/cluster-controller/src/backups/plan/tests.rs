use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::ObjectMeta;
use multigres_api::{
    BackupSpec, BackupType, ScheduledBackupSpec, ScheduledBackupStatus, ShardSpec,
};

use super::*;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn shard(name: &str, cluster: &str, database: &str, tg: &str, index: &str) -> Shard {
    let mut spec: ShardSpec = serde_json::from_value(serde_json::json!({
        "database": database, "tableGroup": tg, "shardName": index, "keyRange": "0-inf",
        "images": {"multipooler": "m", "postgres": "p"}, "pools": [],
        "globalTopoServer": {"address": "a", "rootPath": "/r"},
        "credentials": {"secretName": "s"}
    }))
    .unwrap();
    spec.key_range = "0-inf".into();
    let mut s = Shard::new(name, spec);
    s.metadata.namespace = Some("ns".into());
    s.metadata.labels = Some(BTreeMap::from([(labels::CLUSTER.into(), cluster.into())]));
    s
}

fn target(database: &str, tg: Option<&str>, shard: Option<&str>) -> BackupTarget {
    BackupTarget {
        cluster: "c".into(),
        database: database.into(),
        table_group: tg.map(String::from),
        shard: shard.map(String::from),
        r#type: BackupType::Full,
        force_primary: None,
    }
}

#[test]
fn a_backup_covers_the_shards_its_target_names() {
    let shards = [
        shard("c-db-default-0", "c", "db", "default", "0"),
        shard("c-db-orders-0", "c", "db", "orders", "0"),
        shard("c-other-default-0", "c", "other", "default", "0"),
        shard("d-db-default-0", "d", "db", "default", "0"),
    ];
    let names = |t: &BackupTarget| -> Vec<String> {
        targets("ns", t, &shards)
            .into_iter()
            .map(|s| s.resource)
            .collect()
    };
    assert_eq!(
        names(&target("db", None, None)),
        ["c-db-default-0", "c-db-orders-0"]
    );
    assert_eq!(
        names(&target("db", Some("orders"), None)),
        ["c-db-orders-0"]
    );
    assert_eq!(
        names(&target("db", Some("default"), Some("0"))),
        ["c-db-default-0"]
    );
    assert_eq!(
        names(&target("db", Some("default"), Some("0-inf"))),
        ["c-db-default-0"]
    );
    assert!(names(&target("db", Some("default"), Some("1"))).is_empty());
    assert!(targets("elsewhere", &target("db", None, None), &shards).is_empty());
    let key = targets("ns", &target("db", Some("orders"), None), &shards)[0].key();
    assert_eq!(
        (
            key.database.as_str(),
            key.table_group.as_str(),
            key.shard.as_str()
        ),
        ("db", "orders", "0-inf")
    );
    assert_eq!(
        no_targets_message(&target("db", Some("x"), None)),
        "no Shard of cluster \"c\" (spec.cluster) database \"db\" (spec.database) table group \"x\" (spec.tableGroup) exists yet"
    );
}

fn part(phase: BackupPhase, size: Option<i64>, message: &str) -> ShardBackup {
    ShardBackup {
        shard_resource: format!("s-{size:?}"),
        table_group: "default".into(),
        shard: "0-inf".into(),
        phase,
        job_id: None,
        backup_id: size.map(|s| format!("id-{s}")),
        size_bytes: size,
        start_time: None,
        stop_time: None,
        message: message.into(),
    }
}

#[test]
fn a_backup_is_done_when_every_shard_is() {
    use BackupPhase::*;
    assert_eq!(phase_of(&[]), Pending);
    assert_eq!(
        phase_of(&[part(Pending, None, ""), part(Pending, None, "")]),
        Pending
    );
    assert_eq!(
        phase_of(&[part(Completed, Some(1), ""), part(Pending, None, "")]),
        Running
    );
    assert_eq!(
        phase_of(&[part(Completed, Some(1), ""), part(Running, None, "")]),
        Running
    );
    assert_eq!(
        phase_of(&[part(Completed, Some(1), ""), part(Failed, None, "x")]),
        Failed
    );
    assert_eq!(
        phase_of(&[part(Completed, Some(1), ""), part(Completed, Some(2), "")]),
        Completed
    );

    let now = at("2026-12-02T17:00:00Z");
    let mut status = BackupStatus {
        shards: vec![part(Completed, Some(10), "")],
        ..Default::default()
    };
    assert_eq!(summarize(&mut status, Some(1), now), None);
    assert_eq!(status.phase, Some(Completed));
    assert_eq!(status.backup_id.as_deref(), Some("id-10"));
    assert_eq!(status.size_bytes, Some(10));
    assert_eq!(status.stop_time, Some(Time(now)));
    assert!(conditions::is_true(&status.conditions, COMPLETED));

    let mut status = BackupStatus {
        shards: vec![
            part(Completed, Some(10), ""),
            part(Failed, None, "pgbackrest exited 1"),
        ],
        ..Default::default()
    };
    summarize(&mut status, Some(1), now);
    assert_eq!(status.phase, Some(Failed));
    assert_eq!(status.backup_id, None, "two shards: the ids are per shard");
    let condition = &status.conditions[0];
    assert_eq!(condition.reason, "BackupFailed");
    assert_eq!(condition.message, "s-None: pgbackrest exited 1");
}

fn schedule(text: &str, status: ScheduledBackupStatus) -> ScheduledBackup {
    let mut s = ScheduledBackup::new(
        "nightly",
        ScheduledBackupSpec {
            schedule: text.into(),
            suspend: false,
            successful_backups_history_limit: 2,
            failed_backups_history_limit: 1,
            starting_deadline_seconds: 300,
            backup: target("db", None, None),
        },
    );
    s.metadata.creation_timestamp = Some(Time(at("2026-12-01T00:00:00Z")));
    s.metadata.generation = Some(1);
    s.status = Some(status);
    s
}

fn backup(name: &str, created: &str, phase: Option<BackupPhase>, stop: Option<&str>) -> Backup {
    let mut b = Backup::new(
        name,
        BackupSpec {
            target: target("db", None, None),
        },
    );
    b.metadata = ObjectMeta {
        name: Some(name.into()),
        creation_timestamp: Some(Time(at(created))),
        ..Default::default()
    };
    b.status = Some(BackupStatus {
        phase,
        stop_time: stop.map(|s| Time(at(s))),
        ..Default::default()
    });
    b
}

#[test]
fn a_due_run_creates_one_backup_named_for_its_minute() {
    let s = schedule(
        "0 3 * * *",
        ScheduledBackupStatus {
            last_schedule_time: Some(Time(at("2026-12-01T03:00:00Z"))),
            ..Default::default()
        },
    );
    let now = at("2026-12-02T03:00:20Z");
    let d = decide(&s, &[], now);
    let due = at("2026-12-02T03:00:00Z");
    assert_eq!(
        d.create,
        Some((format!("nightly-{}", due.as_second() / 60), due))
    );
    assert_eq!(d.next, Some(at("2026-12-03T03:00:00Z")));
    let status = schedule_status(&s, &d, d.create.as_ref(), now);
    assert_eq!(status.last_schedule_time, Some(Time(due)));
    assert_eq!(status.active, d.create.map(|c| c.0));

    // The same reconcile again after the status was written: nothing more to create.
    let s = schedule("0 3 * * *", status);
    assert_eq!(decide(&s, &[], at("2026-12-02T03:01:00Z")).create, None);
}

#[test]
fn suspended_late_or_busy_schedules_create_nothing() {
    let mut s = schedule("* * * * *", Default::default());
    let now = at("2026-12-02T03:00:20Z");
    s.spec.suspend = true;
    let d = decide(&s, &[], now);
    assert_eq!((d.create, d.condition.reason.as_str()), (None, "Suspended"));

    s.spec.suspend = false;
    let running = backup(
        "nightly-1",
        "2026-12-02T02:59:00Z",
        Some(BackupPhase::Running),
        None,
    );
    let d = decide(&s, &[&running], now);
    assert_eq!(d.create, None);
    assert_eq!(d.active.as_deref(), Some("nightly-1"));
    assert_eq!(d.condition.reason, "WaitingForRunningBackup");

    // Missed by more than startingDeadlineSeconds: skipped.
    let s = schedule(
        "0 3 * * *",
        ScheduledBackupStatus {
            last_schedule_time: Some(Time(at("2026-12-01T03:00:00Z"))),
            ..Default::default()
        },
    );
    assert_eq!(decide(&s, &[], at("2026-12-02T03:06:00Z")).create, None);

    let mut bad = schedule("0 25 * * *", Default::default());
    bad.spec.schedule = "0 25 * * *".into();
    let d = decide(&bad, &[], now);
    assert_eq!(d.condition.reason, "InvalidSchedule");
    assert!(
        d.condition
            .message
            .contains("spec.schedule \"0 25 * * *\": hour 25"),
        "{}",
        d.condition.message
    );
}

#[test]
fn history_beyond_the_limits_is_pruned_oldest_first() {
    use BackupPhase::*;
    let s = schedule("@daily", Default::default());
    let owned = [
        backup(
            "b1",
            "2026-12-01T00:00:00Z",
            Some(Completed),
            Some("2026-12-01T00:01:00Z"),
        ),
        backup("b2", "2026-12-02T00:00:00Z", Some(Failed), None),
        backup(
            "b3",
            "2026-12-03T00:00:00Z",
            Some(Completed),
            Some("2026-12-03T00:01:00Z"),
        ),
        backup("b4", "2026-12-04T00:00:00Z", Some(Failed), None),
        backup(
            "b5",
            "2026-12-05T00:00:00Z",
            Some(Completed),
            Some("2026-12-05T00:01:00Z"),
        ),
        backup("b6", "2026-12-06T00:00:00Z", Some(Running), None),
    ];
    let refs: Vec<&Backup> = owned.iter().collect();
    let d = decide(&s, &refs, at("2026-12-06T00:00:30Z"));
    assert_eq!(d.prune, ["b1", "b2"]);
    assert_eq!(d.active.as_deref(), Some("b6"));
    assert_eq!(d.last_successful, Some(Time(at("2026-12-05T00:01:00Z"))));
}
