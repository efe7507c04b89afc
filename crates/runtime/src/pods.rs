//! Reading a pod's state the one way every controller, test and benchmark reads it.

use k8s_openapi::api::core::v1::{Pod, PodCondition};

/// The pod's `Ready` condition, if it has one.
pub fn ready_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
}

/// Whether the kubelet reports the pod Ready.
pub fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodStatus;

    fn pod(conditions: &[(&str, &str)]) -> Pod {
        Pod {
            status: Some(PodStatus {
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(t, s)| PodCondition {
                            type_: t.to_string(),
                            status: s.to_string(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn only_a_true_ready_condition_is_ready() {
        assert!(is_ready(&pod(&[
            ("PodScheduled", "True"),
            ("Ready", "True")
        ])));
        assert!(!is_ready(&pod(&[("Ready", "False")])));
        assert!(!is_ready(&pod(&[("ContainersReady", "True")])));
        assert!(!is_ready(&Pod::default()));
    }
}
