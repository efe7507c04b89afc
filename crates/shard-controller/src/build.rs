//! Pure: what a Shard's pools become. Pods, PVCs, headless Services and PDBs, with every flag, port,
//! env var and probe Multigres needs (DESIGN §4). Unit-tested with plain data.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodSpec, SecretKeySelector,
    SecurityContext, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use multigres_api::labels::{self, component};
use multigres_api::{PoolSpec, PoolType, RetentionAction, Shard, naming};
use multigres_runtime::apply::{child_meta, controller_ref};
use multigres_runtime::builders::{
    http_probe, pod_name_env, restricted_pod_security_context, runtime_default_seccomp,
};
use multigres_runtime::partition::{PARTITION_LABEL, bucket_of};
use sha2::{Digest, Sha256};

/// Annotation holding the hash of everything the controller sets on a pod.
pub const SPEC_HASH: &str = "multigres.com/spec-hash";
pub const POOLER_DIR: &str = "/var/lib/pooler";
pub const PGDATA: &str = "/var/lib/pooler/pg_data";
pub const BIN_DIR: &str = "/usr/local/multigres/bin";
pub const PGCTLD_GRPC: i32 = 15200;
pub const PGCTLD_HTTP: i32 = 15100;
pub const POOLER_GRPC: i32 = 15201;
pub const POOLER_HTTP: i32 = 15101;
pub const PG_PORT: i32 = 5432;
/// The postgres user in the official images.
pub const POSTGRES_UID: i64 = 999;

/// One pool of a shard, with the names and labels its children share.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    pub id: String,
    pub spec: PoolSpec,
    pub service: String,
    pub labels: BTreeMap<String, String>,
}

impl Pool {
    pub fn pod_name(&self, shard: &Shard, index: u32) -> String {
        naming::pool_pod(&shard.name_any(), &self.id, index)
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
            ]),
            ..Default::default()
        }),
        status: None,
    }
}

/// At most one pod of a pool down at a time, voluntarily.
pub fn pdb(shard: &Shard, pool: &Pool) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: child_meta(
            shard,
            &naming::pool_pdb(&shard.name_any(), &pool.id),
            pool.labels.clone(),
        ),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
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

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
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

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..Default::default()
    }
}

/// Pod `index` of `pool`, with its spec hash annotation.
pub fn pod(shard: &Shard, pool: &Pool, index: u32) -> Pod {
    let name = pool.pod_name(shard, index);
    let spec = &shard.spec;
    let images = &spec.images;
    let pull = images.image_pull_policy.map(|p| p.as_str().to_string());
    let credentials = &spec.credentials;
    let placement = pool.spec.placement.clone().unwrap_or_default();
    let node_selector = placement.node_selector();

    let install_pgctld = Container {
        name: "install-pgctld".into(),
        image: Some(images.pgctld.clone()),
        image_pull_policy: pull.clone(),
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            format!("cp \"$(command -v pgctld)\" {BIN_DIR}/pgctld"),
        ]),
        volume_mounts: Some(vec![mount("multigres-bin", BIN_DIR)]),
        security_context: Some(restricted()),
        ..Default::default()
    };
    let postgres = Container {
        name: "postgres".into(),
        image: Some(images.postgres.clone()),
        image_pull_policy: pull.clone(),
        command: Some(vec![format!("{BIN_DIR}/pgctld"), "server".into()]),
        args: Some(
            [
                "--pooler-dir",
                POOLER_DIR,
                "--grpc-port",
                &PGCTLD_GRPC.to_string(),
                "--http-port",
                &PGCTLD_HTTP.to_string(),
                "--pg-port",
                &PG_PORT.to_string(),
                "--pg-listen-addresses",
                "*",
            ]
            .map(String::from)
            .to_vec(),
        ),
        env: Some(vec![
            secret_env(
                "POSTGRES_USER",
                &credentials.secret_name,
                &credentials.username_key,
            ),
            secret_env(
                "POSTGRES_PASSWORD",
                &credentials.secret_name,
                &credentials.password_key,
            ),
            env("PGDATA", PGDATA),
        ]),
        ports: ports(&[
            ("postgres", PG_PORT),
            ("pgctld-grpc", PGCTLD_GRPC),
            ("pgctld-http", PGCTLD_HTTP),
        ]),
        liveness_probe: Some(http_probe("/live", PGCTLD_HTTP, 10, 3, 6)),
        readiness_probe: Some(http_probe("/ready", PGCTLD_HTTP, 5, 3, 3)),
        resources: pool.spec.postgres.resources.clone(),
        volume_mounts: Some(vec![
            mount("data", POOLER_DIR),
            mount("multigres-bin", BIN_DIR),
        ]),
        security_context: Some(SecurityContext {
            run_as_user: Some(POSTGRES_UID),
            ..restricted()
        }),
        ..Default::default()
    };
    let pooler_args: Vec<String> = [
        ("--cell", pool.spec.cell.as_str()),
        ("--database", spec.database.as_str()),
        ("--table-group", spec.table_group.as_str()),
        ("--shard", spec.shard_name.as_str()),
        ("--pooler-dir", POOLER_DIR),
        ("--pgctld-addr", &format!("localhost:{PGCTLD_GRPC}")),
        ("--pg-port", &PG_PORT.to_string()),
        ("--http-port", &POOLER_HTTP.to_string()),
        ("--grpc-port", &POOLER_GRPC.to_string()),
        ("--service-map", "grpc-pooler"),
        (
            "--topo-global-server-addresses",
            spec.global_topo_server.address.as_str(),
        ),
        (
            "--topo-global-root",
            spec.global_topo_server.root_path.as_str(),
        ),
        ("--hostname", &format!("$(POD_NAME).{}", pool.service)),
        ("--service-id", "$(POD_NAME)"),
        ("--log-level", "info"),
    ]
    .iter()
    .flat_map(|(flag, value)| [flag.to_string(), value.to_string()])
    .collect();
    let multipooler = Container {
        name: "multipooler".into(),
        image: Some(images.multipooler.clone()),
        image_pull_policy: pull,
        command: Some(vec!["multipooler".into()]),
        args: Some(pooler_args),
        env: Some(vec![pod_name_env(), env("PGDATA", PGDATA)]),
        ports: ports(&[("pooler-grpc", POOLER_GRPC), ("pooler-http", POOLER_HTTP)]),
        liveness_probe: Some(http_probe("/live", POOLER_HTTP, 10, 3, 6)),
        readiness_probe: Some(http_probe("/ready", POOLER_HTTP, 5, 3, 3)),
        resources: pool.spec.multipooler.resources.clone(),
        volume_mounts: Some(vec![mount("data", POOLER_DIR)]),
        security_context: Some(SecurityContext {
            run_as_user: Some(POSTGRES_UID),
            ..restricted()
        }),
        ..Default::default()
    };

    let mut pod = Pod {
        metadata: child_meta(shard, &name, pool.labels.clone()),
        spec: Some(PodSpec {
            hostname: Some(name.clone()),
            subdomain: Some(pool.service.clone()),
            init_containers: Some(vec![install_pgctld]),
            containers: vec![postgres, multipooler],
            volumes: Some(vec![
                Volume {
                    name: "data".into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: naming::data_pvc(&name),
                        read_only: None,
                    }),
                    ..Default::default()
                },
                Volume {
                    name: "multigres-bin".into(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Default::default()
                },
            ]),
            affinity: pool.spec.affinity.clone(),
            node_selector: (!node_selector.is_empty()).then_some(node_selector),
            tolerations: placement.tolerations.clone(),
            image_pull_secrets: (!images.image_pull_secrets.is_empty())
                .then(|| images.image_pull_secrets.clone()),
            security_context: Some(restricted_pod_security_context(POSTGRES_UID)),
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(60),
            ..Default::default()
        }),
        status: None,
    };
    let hash = spec_hash(&pod);
    pod.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(SPEC_HASH.into(), hash);
    pod
}

/// Hash of a pod's labels and spec: a pod whose annotation differs must be replaced.
pub fn spec_hash(pod: &Pod) -> String {
    let input = serde_json::json!({"labels": pod.metadata.labels, "spec": pod.spec});
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

#[cfg(test)]
mod tests {
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
            placement: Some(Placement {
                zone: Some("zone-a".into()),
                ..Default::default()
            }),
        };
        let mut shard = Shard::new(
            "c-db-tg-0",
            ShardSpec {
                database: "production_db".into(),
                table_group: "orders_tg".into(),
                shard_name: "0".into(),
                shard_count: 1,
                images: ShardImages {
                    multipooler: "mg:1".into(),
                    postgres: "pg:17".into(),
                    pgctld: "pgctld:1".into(),
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
                },
                credentials: CredentialsRef::named("creds"),
                pvc_deletion_policy: Default::default(),
            },
        );
        shard.metadata.namespace = Some("ns".into());
        shard.metadata.uid = Some("u".into());
        shard
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
        let pg = &spec.containers[0];
        assert_eq!(
            pg.command.as_ref().unwrap()[0],
            "/usr/local/multigres/bin/pgctld"
        );
        let args = spec.containers[1].args.as_ref().unwrap().join(" ");
        for expected in [
            "--cell us-west-2",
            "--database production_db",
            "--table-group orders_tg",
            "--shard 0",
            "--service-map grpc-pooler",
            "--topo-global-server-addresses etcd.ns.svc:2379",
            "--hostname $(POD_NAME).c-db-tg-0-replica-us-west-2",
        ] {
            assert!(args.contains(expected), "{expected} missing from {args}");
        }
        // The password only ever comes from the Secret.
        let pw = pg
            .env
            .as_ref()
            .unwrap()
            .iter()
            .find(|e| e.name == "POSTGRES_PASSWORD")
            .unwrap();
        assert!(pw.value.is_none());
        assert_eq!(
            pw.value_from
                .as_ref()
                .unwrap()
                .secret_key_ref
                .as_ref()
                .unwrap()
                .name,
            "creds"
        );
        assert_eq!(
            spec.node_selector.as_ref().unwrap()["topology.kubernetes.io/zone"],
            "zone-a"
        );
        assert_eq!(
            spec.volumes.as_ref().unwrap()[0]
                .persistent_volume_claim
                .as_ref()
                .unwrap()
                .claim_name,
            "data-c-db-tg-0-replica-us-west-2-1"
        );
        assert!(hash_of(&pod).is_some());
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
}
