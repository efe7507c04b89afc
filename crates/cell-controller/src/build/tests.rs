use super::*;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use multigres_api::cell::{CellImages, CellTopoServer};
use multigres_api::naming;
use multigres_api::{
    CellSpec, ExternalTopoServer, GlobalTopologyRef, Placement, TopoServerSettings,
    TopologyReconciliation,
};

fn cell(name: &str, topo: CellTopoServer, databases: &[&str]) -> Cell {
    let mut cell = Cell::new(
        &format!("example-{name}"),
        CellSpec {
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
                root_path: "/multigres/global".into(),
                client_service_name: Some("example-global-client".into()),
                address: "example-global-client.ns.svc:2379".into(),
                tls_secret_name: None,
            },
            topo_server: topo,
            all_cells: vec!["us-east-1".into(), "us-west-2".into()],
            databases: databases.iter().map(|d| d.to_string()).collect(),
            topology_reconciliation: TopologyReconciliation::default(),
            placement: Some(Placement {
                zone: Some("zone-a".into()),
                ..Default::default()
            }),
            gateway_service: None,
            tls: None,
        },
    );
    cell.metadata.namespace = Some("ns".into());
    cell.metadata.uid = Some("cell-uid".into());
    cell.metadata.labels = Some(labels::with(
        labels::for_component("example", component::CELL),
        labels::CELL,
        name,
    ));
    cell
}

fn managed() -> CellTopoServer {
    CellTopoServer {
        external: None,
        managed_spec: Some(TopoServerSettings {
            root_path: Some("/multigres/us-west-2".into()),
            replicas: Some(1),
            ..Default::default()
        }),
    }
}

#[test]
fn cell_on_the_global_topology() {
    let t = topology(&cell("us-east-1", CellTopoServer::default(), &[])).unwrap();
    assert_eq!(t.kind, TopologyKind::Global);
    assert_eq!(
        t.record,
        pb::Cell {
            name: "us-east-1".into(),
            server_addresses: vec!["example-global-client.ns.svc:2379".into()],
            root: "/multigres/global/us-east-1".into(),
        }
    );
    assert_eq!(t.global_root, "/multigres/global");
}

#[test]
fn cell_with_a_managed_local_topology() {
    let c = cell("us-west-2", managed(), &["postgres"]);
    let t = topology(&c).unwrap();
    assert_eq!(
        t.kind,
        TopologyKind::ManagedLocal("example-us-west-2".into())
    );
    assert_eq!(
        t.record,
        pb::Cell {
            name: "us-west-2".into(),
            server_addresses: vec!["example-us-west-2-client.ns.svc:2379".into()],
            root: "/multigres/us-west-2".into(),
        }
    );
    let ts = local_topo_server(&c).unwrap();
    assert_eq!(ts.metadata.name.as_deref(), Some("example-us-west-2"));
    assert_eq!(ts.spec.replicas, 1);
    assert_eq!(ts.spec.root_path, "/multigres/us-west-2");
    assert_eq!(
        ts.labels().get(labels::TOPO_SCOPE).map(String::as_str),
        Some("cell")
    );
    assert_eq!(
        ts.labels().get(labels::CELL).map(String::as_str),
        Some("us-west-2")
    );
    assert_eq!(ts.owner_references()[0].kind, "Cell");
    assert!(ts.spec.tls.is_none(), "a plaintext topology");

    // The cell's etcd is renewed with the cluster's client certificate: the same expiry.
    let mut tls = c.clone();
    tls.spec.global_topo_server.tls_secret_name =
        Some(naming::topology_tls_secret_until("example", 1_796_000_000));
    let ts = local_topo_server(&tls).unwrap();
    let member = ts.spec.tls.map(|t| t.secret_name);
    assert_eq!(member.as_deref(), Some("example-us-west-2-tls-1796000000"));
    tls.spec.global_topo_server.tls_secret_name = Some(naming::topology_tls_secret("example"));
    let member = local_topo_server(&tls)
        .unwrap()
        .spec
        .tls
        .map(|t| t.secret_name);
    assert_eq!(
        member.as_deref(),
        Some("example-us-west-2-tls"),
        "issued before renewal"
    );
}

#[test]
fn cell_with_an_external_topology() {
    let topo = CellTopoServer {
        external: Some(ExternalTopoServer {
            address: "etcd.example.com:2379".into(),
            root_path: Some("/ext/root".into()),
            tls: None,
        }),
        managed_spec: None,
    };
    let t = topology(&cell("eu", topo, &[])).unwrap();
    assert_eq!(t.kind, TopologyKind::External);
    assert_eq!(t.record.server_addresses, vec!["etcd.example.com:2379"]);
    assert_eq!(t.record.root, "/ext/root");
    assert!(local_topo_server(&cell("eu", CellTopoServer::default(), &[])).is_none());
}

#[test]
fn managed_topology_without_a_cluster_label_is_invalid() {
    let mut c = cell("us-west-2", managed(), &[]);
    c.metadata.labels = None;
    assert!(topology(&c).unwrap_err().contains(labels::CLUSTER));
}

#[test]
fn gateway_flags_ports_and_probes() {
    let c = cell("us-east-1", CellTopoServer::default(), &[]);
    assert_eq!(
        gateway_args(&c),
        vec![
            "--cell=us-east-1",
            "--pg-port=5432",
            "--pg-replica-port=5433",
            "--http-port=15001",
            "--grpc-port=15991",
            "--topo-global-server-addresses=example-global-client.ns.svc:2379",
            "--topo-global-root=/multigres/global",
            "--hostname=$(POD_IP)",
            "--service-map=grpc-multigateway",
            "--log-level=info",
        ]
    );
    let d = gateway(&c);
    assert_eq!(
        d.metadata.name.as_deref(),
        Some("example-us-east-1-gateway")
    );
    let spec = d.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.unwrap();
    let container = &pod.containers[0];
    assert_eq!(container.command.as_ref().unwrap(), &["multigateway"]);
    let ready = container
        .readiness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(
        (ready.path.as_deref(), &ready.port),
        (Some("/ready"), &IntOrString::Int(15001))
    );
    let live = container
        .liveness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(live.path.as_deref(), Some("/live"));
    assert_eq!(
        pod.node_selector
            .unwrap()
            .get("topology.kubernetes.io/zone")
            .map(String::as_str),
        Some("zone-a")
    );
    assert!(pod.affinity.unwrap().pod_anti_affinity.is_some());
    assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));

    let svc = gateway_service(&c);
    assert_eq!(
        svc.metadata.name.as_deref(),
        Some("example-us-east-1-gateway")
    );
    let ports: Vec<i32> = svc
        .spec
        .unwrap()
        .ports
        .unwrap()
        .iter()
        .map(|p| p.port)
        .collect();
    assert_eq!(ports, vec![5432, 5433, 15991, 15001]);
}

#[test]
fn multiorch_watches_the_databases_or_scales_to_zero() {
    let c = cell("us-west-2", managed(), &["postgres", "orders", "postgres"]);
    let args = multiorch_args(&c);
    assert!(args.contains(&"--watch-targets=orders,postgres".to_string()));
    assert!(args.contains(&"--cell=us-west-2".to_string()));
    assert!(args.contains(&"--http-port=15300".to_string()));
    assert!(args.contains(&"--grpc-port=15370".to_string()));
    assert!(args.contains(&"--service-map=grpc-multiorch".to_string()));
    let d = multiorch(&c);
    assert_eq!(
        d.metadata.name.as_deref(),
        Some("example-us-west-2-multiorch")
    );
    assert_eq!(d.spec.unwrap().replicas, Some(1));

    let idle = cell("us-east-1", CellTopoServer::default(), &[]);
    assert_eq!(watch_targets(&idle), None);
    assert_eq!(multiorch(&idle).spec.unwrap().replicas, Some(0));
    assert!(
        !multiorch_args(&idle)
            .iter()
            .any(|a| a.starts_with("--watch-targets"))
    );
}

#[test]
fn the_gateway_service_is_exposed_as_the_cell_asks() {
    use multigres_api::ServiceExposure;
    let mut c = cell("us-east-1", CellTopoServer::default(), &[]);
    let plain = gateway_service(&c);
    let spec = plain.spec.as_ref().unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert!(plain.metadata.annotations.is_none());
    let ports: Vec<i32> = spec.ports.iter().flatten().map(|p| p.port).collect();
    assert_eq!(ports, [5432, 5433, 15991, 15001]);

    c.spec.gateway_service = Some(GatewayExposure {
        type_: Some(ServiceExposure::LoadBalancer),
        annotations: Some(BTreeMap::from([(
            "service.beta.kubernetes.io/aws-load-balancer-internal".into(),
            "true".into(),
        )])),
        load_balancer_source_ranges: Some(vec!["10.0.0.0/8".into()]),
    });
    let exposed = gateway_service(&c);
    let spec = exposed.spec.as_ref().unwrap();
    assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
    assert_eq!(
        spec.load_balancer_source_ranges,
        Some(vec!["10.0.0.0/8".into()])
    );
    let annotations = exposed.metadata.annotations.as_ref().unwrap();
    assert_eq!(
        annotations["service.beta.kubernetes.io/aws-load-balancer-internal"],
        "true"
    );
    assert_eq!(spec.selector, plain.spec.as_ref().unwrap().selector);
}

#[test]
fn gateway_and_multiorch_pods_carry_no_service_account_token() {
    let c = cell("us-east-1", CellTopoServer::default(), &["postgres"]);
    for deployment in [gateway(&c), multiorch(&c)] {
        let pod = deployment.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.automount_service_account_token, Some(false));
    }
}

#[test]
fn a_renewed_certificate_rolls_the_gateways_and_multiorch() {
    let mut c = cell("us-east-1", CellTopoServer::default(), &["postgres"]);
    let annotation = |c: &Cell| -> Vec<Option<String>> {
        [gateway(c), multiorch(c)]
            .into_iter()
            .map(|d| {
                let meta = d.spec.unwrap().template.metadata.unwrap();
                meta.annotations?.get(labels::TLS_REVISION).cloned()
            })
            .collect()
    };
    c.spec.tls = Some(multigres_api::TlsRef {
        secret_name: "example-tls".into(),
        require_client_tls: false,
        revision: Some(1),
    });
    assert_eq!(annotation(&c), [None, None]);
    c.spec.tls.as_mut().unwrap().revision = Some(4);
    let renewed = Some("4".to_string());
    assert_eq!(annotation(&c), [renewed.clone(), renewed]);
}

fn labels_of(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn gateways_and_multiorch_spread_by_default_and_take_the_components_scheduling() {
    use k8s_openapi::api::core::v1::Toleration;
    use multigres_api::{LogFormat, LogLevel, PodScheduling};

    let plain = cell("us-east-1", CellTopoServer::default(), &["db"]);
    for deployment in [gateway(&plain), multiorch(&plain)] {
        let template = deployment.spec.unwrap().template;
        let pod = template.spec.unwrap();
        let selector = deployment.metadata.labels.unwrap();
        let spread = pod.topology_spread_constraints.unwrap();
        assert_eq!(spread.len(), 2);
        let own = spread[0]
            .label_selector
            .clone()
            .unwrap()
            .match_labels
            .unwrap();
        assert!(own.iter().all(|(k, v)| selector.get(k) == Some(v)));
        assert_eq!(pod.tolerations, None);
        assert_eq!(pod.priority_class_name, None);
        let args = pod.containers[0].args.clone().unwrap();
        let log: Vec<_> = args.iter().filter(|a| a.starts_with("--log-")).collect();
        assert_eq!(log, ["--log-level=info"]);
    }

    let mut cell = plain.clone();
    cell.spec.placement = Some(Placement {
        zone: Some("zone-a".into()),
        node_selector: Some(labels_of(&[("disk", "hdd"), ("pool", "gw")])),
        tolerations: Some(vec![Toleration {
            key: Some("dedicated".into()),
            operator: Some("Exists".into()),
            ..Default::default()
        }]),
        ..Default::default()
    });
    cell.spec.multigateway.scheduling = PodScheduling {
        node_selector: Some(labels_of(&[("disk", "ssd")])),
        tolerations: Some(vec![Toleration {
            key: Some("spot".into()),
            operator: Some("Exists".into()),
            ..Default::default()
        }]),
        pod_labels: Some(labels_of(&[("team", "edge"), (labels::CELL, "forged")])),
        pod_annotations: Some(labels_of(&[("sidecar", "off")])),
        priority_class_name: Some("gateway".into()),
        topology_spread_constraints: Some(vec![]),
    };
    cell.spec.multigateway.logging.log_level = Some(LogLevel::Warn);
    cell.spec.multigateway.logging.log_format = Some(LogFormat::Text);
    let template = gateway(&cell).spec.unwrap().template;
    let meta = template.metadata.unwrap();
    let pod = template.spec.unwrap();
    assert_eq!(
        pod.node_selector,
        Some(labels_of(&[
            ("disk", "ssd"),
            ("pool", "gw"),
            ("topology.kubernetes.io/zone", "zone-a")
        ]))
    );
    let tolerations: Vec<_> = pod
        .tolerations
        .iter()
        .flatten()
        .filter_map(|t| t.key.as_deref())
        .collect();
    assert_eq!(tolerations, ["dedicated", "spot"]);
    assert_eq!(pod.priority_class_name.as_deref(), Some("gateway"));
    assert_eq!(pod.topology_spread_constraints, Some(vec![]));
    let pod_labels = meta.labels.unwrap();
    assert_eq!(pod_labels["team"], "edge");
    assert_eq!(pod_labels[labels::CELL], "us-east-1");
    assert_eq!(meta.annotations.unwrap()["sidecar"], "off");
    let args = pod.containers[0].args.clone().unwrap();
    let log: Vec<_> = args.iter().filter(|a| a.starts_with("--log-")).collect();
    assert_eq!(log, ["--log-level=warn", "--log-format=text"]);
    // multiorch keeps its own (unset) settings.
    let orch = multiorch(&cell).spec.unwrap().template.spec.unwrap();
    assert_eq!(orch.priority_class_name, None);
    assert_eq!(orch.topology_spread_constraints.unwrap().len(), 2);
}
