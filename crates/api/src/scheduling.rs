//! What users set on a component's pods besides replicas and resources: where the pods are
//! scheduled (spread, priority, node selector, tolerations), the labels and annotations they carry,
//! and how the Multigres binaries log. Flattened into every component block (`podLabels`,
//! `logLevel`, ... sit beside `replicas`); builders apply them with [`PodScheduling::apply_to`] and
//! [`Logging::flags`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodSpec, Toleration, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::Placement;
use crate::resolve::defaults;

/// Label key prefixes the operator's own labels use: a pod label under them is refused, so that
/// selectors, watches and prunes never see a user's value.
pub const RESERVED_LABEL_PREFIXES: [&str; 2] = ["multigres.com/", "app.kubernetes.io/"];
/// Annotation key prefix of the operator's own pod annotations (spec hash, restart requests).
pub const RESERVED_ANNOTATION_PREFIX: &str = "multigres.com/";

/// Scheduling, labels and annotations of a component's pods. Every field is optional; what is
/// unset keeps the operator's behaviour (for spread: the default spread of docs/defaults.md).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodScheduling {
    /// How the pods spread over failure domains. Unset: shard pools, multigateway and multiorch
    /// spread over zones and nodes (maxSkew 1, ScheduleAnyway); set, the list replaces that default
    /// entirely. A constraint without `labelSelector` counts the component's own pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8))]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
    /// PriorityClass of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub priority_class_name: Option<String>,
    /// Extra labels on the pods. Keys under `multigres.com/` and `app.kubernetes.io/` are the
    /// operator's and are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend(
        "maxProperties" = 64,
        "x-kubernetes-validations" = [
            {"rule": "self.all(k, !k.startsWith('multigres.com/') && !k.startsWith('app.kubernetes.io/'))",
             "message": "podLabels: keys under multigres.com/ and app.kubernetes.io/ are the operator's own labels"}
        ]
    ))]
    pub pod_labels: Option<BTreeMap<String, String>>,
    /// Extra annotations on the pods. Keys under `multigres.com/` are the operator's and are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend(
        "maxProperties" = 64,
        "x-kubernetes-validations" = [
            {"rule": "self.all(k, !k.startsWith('multigres.com/'))",
             "message": "podAnnotations: keys under multigres.com/ are the operator's own annotations"}
        ]
    ))]
    pub pod_annotations: Option<BTreeMap<String, String>>,
    /// Tolerations of the pods, added to those of the cell's placement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub tolerations: Option<Vec<Toleration>>,
    /// Node labels the pods require, added to the cell's placement (this one wins on a key both set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 32))]
    pub node_selector: Option<BTreeMap<String, String>>,
}

impl PodScheduling {
    /// The pod's node selector: the placement's, then this one's over it; unset when both are empty.
    pub fn node_selector(&self, placement: Option<&Placement>) -> Option<BTreeMap<String, String>> {
        let mut selector = placement.map(Placement::node_selector).unwrap_or_default();
        selector.extend(self.node_selector.clone().unwrap_or_default());
        (!selector.is_empty()).then_some(selector)
    }

    /// The pod's tolerations: the placement's, then this one's that it lacks. Exactly the
    /// placement's when this sets none (so a pod spec, and a shard pod's hash, stays as it was).
    pub fn tolerations(&self, placement: Option<&Placement>) -> Option<Vec<Toleration>> {
        let placed = placement.and_then(|p| p.tolerations.clone());
        let Some(own) = &self.tolerations else {
            return placed;
        };
        let mut all = placed.unwrap_or_default();
        for toleration in own {
            if !all.contains(toleration) {
                all.push(toleration.clone());
            }
        }
        Some(all)
    }

    /// The spread constraints of pods selected by `own_pods`: the user's (a constraint without a
    /// label selector gets `own_pods`), else the default spread when `default_spread`.
    pub fn spread(
        &self,
        own_pods: &BTreeMap<String, String>,
        default_spread: bool,
    ) -> Option<Vec<TopologySpreadConstraint>> {
        match &self.topology_spread_constraints {
            Some(set) => Some(
                set.iter()
                    .map(|c| TopologySpreadConstraint {
                        label_selector: c.label_selector.clone().or_else(|| selector(own_pods)),
                        ..c.clone()
                    })
                    .collect(),
            ),
            None => default_spread.then(|| defaults::spread(own_pods)),
        }
    }

    /// Sets everything on a pod (or a pod template): the user's labels and annotations under the
    /// operator's (which win on a key both set), node selector and tolerations combined with the
    /// cell's `placement`, spread (see [`Self::spread`]) and priority class.
    pub fn apply_to(
        &self,
        meta: &mut ObjectMeta,
        pod: &mut PodSpec,
        placement: Option<&Placement>,
        own_pods: &BTreeMap<String, String>,
        default_spread: bool,
    ) {
        let reserved_label = |k: &str| RESERVED_LABEL_PREFIXES.iter().any(|p| k.starts_with(p));
        under(&mut meta.labels, self.pod_labels.as_ref(), reserved_label);
        under(&mut meta.annotations, self.pod_annotations.as_ref(), |k| {
            k.starts_with(RESERVED_ANNOTATION_PREFIX)
        });
        pod.node_selector = self.node_selector(placement);
        pod.tolerations = self.tolerations(placement);
        pod.topology_spread_constraints = self.spread(own_pods, default_spread);
        pod.priority_class_name = self.priority_class_name.clone();
    }
}

/// `user`'s entries (but reserved keys) beneath `operator`'s: the operator's win.
fn under(
    operator: &mut Option<BTreeMap<String, String>>,
    user: Option<&BTreeMap<String, String>>,
    reserved: impl Fn(&str) -> bool,
) {
    let Some(user) = user.filter(|u| !u.is_empty()) else {
        return;
    };
    let mut merged: BTreeMap<String, String> = user
        .iter()
        .filter(|(k, _)| !reserved(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    merged.extend(operator.take().unwrap_or_default());
    *operator = (!merged.is_empty()).then_some(merged);
}

/// A label selector matching exactly `labels`.
pub fn selector(labels: &BTreeMap<String, String>) -> Option<LabelSelector> {
    Some(LabelSelector {
        match_labels: Some(labels.clone()),
        ..Default::default()
    })
}

/// Verbosity of a Multigres binary (`--log-level`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// Log line format of a Multigres binary (`--log-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Json => "json",
            LogFormat::Text => "text",
        }
    }
}

/// How a Multigres binary logs. Unset fields keep the binary's default (`info`, `json`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Logging {
    /// `debug`, `info`, `warn` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<LogLevel>,
    /// `json` or `text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

impl Logging {
    /// `--log-level` and `--log-format`, each only when set; `default_level` is passed when no
    /// level is (the operator passes `--log-level=info` to some binaries, and a pod spec that keeps
    /// its flags keeps its pods).
    pub fn flags(&self, default_level: Option<LogLevel>) -> Vec<(&'static str, String)> {
        let level = self.log_level.or(default_level);
        let level = level.map(|l| ("--log-level", l.as_str().to_string()));
        let format = self
            .log_format
            .map(|f| ("--log-format", f.as_str().to_string()));
        level.into_iter().chain(format).collect()
    }

    /// [`Self::flags`] as `--flag=value` arguments.
    pub fn args(&self, default_level: Option<LogLevel>) -> Vec<String> {
        self.flags(default_level)
            .into_iter()
            .map(|(flag, value)| format!("{flag}={value}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn toleration(key: &str) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            ..Default::default()
        }
    }

    #[test]
    fn unset_scheduling_leaves_the_placement_as_it_was() {
        let placement = Placement {
            zone: Some("a".into()),
            tolerations: Some(vec![]),
            ..Default::default()
        };
        let none = PodScheduling::default();
        assert_eq!(
            none.node_selector(Some(&placement)),
            Some(map(&[("topology.kubernetes.io/zone", "a")]))
        );
        assert_eq!(none.tolerations(Some(&placement)), Some(vec![]));
        assert_eq!(none.node_selector(None), None);
        assert_eq!(none.tolerations(None), None);
        assert_eq!(none.spread(&map(&[("a", "b")]), false), None);
    }

    #[test]
    fn node_selectors_and_tolerations_add_up_and_the_component_wins() {
        let placement = Placement {
            zone: Some("a".into()),
            node_selector: Some(map(&[("disk", "hdd"), ("pool", "db")])),
            tolerations: Some(vec![toleration("dedicated")]),
            ..Default::default()
        };
        let own = PodScheduling {
            node_selector: Some(map(&[("disk", "ssd")])),
            tolerations: Some(vec![toleration("dedicated"), toleration("spot")]),
            ..Default::default()
        };
        assert_eq!(
            own.node_selector(Some(&placement)),
            Some(map(&[
                ("disk", "ssd"),
                ("pool", "db"),
                ("topology.kubernetes.io/zone", "a")
            ]))
        );
        assert_eq!(
            own.tolerations(Some(&placement)),
            Some(vec![toleration("dedicated"), toleration("spot")])
        );
    }

    #[test]
    fn operator_labels_and_annotations_win() {
        let own = PodScheduling {
            pod_labels: Some(map(&[
                ("team", "db"),
                ("multigres.com/pool", "mine"),
                ("app.kubernetes.io/name", "x"),
                ("tier", "user"),
            ])),
            pod_annotations: Some(map(&[
                ("multigres.com/spec-hash", "forged"),
                ("backup", "yes"),
            ])),
            ..Default::default()
        };
        let mut meta = ObjectMeta {
            labels: Some(map(&[("multigres.com/pool", "p"), ("tier", "operator")])),
            annotations: None,
            ..Default::default()
        };
        own.apply_to(
            &mut meta,
            &mut PodSpec::default(),
            None,
            &BTreeMap::new(),
            false,
        );
        assert_eq!(
            meta.labels,
            Some(map(&[
                ("multigres.com/pool", "p"),
                ("team", "db"),
                ("tier", "operator")
            ]))
        );
        assert_eq!(meta.annotations, Some(map(&[("backup", "yes")])));
    }

    #[test]
    fn user_spread_replaces_the_default_and_counts_own_pods_without_a_selector() {
        let own_pods = map(&[("multigres.com/pool", "p")]);
        assert_eq!(
            PodScheduling::default().spread(&own_pods, true),
            Some(defaults::spread(&own_pods))
        );
        let elsewhere = selector(&map(&[("app", "other")]));
        let own = PodScheduling {
            topology_spread_constraints: Some(vec![
                TopologySpreadConstraint {
                    topology_key: "rack".into(),
                    max_skew: 2,
                    when_unsatisfiable: "DoNotSchedule".into(),
                    ..Default::default()
                },
                TopologySpreadConstraint {
                    topology_key: "zone".into(),
                    max_skew: 1,
                    when_unsatisfiable: "DoNotSchedule".into(),
                    label_selector: elsewhere.clone(),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let spread = own.spread(&own_pods, true).unwrap();
        assert_eq!(spread.len(), 2);
        assert_eq!(spread[0].topology_key, "rack");
        assert_eq!(spread[0].label_selector, selector(&own_pods));
        assert_eq!(spread[1].label_selector, elsewhere);
        assert_eq!(
            PodScheduling {
                topology_spread_constraints: Some(vec![]),
                ..Default::default()
            }
            .spread(&own_pods, true),
            Some(vec![]),
            "an empty list turns the default off"
        );
    }

    #[test]
    fn log_flags_only_when_set() {
        assert!(Logging::default().flags(None).is_empty());
        assert_eq!(
            Logging::default().args(Some(LogLevel::Info)),
            ["--log-level=info"]
        );
        let set = Logging {
            log_level: Some(LogLevel::Debug),
            log_format: Some(LogFormat::Text),
        };
        assert_eq!(
            set.args(Some(LogLevel::Info)),
            ["--log-level=debug", "--log-format=text"]
        );
    }
}
