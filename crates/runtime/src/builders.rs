//! Plain Kubernetes object pieces that every controller builds the same way: ports, HTTP probes,
//! downward-API env, the restricted security contexts and the default spread of replicas. Nothing
//! here knows about Multigres; controllers choose the names, numbers and paths.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction,
    ObjectFieldSelector, PodAffinityTerm, PodAntiAffinity, PodSecurityContext, Probe,
    SeccompProfile, SecretKeySelector, SecurityContext, ServicePort, VolumeMount,
    WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// A named TCP container port.
pub fn container_port(name: &str, number: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: number,
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

/// A named TCP Service port that forwards to the same port number on the pods.
pub fn service_port(name: &str, number: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port: number,
        target_port: Some(IntOrString::Int(number)),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

/// One [`service_port`] for each `(name, number)`.
pub fn service_ports(ports: &[(&str, i32)]) -> Vec<ServicePort> {
    ports
        .iter()
        .map(|(name, port)| service_port(name, *port))
        .collect()
}

/// An HTTP GET probe of `path` on `port`, every `period` seconds, each try timing out after
/// `timeout` seconds, failing after `failures` failed tries in a row.
pub fn http_probe(path: &str, port: i32, period: i32, timeout: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(port),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(timeout),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

/// An env var with a literal value.
pub fn value_env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

/// An env var read from key `key` of Secret `secret`, which must exist.
pub fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
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

/// A volume mounted at `path`, read-only when `read_only`.
pub fn volume_mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

/// An env var filled by the downward API from a field of the pod (`metadata.name`, `status.podIP`).
pub fn downward_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `POD_NAME`, the pod's own name, for `$(POD_NAME)` in args.
pub fn pod_name_env() -> EnvVar {
    downward_env("POD_NAME", "metadata.name")
}

/// The container context of the Pod Security "restricted" level, with a read-only root filesystem:
/// no privilege escalation, not root, every capability dropped.
pub fn restricted_container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The `RuntimeDefault` seccomp profile that the "restricted" level asks for.
pub fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..Default::default()
    }
}

/// The pod context of the "restricted" level: user, group and fsGroup `id` (not root) and the
/// `RuntimeDefault` seccomp profile.
pub fn restricted_pod_security_context(id: i64) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(id),
        run_as_group: Some(id),
        fs_group: Some(id),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..Default::default()
    }
}

/// Pods matching `selector` prefer distinct nodes (weight 100), then distinct zones (weight 50);
/// a preference only, so a small cluster still schedules them.
pub fn preferred_spread(selector: &BTreeMap<String, String>) -> Affinity {
    let term = |key: &str, weight: i32| WeightedPodAffinityTerm {
        weight,
        pod_affinity_term: PodAffinityTerm {
            label_selector: Some(LabelSelector {
                match_labels: Some(selector.clone()),
                ..Default::default()
            }),
            topology_key: key.into(),
            ..Default::default()
        },
    };
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                term("kubernetes.io/hostname", 100),
                term("topology.kubernetes.io/zone", 50),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_tcp_and_services_target_the_same_number() {
        let sp = service_port("grpc", 15000);
        assert_eq!(sp.target_port, Some(IntOrString::Int(15000)));
        assert_eq!(sp.protocol.as_deref(), Some("TCP"));
        assert_eq!(container_port("http", 80).protocol.as_deref(), Some("TCP"));
    }

    #[test]
    fn pod_name_env_reads_metadata_name() {
        let env = pod_name_env();
        assert_eq!(env.name, "POD_NAME");
        let field = env.value_from.unwrap().field_ref.unwrap();
        assert_eq!(field.field_path, "metadata.name");
    }

    #[test]
    fn spread_prefers_nodes_over_zones() {
        let selector = BTreeMap::from([("app".to_string(), "x".to_string())]);
        let terms = preferred_spread(&selector)
            .pod_anti_affinity
            .unwrap()
            .preferred_during_scheduling_ignored_during_execution
            .unwrap();
        let keys: Vec<_> = terms
            .iter()
            .map(|t| (t.pod_affinity_term.topology_key.as_str(), t.weight))
            .collect();
        assert_eq!(
            keys,
            [
                ("kubernetes.io/hostname", 100),
                ("topology.kubernetes.io/zone", 50)
            ]
        );
        assert!(preferred_spread(&selector).pod_affinity.is_none());
    }

    #[test]
    fn restricted_contexts_drop_everything() {
        let c = restricted_container_security_context();
        assert_eq!(c.allow_privilege_escalation, Some(false));
        assert_eq!(c.capabilities.unwrap().drop.unwrap(), ["ALL"]);
        let p = restricted_pod_security_context(999);
        assert_eq!(p.fs_group, Some(999));
        assert_eq!(p.seccomp_profile.unwrap().type_, "RuntimeDefault");
    }
}
