//! multiadmin: its Deployment and Service, the cluster's admin endpoint (planned switchovers).

use super::*;
use multigres_api::TlsRef;

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

/// multiadmin's Deployment: the topology flags of docs/multigres-version.md, health on the HTTP port, and a
/// restricted security context.
pub fn multiadmin_deployment(cluster: &MultigresCluster, resolved: &ResolvedCluster) -> Deployment {
    let admin = &resolved.multiadmin;
    let topology = &resolved.global_topology;
    let mut args: Vec<String> = topology
        .flags()
        .into_iter()
        .map(|(flag, value)| format!("{flag}={value}"))
        .collect();
    args.extend([
        format!("--http-port={MULTIADMIN_HTTP_PORT}"),
        format!("--grpc-port={MULTIADMIN_GRPC_PORT}"),
        "--service-map=grpc-multiadmin".to_string(),
        // The pod IP, not its name: a Deployment's pods have no DNS name others could dial.
        "--hostname=$(POD_IP)".to_string(),
    ]);
    // Its own gRPC stays plaintext: the `multigres` CLI and the shard controller dial it without
    // TLS (docs/security.md). As a client of the other components it speaks mutual TLS.
    if resolved.tls.is_some() {
        args.extend(
            multigres::grpc_client_tls_flags().map(|(flag, value)| format!("{flag}={value}")),
        );
    }
    // No log flag unless asked: multiadmin has always run with its own defaults.
    args.extend(admin.spec.logging.args(None));
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
        env: Some(
            std::iter::once(downward_env("POD_IP", "status.podIP"))
                .chain(
                    multigres::metrics_env(multigres::METRICS_PORT)
                        .into_iter()
                        .map(|(name, value)| multigres_runtime::builders::value_env(name, &value)),
                )
                .collect(),
        ),
        ports: Some(vec![
            container_port("http", MULTIADMIN_HTTP_PORT),
            container_port("grpc", MULTIADMIN_GRPC_PORT),
            container_port(multigres::METRICS_PORT_NAME, multigres::METRICS_PORT),
        ]),
        liveness_probe: Some(probe("/live", 10)),
        readiness_probe: Some(probe("/ready", 5)),
        resources: admin.spec.resources.clone(),
        security_context: Some(restricted_container_security_context()),
        volume_mounts: some_if_any(
            resolved
                .tls
                .as_ref()
                .map(|_| multigres::tls_volume_mount())
                .into_iter()
                .chain(topology.tls_volume_mount())
                .collect(),
        ),
        ..Default::default()
    };
    let name = cluster_name(cluster);
    let selector = multiadmin_selector(&name);
    let mut pod_labels = admin.labels.clone();
    pod_labels.extend(selector.clone());
    let mut pod_meta = ObjectMeta {
        labels: Some(pod_labels),
        ..Default::default()
    };
    let mut pod = PodSpec {
        containers: vec![container],
        affinity: admin.spec.affinity.clone(),
        image_pull_secrets: (!admin.image_pull_secrets.is_empty())
            .then(|| admin.image_pull_secrets.clone()),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        security_context: Some(restricted_pod_security_context(1000)),
        volumes: some_if_any(
            resolved
                .tls
                .as_ref()
                .map(|tls| multigres::tls_volume(&tls.secret_name))
                .into_iter()
                .chain(topology.tls_volume())
                .collect(),
        ),
        ..Default::default()
    };
    // One cluster-wide pod: no cell placement, and no default spread.
    admin
        .spec
        .scheduling
        .apply_to(&mut pod_meta, &mut pod, None, &selector, false);
    TlsRef::annotate_pod(resolved.tls.as_ref(), &mut pod_meta);
    Deployment {
        metadata: child_meta(cluster, &admin.name, admin.labels.clone()),
        spec: Some(DeploymentSpec {
            replicas: Some(admin.spec.replicas),
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

/// `None` for an empty list, so a pod without volumes keeps the shape it always had.
fn some_if_any<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}
