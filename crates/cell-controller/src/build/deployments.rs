//! The multigateway and multiorch Deployments: flags, ports, probes, a restricted pod.

use super::topology::topo_flags;
use super::*;
use multigres_api::{LogLevel, TlsRef};

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
    ]);
    if let Some(tls) = &cell.spec.tls {
        args.extend(flags(multigres::grpc_server_tls_flags()));
        args.extend(flags(multigres::grpc_client_tls_flags()));
        args.extend(flags(multigres::gateway_pg_tls_flags(
            tls.require_client_tls,
        )));
    }
    args.extend(cell.spec.multigateway.logging.args(Some(LogLevel::Info)));
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
    ]);
    if cell.spec.tls.is_some() {
        args.extend(flags(multigres::grpc_server_tls_flags()));
        args.extend(flags(multigres::grpc_client_tls_flags()));
    }
    args.extend(cell.spec.multiorch.logging.args(Some(LogLevel::Info)));
    args
}

fn flags(pairs: impl IntoIterator<Item = (&'static str, String)>) -> Vec<String> {
    pairs
        .into_iter()
        .map(|(flag, value)| format!("{flag}={value}"))
        .collect()
}

struct Component<'a> {
    name: String,
    component: &'static str,
    binary: &'static str,
    image: &'a str,
    spec: &'a ResolvedComponent,
    replicas: i32,
    args: Vec<String>,
    ports: Vec<ContainerPort>,
    http_port: i32,
}

fn deployment(cell: &Cell, c: Component<'_>) -> Deployment {
    let labels = component_labels(cell, c.component);
    let selector = selector_labels(cell, c.component);
    let images = &cell.spec.images;
    let container = Container {
        name: c.binary.into(),
        image: Some(c.image.into()),
        image_pull_policy: images.image_pull_policy.map(|p| p.as_str().to_string()),
        // The Multigres image has no entrypoint: the command is the binary's name.
        command: Some(vec![c.binary.into()]),
        args: Some(c.args),
        env: Some(
            std::iter::once(downward_env("POD_IP", "status.podIP"))
                .chain(metrics_env())
                .collect(),
        ),
        ports: Some(c.ports),
        resources: c.spec.resources.clone(),
        startup_probe: Some(http_probe("/live", c.http_port, 5, 3, 60)),
        readiness_probe: Some(http_probe("/ready", c.http_port, 5, 3, 3)),
        liveness_probe: Some(http_probe("/live", c.http_port, 10, 3, 3)),
        security_context: Some(restricted_container_security_context()),
        volume_mounts: Some(
            std::iter::once(VolumeMount {
                name: "tmp".into(),
                mount_path: "/tmp".into(),
                ..Default::default()
            })
            .chain(
                cell.spec
                    .tls
                    .as_ref()
                    .map(|_| multigres::tls_volume_mount()),
            )
            .chain(cell.spec.global_topo_server.tls_volume_mount())
            .collect(),
        ),
        ..Default::default()
    };
    let mut pod = PodSpec {
        containers: vec![container],
        // Multigres components never call the Kubernetes API: no ServiceAccount token in the pod.
        automount_service_account_token: Some(false),
        affinity: Some(
            c.spec
                .affinity
                .clone()
                .unwrap_or_else(|| preferred_spread(&selector)),
        ),
        image_pull_secrets: (!images.image_pull_secrets.is_empty())
            .then(|| images.image_pull_secrets.clone()),
        security_context: Some(PodSecurityContext {
            fs_group: None,
            ..restricted_pod_security_context(RUN_AS)
        }),
        volumes: Some(
            std::iter::once(Volume {
                name: "tmp".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            })
            .chain(
                cell.spec
                    .tls
                    .as_ref()
                    .map(|tls| multigres::tls_volume(&tls.secret_name)),
            )
            .chain(cell.spec.global_topo_server.tls_volume())
            .collect(),
        ),
        ..Default::default()
    };
    let mut pod_meta = ObjectMeta {
        labels: Some(labels.clone()),
        ..Default::default()
    };
    // Node selector and tolerations: the cell's placement and the component's; spread: the
    // component's, else the default over zones and nodes.
    c.spec.scheduling.apply_to(
        &mut pod_meta,
        &mut pod,
        cell.spec.placement.as_ref(),
        &selector,
        true,
    );
    TlsRef::annotate_pod(cell.spec.tls.as_ref(), &mut pod_meta);
    Deployment {
        metadata: child_meta(cell, &c.name, labels),
        spec: Some(DeploymentSpec {
            replicas: Some(c.replicas),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(pod_meta),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// Prometheus metrics on [`multigres::METRICS_PORT`] (docs/monitoring.md).
fn metrics_env() -> impl Iterator<Item = k8s_openapi::api::core::v1::EnvVar> {
    multigres::metrics_env(multigres::METRICS_PORT)
        .into_iter()
        .map(|(name, value)| multigres_runtime::builders::value_env(name, &value))
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
            replicas: spec.replicas,
            args: gateway_args(cell),
            ports: vec![
                container_port("postgres", GATEWAY_PG_PORT),
                container_port("postgres-ro", GATEWAY_PG_REPLICA_PORT),
                container_port("http", GATEWAY_HTTP_PORT),
                container_port("grpc", GATEWAY_GRPC_PORT),
                container_port(multigres::METRICS_PORT_NAME, multigres::METRICS_PORT),
            ],
            http_port: GATEWAY_HTTP_PORT,
        },
    )
}

/// multiorch's replicas: as resolved, or 0 while the cell serves no database.
pub fn multiorch_replicas(cell: &Cell) -> i32 {
    match watch_targets(cell) {
        Some(_) => cell.spec.multiorch.replicas,
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
                container_port(multigres::METRICS_PORT_NAME, multigres::METRICS_PORT),
            ],
            http_port: MULTIORCH_HTTP_PORT,
        },
    )
}
