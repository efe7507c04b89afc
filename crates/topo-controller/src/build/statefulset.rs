//! The etcd StatefulSet: one member per pod, data on a claim per member.

use super::*;

pub fn statefulset(ts: &TopoServer) -> StatefulSet {
    let name = ts.name_any();
    let namespace = ts.namespace().unwrap_or_default();
    let spec = &ts.spec;
    let labels = child_labels(ts);
    let (startup, readiness, liveness) = probes();
    let container = Container {
        name: CONTAINER.into(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_string()),
        command: Some(vec!["etcd".into()]),
        args: Some(etcd_args(
            &name,
            &namespace,
            spec.replicas,
            spec.tls.is_some(),
        )),
        env: Some(vec![pod_name_env()]),
        ports: Some(vec![
            container_port("client", CLIENT_PORT),
            container_port("peer", PEER_PORT),
            container_port("metrics", METRICS_PORT),
        ]),
        resources: spec.resources.clone(),
        volume_mounts: Some(
            std::iter::once(VolumeMount {
                name: DATA_VOLUME.into(),
                mount_path: DATA_DIR.into(),
                ..Default::default()
            })
            .chain(spec.tls.as_ref().map(|_| VolumeMount {
                name: TLS_VOLUME.into(),
                mount_path: TLS_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            }))
            .collect(),
        ),
        startup_probe: Some(startup),
        readiness_probe: Some(readiness),
        liveness_probe: Some(liveness),
        security_context: Some(restricted_container_security_context()),
        ..Default::default()
    };
    let mut pod = PodSpec {
        containers: vec![container],
        volumes: spec.tls.as_ref().map(|tls| {
            vec![Volume {
                name: TLS_VOLUME.into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(tls.secret_name.clone()),
                    // etcd runs as one user; fsGroup makes the files its group's.
                    default_mode: Some(0o440),
                    ..Default::default()
                }),
                ..Default::default()
            }]
        }),
        // etcd never calls the Kubernetes API: no ServiceAccount token in the pod.
        automount_service_account_token: Some(false),
        affinity: Some(
            spec.affinity
                .clone()
                .unwrap_or_else(|| preferred_spread(&selector_labels(&name))),
        ),
        image_pull_secrets: (!spec.image_pull_secrets.is_empty())
            .then(|| spec.image_pull_secrets.clone()),
        security_context: Some(restricted_pod_security_context(RUN_AS)),
        // etcd flushes on SIGTERM quickly; a long grace only slows rolling updates.
        termination_grace_period_seconds: Some(30),
        ..Default::default()
    };
    let mut pod_meta = ObjectMeta {
        labels: Some(labels.clone()),
        ..Default::default()
    };
    // No default spread: the preferred anti-affinity above already spreads members, and a new
    // default would replace every etcd member on upgrade.
    spec.scheduling.apply_to(
        &mut pod_meta,
        &mut pod,
        spec.placement.as_ref(),
        &selector_labels(&name),
        false,
    );
    StatefulSet {
        metadata: child_meta(ts, &name, labels.clone()),
        spec: Some(StatefulSetSpec {
            replicas: Some(spec.replicas),
            service_name: Some(naming::topo_peer_service(&name)),
            // Members must all start together to form the initial cluster.
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector {
                match_labels: Some(selector_labels(&name)),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(pod_meta),
                spec: Some(pod),
            },
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(DATA_VOLUME.into()),
                    labels: Some(labels),
                    ..Default::default()
                },
                spec: Some(spec.data_volume_claim_template.clone()),
                ..Default::default()
            }]),
            // Topology data is never deleted with the StatefulSet or on scale-down.
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Retain".into()),
                    when_scaled: Some("Retain".into()),
                },
            ),
            ..Default::default()
        }),
        status: None,
    }
}
