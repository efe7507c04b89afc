//! The cluster's PrometheusRule (the Prometheus operator's `monitoring.coreos.com/v1`): the alerts
//! of docs/monitoring.md, each scoped to this cluster's series (the target labels its PodMonitor
//! sets) and each with a `runbook_url` to its section there.

use std::collections::BTreeMap;

use kube::CustomResource;
use multigres_api::MultigresCluster;
use multigres_runtime::apply::child_meta;
use serde::{Deserialize, Serialize};

use super::pod_monitor::{enabled, monitoring_labels};

/// Where runbook links point unless `spec.observability.prometheusRule.runbookBaseUrl` says.
pub const RUNBOOK_BASE: &str = "docs/monitoring.md";

/// The spec fields of a PrometheusRule the operator writes.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "monitoring.coreos.com",
    version = "v1",
    kind = "PrometheusRule",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusRuleSpec {
    pub groups: Vec<RuleGroup>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleGroup {
    pub name: String,
    pub rules: Vec<Rule>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub alert: String,
    pub expr: String,
    #[serde(rename = "for")]
    pub for_: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// One alert: `{sel}` in `expr` becomes the cluster's selector, `{ns}` its namespace.
struct Alert {
    name: &'static str,
    severity: &'static str,
    for_: &'static str,
    expr: &'static str,
    summary: &'static str,
}

/// Every alert; docs/monitoring.md has a `## Runbook: <name>` section for each.
const ALERTS: &[Alert] = &[
    Alert {
        name: "MultigresMetricsTargetDown",
        severity: "warning",
        for_: "5m",
        expr: "up{sel} == 0",
        summary: "Prometheus cannot scrape {{ $labels.container }} of pod {{ $labels.pod }}",
    },
    Alert {
        name: "MultigresPoolerDown",
        severity: "critical",
        for_: "2m",
        expr: "mg_pooler_up{sel} == 0",
        summary: "multipooler of pod {{ $labels.pod }} has closed its connection pools",
    },
    Alert {
        name: "MultigresPostgresUnreachable",
        severity: "critical",
        for_: "5m",
        expr: "sum by (namespace, pod) (rate(mg_pooler_server_conn_open_errors_total{sel}[5m])) > 0 \
               unless sum by (namespace, pod) (rate(mg_pooler_server_conn_opened_total{sel}[5m])) > 0",
        summary: "multipooler of pod {{ $labels.pod }} cannot open any connection to its Postgres",
    },
    Alert {
        name: "MultigresPostgresDown",
        severity: "critical",
        for_: "2m",
        expr: "pg_up{sel} == 0",
        summary: "postgres_exporter of pod {{ $labels.pod }} cannot log in to its Postgres",
    },
    Alert {
        name: "MultigresShardWithoutPrimary",
        severity: "critical",
        for_: "2m",
        expr: "group by (namespace, multigres_database, multigres_tablegroup, multigres_shard) (mg_pooler_up{sel}) \
               unless on (namespace, multigres_database, multigres_tablegroup, multigres_shard) \
               group by (namespace, multigres_database, multigres_tablegroup, multigres_shard) (mg_pooler_up{sel, routing_role=\"primary\"} == 1)",
        summary: "Shard {{ $labels.multigres_shard }} of {{ $labels.multigres_database }}/{{ $labels.multigres_tablegroup }} has no serving primary: writes fail",
    },
    Alert {
        name: "MultigresReplicationLagHigh",
        severity: "warning",
        for_: "5m",
        expr: "mg_pooler_replication_lag_seconds{sel} > 30",
        summary: "Replica {{ $labels.pod }} is {{ $value | humanizeDuration }} behind its primary",
    },
    Alert {
        name: "MultigresGatewayQueryErrorsHigh",
        severity: "warning",
        for_: "10m",
        expr: "sum by (namespace, multigres_cell) (rate(mg_gateway_query_errors_total{sel}[5m])) \
               / sum by (namespace, multigres_cell) (rate(mg_gateway_query_duration_seconds_count{sel}[5m])) > 0.05",
        summary: "More than 5% of the queries through the gateways of cell {{ $labels.multigres_cell }} fail",
    },
    Alert {
        name: "MultigresRecoveryProblemPersists",
        severity: "warning",
        for_: "10m",
        expr: "max by (namespace, db_namespace, shard, analysis_type) (multiorch_recovery_detected_problems{sel}) > 0",
        summary: "multiorch has seen {{ $labels.analysis_type }} on shard {{ $labels.shard }} of {{ $labels.db_namespace }} for 10 minutes without repairing it",
    },
    Alert {
        name: "MultigresPodNotReady",
        severity: "warning",
        for_: "10m",
        expr: "(max by (namespace, pod) (kube_pod_status_ready{namespace=\"{ns}\", condition=\"false\"}) == 1) \
               * on (namespace, pod) group_left (multigres_component) group by (namespace, pod, multigres_component) (up{sel})",
        summary: "{{ $labels.multigres_component }} pod {{ $labels.pod }} has not been ready for 10 minutes",
    },
];

/// The alert names, in the order of docs/monitoring.md.
pub fn alert_names() -> Vec<&'static str> {
    ALERTS.iter().map(|a| a.name).collect()
}

/// A runbook section's anchor as Markdown renderers make it from `## Runbook: <Alert>`.
pub fn runbook_anchor(alert: &str) -> String {
    format!("runbook-{}", alert.to_lowercase())
}

/// The PrometheusRule `<cluster>`, or None when `spec.observability.prometheusRule.enabled` is
/// false. Named as the cluster: it is the only PrometheusRule the cluster has.
pub fn prometheus_rule(cluster: &MultigresCluster) -> Option<PrometheusRule> {
    let config = cluster
        .spec
        .observability
        .as_ref()
        .and_then(|o| o.prometheus_rule.clone())
        .unwrap_or_default();
    if !enabled(config.enabled) {
        return None;
    }
    let name = kube::ResourceExt::name_any(cluster);
    let namespace = cluster.metadata.namespace.clone().unwrap_or_default();
    let selector = format!("namespace=\"{namespace}\", multigres_cluster=\"{name}\"");
    let base = config
        .runbook_base_url
        .clone()
        .unwrap_or_else(|| RUNBOOK_BASE.to_string());
    let rules = ALERTS
        .iter()
        .map(|alert| Rule {
            alert: alert.name.to_string(),
            expr: alert
                .expr
                .replace("{sel}", &format!("{{{selector}}}"))
                .replace("{sel, ", &format!("{{{selector}, "))
                .replace("{ns}", &namespace),
            for_: alert.for_.to_string(),
            labels: BTreeMap::from([
                ("severity".to_string(), alert.severity.to_string()),
                ("multigres_cluster".to_string(), name.clone()),
            ]),
            annotations: BTreeMap::from([
                ("summary".to_string(), alert.summary.to_string()),
                (
                    "runbook_url".to_string(),
                    format!("{base}#{}", runbook_anchor(alert.name)),
                ),
            ]),
        })
        .collect();
    let mut rule = PrometheusRule::new(
        &name,
        PrometheusRuleSpec {
            groups: vec![RuleGroup {
                name: format!("multigres.{namespace}.{name}"),
                rules,
            }],
        },
    );
    rule.metadata = child_meta(cluster, &name, monitoring_labels(&name, &config.labels));
    Some(rule)
}

#[cfg(test)]
mod tests {
    use super::*;
    use multigres_api::cluster::{Observability, PrometheusRuleConfig};

    fn cluster() -> MultigresCluster {
        let mut c = MultigresCluster::new("prod", Default::default());
        c.metadata.namespace = Some("db".into());
        c.metadata.uid = Some("u-1".into());
        c
    }

    #[test]
    /// That every expression parses and reads known metrics: tests/promql.rs.
    fn every_rule_is_scoped_to_the_cluster_and_links_its_runbook() {
        let rule = prometheus_rule(&cluster()).expect("on by default");
        assert_eq!(rule.metadata.name.as_deref(), Some("prod"));
        let rules = &rule.spec.groups[0].rules;
        assert_eq!(rules.len(), ALERTS.len());
        for r in rules {
            assert!(
                r.expr.contains("multigres_cluster=\"prod\"")
                    && r.expr.contains("namespace=\"db\""),
                "{} not scoped: {}",
                r.alert,
                r.expr
            );
            assert!(!r.expr.contains("{sel") && !r.expr.contains("{ns}"));
            assert_eq!(
                r.annotations["runbook_url"],
                format!("docs/monitoring.md#runbook-{}", r.alert.to_lowercase())
            );
            assert!(["warning", "critical"].contains(&r.labels["severity"].as_str()));
        }
    }

    #[test]
    fn every_alert_has_a_runbook_section() {
        let doc = include_str!("../../../../docs/monitoring.md");
        for name in alert_names() {
            assert!(
                doc.contains(&format!("\n## Runbook: {name}\n")),
                "docs/monitoring.md has no `## Runbook: {name}` section"
            );
        }
    }

    #[test]
    fn labels_runbook_base_and_off() {
        let mut c = cluster();
        c.spec.observability = Some(Observability {
            pod_monitor: None,
            prometheus_rule: Some(PrometheusRuleConfig {
                enabled: None,
                labels: BTreeMap::from([("release".to_string(), "prom".to_string())]),
                runbook_base_url: Some("https://example.com/monitoring".into()),
            }),
            ..Default::default()
        });
        let rule = prometheus_rule(&c).unwrap();
        assert_eq!(rule.metadata.labels.as_ref().unwrap()["release"], "prom");
        assert_eq!(
            rule.spec.groups[0].rules[1].annotations["runbook_url"],
            "https://example.com/monitoring#runbook-multigrespoolerdown"
        );
        c.spec.observability.as_mut().unwrap().prometheus_rule = Some(PrometheusRuleConfig {
            enabled: Some(false),
            ..Default::default()
        });
        assert!(prometheus_rule(&c).is_none());
    }
}
