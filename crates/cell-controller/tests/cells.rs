//! The cell controller against a real control plane, with real etcd processes as the global and the
//! cell-local topology servers (reached through `--topology-address-map`, since Service DNS names do
//! not resolve from the host and kwok pods run no etcd). The topo controller runs too, so the local
//! TopoServer turns Available once kwok reports its pod ready.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::{Api, Client, ResourceExt};
use multigres_api::cell::{CellImages, CellTopoServer};
use multigres_api::labels::{self, component};
use multigres_api::multigres::pooler_service_id;
use multigres_api::{
    Cell, CellSpec, GlobalTopologyRef, ResolvedComponent, TopoServer, TopologyReconciliation,
    Tristate, naming,
};
use multigres_e2e::etcd::TestEtcd as Etcd;
use multigres_e2e::{OperatorProcess, shared, spawn_operator, wait_deleted, wait_for};
use multigres_runtime::conditions::{AVAILABLE, is_true};
use multigres_topology::pb::{self, id::ComponentType};
use multigres_topology::{AddressMapping, TopoClient};
use tokio::sync::OnceCell;

const WAIT: Duration = Duration::from_secs(90);
const CLUSTER: &str = "example";
const GLOBAL_ROOT: &str = "/multigres/global";

/// CRDs and the topo controller, once per test binary.
async fn topo_controller() -> &'static OperatorProcess {
    static TOPO: OnceCell<OperatorProcess> = OnceCell::const_new();
    TOPO.get_or_init(|| async {
        let cp = shared();
        multigres_e2e::install_crds(&cp.client())
            .await
            .expect("CRDs install");
        let bin = multigres_e2e::workspace_binary("topo-controller")
            .expect("build it first: cargo build -p multigres-topo-controller");
        spawn_operator(
            "topo-controller",
            &bin,
            cp.kubeconfig_path(),
            &cp.log_dir(),
            &[
                "--http-addr=127.0.0.1:0".into(),
                "--grpc-health-addr=127.0.0.1:0".into(),
            ],
        )
        .expect("topo-controller starts")
    })
    .await
}

fn global_address(ns: &str) -> String {
    naming::topo_address(
        &naming::topo_client_service(&naming::global_topo_server(CLUSTER)),
        ns,
    )
}

fn local_address(ns: &str, cell: &str) -> String {
    naming::topo_address(
        &naming::topo_client_service(&naming::local_topo_server(CLUSTER, cell)),
        ns,
    )
}

/// A cell controller for one namespace, dialing the given etcds for the in-cluster addresses.
fn cell_controller(ns: &str, mapping: &[(String, &Etcd)]) -> OperatorProcess {
    let cp = shared();
    let map = mapping
        .iter()
        .map(|(from, etcd)| format!("{from}={}", etcd.endpoint()))
        .collect::<Vec<_>>()
        .join(",");
    spawn_operator(
        &format!("cell-controller-{ns}"),
        env!("CARGO_BIN_EXE_cell-controller").as_ref(),
        cp.kubeconfig_path(),
        &cp.log_dir(),
        &[
            "--http-addr=127.0.0.1:0".into(),
            "--grpc-health-addr=127.0.0.1:0".into(),
            format!("--watch-namespace={ns}"),
            format!("--topology-address-map={map}"),
            "--topology-timeout=1s".into(),
            "--resync-interval=3s".into(),
        ],
    )
    .expect("cell-controller starts")
}

/// A Cell as the cluster controller would create it from the CR definition's sample cluster.
fn cell(ns: &str, name: &str, topo_server: CellTopoServer, databases: &[&str]) -> Cell {
    Cell {
        metadata: ObjectMeta {
            name: Some(naming::cell(CLUSTER, name)),
            namespace: Some(ns.into()),
            labels: Some(labels::with(
                labels::for_component(CLUSTER, component::CELL),
                labels::CELL,
                name,
            )),
            ..Default::default()
        },
        spec: CellSpec {
            name: name.into(),
            images: CellImages {
                multigateway: "multigres/multigres:latest".into(),
                multiorch: "multigres/multigres:latest".into(),
                image_pull_policy: None,
                image_pull_secrets: vec![],
            },
            multigateway: ResolvedComponent {
                replicas: 2,
                ..Default::default()
            },
            multiorch: ResolvedComponent {
                replicas: 1,
                ..Default::default()
            },
            global_topo_server: GlobalTopologyRef {
                root_path: GLOBAL_ROOT.into(),
                client_service_name: Some(naming::topo_client_service(
                    &naming::global_topo_server(CLUSTER),
                )),
                address: global_address(ns),
                tls_secret_name: None,
            },
            topo_server,
            all_cells: vec!["us-east-1".into(), "us-west-2".into()],
            databases: databases.iter().map(|d| d.to_string()).collect(),
            topology_reconciliation: TopologyReconciliation::default(),
            placement: None,
            gateway_service: None,
            tls: None,
        },
        status: None,
    }
}

fn managed_local() -> CellTopoServer {
    serde_json::from_value(serde_json::json!({
        "managedSpec": {
            "rootPath": "/multigres/us-west-2",
            "image": "quay.io/coreos/etcd:v3.5.17",
            "replicas": 1,
            "dataVolumeClaimTemplate": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}
            }
        }
    }))
    .expect("managed spec parses")
}

fn condition<'a>(
    cell: &'a Cell,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    cell.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

fn registered(cell: &Cell) -> bool {
    condition(cell, "TopologyRegistered").is_some_and(|c| c.status == "True")
}

/// Polls `check` until it holds (the topology has no Kubernetes watch to wait on).
async fn eventually<F, Fut>(what: &str, timeout: Duration, check: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// A client of a test etcd, unmapped.
async fn topo_client(etcd: &Etcd) -> TopoClient {
    let endpoints = [etcd.endpoint().to_string()];
    TopoClient::connect(
        &endpoints,
        &AddressMapping::off(),
        Duration::from_secs(2),
        None,
    )
    .await
    .expect("connect")
}

async fn cell_record(etcd: &Etcd, cell: &str) -> Option<pb::Cell> {
    topo_client(etcd)
        .await
        .get::<pb::Cell>(&multigres_topology::cell_key(GLOBAL_ROOT, cell))
        .await
        .expect("global etcd answers")
        .map(|(record, _)| record)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_cells_come_up_register_and_deregister() {
    topo_controller().await;
    let cp = shared();
    let ns = cp.namespace("cells").await.unwrap();
    let (global, local) = (Etcd::start().await, Etcd::start().await);
    let controller = cell_controller(
        &ns,
        &[
            (global_address(&ns), &global),
            (local_address(&ns, "us-west-2"), &local),
        ],
    );
    let client: Client = cp.client();
    let cells: Api<Cell> = Api::namespaced(client.clone(), &ns);
    let started = Instant::now();
    cells
        .create(
            &PostParams::default(),
            &cell(&ns, "us-east-1", CellTopoServer::default(), &[]),
        )
        .await
        .unwrap();
    cells
        .create(
            &PostParams::default(),
            &cell(&ns, "us-west-2", managed_local(), &["postgres"]),
        )
        .await
        .unwrap();

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &ns);
    let east = naming::cell(CLUSTER, "us-east-1");
    let west = naming::cell(CLUSTER, "us-west-2");
    for cell in [&east, &west] {
        let gw = wait_for(&deployments, &naming::gateway(cell), WAIT, |_| true)
            .await
            .unwrap();
        assert_eq!(gw.spec.unwrap().replicas, Some(2));
        wait_for(&services, &naming::gateway(cell), WAIT, |_| true)
            .await
            .unwrap();
        // A drain takes at most one pod of each component at a time.
        for (name, component) in [
            (naming::gateway(cell), "multigateway"),
            (naming::multiorch(cell), "multiorch"),
        ] {
            let pdb = wait_for(&pdbs, &name, WAIT, |_| true).await.unwrap();
            let spec = pdb.spec.unwrap();
            assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)), "{name}");
            let selector = spec.selector.unwrap().match_labels.unwrap();
            assert_eq!(selector["app.kubernetes.io/component"], component, "{name}");
        }
    }
    let idle_orch = wait_for(&deployments, &naming::multiorch(&east), WAIT, |_| true)
        .await
        .unwrap();
    assert_eq!(
        idle_orch.spec.unwrap().replicas,
        Some(0),
        "us-east-1 serves no database"
    );
    let orch = wait_for(&deployments, &naming::multiorch(&west), WAIT, |_| true)
        .await
        .unwrap();
    let args = orch.spec.unwrap().template.spec.unwrap().containers[0]
        .args
        .clone()
        .unwrap();
    assert!(
        args.contains(&"--watch-targets=postgres".to_string()),
        "{args:?}"
    );

    let topos: Api<TopoServer> = Api::namespaced(client.clone(), &ns);
    let local_ts = naming::local_topo_server(CLUSTER, "us-west-2");
    let ts = wait_for(&topos, &local_ts, WAIT, |t| {
        t.status
            .as_ref()
            .is_some_and(|s| is_true(&s.conditions, AVAILABLE))
    })
    .await
    .unwrap();
    assert_eq!(ts.owner_references()[0].kind, "Cell");
    assert_eq!(ts.spec.root_path, "/multigres/us-west-2");

    // Both records, exactly.
    let east_cell = wait_for(&cells, &east, WAIT, registered)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\nlog: {}", controller.log.display()));
    let west_cell = wait_for(&cells, &west, WAIT, registered)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\nlog: {}", controller.log.display()));
    eprintln!("both cells registered after {:?}", started.elapsed());
    assert_eq!(
        cell_record(&global, "us-east-1").await,
        Some(pb::Cell {
            name: "us-east-1".into(),
            server_addresses: vec![global_address(&ns)],
            root: "/multigres/global/us-east-1".into(),
        })
    );
    assert_eq!(
        cell_record(&global, "us-west-2").await,
        Some(pb::Cell {
            name: "us-west-2".into(),
            server_addresses: vec![local_address(&ns, "us-west-2")],
            root: "/multigres/us-west-2".into(),
        })
    );
    let west_status = west_cell.status.unwrap();
    assert_eq!(
        west_status.topo_server.address.as_deref(),
        Some(local_address(&ns, "us-west-2").as_str())
    );
    assert_eq!(
        west_status.topo_server.root_path.as_deref(),
        Some("/multigres/us-west-2")
    );
    assert_eq!(west_status.topo_server.registered, Some(Tristate::True));
    assert_eq!(west_status.topo_server.available, Some(Tristate::True));
    assert_eq!(
        east_cell.status.unwrap().topo_server.root_path.as_deref(),
        Some("/multigres/global/us-east-1")
    );

    // kwok makes the pods ready: both cells become Available.
    let east_ready = wait_for(&cells, &east, WAIT, |c| {
        c.status
            .as_ref()
            .is_some_and(|s| is_true(&s.conditions, AVAILABLE))
    })
    .await
    .unwrap();
    let status = east_ready.status.unwrap();
    assert_eq!(
        status.gateway_service_name.as_deref(),
        Some(naming::gateway(&east).as_str())
    );
    assert!(status.gateway_ready_replicas >= 1);
    let available = status
        .conditions
        .iter()
        .find(|c| c.type_ == AVAILABLE)
        .unwrap();
    assert!(
        available.message.contains("serves no database"),
        "{}",
        available.message
    );
    let west_ready = wait_for(&cells, &west, WAIT, |c| {
        c.status
            .as_ref()
            .is_some_and(|s| is_true(&s.conditions, AVAILABLE))
    })
    .await
    .unwrap();
    assert_eq!(
        west_ready.status.unwrap().multiorch_available,
        Tristate::True
    );

    // Removing a cell removes its record; the other stays.
    cells.delete(&west, &DeleteParams::default()).await.unwrap();
    wait_deleted(&cells, &west, WAIT).await.unwrap();
    assert_eq!(cell_record(&global, "us-west-2").await, None);
    assert!(cell_record(&global, "us-east-1").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_waits_out_a_global_topology_outage() {
    topo_controller().await;
    let cp = shared();
    let ns = cp.namespace("outage").await.unwrap();
    let mut global = Etcd::start().await;
    let controller = cell_controller(&ns, &[(global_address(&ns), &global)]);
    global.stop();

    let cells: Api<Cell> = Api::namespaced(cp.client(), &ns);
    cells
        .create(
            &PostParams::default(),
            &cell(&ns, "us-east-1", CellTopoServer::default(), &[]),
        )
        .await
        .unwrap();
    let east = naming::cell(CLUSTER, "us-east-1");
    let waiting = wait_for(&cells, &east, WAIT, |c| {
        condition(c, "TopologyRegistered").is_some_and(|c| c.status == "False")
    })
    .await
    .unwrap();
    let reason = condition(&waiting, "TopologyRegistered").unwrap();
    assert_eq!(reason.reason, "TopologyUnreachable", "{reason:?}");
    assert_eq!(
        waiting.status.as_ref().unwrap().topo_server.registered,
        Some(Tristate::False)
    );
    // The rest of the cell does not wait for the topology.
    let deployments: Api<Deployment> = Api::namespaced(cp.client(), &ns);
    wait_for(&deployments, &naming::gateway(&east), WAIT, |_| true)
        .await
        .unwrap();

    let down_at = Instant::now();
    assert!(global.restart().await, "etcd restarts");
    wait_for(&cells, &east, WAIT, registered)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\nlog: {}", controller.log.display()));
    eprintln!(
        "registered {:?} after the topology came back",
        down_at.elapsed()
    );
    assert_eq!(
        cell_record(&global, "us-east-1").await.map(|c| c.root),
        Some("/multigres/global/us-east-1".into())
    );
    let log = std::fs::read_to_string(&controller.log).unwrap();
    assert!(!log.contains("panicked"), "the controller panicked:\n{log}");
}

fn pooler(cell: &str, name: &str, hostname: &str) -> pb::MultiPooler {
    pb::MultiPooler {
        id: Some(pb::Id {
            component: ComponentType::Multipooler.into(),
            cell: cell.into(),
            name: name.into(),
        }),
        hostname: hostname.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_removes_only_records_of_missing_pods() {
    topo_controller().await;
    let cp = shared();
    let ns = cp.namespace("prune").await.unwrap();
    let global = Etcd::start().await;
    let cell_root = multigres_topology::cell_root_on_global(GLOBAL_ROOT, "us-east-1");
    let topo = topo_client(&global).await;
    // Records name their pods the way multipooler does: by service id, with a hostname that
    // here (an IP) does not name the pod, so only the service id traces them.
    for (name, ip) in [("live-pod", "10.0.0.1"), ("gone-pod", "10.0.0.2")] {
        topo.write_pooler(
            &cell_root,
            &pooler("us-east-1", &pooler_service_id(name), ip),
        )
        .await
        .unwrap();
    }
    let pods: Api<Pod> = Api::namespaced(cp.client(), &ns);
    let pool_labels = labels::with(
        labels::with(
            labels::for_component(CLUSTER, component::SHARD_POOL),
            labels::CELL,
            "us-east-1",
        ),
        labels::POOL,
        "replica-us-east-1",
    );
    pods.create(
        &PostParams::default(),
        &Pod {
            metadata: ObjectMeta {
                name: Some("live-pod".into()),
                labels: Some(pool_labels),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "postgres".into(),
                    image: Some("postgres:17".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    let controller = cell_controller(&ns, &[(global_address(&ns), &global)]);
    let cells: Api<Cell> = Api::namespaced(cp.client(), &ns);
    cells
        .create(
            &PostParams::default(),
            &cell(&ns, "us-east-1", CellTopoServer::default(), &["postgres"]),
        )
        .await
        .unwrap();
    let key =
        |pod| multigres_topology::pooler_key(&cell_root, "us-east-1", &pooler_service_id(pod));
    let (gone, live) = (key("gone-pod"), key("live-pod"));
    eventually("the record of gone-pod to be pruned", WAIT, || async {
        topo.get_raw(&gone).await.unwrap().is_none()
    })
    .await;
    assert!(
        topo.get_raw(&live).await.unwrap().is_some(),
        "the record of a pod that exists was pruned; log: {}",
        controller.log.display()
    );
}
