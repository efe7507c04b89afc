//! The topo controller against a real control plane: a TopoServer becomes an etcd StatefulSet, client
//! and peer Services and a quorum PDB, and turns Available once kwok reports a quorum of pods ready.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, Service, VolumeResourceRequirements};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use multigres_api::labels::{self, component};
use multigres_api::{TopoServer, TopoServerSpec};
use multigres_e2e::{OperatorProcess, shared, spawn_operator, wait_for};
use multigres_runtime::conditions::{AVAILABLE, is_true};
use tokio::sync::OnceCell;

const WAIT: Duration = Duration::from_secs(90);

#[path = "topo_server/etcd_tls.rs"]
mod etcd_tls;

async fn controller() -> &'static OperatorProcess {
    static CONTROLLER: OnceCell<OperatorProcess> = OnceCell::const_new();
    CONTROLLER
        .get_or_init(|| async {
            let cp = shared();
            multigres_e2e::install_crds(&cp.client())
                .await
                .expect("CRDs install");
            spawn_operator(
                "topo-controller",
                env!("CARGO_BIN_EXE_topo-controller").as_ref(),
                cp.kubeconfig_path(),
                &cp.log_dir(),
                &[
                    "--http-addr=127.0.0.1:0".into(),
                    "--grpc-health-addr=127.0.0.1:0".into(),
                    format!("--topology-ca-dir={}", etcd_tls::ca_dir().display()),
                ],
            )
            .expect("topo-controller starts")
        })
        .await
}

fn topo_server(name: &str, namespace: &str, replicas: i32) -> TopoServer {
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
            image: "quay.io/coreos/etcd:v3.5.17".into(),
            image_pull_policy: None,
            image_pull_secrets: vec![],
            replicas,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topo_server_becomes_an_available_etcd_cluster() {
    let operator = controller().await;
    let cp = shared();
    let ns = cp.namespace("topo").await.unwrap();
    let client: Client = cp.client();
    let started = std::time::Instant::now();
    let topos: Api<TopoServer> = Api::namespaced(client.clone(), &ns);
    topos
        .create(
            &PostParams::default(),
            &topo_server("example-global", &ns, 3),
        )
        .await
        .unwrap();

    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let client_svc = wait_for(&services, "example-global-client", WAIT, |_| true)
        .await
        .unwrap();
    assert_eq!(client_svc.spec.unwrap().ports.unwrap()[0].port, 2379);
    let peer = wait_for(&services, "example-global-peer", WAIT, |_| true)
        .await
        .unwrap();
    let peer = peer.spec.unwrap();
    assert_eq!(peer.cluster_ip.as_deref(), Some("None"));
    assert_eq!(peer.publish_not_ready_addresses, Some(true));

    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &ns);
    let pdb = wait_for(&pdbs, "example-global", WAIT, |_| true)
        .await
        .unwrap();
    assert_eq!(pdb.spec.unwrap().min_available, Some(IntOrString::Int(2)));

    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let sts = wait_for(&statefulsets, "example-global", WAIT, |_| true)
        .await
        .unwrap();
    let args = sts.spec.unwrap().template.spec.unwrap().containers[0]
        .args
        .clone()
        .unwrap();
    assert!(args.contains(&format!(
        "--initial-cluster=example-global-0=http://example-global-0.example-global-peer.{ns}.svc:2380,\
         example-global-1=http://example-global-1.example-global-peer.{ns}.svc:2380,\
         example-global-2=http://example-global-2.example-global-peer.{ns}.svc:2380"
    )));

    let available = wait_for(&topos, "example-global", WAIT, |t| {
        t.status
            .as_ref()
            .is_some_and(|s| is_true(&s.conditions, AVAILABLE))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\ncontroller log: {}", operator.log.display()));
    let status = available.status.unwrap();
    assert!(status.ready_replicas >= 2, "{status:?}");
    assert_eq!(
        status.client_service_name.as_deref(),
        Some("example-global-client")
    );
    assert_eq!(
        status.peer_service_name.as_deref(),
        Some("example-global-peer")
    );
    assert_eq!(status.observed_generation, available.metadata.generation);
    eprintln!("TopoServer Available after {:?}", started.elapsed());
}

/// A larger etcd volume: the StatefulSet keeps the claim template it was created with (it cannot
/// change, and applying it must not fail), the members' Bound claims are grown, and the TopoServer
/// says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_larger_etcd_volume_grows_the_members_claims() {
    let cp = shared();
    controller().await;
    let client: Client = cp.client();
    let ns = cp.namespace("topo-volumes").await.unwrap();
    let topos: Api<TopoServer> = Api::namespaced(client.clone(), &ns);
    let mut ts = topo_server("grow", &ns, 1);
    ts.spec.data_volume_claim_template.storage_class_name = Some("standard".into());
    topos.create(&PostParams::default(), &ts).await.unwrap();
    let claims: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        Api::namespaced(client.clone(), &ns);
    let storage = |c: &k8s_openapi::api::core::v1::PersistentVolumeClaim| {
        c.spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .map(|q| q.0.clone())
    };
    wait_for(&claims, "data-grow-0", WAIT, |c| {
        c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
    })
    .await
    .unwrap();
    let patch = serde_json::json!({"spec": {"dataVolumeClaimTemplate": {"resources": {"requests": {"storage": "2Gi"}}}}});
    topos
        .patch(
            "grow",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
    wait_for(&claims, "data-grow-0", WAIT, |c| {
        storage(c).as_deref() == Some("2Gi")
    })
    .await
    .unwrap();
    let resized = wait_for(&topos, "grow", WAIT, |t| {
        t.status.as_ref().is_some_and(|s| {
            s.conditions.iter().any(|c| {
                c.type_ == "VolumesResized" && c.status == "True" && c.reason == "AsRequested"
            }) && s.observed_generation == t.metadata.generation
        })
    })
    .await
    .unwrap();
    assert!(resized.status.is_some());
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let sts = statefulsets.get("grow").await.unwrap();
    let template = &sts.spec.unwrap().volume_claim_templates.unwrap()[0];
    assert_eq!(
        storage(template).as_deref(),
        Some("1Gi"),
        "the StatefulSet's claim template stays as created"
    );
}
