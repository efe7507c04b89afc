//! Three shard-controller replicas over 30 Shards: each owns a disjoint share (checked from their
//! /metrics and from their own reconcile records), a killed replica's Shards are taken over within
//! a lease period, and no Shard is ever reconciled by two replicas at overlapping times.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use multigres_api::{PoolType, Shard};
use multigres_e2e::{OperatorProcess, shared, spawn_operator};
use multigres_runtime::partition::{bucket_of, owner};

const LEASE: Duration = Duration::from_secs(3);
const SHARDS: usize = 30;

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// Polls `check` (reading logs and metrics, which have no watch) until it holds.
async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn all_records(replicas: &[(String, OperatorProcess, u16)]) -> Vec<Record> {
    replicas
        .iter()
        .flat_map(|(_, p, _)| records(&p.log))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_split_thirty_shards_and_take_over_a_dead_one() {
    let cp = shared();
    let client = cp.client();
    multigres_e2e::install_crds(&client).await.unwrap();
    let ns = cp.namespace("shard-partition").await.unwrap();

    // 30 small Shards: one read-only pool of one pod each (no topology needed).
    let tg = orders_table_group(&ns);
    let template = shards_of(&tg).remove(0);
    let api: Api<Shard> = Api::namespaced(client.clone(), &ns);
    let mut keys = Vec::new();
    for i in 0..SHARDS {
        let mut shard = template.clone();
        shard.metadata.name = Some(format!("s-{i}"));
        shard.spec.shard_name = i.to_string();
        shard
            .spec
            .pools
            .retain(|p| p.pool_type == PoolType::ReadOnly);
        api.create(&PostParams::default(), &shard).await.unwrap();
        keys.push(format!("{ns}/s-{i}"));
    }

    let members: Vec<String> = (0..3).map(|i| format!("r{i}")).collect();
    let mut replicas = Vec::new();
    for id in &members {
        let process = spawn_operator(
            &format!("shard-controller-{ns}-{id}"),
            &controller_binary(),
            cp.kubeconfig_path(),
            &cp.log_dir(),
            &[
                "--http-addr".into(),
                "127.0.0.1:0".into(),
                "--grpc-health-addr".into(),
                "127.0.0.1:0".into(),
                "--watch-namespace".into(),
                ns.clone(),
                "--partition".into(),
                "--hold-unserved-shards=false".into(),
                "--lease-namespace".into(),
                ns.clone(),
                "--lease-duration".into(),
                "3s".into(),
                "--identity".into(),
                id.clone(),
            ],
        )
        .unwrap();
        let http = process
            .bound_address("health and metrics", Duration::from_secs(60))
            .await
            .unwrap();
        let port: u16 = http.rsplit_once(':').unwrap().1.parse().unwrap();
        replicas.push((id.clone(), process, port));
    }
    let expected_owner =
        |key: &str, members: &[String]| owner(bucket_of(key), members).unwrap().to_string();
    let expected: BTreeMap<String, usize> = members
        .iter()
        .map(|m| {
            (
                m.clone(),
                keys.iter()
                    .filter(|k| expected_owner(k, &members) == *m)
                    .count(),
            )
        })
        .collect();
    eprintln!("expected split: {expected:?}");

    // Each replica's owned gauge shows its share.
    let started = Instant::now();
    eventually(
        "owned gauges to show the expected split",
        Duration::from_secs(60),
        || {
            let replicas = &replicas;
            let expected = &expected;
            async move {
                for (id, _, port) in replicas {
                    if metric(*port, "multigres_owned_objects").await != Some(expected[id] as f64) {
                        return false;
                    }
                }
                true
            }
        },
    )
    .await;
    eprintln!("split reached after {:?}", started.elapsed());

    // Touch every Shard; only its owner reconciles it from now on.
    let t0 = now_ms();
    let started = Instant::now();
    for i in 0..SHARDS {
        let patch =
            serde_json::json!({"metadata": {"annotations": {"test/touch": t0.to_string()}}});
        api.patch(
            &format!("s-{i}"),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
    }
    eventually(
        "every Shard reconciled after the touch",
        Duration::from_secs(60),
        || {
            let done = all_records(&replicas)
                .into_iter()
                .filter(|r| !r.start && r.at_ms > t0)
                .map(|r| r.shard)
                .collect::<BTreeSet<_>>()
                .len()
                == SHARDS;
            async move { done }
        },
    )
    .await;
    eprintln!(
        "30 Shards reconciled by their owners in {:?}",
        started.elapsed()
    );
    let mut by_replica: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in all_records(&replicas).into_iter().filter(|r| r.at_ms > t0) {
        assert_eq!(
            r.replica,
            expected_owner(&r.shard, &members),
            "{} reconciled by a non-owner",
            r.shard
        );
        by_replica.entry(r.replica).or_default().insert(r.shard);
    }
    let total: usize = by_replica.values().map(BTreeSet::len).sum();
    assert_eq!(total, SHARDS, "disjoint and complete: {by_replica:?}");
    for (id, shards) in &by_replica {
        assert_eq!(shards.len(), expected[id]);
    }

    // Kill r1: its Shards go to r0 and r2 within a lease period of its lease expiring.
    let (dead, process, _) = replicas.remove(1);
    let orphaned: BTreeSet<String> = by_replica[&dead].clone();
    let killed = now_ms();
    let kill_instant = Instant::now();
    process.kill();
    let survivors: Vec<String> = replicas.iter().map(|(id, _, _)| id.clone()).collect();
    eventually(
        "the dead replica's Shards to be reconciled by survivors",
        Duration::from_secs(30),
        || {
            let taken: BTreeSet<String> = all_records(&replicas)
                .into_iter()
                .filter(|r| !r.start && r.at_ms > killed)
                .map(|r| r.shard)
                .collect();
            let done = orphaned.is_subset(&taken);
            async move { done }
        },
    )
    .await;
    let takeover = kill_instant.elapsed();
    let first_takeover = all_records(&replicas)
        .into_iter()
        .filter(|r| r.start && r.at_ms > killed && orphaned.contains(&r.shard))
        .map(|r| r.at_ms - killed)
        .max()
        .unwrap();
    eprintln!(
        "{} Shards of {dead} taken over; last takeover started {first_takeover} ms after the kill",
        orphaned.len()
    );
    // Detection: the lease must go unrenewed for one lease duration, seen by a poll every lease/3;
    // the third period is slack for a 2-core CI machine running other test binaries' processes.
    assert!(
        Duration::from_millis(first_takeover as u64) <= LEASE * 3,
        "takeover took {first_takeover} ms (> 3 lease durations)"
    );
    assert!(takeover < Duration::from_secs(30));
    for r in all_records(&replicas)
        .into_iter()
        .filter(|r| r.at_ms > killed + 2 * LEASE.as_millis())
    {
        assert_eq!(r.replica, expected_owner(&r.shard, &survivors));
    }

    // Nothing reconciled twice at once: per Shard, intervals never overlap across replicas.
    let mut records = all_records(&replicas);
    records.extend(records_of_dead(&process));
    let intervals = intervals(&records, killed);
    let mut checked = 0;
    for (shard, mut list) in intervals {
        list.sort_by_key(|(_, s, _)| *s);
        for pair in list.windows(2) {
            let ((a, _, a_end), (b, b_start, _)) = (&pair[0], &pair[1]);
            assert!(
                a_end <= b_start,
                "{shard}: reconciled by {a} until {a_end} and by {b} from {b_start}"
            );
            checked += 1;
        }
    }
    eprintln!("{checked} consecutive reconcile pairs checked, none overlapping");
    drop(process);
    let _ = dead;
}

fn records_of_dead(process: &OperatorProcess) -> Vec<Record> {
    records(&process.log)
}
