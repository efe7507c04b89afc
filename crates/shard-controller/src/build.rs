//! Pure: what a Shard's pools become. Pods, PVCs, headless Services and PDBs, with every flag, port,
//! env var and probe Multigres needs (docs/multigres-version.md). Unit-tested with plain data.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, KeyToPath, PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodSpec,
    Secret, SecretVolumeSource, SecurityContext, Service, ServicePort, ServiceSpec, Volume,
    VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use multigres_api::labels::{self, component};
use multigres_api::scheduling::RESERVED_ANNOTATION_PREFIX;
use multigres_api::{
    LogLevel, PoolSpec, PoolType, RetentionAction, Shard, TlsRef, multigres, naming,
};
use multigres_runtime::apply::{child_meta, controller_ref};
use multigres_runtime::builders::{
    http_probe, pod_name_env, restricted_pod_security_context, runtime_default_seccomp, secret_env,
    value_env, volume_mount,
};
use multigres_runtime::partition::{PARTITION_LABEL, bucket_of};
use multigres_runtime::pki::IssuedTls;
use sha2::{Digest, Sha256};

/// Annotation holding the hash of everything the controller sets on a pod.
pub const SPEC_HASH: &str = "multigres.com/spec-hash";
/// The pooler dir holds pg_data (pgctld derives PGDATA from it), sockets and pgBackRest's files.
pub const POOLER_DIR: &str = "/var/lib/pooler";
pub const PGDATA: &str = "/var/lib/pooler/pg_data";
pub const SOCKET_DIR: &str = "/var/run/postgresql";
pub const CREDENTIALS_DIR: &str = "/etc/multigres/credentials";
pub const PASSWORD_FILE: &str = "password";
/// pgctld's pgBackRest TLS server reads these three names from its cert dir; multipooler dials a
/// primary's with the same pair (the server accepts client certificates with CN `pgbackrest`).
pub const PGBACKREST_CERT_DIR: &str = "/etc/multigres/pgbackrest";
pub const PGBACKREST_CA: &str = "ca.crt";
pub const PGBACKREST_CERT: &str = "pgbackrest.crt";
pub const PGBACKREST_KEY: &str = "pgbackrest.key";
pub use multigres_api::multigres::{
    PGBACKREST_PORT, PGCTLD_GRPC_PORT as PGCTLD_GRPC, PGCTLD_HTTP_PORT as PGCTLD_HTTP,
    POOLER_GRPC_PORT as POOLER_GRPC, POOLER_HTTP_PORT as POOLER_HTTP,
};
/// Where pgctld reads its pg_hba.conf template (the shard's ConfigMap).
pub const PG_HBA_DIR: &str = "/etc/multigres/pg-hba";
pub const PG_HBA_FILE: &str = "pg_hba_template.conf";

/// pgctld's built-in rules admit replication only from loopback, but a replica's WAL stream comes
/// from another pod's address: this template admits it from anywhere, with a password
/// (scram-sha-256), like every other TCP connection. NetworkPolicies narrow who can reach Postgres.
pub const PG_HBA_TEMPLATE: &str = "\
# TYPE  DATABASE        USER            ADDRESS                 METHOD
local   all             all                                     scram-sha-256
local   replication     all                                     scram-sha-256
host    replication     all             0.0.0.0/0               scram-sha-256
host    replication     all             ::0/0                   scram-sha-256
host    all             all             0.0.0.0/0               scram-sha-256
host    all             all             ::0/0                   scram-sha-256
";
pub use multigres_api::multigres::PG_PORT;
/// The postgres user of the pgctld image (built on the official postgres image).
pub const POSTGRES_UID: i64 = 999;

/// One pool of a shard, with the names and labels its children share.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    pub id: String,
    pub spec: PoolSpec,
    pub service: String,
    pub labels: BTreeMap<String, String>,
    /// The pool's pods or claims carry the earlier, hashed names: new pods take them too, so that
    /// a pod comes back on its own claim (docs/operations.md "Names").
    pub earlier_names: bool,
    /// The Shard's pgBackRest TLS Secret the pods mount (`certificates`): renewed under a new name.
    pub pgbackrest_secret: String,
}

impl Pool {
    /// The name of the pool's pod `index` in the Shard named `shard`.
    pub fn pod_name(&self, shard: &str, index: u32) -> String {
        if self.earlier_names {
            naming::pool_pod_hashed(shard, &self.id, index)
        } else {
            naming::pool_pod(shard, &self.id, index)
        }
    }

    /// Labels that select exactly this pool's pods.
    pub fn selector(&self) -> BTreeMap<String, String> {
        [labels::OWNER, labels::POOL]
            .iter()
            .filter_map(|k| self.labels.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect()
    }
}

/// The partition bucket of a Shard; its children carry it in `multigres.com/partition`.
pub fn bucket(shard: &Shard) -> u32 {
    bucket_of(&multigres_runtime::run::object_key(shard))
}

/// Labels every child of `shard` carries.
pub fn shard_child_labels(shard: &Shard) -> BTreeMap<String, String> {
    let mut out = shard.labels().clone();
    out.insert(
        labels::COMPONENT.to_string(),
        component::SHARD_POOL.to_string(),
    );
    out.insert(labels::OWNER.to_string(), shard.name_any());
    out.insert(labels::SHARD.to_string(), shard.spec.shard_name.clone());
    out.insert(
        labels::MANAGED_BY.to_string(),
        labels::MANAGED_BY_VALUE.to_string(),
    );
    out.insert(PARTITION_LABEL.to_string(), bucket(shard).to_string());
    out
}

/// The pools of a shard, in spec order.
pub fn pools(shard: &Shard) -> Vec<Pool> {
    shard
        .spec
        .pools
        .iter()
        .map(|spec| {
            let id = naming::pool_id(spec.pool_type, &spec.cell);
            let mut labels = shard_child_labels(shard);
            labels.insert(labels::POOL.into(), id.clone());
            labels.insert(labels::POOL_TYPE.into(), spec.pool_type.as_str().into());
            labels.insert(labels::CELL.into(), spec.cell.clone());
            Pool {
                service: naming::pool_service(&shard.name_any(), &id),
                id,
                spec: spec.clone(),
                labels,
                earlier_names: false,
                pgbackrest_secret: naming::pgbackrest_tls_secret(&shard.name_any()),
            }
        })
        .collect()
}

/// The headless Service that gives the pool's pods stable host names.
pub fn service(shard: &Shard, pool: &Pool) -> Service {
    let port = |name: &str, port: i32| ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::Int(port)),
        ..Default::default()
    };
    Service {
        metadata: child_meta(shard, &pool.service, pool.labels.clone()),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(pool.selector()),
            ports: Some(vec![
                port("postgres", PG_PORT),
                port("pooler-grpc", POOLER_GRPC),
                port("pooler-http", POOLER_HTTP),
                port("pgctld-grpc", PGCTLD_GRPC),
                port("pgctld-http", PGCTLD_HTTP),
                port("pgbackrest", PGBACKREST_PORT),
            ]),
            ..Default::default()
        }),
        status: None,
    }
}

/// At most one pod of a pool down at a time, voluntarily. Written as an integer `minAvailable`: the
/// disruption controller computes `maxUnavailable` from the pods' controller's scale, which a Shard
/// does not have, and would then allow no eviction at all.
pub fn pdb(shard: &Shard, pool: &Pool) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: child_meta(
            shard,
            &naming::pool_pdb(&shard.name_any(), &pool.id),
            pool.labels.clone(),
        ),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int((pool.spec.replicas - 1).max(0))),
            selector: Some(LabelSelector {
                match_labels: Some(pool.selector()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    }
}

/// The data PVC of pod `pod`. Owned by the Shard only when `pvcDeletionPolicy.whenDeleted` is
/// Delete, so that by default it outlives the Shard.
pub fn pvc(shard: &Shard, pool: &Pool, pod: &str) -> PersistentVolumeClaim {
    let owner = (shard.spec.pvc_deletion_policy.when_deleted == RetentionAction::Delete)
        .then(|| controller_ref(shard))
        .flatten();
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(naming::data_pvc(pod)),
            namespace: shard.namespace(),
            labels: Some(pool.labels.clone()),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(pool.spec.data_volume_claim_template.clone()),
        status: None,
    }
}

fn ports(list: &[(&str, i32)]) -> Option<Vec<ContainerPort>> {
    Some(
        list.iter()
            .map(|(name, port)| ContainerPort {
                name: Some((*name).into()),
                container_port: *port,
                ..Default::default()
            })
            .collect(),
    )
}

fn restricted() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..Default::default()
    }
}

/// Pod `index` of `pool`, with its spec hash annotation.
pub fn pod(shard: &Shard, pool: &Pool, index: u32) -> Pod {
    let name = pool.pod_name(&shard.name_any(), index);
    let spec = &shard.spec;
    let images = &spec.images;
    let mut pod = Pod {
        metadata: child_meta(shard, &name, pool.labels.clone()),
        spec: Some(PodSpec {
            // Postgres, pgctld and multipooler never call the Kubernetes API: no token in the pod.
            automount_service_account_token: Some(false),
            hostname: Some(name.clone()),
            subdomain: Some(pool.service.clone()),
            // pgctld is a native sidecar: it outlives multipooler on shutdown, so multipooler can
            // stop Postgres cleanly through it.
            init_containers: Some(vec![postgres_container(shard, pool)]),
            containers: [multipooler_container(shard, pool, &name)]
                .into_iter()
                .chain(
                    spec.postgres_exporter
                        .as_ref()
                        .map(|e| exporter::container(shard, e)),
                )
                .collect(),
            volumes: Some(pod_volumes(shard, pool, &name)),
            affinity: pool.spec.affinity.clone(),
            image_pull_secrets: (!images.image_pull_secrets.is_empty())
                .then(|| images.image_pull_secrets.clone()),
            security_context: Some(restricted_pod_security_context(POSTGRES_UID)),
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(60),
            ..Default::default()
        }),
        status: None,
    };
    // Node selector and tolerations: the cell's placement and the pool's; spread: the pool's, else
    // the default over zones and nodes of exactly this pool's pods.
    if let Some(pod_spec) = pod.spec.as_mut() {
        pool.spec.scheduling.apply_to(
            &mut pod.metadata,
            pod_spec,
            pool.spec.placement.as_ref(),
            &pool.selector(),
            true,
        );
    }
    if let Some(requested) = shard.annotations().get(labels::RESTART_REQUESTED) {
        pod.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(labels::RESTART_REQUESTED.into(), requested.clone());
    }
    TlsRef::annotate_pod(shard.spec.tls.as_ref(), &mut pod.metadata);
    pod.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(
            labels::PGBACKREST_TLS.into(),
            pool.pgbackrest_secret.clone(),
        );
    let hash = spec_hash(&pod);
    pod.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(SPEC_HASH.into(), hash);
    pod
}

/// Postgres, started and supervised by `pgctld server` from the pgctld image, with pgBackRest's TLS
/// server for replicas that restore or back up from this instance.
fn postgres_container(shard: &Shard, pool: &Pool) -> Container {
    let args = [
        "server".to_string(),
        format!("--pooler-dir={POOLER_DIR}"),
        format!("--grpc-port={PGCTLD_GRPC}"),
        format!("--http-port={PGCTLD_HTTP}"),
        format!("--pg-port={PG_PORT}"),
        "--pg-listen-addresses=*".into(),
        format!("--pgbackrest-port={PGBACKREST_PORT}"),
        format!("--pgbackrest-cert-dir={PGBACKREST_CERT_DIR}"),
        format!("--pg-hba-template={PG_HBA_DIR}/{PG_HBA_FILE}"),
        // Always, so that a data folder initialised now reads parameters set later.
        format!("--pg-initdb-extra-conf={PG_CONF_DIR}/{PG_CONF_FILE}"),
    ];
    let logging = pool.spec.postgres.logging.args(Some(LogLevel::Info));
    Container {
        name: "postgres".into(),
        image: Some(shard.spec.images.postgres.clone()),
        image_pull_policy: pull_policy(shard),
        command: Some(vec!["pgctld".into()]),
        args: Some([args.to_vec(), logging].concat()),
        // pgctld creates only `postgres` unless told the database to create at initialisation;
        // multipooler connects to `--database`.
        env: Some(
            [
                credential_env(shard),
                vec![value_env("POSTGRES_DB", &shard.spec.database)],
                metrics_env(multigres::PGCTLD_METRICS_PORT),
            ]
            .concat(),
        ),
        ports: ports(&[
            ("postgres", PG_PORT),
            ("pgctld-grpc", PGCTLD_GRPC),
            ("pgctld-http", PGCTLD_HTTP),
            ("pgbackrest", PGBACKREST_PORT),
            (
                multigres::PGCTLD_METRICS_PORT_NAME,
                multigres::PGCTLD_METRICS_PORT,
            ),
        ]),
        restart_policy: Some("Always".into()),
        startup_probe: Some(http_probe("/live", PGCTLD_HTTP, 5, 3, 60)),
        liveness_probe: Some(http_probe("/live", PGCTLD_HTTP, 10, 3, 6)),
        readiness_probe: Some(http_probe("/live", PGCTLD_HTTP, 5, 3, 3)),
        resources: pool.spec.postgres.resources.clone(),
        volume_mounts: Some(
            [
                data_plane_mounts(shard),
                vec![
                    volume_mount("pg-hba", PG_HBA_DIR, true),
                    volume_mount("pg-conf", PG_CONF_DIR, true),
                ],
            ]
            .concat(),
        ),
        security_context: Some(SecurityContext {
            run_as_user: Some(POSTGRES_UID),
            read_only_root_filesystem: Some(true),
            ..restricted()
        }),
        ..Default::default()
    }
}

fn multipooler_container(shard: &Shard, pool: &Pool, pod_name: &str) -> Container {
    let spec = &shard.spec;
    let namespace = shard.namespace().unwrap_or_default();
    let topology = &spec.global_topo_server;
    let mut flags: Vec<(&str, String)> = vec![
        ("--cell", pool.spec.cell.clone()),
        ("--database", spec.database.clone()),
        ("--table-group", spec.table_group.clone()),
        ("--shard", spec.multigres_shard().to_string()),
        ("--service-id", multigres::pooler_service_id(pod_name)),
        ("--hostname", pooler_hostname(pool, &namespace)),
        ("--pooler-dir", POOLER_DIR.into()),
        (
            "--socket-file",
            format!("{POOLER_DIR}/pg_sockets/.s.PGSQL.{PG_PORT}"),
        ),
        ("--pgctld-addr", format!("localhost:{PGCTLD_GRPC}")),
        ("--pg-port", PG_PORT.to_string()),
        ("--http-port", POOLER_HTTP.to_string()),
        ("--grpc-port", POOLER_GRPC.to_string()),
        ("--service-map", "grpc-pooler".into()),
    ];
    flags.extend(topology.flags());
    flags.extend([
        ("--pgbackrest-port", PGBACKREST_PORT.to_string()),
        (
            "--pgbackrest-cert-file",
            format!("{PGBACKREST_CERT_DIR}/{PGBACKREST_CERT}"),
        ),
        (
            "--pgbackrest-key-file",
            format!("{PGBACKREST_CERT_DIR}/{PGBACKREST_KEY}"),
        ),
        (
            "--pgbackrest-ca-file",
            format!("{PGBACKREST_CERT_DIR}/{PGBACKREST_CA}"),
        ),
    ]);
    // Mutual TLS on its gRPC (gateways, orchestrators and multiadmin dial it). Its own calls to
    // pgctld stay plaintext inside the pod: the pinned multipooler has no TLS for them.
    if spec.tls.is_some() {
        flags.extend(multigres::grpc_server_tls_flags());
    }
    let (repository_flags, repository_env, repository_mounts) = repository_access(shard);
    flags.extend(repository_flags);
    flags.extend(pool.spec.multipooler.logging.flags(Some(LogLevel::Info)));
    let mut env = credential_env(shard);
    env.push(pod_name_env());
    env.extend(metrics_env(multigres::METRICS_PORT));
    env.extend(repository_env);
    Container {
        name: "multipooler".into(),
        image: Some(spec.images.multipooler.clone()),
        image_pull_policy: pull_policy(shard),
        command: Some(vec!["multipooler".into()]),
        args: Some(flags.into_iter().map(|(f, v)| format!("{f}={v}")).collect()),
        env: Some(env),
        ports: ports(&[
            ("pooler-grpc", POOLER_GRPC),
            ("pooler-http", POOLER_HTTP),
            (multigres::METRICS_PORT_NAME, multigres::METRICS_PORT),
        ]),
        startup_probe: Some(http_probe("/live", POOLER_HTTP, 5, 3, 60)),
        liveness_probe: Some(http_probe("/live", POOLER_HTTP, 10, 3, 6)),
        readiness_probe: Some(http_probe("/ready", POOLER_HTTP, 5, 3, 3)),
        resources: pool.spec.multipooler.resources.clone(),
        volume_mounts: Some(
            data_plane_mounts(shard)
                .into_iter()
                .chain(spec.tls.as_ref().map(|_| multigres::tls_volume_mount()))
                .chain(topology.tls_volume_mount())
                .chain(repository_mounts)
                .collect(),
        ),
        security_context: Some(SecurityContext {
            run_as_user: Some(POSTGRES_UID),
            read_only_root_filesystem: Some(true),
            ..restricted()
        }),
        ..Default::default()
    }
}

/// Prometheus metrics of pgctld or multipooler on `port` (docs/monitoring.md).
fn metrics_env(port: i32) -> Vec<EnvVar> {
    multigres::metrics_env(port)
        .iter()
        .map(|(name, value)| value_env(name, value))
        .collect()
}

/// The name multipooler registers and others dial (pgBackRest among them, which checks it against
/// the certificate): the pod's stable DNS name under its pool's headless Service.
pub fn pooler_hostname(pool: &Pool, namespace: &str) -> String {
    format!("$(POD_NAME).{}.{namespace}.svc", pool.service)
}

fn pull_policy(shard: &Shard) -> Option<String> {
    shard
        .spec
        .images
        .image_pull_policy
        .map(|p| p.as_str().to_string())
}

/// The superuser pgctld creates and multipooler logs in as; the password only as a mounted file.
fn credential_env(shard: &Shard) -> Vec<EnvVar> {
    let credentials = &shard.spec.credentials;
    vec![
        value_env("PGDATA", PGDATA),
        secret_env(
            "POSTGRES_USER",
            &credentials.secret_name,
            &credentials.username_key,
        ),
        value_env("POSTGRES_PASSWORD_FILE", &password_file()),
    ]
}

pub fn password_file() -> String {
    format!("{CREDENTIALS_DIR}/{PASSWORD_FILE}")
}

/// Both containers see the same data, backup repository (a filesystem one), certificates,
/// credentials and sockets.
fn data_plane_mounts(shard: &Shard) -> Vec<VolumeMount> {
    let mut mounts = vec![volume_mount("data", POOLER_DIR, false)];
    if filesystem_repository(shard) {
        mounts.push(volume_mount(
            "backups",
            multigres::BACKUP_REPOSITORY_PATH,
            false,
        ));
    }
    mounts.extend([
        volume_mount("sockets", SOCKET_DIR, false),
        volume_mount("tmp", "/tmp", false),
        volume_mount("pgbackrest-tls", PGBACKREST_CERT_DIR, true),
        volume_mount("credentials", CREDENTIALS_DIR, true),
    ]);
    mounts
}

/// Whether the shard's backups go to its `backups-<shard>` claim (not to object storage).
pub fn filesystem_repository(shard: &Shard) -> bool {
    shard.spec.backup.as_ref().is_none_or(|b| b.s3.is_none())
}

/// Where multipooler reads the repository's cipher key (docs/backup-restore.md).
pub const BACKUP_KEY_DIR: &str = "/etc/multigres/backup-encryption";
pub const BACKUP_KEY_FILE: &str = "cipher-key.json";

/// multipooler's flags, environment and mounts for the repository's encryption and S3
/// credentials, when the shard's backup configuration has them.
fn repository_access(
    shard: &Shard,
) -> (Vec<(&'static str, String)>, Vec<EnvVar>, Vec<VolumeMount>) {
    let Some(config) = shard.spec.backup.as_ref() else {
        return Default::default();
    };
    let mut flags = Vec::new();
    let mut mounts = Vec::new();
    if config.encryption.is_some() {
        flags.push((
            "--pgbackrest-cipher-key-file",
            format!("{BACKUP_KEY_DIR}/{BACKUP_KEY_FILE}"),
        ));
        mounts.push(volume_mount("backup-encryption", BACKUP_KEY_DIR, true));
    }
    let env = config
        .s3
        .as_ref()
        .and_then(|s3| s3.credentials_secret.as_ref())
        .map(|secret| {
            secret
                .env_keys()
                .into_iter()
                .map(|(var, key)| secret_env(var, &secret.name, &key))
                .collect()
        })
        .unwrap_or_default();
    (flags, env, mounts)
}

fn pod_volumes(shard: &Shard, pool: &Pool, pod_name: &str) -> Vec<Volume> {
    let claim = |name: &str, claim_name: String| Volume {
        name: name.into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name,
            read_only: None,
        }),
        ..Default::default()
    };
    let secret = |name: &str, secret_name: String, items: Vec<KeyToPath>, mode: i32| Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret_name),
            items: Some(items),
            default_mode: Some(mode),
            optional: Some(false),
        }),
        ..Default::default()
    };
    let key = |key: &str, path: &str| KeyToPath {
        key: key.into(),
        path: path.into(),
        mode: None,
    };
    let credentials = &shard.spec.credentials;
    let tls = shard.spec.tls.as_ref();
    let mut volumes = vec![claim("data", naming::data_pvc(pod_name))];
    if filesystem_repository(shard) {
        volumes.push(claim("backups", naming::backup_pvc(&shard.name_any())));
    }
    if let Some(encryption) = shard
        .spec
        .backup
        .as_ref()
        .and_then(|b| b.encryption.as_ref())
    {
        let key_secret = &encryption.key_secret;
        volumes.push(secret(
            "backup-encryption",
            key_secret.name.clone(),
            vec![key(&key_secret.key, BACKUP_KEY_FILE)],
            0o400,
        ));
    }
    volumes.extend([
        Volume {
            name: "sockets".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
        // The root file systems are read-only: scratch space for pgctld, Postgres and pgBackRest.
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
        // Both containers run as the same user, so owner-only modes suffice.
        secret(
            "pgbackrest-tls",
            pool.pgbackrest_secret.clone(),
            vec![
                key(PGBACKREST_CA, PGBACKREST_CA),
                key(PGBACKREST_CERT, PGBACKREST_CERT),
                key(PGBACKREST_KEY, PGBACKREST_KEY),
            ],
            0o400,
        ),
        secret(
            "credentials",
            credentials.secret_name.clone(),
            vec![key(&credentials.password_key, PASSWORD_FILE)],
            0o400,
        ),
        Volume {
            name: "pg-hba".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: pg_hba_config_map_name(shard),
                items: Some(vec![key(PG_HBA_FILE, PG_HBA_FILE)]),
                default_mode: Some(0o444),
                optional: Some(false),
            }),
            ..Default::default()
        },
        Volume {
            name: "pg-conf".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: pg_conf_config_map_name(shard, pool),
                items: Some(vec![key(PG_CONF_FILE, PG_CONF_FILE)]),
                default_mode: Some(0o444),
                optional: Some(false),
            }),
            ..Default::default()
        },
    ]);
    volumes.extend(tls.map(|tls| multigres::tls_volume(&tls.secret_name)));
    volumes.extend(shard.spec.global_topo_server.tls_volume());
    volumes
}

/// Hash of a pod's labels and spec: a pod whose annotation differs must be replaced.
pub fn spec_hash(pod: &Pod) -> String {
    let mut input = serde_json::json!({"labels": pod.metadata.labels, "spec": pod.spec});
    // Only when requested, so that the hash of every other pod stays what it was.
    if let Some(requested) = pod.annotations().get(labels::RESTART_REQUESTED) {
        input["restartRequested"] = requested.clone().into();
    }
    // A renewed certificate (docs/security.md, "Rotation"): likewise only when there is one.
    if let Some(revision) = pod.annotations().get(labels::TLS_REVISION) {
        input["tlsRevision"] = revision.clone().into();
    }
    // The user's annotations (pods are replaced, never updated): only when set, likewise.
    let user: BTreeMap<&String, &String> = pod
        .annotations()
        .iter()
        .filter(|(k, _)| !k.starts_with(RESERVED_ANNOTATION_PREFIX))
        .collect();
    if !user.is_empty() {
        input["annotations"] = serde_json::json!(user);
    }
    let digest = Sha256::digest(input.to_string().as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The hash a pod was built with.
pub fn hash_of(pod: &Pod) -> Option<&str> {
    pod.annotations().get(SPEC_HASH).map(String::as_str)
}

/// Whether the pool's members can become primary.
pub fn can_be_primary(pool: &Pool) -> bool {
    pool.spec.pool_type == PoolType::Replica
}

mod exporter;
mod shard_wide;
pub use shard_wide::{
    PG_CONF_DIR, PG_CONF_FILE, backup_pvc, pg_conf_config_map, pg_conf_config_map_name,
    pg_hba_config_map, pg_hba_config_map_name, pgbackrest_sans, pgbackrest_secret, postgres_conf,
};

#[cfg(test)]
mod scheduling_tests;
#[cfg(test)]
mod tests;
