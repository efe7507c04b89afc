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
    let desired = desired(&cluster, &resolved);
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
    let desired = desired(&cluster, &resolved);
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
    assert_eq!(desired(&cluster, &resolved).credentials_secret, None);
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
        desired(cluster, &resolved)
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
