//! What a MultigresCluster becomes: the exact child objects and topology records, from the pure
//! resolution in `multigres_api::resolve`. No client here: spec in, objects out.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, HTTPGetAction, PodSpec, PodTemplateSpec, Probe, Secret, Service, ServicePort,
    ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;
use multigres_api::cluster::QuorumType;
use multigres_api::labels::{self, component};
use multigres_api::multigres::{self, BACKUP_REPOSITORY_PATH};
use multigres_api::resolve::{DatabaseRegistration, ResolvedCluster, ResolvedMultiAdmin};
use multigres_api::{Cell, MultigresCluster, RetentionAction, TableGroup, TopoServer, naming};
use multigres_runtime::apply::child_meta;
use multigres_runtime::builders::{
    container_port, downward_env, restricted_container_security_context,
    restricted_pod_security_context, service_port,
};
use multigres_topology::pb;

/// multiadmin's HTTP port (`/live`, `/ready`).
pub const MULTIADMIN_HTTP_PORT: i32 = 15000;
pub use multigres_api::multigres::MULTIADMIN_GRPC_PORT;
/// The user name of the generated credentials.
pub const POSTGRES_USER: &str = "postgres";
/// Length of a generated password.
pub const PASSWORD_LEN: usize = 32;

/// Every child object of one cluster, in apply order.
#[derive(Clone, Debug)]
pub struct Desired {
    pub topo_server: Option<TopoServer>,
    pub multiadmin_service: Service,
    pub multiadmin_deployment: Deployment,
    pub cells: Vec<Cell>,
    pub table_groups: Vec<TableGroup>,
    /// Name of the credentials Secret to generate, when the user named none.
    pub credentials_secret: Option<String>,
    /// Database records for the global topology.
    pub databases: Vec<pb::Database>,
}

impl Desired {
    /// Names of every child, by kind, for pruning.
    pub fn names(&self) -> DesiredNames {
        DesiredNames {
            topo_servers: self.topo_server.iter().map(name_of).collect(),
            cells: self.cells.iter().map(name_of).collect(),
            table_groups: self.table_groups.iter().map(name_of).collect(),
            deployments: BTreeSet::from([name_of(&self.multiadmin_deployment)]),
            services: BTreeSet::from([name_of(&self.multiadmin_service)]),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct DesiredNames {
    pub topo_servers: BTreeSet<String>,
    pub cells: BTreeSet<String>,
    pub table_groups: BTreeSet<String>,
    pub deployments: BTreeSet<String>,
    pub services: BTreeSet<String>,
}

fn name_of<K: kube::Resource>(object: &K) -> String {
    object.meta().name.clone().unwrap_or_default()
}

/// Builds every child of `cluster` from its resolution.
pub fn desired(cluster: &MultigresCluster, resolved: &ResolvedCluster) -> Desired {
    let topo_server = resolved.global_topo_server.as_ref().map(|child| {
        let mut topo = TopoServer::new(&child.name, child.spec.clone());
        topo.metadata = child_meta(cluster, &child.name, child.labels.clone());
        topo
    });
    let cells = resolved
        .cells
        .iter()
        .map(|child| {
            let mut cell = Cell::new(&child.name, child.spec.clone());
            cell.metadata = child_meta(cluster, &child.name, child.labels.clone());
            cell
        })
        .collect();
    let table_groups = resolved
        .table_groups
        .iter()
        .map(|child| {
            let mut tg = TableGroup::new(&child.name, child.spec.clone());
            tg.metadata = child_meta(cluster, &child.name, child.labels.clone());
            tg
        })
        .collect();
    Desired {
        topo_server,
        multiadmin_service: multiadmin_service(cluster, &resolved.multiadmin),
        multiadmin_deployment: multiadmin_deployment(cluster, resolved),
        cells,
        table_groups,
        credentials_secret: resolved
            .generate_credentials
            .then(|| resolved.credentials.secret_name.clone()),
        databases: resolved.databases.iter().map(database_record).collect(),
    }
}

/// The labels that select multiadmin's pods. Never changes for a cluster: a Deployment's selector is
/// immutable.
pub fn multiadmin_selector(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::CLUSTER.to_string(), cluster.to_string()),
        (
            labels::COMPONENT.to_string(),
            component::MULTIADMIN.to_string(),
        ),
    ])
}

fn cluster_name(cluster: &MultigresCluster) -> String {
    cluster.metadata.name.clone().unwrap_or_default()
}

/// multiadmin's Deployment: the topology flags of docs/multigres-version.md, health on the HTTP port, and a
/// restricted security context.
pub fn multiadmin_deployment(cluster: &MultigresCluster, resolved: &ResolvedCluster) -> Deployment {
    let admin = &resolved.multiadmin;
    let topology = &resolved.global_topology;
    let mut args: Vec<String> =
        multigres::global_topology_flags(&topology.address, &topology.root_path)
            .map(|(flag, value)| format!("{flag}={value}"))
            .to_vec();
    args.extend([
        format!("--http-port={MULTIADMIN_HTTP_PORT}"),
        format!("--grpc-port={MULTIADMIN_GRPC_PORT}"),
        "--service-map=grpc-multiadmin".to_string(),
        // The pod IP, not its name: a Deployment's pods have no DNS name others could dial.
        "--hostname=$(POD_IP)".to_string(),
    ]);
    let probe = |path: &str, period: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String("http".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(3),
        ..Default::default()
    };
    let container = Container {
        name: "multiadmin".into(),
        image: Some(admin.image.clone()),
        image_pull_policy: admin.image_pull_policy.map(|p| p.as_str().to_string()),
        command: Some(vec!["multiadmin".into()]),
        args: Some(args),
        env: Some(vec![downward_env("POD_IP", "status.podIP")]),
        ports: Some(vec![
            container_port("http", MULTIADMIN_HTTP_PORT),
            container_port("grpc", MULTIADMIN_GRPC_PORT),
        ]),
        liveness_probe: Some(probe("/live", 10)),
        readiness_probe: Some(probe("/ready", 5)),
        resources: admin.spec.resources.clone(),
        security_context: Some(restricted_container_security_context()),
        ..Default::default()
    };
    let name = cluster_name(cluster);
    let selector = multiadmin_selector(&name);
    let mut pod_labels = admin.labels.clone();
    pod_labels.extend(selector.clone());
    Deployment {
        metadata: child_meta(cluster, &admin.name, admin.labels.clone()),
        spec: Some(DeploymentSpec {
            replicas: admin.spec.replicas,
            selector: LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    affinity: admin.spec.affinity.clone(),
                    image_pull_secrets: (!admin.image_pull_secrets.is_empty())
                        .then(|| admin.image_pull_secrets.clone()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(restricted_pod_security_context(1000)),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// multiadmin's Service: its HTTP and gRPC ports.
pub fn multiadmin_service(cluster: &MultigresCluster, admin: &ResolvedMultiAdmin) -> Service {
    // Targets the container port by name.
    let service_port = |name: &str, number: i32| ServicePort {
        target_port: Some(IntOrString::String(name.to_string())),
        ..service_port(name, number)
    };
    Service {
        metadata: child_meta(cluster, &admin.name, admin.labels.clone()),
        spec: Some(ServiceSpec {
            selector: Some(multiadmin_selector(&cluster_name(cluster))),
            ports: Some(vec![
                service_port("http", MULTIADMIN_HTTP_PORT),
                service_port("grpc", MULTIADMIN_GRPC_PORT),
            ]),
            type_: Some("ClusterIP".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The generated credentials Secret. Owned by the cluster only when the cluster's volumes are deleted
/// with it: retained volumes keep a usable password.
pub fn credentials_secret(cluster: &MultigresCluster, name: &str, password: &str) -> Secret {
    let cluster_name = cluster_name(cluster);
    let mut metadata = child_meta(
        cluster,
        name,
        labels::for_component(&cluster_name, component::CREDENTIALS),
    );
    let deleted_with_cluster = cluster
        .spec
        .pvc_deletion_policy
        .as_ref()
        .is_some_and(|p| p.when_deleted == RetentionAction::Delete);
    if !deleted_with_cluster {
        metadata.owner_references = None;
    }
    Secret {
        metadata,
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            ("username".to_string(), ByteString(POSTGRES_USER.into())),
            (
                "password".to_string(),
                ByteString(password.as_bytes().to_vec()),
            ),
        ])),
        ..Default::default()
    }
}

/// A fresh random password: 32 alphanumeric characters.
pub fn generate_password() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(PASSWORD_LEN)
        .map(char::from)
        .collect()
}

/// The Database record multiorch and the poolers read. Backups go to a filesystem repository at
/// [`BACKUP_REPOSITORY_PATH`], where every shard pod mounts its shard's backup volume: multipooler
/// refuses a Database without a backup location, and replicas bootstrap from its backups. No
/// encryption is required and the first repository generation (0) is authoritative.
pub fn database_record(db: &DatabaseRegistration) -> pb::Database {
    let (quorum, label, what) = match db.durability.quorum_type {
        QuorumType::AtLeastN => (pb::QuorumType::AtLeastN, "AT_LEAST", "instances"),
        QuorumType::MultiCellAtLeastN => (
            pb::QuorumType::MultiCellAtLeastN,
            "MULTI_CELL_AT_LEAST",
            "cells",
        ),
    };
    let count = db.durability.required_count;
    pb::Database {
        name: db.name.clone(),
        backup_location: Some(pb::BackupLocation {
            location: Some(pb::backup_location::Location::Filesystem(
                pb::FilesystemBackup {
                    path: BACKUP_REPOSITORY_PATH.to_string(),
                },
            )),
            require_initial_repo_encryption: false,
            authoritative_generation: 0,
        }),
        cells: db.cells.clone(),
        bootstrap_durability_policy: Some(pb::DurabilityPolicy {
            policy_name: format!("{label}_{count}"),
            policy_version: 1,
            quorum_type: quorum as i32,
            required_count: count,
            description: format!("a write is durable once {count} {what} have it"),
        }),
    }
}

/// The annotation on a cluster that lists the databases it registered in the global topology, so
/// that it deregisters only its own records.
pub const REGISTERED_DATABASES: &str = "multigres.com/registered-databases";

/// Parses the annotation's value (comma separated, sorted).
pub fn registered_databases(cluster: &MultigresCluster) -> BTreeSet<String> {
    cluster
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REGISTERED_DATABASES))
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// The annotation's value for `names`.
pub fn registered_value(names: &BTreeSet<String>) -> String {
    names.iter().cloned().collect::<Vec<_>>().join(",")
}

/// Names of the global TopoServer, for a cluster that has none managed too.
pub fn global_topo_server_name(cluster: &MultigresCluster) -> String {
    naming::global_topo_server(&cluster_name(cluster))
}

#[cfg(test)]
mod tests {
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
        assert_eq!(env, ["POD_IP"]);
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
}
