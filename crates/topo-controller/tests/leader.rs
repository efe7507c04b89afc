//! Leader election of the topo-controller binary against a real control plane: two replicas with
//! `--leader-elect`, one reconciles; after the leader is killed (SIGKILL, Lease not released) the
//! survivor takes over and reconciles a spec change. A replica whose Lease is taken exits non-zero.

use std::net::{SocketAddr, TcpListener};
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, VolumeResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use multigres_api::labels::{self, component};
use multigres_api::{TopoServer, TopoServerSpec};
use multigres_e2e::{OperatorProcess, shared, spawn_operator, wait_for};
use multigres_runtime::leader::lease_name;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::OnceCell;

const LEASE: Duration = Duration::from_secs(2);
const WAIT: Duration = Duration::from_secs(90);
const OLD_IMAGE: &str = "quay.io/coreos/etcd:v3.5.17";
const NEW_IMAGE: &str = "quay.io/coreos/etcd:v3.5.18";

async fn crds() {
    static CRDS: OnceCell<()> = OnceCell::const_new();
    CRDS.get_or_init(|| async {
        multigres_e2e::install_crds(&shared().client())
            .await
            .expect("CRDs install");
    })
    .await;
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn args(ns: &str, identity: &str, http: SocketAddr) -> Vec<String> {
    vec![
        format!("--http-addr={http}"),
        "--grpc-health-addr=127.0.0.1:0".into(),
        format!("--watch-namespace={ns}"),
        "--leader-elect".into(),
        format!("--lease-namespace={ns}"),
        "--lease-duration=2s".into(),
        format!("--identity={identity}"),
    ]
}

/// HTTP status of `GET path` on `addr` (0 when nothing answers).
async fn http_status(addr: SocketAddr, path: &str) -> u16 {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return 0;
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return 0;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// Polls an HTTP endpoint (it cannot be watched) until it answers `code`.
async fn until_status(addr: SocketAddr, path: &str, code: u16) {
    let deadline = Instant::now() + WAIT;
    while http_status(addr, path).await != code {
        assert!(
            Instant::now() < deadline,
            "{addr}{path} never answered {code}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn holder(lease: &Lease) -> Option<&str> {
    lease.spec.as_ref()?.holder_identity.as_deref()
}

fn topo_server(name: &str, namespace: &str) -> TopoServer {
    TopoServer {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            labels: Some(labels::with(
                labels::for_component("example", component::TOPO_SERVER),
                labels::TOPO_SCOPE,
                "global",
            )),
            ..Default::default()
        },
        spec: TopoServerSpec {
            root_path: "/multigres/global".into(),
            image: OLD_IMAGE.into(),
            image_pull_policy: None,
            image_pull_secrets: vec![],
            replicas: 1,
            affinity: None,
            resources: None,
            data_volume_claim_template: PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                resources: Some(VolumeResourceRequirements {
                    requests: Some([("storage".to_string(), Quantity("1Gi".into()))].into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            placement: None,
            scheduling: Default::default(),
            tls: None,
        },
        status: None,
    }
}

fn image(sts: &StatefulSet) -> Option<&str> {
    sts.spec.as_ref()?.template.spec.as_ref()?.containers[0]
        .image
        .as_deref()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_survivor_reconciles_after_the_leader_is_killed() {
    let cp = shared();
    crds().await;
    let ns = cp.namespace("topo-leader").await.unwrap();
    let client = cp.client();
    let bin = env!("CARGO_BIN_EXE_topo-controller");
    let spawn = |identity: &str, http: SocketAddr| -> OperatorProcess {
        spawn_operator(
            &format!("topo-controller-{ns}-{identity}"),
            bin.as_ref(),
            cp.kubeconfig_path(),
            &cp.log_dir(),
            &args(&ns, identity, http),
        )
        .expect("topo-controller starts")
    };
    let http = [("a", free_addr()), ("b", free_addr())];
    let processes: Vec<(&str, SocketAddr, OperatorProcess)> = http
        .iter()
        .map(|&(id, addr)| (id, addr, spawn(id, addr)))
        .collect();
    let logs = || {
        processes
            .iter()
            .map(|(_, _, p)| p.log.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };

    let topos = Api::<TopoServer>::namespaced(client.clone(), &ns);
    topos
        .create(&PostParams::default(), &topo_server("example-global", &ns))
        .await
        .unwrap();
    let statefulsets = Api::<StatefulSet>::namespaced(client.clone(), &ns);
    let sts = wait_for(&statefulsets, "example-global", WAIT, |_| true)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\nlogs: {}", logs()));
    assert_eq!(image(&sts), Some(OLD_IMAGE));

    let leases = Api::<Lease>::namespaced(client.clone(), &ns);
    let lease_name = lease_name(multigres_topo_controller::NAME);
    let lease = wait_for(&leases, &lease_name, WAIT, |l| holder(l).is_some())
        .await
        .unwrap();
    let leader = holder(&lease).unwrap().to_string();
    let (leader_idx, survivor_idx) = if leader == "a" { (0, 1) } else { (1, 0) };
    let (_, leader_addr, leader_process) = &processes[leader_idx];
    let (survivor, survivor_addr, _) = &processes[survivor_idx];

    // Health: both. Readiness: the leader once its caches synced, and the standby (waiting to take
    // over; an unready standby would block rolling updates and drains).
    until_status(*leader_addr, "/readyz", 200).await;
    until_status(*survivor_addr, "/healthz", 200).await;
    until_status(*survivor_addr, "/readyz", 200).await;
    assert_eq!(http_status(*leader_addr, "/healthz").await, 200);

    // Crash the leader (its Lease stays held), then change the spec.
    leader_process.kill();
    let killed = Instant::now();
    topos
        .patch(
            "example-global",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "spec": { "image": NEW_IMAGE } })),
        )
        .await
        .unwrap();
    wait_for(&statefulsets, "example-global", WAIT, |s| {
        image(s) == Some(NEW_IMAGE)
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\nlogs: {}", logs()));
    let reconciled = killed.elapsed();
    eprintln!(
        "spec change reconciled {reconciled:?} after the leader was killed (lease {LEASE:?})"
    );
    assert!(
        reconciled < LEASE * 4,
        "the survivor took {reconciled:?}, more than a few lease periods"
    );
    let lease = leases.get(&lease_name).await.unwrap();
    assert_eq!(holder(&lease), Some(*survivor));
    until_status(*survivor_addr, "/readyz", 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_lease_is_taken_exits_non_zero() {
    let cp = shared();
    crds().await;
    let ns = cp.namespace("topo-lost").await.unwrap();
    let log =
        std::fs::File::create(cp.log_dir().join(format!("topo-controller-{ns}.log"))).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_topo-controller"))
        .args(args(&ns, "solo", free_addr()))
        .env("KUBECONFIG", cp.kubeconfig_path())
        .env("MULTIGRES_LOG_JSON", "false")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let leases = Api::<Lease>::namespaced(cp.client(), &ns);
    let lease_name = lease_name(multigres_topo_controller::NAME);
    wait_for(&leases, &lease_name, WAIT, |l| holder(l) == Some("solo"))
        .await
        .unwrap();
    // The leader renews concurrently: retry on a resourceVersion conflict.
    loop {
        let mut lease = leases.get(&lease_name).await.unwrap();
        lease.spec.as_mut().unwrap().holder_identity = Some("intruder".into());
        match leases
            .replace(&lease_name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => break,
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => panic!("taking the Lease: {e}"),
        }
    }
    let taken = Instant::now();
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("the replica exits after losing its Lease")
        .unwrap();
    eprintln!(
        "exited with {status} {:?} after the Lease was taken",
        taken.elapsed()
    );
    assert_eq!(status.code(), Some(1), "{status}");
}
