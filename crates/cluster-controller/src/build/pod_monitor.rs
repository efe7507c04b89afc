//! The cluster's PodMonitor (the Prometheus operator's `monitoring.coreos.com/v1`): every Multigres
//! container's `metrics` port, pgctld's `pgctld-metrics` port and the postgres_exporter sidecar's
//! `pg-metrics` port, with the cluster's topology
//! (cell, database, table group, shard, component) as target labels (docs/monitoring.md).
//!
//! The Prometheus operator is optional, so its kinds have no Rust crate here: the few fields the
//! operator sets are typed below, and the API server checks them against the installed CRD.

use std::collections::BTreeMap;

use kube::CustomResource;
use multigres_api::MultigresCluster;
use multigres_api::labels;
use multigres_api::multigres::{
    METRICS_PORT_NAME, PGCTLD_METRICS_PORT_NAME, POSTGRES_EXPORTER_PORT_NAME,
};
use multigres_runtime::apply::child_meta;
use serde::{Deserialize, Serialize};

/// Value of `app.kubernetes.io/component` on the cluster's monitoring objects.
pub const MONITORING_COMPONENT: &str = "monitoring";

/// The spec fields of a PodMonitor the operator writes.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "monitoring.coreos.com",
    version = "v1",
    kind = "PodMonitor",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct PodMonitorSpec {
    pub selector: PodSelector,
    pub pod_metrics_endpoints: Vec<PodMetricsEndpoint>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSelector {
    pub match_labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMetricsEndpoint {
    pub port: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relabelings: Vec<Relabeling>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Relabeling {
    pub source_labels: Vec<String>,
    pub target_label: String,
    pub action: String,
}

/// Target labels every series of the cluster carries, from the pod labels the operator sets:
/// what the alerts and the cluster dashboard group by.
pub const TARGET_LABELS: [(&str, &str); 7] = [
    (labels::CLUSTER, "multigres_cluster"),
    (labels::CELL, "multigres_cell"),
    (labels::DATABASE, "multigres_database"),
    (labels::TABLEGROUP, "multigres_tablegroup"),
    (labels::SHARD, "multigres_shard"),
    (labels::POOL_TYPE, "multigres_pool_type"),
    (labels::COMPONENT, "multigres_component"),
];

/// Prometheus' name of a pod label in service discovery: every character outside `[a-zA-Z0-9_]`
/// becomes `_`.
fn discovered(label: &str) -> String {
    let sanitized: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("__meta_kubernetes_pod_label_{sanitized}")
}

/// Whether a monitoring object is wanted: on unless the user turned it off.
pub fn enabled(flag: Option<bool>) -> bool {
    flag.unwrap_or(true)
}

/// The monitoring objects' labels: the cluster's, then the user's (which may add, not replace).
pub fn monitoring_labels(
    cluster: &str,
    extra: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = extra.clone();
    out.extend(labels::for_component(cluster, MONITORING_COMPONENT));
    out
}

/// The PodMonitor `<cluster>`, or None when `spec.observability.podMonitor.enabled` is false.
/// Named as the cluster: it is the only PodMonitor the cluster has.
pub fn pod_monitor(cluster: &MultigresCluster) -> Option<PodMonitor> {
    let config = cluster
        .spec
        .observability
        .as_ref()
        .and_then(|o| o.pod_monitor.clone())
        .unwrap_or_default();
    if !enabled(config.enabled) {
        return None;
    }
    let name = kube::ResourceExt::name_any(cluster);
    let relabelings: Vec<Relabeling> = TARGET_LABELS
        .iter()
        .map(|(label, target)| Relabeling {
            source_labels: vec![discovered(label)],
            target_label: (*target).to_string(),
            action: "replace".into(),
        })
        .collect();
    let endpoint = |port: &str| PodMetricsEndpoint {
        port: port.to_string(),
        path: "/metrics".into(),
        interval: config.interval.clone(),
        relabelings: relabelings.clone(),
    };
    let mut monitor = PodMonitor::new(
        &name,
        PodMonitorSpec {
            selector: PodSelector {
                match_labels: BTreeMap::from([
                    (labels::CLUSTER.to_string(), name.clone()),
                    (
                        labels::MANAGED_BY.to_string(),
                        labels::MANAGED_BY_VALUE.to_string(),
                    ),
                ]),
            },
            pod_metrics_endpoints: vec![
                endpoint(METRICS_PORT_NAME),
                endpoint(PGCTLD_METRICS_PORT_NAME),
                endpoint(POSTGRES_EXPORTER_PORT_NAME),
            ],
        },
    );
    monitor.metadata = child_meta(cluster, &name, monitoring_labels(&name, &config.labels));
    Some(monitor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use multigres_api::cluster::{Observability, PodMonitorConfig};

    fn cluster(observability: Option<Observability>) -> MultigresCluster {
        let mut c = MultigresCluster::new("prod", Default::default());
        c.metadata.namespace = Some("db".into());
        c.metadata.uid = Some("u-1".into());
        c.spec.observability = observability;
        c
    }

    #[test]
    fn selects_the_clusters_pods_on_both_metrics_ports() {
        let monitor = pod_monitor(&cluster(None)).expect("on by default");
        assert_eq!(monitor.metadata.name.as_deref(), Some("prod"));
        assert_eq!(monitor.metadata.namespace.as_deref(), Some("db"));
        assert_eq!(
            monitor.metadata.owner_references.as_ref().unwrap()[0].uid,
            "u-1"
        );
        assert_eq!(
            monitor.spec.selector.match_labels[labels::CLUSTER],
            "prod".to_string()
        );
        let ports: Vec<_> = monitor
            .spec
            .pod_metrics_endpoints
            .iter()
            .map(|e| e.port.as_str())
            .collect();
        assert_eq!(ports, ["metrics", "pgctld-metrics", "pg-metrics"]);
        let endpoint = &monitor.spec.pod_metrics_endpoints[0];
        assert_eq!(endpoint.interval, None);
        let cluster_label = &endpoint.relabelings[0];
        assert_eq!(
            cluster_label.source_labels,
            ["__meta_kubernetes_pod_label_multigres_com_cluster"]
        );
        assert_eq!(cluster_label.target_label, "multigres_cluster");
        let json = serde_json::to_value(&monitor).unwrap();
        assert_eq!(json["apiVersion"], "monitoring.coreos.com/v1");
        assert_eq!(json["kind"], "PodMonitor");
        assert_eq!(json["spec"]["podMetricsEndpoints"][0]["port"], "metrics");
    }

    #[test]
    fn user_labels_and_interval_apply_and_false_turns_it_off() {
        let on = pod_monitor(&cluster(Some(Observability {
            pod_monitor: Some(PodMonitorConfig {
                enabled: Some(true),
                labels: BTreeMap::from([
                    ("release".to_string(), "kube-prometheus".to_string()),
                    (labels::CLUSTER.to_string(), "not-mine".to_string()),
                ]),
                interval: Some("15s".into()),
            }),
            ..Default::default()
        })))
        .unwrap();
        let meta_labels = on.metadata.labels.unwrap();
        assert_eq!(meta_labels["release"], "kube-prometheus");
        // The operator's labels win: they are how it finds its children.
        assert_eq!(meta_labels[labels::CLUSTER], "prod");
        assert_eq!(
            on.spec.pod_metrics_endpoints[1].interval.as_deref(),
            Some("15s")
        );
        let off = pod_monitor(&cluster(Some(Observability {
            pod_monitor: Some(PodMonitorConfig {
                enabled: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        })));
        assert!(off.is_none());
    }
}
