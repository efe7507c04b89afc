//! What a TopoServer becomes: pure functions from the TopoServer to the exact child objects.
//!
//! * a StatefulSet named like the TopoServer, one etcd member per pod, data on a PVC per member;
//! * a client Service (`<name>-client`, port 2379) that Multigres components dial;
//! * a headless peer Service (`<name>-peer`, port 2380) that gives members stable DNS names, published
//!   before they are ready so that a new cluster can form its first quorum;
//! * a PodDisruptionBudget that keeps a quorum (`replicas / 2 + 1`) through voluntary disruptions.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaim, PodSpec, PodTemplateSpec, Probe, Service, ServiceSpec,
    VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use multigres_api::labels::{self, component};
use multigres_api::{TopoServer, naming};
use multigres_runtime::apply::child_meta;
use multigres_runtime::builders::{
    container_port, http_probe, pod_name_env, preferred_spread,
    restricted_container_security_context, restricted_pod_security_context, service_port,
};

pub const CLIENT_PORT: i32 = 2379;
pub const PEER_PORT: i32 = 2380;
/// etcd's `--listen-metrics-urls` port; serves `/metrics` and `/health` without TLS or auth.
pub const METRICS_PORT: i32 = 2381;
pub const DATA_DIR: &str = "/var/lib/etcd";
pub const DATA_VOLUME: &str = "data";
pub const CONTAINER: &str = "etcd";
/// The UID/GID etcd runs as: any non-root ID works, the data volume is made writable by `fsGroup`.
pub const RUN_AS: i64 = 65532;

/// Every child of one TopoServer.
#[derive(Clone, Debug, PartialEq)]
pub struct Children {
    pub client_service: Service,
    pub peer_service: Service,
    pub pdb: PodDisruptionBudget,
    pub statefulset: StatefulSet,
}

/// Members that must be up for etcd to accept writes.
pub fn quorum(replicas: i32) -> i32 {
    replicas.max(0) / 2 + 1
}

/// Labels that select this TopoServer's pods. Stable for the life of the StatefulSet (its selector is
/// immutable), so they hold no value that could ever change.
pub fn selector_labels(topo_server: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            labels::COMPONENT.to_string(),
            component::TOPO_SERVER.to_string(),
        ),
        (labels::TOPO_SERVER.to_string(), topo_server.to_string()),
    ])
}

/// The TopoServer's own labels (cluster, topo-scope, cell...) plus the selector labels.
fn child_labels(ts: &TopoServer) -> BTreeMap<String, String> {
    let mut out = ts.labels().clone();
    out.extend(selector_labels(&ts.name_any()));
    out.insert(labels::MANAGED_BY.into(), labels::MANAGED_BY_VALUE.into());
    out
}

/// `<pod>.<peer-service>.<namespace>.svc`, the stable DNS name of one member.
pub fn member_host(topo_server: &str, namespace: &str, ordinal: i32) -> String {
    format!(
        "{topo_server}-{ordinal}.{}.{namespace}.svc",
        naming::topo_peer_service(topo_server)
    )
}

/// etcd's `--initial-cluster`: `<pod>=http://<pod>.<peer>.<ns>.svc:2380` for every member.
pub fn initial_cluster(topo_server: &str, namespace: &str, replicas: i32) -> String {
    (0..replicas.max(1))
        .map(|i| {
            format!(
                "{topo_server}-{i}=http://{}:{PEER_PORT}",
                member_host(topo_server, namespace, i)
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The etcd command line. `$(POD_NAME)` is expanded by the kubelet from the container's env.
pub fn etcd_args(topo_server: &str, namespace: &str, replicas: i32) -> Vec<String> {
    let peer = naming::topo_peer_service(topo_server);
    let self_host = format!("$(POD_NAME).{peer}.{namespace}.svc");
    vec![
        "--name=$(POD_NAME)".into(),
        format!("--data-dir={DATA_DIR}"),
        format!("--listen-client-urls=http://0.0.0.0:{CLIENT_PORT}"),
        format!("--advertise-client-urls=http://{self_host}:{CLIENT_PORT}"),
        format!("--listen-peer-urls=http://0.0.0.0:{PEER_PORT}"),
        format!("--initial-advertise-peer-urls=http://{self_host}:{PEER_PORT}"),
        format!("--listen-metrics-urls=http://0.0.0.0:{METRICS_PORT}"),
        format!(
            "--initial-cluster={}",
            initial_cluster(topo_server, namespace, replicas)
        ),
        "--initial-cluster-state=new".into(),
        format!("--initial-cluster-token={namespace}-{topo_server}"),
    ]
}

/// Readiness needs the member to be part of a quorum (`/health`); liveness only that the process
/// answers (`/health?serializable=true` reads locally), so that losing quorum never restarts members,
/// which would only make things worse.
pub fn probes() -> (Probe, Probe, Probe) {
    let probe = |path: &str, period, failures| http_probe(path, METRICS_PORT, period, 5, failures);
    let startup = probe("/health?serializable=true", 5, 60);
    let readiness = probe("/health", 10, 3);
    let liveness = probe("/health?serializable=true", 10, 6);
    (startup, readiness, liveness)
}

pub fn statefulset(ts: &TopoServer) -> StatefulSet {
    let name = ts.name_any();
    let namespace = ts.namespace().unwrap_or_default();
    let spec = &ts.spec;
    let labels = child_labels(ts);
    let (startup, readiness, liveness) = probes();
    let placement = spec.placement.clone().unwrap_or_default();
    let node_selector = placement.node_selector();
    let container = Container {
        name: CONTAINER.into(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_string()),
        command: Some(vec!["etcd".into()]),
        args: Some(etcd_args(&name, &namespace, spec.replicas)),
        env: Some(vec![pod_name_env()]),
        ports: Some(vec![
            container_port("client", CLIENT_PORT),
            container_port("peer", PEER_PORT),
            container_port("metrics", METRICS_PORT),
        ]),
        resources: spec.resources.clone(),
        volume_mounts: Some(vec![VolumeMount {
            name: DATA_VOLUME.into(),
            mount_path: DATA_DIR.into(),
            ..Default::default()
        }]),
        startup_probe: Some(startup),
        readiness_probe: Some(readiness),
        liveness_probe: Some(liveness),
        security_context: Some(restricted_container_security_context()),
        ..Default::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        affinity: Some(
            spec.affinity
                .clone()
                .unwrap_or_else(|| preferred_spread(&selector_labels(&name))),
        ),
        node_selector: (!node_selector.is_empty()).then_some(node_selector),
        tolerations: placement.tolerations.clone(),
        image_pull_secrets: (!spec.image_pull_secrets.is_empty())
            .then(|| spec.image_pull_secrets.clone()),
        security_context: Some(restricted_pod_security_context(RUN_AS)),
        // etcd flushes on SIGTERM quickly; a long grace only slows rolling updates.
        termination_grace_period_seconds: Some(30),
        ..Default::default()
    };
    StatefulSet {
        metadata: child_meta(ts, &name, labels.clone()),
        spec: Some(StatefulSetSpec {
            replicas: Some(spec.replicas),
            service_name: Some(naming::topo_peer_service(&name)),
            // Members must all start together to form the initial cluster.
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector {
                match_labels: Some(selector_labels(&name)),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels.clone()),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(DATA_VOLUME.into()),
                    labels: Some(labels),
                    ..Default::default()
                },
                spec: Some(spec.data_volume_claim_template.clone()),
                ..Default::default()
            }]),
            // Topology data is never deleted with the StatefulSet or on scale-down.
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Retain".into()),
                    when_scaled: Some("Retain".into()),
                },
            ),
            ..Default::default()
        }),
        status: None,
    }
}

pub fn client_service(ts: &TopoServer) -> Service {
    let name = ts.name_any();
    Service {
        metadata: child_meta(ts, &naming::topo_client_service(&name), child_labels(ts)),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector_labels(&name)),
            ports: Some(vec![service_port("client", CLIENT_PORT)]),
            ..Default::default()
        }),
        status: None,
    }
}

pub fn peer_service(ts: &TopoServer) -> Service {
    let name = ts.name_any();
    Service {
        metadata: child_meta(ts, &naming::topo_peer_service(&name), child_labels(ts)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            // Members must find each other before any is ready, or the first quorum never forms.
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(&name)),
            ports: Some(vec![service_port("peer", PEER_PORT)]),
            ..Default::default()
        }),
        status: None,
    }
}

pub fn pdb(ts: &TopoServer) -> PodDisruptionBudget {
    let name = ts.name_any();
    PodDisruptionBudget {
        metadata: child_meta(ts, &name, child_labels(ts)),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(quorum(ts.spec.replicas))),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(&name)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    }
}

pub fn children(ts: &TopoServer) -> Children {
    Children {
        client_service: client_service(ts),
        peer_service: peer_service(ts),
        pdb: pdb(ts),
        statefulset: statefulset(ts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, Toleration};
    use multigres_api::{Placement, TopoServerSpec};

    fn topo(replicas: i32) -> TopoServer {
        let mut ts = TopoServer::new(
            "prod-us-west-2",
            TopoServerSpec {
                root_path: "/multigres/us-west-2".into(),
                image: "quay.io/coreos/etcd:v3.5.17".into(),
                image_pull_policy: None,
                image_pull_secrets: vec![],
                replicas,
                affinity: None,
                resources: None,
                data_volume_claim_template: PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    ..Default::default()
                },
                placement: Some(Placement {
                    zone: Some("zone-b".into()),
                    tolerations: Some(vec![Toleration {
                        key: Some("dedicated".into()),
                        operator: Some("Exists".into()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
            },
        );
        ts.metadata.namespace = Some("ns".into());
        ts.metadata.uid = Some("uid-1".into());
        ts.metadata.labels = Some(labels::with(
            labels::for_component("prod", component::TOPO_SERVER),
            labels::TOPO_SCOPE,
            "cell",
        ));
        ts
    }

    #[test]
    fn quorum_is_a_strict_majority() {
        for (replicas, want) in [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (7, 4), (9, 5)] {
            assert_eq!(quorum(replicas), want, "replicas {replicas}");
        }
    }

    #[test]
    fn initial_cluster_names_every_member_by_peer_dns() {
        assert_eq!(
            initial_cluster("ts", "ns", 3),
            "ts-0=http://ts-0.ts-peer.ns.svc:2380,\
             ts-1=http://ts-1.ts-peer.ns.svc:2380,\
             ts-2=http://ts-2.ts-peer.ns.svc:2380"
        );
        assert_eq!(
            initial_cluster("ts", "ns", 1),
            "ts-0=http://ts-0.ts-peer.ns.svc:2380"
        );
    }

    #[test]
    fn etcd_flags() {
        let args = etcd_args("ts", "ns", 1);
        assert_eq!(
            args,
            vec![
                "--name=$(POD_NAME)",
                "--data-dir=/var/lib/etcd",
                "--listen-client-urls=http://0.0.0.0:2379",
                "--advertise-client-urls=http://$(POD_NAME).ts-peer.ns.svc:2379",
                "--listen-peer-urls=http://0.0.0.0:2380",
                "--initial-advertise-peer-urls=http://$(POD_NAME).ts-peer.ns.svc:2380",
                "--listen-metrics-urls=http://0.0.0.0:2381",
                "--initial-cluster=ts-0=http://ts-0.ts-peer.ns.svc:2380",
                "--initial-cluster-state=new",
                "--initial-cluster-token=ns-ts",
            ]
        );
    }

    #[test]
    fn statefulset_shape() {
        let sts = statefulset(&topo(3));
        assert_eq!(sts.metadata.name.as_deref(), Some("prod-us-west-2"));
        let owner = &sts.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("TopoServer", Some(true))
        );
        let spec = sts.spec.unwrap();
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(spec.service_name.as_deref(), Some("prod-us-west-2-peer"));
        assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
        let selector = spec.selector.match_labels.unwrap();
        let template_labels = spec.template.metadata.unwrap().labels.unwrap();
        assert!(
            selector
                .iter()
                .all(|(k, v)| template_labels.get(k) == Some(v))
        );
        assert_eq!(
            template_labels.get(labels::TOPO_SCOPE).map(String::as_str),
            Some("cell")
        );
        let pvc = &spec.volume_claim_templates.unwrap()[0];
        assert_eq!(pvc.metadata.name.as_deref(), Some("data"));
        let retention = spec.persistent_volume_claim_retention_policy.unwrap();
        assert_eq!(retention.when_deleted.as_deref(), Some("Retain"));
        assert_eq!(retention.when_scaled.as_deref(), Some("Retain"));
        let pod = spec.template.spec.unwrap();
        assert_eq!(
            pod.node_selector
                .unwrap()
                .get("topology.kubernetes.io/zone")
                .map(String::as_str),
            Some("zone-b")
        );
        assert_eq!(pod.tolerations.unwrap().len(), 1);
        assert!(pod.affinity.unwrap().pod_anti_affinity.is_some());
        let security = pod.security_context.unwrap();
        assert_eq!(security.run_as_non_root, Some(true));
        assert_eq!(security.seccomp_profile.unwrap().type_, "RuntimeDefault");
        let c = &pod.containers[0];
        assert_eq!(
            c.volume_mounts.as_ref().unwrap()[0].mount_path,
            "/var/lib/etcd"
        );
        let cs = c.security_context.as_ref().unwrap();
        assert_eq!(cs.allow_privilege_escalation, Some(false));
        assert_eq!(
            cs.capabilities.as_ref().unwrap().drop.as_ref().unwrap(),
            &["ALL"]
        );
        let ready = c
            .readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap();
        assert_eq!(ready.path.as_deref(), Some("/health"));
        assert_eq!(ready.port, IntOrString::Int(METRICS_PORT));
        let live = c
            .liveness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap();
        assert_eq!(live.path.as_deref(), Some("/health?serializable=true"));
        assert_eq!(c.env.as_ref().unwrap()[0].name, "POD_NAME");
    }

    #[test]
    fn services_and_pdb() {
        let ts = topo(5);
        let client = client_service(&ts);
        assert_eq!(
            client.metadata.name.as_deref(),
            Some("prod-us-west-2-client")
        );
        let cs = client.spec.unwrap();
        assert_eq!(cs.ports.unwrap()[0].port, 2379);
        assert_eq!(cs.selector, Some(selector_labels("prod-us-west-2")));
        let peer = peer_service(&ts);
        assert_eq!(peer.metadata.name.as_deref(), Some("prod-us-west-2-peer"));
        let ps = peer.spec.unwrap();
        assert_eq!(ps.cluster_ip.as_deref(), Some("None"));
        assert_eq!(ps.publish_not_ready_addresses, Some(true));
        assert_eq!(ps.ports.unwrap()[0].port, 2380);
        let pdb = pdb(&ts).spec.unwrap();
        assert_eq!(pdb.min_available, Some(IntOrString::Int(3)));
        assert_eq!(pdb.max_unavailable, None);
    }
}
