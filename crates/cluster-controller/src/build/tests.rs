use super::*;
use multigres_api::resolve::{Templates, resolve_cluster};
use multigres_api::{DeploymentTemplate, PvcDeletionPolicy};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/samples");

fn docs(file: &str) -> Vec<serde_yaml::Value> {
    let text = std::fs::read_to_string(format!("{SAMPLES}/{file}")).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

fn sample() -> (MultigresCluster, Templates) {
    let mut cluster: MultigresCluster =
        serde_yaml::from_value(docs("multigrescluster.yaml").remove(0)).unwrap();
    cluster.metadata.uid = Some("uid-1".into());
    let mut templates = Templates::new();
    for file in [
        "deploymenttemplate-standard-ha.yaml",
        "deploymenttemplates-shard-pools.yaml",
    ] {
        for doc in docs(file) {
            let t: DeploymentTemplate = serde_yaml::from_value(doc).unwrap();
            templates.insert(t.metadata.name.clone().unwrap(), t.spec);
        }
    }
    (cluster, templates)
}

#[test]
fn the_sample_becomes_one_topo_server_two_cells_four_tablegroups() {
    let (cluster, templates) = sample();
    let resolved = resolve_cluster(&cluster, &templates).unwrap();
    let desired = desired(&cluster, &resolved, "multigres-system");
    let topo = desired.topo_server.as_ref().unwrap();
    assert_eq!(
        topo.metadata.name.as_deref(),
        Some("example-multigres-cluster-global")
    );
    assert_eq!(topo.spec.root_path, "/multigres/global");
    assert_eq!(desired.cells.len(), 2);
    assert_eq!(desired.table_groups.len(), 4);
    assert_eq!(
        desired.credentials_secret.as_deref(),
        Some("example-multigres-cluster-postgres-credentials")
    );
    for cell in &desired.cells {
        let owner = &cell.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.kind, "MultigresCluster");
        assert_eq!(owner.uid, "uid-1");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(
            cell.metadata.labels.as_ref().unwrap()[labels::MANAGED_BY],
            labels::MANAGED_BY_VALUE
        );
    }
    let names = desired.names();
    assert_eq!(names.cells.len(), 2);
    assert!(
        names
            .deployments
            .contains("example-multigres-cluster-multiadmin")
    );
}

#[test]
fn multiadmin_gets_topology_flags_probes_and_a_restricted_context() {
    let (cluster, templates) = sample();
    let resolved = resolve_cluster(&cluster, &templates).unwrap();
    let deployment = multiadmin_deployment(&cluster, &resolved);
    let spec = deployment.spec.unwrap();
    assert_eq!(spec.replicas, Some(1));
    let pod = spec.template.spec.unwrap();
    let container = &pod.containers[0];
    assert_eq!(
        container.command.as_deref(),
        Some(&["multiadmin".to_string()][..])
    );
    let args = container.args.clone().unwrap();
    assert!(args.contains(
        &"--topo-global-server-addresses=example-multigres-cluster-global-client.example.svc:2379"
            .to_string()
    ));
    assert!(args.contains(&"--topo-global-root=/multigres/global".to_string()));
    assert!(args.contains(&"--http-port=15000".to_string()));
    assert!(args.contains(&"--grpc-port=15990".to_string()));
    assert!(args.contains(&"--service-map=grpc-multiadmin".to_string()));
    let env: Vec<_> = container
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(
        env,
        [
            "POD_IP",
            "OTEL_METRICS_EXPORTER",
            "OTEL_EXPORTER_PROMETHEUS_HOST",
            "OTEL_EXPORTER_PROMETHEUS_PORT"
        ]
    );
    let metrics = container
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .find(|p| p.name.as_deref() == Some("metrics"));
    assert_eq!(metrics.map(|p| p.container_port), Some(9464));
    assert!(
        !args.iter().any(|a| a.starts_with("--service-id")),
        "multiadmin has no --service-id"
    );
    let live = container
        .liveness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(live.path.as_deref(), Some("/live"));
    let ready = container
        .readiness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(ready.path.as_deref(), Some("/ready"));
    let security = container.security_context.as_ref().unwrap();
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(
        security.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_string()][..])
    );
    assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
    // From the standard-ha template's multiadmin section.
    assert!(pod.affinity.is_some());
    assert_eq!(
        container.image.as_deref(),
        Some("ghcr.io/multigres/multigres:sha-6bd80b9")
    );
    assert_eq!(
        pod.image_pull_secrets.unwrap()[0].name,
        "my-registry-secret"
    );
    let selector = spec.selector.match_labels.unwrap();
    let pod_labels = spec.template.metadata.unwrap().labels.unwrap();
    assert!(selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
}

#[test]
fn the_service_selects_the_deployments_pods() {
    let (cluster, templates) = sample();
    let resolved = resolve_cluster(&cluster, &templates).unwrap();
    let service = multiadmin_service(&cluster, &resolved.multiadmin);
    let spec = service.spec.unwrap();
    assert_eq!(
        spec.selector.unwrap(),
        multiadmin_selector("example-multigres-cluster")
    );
    let ports: Vec<_> = spec.ports.unwrap().iter().map(|p| p.port).collect();
    assert_eq!(ports, [15000, 15990]);
}

#[test]
fn database_records_carry_cells_and_a_known_quorum() {
    let (cluster, templates) = sample();
    let resolved = resolve_cluster(&cluster, &templates).unwrap();
    let desired = desired(&cluster, &resolved, "multigres-system");
    assert_eq!(desired.databases.len(), 1);
    let db = &desired.databases[0];
    assert_eq!(db.name, "production_db");
    assert_eq!(db.cells, ["us-east-1", "us-west-2"]);
    let policy = db.bootstrap_durability_policy.as_ref().unwrap();
    assert_eq!(policy.quorum_type, pb::QuorumType::AtLeastN as i32);
    assert_eq!(policy.required_count, 2);
    assert_eq!(policy.policy_name, "AT_LEAST_2");
    let backup = db.backup_location.as_ref().unwrap();
    assert_eq!(
        backup.location,
        Some(pb::backup_location::Location::Filesystem(
            pb::FilesystemBackup {
                path: "/backups".into()
            }
        ))
    );
    multigres_topology::validate_database(db).unwrap();
}

#[test]
fn no_secret_is_generated_when_the_user_names_one() {
    let (mut cluster, templates) = sample();
    cluster.spec.credentials = Some(multigres_api::CredentialsRef::named("mine"));
    let resolved = resolve_cluster(&cluster, &templates).unwrap();
    assert_eq!(
        desired(&cluster, &resolved, "multigres-system").credentials_secret,
        None
    );
}

#[test]
fn generated_secrets_outlive_the_cluster_unless_volumes_do_not() {
    let (mut cluster, _) = sample();
    let password = generate_password();
    assert_eq!(password.len(), PASSWORD_LEN);
    assert!(password.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_ne!(password, generate_password());
    let secret = credentials_secret(&cluster, "s", &password);
    assert_eq!(secret.metadata.owner_references, None);
    let data = secret.data.unwrap();
    assert_eq!(data["username"].0, b"postgres");
    assert_eq!(data["password"].0, password.as_bytes());
    cluster.spec.pvc_deletion_policy = Some(PvcDeletionPolicy {
        when_deleted: RetentionAction::Delete,
        when_scaled: RetentionAction::Retain,
    });
    let secret = credentials_secret(&cluster, "s", &password);
    assert!(secret.metadata.owner_references.is_some());
}

#[test]
fn registered_databases_round_trip_through_the_annotation() {
    let (mut cluster, _) = sample();
    assert!(registered_databases(&cluster).is_empty());
    let names = BTreeSet::from(["b".to_string(), "a".to_string()]);
    cluster.metadata.annotations = Some(BTreeMap::from([(
        REGISTERED_DATABASES.to_string(),
        registered_value(&names),
    )]));
    assert_eq!(registered_value(&names), "a,b");
    assert_eq!(registered_databases(&cluster), names);
}

#[test]
fn multiadmin_logs_and_schedules_as_asked_and_otherwise_as_before() {
    use multigres_api::{ComponentSpec, LogLevel, Logging, PodScheduling};
    let (mut cluster, templates) = sample();
    let build = |cluster: &MultigresCluster| {
        let resolved = resolve_cluster(cluster, &templates).unwrap();
        desired(cluster, &resolved, "multigres-system")
            .multiadmin_deployment
            .spec
            .unwrap()
            .template
    };
    let plain = build(&cluster);
    let pod = plain.spec.unwrap();
    let args = pod.containers[0].args.clone().unwrap();
    assert!(!args.iter().any(|a| a.starts_with("--log-")), "{args:?}");
    assert_eq!(pod.topology_spread_constraints, None);

    cluster.spec.logging = Some(Logging {
        log_level: Some(LogLevel::Debug),
        log_format: None,
    });
    cluster.spec.multiadmin.as_mut().unwrap().overrides = Some(ComponentSpec {
        scheduling: PodScheduling {
            pod_labels: Some(BTreeMap::from([("team".to_string(), "db".to_string())])),
            priority_class_name: Some("admin".into()),
            ..Default::default()
        },
        ..Default::default()
    });
    let template = build(&cluster);
    assert_eq!(template.metadata.unwrap().labels.unwrap()["team"], "db");
    let pod = template.spec.unwrap();
    assert_eq!(pod.priority_class_name.as_deref(), Some("admin"));
    let args = pod.containers[0].args.clone().unwrap();
    let log: Vec<_> = args.iter().filter(|a| a.starts_with("--log-")).collect();
    assert_eq!(log, ["--log-level=debug"]);
}

mod network_policies {
    use super::*;
    use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer};

    fn policy<'a>(desired: &'a Desired, component: &str) -> &'a NetworkPolicy {
        let name = format!("example-multigres-cluster-{component}");
        desired
            .network_policies
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name.as_str()))
            .unwrap_or_else(|| panic!("no NetworkPolicy {name}"))
    }

    /// `(ports, from)` of every ingress rule.
    fn rules(policy: &NetworkPolicy) -> Vec<(Vec<i32>, Option<Vec<NetworkPolicyPeer>>)> {
        let spec = policy.spec.as_ref().unwrap();
        spec.ingress
            .iter()
            .flatten()
            .map(|rule| {
                let ports = rule
                    .ports
                    .iter()
                    .flatten()
                    .map(|p| match p.port {
                        Some(IntOrString::Int(port)) => port,
                        _ => panic!("named port"),
                    })
                    .collect();
                (ports, rule.from.clone())
            })
            .collect()
    }

    fn peers_of(policy: &NetworkPolicy, port: i32) -> Option<Vec<NetworkPolicyPeer>> {
        rules(policy)
            .into_iter()
            .find(|(ports, _)| ports.contains(&port))
            .unwrap_or_else(|| panic!("port {port} is not open"))
            .1
    }

    fn selects(peer: &NetworkPolicyPeer) -> (Option<String>, Option<String>, Option<String>) {
        let pods = peer
            .pod_selector
            .as_ref()
            .and_then(|s| s.match_labels.clone());
        let ns = peer
            .namespace_selector
            .as_ref()
            .and_then(|s| s.match_labels.clone());
        (
            pods.as_ref().and_then(|l| l.get(labels::CLUSTER).cloned()),
            pods.as_ref()
                .and_then(|l| l.get(labels::COMPONENT).cloned()),
            ns.and_then(|l| l.get("kubernetes.io/metadata.name").cloned()),
        )
    }

    #[test]
    fn each_port_admits_only_who_must_reach_it() {
        let (cluster, templates) = sample();
        let resolved = resolve_cluster(&cluster, &templates).unwrap();
        let desired = desired(&cluster, &resolved, "operators");
        assert_eq!(desired.network_policies.len(), 5);
        let me = Some("example-multigres-cluster".to_string());
        let cluster_and_operator = vec![
            (me.clone(), None, None),
            (None, None, Some("operators".to_string())),
        ];

        let etcd = policy(&desired, "topo-server");
        let selected = etcd.spec.as_ref().unwrap().pod_selector.as_ref().unwrap();
        assert_eq!(
            selected.match_labels.as_ref().unwrap()[labels::COMPONENT],
            "topo-server"
        );
        let got: Vec<_> = peers_of(etcd, 2379).unwrap().iter().map(selects).collect();
        assert_eq!(got, cluster_and_operator);
        let got: Vec<_> = peers_of(etcd, 2380).unwrap().iter().map(selects).collect();
        assert_eq!(got, vec![(me.clone(), Some("topo-server".into()), None)]);

        let pool = policy(&desired, "shard-pool");
        for port in [5432, 8432] {
            let got: Vec<_> = peers_of(pool, port).unwrap().iter().map(selects).collect();
            assert_eq!(
                got,
                vec![(me.clone(), Some("shard-pool".into()), None)],
                "{port}"
            );
        }
        let got: Vec<_> = peers_of(pool, 15270).unwrap().iter().map(selects).collect();
        assert_eq!(got, cluster_and_operator);
        // pgctld serves its own pod only: no rule opens its ports.
        let open: Vec<i32> = rules(pool).into_iter().flat_map(|(p, _)| p).collect();
        assert!(!open.contains(&15470) && !open.contains(&15400), "{open:?}");

        let gateway = policy(&desired, "multigateway");
        assert_eq!(peers_of(gateway, 5432), None, "clients: anyone by default");
        assert_eq!(peers_of(gateway, 5433), None);
        let got: Vec<_> = peers_of(gateway, 15991)
            .unwrap()
            .iter()
            .map(selects)
            .collect();
        assert_eq!(got, cluster_and_operator);
        for component in ["multiorch", "multiadmin"] {
            let p = policy(&desired, component);
            assert_eq!(peers_of(p, 9464), None, "metrics: anyone by default");
        }
        let admin = policy(&desired, "multiadmin");
        let got: Vec<_> = peers_of(admin, 15990)
            .unwrap()
            .iter()
            .map(selects)
            .collect();
        assert_eq!(
            got, cluster_and_operator,
            "the shard controller asks for switchovers"
        );
    }

    #[test]
    fn clients_can_be_narrowed_and_policies_turned_off() {
        let (mut cluster, templates) = sample();
        let clients = vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some([("team".to_string(), "app".to_string())].into()),
                ..Default::default()
            }),
            ..Default::default()
        }];
        cluster.spec.network_policy = Some(multigres_api::cluster::NetworkPolicyConfig {
            enabled: None,
            gateway_clients: Some(clients.clone()),
            metrics_clients: Some(clients.clone()),
        });
        let resolved = resolve_cluster(&cluster, &templates).unwrap();
        let narrowed = desired(&cluster, &resolved, "operators");
        let gateway = policy(&narrowed, "multigateway");
        assert_eq!(peers_of(gateway, 5432), Some(clients.clone()));
        assert_eq!(peers_of(gateway, 9464), Some(clients.clone()));
        assert_eq!(
            peers_of(policy(&narrowed, "shard-pool"), 9187),
            Some(clients)
        );

        cluster.spec.network_policy.as_mut().unwrap().enabled = Some(false);
        let off = desired(&cluster, &resolved, "operators");
        assert!(off.network_policies.is_empty());
        assert!(off.names().network_policies.is_empty());
    }
}
