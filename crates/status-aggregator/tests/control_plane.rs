//! The aggregator against the real local control plane and a real etcd: children are created
//! directly with the statuses their controllers would report (patched as admin), Pooler records are
//! written into etcd where multipooler writes them, and the aggregate is read over gRPC.
//!
//! The test cluster uses an external global topology (`etcd-e2e:2379`, mapped to the test etcd),
//! so one address mapping serves every test namespace.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use multigres_api::{
    Cell, MultigresCluster, MultigresClusterStatus, PoolType, Shard, TableGroup, Tristate,
};
use multigres_dataplane_sim::testing::{Children, children, make_ready};
use multigres_dataplane_sim::{PoolPod, PoolerFlags, SimRole, pooler_record};
use multigres_e2e::etcd::TestEtcd;
use multigres_e2e::{OperatorProcess, spawn_operator};
use multigres_status_api::client::{StatusEvent, StatusSubscription};
use multigres_topology::{
    AddressMapping, PoolerServingStatus, TopoClient, cell_root_on_global, pooler_key,
};
use serde_json::json;
use tokio::sync::OnceCell;

const TOPOLOGY: &str = "etcd-e2e:2379";
const WAIT: Duration = Duration::from_secs(30);
/// How often the aggregator under test reads every topology; changes come through its watches.
const POLL_INTERVAL: Duration = Duration::from_secs(12);

struct Shared {
    /// The test etcd's client address.
    etcd: String,
    endpoint: String,
    _aggregator: OperatorProcess,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kept after the run (the control plane's own folder is removed), so a failure can be read.
fn log_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("multigres-status-aggregator-tests")
}

/// Starts etcd from a thread that lives as long as the test binary: the harness sets
/// PR_SET_PDEATHSIG, which fires when the *spawning thread* exits, and every test has its own.
fn start_etcd() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("test-etcd".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let etcd = runtime.block_on(TestEtcd::start());
            tx.send(etcd.endpoint().to_string()).unwrap();
            loop {
                std::thread::park();
            }
        })
        .unwrap();
    rx.recv().expect("etcd starts")
}

async fn topo_client(endpoint: &str) -> TopoClient {
    TopoClient::connect(
        &[endpoint.to_string()],
        &AddressMapping::off(),
        Duration::from_secs(5),
        None,
    )
    .await
    .unwrap()
}

fn spawn_aggregator(name: &str, port: u16, etcd: &str) -> OperatorProcess {
    let plane = multigres_e2e::shared();
    spawn_operator(
        name,
        env!("CARGO_BIN_EXE_status-aggregator").as_ref(),
        plane.kubeconfig_path(),
        &log_dir(),
        &[
            "--http-addr=127.0.0.1:0".into(),
            "--grpc-health-addr=127.0.0.1:0".into(),
            format!("--grpc-addr=127.0.0.1:{port}"),
            format!("--topology-address-map={TOPOLOGY}={etcd}"),
            // Long: a pooler record change must reach the aggregate through the watch, between
            // ticks (serving_writes_follows_primary_pooler_records_in_the_topology).
            format!("--topology-poll-interval={}s", POLL_INTERVAL.as_secs()),
        ],
    )
    .expect("spawn status-aggregator")
}

async fn shared() -> &'static Shared {
    static SHARED: OnceCell<Shared> = OnceCell::const_new();
    SHARED
        .get_or_init(|| async {
            let plane = multigres_e2e::shared();
            multigres_e2e::install_crds(&plane.client())
                .await
                .expect("install CRDs");
            let etcd = tokio::task::spawn_blocking(start_etcd).await.unwrap();
            let aggregator = spawn_aggregator("status-aggregator", 0, &etcd);
            let endpoint = aggregator
                .bound_address("status API", Duration::from_secs(120))
                .await
                .expect("the aggregator listens");
            Shared {
                endpoint,
                etcd,
                _aggregator: aggregator,
            }
        })
        .await
}

fn cluster(namespace: &str) -> MultigresCluster {
    serde_json::from_value(json!({
        "apiVersion": "multigres.com/v1alpha1",
        "kind": "MultigresCluster",
        "metadata": {"name": "prod", "namespace": namespace},
        "spec": {
            "globalTopoServer": {"external": {"address": TOPOLOGY}},
            "cells": [{"name": "a"}, {"name": "b"}],
            "databases": [{"name": "orders", "spec": {"tablegroups": [{
                "name": "default",
                "partitioning": {"shards": 2},
                "shardTemplate": {"pools": [
                    {"type": "replica", "cell": "a", "replicas": 2},
                    {"type": "readOnly", "cell": "b", "replicas": 1}
                ]}
            }]}}]
        }
    }))
    .unwrap()
}

/// Creates the cluster, returning it as stored (with its generation) and its children.
async fn create_cluster(client: &Client, namespace: &str) -> (MultigresCluster, Children) {
    let api: Api<MultigresCluster> = Api::namespaced(client.clone(), namespace);
    let created = api
        .create(&PostParams::default(), &cluster(namespace))
        .await
        .unwrap();
    let kids = children(&created);
    (created, kids)
}

async fn create_children(client: &Client, namespace: &str, kids: &Children) {
    let pp = PostParams::default();
    let strip = |mut m: kube::api::ObjectMeta| {
        m.generation = None;
        m
    };
    let cells: Api<Cell> = Api::namespaced(client.clone(), namespace);
    for c in &kids.cells {
        let mut c = c.clone();
        c.metadata = strip(c.metadata);
        cells.create(&pp, &c).await.unwrap();
    }
    let tgs: Api<TableGroup> = Api::namespaced(client.clone(), namespace);
    for t in &kids.table_groups {
        let mut t = t.clone();
        t.metadata = strip(t.metadata);
        tgs.create(&pp, &t).await.unwrap();
    }
    let shards: Api<Shard> = Api::namespaced(client.clone(), namespace);
    for s in &kids.shards {
        let mut s = s.clone();
        s.metadata = strip(s.metadata);
        shards.create(&pp, &s).await.unwrap();
    }
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), namespace);
    let mut d = kids.multiadmin.clone();
    d.metadata = strip(d.metadata);
    deployments.create(&pp, &d).await.unwrap();
}

/// Patches the statuses of the Cells, TableGroups and Shards to "ready at generation 1" (the
/// multiadmin Deployment's status comes from the real deployment controller and kwok).
async fn report_ready(client: &Client, namespace: &str, kids: &Children) {
    let mut ready = kids.clone();
    make_ready(&mut ready);
    let pp = PatchParams::default();
    let cells: Api<Cell> = Api::namespaced(client.clone(), namespace);
    for c in &ready.cells {
        cells
            .patch_status(
                &c.name_any(),
                &pp,
                &Patch::Merge(json!({"status": c.status})),
            )
            .await
            .unwrap();
    }
    let tgs: Api<TableGroup> = Api::namespaced(client.clone(), namespace);
    for t in &ready.table_groups {
        tgs.patch_status(
            &t.name_any(),
            &pp,
            &Patch::Merge(json!({"status": t.status})),
        )
        .await
        .unwrap();
    }
    for s in &ready.shards {
        set_shard_ready_pods(client, namespace, s, s.status.as_ref().unwrap().ready_pods).await;
    }
}

async fn set_shard_ready_pods(client: &Client, namespace: &str, shard: &Shard, ready: i32) {
    let shards: Api<Shard> = Api::namespaced(client.clone(), namespace);
    let total: i32 = shard.spec.pools.iter().map(|p| p.replicas).sum();
    shards
        .patch_status(
            &shard.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "observedGeneration": 1, "totalPods": total, "readyPods": ready
            }})),
        )
        .await
        .unwrap();
}

/// Writes (or rewrites) the Pooler record multipooler would write for pod 0 of the shard's replica
/// pool in cell `a`, as PRIMARY with `serving`.
async fn write_primary(topo: &TopoClient, namespace: &str, shard: &Shard, serving: bool) {
    write_primary_of(topo, namespace, shard, 0, serving).await;
}

/// [`write_primary`] for pod `index`; returns the record's key.
async fn write_primary_of(
    topo: &TopoClient,
    namespace: &str,
    shard: &Shard,
    index: u32,
    serving: bool,
) -> String {
    let pod = PoolPod {
        namespace: namespace.into(),
        name: format!("{}-replica-a-{index}", shard.name_any()),
        uid: String::new(),
        cluster: "prod".into(),
        cell: "a".into(),
        database: shard.spec.database.clone(),
        table_group: shard.spec.table_group.clone(),
        shard: shard.spec.shard_name.clone(),
        pool_type: PoolType::Replica,
        ready: true,
        terminating: false,
        since: None,
        shard_resource: shard.name_any(),
        flags: PoolerFlags::default(),
    };
    let mut record = pooler_record(
        &pod,
        shard.spec.multigres_shard(),
        SimRole::Primary { term: 1 },
    );
    if !serving {
        // A primary draining for a demotion is not serving.
        record.set_serving_status(PoolerServingStatus::Draining);
    }
    let root = cell_root_on_global(&shard.spec.global_topo_server.root_path, "a");
    topo.write_pooler(&root, &record).await.unwrap();
    pooler_key(&root, "a", &record.id.unwrap().name)
}

/// Waits until the aggregate streamed for the cluster satisfies `cond`; returns it.
async fn wait_status(
    stream: &mut (impl Stream<Item = MultigresClusterStatus> + Unpin),
    what: &str,
    cond: impl Fn(&MultigresClusterStatus) -> bool,
) -> MultigresClusterStatus {
    let mut last = None;
    let outcome = tokio::time::timeout(WAIT, async {
        while let Some(status) = stream.next().await {
            if cond(&status) {
                return Some(status);
            }
            last = Some(status);
        }
        None
    })
    .await;
    match outcome {
        Ok(Some(status)) => status,
        _ => panic!("timed out waiting for {what}; last aggregate: {last:#?}"),
    }
}

fn condition(status: &MultigresClusterStatus, type_: &str) -> (String, String, String) {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

#[tokio::test]
async fn a_cluster_goes_from_progressing_to_available_and_follows_pod_readiness() {
    let shared = shared().await;
    let plane = multigres_e2e::shared();
    let client = plane.client();
    let ns = plane.namespace("agg-avail").await.unwrap();
    let subscription = StatusSubscription::connect(&shared.endpoint, None).unwrap();
    let mut stream = Box::pin(subscription.watch(&ns, "prod"));

    let (created, kids) = create_cluster(&client, &ns).await;
    let status = wait_status(&mut stream, "ChildrenMissing", |s| {
        condition(s, "Progressing").1 == "ChildrenMissing"
    })
    .await;
    assert!(condition(&status, "Progressing").2.contains("Cell prod-a"));
    assert_eq!(condition(&status, "Available").0, "False");
    assert_eq!(status.observed_generation, None);

    create_children(&client, &ns, &kids).await;
    wait_status(&mut stream, "children created, not yet reporting", |s| {
        condition(s, "Progressing").1 == "ChildrenUpdating"
    })
    .await;

    let topo = topo_client(&shared.etcd).await;
    for shard in &kids.shards {
        write_primary(&topo, &ns, shard, true).await;
    }
    report_ready(&client, &ns, &kids).await;
    let status = wait_status(&mut stream, "Available", |s| {
        condition(s, "Available").0 == "True" && condition(s, "Progressing").0 == "False"
    })
    .await;
    let generation = created.metadata.generation;
    assert_eq!(status.observed_generation, generation);
    let db = &status.databases["orders"];
    // 2 shards x (2 replica + 1 readOnly).
    assert_eq!((db.desired_instances, db.ready_instances), (6, 6));
    assert_eq!(db.serving_writes, Tristate::True);
    assert_eq!(status.ready_instances_summary.as_deref(), Some("6/6"));
    assert_eq!(status.cell_count, Some(2));
    assert_eq!(status.database_count, Some(1));
    assert_eq!(
        status.multiadmin.as_ref().unwrap().available,
        Tristate::True
    );
    assert_eq!(
        status.multiadmin.as_ref().unwrap().service_name,
        "prod-multiadmin"
    );
    assert_eq!(
        status.global_topo_server.as_ref().unwrap().etcd.available,
        Tristate::True
    );
    for cell in ["a", "b"] {
        let c = &status.cells[cell];
        assert_eq!(
            (
                c.gateway_available,
                c.multiorch_available,
                c.topo_server_available
            ),
            (Tristate::True, Tristate::True, Tristate::True),
            "cell {cell}"
        );
    }
    assert_eq!(
        subscription.get(&ns, "prod").await.unwrap(),
        status,
        "unary and stream agree"
    );

    // A shard's pods lose readiness: the aggregate shows it within seconds.
    let started = Instant::now();
    set_shard_ready_pods(&client, &ns, &kids.shards[0], 1).await;
    let status = wait_status(&mut stream, "ready instances 4/6", |s| {
        s.ready_instances_summary.as_deref() == Some("4/6")
    })
    .await;
    let seen_after = started.elapsed();
    assert_eq!(condition(&status, "Progressing").1, "PodsNotReady");
    assert!(
        condition(&status, "Progressing")
            .2
            .contains("1/3 pods ready")
    );
    assert!(seen_after < Duration::from_secs(5), "took {seen_after:?}");
    eprintln!("readiness drop visible after {seen_after:?}");
}

#[tokio::test]
async fn serving_writes_follows_primary_pooler_records_in_the_topology() {
    let shared = shared().await;
    let plane = multigres_e2e::shared();
    let client = plane.client();
    let ns = plane.namespace("agg-serving").await.unwrap();
    let subscription = StatusSubscription::connect(&shared.endpoint, None).unwrap();
    let mut stream = Box::pin(subscription.watch(&ns, "prod"));
    let (_, kids) = create_cluster(&client, &ns).await;
    create_children(&client, &ns, &kids).await;
    report_ready(&client, &ns, &kids).await;
    let serving = |want: Tristate| {
        move |s: &MultigresClusterStatus| {
            s.databases.get("orders").map(|d| d.serving_writes) == Some(want)
        }
    };

    let status = wait_status(&mut stream, "no primary: False", serving(Tristate::False)).await;
    assert!(
        condition(&status, "Available")
            .2
            .contains("has no serving PRIMARY")
    );

    let topo = topo_client(&shared.etcd).await;
    write_primary(&topo, &ns, &kids.shards[0], true).await;
    let started = Instant::now();
    write_primary(&topo, &ns, &kids.shards[1], true).await;
    wait_status(&mut stream, "both primaries: True", serving(Tristate::True)).await;
    let seen = started.elapsed();
    eprintln!("servingWrites True {seen:?} after the record was written");
    assert!(
        seen < POLL_INTERVAL / 4,
        "the watch, not the {POLL_INTERVAL:?} tick, carried the change: {seen:?}"
    );

    write_primary(&topo, &ns, &kids.shards[1], false).await;
    wait_status(
        &mut stream,
        "primary not serving: False",
        serving(Tristate::False),
    )
    .await;
    write_primary(&topo, &ns, &kids.shards[1], true).await;
    wait_status(&mut stream, "serving again: True", serving(Tristate::True)).await;

    // A second record claiming PRIMARY for the shard: contested, so not serving, whatever the
    // first one says.
    let second = write_primary_of(&topo, &ns, &kids.shards[1], 1, true).await;
    let status = wait_status(
        &mut stream,
        "two primaries: False",
        serving(Tristate::False),
    )
    .await;
    assert!(
        condition(&status, "Available")
            .2
            .contains("several poolers claim PRIMARY")
    );
    assert!(topo.delete(&second).await.unwrap());
    wait_status(
        &mut stream,
        "one primary again: True",
        serving(Tristate::True),
    )
    .await;
}

#[tokio::test]
async fn the_stream_recovers_when_the_aggregator_restarts() {
    let shared = shared().await;
    let plane = multigres_e2e::shared();
    let client = plane.client();
    let ns = plane.namespace("agg-restart").await.unwrap();
    let (_, kids) = create_cluster(&client, &ns).await;
    create_children(&client, &ns, &kids).await;

    // A second aggregator of this test's own, so that killing it disturbs no other test.
    let port = free_port();
    let aggregator = spawn_aggregator("status-aggregator-restart", port, &shared.etcd);
    let subscription = StatusSubscription::connect(&format!("127.0.0.1:{port}"), None).unwrap();
    let mut all = Box::pin(subscription.watch_all(Some(&ns)));
    let mut next = async || {
        tokio::time::timeout(WAIT, all.next())
            .await
            .expect("event within 30s")
            .expect("stream never ends")
    };
    // Until the process listens, the client may report it unreachable first.
    let mut event = next().await;
    while matches!(event, StatusEvent::Disconnected { .. }) {
        event = next().await;
    }
    assert!(
        matches!(&event, StatusEvent::Status { cluster, .. } if cluster.name == "prod"),
        "{event:?}"
    );
    assert_eq!(next().await, StatusEvent::Synced);

    aggregator.kill();
    assert!(matches!(next().await, StatusEvent::Disconnected { .. }));
    drop(aggregator);

    // Meanwhile the cluster changes; the restarted aggregator delivers the current state.
    report_ready(&client, &ns, &kids).await;
    let started = Instant::now();
    let _aggregator = spawn_aggregator("status-aggregator-restart-2", port, &shared.etcd);
    let status = loop {
        match next().await {
            StatusEvent::Status { status, .. } => break status,
            StatusEvent::Disconnected { .. } => continue,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(next().await, StatusEvent::Synced);
    eprintln!("stream recovered {:?} after the restart", started.elapsed());
    // The restarted aggregator saw the statuses reported while it was down.
    assert_eq!(status.databases["orders"].ready_instances, 6);
}
