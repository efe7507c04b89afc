//! MultigresCluster status from the status aggregator, against the real control plane and a real
//! etcd: the cluster-controller (as its ServiceAccount) subscribes to a `status-aggregator` process.
//! The other controllers do not run here, so the test plays them as admin: it creates the Shards and
//! the local TopoServer, patches the children's statuses as their controllers would, and writes the
//! PRIMARY Pooler records multipooler would write (as crates/status-aggregator/tests/control_plane.rs
//! does).

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use multigres_api::resolve;
use multigres_api::{
    Cell, MultigresCluster, MultigresClusterStatus, PoolType, Shard, TableGroup, TopoServer, naming,
};
use multigres_dataplane_sim::{PoolPod, PoolerFlags, SimRole, pooler_record};
use multigres_e2e::{OperatorProcess, wait_for};
use multigres_topology::cell_root_on_global;
use serde_json::json;

const STATUS_AGGREGATOR_REACHABLE: &str = "StatusAggregatorReachable";
const DATABASE: &str = "production_db";

/// The `status-aggregator` binary of this workspace, built when missing (`cargo test -p` builds
/// only this crate's binaries; `just test` builds every binary first).
fn aggregator_binary() -> PathBuf {
    if let Ok(path) = multigres_e2e::workspace_binary("status-aggregator") {
        return path;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args([
            "build",
            "-p",
            "multigres-status-aggregator",
            "--bin",
            "status-aggregator",
        ])
        .current_dir(repo())
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building status-aggregator failed");
    multigres_e2e::workspace_binary("status-aggregator").expect("status-aggregator built")
}

fn spawn_aggregator(name: &str, namespace: &str, port: u16, mapping: &str) -> OperatorProcess {
    let plane = cp();
    multigres_e2e::spawn_operator(
        name,
        &aggregator_binary(),
        plane.kubeconfig_path(),
        &plane.log_dir(),
        &[
            "--http-addr=127.0.0.1:0".into(),
            "--grpc-health-addr=127.0.0.1:0".into(),
            format!("--grpc-addr=127.0.0.1:{port}"),
            format!("--watch-namespace={namespace}"),
            format!("--topology-address-map={mapping}"),
            "--topology-poll-interval=500ms".into(),
        ],
    )
    .expect("spawn status-aggregator")
}

fn condition(status: &MultigresClusterStatus, type_: &str) -> (String, String, String) {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

/// Waits (on a watch) until the cluster's status satisfies `cond`.
async fn wait_status(
    clusters: &Api<MultigresCluster>,
    what: &str,
    cond: impl Fn(&MultigresClusterStatus) -> bool,
) -> MultigresClusterStatus {
    let found = wait_for(clusters, SAMPLE, WAIT, |c| {
        c.status.as_ref().is_some_and(&cond)
    })
    .await;
    match found {
        Ok(cluster) => cluster.status.unwrap(),
        Err(e) => {
            let now = clusters.get(SAMPLE).await.ok().and_then(|c| c.status);
            panic!("waiting for {what}: {e}; status now: {now:#?}")
        }
    }
}

fn instances(status: &MultigresClusterStatus) -> Option<(i32, i32)> {
    let db = status.databases.get(DATABASE)?;
    Some((db.desired_instances, db.ready_instances))
}

async fn patch_status<K>(api: &Api<K>, name: &str, status: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .unwrap_or_else(|e| panic!("status of {name}: {e}"));
}

/// Creates what the cell- and tablegroup-controllers would (the Shards and the managed local
/// TopoServer) from the children the cluster-controller made.
async fn create_grandchildren(client: &Client, ns: &str) -> (Vec<Shard>, Vec<TopoServer>) {
    let tgs: Vec<TableGroup> = Api::<TableGroup>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    let shards_api: Api<Shard> = Api::namespaced(client.clone(), ns);
    let mut shards = Vec::new();
    for tg in &tgs {
        for child in resolve::shards(tg) {
            let shard = Shard {
                metadata: kube::api::ObjectMeta {
                    name: Some(child.name.clone()),
                    namespace: Some(ns.into()),
                    labels: Some(child.labels.clone()),
                    ..Default::default()
                },
                spec: child.spec,
                status: None,
            };
            shards.push(
                shards_api
                    .create(&PostParams::default(), &shard)
                    .await
                    .unwrap(),
            );
        }
    }
    let cells: Vec<Cell> = Api::<Cell>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    let topo_api: Api<TopoServer> = Api::namespaced(client.clone(), ns);
    let mut locals = Vec::new();
    for cell in &cells {
        if let Some(child) = resolve::local_topo_server(cell) {
            let server = TopoServer {
                metadata: kube::api::ObjectMeta {
                    name: Some(child.name.clone()),
                    namespace: Some(ns.into()),
                    labels: Some(child.labels.clone()),
                    ..Default::default()
                },
                spec: child.spec,
                status: None,
            };
            locals.push(
                topo_api
                    .create(&PostParams::default(), &server)
                    .await
                    .unwrap(),
            );
        }
    }
    (shards, locals)
}

fn pods(shard: &Shard) -> i32 {
    shard.spec.pools.iter().map(|p| p.replicas).sum()
}

async fn set_ready_pods(client: &Client, ns: &str, shard: &Shard, ready: i32) {
    let api: Api<Shard> = Api::namespaced(client.clone(), ns);
    patch_status(
        &api,
        &shard.name_any(),
        json!({
            "observedGeneration": shard.metadata.generation,
            "totalPods": pods(shard),
            "readyPods": ready,
        }),
    )
    .await;
}

/// Every child reports "at its generation and ready", as its controller would.
async fn report_ready(client: &Client, ns: &str, shards: &[Shard], locals: &[TopoServer]) {
    let topo_api: Api<TopoServer> = Api::namespaced(client.clone(), ns);
    let all_topo = topo_api.list(&Default::default()).await.unwrap().items;
    assert_eq!(
        all_topo.len(),
        1 + locals.len(),
        "global + local TopoServers"
    );
    for t in &all_topo {
        patch_status(
            &topo_api,
            &t.name_any(),
            json!({
                "observedGeneration": t.metadata.generation,
                "replicas": t.spec.replicas,
                "readyReplicas": t.spec.replicas,
                "conditions": [{
                    "type": "Available", "status": "True", "reason": "MembersReady",
                    "message": "", "lastTransitionTime": "2025-01-01T00:00:00Z",
                }],
            }),
        )
        .await;
    }
    let cell_api: Api<Cell> = Api::namespaced(client.clone(), ns);
    for c in cell_api.list(&Default::default()).await.unwrap().items {
        let replicas = c.spec.multigateway.replicas;
        patch_status(
            &cell_api,
            &c.name_any(),
            json!({
                "observedGeneration": c.metadata.generation,
                "gatewayReplicas": replicas,
                "gatewayReadyReplicas": replicas,
                "multiorchAvailable": "True",
            }),
        )
        .await;
    }
    let tg_api: Api<TableGroup> = Api::namespaced(client.clone(), ns);
    for t in tg_api.list(&Default::default()).await.unwrap().items {
        let shards = t.spec.partitioning.shards;
        patch_status(
            &tg_api,
            &t.name_any(),
            json!({
                "observedGeneration": t.metadata.generation,
                "shards": shards,
                "readyShards": shards,
            }),
        )
        .await;
    }
    for s in shards {
        set_ready_pods(client, ns, s, pods(s)).await;
    }
}

/// Writes, for each shard, the PRIMARY Pooler record multipooler would write for pod 0 of its
/// first replica pool, in that pool's cell topology.
async fn write_primaries(etcd: &TestEtcd, cluster: &MultigresCluster, shards: &[Shard]) {
    let topo = topo_client(etcd).await.unwrap();
    for shard in shards {
        let pool = shard
            .spec
            .pools
            .iter()
            .find(|p| p.pool_type == PoolType::Replica)
            .expect("a replica pool");
        let config = cluster
            .spec
            .cells
            .iter()
            .find(|c| c.name == pool.cell)
            .expect("the pool's cell");
        // A cell with a managed local server keeps its records under its own root (the test maps
        // the local server to the same etcd); the others under the global root.
        let root = config
            .spec
            .topo_server
            .as_ref()
            .and_then(|t| t.root_path.clone())
            .unwrap_or_else(|| {
                cell_root_on_global(&shard.spec.global_topo_server.root_path, &pool.cell)
            });
        let pod = PoolPod {
            namespace: shard.namespace().unwrap_or_default(),
            name: format!("{}-replica-{}-0", shard.name_any(), pool.cell),
            uid: String::new(),
            cluster: SAMPLE.into(),
            cell: pool.cell.clone(),
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
        let record = pooler_record(
            &pod,
            shard.spec.multigres_shard(),
            SimRole::Primary { term: 1 },
        );
        topo.write_pooler(&root, &record).await.unwrap();
    }
}

#[tokio::test]
async fn cluster_status_comes_from_the_aggregator_and_survives_its_outage() {
    let plane = cp();
    setup().await;
    let client = plane.client();
    let ns = plane.namespace("cc-agg").await.unwrap();
    let etcd = TestEtcd::start().await;
    let global = naming::topo_address(
        &naming::topo_client_service(&naming::global_topo_server(SAMPLE)),
        &ns,
    );
    let local = naming::topo_address(
        &naming::topo_client_service(&naming::local_topo_server(SAMPLE, "us-west-2")),
        &ns,
    );
    let mapping = format!("{global}={0},{local}={0}", etcd.endpoint());
    let port = free_port();
    let aggregator = spawn_aggregator("status-aggregator-cc-agg", &ns, port, &mapping);
    let controller = start_controller_with(
        &ns,
        &mapping,
        &[format!(
            "--status-aggregator-endpoint=http://127.0.0.1:{port}"
        )],
    )
    .await
    .unwrap();

    apply_templates(&client, &ns).await.unwrap();
    let cluster = apply(&client, &sample_cluster(&ns)).await.unwrap();
    let clusters: Api<MultigresCluster> = Api::namespaced(client.clone(), &ns);

    // The aggregate arrives as soon as the tree exists: Progressing, the pools' 14 instances.
    let status = wait_status(&clusters, "Progressing from the aggregator", |s| {
        condition(s, STATUS_AGGREGATOR_REACHABLE).0 == "True"
            && condition(s, "Progressing").0 == "True"
            && s.databases.contains_key(DATABASE)
    })
    .await;
    assert_eq!(condition(&status, "Available").0, "False");
    assert_eq!(condition(&status, "TopologyReachable").0, "True");
    let tgs = Api::<TableGroup>::namespaced(client.clone(), &ns);
    wait_for(
        &tgs,
        &naming::table_group(SAMPLE, DATABASE, "custom_tg"),
        WAIT,
        |_| true,
    )
    .await
    .unwrap();

    let (shards, locals) = create_grandchildren(&client, &ns).await;
    assert_eq!(shards.len(), 5);
    write_primaries(&etcd, &cluster, &shards).await;
    report_ready(&client, &ns, &shards, &locals).await;
    let started = Instant::now();
    let status = wait_status(&clusters, "Available", |s| {
        condition(s, "Available").0 == "True" && condition(s, "Progressing").0 == "False"
    })
    .await;
    eprintln!(
        "Available {:?} after the children reported ready",
        started.elapsed()
    );
    // production_db: default 3 + orders_tg 2 x (2 + 1) + analytics_tg 3 + custom_tg 2.
    assert_eq!(instances(&status), Some((14, 14)));
    assert_eq!(status.ready_instances_summary.as_deref(), Some("14/14"));
    assert_eq!(status.observed_generation, cluster.metadata.generation);
    assert_eq!(
        status.databases[DATABASE].serving_writes,
        multigres_api::Tristate::True
    );
    assert_eq!(
        (status.cell_count, status.database_count),
        (Some(2), Some(1))
    );
    assert_eq!(condition(&status, "Degraded").0, "False");
    assert_eq!(condition(&status, "TopologyReachable").0, "True");

    // A shard's pods lose readiness: the cluster shows it within seconds.
    let default_shard = shards
        .iter()
        .find(|s| s.spec.table_group == "default")
        .unwrap();
    let started = Instant::now();
    set_ready_pods(&client, &ns, default_shard, 1).await;
    let status = wait_status(&clusters, "12/14 ready", |s| instances(s) == Some((14, 12))).await;
    let seen_after = started.elapsed();
    eprintln!("readiness drop visible on the cluster after {seen_after:?}");
    assert!(seen_after < Duration::from_secs(5), "took {seen_after:?}");
    let progressing = condition(&status, "Progressing");
    assert_eq!(
        (progressing.0.as_str(), progressing.1.as_str()),
        ("True", "PodsNotReady")
    );
    assert!(
        progressing.2.contains(&default_shard.name_any()),
        "{}",
        progressing.2
    );

    // The aggregator stops: only StatusAggregatorReachable changes; children are still reconciled.
    aggregator.kill();
    let started = Instant::now();
    let during = wait_status(&clusters, "StatusAggregatorReachable=False", |s| {
        condition(s, STATUS_AGGREGATOR_REACHABLE).0 == "False"
    })
    .await;
    eprintln!("outage visible after {:?}", started.elapsed());
    assert_eq!(
        condition(&during, STATUS_AGGREGATOR_REACHABLE).1,
        "Unreachable"
    );
    assert_eq!(instances(&during), Some((14, 12)), "other fields kept");
    assert_eq!(condition(&during, "Progressing"), progressing);
    drop(aggregator);

    let cells: Api<Cell> = Api::namespaced(client.clone(), &ns);
    let cell_name = naming::cell(SAMPLE, "us-east-1");
    let original = cells.get(&cell_name).await.unwrap().spec;
    cells
        .patch(
            &cell_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"multigateway": {"replicas": 42}}})),
        )
        .await
        .unwrap();
    wait_for(&cells, &cell_name, WAIT, |c| c.spec == original)
        .await
        .expect("the hand edit is reverted while the aggregator is down");

    // Meanwhile the pods come back and the cell-controller (played here) reports the Cell at its
    // new generation (the edit and its revert bumped it); the restarted aggregator catches up.
    report_ready(&client, &ns, &shards, &locals).await;
    let started = Instant::now();
    let _aggregator = spawn_aggregator("status-aggregator-cc-agg-2", &ns, port, &mapping);
    let after = wait_status(&clusters, "recovered", |s| {
        condition(s, STATUS_AGGREGATOR_REACHABLE).0 == "True"
            && instances(s) == Some((14, 14))
            && condition(s, "Available").0 == "True"
            && condition(s, "Progressing").0 == "False"
    })
    .await;
    eprintln!("status recovered {:?} after the restart", started.elapsed());
    assert_eq!(after.observed_generation, cluster.metadata.generation);
    assert!(controller.log().contains("status aggregator"));
}
