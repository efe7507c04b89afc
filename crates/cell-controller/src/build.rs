//! What a Cell becomes: pure functions from the Cell to the exact child objects and topology record.
//!
//! * multigateway Deployment and Service (`<cell>-gateway`: Postgres 5432, gRPC 15991, HTTP 15001);
//! * multiorch Deployment (`<cell>-multiorch`, `--watch-targets` = the databases the cell serves; scaled
//!   to 0 while the cell serves none, since multiorch refuses to start without targets);
//! * the local TopoServer, when the Cell asks for a managed one;
//! * the `clustermetadata.Cell` record the cell registers in the global topology.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec,
    Service, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::ResourceExt;
use multigres_api::labels::{self, component};
use multigres_api::resolve::defaults;
use multigres_api::{Cell, ComponentSpec, TopoServer, multigres, naming, resolve};
use multigres_runtime::apply::child_meta;
use multigres_runtime::builders::{
    container_port, downward_env, http_probe, preferred_spread,
    restricted_container_security_context, restricted_pod_security_context, service_port,
};
use multigres_runtime::error::{ChildError, Failure};
use multigres_topology::pb;

pub const GATEWAY_PG_PORT: i32 = 5432;
/// multigateway's second Postgres listener, which routes reads to replicas.
pub const GATEWAY_PG_REPLICA_PORT: i32 = 5433;
pub const GATEWAY_HTTP_PORT: i32 = 15001;
pub const GATEWAY_GRPC_PORT: i32 = 15991;
pub const MULTIORCH_HTTP_PORT: i32 = 15300;
pub const MULTIORCH_GRPC_PORT: i32 = 15370;
/// Any non-root ID: the Multigres image needs no particular user.
pub const RUN_AS: i64 = 65532;

/// Where the cell's own topology lives, and how it is served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopologyKind {
    /// The cell's records live on the global server, under `<globalRoot>/<cell>`.
    Global,
    /// A TopoServer the cell controller creates (its name).
    ManagedLocal(String),
    /// An etcd the operator does not manage.
    External,
}

/// The cell's topology: the record to register and where the global topology is.
#[derive(Clone, Debug, PartialEq)]
pub struct CellTopology {
    pub kind: TopologyKind,
    /// `clustermetadata.Cell{name, server_addresses, root}` for `<globalRoot>/cells/<cell>/Cell`.
    pub record: pb::Cell,
    pub global_root: String,
    pub global_address: String,
}

/// Everything a Cell becomes in Kubernetes.
#[derive(Clone, Debug)]
pub struct Children {
    pub gateway_service: Service,
    pub gateway: Deployment,
    pub multiorch: Deployment,
    pub local_topo_server: Option<TopoServer>,
}

/// The cluster a Cell belongs to, from its `multigres.com/cluster` label.
pub fn cluster_of(cell: &Cell) -> Option<String> {
    cell.labels().get(labels::CLUSTER).cloned()
}

/// Validates the Cell and works out its topology. Errors name the field to fix.
pub fn topology(cell: &Cell) -> Result<CellTopology, String> {
    let spec = &cell.spec;
    let namespace = cell.namespace().unwrap_or_default();
    let global = &spec.global_topo_server;
    if global.address.trim().is_empty() {
        return Err("spec.globalTopoServer.address is empty".into());
    }
    if global.root_path.trim_matches('/').is_empty() {
        return Err("spec.globalTopoServer.rootPath is empty".into());
    }
    let cluster = cluster_of(cell);
    let default_root = || {
        naming::default_root(
            &namespace,
            cluster.as_deref().unwrap_or_default(),
            &spec.name,
        )
    };
    let (kind, server_addresses, root) = if let Some(managed) = &spec.topo_server.managed_spec {
        let local = resolve::local_topo_server(cell).ok_or_else(|| {
            format!(
                "spec.topoServer.managedSpec needs the label {} to name the local TopoServer",
                labels::CLUSTER
            )
        })?;
        let address = naming::topo_address(&naming::topo_client_service(&local.name), &namespace);
        let root = managed.root_path.clone().unwrap_or_else(default_root);
        (TopologyKind::ManagedLocal(local.name), vec![address], root)
    } else if let Some(external) = &spec.topo_server.external {
        let root = external.root_path.clone().unwrap_or_else(default_root);
        (TopologyKind::External, vec![external.address.clone()], root)
    } else {
        let root = multigres_topology::cell_root_on_global(&global.root_path, &spec.name);
        (TopologyKind::Global, vec![global.address.clone()], root)
    };
    let record = pb::Cell {
        name: spec.name.clone(),
        server_addresses,
        root,
    };
    multigres_topology::validate_cell(&record).map_err(|e| e.to_string())?;
    Ok(CellTopology {
        kind,
        record,
        global_root: global.root_path.clone(),
        global_address: global.address.clone(),
    })
}

/// Labels of one component of the cell.
fn component_labels(cell: &Cell, component: &str) -> BTreeMap<String, String> {
    let cluster = cluster_of(cell).unwrap_or_default();
    labels::with(
        labels::for_component(&cluster, component),
        labels::CELL,
        &cell.spec.name,
    )
}

/// Pod selector of one component: stable for the Deployment's life (its selector is immutable).
pub fn selector_labels(cell: &Cell, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            labels::CLUSTER.to_string(),
            cluster_of(cell).unwrap_or_default(),
        ),
        (labels::COMPONENT.to_string(), component.to_string()),
        (labels::CELL.to_string(), cell.spec.name.clone()),
    ])
}

/// The topology flags every Multigres component takes.
fn topo_flags(cell: &Cell) -> Vec<String> {
    let global = &cell.spec.global_topo_server;
    multigres::global_topology_flags(&global.address, &global.root_path)
        .map(|(flag, value)| format!("{flag}={value}"))
        .to_vec()
}

pub fn gateway_args(cell: &Cell) -> Vec<String> {
    let mut args = vec![
        format!("--cell={}", cell.spec.name),
        format!("--pg-port={GATEWAY_PG_PORT}"),
        format!("--pg-replica-port={GATEWAY_PG_REPLICA_PORT}"),
        format!("--http-port={GATEWAY_HTTP_PORT}"),
        format!("--grpc-port={GATEWAY_GRPC_PORT}"),
    ];
    args.extend(topo_flags(cell));
    args.extend([
        // Registered in the topology and dialled there: a Deployment's pod has no DNS name, its IP
        // is what others can reach.
        "--hostname=$(POD_IP)".to_string(),
        "--service-map=grpc-multigateway".to_string(),
        "--log-level=info".to_string(),
    ]);
    args
}

/// `--watch-targets`: the databases the cell serves, comma-joined; `None` when it serves none.
pub fn watch_targets(cell: &Cell) -> Option<String> {
    let mut databases = cell.spec.databases.clone();
    databases.sort();
    databases.dedup();
    (!databases.is_empty()).then(|| databases.join(","))
}

pub fn multiorch_args(cell: &Cell) -> Vec<String> {
    let mut args = vec![
        format!("--cell={}", cell.spec.name),
        format!("--http-port={MULTIORCH_HTTP_PORT}"),
        format!("--grpc-port={MULTIORCH_GRPC_PORT}"),
    ];
    if let Some(targets) = watch_targets(cell) {
        args.push(format!("--watch-targets={targets}"));
    }
    args.extend(topo_flags(cell));
    args.extend([
        "--hostname=$(POD_IP)".to_string(),
        "--service-map=grpc-multiorch".to_string(),
        // Failure detection as Multigres' own cluster setup has it (the binary's defaults are 5s
        // and 1s): a dead primary is noticed, and replaced, seconds sooner.
        "--pooler-health-check-interval=500ms".to_string(),
        "--recovery-cycle-interval=500ms".to_string(),
        "--log-level=info".to_string(),
    ]);
    args
}

struct Component<'a> {
    name: String,
    component: &'static str,
    binary: &'static str,
    image: &'a str,
    spec: &'a ComponentSpec,
    replicas: i32,
    args: Vec<String>,
    ports: Vec<ContainerPort>,
    http_port: i32,
}

fn deployment(cell: &Cell, c: Component<'_>) -> Deployment {
    let labels = component_labels(cell, c.component);
    let selector = selector_labels(cell, c.component);
    let placement = cell.spec.placement.clone().unwrap_or_default();
    let node_selector = placement.node_selector();
    let images = &cell.spec.images;
    let container = Container {
        name: c.binary.into(),
        image: Some(c.image.into()),
        image_pull_policy: images.image_pull_policy.map(|p| p.as_str().to_string()),
        // The Multigres image has no entrypoint: the command is the binary's name.
        command: Some(vec![c.binary.into()]),
        args: Some(c.args),
        env: Some(vec![downward_env("POD_IP", "status.podIP")]),
        ports: Some(c.ports),
        resources: c.spec.resources.clone(),
        startup_probe: Some(http_probe("/live", c.http_port, 5, 3, 60)),
        readiness_probe: Some(http_probe("/ready", c.http_port, 5, 3, 3)),
        liveness_probe: Some(http_probe("/live", c.http_port, 10, 3, 3)),
        security_context: Some(restricted_container_security_context()),
        volume_mounts: Some(vec![VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        affinity: Some(
            c.spec
                .affinity
                .clone()
                .unwrap_or_else(|| preferred_spread(&selector)),
        ),
        node_selector: (!node_selector.is_empty()).then_some(node_selector),
        tolerations: placement.tolerations.clone(),
        image_pull_secrets: (!images.image_pull_secrets.is_empty())
            .then(|| images.image_pull_secrets.clone()),
        security_context: Some(PodSecurityContext {
            fs_group: None,
            ..restricted_pod_security_context(RUN_AS)
        }),
        volumes: Some(vec![Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    Deployment {
        metadata: child_meta(cell, &c.name, labels.clone()),
        spec: Some(DeploymentSpec {
            replicas: Some(c.replicas),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        status: None,
    }
}

pub fn gateway(cell: &Cell) -> Deployment {
    let spec = &cell.spec.multigateway;
    deployment(
        cell,
        Component {
            name: naming::gateway(&cell.name_any()),
            component: component::MULTIGATEWAY,
            binary: "multigateway",
            image: &cell.spec.images.multigateway,
            spec,
            replicas: spec.replicas.unwrap_or(defaults::MULTIGATEWAY_REPLICAS),
            args: gateway_args(cell),
            ports: vec![
                container_port("postgres", GATEWAY_PG_PORT),
                container_port("postgres-ro", GATEWAY_PG_REPLICA_PORT),
                container_port("http", GATEWAY_HTTP_PORT),
                container_port("grpc", GATEWAY_GRPC_PORT),
            ],
            http_port: GATEWAY_HTTP_PORT,
        },
    )
}

/// multiorch's replicas: as resolved, or 0 while the cell serves no database.
pub fn multiorch_replicas(cell: &Cell) -> i32 {
    match watch_targets(cell) {
        Some(_) => cell
            .spec
            .multiorch
            .replicas
            .unwrap_or(defaults::MULTIORCH_REPLICAS),
        None => 0,
    }
}

pub fn multiorch(cell: &Cell) -> Deployment {
    let spec = &cell.spec.multiorch;
    deployment(
        cell,
        Component {
            name: naming::multiorch(&cell.name_any()),
            component: component::MULTIORCH,
            binary: "multiorch",
            image: &cell.spec.images.multiorch,
            spec,
            replicas: multiorch_replicas(cell),
            args: multiorch_args(cell),
            ports: vec![
                container_port("http", MULTIORCH_HTTP_PORT),
                container_port("grpc", MULTIORCH_GRPC_PORT),
            ],
            http_port: MULTIORCH_HTTP_PORT,
        },
    )
}

pub fn gateway_service(cell: &Cell) -> Service {
    Service {
        metadata: child_meta(
            cell,
            &naming::gateway(&cell.name_any()),
            component_labels(cell, component::MULTIGATEWAY),
        ),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector_labels(cell, component::MULTIGATEWAY)),
            ports: Some(vec![
                service_port("postgres", GATEWAY_PG_PORT),
                service_port("postgres-ro", GATEWAY_PG_REPLICA_PORT),
                service_port("grpc", GATEWAY_GRPC_PORT),
                service_port("http", GATEWAY_HTTP_PORT),
            ]),
            ..Default::default()
        }),
        status: None,
    }
}

/// The local TopoServer (owned by the Cell), when the Cell asks for a managed one.
pub fn local_topo_server(cell: &Cell) -> Option<TopoServer> {
    let child = resolve::local_topo_server(cell)?;
    Some(TopoServer {
        metadata: child_meta(cell, &child.name, child.labels),
        spec: child.spec,
        status: None,
    })
}

pub fn children(cell: &Cell) -> Children {
    Children {
        gateway_service: gateway_service(cell),
        gateway: gateway(cell),
        multiorch: multiorch(cell),
        local_topo_server: local_topo_server(cell),
    }
}

/// Validation and build in one step, with errors that name the Cell.
pub fn validated(cell: &Cell) -> Result<(CellTopology, Children), ChildError> {
    let topology =
        topology(cell).map_err(|message| ChildError::new(cell, Failure::Invalid(message)))?;
    Ok((topology, children(cell)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use multigres_api::cell::{CellImages, CellTopoServer};
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
                multigateway: ComponentSpec {
                    replicas: Some(2),
                    ..Default::default()
                },
                multiorch: ComponentSpec {
                    replicas: Some(1),
                    ..Default::default()
                },
                global_topo_server: GlobalTopologyRef {
                    root_path: "/multigres/global".into(),
                    client_service_name: Some("example-global-client".into()),
                    address: "example-global-client.ns.svc:2379".into(),
                },
                topo_server: topo,
                all_cells: vec!["us-east-1".into(), "us-west-2".into()],
                databases: databases.iter().map(|d| d.to_string()).collect(),
                topology_reconciliation: TopologyReconciliation::default(),
                placement: Some(Placement {
                    zone: Some("zone-a".into()),
                    ..Default::default()
                }),
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
    }

    #[test]
    fn cell_with_an_external_topology() {
        let topo = CellTopoServer {
            external: Some(ExternalTopoServer {
                address: "etcd.example.com:2379".into(),
                root_path: Some("/ext/root".into()),
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
}
