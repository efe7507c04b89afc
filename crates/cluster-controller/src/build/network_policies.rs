//! The cluster's NetworkPolicies (docs/security.md): one per kind of pod, each letting only the
//! components that must talk reach its ports. A pod a policy selects accepts nothing else, so a
//! port missing here is a port nobody reaches (the pool pods' pgctld ports are served to the
//! containers of their own pod only, which no policy governs).

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use multigres_api::MultigresCluster;
use multigres_api::labels::{self, component};
use multigres_api::multigres::*;
use multigres_api::naming::TOPO_CLIENT_PORT;
use multigres_runtime::apply::child_meta;

use super::cluster_name;

/// Who a port admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Peers {
    /// Every pod of this cluster, and the operator's namespace (its controllers dial the topology
    /// and multiadmin).
    ClusterAndOperator,
    /// Pods of one component of this cluster only.
    Component(&'static str),
    /// The user's `gatewayClients` (default: anyone).
    GatewayClients,
    /// The user's `metricsClients` (default: anyone).
    MetricsClients,
}

/// One kind of pod and who reaches which of its ports.
struct Rules {
    component: &'static str,
    ports: &'static [(&'static [i32], Peers)],
}

const METRICS: &[i32] = &[METRICS_PORT];

/// The flows of docs/security.md, "Network". multipooler reaches Postgres and pgctld inside its
/// own pod; replicas stream WAL from, and restore through pgBackRest of, other pool pods.
const RULES: [Rules; 5] = [
    Rules {
        component: component::TOPO_SERVER,
        ports: &[
            (&[TOPO_CLIENT_PORT], Peers::ClusterAndOperator),
            (&[TOPO_PEER_PORT], Peers::Component(component::TOPO_SERVER)),
            (&[TOPO_METRICS_PORT], Peers::MetricsClients),
        ],
    },
    Rules {
        component: component::MULTIGATEWAY,
        ports: &[
            (
                &[GATEWAY_PG_PORT, GATEWAY_PG_REPLICA_PORT],
                Peers::GatewayClients,
            ),
            (
                &[GATEWAY_GRPC_PORT, GATEWAY_HTTP_PORT],
                Peers::ClusterAndOperator,
            ),
            (METRICS, Peers::MetricsClients),
        ],
    },
    Rules {
        component: component::MULTIORCH,
        ports: &[
            (
                &[MULTIORCH_GRPC_PORT, MULTIORCH_HTTP_PORT],
                Peers::ClusterAndOperator,
            ),
            (METRICS, Peers::MetricsClients),
        ],
    },
    Rules {
        component: component::MULTIADMIN,
        ports: &[
            (
                &[MULTIADMIN_GRPC_PORT, MULTIADMIN_HTTP_PORT],
                Peers::ClusterAndOperator,
            ),
            (METRICS, Peers::MetricsClients),
        ],
    },
    Rules {
        component: component::SHARD_POOL,
        ports: &[
            (
                &[POOLER_GRPC_PORT, POOLER_HTTP_PORT],
                Peers::ClusterAndOperator,
            ),
            (
                &[PG_PORT, PGBACKREST_PORT],
                Peers::Component(component::SHARD_POOL),
            ),
            (
                &[METRICS_PORT, PGCTLD_METRICS_PORT, POSTGRES_EXPORTER_PORT],
                Peers::MetricsClients,
            ),
        ],
    },
];

/// Whether the cluster wants its NetworkPolicies (default: yes).
pub fn enabled(cluster: &MultigresCluster) -> bool {
    cluster
        .spec
        .network_policy
        .as_ref()
        .and_then(|n| n.enabled)
        .unwrap_or(true)
}

/// The cluster's NetworkPolicies, `<cluster>-<component>`; none when turned off.
/// `operator_namespace` is where the controllers run.
pub fn network_policies(
    cluster: &MultigresCluster,
    operator_namespace: &str,
) -> Vec<NetworkPolicy> {
    if !enabled(cluster) {
        return Vec::new();
    }
    let name = cluster_name(cluster);
    let config = cluster.spec.network_policy.clone().unwrap_or_default();
    RULES
        .iter()
        .map(|rules| {
            let ingress = rules
                .ports
                .iter()
                .map(|(ports, peers)| NetworkPolicyIngressRule {
                    ports: Some(ports.iter().map(|p| tcp(*p)).collect()),
                    from: match peers {
                        Peers::ClusterAndOperator => {
                            Some(vec![pods_of(&name, None), namespace(operator_namespace)])
                        }
                        Peers::Component(c) => Some(vec![pods_of(&name, Some(c))]),
                        Peers::GatewayClients => config.gateway_clients.clone(),
                        Peers::MetricsClients => config.metrics_clients.clone(),
                    },
                })
                .collect();
            NetworkPolicy {
                metadata: child_meta(
                    cluster,
                    &format!("{name}-{}", rules.component),
                    labels::for_component(&name, component::NETWORK_POLICY),
                ),
                spec: Some(NetworkPolicySpec {
                    pod_selector: Some(selector(&name, Some(rules.component))),
                    policy_types: Some(vec!["Ingress".into()]),
                    ingress: Some(ingress),
                    ..Default::default()
                }),
            }
        })
        .collect()
}

fn selector(cluster: &str, component: Option<&str>) -> LabelSelector {
    let mut labels = BTreeMap::from([(labels::CLUSTER.to_string(), cluster.to_string())]);
    if let Some(c) = component {
        labels.insert(labels::COMPONENT.to_string(), c.to_string());
    }
    LabelSelector {
        match_labels: Some(labels),
        ..Default::default()
    }
}

fn pods_of(cluster: &str, component: Option<&str>) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(selector(cluster, component)),
        ..Default::default()
    }
}

fn namespace(name: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_string(),
                name.to_string(),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn tcp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}
