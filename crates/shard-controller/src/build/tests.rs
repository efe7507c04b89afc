//! The pods, claims and Secrets a Shard becomes, built from plain data.
use super::*;
use multigres_api::{
    ContainerSpec, CredentialsRef, GlobalTopologyRef, Placement, ShardImages, ShardSpec,
};

pub fn shard() -> Shard {
    let pool = |t, cell: &str, replicas| PoolSpec {
        pool_type: t,
        cell: cell.into(),
        replicas,
        affinity: None,
        data_volume_claim_template: Default::default(),
        postgres: ContainerSpec::default(),
        multipooler: ContainerSpec::default(),
        postgres_parameters: Default::default(),
        placement: Some(Placement {
            zone: Some("zone-a".into()),
            ..Default::default()
        }),
        scheduling: Default::default(),
    };
    let mut shard = Shard::new(
        "c-db-tg-0",
        ShardSpec {
            database: "production_db".into(),
            table_group: "orders_tg".into(),
            shard_name: "0".into(),
            key_range: "0-inf".into(),
            images: ShardImages {
                multipooler: "mg:1".into(),
                postgres: "pg:17".into(),
                ..Default::default()
            },
            pools: vec![
                pool(PoolType::Replica, "us-west-2", 2),
                pool(PoolType::ReadOnly, "us-east-1", 1),
            ],
            global_topo_server: GlobalTopologyRef {
                root_path: "/multigres/global".into(),
                client_service_name: None,
                address: "etcd.ns.svc:2379".into(),
                tls_secret_name: None,
            },
            credentials: CredentialsRef::named("creds"),
            pvc_deletion_policy: Default::default(),
            postgres_exporter: None,
            tls: None,
            backup: None,
        },
    );
    shard.metadata.namespace = Some("ns".into());
    shard.metadata.uid = Some("u".into());
    shard
}

fn container<'a>(pod: &'a Pod, name: &str) -> &'a Container {
    let spec = pod.spec.as_ref().unwrap();
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
        .unwrap()
}

fn env_of<'a>(c: &'a Container, name: &str) -> Option<&'a EnvVar> {
    c.env.as_ref().unwrap().iter().find(|e| e.name == name)
}

#[test]
fn pod_runs_pgctld_and_multipooler_with_the_flags_multigres_needs() {
    let shard = shard();
    let pools = pools(&shard);
    let pod = pod(&shard, &pools[0], 1);
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(pod.name_any(), "c-db-tg-0-replica-us-west-2-1");
    assert_eq!(
        spec.hostname.as_deref(),
        Some("c-db-tg-0-replica-us-west-2-1")
    );
    assert_eq!(
        spec.subdomain.as_deref(),
        Some("c-db-tg-0-replica-us-west-2")
    );
    let pg = container(&pod, "postgres");
    assert_eq!(
        pg.restart_policy.as_deref(),
        Some("Always"),
        "native sidecar"
    );
    assert_eq!(pg.command.as_ref().unwrap(), &["pgctld"]);
    assert_eq!(pg.image.as_deref(), Some("pg:17"));
    assert_eq!(pg.args.as_ref().unwrap()[0], "server");
    let db = env_of(pg, "POSTGRES_DB").and_then(|e| e.value.as_deref());
    assert_eq!(db, Some("production_db"), "pgctld creates the database");
    let args = container(&pod, "multipooler")
        .args
        .as_ref()
        .unwrap()
        .clone();
    let service_id = multigres::pooler_service_id("c-db-tg-0-replica-us-west-2-1");
    for expected in [
        "--cell=us-west-2".to_string(),
        "--database=production_db".into(),
        "--table-group=orders_tg".into(),
        "--shard=0-inf".into(),
        format!("--service-id={service_id}"),
        "--service-map=grpc-pooler".into(),
        "--topo-global-server-addresses=etcd.ns.svc:2379".into(),
        "--hostname=$(POD_NAME).c-db-tg-0-replica-us-west-2.ns.svc".into(),
        "--pgbackrest-ca-file=/etc/multigres/pgbackrest/ca.crt".into(),
    ] {
        assert!(args.contains(&expected), "{expected} missing from {args:?}");
    }
    // multipooler registers `<cell>_<service-id>` as a Postgres application name.
    assert!(format!("us-west-2_{service_id}").len() <= 63);
}

#[test]
fn the_password_reaches_both_containers_only_as_a_file_from_the_secret() {
    let shard = shard();
    let pod = pod(&shard, &pools(&shard)[0], 0);
    for name in ["postgres", "multipooler"] {
        let c = container(&pod, name);
        assert!(env_of(c, "POSTGRES_PASSWORD").is_none(), "{name}");
        let file = env_of(c, "POSTGRES_PASSWORD_FILE").unwrap().value.clone();
        assert_eq!(file.as_deref(), Some("/etc/multigres/credentials/password"));
        let user = env_of(c, "POSTGRES_USER").unwrap();
        let from = user.value_from.as_ref().unwrap().secret_key_ref.as_ref();
        assert_eq!(from.unwrap().name, "creds");
        let mounts = c.volume_mounts.as_ref().unwrap();
        assert!(mounts.iter().any(|m| m.name == "credentials"
            && m.mount_path == CREDENTIALS_DIR
            && m.read_only == Some(true)));
    }
    let volumes = pod.spec.as_ref().unwrap().volumes.as_ref().unwrap();
    let credentials = volumes.iter().find(|v| v.name == "credentials").unwrap();
    let secret = credentials.secret.as_ref().unwrap();
    assert_eq!(secret.secret_name.as_deref(), Some("creds"));
    assert_eq!(secret.items.as_ref().unwrap()[0].key, "password");
    assert_eq!(secret.items.as_ref().unwrap()[0].path, PASSWORD_FILE);
}

#[test]
fn pods_mount_their_data_the_shard_backups_and_pgbackrest_tls() {
    let shard = shard();
    let pod = pod(&shard, &pools(&shard)[0], 1);
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(
        spec.node_selector.as_ref().unwrap()["topology.kubernetes.io/zone"],
        "zone-a"
    );
    let volumes = spec.volumes.as_ref().unwrap();
    let claim = |name: &str| {
        volumes
            .iter()
            .find(|v| v.name == name)
            .unwrap()
            .persistent_volume_claim
            .as_ref()
            .unwrap()
            .claim_name
            .clone()
    };
    assert_eq!(claim("data"), "data-c-db-tg-0-replica-us-west-2-1");
    assert_eq!(claim("backups"), "backups-c-db-tg-0");
    assert_eq!(claim("backups"), backup_pvc(&shard).name_any());
    let tls = volumes.iter().find(|v| v.name == "pgbackrest-tls").unwrap();
    assert_eq!(
        tls.secret.as_ref().unwrap().secret_name.as_deref(),
        Some("c-db-tg-0-pgbackrest-tls")
    );
    let mounts = container(&pod, "postgres").volume_mounts.clone().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m.name == "backups" && m.mount_path == "/backups")
    );
    assert!(hash_of(&pod).is_some());
}

/// The repository's own claim template when `backup.filesystem` gives one; none with S3, and the
/// pods then mount no repository (the pool's pod hash changes: a roll, as for any spec change).
#[test]
fn the_backup_repository_follows_the_shard_backup_configuration() {
    let mut shard = shard();
    let default_hash = hash_of(&pod(&shard, &pools(&shard)[0], 0))
        .unwrap()
        .to_string();
    shard.spec.backup = Some(
        serde_json::from_value(serde_json::json!({
            "filesystem": {"volumeClaimTemplate": {
                "accessModes": ["ReadWriteMany"], "storageClassName": "shared",
                "resources": {"requests": {"storage": "500Gi"}}}}
        }))
        .unwrap(),
    );
    let claim = backup_pvc(&shard).spec.unwrap();
    assert_eq!(claim.storage_class_name.as_deref(), Some("shared"));
    assert_eq!(claim.access_modes, Some(vec!["ReadWriteMany".to_string()]));
    assert!(filesystem_repository(&shard));
    let pod_fs = pod(&shard, &pools(&shard)[0], 0);
    assert_eq!(
        hash_of(&pod_fs),
        Some(default_hash.as_str()),
        "the claim is not part of the pod"
    );

    shard.spec.backup = Some(
        serde_json::from_value(serde_json::json!({"s3": {"bucket": "b", "region": "r"}})).unwrap(),
    );
    assert!(!filesystem_repository(&shard));
    let pod = pod(&shard, &pools(&shard)[0], 0);
    let volumes = pod.spec.as_ref().unwrap().volumes.clone().unwrap();
    assert!(volumes.iter().all(|v| v.name != "backups"));
    for c in ["postgres", "multipooler"] {
        let mounts = container(&pod, c).volume_mounts.clone().unwrap();
        assert!(mounts.iter().all(|m| m.name != "backups"), "{c}");
    }
    // No credentials Secret: pgBackRest finds them itself, nothing is added to the environment.
    let env = container(&pod, "multipooler").env.clone().unwrap();
    assert!(env.iter().all(|e| !e.name.starts_with("AWS_")));
    assert_ne!(hash_of(&pod), Some(default_hash.as_str()));
}

#[test]
fn pgctld_admits_replication_from_other_pods_through_its_template() {
    let shard = shard();
    let pod = pod(&shard, &pools(&shard)[0], 0);
    let pg = container(&pod, "postgres");
    let flag = format!("--pg-hba-template={PG_HBA_DIR}/{PG_HBA_FILE}");
    assert!(pg.args.as_ref().unwrap().contains(&flag));
    let volumes = pod.spec.as_ref().unwrap().volumes.as_ref().unwrap();
    let hba = volumes.iter().find(|v| v.name == "pg-hba").unwrap();
    let name = hba.config_map.as_ref().unwrap().name.clone();
    assert_eq!(name, pg_hba_config_map_name(&shard));
    let cm = pg_hba_config_map(&shard);
    assert_eq!(cm.metadata.name.as_deref(), Some(name.as_str()));
    assert_eq!(cm.immutable, Some(true));
    let template = &cm.data.unwrap()[PG_HBA_FILE];
    assert!(
        template.contains(
            "host    replication     all             0.0.0.0/0               scram-sha-256"
        )
    );
    assert!(
        !template.contains("trust"),
        "every connection needs a password"
    );
}

#[test]
fn pgbackrest_certificates_name_every_pool_pod() {
    let shard = shard();
    let sans = pgbackrest_sans(&shard);
    assert!(sans.contains(&"*.c-db-tg-0-replica-us-west-2.ns.svc".to_string()));
    assert!(sans.contains(&"*.c-db-tg-0-readonly-us-east-1.ns.svc".to_string()));
    let tls = IssuedTls {
        ca_pem: "ca".into(),
        cert_pem: "cert".into(),
        key_pem: "key".into(),
    };
    let secret = pgbackrest_secret(&shard, "s-pgbackrest-tls-0000000042", &tls);
    assert_eq!(secret.name_any(), "s-pgbackrest-tls-0000000042");
    let data = secret.string_data.unwrap();
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        ["ca.crt", "pgbackrest.crt", "pgbackrest.key"]
    );
    assert!(secret.metadata.owner_references.is_some());
}

#[test]
fn hash_changes_with_the_spec_only() {
    let mut shard = shard();
    let pools_a = pools(&shard);
    let a = pod(&shard, &pools_a[0], 0);
    assert_eq!(hash_of(&a), hash_of(&pod(&shard, &pools_a[0], 0)));
    shard.spec.images.postgres = "pg:18".into();
    let b = pod(&shard, &pools(&shard)[0], 0);
    assert_ne!(hash_of(&a), hash_of(&b));
}

#[test]
fn pvcs_are_owned_only_when_the_policy_deletes_them() {
    let mut shard = shard();
    let pool = &pools(&shard)[0];
    assert!(pvc(&shard, pool, "p").metadata.owner_references.is_none());
    shard.spec.pvc_deletion_policy.when_deleted = RetentionAction::Delete;
    assert!(pvc(&shard, pool, "p").metadata.owner_references.is_some());
}

#[test]
fn every_pool_container_has_a_read_only_root_and_a_writable_tmp() {
    let shard = shard();
    let pod = pod(&shard, &pools(&shard)[0], 0);
    for name in ["postgres", "multipooler"] {
        let c = container(&pod, name);
        let context = c.security_context.as_ref().unwrap();
        assert_eq!(context.read_only_root_filesystem, Some(true), "{name}");
    }
    for name in ["postgres", "multipooler"] {
        let mounts = container(&pod, name).volume_mounts.clone().unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| m.name == "tmp" && m.mount_path == "/tmp"),
            "{name}"
        );
    }
    let volumes = pod.spec.as_ref().unwrap().volumes.clone().unwrap();
    assert!(
        volumes
            .iter()
            .any(|v| v.name == "tmp" && v.empty_dir.is_some())
    );
}

#[test]
fn pool_pods_carry_no_service_account_token() {
    let shard = shard();
    let pod = pod(&shard, &pools(&shard)[0], 0);
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.automount_service_account_token, Some(false));
}

#[test]
fn a_restart_request_changes_the_hash_and_nothing_else_does() {
    let mut shard = shard();
    let pool = &pools(&shard)[0];
    let plain = pod(&shard, pool, 0);
    // Without a request the hash is what it always was: existing pods do not roll on upgrade.
    let before = {
        use sha2::{Digest, Sha256};
        let input = serde_json::json!({"labels": plain.metadata.labels, "spec": plain.spec});
        let digest = Sha256::digest(input.to_string().as_bytes());
        digest
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert_eq!(hash_of(&plain), Some(before.as_str()));

    shard.metadata.annotations = Some(BTreeMap::from([(
        labels::RESTART_REQUESTED.to_string(),
        "2026-12-02T07:50:00Z".to_string(),
    )]));
    let restarted = pod(&shard, pool, 0);
    assert_eq!(
        restarted.annotations()[labels::RESTART_REQUESTED],
        "2026-12-02T07:50:00Z"
    );
    assert_ne!(hash_of(&restarted), hash_of(&plain));
    assert_eq!(restarted.spec, plain.spec, "the same pod, replaced");
}

#[test]
fn a_renewed_certificate_changes_the_hash_and_its_first_issuance_does_not() {
    let mut shard = shard();
    shard.spec.tls = Some(multigres_api::TlsRef {
        secret_name: "example-tls".into(),
        require_client_tls: false,
        revision: None,
    });
    let plain = pod(&shard, &pools(&shard)[0], 0);
    shard.spec.tls.as_mut().unwrap().revision = Some(1);
    let first = pod(&shard, &pools(&shard)[0], 0);
    assert_eq!(hash_of(&first), hash_of(&plain), "revision 1: pods stay");
    assert!(!first.annotations().contains_key(labels::TLS_REVISION));
    shard.spec.tls.as_mut().unwrap().revision = Some(2);
    let renewed = pod(&shard, &pools(&shard)[0], 0);
    assert_eq!(renewed.annotations()[labels::TLS_REVISION], "2");
    assert_ne!(hash_of(&renewed), hash_of(&plain));
    assert_eq!(renewed.spec, plain.spec, "the same pod, replaced");
}

#[test]
fn the_exporter_sidecar_logs_in_over_the_pods_address_with_the_mounted_password() {
    let mut shard = shard();
    let pools = pools(&shard);
    let without = pod(&shard, &pools[0], 0);
    let names: Vec<&str> = without
        .spec
        .as_ref()
        .unwrap()
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["multipooler"]);

    shard.spec.postgres_exporter = Some(multigres_api::PostgresExporter {
        image: "exporter:1".into(),
        resources: None,
    });
    let with = pod(&shard, &pools[0], 0);
    assert_ne!(
        hash_of(&with),
        hash_of(&without),
        "adding the sidecar replaces the pod"
    );
    let exporter = container(&with, "postgres-exporter");
    assert_eq!(exporter.image.as_deref(), Some("exporter:1"));
    assert_eq!(
        exporter.args.as_ref().unwrap(),
        &["--web.listen-address=:9187"]
    );
    let env: BTreeMap<&str, Option<&str>> = exporter
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.as_str(), e.value.as_deref()))
        .collect();
    assert_eq!(
        env["DATA_SOURCE_URI"],
        Some("$(POD_IP):5432/postgres?sslmode=disable")
    );
    assert_eq!(env["DATA_SOURCE_PASS_FILE"], Some(password_file().as_str()));
    assert!(env.contains_key("DATA_SOURCE_USER") && env.contains_key("POD_IP"));
    let port = &exporter.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.container_port),
        (Some("pg-metrics"), 9187)
    );
    let security = exporter.security_context.as_ref().unwrap();
    assert_eq!(security.read_only_root_filesystem, Some(true));
    let mounts = exporter.volume_mounts.as_ref().unwrap();
    assert_eq!(mounts.len(), 1, "only the credentials, read-only");
    assert_eq!(mounts[0].read_only, Some(true));
}

#[test]
fn parameters_reach_postgres_through_a_configmap_named_after_them() {
    let mut shard = shard();
    let before = pod(&shard, &pools(&shard)[0], 0);
    let args = container(&before, "postgres").args.clone().unwrap();
    assert!(
        args.contains(
            &"--pg-initdb-extra-conf=/etc/multigres/postgresql/operator.conf".to_string()
        ),
        "always included, so that parameters set later apply: {args:?}"
    );
    shard.spec.pools[0].postgres_parameters = [
        ("work_mem".to_string(), "64MB".to_string()),
        ("application_name".to_string(), "it's".to_string()),
    ]
    .into();
    let pool = &pools(&shard)[0];
    let config_map = pg_conf_config_map(&shard, pool);
    assert_eq!(
        config_map.data.as_ref().unwrap()[PG_CONF_FILE],
        "application_name = 'it''s'\nwork_mem = '64MB'\n"
    );
    assert_eq!(config_map.immutable, Some(true));
    let after = pod(&shard, pool, 0);
    let volume = |p: &Pod| {
        p.spec
            .as_ref()
            .unwrap()
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .find(|v| v.name == "pg-conf")
            .unwrap()
            .config_map
            .as_ref()
            .unwrap()
            .name
            .clone()
    };
    assert_eq!(volume(&after), config_map.metadata.name.clone().unwrap());
    assert_ne!(
        volume(&before),
        volume(&after),
        "new parameters are a new ConfigMap"
    );
    assert_ne!(
        hash_of(&before),
        hash_of(&after),
        "and so a new pod, replaced in the safe order"
    );
    let mounts = container(&after, "postgres").volume_mounts.clone().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m.name == "pg-conf" && m.mount_path == PG_CONF_DIR)
    );
}
