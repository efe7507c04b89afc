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
            scheduling: Default::default(),
            tls: None,
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
        initial_cluster("ts", "ns", 3, false),
        "ts-0=http://ts-0.ts-peer.ns.svc:2380,\
         ts-1=http://ts-1.ts-peer.ns.svc:2380,\
         ts-2=http://ts-2.ts-peer.ns.svc:2380"
    );
    assert_eq!(
        initial_cluster("ts", "ns", 1, false),
        "ts-0=http://ts-0.ts-peer.ns.svc:2380"
    );
}

#[test]
fn etcd_flags() {
    let args = etcd_args("ts", "ns", 1, false);
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

#[test]
fn etcd_pods_carry_no_service_account_token() {
    let sts = statefulset(&topo(3));
    let pod = sts.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.automount_service_account_token, Some(false));
}

#[test]
fn etcd_members_take_their_scheduling_and_get_no_default_spread() {
    use multigres_api::PodScheduling;
    let plain = statefulset(&topo(3)).spec.unwrap().template;
    assert_eq!(plain.spec.unwrap().topology_spread_constraints, None);

    let mut ts = topo(3);
    ts.spec.scheduling = PodScheduling {
        priority_class_name: Some("system-cluster-critical".into()),
        pod_labels: Some(BTreeMap::from([
            ("team".to_string(), "db".to_string()),
            (labels::TOPO_SERVER.to_string(), "forged".to_string()),
        ])),
        node_selector: Some(BTreeMap::from([(
            "topology.kubernetes.io/zone".to_string(),
            "zone-c".to_string(),
        )])),
        ..Default::default()
    };
    let template = statefulset(&ts).spec.unwrap().template;
    let labels = template.metadata.unwrap().labels.unwrap();
    assert_eq!(labels["team"], "db");
    assert_eq!(labels[labels::TOPO_SERVER], "prod-us-west-2");
    let pod = template.spec.unwrap();
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-cluster-critical")
    );
    assert_eq!(
        pod.node_selector.unwrap()["topology.kubernetes.io/zone"],
        "zone-c",
        "the server's own node selector wins over the cell's zone"
    );
    assert_eq!(pod.tolerations.unwrap().len(), 1, "the placement's stay");
}

#[test]
fn tls_members_serve_and_require_certificates_of_the_topology_ca() {
    let mut ts = topo(3);
    ts.spec.tls = Some(multigres_api::TopoServerTls {
        secret_name: "prod-us-west-2-tls".into(),
    });
    let sts = statefulset(&ts);
    let pod = sts.spec.unwrap().template.spec.unwrap();
    let args = pod.containers[0].args.clone().unwrap();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    assert!(has("--listen-client-urls=https://0.0.0.0:2379"), "{args:?}");
    assert!(has("--listen-peer-urls=https://0.0.0.0:2380"), "{args:?}");
    assert!(
        has("--listen-metrics-urls=http://0.0.0.0:2381"),
        "probes stay plain HTTP"
    );
    assert!(has("--client-cert-auth=true") && has("--peer-client-cert-auth=true"));
    assert!(has("--trusted-ca-file=/etc/etcd/tls/ca.crt"));
    assert!(has("--peer-cert-allowed-cn=prod-us-west-2-etcd-member"));
    let cluster = args
        .iter()
        .find(|a| a.starts_with("--initial-cluster="))
        .unwrap();
    assert_eq!(cluster.matches("=https://").count(), 3, "{cluster}");
    assert!(!cluster.contains("http://"));
    let volume = &pod.volumes.unwrap()[0];
    assert_eq!(
        volume.secret.as_ref().unwrap().secret_name.as_deref(),
        Some("prod-us-west-2-tls")
    );
    let mounts = pod.containers[0].volume_mounts.clone().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m.mount_path == "/etc/etcd/tls" && m.read_only == Some(true))
    );
    // Without TLS the pod keeps the shape it always had.
    let plain = statefulset(&topo(3)).spec.unwrap().template.spec.unwrap();
    assert!(plain.volumes.is_none());
    assert!(
        !plain.containers[0]
            .args
            .clone()
            .unwrap()
            .iter()
            .any(|a| a.contains("https"))
    );
}

#[test]
fn the_member_certificate_covers_the_client_service_and_every_peer() {
    let sans = member_sans("prod-global", "ns");
    for name in [
        "prod-global-client.ns.svc",
        "*.prod-global-peer.ns.svc",
        "prod-global-client",
    ] {
        assert!(
            sans.iter().any(|s| s == name),
            "{name} missing from {sans:?}"
        );
    }
    assert_eq!(
        naming::topo_address(&naming::topo_client_service("prod-global"), "ns"),
        "prod-global-client.ns.svc:2379",
        "what components dial is covered"
    );
}
